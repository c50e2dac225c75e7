//! The Guance decoder against a real monitor webhook (the payload of Guance's own PagerDuty
//! integration guide), the recovery constructed from it, and arbitrary input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use pagerbridge_ingest::guance;
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::Severity;
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/guance")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// A change to a fixture, for tables of cases.
type Edit = Box<dyn Fn(&mut Value)>;

fn decode_value(v: &Value) -> Result<Alert, pagerbridge_ingest::DecodeError> {
    guance::decode(&serde_json::to_vec(v).unwrap()).map(|mut a| {
        assert_eq!(a.len(), 1);
        a.remove(0)
    })
}

const EVENT_REF: &str = "13713ac25e993a37d2ca5899e2a7bba6";

#[test]
fn captured_critical_event_becomes_a_problem() {
    let alerts = guance::decode(&fixture("monitor-webhook-critical.json")).unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    let mut expected = Alert::new(
        SourceKind::Guance,
        AlertState::Problem,
        "实例名称为 share 磁盘使用率过高",
        EVENT_REF,
    );
    expected.source_instance = Some("wksp_968577392a1c4714a464cd2f6ee42a9c".into());
    expected.entity = Entity {
        host: Some("share".into()),
        service: Some("实例名称为 {host} 磁盘使用率过高".into()),
        labels: BTreeMap::from([("host".to_string(), "share".to_string())]),
    };
    expected.status = Some("critical".into());
    expected.severity = Some(Severity::Critical);
    // Everything the monitor said, structured: the JSON-in-a-string fields parsed.
    let mut details = fixture_json("monitor-webhook-critical.json");
    details["df_dimension_tags"] = json!({"host": "share"});
    details["df_label"] = json!([]);
    expected.details = details.as_object().unwrap().clone();
    expected.occurred_at = Some(Timestamp::from_second(1693034940).unwrap());
    expected.started_at = Some(Timestamp::from_second(1693031100).unwrap());
    expected.monitor_ref = MonitorRef::GuanceEvent {
        event_ref: EVENT_REF.into(),
        event_id: Some("event-f20a38aa58b54c6c8d4c9a84e655db1a".into()),
    };
    expected.client = Some("Guance observer".into());
    expected.client_url = Some("https://console.guance.com/keyevents/monitor?time=1693034040000%2C1693035000000&tags=%7B%22df_event_id%22%3A%22event-f20a38aa58b54c6c8d4c9a84e655db1a%22%7D&w=wksp_968577392a1c4714a464cd2f6ee42a9c".into());
    assert_eq!(a, &expected);
    assert_eq!(
        a.details.keys().next().map(String::as_str),
        Some("df_message"),
        "the message leads the details"
    );
    assert_eq!(
        a.details["df_message"],
        ">等级：critical    \n>实例：share    \n>内容：磁盘使用率为 100.00%    \n>建议：登录华为云控制台查看 RDS 是否有异常"
    );
}

#[test]
fn ok_event_resolves_the_same_problem() {
    let critical = decode_value(&fixture_json("monitor-webhook-critical.json")).unwrap();
    let ok = decode_value(&fixture_json("monitor-webhook-ok.json")).unwrap();
    assert_eq!(ok.state, AlertState::Recovery);
    assert_eq!(ok.dedup_hint, critical.dedup_hint);
    assert_eq!(ok.severity, None);
    assert_eq!(ok.status.as_deref(), Some("ok"));
    assert_eq!(
        ok.monitor_ref,
        MonitorRef::GuanceEvent {
            event_ref: EVENT_REF.into(),
            event_id: Some("event-5c1d9e0b7a2f4e6d8b3c1a0f9e8d7c6b".into()),
        }
    );
    assert_eq!(
        ok.occurred_at,
        Some(Timestamp::from_second(1693035240).unwrap())
    );
}

#[test]
fn statuses_map_to_states_and_severities() {
    for (status, state, severity) in [
        ("critical", AlertState::Problem, Some(Severity::Critical)),
        ("error", AlertState::Problem, Some(Severity::Error)),
        ("warning", AlertState::Problem, Some(Severity::Warning)),
        ("info", AlertState::Problem, Some(Severity::Info)),
        ("nodata", AlertState::Problem, Some(guance::NODATA_SEVERITY)),
        ("OK", AlertState::Recovery, None),
        ("something_new", AlertState::Problem, None),
    ] {
        let mut v = fixture_json("monitor-webhook-critical.json");
        v["df_status"] = json!(status);
        let a = decode_value(&v).unwrap();
        assert_eq!((a.state, a.severity), (state, severity), "{status}");
        assert_eq!(a.status.as_deref(), Some(status));
    }
    assert_eq!(guance::NODATA_SEVERITY, Severity::Error);
}

