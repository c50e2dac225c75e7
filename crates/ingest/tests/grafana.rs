//! The Grafana decoder against the example payload of Grafana's webhook documentation, payloads
//! constructed from it (resolved; image, links and `valueString`), and arbitrary input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pagerbridge_ingest::grafana;
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::{Image, Link, Severity};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/grafana")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// A change to a fixture, for tables of cases.
type Edit = Box<dyn Fn(&mut Value)>;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn link(href: &str, text: &str) -> Link {
    Link {
        href: href.into(),
        text: Some(text.into()),
    }
}

#[test]
fn documented_payload_gives_one_alert_per_grafana_alert() {
    let alerts = grafana::decode(&fixture("webhook-firing.json")).unwrap();
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
    let firing = grafana::decode(&fixture("webhook-firing.json")).unwrap();
    let resolved = grafana::decode(&fixture("webhook-resolved.json")).unwrap();
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
    let mut v = fixture_json("webhook-firing.json");
    v["alerts"][0]["values"] = json!({"B": 99.9, "C": 1});
    v["alerts"][0]["annotations"]["summary"] = json!("worse now");
    let again = grafana::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(again[0].dedup_hint, firing[0].dedup_hint);
    assert_eq!(again[0].summary, "worse now");
}

#[test]
fn images_links_and_value_strings() {
    let alerts = grafana::decode(&fixture("webhook-firing-image.json")).unwrap();
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
    for (what, mutate, field, message) in cases {
        let mut v = fixture_json("webhook-firing.json");
        mutate(&mut v);
        let err = grafana::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.field, field, "{what}: {err}");
        assert!(err.message.contains(message), "{what}: {err}");
    }
    let legacy = json!({"ruleName": "CPU alert", "state": "alerting", "evalMatches": [], "title": "[Alerting] CPU alert"});
    let err = grafana::decode(&serde_json::to_vec(&legacy).unwrap()).unwrap_err();
    assert_eq!(err.field, "alerts");
    assert!(err.message.contains("legacy"), "{err}");

    let err = grafana::decode(b"{\"alerts\": [").unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");

    // Decision: no alerts, nothing to report.
    let mut v = fixture_json("webhook-firing.json");
    v["alerts"] = json!([]);
    assert_eq!(
        grafana::decode(&serde_json::to_vec(&v).unwrap()).unwrap(),
        vec![]
    );
    // Version is optional (older Grafana).
    v.as_object_mut().unwrap().remove("version");
    assert!(grafana::decode(&serde_json::to_vec(&v).unwrap()).is_ok());
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
    let doc = repo_file("docs/integrations/grafana.md");
    for snippet in ["grafana-contact-point.yaml", "grafana-pagerbridge.toml"] {
        let text = repo_file(&format!("docs/integrations/snippets/{snippet}"));
        assert!(doc.contains(&text), "grafana.md lacks {snippet} verbatim");
    }
    let cfg: toml::Table = toml::from_str(&repo_file(
        "docs/integrations/snippets/grafana-pagerbridge.toml",
    ))
    .unwrap();
    assert_eq!(cfg["sources"][0]["kind"].as_str(), Some("grafana"));
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
        Just(json!("1")),
        Just(json!("https://grafana.example.com/x.png")),
        Just(json!({"B": 1.5})),
        Just(json!("firing")),
        Just(json!("resolved")),
        Just(json!("0001-01-01T00:00:00Z")),
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
    if let Err(e) = grafana::decode(body) {
        prop_assert!(
            !is_object || !e.field.is_empty(),
            "an error about an object names a field: {e}"
        );
    }
    Ok(())
}

const FIXTURES: [&str; 3] = [
    "webhook-firing.json",
    "webhook-resolved.json",
    "webhook-firing-image.json",
];

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
    fn arbitrary_value_strings_never_panic(s in "[\\[\\]a-z='{}=., 0-9é-]{0,60}") {
        let mut v = fixture_json("webhook-firing-image.json");
        v["alerts"][0]["valueString"] = json!(s);
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
