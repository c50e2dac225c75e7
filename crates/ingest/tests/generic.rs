//! The configuration-driven JSON decoder, with two made-up but realistic monitors (an uptime
//! checker and a job monitor posting batches), its compile-time checks, and arbitrary input.

mod common;

use common::{Edit, fixture, fixture_json};
use pagerbridge_ingest::generic::{self, CompiledMapping, Mapping};
use pagerbridge_ingest::{Alert, AlertState, Entity, MonitorRef, SourceKind};
use pagerduty::events::{Link, Severity};
use proptest::prelude::*;
use serde_json::{Value, json};

const DIR: &str = "generic";

fn mapping(name: &str) -> Mapping {
    toml::from_str(std::str::from_utf8(&fixture(DIR, name)).unwrap()).unwrap()
}

fn compiled(name: &str) -> CompiledMapping {
    generic::compile(&mapping(name)).unwrap()
}

/// A change to a mapping, for tables of cases.
type MappingEdit = Box<dyn Fn(&mut Mapping)>;

fn link(href: &str) -> Link {
    Link {
        href: href.into(),
        text: None,
    }
}

#[test]
fn uptime_checker_down_is_a_problem() {
    let alerts =
        generic::decode(&fixture(DIR, "uptime-down.json"), &compiled("uptime.toml")).unwrap();
    let mut expected = Alert::new(
        SourceKind::Generic,
        AlertState::Problem,
        "Checkout API is DOWN: HTTP 503 Service Unavailable",
        "uptime/mon_8f2k1x",
    );
    expected.status = Some("down".into());
    expected.severity = Some(Severity::Critical);
    expected.entity = Entity {
        host: Some("shop.example.com".into()),
        service: Some("Checkout API".into()),
        labels: Default::default(),
    };
    expected.source_instance = Some("acme-prod".into());
    expected.details = fixture_json(DIR, "uptime-down.json")["check"]
        .as_object()
        .unwrap()
        .clone();
    expected.links = vec![
        link("https://uptime.example.net/incidents/4711"),
        link("https://shop.example.com/api/health"),
    ];
    expected.client = Some("Uptime checker (eu-west)".into());
    expected.client_url = Some("https://uptime.example.net/incidents/4711".into());
    assert_eq!(expected.monitor_ref, MonitorRef::None);
    assert_eq!(alerts, vec![expected]);
}

#[test]
fn uptime_checker_up_resolves_it() {
    let m = compiled("uptime.toml");
    let down = generic::decode(&fixture(DIR, "uptime-down.json"), &m).unwrap();
    let up = generic::decode(&fixture(DIR, "uptime-up.json"), &m).unwrap();
    assert_eq!(up[0].state, AlertState::Recovery);
    assert_eq!(up[0].summary, "Checkout API is UP");
    assert_eq!(up[0].dedup_hint, down[0].dedup_hint);
    assert_eq!(up[0].details["error"], Value::Null);
}

#[test]
fn batch_payload_gives_one_alert_per_item() {
    let alerts = generic::decode(
        &fixture(DIR, "cronwatch-failures.json"),
        &compiled("cronwatch.toml"),
    )
    .unwrap();
    assert_eq!(alerts.len(), 2);
    let (a, b) = (&alerts[0], &alerts[1]);
    assert_eq!(a.summary, "nightly-backup failed on backup-1 (exit 2)");
    assert_eq!(a.dedup_hint, "cronwatch/backup-1/nightly-backup");
    assert_eq!(a.state, AlertState::Problem, "no state mapping: a problem");
    assert_eq!(a.status, None);
    assert_eq!(a.severity, Some(Severity::Critical));
    assert_eq!(a.entity.host.as_deref(), Some("backup-1"));
    assert_eq!(a.entity.service.as_deref(), Some("nightly-backup"));
    assert_eq!(
        a.routing_key.as_deref(),
        Some("R0UTINGKEYBACKUP0123456789012345")
    );
    assert_eq!(
        a.links,
        vec![
            link("https://wiki.example.com/ops/backup"),
            link("https://logs.example.com/run-20261121-0300/nightly-backup"),
        ]
    );
    assert_eq!(
        Value::Object(a.details.clone()),
        fixture_json(DIR, "cronwatch-failures.json")["failures"][0],
        "details default to the whole element"
    );
    assert_eq!(a.client.as_deref(), Some("cronwatch"));

    assert_eq!(b.summary, "log-rotate failed on web-3 (exit 1)");
    assert_eq!(b.severity, Some(Severity::Warning));
    assert_eq!(b.routing_key, None);
    assert!(b.links.is_empty(), "null and empty arrays give no links");

    let mut v = fixture_json(DIR, "cronwatch-failures.json");
    v["failures"] = json!([]);
    let none = generic::decode(
        &serde_json::to_vec(&v).unwrap(),
        &compiled("cronwatch.toml"),
    );
    assert_eq!(none.unwrap(), vec![], "an empty batch is nothing to report");
}

