//! The Zenoss decoder. The fixtures are constructed (no Zenoss ran): events with the fields a
//! Zenoss notification or event command exposes (`${evt/evid}`, `${evt/device}`, ...), the
//! `pdServiceKey` an event transform sets (the convention of the community PagerDuty ZenPack),
//! and the shapes of Zenoss' JSON API (`{"text": ..., "uid": ...}` objects, state names, local
//! time text).

mod common;

use std::collections::BTreeMap;

use common::{fixture, fixture_json};
use jiff::Timestamp;
use pagerbridge_ingest::zenoss;
use pagerbridge_ingest::{Alert, AlertState, MonitorRef, SourceKind};
use pagerduty::events::Severity;
use proptest::prelude::*;
use serde_json::{Value, json};

const EVID: &str = "0242ac11-0002-8a3d-11ef-a6c1f3b2d9e4";
const KEY: &str = "ZENOSSDBTEAMKEY00000000000000001";

const DIR: &str = "zenoss";

fn decode_one(name: &str) -> Alert {
    let mut alerts = zenoss::decode(&fixture(DIR, name)).unwrap();
    assert_eq!(alerts.len(), 1);
    alerts.remove(0)
}

fn fields(name: &str) -> BTreeMap<String, String> {
    serde_json::from_slice(&fixture(DIR, name)).unwrap()
}

#[test]
fn critical_event_decodes_exactly() {
    let a = decode_one("event-critical.json");
    assert_eq!(a.source, SourceKind::Zenoss);
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("Critical"));
    assert_eq!(a.severity, Some(Severity::Critical));
    assert_eq!(
        a.summary,
        "Critical: db1.example.com/eth0 - Interface eth0 is down"
    );
    assert_eq!(a.dedup_hint, EVID);
    assert_eq!(a.entity.host.as_deref(), Some("db1.example.com"));
    assert_eq!(a.entity.service.as_deref(), Some("eth0"));
    assert_eq!(a.monitor_ref, MonitorRef::ZenossEvent { evid: EVID.into() });
    assert_eq!(a.routing_key.as_deref(), Some(KEY));
    assert_eq!(a.client.as_deref(), Some("Zenoss"));
    assert_eq!(a.author, None);
    assert_eq!(
        a.started_at,
        Some(Timestamp::new(1_795_248_600, 125_000_000).unwrap())
    );
    assert_eq!(
        a.occurred_at,
        Some(Timestamp::new(1_795_248_660, 500_000_000).unwrap())
    );
    assert_eq!(
        Value::Object(a.details),
        json!({
            "severity": "Critical",
            "eventState": "New",
            "summary": "Interface eth0 is down",
            "eventClass": "/Net/Link",
            "eventKey": "ifOperStatus_eth0",
            "eventClassKey": "linkDown",
            "message": "Interface eth0 is down (operational status 2, administrative status 1)\nlast change 12:00:00",
            "firstTime": 1795248600.125,
            "lastTime": 1795248660.5,
            "count": 3,
            "prodState": 1000,
            "DevicePriority": 3,
            "agent": "zenperfsnmp",
            "monitor": "localhost",
            "ipAddress": "10.0.0.5",
            "DeviceClass": "/Server/Linux",
            "Location": "/Berlin/DC1",
            "Systems": "|/Databases",
            "DeviceGroups": "|/Team DB"
        })
    );
}

#[test]
fn acknowledged_event_is_an_acknowledgement_by_its_owner() {
    let a = decode_one("event-acknowledged.json");
    assert_eq!(a.state, AlertState::Acknowledgement);
    assert_eq!(a.author.as_deref(), Some("alice"));
    assert_eq!(a.details["ownerid"], json!("alice"));
    assert_eq!(a.details["eventState"], json!("Acknowledged"));
    assert_eq!(a.dedup_hint, EVID);
}

#[test]
fn cleared_and_clear_events_are_recoveries() {
    let cleared = decode_one("event-cleared.json");
    assert_eq!(cleared.state, AlertState::Recovery);
    assert_eq!(cleared.dedup_hint, EVID, "the cleared event keeps its evid");
    assert_eq!(
        cleared.details["clearid"],
        json!("0242ac11-0002-8a3d-11ef-a6c1f3b2e001")
    );
    let clear = decode_one("event-clear.json");
    assert_eq!(clear.state, AlertState::Recovery);
    assert_eq!(clear.status.as_deref(), Some("Clear"));
    assert_eq!(clear.severity, None);
    assert_eq!(
        clear.summary,
        "Clear: db1.example.com/eth0 - Interface eth0 is up"
    );
}

