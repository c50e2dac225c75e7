//! The Alertmanager decoder against real captures of Alertmanager 0.25's webhook (and of its own
//! PagerDuty integration, for the group-mode dedup key), a constructed multi-alert group, and
//! arbitrary input.

mod common;

use std::collections::BTreeMap;

use common::{Edit, fixture, fixture_json, labels};
use pagerbridge_ingest::alertmanager::{self, IncidentPer, Options, labels_fingerprint};
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::{Link, Severity};
use proptest::prelude::*;
use serde_json::{Value, json};

const DIR: &str = "alertmanager";

fn per_alert() -> Options {
    Options::default()
}

fn per_group() -> Options {
    Options {
        incident_per: IncidentPer::Group,
    }
}

fn decode_one(body: &[u8], opts: &Options) -> Alert {
    let mut alerts = alertmanager::decode(body, opts).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    alerts.remove(0)
}

fn high_cpu_labels() -> BTreeMap<String, String> {
    labels(&[
        ("alertname", "HighCPU"),
        ("instance", "web-1:9100"),
        ("job", "node"),
        ("severity", "critical"),
    ])
}

const GROUP_KEY: &str = "{}/{}:{alertname=\"HighCPU\", instance=\"web-1:9100\"}";

#[test]
fn captured_firing_alert_becomes_a_problem() {
    let alert = decode_one(&fixture(DIR, "webhook-v4-firing.json"), &per_alert());
    let started = "2026-11-21T05:23:16Z".parse().unwrap();
    let mut expected = Alert::new(
        SourceKind::Alertmanager,
        AlertState::Problem,
        "CPU above 90% on web-1",
        "ab906f89a7cb9bdc",
    );
    expected.source_instance = Some("http://127.0.0.1:19093".into());
    expected.entity = Entity {
        host: Some("web-1".into()),
        service: Some("HighCPU".into()),
        labels: high_cpu_labels(),
    };
    expected.status = Some("critical".into());
    expected.severity = Some(Severity::Critical);
    expected.details = json!({
        "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "job": "node", "severity": "critical"},
        "annotations": {
            "description": "CPU usage has been above 90% for 5 minutes",
            "summary": "CPU above 90% on web-1"
        },
        "status": "firing",
        "startsAt": "2026-11-21T05:23:16Z",
        "fingerprint": "ab906f89a7cb9bdc"
    })
    .as_object()
    .unwrap()
    .clone();
    expected.links = vec![Link {
        href: "http://prometheus.local:9090/graph?g0.expr=cpu".into(),
        text: Some("Source".into()),
    }];
    expected.started_at = Some(started);
    expected.occurred_at = Some(started);
    expected.monitor_ref = MonitorRef::Matchers {
        matchers: high_cpu_labels(),
        fingerprint: Some("ab906f89a7cb9bdc".into()),
        group_key: Some(GROUP_KEY.into()),
    };
    expected.client = Some("Alertmanager".into());
    expected.client_url = Some("http://127.0.0.1:19093/#/alerts?receiver=hook".into());
    assert_eq!(alert, expected);
}

#[test]
fn captured_resolved_alert_resolves_the_same_problem() {
    let firing = decode_one(&fixture(DIR, "webhook-v4-firing.json"), &per_alert());
    let resolved = decode_one(&fixture(DIR, "webhook-v4-resolved.json"), &per_alert());
    assert_eq!(resolved.state, AlertState::Recovery);
    assert_eq!(resolved.dedup_hint, firing.dedup_hint);
    assert_eq!(resolved.monitor_ref, firing.monitor_ref);
    assert_eq!(resolved.entity, firing.entity);
    assert_eq!(resolved.details["status"], "resolved");
    assert_eq!(resolved.details["endsAt"], "2026-11-21T05:23:17Z");
    assert_eq!(
        resolved.occurred_at,
        Some("2026-11-21T05:23:17Z".parse().unwrap())
    );
    assert_eq!(resolved.started_at, firing.started_at);
    assert!(
        !firing.details.contains_key("endsAt"),
        "Go's zero time means not set"
    );
}

