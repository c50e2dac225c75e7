//! The Zabbix decoder against the bodies the shipped media type builds. The fixtures were made
//! by running the media type's own script (`node contrib/zabbix/selftest.js`) on constructed
//! macro values: the script is real, the Zabbix around it is a stand-in.

mod common;

use common::{Edit, fixture, fixture_json, labels};
use jiff::Timestamp;
use pagerbridge_ingest::zabbix;
use pagerbridge_ingest::{Alert, AlertState, MonitorRef, SourceKind};
use pagerduty::events::{Link, Severity};
use proptest::prelude::*;
use serde_json::{Value, json};

const DIR: &str = "zabbix";

fn decode_one(body: &[u8]) -> Alert {
    let mut alerts = zabbix::decode(body).unwrap();
    assert_eq!(alerts.len(), 1);
    alerts.remove(0)
}

fn decode_value(v: &Value) -> Result<Vec<Alert>, pagerbridge_ingest::DecodeError> {
    zabbix::decode(&serde_json::to_vec(v).unwrap())
}

#[test]
fn problem_decodes_exactly() {
    let a = decode_one(&fixture(DIR, "problem.json"));
    assert_eq!(a.source, SourceKind::Zabbix);
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("High"));
    assert_eq!(a.severity, Some(Severity::Error));
    assert_eq!(a.summary, "db1: High CPU utilization (over 90% for 5m)");
    assert_eq!(a.dedup_hint, "5021");
    assert_eq!(a.entity.host.as_deref(), Some("db1"));
    assert_eq!(
        a.entity.service.as_deref(),
        Some("High CPU utilization (over 90% for 5m)")
    );
    assert_eq!(
        a.entity.labels,
        labels(&[
            ("class", "os"),
            ("component", "cpu,load"),
            ("scope", "performance")
        ])
    );
    assert_eq!(
        a.monitor_ref,
        MonitorRef::ZabbixEvent {
            event_id: "5021".into(),
            trigger_id: Some("17500".into())
        }
    );
    assert_eq!(
        a.routing_key.as_deref(),
        Some("abcdefabcdefabcdefabcdefabcdef12")
    );
    assert_eq!(a.client.as_deref(), Some("Zabbix"));
    let url = "https://zabbix.example.com/tr_events.php?triggerid=17500&eventid=5021";
    assert_eq!(a.client_url.as_deref(), Some(url));
    assert_eq!(
        a.links,
        vec![Link {
            href: url.into(),
            text: Some("Zabbix event".into())
        }]
    );
    assert_eq!(
        a.source_instance.as_deref(),
        Some("https://zabbix.example.com")
    );
    assert_eq!(
        a.started_at,
        Some(Timestamp::from_second(1_795_248_600).unwrap())
    );
    assert_eq!(
        a.occurred_at,
        Some(Timestamp::from_second(1_795_248_601).unwrap())
    );
    assert_eq!(a.author, None);
    assert_eq!(a.comment, None);
    assert_eq!(
        Value::Object(a.details),
        json!({
            "event": {
                "id": "5021",
                "value": "1",
                "name": "High CPU utilization (over 90% for 5m)",
                "severity": "High",
                "nseverity": 4,
                "source": "0",
                "date": "2026.11.21",
                "time": "08:10:00",
                "opdata": "Current utilization: 97.3 %",
                "acknowledged": "No",
                "status": "PROBLEM",
                "age": "0m"
            },
            "trigger": {
                "id": "17500",
                "name": "High CPU utilization (over 90% for 5m)",
                "description": "CPU utilization is too high. The system might be slow to respond."
            },
            "host": {"name": "db1", "host": "db1.example.com", "ip": "10.0.0.5"},
            "tags": [
                {"tag": "class", "value": "os"},
                {"tag": "component", "value": "cpu"},
                {"tag": "scope", "value": "performance"},
                {"tag": "component", "value": "load"}
            ],
            "items": [{"name": "CPU utilization", "key": "system.cpu.util", "value": "97.3 %"}]
        })
    );
}

#[test]
fn acknowledgement_update_carries_user_and_message() {
    let a = decode_one(&fixture(DIR, "update_acknowledge.json"));
    assert_eq!(a.state, AlertState::Acknowledgement);
    assert_eq!(a.author.as_deref(), Some("Alice Admin (alice)"));
    assert_eq!(a.comment.as_deref(), Some("Looking into it, see INC-42"));
    assert_eq!(a.dedup_hint, "5021");
    assert_eq!(
        a.details["event"]["update"],
        json!({
            "action": "acknowledged, commented",
            "message": "Looking into it, see INC-42",
            "user": "Alice Admin (alice)",
            "date": "2026.11.21",
            "time": "08:14:12"
        })
    );
}