#[test]
fn problem_acknowledgement_and_clearing_share_the_evid() {
    let hints: Vec<String> = [
        "event-critical.json",
        "event-acknowledged.json",
        "event-cleared.json",
    ]
    .into_iter()
    .map(|n| decode_one(n).dedup_hint)
    .collect();
    assert_eq!(hints, vec![EVID; 3]);
}

#[test]
fn every_severity_and_state() {
    let severities = [
        (0, "Clear", None, AlertState::Recovery),
        (1, "Debug", Some(Severity::Info), AlertState::Problem),
        (2, "Info", Some(Severity::Info), AlertState::Problem),
        (3, "Warning", Some(Severity::Warning), AlertState::Problem),
        (4, "Error", Some(Severity::Error), AlertState::Problem),
        (5, "Critical", Some(Severity::Critical), AlertState::Problem),
    ];
    for (n, name, severity, state) in severities {
        for given in [json!(n), json!(n.to_string()), json!(name.to_lowercase())] {
            let mut v = fixture_json(DIR, "event-critical.json");
            v["severity"] = given.clone();
            let a = &zenoss::decode(&serde_json::to_vec(&v).unwrap()).unwrap()[0];
            assert_eq!(a.status.as_deref(), Some(name), "{given}");
            assert_eq!(a.severity, severity, "{given}");
            assert_eq!(a.state, state, "{given}");
        }
    }
    let states = [
        (0, AlertState::Problem),
        (1, AlertState::Acknowledgement),
        (2, AlertState::Problem),
        (3, AlertState::Recovery),
        (4, AlertState::Recovery),
        (5, AlertState::Custom),
        (6, AlertState::Recovery),
    ];
    for (n, state) in states {
        let mut v = fixture_json(DIR, "event-critical.json");
        v["eventState"] = json!(n);
        let a = &zenoss::decode(&serde_json::to_vec(&v).unwrap()).unwrap()[0];
        assert_eq!(a.state, state, "{n}");
    }
}

#[test]
fn json_api_shapes_are_understood() {
    let alerts = zenoss::decode(&fixture(DIR, "jsonapi-events.json")).unwrap();
    assert_eq!(alerts.len(), 2);
    let a = &alerts[0];
    assert_eq!(a.entity.host.as_deref(), Some("web1.example.com"));
    assert_eq!(a.entity.service.as_deref(), Some("/var"));
    assert_eq!(a.status.as_deref(), Some("Error"));
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(
        a.summary,
        "Error: web1.example.com//var - disk space threshold: 92.1% used (18.4GB free)"
    );
    assert_eq!(
        a.routing_key.as_deref(),
        Some("ZENOSSWEBTEAMKEY0000000000000002")
    );
    // Local time text says no zone: kept as text, not guessed.
    assert_eq!(a.started_at, None);
    assert_eq!(a.details["firstTime"], json!("2026/11/21 08:00:00.000"));
    assert_eq!(
        a.details["eventClass"],
        json!({"text": "/Perf/Filesystem", "uid": "/zport/dmd/Events/Perf/Filesystem"})
    );
    let b = &alerts[1];
    assert_eq!(b.state, AlertState::Acknowledgement);
    assert_eq!(b.author.as_deref(), Some("bob"));
    assert_eq!(b.entity.service, None, "an empty component is no component");
    assert_eq!(b.routing_key, None);
    assert_eq!(
        b.summary,
        "Critical: web2.example.com - web2.example.com is DOWN!"
    );
}