#[test]
fn repeated_notifications_keep_the_dedup_hint() {
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    let first = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    v["alerts"][0]["annotations"]["summary"] = json!("CPU above 97% on web-1");
    v["alerts"][0]["annotations"]["description"] = json!("still burning");
    v["alerts"][0]["endsAt"] = json!("2026-11-21T06:00:00Z");
    let again = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(again.summary, "CPU above 97% on web-1");
    assert_eq!(again.dedup_hint, first.dedup_hint);

    // Without the fingerprint (Alertmanager before 0.22) the hint is the fingerprint
    // Alertmanager would have computed, so old and new senders agree.
    v["alerts"][0]
        .as_object_mut()
        .unwrap()
        .remove("fingerprint");
    let old = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(old.dedup_hint, "ab906f89a7cb9bdc");
    assert_eq!(labels_fingerprint(&high_cpu_labels()), "ab906f89a7cb9bdc");
}

#[test]
fn summary_falls_back_to_description_then_name_and_instance() {
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    v["alerts"][0]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("summary");
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(a.summary, "CPU usage has been above 90% for 5 minutes");
    v["alerts"][0]["annotations"] = json!({});
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(a.summary, "HighCPU web-1:9100");
}

#[test]
fn severity_label_outside_pagerduty_words_is_left_to_the_rules() {
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    v["alerts"][0]["labels"]["severity"] = json!("page");
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(a.severity, None);
    assert_eq!(a.status.as_deref(), Some("page"));
    v["alerts"][0]["labels"]["severity"] = json!("Warning");
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!(a.severity, Some(Severity::Warning));
    v["alerts"][0]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("severity");
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert_eq!((a.severity, a.status.as_deref()), (None, Some("firing")));
}

#[test]
fn group_mode_keys_like_alertmanagers_own_pagerduty_integration() {
    // The same group, captured through Alertmanager's native pagerduty_configs.
    let trigger = fixture_json(DIR, "pagerduty-receiver-trigger.json");
    let resolve = fixture_json(DIR, "pagerduty-receiver-resolve.json");
    let firing = decode_one(&fixture(DIR, "webhook-v4-firing.json"), &per_group());
    let resolved = decode_one(&fixture(DIR, "webhook-v4-resolved.json"), &per_group());

    assert_eq!(firing.dedup_hint, trigger["dedup_key"]);
    assert_eq!(resolved.dedup_hint, resolve["dedup_key"]);
    assert_eq!(
        firing.dedup_hint,
        "51e46a53778c4f48384a1dd3e049008dfc1886d7dc886971586e746d5cf50fa5"
    );
    assert_eq!(firing.dedup_hint, alertmanager::group_dedup_key(GROUP_KEY));
    assert_eq!(firing.state, AlertState::Problem);
    assert_eq!(resolved.state, AlertState::Recovery);
    assert_eq!(firing.summary, "CPU above 90% on web-1");
    assert_eq!(
        firing.entity,
        Entity {
            host: Some("web-1".into()),
            service: Some("HighCPU".into()),
            labels: labels(&[("alertname", "HighCPU"), ("instance", "web-1:9100")]),
        }
    );
    assert_eq!(
        firing.monitor_ref,
        MonitorRef::Matchers {
            matchers: labels(&[("alertname", "HighCPU"), ("instance", "web-1:9100")]),
            fingerprint: None,
            group_key: Some(GROUP_KEY.into()),
        }
    );

    // Without a common summary the title is Alertmanager's default, as its integration sent it.
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    v["commonAnnotations"] = json!({});
    v["receiver"] = json!("pd");
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_group());
    assert_eq!(a.summary, trigger["payload"]["summary"]);
    assert_eq!(a.client_url.as_deref(), trigger["client_url"].as_str());
    assert_eq!(a.client.as_deref(), trigger["client"].as_str());
    let mut v = fixture_json(DIR, "webhook-v4-resolved.json");
    v["commonAnnotations"] = json!({});
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_group());
    assert_eq!(a.summary, resolve["payload"]["summary"]);
}

