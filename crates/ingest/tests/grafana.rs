//! The Grafana decoder against the example payload of Grafana's webhook documentation, payloads
//! constructed from it (resolved; image, links and `valueString`), and arbitrary input.

mod common;

use common::{Edit, fixture, fixture_json, labels};
use pagerbridge_ingest::grafana;
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::{Image, Link, Severity};
use proptest::prelude::*;
use serde_json::{Value, json};

const DIR: &str = "grafana";

fn link(href: &str, text: &str) -> Link {
    Link {
        href: href.into(),
        text: Some(text.into()),
    }
}

#[test]
fn documented_payload_gives_one_alert_per_grafana_alert() {
    let alerts = grafana::decode(&fixture(DIR, "webhook-firing.json")).unwrap();
    assert_eq!(alerts.len(), 2);
    let memory_labels = labels(&[
        ("alertname", "High memory usage"),
        ("team", "blue"),
        ("zone", "us-1"),
    ]);
    let started = "2021-10-12T09:51:03.157076+02:00".parse().unwrap();
    let mut expected = Alert::new(
        SourceKind::Grafana,
        AlertState::Problem,
        "This alert was triggered for zone us-1",
        "c6eadffa33fcdf37",
    );
    expected.source_instance = Some("https://play.grafana.org/".into());
    expected.entity = Entity {
        host: None,
        service: Some("High memory usage".into()),
        labels: memory_labels.clone(),
    };
    expected.status = Some("firing".into());
    expected.details = json!({
        "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
        "annotations": {
            "description": "The system has high memory usage",
            "runbook_url": "https://myrunbook.com/runbook/1234",
            "summary": "This alert was triggered for zone us-1"
        },
        "status": "firing",
        "startsAt": "2021-10-12T09:51:03.157076+02:00",
        "fingerprint": "c6eadffa33fcdf37",
        "values": {"B": 44.23943737541908, "C": 1}
    })
    .as_object()
    .unwrap()
    .clone();
    expected.links = vec![
        link(
            "https://play.grafana.org/alerting/1afz29v7z/edit",
            "Alert rule",
        ),
        link(
            "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "Silence",
        ),
        link("https://myrunbook.com/runbook/1234", "Runbook"),
    ];
    expected.started_at = Some(started);
    expected.occurred_at = Some(started);
    expected.monitor_ref = MonitorRef::GrafanaAlert {
        fingerprint: "c6eadffa33fcdf37".into(),
        labels: memory_labels,
    };
    expected.client = Some("Grafana".into());
    expected.client_url = Some("https://play.grafana.org/".into());
    assert_eq!(alerts[0], expected);

    assert_eq!(alerts[1].dedup_hint, "bc97ff14869b13e3");
    assert_eq!(alerts[1].summary, "This alert was triggered for zone eu-1");
    assert_eq!(alerts[1].entity.service.as_deref(), Some("High CPU usage"));
    assert!(alerts[1].details["values"]["B"].is_f64());
}

#[test]
fn resolved_shares_the_dedup_hint_with_firing() {
    let firing = grafana::decode(&fixture(DIR, "webhook-firing.json")).unwrap();
    let resolved = grafana::decode(&fixture(DIR, "webhook-resolved.json")).unwrap();
    assert_eq!(resolved.len(), 1);
    let r = &resolved[0];
    assert_eq!(r.state, AlertState::Recovery);
    assert_eq!(r.dedup_hint, firing[0].dedup_hint);
    assert_eq!(r.monitor_ref, firing[0].monitor_ref);
    assert_eq!(r.details["endsAt"], "2021-10-12T10:06:03.157076+02:00");
    assert_eq!(
        r.occurred_at,
        Some("2021-10-12T10:06:03.157076+02:00".parse().unwrap())
    );
    assert_eq!(r.details["values"], json!({"B": 12.5, "C": 0}));

    // A repeat with other values and annotations is still the same problem.
    let mut v = fixture_json(DIR, "webhook-firing.json");
    v["alerts"][0]["values"] = json!({"B": 99.9, "C": 1});
    v["alerts"][0]["annotations"]["summary"] = json!("worse now");
    let again = grafana::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(again[0].dedup_hint, firing[0].dedup_hint);
    assert_eq!(again[0].summary, "worse now");
}