#[test]
fn configuration_mistakes_are_caught_when_compiling() {
    let base = mapping("uptime.toml");
    let cases: Vec<(MappingEdit, &str)> = vec![
        (
            Box::new(|m| m.summary = "{{ monitor.name ".into()),
            "summary: template does not parse",
        ),
        (
            Box::new(|m| m.dedup_key = "  ".into()),
            "dedup_key: must not be empty",
        ),
        (
            Box::new(|m| m.state_map = None),
            "state_map: required when state is set",
        ),
        (
            Box::new(|m| {
                m.state = None;
            }),
            "state: required when state_map is set",
        ),
        (
            Box::new(|m| {
                m.severity = None;
            }),
            "severity: required when severity_map is set",
        ),
        (
            Box::new(|m| m.host = Some("/monitor/~2".into())),
            "host: \"/monitor/~2\" is not a valid JSON pointer",
        ),
        (
            Box::new(|m| m.items = Some("failures".into())),
            "items: \"failures\" is not a JSON pointer",
        ),
        (
            Box::new(|m| m.details = Some("{{ check }}".into())),
            "details: \"{{ check }}\" is not a JSON pointer",
        ),
        (
            Box::new(|m| m.links = vec!["/ok".into(), "{% if %}".into()]),
            "links[1]: template does not parse",
        ),
    ];
    for (mutate, expected) in cases {
        let mut m = base.clone();
        mutate(&mut m);
        let err = generic::compile(&m).unwrap_err();
        assert!(
            err.starts_with(expected),
            "{err:?} should start with {expected:?}"
        );
    }
    assert!(
        toml::from_str::<Mapping>("summary = \"x\"\ndedup_key = \"y\"\nsumary = \"z\"").is_err()
    );
    assert!(
        toml::from_str::<Mapping>("summary = \"x\"").is_err(),
        "dedup_key is required"
    );
    let m: Mapping = toml::from_str("summary = \"x\"\ndedup_key = \"y\"\nstate_map = { a = \"acknowledgement\" }\nstate = \"/s\"").unwrap();
    assert_eq!(m.state_map.unwrap()["a"], AlertState::Acknowledgement);
}

#[test]
fn decode_errors_name_the_field_and_pointer() {
    let m = compiled("uptime.toml");
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            Box::new(|v| {
                v["check"].as_object_mut().unwrap().remove("status");
            }),
            "state",
            "/check/status resolved to nothing",
        ),
        (
            Box::new(|v| v["check"]["status"] = json!("paused")),
            "state",
            "\"paused\" is not in state_map",
        ),
        (
            Box::new(|v| v["monitor"]["priority"] = json!("urgent")),
            "severity",
            "\"urgent\" is neither in severity_map",
        ),
    ];
    for (mutate, field, message) in cases {
        let mut v = fixture_json(DIR, "uptime-down.json");
        mutate(&mut v);
        let err = generic::decode(&serde_json::to_vec(&v).unwrap(), &m).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{err}");
    }

    let mut raw = mapping("uptime.toml");
    raw.summary = "/monitor/title".into();
    let err = generic::decode(
        &fixture(DIR, "uptime-down.json"),
        &generic::compile(&raw).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("summary", "/monitor/title resolved to nothing")
    );

    raw.summary = "{{ monitor.nickname }}".into();
    let err = generic::decode(
        &fixture(DIR, "uptime-down.json"),
        &generic::compile(&raw).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("summary", "template rendered an empty string")
    );

    raw.summary = "{{ monitor.name + 1 }}".into();
    let err = generic::decode(
        &fixture(DIR, "uptime-down.json"),
        &generic::compile(&raw).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.field, "summary");
    assert!(err.message.contains("could not render"), "{err}");

    raw.summary =
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}".into();
    let err = generic::decode(
        &fixture(DIR, "uptime-down.json"),
        &generic::compile(&raw).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.field, "summary");
    assert!(err.message.contains("budget"), "{err}");

    let mut raw = mapping("cronwatch.toml");
    raw.service = Some("{{ job | default('unnamed') }} on {{ host }}".into());
    raw.summary = "/job".into();
    let batch = generic::compile(&raw).unwrap();
    let mut v = fixture_json(DIR, "cronwatch-failures.json");
    v["failures"][1]["job"] = json!(null);
    let err = generic::decode(&serde_json::to_vec(&v).unwrap(), &batch).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("summary", "/job resolved to nothing (in item /failures/1)")
    );
    // To a template, null is as absent as a missing key: no "None" in the text.
    raw.summary = "{{ job }} failed".into();
    let alerts = generic::decode(
        &serde_json::to_vec(&v).unwrap(),
        &generic::compile(&raw).unwrap(),
    )
    .unwrap();
    assert_eq!(alerts[1].summary, "failed");
    assert_eq!(
        alerts[1].entity.service.as_deref(),
        Some("unnamed on web-3")
    );
    assert_eq!(
        alerts[1].details["job"],
        Value::Null,
        "details keep what was sent"
    );
    v["failures"] = json!({"a": 1});
    let err = generic::decode(&serde_json::to_vec(&v).unwrap(), &batch).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("items", "/failures is an object, expected an array")
    );
    let err = generic::decode(b"{}", &batch).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("items", "/failures resolved to nothing")
    );
    let err = generic::decode(b"\xff\xfe", &batch).unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.starts_with("not JSON: "), "{err}");
}