#[test]
fn a_multi_alert_group_is_one_alert_listing_every_member() {
    let a = decode_one(&fixture(DIR, "webhook-v4-group.json"), &per_group());
    let key = "{}/{team=\"db\"}:{alertname=\"PostgresReplicationLag\", cluster=\"prod-eu\"}";
    assert_eq!(a.dedup_hint, alertmanager::group_dedup_key(key));
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(
        a.summary,
        "[FIRING:2] PostgresReplicationLag prod-eu (postgres warning)"
    );
    assert_eq!(a.severity, Some(Severity::Warning));
    assert_eq!(a.status.as_deref(), Some("warning"));
    let group_labels = labels(&[
        ("alertname", "PostgresReplicationLag"),
        ("cluster", "prod-eu"),
    ]);
    assert_eq!(
        a.entity,
        Entity {
            host: None,
            service: Some("PostgresReplicationLag".into()),
            labels: group_labels.clone(),
        }
    );
    assert_eq!(
        Value::Object(a.details.clone()),
        json!({
            "status": "firing",
            "num_firing": 2,
            "num_resolved": 1,
            "groupLabels": {"alertname": "PostgresReplicationLag", "cluster": "prod-eu"},
            "commonLabels": {"alertname": "PostgresReplicationLag", "cluster": "prod-eu", "job": "postgres", "severity": "warning"},
            "commonAnnotations": {"runbook_url": "https://runbooks.example.com/postgres/replication-lag"},
            "alerts": [
                {"status": "firing", "labels": {"instance": "db-2:9187"},
                 "annotations": {"description": "Replica db-2 is 45s behind the primary"},
                 "startsAt": "2026-11-21T06:10:00.123Z", "fingerprint": "82a02c65d760b057"},
                {"status": "firing", "labels": {"instance": "db-3:9187"},
                 "annotations": {"description": "Replica db-3 is 38s behind the primary"},
                 "startsAt": "2026-11-21T06:11:30Z", "fingerprint": "377a9c431b458358"},
                {"status": "resolved", "labels": {"instance": "db-4:9187"},
                 "annotations": {"description": "Replica db-4 is 31s behind the primary"},
                 "startsAt": "2026-11-21T06:05:00Z", "endsAt": "2026-11-21T06:14:30Z",
                 "fingerprint": "0d7a8b3168c8390d"}
            ]
        })
    );
    assert_eq!(
        a.links,
        vec![
            Link {
                href: "http://prometheus.example.com:9090/graph?g0.expr=pg_replication_lag_seconds+%3E+30".into(),
                text: Some("Source".into()),
            },
            Link {
                href: "https://runbooks.example.com/postgres/replication-lag".into(),
                text: Some("Runbook".into()),
            },
        ],
        "links are de-duplicated across the group"
    );
    assert_eq!(a.started_at, Some("2026-11-21T06:05:00Z".parse().unwrap()));
    assert_eq!(a.occurred_at, Some("2026-11-21T06:11:30Z".parse().unwrap()));
    assert_eq!(
        a.monitor_ref,
        MonitorRef::Matchers {
            matchers: group_labels,
            fingerprint: None,
            group_key: Some(key.into()),
        }
    );
    assert_eq!(
        a.client_url.as_deref(),
        Some("http://alertmanager.example.com:9093/#/alerts?receiver=team-db")
    );
}

#[test]
fn a_multi_alert_group_in_alert_mode_is_one_alert_each() {
    let alerts =
        alertmanager::decode(&fixture(DIR, "webhook-v4-group.json"), &per_alert()).unwrap();
    let got: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a.state,
                a.dedup_hint.as_str(),
                a.entity.host.as_deref(),
                a.summary.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                AlertState::Problem,
                "82a02c65d760b057",
                Some("db-2"),
                "Replica db-2 is 45s behind the primary"
            ),
            (
                AlertState::Problem,
                "377a9c431b458358",
                Some("db-3"),
                "Replica db-3 is 38s behind the primary"
            ),
            (
                AlertState::Recovery,
                "0d7a8b3168c8390d",
                Some("db-4"),
                "Replica db-4 is 31s behind the primary"
            ),
        ]
    );
    // The fingerprints in the constructed fixture are the ones Alertmanager computes.
    for a in &alerts {
        assert_eq!(labels_fingerprint(&a.entity.labels), a.dedup_hint);
        assert_eq!(a.links[1].text.as_deref(), Some("Runbook"));
    }
}