#[test]
fn fallbacks_for_identity_host_client_and_times() {
    let mut v = fixture_json("monitor-webhook-critical.json");
    let o = v.as_object_mut().unwrap();
    o.remove("df_monitor_checker_event_ref");
    o.remove("host");
    o.remove("workspace_name");
    o.remove("date");
    o.insert("timestamp".into(), json!("1693034999"));
    let a = decode_value(&v).unwrap();
    assert_eq!(a.dedup_hint, "event-f20a38aa58b54c6c8d4c9a84e655db1a");
    assert_eq!(
        a.entity.host.as_deref(),
        Some("share"),
        "from the dimension tags"
    );
    assert_eq!(
        a.client.as_deref(),
        Some("Guance observer"),
        "df_workspace_name"
    );
    assert_eq!(
        a.occurred_at,
        Some(Timestamp::from_second(1693034999).unwrap())
    );

    let o = v.as_object_mut().unwrap();
    o.remove("df_workspace_name");
    o.insert("df_dimension_tags".into(), json!("not json {"));
    o.remove("df_title");
    let a = decode_value(&v).unwrap();
    assert_eq!(a.client.as_deref(), Some("Guance"));
    assert_eq!(a.entity.host, None);
    assert!(a.entity.labels.is_empty());
    assert_eq!(a.details["df_dimension_tags"], "not json {", "kept as sent");
    assert_eq!(
        a.summary, "实例名称为 {host} 磁盘使用率过高",
        "checker name"
    );

    v.as_object_mut().unwrap().remove("df_event_id");
    let err = decode_value(&v).unwrap_err();
    assert_eq!(err.field, "df_monitor_checker_event_ref");
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "no status",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("df_status");
            }),
            "df_status",
            "missing",
        ),
        (
            "status a number",
            Box::new(|v| v["df_status"] = json!(3)),
            "df_status",
            "expected a string",
        ),
        (
            "date an object",
            Box::new(|v| v["date"] = json!({})),
            "date",
            "epoch seconds",
        ),
        (
            "date words",
            Box::new(|v| v["date"] = json!("today")),
            "date",
            "epoch seconds",
        ),
        (
            "date huge",
            Box::new(|v| v["date"] = json!(1e300)),
            "date",
            "out of range",
        ),
        (
            "title a list",
            Box::new(|v| v["df_title"] = json!([])),
            "df_title",
            "expected a string",
        ),
        (
            "link a number",
            Box::new(|v| v["df_event_link"] = json!(1)),
            "df_event_link",
            "expected a string",
        ),
    ];
    for (what, mutate, field, message) in cases {
        let mut v = fixture_json("monitor-webhook-critical.json");
        mutate(&mut v);
        let err = decode_value(&v).unwrap_err();
        assert_eq!(err.field, field, "{what}: {err}");
        assert!(err.message.contains(message), "{what}: {err}");
    }
    let err = guance::decode(b"df_status=ok").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");
}

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The snippets the documentation shows are the files the end-to-end tests load.
#[test]
fn docs_include_the_snippet_files_verbatim() {
    let doc = repo_file("docs/integrations/guance.md");
    for snippet in ["guance-webhook.txt", "guance-pagerbridge.toml"] {
        let text = repo_file(&format!("docs/integrations/snippets/{snippet}"));
        assert!(doc.contains(&text), "guance.md lacks {snippet} verbatim");
    }
    let cfg: toml::Table = toml::from_str(&repo_file(
        "docs/integrations/snippets/guance-pagerbridge.toml",
    ))
    .unwrap();
    assert_eq!(cfg["sources"][0]["kind"].as_str(), Some("guance"));
}

// ---- never a panic ----

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9:/._ -]{0,12}".prop_map(Value::String),
        Just(json!("ok")),
        Just(json!("nodata")),
        Just(json!("1693034940")),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!("{\"host\":\"h\"}")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

/// Removes (`None`) or replaces the node picked by `pick` among all nodes of `v`.
fn mutate(v: &mut Value, pick: usize, with: Option<Value>) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let p = &all[pick % all.len()];
    match with {
        Some(new) => {
            if let Some(slot) = v.pointer_mut(p) {
                *slot = new;
            }
        }
        None => {
            let (parent, last) = p.rsplit_once('/').unwrap();
            let last = last.replace("~1", "/").replace("~0", "~");
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

fn check_never_panics(body: &[u8]) -> Result<(), TestCaseError> {
    let is_object = matches!(serde_json::from_slice::<Value>(body), Ok(Value::Object(_)));
    if let Err(e) = guance::decode(body) {
        prop_assert!(
            !is_object || !e.field.is_empty(),
            "an error about an object names a field: {e}"
        );
    }
    Ok(())
}

const FIXTURES: [&str; 2] = ["monitor-webhook-critical.json", "monitor-webhook-ok.json"];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_never_panics(&body)?;
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        check_never_panics(&serde_json::to_vec(&v).unwrap())?;
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec((any::<usize>(), prop::option::of(arb_json())), 1..5),
    ) {
        let mut v = fixture_json(FIXTURES[which]);
        for (pick, with) in edits {
            mutate(&mut v, pick, with);
        }
        check_never_panics(&serde_json::to_vec(&v).unwrap())?;
    }
}
