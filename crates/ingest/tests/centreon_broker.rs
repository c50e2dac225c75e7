//! The Centreon Broker decoder against the batches the shipped stream connector posts. The
//! fixtures were made by running the connector itself (`lua5.3 contrib/centreon/selftest.lua`)
//! under a stand-in broker, fed with status events built from the properties Centreon documents
//! for NEB::ServiceStatus / NEB::HostStatus and their BBDO 3 versions
//! (https://docs.centreon.com/docs/developer/developer-broker-mapping/).

mod common;

use common::{fixture, fixture_json};
use jiff::Timestamp;
use pagerbridge_ingest::centreon_broker::{self, Options};
use pagerbridge_ingest::{Alert, AlertState, MonitorRef, SourceKind};
use proptest::prelude::*;
use serde_json::{Value, json};

const ALL: Options = Options {
    hard_only: false,
    skip_in_downtime: false,
    skip_acknowledged: false,
};

const DIR: &str = "centreon_broker";

fn decode_value(v: &Value, opts: &Options) -> Result<Vec<Alert>, pagerbridge_ingest::DecodeError> {
    centreon_broker::decode(&serde_json::to_vec(v).unwrap(), opts)
}

#[test]
fn options_default_to_filtering_everything_that_should_not_page() {
    let o = Options::default();
    assert!(o.hard_only && o.skip_in_downtime && o.skip_acknowledged);
    // From the configuration: missing fields take the defaults, unknown ones are refused.
    let o: Options = serde_json::from_value(json!({"skip_acknowledged": false})).unwrap();
    assert_eq!(
        o,
        Options {
            skip_acknowledged: false,
            ..Options::default()
        }
    );
    assert!(serde_json::from_value::<Options>(json!({"hard_onyl": false})).is_err());
}

#[test]
fn service_problem_decodes_exactly() {
    let alerts = centreon_broker::decode(&fixture(DIR, "batch-1.json"), &ALL).unwrap();
    assert_eq!(alerts.len(), 3);
    let a = &alerts[0];
    assert_eq!(a.source, SourceKind::CentreonBroker);
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("CRITICAL"));
    assert_eq!(
        a.summary,
        "CRITICAL: db1/Disk / - DISK CRITICAL - free space: / 100 MB (5% inode=80%)"
    );
    assert_eq!(a.dedup_hint, "12/34");
    assert_eq!(a.entity.host.as_deref(), Some("db1"));
    assert_eq!(a.entity.service.as_deref(), Some("Disk /"));
    assert_eq!(
        a.monitor_ref,
        MonitorRef::CentreonIds {
            host_id: 12,
            service_id: Some(34)
        }
    );
    assert_eq!(a.client.as_deref(), Some("Centreon"));
    assert_eq!(
        a.client_url.as_deref(),
        Some("https://centreon.example.com")
    );
    assert_eq!(a.routing_key, None);
    assert_eq!(a.severity, None);
    assert_eq!(
        a.occurred_at,
        Some(Timestamp::from_second(1_795_248_720).unwrap())
    );
    assert_eq!(
        a.started_at,
        Some(Timestamp::from_second(1_795_248_720).unwrap())
    );
    assert_eq!(
        Value::Object(a.details.clone()),
        json!({
            "state": "CRITICAL",
            "state_type": "HARD",
            "output": "DISK CRITICAL - free space: / 100 MB (5% inode=80%)\nlong output line",
            "perfdata": {"/": {"value": 900.0, "unit": "MB", "warn": 800.0, "crit": 900.0, "min": 0.0, "max": 1000.0}},
            "host_id": 12,
            "service_id": 34,
            "acknowledged": false,
            "scheduled_downtime_depth": 0,
            "last_state_change": 1795248660,
            "last_hard_state_change": 1795248720,
            "last_check": 1795248720,
            "check_attempt": 3,
            "max_check_attempts": 3
        })
    );

    let host = &alerts[1];
    assert_eq!(host.status.as_deref(), Some("DOWN"));
    assert_eq!(host.dedup_hint, "12");
    assert_eq!(host.entity.service, None);
    assert_eq!(
        host.monitor_ref,
        MonitorRef::CentreonIds {
            host_id: 12,
            service_id: None
        }
    );
    assert_eq!(
        host.summary,
        "DOWN: db1 - CRITICAL - 10.0.0.5: rta nan, lost 100%"
    );
    assert_eq!(host.details["acknowledged"], json!(true));
    assert_eq!(alerts[2].details["scheduled_downtime_depth"], json!(1));
    assert_eq!(alerts[2].details["perfdata"]["used"]["value"], json!(91.0));
}