#[test]
fn group_mode_without_alerts_or_group_key() {
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    v.as_object_mut().unwrap().remove("groupKey");
    let err = alertmanager::decode(&serde_json::to_vec(&v).unwrap(), &per_group()).unwrap_err();
    assert_eq!(err.field, "groupKey");
    // Per alert, the group key is only a reference.
    let a = decode_one(&serde_json::to_vec(&v).unwrap(), &per_alert());
    assert!(matches!(
        a.monitor_ref,
        MonitorRef::Matchers {
            group_key: None,
            ..
        }
    ));

    // Decision: an empty notification is nothing to report, not an error.
    let mut v = fixture_json(DIR, "webhook-v4-firing.json");
    v["alerts"] = json!([]);
    let body = serde_json::to_vec(&v).unwrap();
    assert_eq!(alertmanager::decode(&body, &per_alert()).unwrap(), vec![]);
    assert_eq!(alertmanager::decode(&body, &per_group()).unwrap(), vec![]);
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "version 3",
            Box::new(|v| v["version"] = json!("3")),
            "version",
            "unsupported",
        ),
        (
            "no version",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("version");
            }),
            "version",
            "missing",
        ),
        (
            "alerts not an array",
            Box::new(|v| v["alerts"] = json!({})),
            "alerts",
            "expected an array",
        ),
        (
            "alert not an object",
            Box::new(|v| v["alerts"][0] = json!(7)),
            "alerts[0]",
            "expected an object",
        ),
        (
            "labels not an object",
            Box::new(|v| v["alerts"][0]["labels"] = json!("x")),
            "alerts[0].labels",
            "expected an object",
        ),
        (
            "label not a string",
            Box::new(|v| v["alerts"][0]["labels"]["job"] = json!(1)),
            "alerts[0].labels.job",
            "expected a string",
        ),
        (
            "no labels",
            Box::new(|v| {
                v["alerts"][0].as_object_mut().unwrap().remove("labels");
            }),
            "alerts[0].labels",
            "missing",
        ),
        (
            "bad status",
            Box::new(|v| v["alerts"][0]["status"] = json!("pending")),
            "alerts[0].status",
            "\"firing\" or \"resolved\"",
        ),
        (
            "bad time",
            Box::new(|v| v["alerts"][0]["startsAt"] = json!("yesterday")),
            "alerts[0].startsAt",
            "RFC 3339",
        ),
        (
            "bad commonLabels",
            Box::new(|v| v["commonLabels"] = json!([])),
            "commonLabels",
            "expected an object",
        ),
        (
            "negative truncatedAlerts",
            Box::new(|v| v["truncatedAlerts"] = json!(-1)),
            "truncatedAlerts",
            "count",
        ),
    ];
    common::assert_edits_fail(
        &fixture_json(DIR, "webhook-v4-firing.json"),
        cases,
        |body| alertmanager::decode(body, &per_alert()),
    );
    let err = alertmanager::decode(b"<html>", &per_alert()).unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");
    let err = alertmanager::decode(b"[]", &per_alert()).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("", "expected a JSON object, got an array")
    );
}

#[test]
fn options_read_from_toml() {
    let o: Options = toml::from_str("incident_per = \"group\"").unwrap();
    assert_eq!(o.incident_per, IncidentPer::Group);
    let o: Options = toml::from_str("").unwrap();
    assert_eq!(o, Options::default());
    assert_eq!(o.incident_per, IncidentPer::Alert);
    assert!(toml::from_str::<Options>("incident_per = \"team\"").is_err());
    assert!(toml::from_str::<Options>("incident = \"group\"").is_err());
}

/// The snippets the documentation shows are the files the end-to-end tests load.
#[test]
fn docs_include_the_snippet_files_verbatim() {
    common::assert_page_shows_snippets(
        "alertmanager.md",
        &[
            "alertmanager-webhook.yml",
            "alertmanager-pagerduty.yml",
            "alertmanager-pagerbridge.toml",
        ],
    );
    for source in common::documented_sources("alertmanager-pagerbridge.toml", "alertmanager") {
        let opts: Options = source
            .get("options")
            .cloned()
            .map(|o| o.try_into().unwrap())
            .unwrap_or_default();
        let _ = alertmanager::decode(&fixture(DIR, "webhook-v4-firing.json"), &opts).unwrap();
    }
}

// ---- never a panic ----

fn arb_json() -> impl Strategy<Value = Value> {
    common::arb_json(vec![
        json!("4"),
        json!("firing"),
        json!("resolved"),
        json!("0001-01-01T00:00:00Z"),
    ])
}

fn check_never_panics(body: &[u8]) -> Result<(), TestCaseError> {
    for opts in [per_alert(), per_group()] {
        common::object_errors_name_a_field(body, alertmanager::decode(body, &opts))?;
    }
    Ok(())
}

const FIXTURES: [&str; 3] = [
    "webhook-v4-firing.json",
    "webhook-v4-resolved.json",
    "webhook-v4-group.json",
];

common::never_panic_properties!(check_never_panics, arb_json(), DIR, FIXTURES);