#[test]
fn other_updates_are_information() {
    let a = decode_one(&fixture(DIR, "update_comment.json"));
    assert_eq!(a.state, AlertState::Custom);
    assert_eq!(a.author.as_deref(), Some("Bob Ops (bob)"));
    assert_eq!(
        a.comment.as_deref(),
        Some("Load is from the nightly backup")
    );
    for (action, state) in [
        ("unacknowledged", AlertState::Custom),
        ("changed severity from Warning to High", AlertState::Custom),
        ("closed", AlertState::Custom),
        ("commented, acknowledged", AlertState::Acknowledgement),
        ("Acknowledged", AlertState::Acknowledgement),
    ] {
        let mut v = fixture_json(DIR, "update_comment.json");
        v["event"]["update"]["action"] = json!(action);
        assert_eq!(decode_value(&v).unwrap()[0].state, state, "{action}");
    }
    // Without the action text, the acknowledgement status decides (as Zabbix's own media
    // type does).
    let mut v = fixture_json(DIR, "update_acknowledge.json");
    v["event"]["update"]["action"] = json!("");
    assert_eq!(
        decode_value(&v).unwrap()[0].state,
        AlertState::Acknowledgement
    );
    v["event"]["acknowledged"] = json!("No");
    assert_eq!(decode_value(&v).unwrap()[0].state, AlertState::Custom);
}

#[test]
fn recovery_carries_the_problem_event_id() {
    let a = decode_one(&fixture(DIR, "recovery.json"));
    assert_eq!(a.state, AlertState::Recovery);
    assert_eq!(a.dedup_hint, "5021");
    assert_eq!(
        a.monitor_ref,
        MonitorRef::ZabbixEvent {
            event_id: "5021".into(),
            trigger_id: Some("17500".into())
        }
    );
    assert_eq!(
        a.details["event"]["recovery"],
        json!({"id": "5034", "date": "2026.11.21", "time": "08:20:00"})
    );
    assert_eq!(a.author, None, "a recovery is no update");
}

#[test]
fn one_problem_keeps_one_dedup_hint() {
    let hints: Vec<String> = [
        "problem.json",
        "update_acknowledge.json",
        "update_comment.json",
        "recovery.json",
    ]
    .into_iter()
    .map(|n| decode_one(&fixture(DIR, n)).dedup_hint)
    .collect();
    assert_eq!(hints, vec!["5021"; 4]);
}

#[test]
fn every_nseverity_maps_to_its_pagerduty_severity() {
    let cases = [
        ("0", "Not classified", Severity::Info),
        ("1", "Information", Severity::Info),
        ("2", "Warning", Severity::Warning),
        ("3", "Average", Severity::Warning),
        ("4", "High", Severity::Error),
        ("5", "Disaster", Severity::Critical),
    ];
    for (n, name, severity) in cases {
        let mut v = fixture_json(DIR, "problem.json");
        v["event"]["nseverity"] = json!(n);
        v["event"]["severity"] = json!("");
        let a = &decode_value(&v).unwrap()[0];
        assert_eq!(a.severity, Some(severity), "{n}");
        assert_eq!(a.status.as_deref(), Some(name), "{n}");
    }
    // A renamed severity keeps its name as the status; the number decides the severity.
    let mut v = fixture_json(DIR, "problem.json");
    v["event"]["severity"] = json!("Sev-1");
    v["event"]["nseverity"] = json!(5);
    let a = &decode_value(&v).unwrap()[0];
    assert_eq!(a.status.as_deref(), Some("Sev-1"));
    assert_eq!(a.severity, Some(Severity::Critical));
}

#[test]
fn unresolved_macros_and_text_tags_are_understood() {
    let v = json!({
        "event": {"id": 77, "value": 1, "name": "{EVENT.NAME}", "nseverity": "{EVENT.NSEVERITY}",
                  "tags": "service:db, env: prod, solo", "timestamp": "{EVENT.TIMESTAMP}"},
        "trigger": {"id": "{TRIGGER.ID}", "name": "Disk full"},
        "host": {"name": "", "host": "db2"},
        "routing_key": "{ALERT.SENDTO}",
        "zabbix_url": "{$ZABBIX.URL}"
    });
    let a = &decode_value(&v).unwrap()[0];
    assert_eq!(a.dedup_hint, "77");
    assert_eq!(a.summary, "db2: Disk full");
    assert_eq!(a.severity, None);
    assert_eq!(a.routing_key, None);
    assert_eq!(a.client_url, None);
    assert_eq!(a.started_at, None);
    assert_eq!(
        a.monitor_ref,
        MonitorRef::ZabbixEvent {
            event_id: "77".into(),
            trigger_id: None
        }
    );
    assert_eq!(a.entity.labels["service"], "db");
    assert_eq!(a.entity.labels["env"], "prod");
    assert_eq!(a.entity.labels["solo"], "");
}