#[test]
fn default_options_drop_acknowledged_and_downtime_problems() {
    let alerts =
        centreon_broker::decode(&fixture(DIR, "batch-1.json"), &Options::default()).unwrap();
    assert_eq!(
        alerts
            .iter()
            .map(|a| a.dedup_hint.as_str())
            .collect::<Vec<_>>(),
        ["12/34"],
        "the acknowledged host and the service in downtime are left out"
    );
    let only_downtime = Options {
        skip_acknowledged: false,
        ..Options::default()
    };
    let alerts = centreon_broker::decode(&fixture(DIR, "batch-1.json"), &only_downtime).unwrap();
    assert_eq!(alerts.len(), 2);
}

#[test]
fn soft_states_are_dropped_when_hard_only() {
    let mut v = fixture_json(DIR, "batch-1.json");
    v[0]["state_type"] = json!(0);
    assert!(
        centreon_broker::decode(&serde_json::to_vec(&v).unwrap(), &Options::default())
            .unwrap()
            .is_empty()
    );
    let alerts = decode_value(&v, &ALL).unwrap();
    assert_eq!(alerts[0].details["state_type"], json!("SOFT"));
}

#[test]
fn recoveries_are_never_filtered_out() {
    let alerts =
        centreon_broker::decode(&fixture(DIR, "batch-2.json"), &Options::default()).unwrap();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0].state, AlertState::Recovery);
    assert_eq!(alerts[0].status.as_deref(), Some("OK"));
    assert_eq!(alerts[0].dedup_hint, "12/34");
    assert_eq!(alerts[0].started_at, None);
    assert_eq!(alerts[1].state, AlertState::Recovery);
    assert_eq!(alerts[1].status.as_deref(), Some("UP"));
    assert_eq!(alerts[1].dedup_hint, "12");
    assert_eq!(
        alerts[1].details["perfdata"]["rta"],
        json!({"value": 0.6, "unit": "ms", "warn": 100.0, "crit": 200.0, "min": 0.0})
    );
    // Even a soft OK in a downtime, acknowledged: a resolve never opens anything.
    let mut v = fixture_json(DIR, "batch-2.json");
    v[0]["state_type"] = json!(0);
    v[0]["scheduled_downtime_depth"] = json!(2);
    v[0]["acknowledged"] = json!(true);
    assert_eq!(decode_value(&v, &Options::default()).unwrap().len(), 3);
}

#[test]
fn unknown_names_fall_back_to_ids() {
    let alerts = centreon_broker::decode(&fixture(DIR, "batch-2.json"), &ALL).unwrap();
    let a = &alerts[2];
    assert_eq!(a.status.as_deref(), Some("UNKNOWN"));
    assert_eq!(a.entity.host.as_deref(), Some("99"));
    assert_eq!(a.entity.service.as_deref(), Some("7"));
    assert_eq!(a.dedup_hint, "99/7");
    assert_eq!(a.summary, "UNKNOWN: 99/7 - UNKNOWN - plugin timed out");
}

#[test]
fn same_object_keeps_one_dedup_hint() {
    let first = centreon_broker::decode(&fixture(DIR, "batch-1.json"), &ALL).unwrap();
    let second = centreon_broker::decode(&fixture(DIR, "batch-2.json"), &ALL).unwrap();
    assert_eq!(first[0].dedup_hint, second[0].dedup_hint);
    assert_eq!(first[1].dedup_hint, second[1].dedup_hint);
    assert_ne!(first[0].dedup_hint, first[1].dedup_hint);
}

#[test]
fn lua_numbers_and_bbdo3_flags_are_understood() {
    let v = json!([{"host_id": 5.0, "service_id": "6", "state": 2.0, "state_type": "1",
                    "acknowledged": 0, "scheduled_downtime_depth": "0", "last_check": 1795248000.0}]);
    let alerts = decode_value(&v, &Options::default()).unwrap();
    assert_eq!(alerts[0].dedup_hint, "5/6");
    assert_eq!(alerts[0].status.as_deref(), Some("CRITICAL"));
    // Without "kind", a service_id of 0 means a host.
    let v = json!({"host_id": 5, "service_id": 0, "state": 2});
    let alerts = decode_value(&v, &ALL).unwrap();
    assert_eq!(alerts[0].status.as_deref(), Some("UNREACHABLE"));
    assert_eq!(alerts[0].dedup_hint, "5");
}

