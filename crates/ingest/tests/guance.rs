//! The Guance decoder against a real monitor webhook (the payload of Guance's own PagerDuty
//! integration guide), the recovery constructed from it, and arbitrary input.

mod common;

use std::collections::BTreeMap;

use common::{Edit, fixture, fixture_json};
use jiff::Timestamp;
use pagerbridge_ingest::guance;
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::Severity;
use proptest::prelude::*;
use serde_json::{Value, json};

const DIR: &str = "guance";

fn decode_value(v: &Value) -> Result<Alert, pagerbridge_ingest::DecodeError> {
    guance::decode(&serde_json::to_vec(v).unwrap()).map(|mut a| {
        assert_eq!(a.len(), 1);
        a.remove(0)
    })
}

const EVENT_REF: &str = "13713ac25e993a37d2ca5899e2a7bba6";

#[test]
fn captured_critical_event_becomes_a_problem() {
    let alerts = guance::decode(&fixture(DIR, "monitor-webhook-critical.json")).unwrap();
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
    let mut details = fixture_json(DIR, "monitor-webhook-critical.json");
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
    let critical = decode_value(&fixture_json(DIR, "monitor-webhook-critical.json")).unwrap();
    let ok = decode_value(&fixture_json(DIR, "monitor-webhook-ok.json")).unwrap();
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
        let mut v = fixture_json(DIR, "monitor-webhook-critical.json");
        v["df_status"] = json!(status);
        let a = decode_value(&v).unwrap();
        assert_eq!((a.state, a.severity), (state, severity), "{status}");
        assert_eq!(a.status.as_deref(), Some(status));
    }
    assert_eq!(guance::NODATA_SEVERITY, Severity::Error);
}

#[test]
fn fallbacks_for_identity_host_client_and_times() {
    let mut v = fixture_json(DIR, "monitor-webhook-critical.json");
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
    common::assert_edits_fail(
        &fixture_json(DIR, "monitor-webhook-critical.json"),
        cases,
        guance::decode,
    );
    let err = guance::decode(b"df_status=ok").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");
}

/// The snippets the documentation shows are the files the end-to-end tests load.
#[test]
fn docs_include_the_snippet_files_verbatim() {
    common::assert_page_shows_snippets(
        "guance.md",
        &["guance-webhook.txt", "guance-pagerbridge.toml"],
    );
    common::documented_sources("guance-pagerbridge.toml", "guance");
}

// ---- never a panic ----

fn arb_json() -> impl Strategy<Value = Value> {
    common::arb_json(vec![
        json!("ok"),
        json!("nodata"),
        json!("1693034940"),
        json!(1e300),
        json!(-1e300),
        json!("{\"host\":\"h\"}"),
    ])
}

fn check_never_panics(body: &[u8]) -> Result<(), TestCaseError> {
    common::object_errors_name_a_field(body, guance::decode(body))
}

const FIXTURES: [&str; 2] = ["monitor-webhook-critical.json", "monitor-webhook-ok.json"];

common::never_panic_properties!(check_never_panics, arb_json(), DIR, FIXTURES);