#[test]
fn arrays_of_notifications_decode_in_order() {
    let v = json!([
        fixture_json(DIR, "problem.json"),
        fixture_json(DIR, "recovery.json")
    ]);
    let alerts = decode_value(&v).unwrap();
    assert_eq!(
        alerts.iter().map(|a| a.state).collect::<Vec<_>>(),
        [AlertState::Problem, AlertState::Recovery]
    );
    let e = decode_value(&json!([fixture_json(DIR, "problem.json"), 3])).unwrap_err();
    assert_eq!(e.field, "[1]");
}

#[test]
fn errors_name_the_field() {
    let cases: [(&str, Edit); 9] = [
        (
            "event",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("event"))),
        ),
        ("event.id", Box::new(|v| v["event"]["id"] = json!(""))),
        (
            "event.value",
            Box::new(|v| v["event"]["value"] = json!("2")),
        ),
        (
            "event.value",
            Box::new(|v| drop(v["event"].as_object_mut().unwrap().remove("value"))),
        ),
        (
            "event.nseverity",
            Box::new(|v| v["event"]["nseverity"] = json!("6")),
        ),
        (
            "event.update.status",
            Box::new(|v| v["event"]["update"]["status"] = json!("yes")),
        ),
        (
            "event.tags[1].tag",
            Box::new(|v| v["event"]["tags"][1] = json!({"value": "x"})),
        ),
        ("host", Box::new(|v| v["host"] = json!("db1"))),
        ("sent_at", Box::new(|v| v["sent_at"] = json!("soon"))),
    ];
    for (field, mutate) in cases {
        let mut v = fixture_json(DIR, "problem.json");
        mutate(&mut v);
        let e = decode_value(&v).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    assert_eq!(zabbix::decode(b"\"text\"").unwrap_err().field, "");
    assert!(zabbix::decode(b"{").is_err());
}

const SELFTEST: &str = "contrib/zabbix/selftest.js";

/// Runs the shipped media type's script under node with a stand-in Zabbix, when node is
/// installed: the fixtures must be what the script builds today.
#[test]
fn media_type_script_still_builds_the_fixtures() {
    let Some(runs) = common::script_json("node", SELFTEST) else {
        return;
    };
    for run in runs.as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        assert_eq!(run["result"], "OK", "{name}: {run}");
        let request = &run["requests"][0];
        assert_eq!(
            request["headers"],
            json!(["Content-Type: application/json"])
        );
        let mut built = request["body"].clone();
        let mut expected = fixture_json(DIR, &format!("{name}.json"));
        built.as_object_mut().unwrap().remove("sent_at");
        expected.as_object_mut().unwrap().remove("sent_at");
        assert_eq!(built, expected, "{name}");
    }
    // A failed delivery must fail the notification, so Zabbix retries it.
    let out = common::run_script("node", SELFTEST, &["--status", "503"]).unwrap();
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    for run in runs.as_array().unwrap() {
        assert!(run["error"].as_str().unwrap().contains("HTTP 503"), "{run}");
    }
}

fn mutate(v: &mut Value, path: &[String], op: u8, junk: &Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(obj) = cur.as_object_mut() {
        common::remove_or_replace(obj, last, (op != 0).then_some(junk));
    }
}

fn all_paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let mut p = prefix.clone();
            p.push(k.clone());
            out.push(p.clone());
            all_paths(child, p, out);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = zabbix::decode(&body);
    }

    /// Fixtures with fields dropped or replaced by other types: an alert or an error that names
    /// a field, never a panic.
    #[test]
    fn mutated_fixtures_decode_or_name_the_field(
        pick in 0usize..4,
        edits in proptest::collection::vec((0usize..200, 0u8..2, 0usize..7), 1..5),
    ) {
        let name = ["problem", "update_acknowledge", "update_comment", "recovery"][pick];
        let mut v = fixture_json(DIR, &format!("{name}.json"));
        let junks = [json!(null), json!(7), json!(-1.5), json!(true), json!([1, "a"]), json!({"x": 1}), json!("{EVENT.ID}")];
        for (at, op, junk) in edits {
            let mut paths = Vec::new();
            all_paths(&v, Vec::new(), &mut paths);
            if paths.is_empty() {
                break;
            }
            let path = paths[at % paths.len()].clone();
            mutate(&mut v, &path, op, &junks[junk]);
        }
        match decode_value(&v) {
            Ok(alerts) => prop_assert_eq!(alerts.len(), 1),
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }
}