#[test]
fn errors_name_the_event_and_field() {
    let cases = [
        (
            json!([{"host_id": 1, "state": 0}, {"host_id": 1, "service_id": 2, "state": 4}]),
            "events[1].state",
        ),
        (
            json!([{"host_id": 1, "kind": "host", "state": 3}]),
            "events[0].state",
        ),
        (json!([{"state": 0}]), "events[0].host_id"),
        (json!([{"host_id": -1, "state": 0}]), "events[0].host_id"),
        (
            json!([{"host_id": 1, "kind": "service", "state": 0}]),
            "events[0].service_id",
        ),
        (
            json!([{"host_id": 1, "kind": "meta", "state": 0}]),
            "events[0].kind",
        ),
        (
            json!([{"host_id": 1, "state": 1, "state_type": 2}]),
            "events[0].state_type",
        ),
        (
            json!([{"host_id": 1, "state": 1, "acknowledged": "maybe"}]),
            "events[0].acknowledged",
        ),
        (
            json!([{"host_id": 1, "state": 1, "output": {"x": 1}}]),
            "events[0].output",
        ),
        (json!([{"host_id": 1}]), "events[0].state"),
        (json!([1]), "events[0]"),
        (json!("x"), ""),
    ];
    for (v, field) in cases {
        let e = decode_value(&v, &ALL).unwrap_err();
        assert_eq!(e.field, field, "{v}: {e}");
    }
    let e = decode_value(&json!([{"host_id": 1, "service_id": 2, "state": 4}]), &ALL).unwrap_err();
    assert_eq!(
        e.message,
        "expected 0..=3 (OK, WARNING, CRITICAL, UNKNOWN), got 4"
    );
}

const SELFTEST: &str = "contrib/centreon/selftest.lua";

/// Runs the shipped connector under lua5.3 with a stand-in broker, when Lua is installed: the
/// fixtures must be what the connector posts today.
#[test]
fn stream_connector_still_posts_the_fixtures() {
    let Some(run) = common::script_json("lua5.3", SELFTEST) else {
        return;
    };
    let requests = run["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(
            r["headers"],
            json!([
                "Content-Type: application/json",
                "Authorization: Bearer s3cret"
            ])
        );
        assert_eq!(
            r["body"],
            fixture_json(DIR, &format!("batch-{}.json", i + 1))
        );
    }
    // write() acknowledges only once a batch went out; flush() sends the rest.
    assert_eq!(
        run["write_results"],
        json!([
            true, true, false, false, false, true, false, false, true, true
        ])
    );
    // While pagerbridge fails, nothing is acknowledged.
    let out = common::run_script("lua5.3", SELFTEST, &["500"]).unwrap();
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        run["write_results"],
        json!([
            true, true, false, false, false, false, false, false, false, false
        ])
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = centreon_broker::decode(&body, &Options::default());
    }

    #[test]
    fn mutated_fixtures_decode_or_name_the_field(
        pick in 0usize..2,
        edits in proptest::collection::vec((0usize..3, 0usize..20, 0u8..2, 0usize..8), 1..6),
        hard_only in any::<bool>(),
        skip_in_downtime in any::<bool>(),
        skip_acknowledged in any::<bool>(),
    ) {
        let mut v = fixture_json(DIR, ["batch-1.json", "batch-2.json"][pick]);
        let junks = [json!(null), json!(7), json!(-3), json!(2.5), json!(true), json!("x"), json!([1]), json!({"a": 1})];
        for (event, key, op, junk) in edits {
            let obj = v[event].as_object_mut().unwrap();
            let keys: Vec<String> = obj.keys().cloned().collect();
            let k = &keys[key % keys.len()];
            common::remove_or_replace(obj, k, (op != 0).then_some(&junks[junk]));
        }
        let opts = Options { hard_only, skip_in_downtime, skip_acknowledged };
        match decode_value(&v, &opts) {
            Ok(alerts) => prop_assert!(alerts.len() <= 3),
            Err(e) => prop_assert!(e.field.starts_with("events["), "{}", e),
        }
    }
}