#[test]
fn images_links_and_value_strings() {
    let alerts = grafana::decode(&fixture(DIR, "webhook-firing-image.json")).unwrap();
    let a = &alerts[0];
    assert_eq!(a.entity.host.as_deref(), Some("web-1"));
    assert_eq!(a.severity, Some(Severity::Warning));
    assert_eq!(a.status.as_deref(), Some("warning"));
    assert_eq!(
        a.images,
        vec![Image {
            src: "https://grafana.example.com/public/img/attachments/abc123.png".into(),
            href: Some("https://grafana.example.com/d/node01?orgId=1&viewPanel=7".into()),
            alt: Some("Disk /var on web-1 is 93% full".into()),
        }]
    );
    assert_eq!(
        a.links,
        vec![
            link(
                "https://grafana.example.com/alerting/grafana/cdisk01/view?orgId=1",
                "Alert rule"
            ),
            link("https://grafana.example.com/d/node01?orgId=1", "Dashboard"),
            link(
                "https://grafana.example.com/d/node01?orgId=1&viewPanel=7",
                "Panel"
            ),
            link(
                "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=__alert_rule_uid__%3Dcdisk01&matcher=instance%3Dweb-1%3A9100",
                "Silence"
            ),
        ]
    );
    // Older Grafana sends only valueString: its numbers become numbers.
    assert_eq!(a.details["values"], json!({"A": 93.12, "B": 1.0}));
    assert_eq!(
        a.details["valueString"],
        "[ var='A' labels={instance=web-1:9100} value=93.12 ], [ var='B' labels={instance=web-1:9100} value=1 ]"
    );

    let b = &alerts[1];
    assert!(b.images.is_empty(), "PagerDuty shows only https images");
    assert_eq!(
        b.links.last(),
        Some(&link(
            "http://grafana.internal:3000/public/img/attachments/def456.png",
            "Image"
        ))
    );
    assert_eq!((b.severity, b.status.as_deref()), (None, Some("page")));
    assert_eq!(b.summary, "Disk /var on web-2 is 97% full");
    assert_eq!(b.details["values"], json!({"A": 97.4, "B": 1}));
    assert!(!b.details.contains_key("valueString"));
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "version 2",
            Box::new(|v| v["version"] = json!("2")),
            "version",
            "unsupported",
        ),
        (
            "values not an object",
            Box::new(|v| v["alerts"][1]["values"] = json!([1, 2])),
            "alerts[1].values",
            "expected an object",
        ),
        (
            "imageURL not a string",
            Box::new(|v| v["alerts"][0]["imageURL"] = json!(5)),
            "alerts[0].imageURL",
            "expected a string",
        ),
        (
            "labels not an object",
            Box::new(|v| v["alerts"][0]["labels"] = json!(null)),
            "alerts[0].labels",
            "missing",
        ),
        (
            "annotation not a string",
            Box::new(|v| v["alerts"][0]["annotations"]["summary"] = json!(["a"])),
            "alerts[0].annotations.summary",
            "expected a string",
        ),
        (
            "no alerts",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("alerts");
            }),
            "alerts",
            "missing",
        ),
    ];
    common::assert_edits_fail(
        &fixture_json(DIR, "webhook-firing.json"),
        cases,
        grafana::decode,
    );
    let legacy = json!({"ruleName": "CPU alert", "state": "alerting", "evalMatches": [], "title": "[Alerting] CPU alert"});
    let err = grafana::decode(&serde_json::to_vec(&legacy).unwrap()).unwrap_err();
    assert_eq!(err.field, "alerts");
    assert!(err.message.contains("legacy"), "{err}");

    let err = grafana::decode(b"{\"alerts\": [").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");

    // Decision: no alerts, nothing to report.
    let mut v = fixture_json(DIR, "webhook-firing.json");
    v["alerts"] = json!([]);
    assert_eq!(
        grafana::decode(&serde_json::to_vec(&v).unwrap()).unwrap(),
        vec![]
    );
    // Version is optional (older Grafana).
    v.as_object_mut().unwrap().remove("version");
    assert!(grafana::decode(&serde_json::to_vec(&v).unwrap()).is_ok());
}

/// The snippets the documentation shows are the files the end-to-end tests load.
#[test]
fn docs_include_the_snippet_files_verbatim() {
    common::assert_page_shows_snippets(
        "grafana.md",
        &["grafana-contact-point.yaml", "grafana-pagerbridge.toml"],
    );
    common::documented_sources("grafana-pagerbridge.toml", "grafana");
}

// ---- never a panic ----

fn arb_json() -> impl Strategy<Value = Value> {
    common::arb_json(vec![
        json!("1"),
        json!("https://grafana.example.com/x.png"),
        json!({"B": 1.5}),
        json!("firing"),
        json!("resolved"),
        json!("0001-01-01T00:00:00Z"),
    ])
}

fn check_never_panics(body: &[u8]) -> Result<(), TestCaseError> {
    common::object_errors_name_a_field(body, grafana::decode(body))
}

const FIXTURES: [&str; 3] = [
    "webhook-firing.json",
    "webhook-resolved.json",
    "webhook-firing-image.json",
];

common::never_panic_properties!(check_never_panics, arb_json(), DIR, FIXTURES);

proptest! {
    #[test]
    fn arbitrary_value_strings_never_panic(s in "[\\[\\]a-z='{}=., 0-9é-]{0,60}") {
        let mut v = fixture_json(DIR, "webhook-firing-image.json");
        v["alerts"][0]["valueString"] = json!(s);
        check_never_panics(&serde_json::to_vec(&v).unwrap())?;
    }
}