#[test]
fn pointers_read_numbers_and_escaped_keys_templates_read_constants() {
    let m: Mapping = toml::from_str(
        r#"
        summary = "/a~1b"
        dedup_key = "/n"
        host = "/list/1"
        service = "constant"
        severity = "/sev"
        details = "/n"
        "#,
    )
    .unwrap();
    let m = generic::compile(&m).unwrap();
    let body = json!({"a/b": "  slash key  ", "n": 42, "list": ["x", true], "sev": "WARNING"});
    let a = generic::decode(&serde_json::to_vec(&body).unwrap(), &m).unwrap();
    assert_eq!(a[0].summary, "slash key", "trimmed");
    assert_eq!(a[0].dedup_hint, "42");
    assert_eq!(a[0].entity.host.as_deref(), Some("true"));
    assert_eq!(a[0].entity.service.as_deref(), Some("constant"));
    assert_eq!(
        a[0].severity,
        Some(Severity::Warning),
        "PagerDuty's words, any case"
    );
    assert_eq!(Value::Object(a[0].details.clone()), json!({"value": 42}));
}

#[test]
fn an_array_payload_is_read_with_an_empty_items_pointer() {
    let m: Mapping =
        toml::from_str("items = \"\"\nsummary = \"/name\"\ndedup_key = \"/id\"").unwrap();
    let m = generic::compile(&m).unwrap();
    let alerts =
        generic::decode(br#"[{"name": "a", "id": 1}, {"name": "b", "id": 2}]"#, &m).unwrap();
    let got: Vec<_> = alerts
        .iter()
        .map(|a| (a.summary.as_str(), a.dedup_hint.as_str()))
        .collect();
    assert_eq!(got, vec![("a", "1"), ("b", "2")]);
    let err = generic::decode(br#"{"name": "a"}"#, &m).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("items", "\"\" is an object, expected an array")
    );
}

/// The snippets the documentation shows are the files the end-to-end tests load, and the
/// documented mapping is the fixture's.
#[test]
fn docs_include_the_snippet_files_verbatim() {
    common::assert_page_shows_snippets(
        "generic-json.md",
        &["generic-json-pagerbridge.toml", "generic-json-curl.sh"],
    );
    let sources = common::documented_sources("generic-json-pagerbridge.toml", "generic");
    let documented: Mapping = sources[0]["mapping"].clone().try_into().unwrap();
    assert_eq!(documented, mapping("uptime.toml"));
}

// ---- never a panic ----

fn arb_json() -> impl Strategy<Value = Value> {
    common::arb_json(vec![
        json!("down"),
        json!("up"),
        json!("P2"),
        json!("{{ x }}"),
    ])
}

fn check_never_panics(body: &[u8]) -> Result<(), TestCaseError> {
    for m in ["uptime.toml", "cronwatch.toml"] {
        common::object_errors_name_a_field(body, generic::decode(body, &compiled(m)))?;
    }
    Ok(())
}

const FIXTURES: [&str; 3] = [
    "uptime-down.json",
    "uptime-up.json",
    "cronwatch-failures.json",
];

common::never_panic_properties!(check_never_panics, arb_json(), DIR, FIXTURES);

proptest! {
    /// Whatever an operator writes, compiling and decoding report, never panic.
    #[test]
    fn arbitrary_mappings_never_panic(
        summary in "[/a-z{}%~ .|()'0-9]{1,24}",
        dedup in "[/a-z{}~ .|0-9]{1,16}",
        host in prop::option::of("[/a-z{}~ .0-9]{0,12}"),
        v in arb_json(),
    ) {
        let m = Mapping {
            items: None,
            summary,
            dedup_key: dedup,
            state: None,
            state_map: None,
            severity: None,
            severity_map: None,
            host,
            service: None,
            source_instance: None,
            routing_key: None,
            details: None,
            links: vec![],
            client: None,
            client_url: None,
        };
        if let Ok(m) = generic::compile(&m) {
            let _ = generic::decode(&serde_json::to_vec(&v).unwrap(), &m);
        }
    }
}