#[test]
fn command_fields_give_the_same_alert_as_json() {
    let from_fields = zenoss::decode_fields(&fields("command-fields.json")).unwrap();
    assert_eq!(from_fields.state, AlertState::Problem);
    assert_eq!(from_fields.dedup_hint, EVID);
    assert_eq!(from_fields.routing_key.as_deref(), Some(KEY));
    assert_eq!(
        from_fields.started_at,
        Some(Timestamp::new(1_795_248_600, 125_000_000).unwrap())
    );
    let from_json = decode_one("event-critical.json");
    assert_eq!(from_fields.summary, from_json.summary);
    assert_eq!(from_fields.entity, from_json.entity);
    assert_eq!(from_fields.monitor_ref, from_json.monitor_ref);
    assert_eq!(from_fields.severity, from_json.severity);
    // The clear command repeats the event's fields and adds eventState=Cleared.
    let mut clear = fields("command-fields.json");
    clear.insert("eventState".into(), "Cleared".into());
    assert_eq!(
        zenoss::decode_fields(&clear).unwrap().state,
        AlertState::Recovery
    );
    // Field names as people type them on a command line.
    let mut lower = BTreeMap::new();
    lower.insert("EVID".to_owned(), "x1".to_owned());
    lower.insert("eventstate".to_owned(), "acknowledged".to_owned());
    lower.insert("pdservicekey".to_owned(), KEY.to_owned());
    let a = zenoss::decode_fields(&lower).unwrap();
    assert_eq!(a.dedup_hint, "x1");
    assert_eq!(a.state, AlertState::Acknowledgement);
    assert_eq!(a.routing_key.as_deref(), Some(KEY));
    assert_eq!(a.summary, "Event: event x1");
}

#[test]
fn zep_milliseconds_are_understood() {
    let mut v = fixture_json(DIR, "event-critical.json");
    v["firstTime"] = json!(1_795_248_600_125_u64);
    let a = &zenoss::decode(&serde_json::to_vec(&v).unwrap()).unwrap()[0];
    assert_eq!(
        a.started_at,
        Some(Timestamp::new(1_795_248_600, 125_000_000).unwrap())
    );
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"device": "db1"}), "evid"),
        (json!({"evid": ""}), "evid"),
        (json!({"evid": [1]}), "evid"),
        (json!({"evid": "1", "severity": 6}), "severity"),
        (json!({"evid": "1", "severity": "Major"}), "severity"),
        (json!({"evid": "1", "eventState": 9}), "eventState"),
        (json!({"evid": "1", "device": {"uid": "/x"}}), "device"),
        (json!({"evid": "1", "pdServiceKey": true}), "pdServiceKey"),
        (
            json!([{"evid": "1"}, {"evid": "2", "severity": -1}]),
            "[1].severity",
        ),
        (json!([{"evid": "1"}, 7]), "[1]"),
        (json!(7), ""),
    ];
    for (v, field) in cases {
        let e = zenoss::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e.field, field, "{v}: {e}");
    }
    let e = zenoss::decode_fields(&BTreeMap::new()).unwrap_err();
    assert_eq!(e.field, "evid");
    let e = zenoss::decode_fields(
        &[
            ("evid".to_owned(), "1".to_owned()),
            ("severity".to_owned(), "loud".to_owned()),
        ]
        .into(),
    )
    .unwrap_err();
    assert_eq!(e.field, "severity");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = zenoss::decode(&body);
    }

    #[test]
    fn arbitrary_fields_never_panic(
        fields in proptest::collection::btree_map("[a-zA-Z]{0,12}", "[ -~]{0,24}", 0..10)
    ) {
        let _ = zenoss::decode_fields(&fields);
    }

    /// Fixtures with fields dropped or replaced by other types: an alert or an error that names
    /// a field, never a panic.
    #[test]
    fn mutated_fixtures_decode_or_name_the_field(
        pick in 0usize..4,
        edits in proptest::collection::vec((0usize..40, 0u8..2, 0usize..9), 1..6),
    ) {
        let name = ["event-critical", "event-acknowledged", "event-cleared", "event-clear"][pick];
        let mut v = fixture_json(DIR, &format!("{name}.json"));
        let junks = [json!(null), json!(7), json!(-1), json!(2.5), json!(true), json!(""), json!("Warning"), json!([1]), json!({"text": 3})];
        for (key, op, junk) in edits {
            let obj = v.as_object_mut().unwrap();
            let keys: Vec<String> = obj.keys().cloned().collect();
            if keys.is_empty() {
                break;
            }
            let k = &keys[key % keys.len()];
            common::remove_or_replace(obj, k, (op != 0).then_some(&junks[junk]));
        }
        match zenoss::decode(&serde_json::to_vec(&v).unwrap()) {
            Ok(alerts) => prop_assert_eq!(alerts.len(), 1),
            Err(e) => prop_assert!(!e.field.is_empty(), "{}", e),
        }
    }
}
