//! The rules engine: matching, ordering, actions, severities, templates, limits, errors.

use pagerbridge_model::{Alert, AlertState, SourceKind};
use pagerbridge_rules::spec::{RoutingSpec, RuleSpec};
use pagerbridge_rules::{Decision, RouteError, Rules};
use pagerduty::events::{EventAction, Severity, validate_event};

const DEFAULT: &str = "d0000000000000000000000000000000";
const DB: &str = "db000000000000000000000000000000";
const OPS: &str = "0p500000000000000000000000000000";

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    routing: RoutingSpec,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

fn rules(toml_text: &str) -> Rules {
    let f: File = toml::from_str(toml_text).expect("test rules parse");
    Rules::compile(&f.routing, &f.rules).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(toml_text: &str) -> Vec<String> {
    let f: File = toml::from_str(toml_text).expect("test rules parse");
    Rules::compile(&f.routing, &f.rules)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn nagios(host: &str, service: &str, state: AlertState, status: &str) -> Alert {
    let mut a = Alert::new(
        SourceKind::Nagios,
        state,
        format!("{status}: {host}/{service}"),
        format!("{host}/{service}"),
    );
    a.entity.host = Some(host.into());
    a.entity.service = Some(service.into());
    a.status = Some(status.into());
    a.details.insert(
        "output".into(),
        "DISK CRITICAL - free space: / 100 MB".into(),
    );
    a
}

fn sent(d: Decision) -> Vec<pagerbridge_rules::Routed> {
    match d {
        Decision::Send { events } => events,
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn no_rules_send_to_the_default_key_with_the_sources_dedup_key() {
    let r = rules(&format!("[routing]\ndefault_routing_key = \"{DEFAULT}\""));
    let ev = &sent(
        r.route(&nagios("db1", "disk", AlertState::Problem, "CRITICAL"))
            .unwrap(),
    )[0];
    assert_eq!(ev.rule, None);
    assert_eq!(ev.event.routing_key, DEFAULT);
    assert_eq!(ev.event.event_action, EventAction::Trigger);
    assert_eq!(ev.event.dedup_key.as_deref(), Some("db1/disk"));
    let p = ev.event.payload.as_ref().unwrap();
    assert_eq!(
        p.severity,
        Severity::Critical,
        "Nagios CRITICAL -> critical"
    );
    assert_eq!(p.source, "db1");
    assert_eq!(p.component.as_deref(), Some("disk"));
    let d = p.custom_details.as_ref().unwrap();
    assert_eq!(d["output"], "DISK CRITICAL - free space: / 100 MB");
    assert_eq!(d["monitor"]["source"], "nagios");
    assert!(validate_event(&serde_json::to_vec(&ev.event).unwrap()).is_ok());
}

#[test]
fn recovery_resolves_and_acknowledgement_acknowledges_the_same_dedup_key() {
    let r = rules(&format!("[routing]\ndefault_routing_key = \"{DEFAULT}\""));
    let rec = &sent(
        r.route(&nagios("db1", "disk", AlertState::Recovery, "OK"))
            .unwrap(),
    )[0];
    assert_eq!(rec.event.event_action, EventAction::Resolve);
    assert_eq!(rec.event.dedup_key.as_deref(), Some("db1/disk"));
    assert!(
        rec.event.payload.is_none(),
        "PagerDuty needs no payload to resolve"
    );
    let ack = &sent(
        r.route(&nagios(
            "db1",
            "disk",
            AlertState::Acknowledgement,
            "CRITICAL",
        ))
        .unwrap(),
    )[0];
    assert_eq!(ack.event.event_action, EventAction::Acknowledge);
}

#[test]
fn states_without_a_pagerduty_event_are_dropped_with_a_reason_unless_a_rule_sets_one() {
    let r = rules(&format!("[routing]\ndefault_routing_key = \"{DEFAULT}\""));
    match r
        .route(&nagios(
            "db1",
            "disk",
            AlertState::DowntimeStart,
            "CRITICAL",
        ))
        .unwrap()
    {
        Decision::Dropped { rule: None, reason } => {
            assert!(reason.contains("downtime_start"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let r = rules(&format!(
        "[routing]\ndefault_routing_key = \"{DEFAULT}\"\n[[rules]]\nname = \"downtime acks\"\naction = \"acknowledge\"\n[rules.match]\nfield = \"state\"\nequals = \"downtime_start\""
    ));
    let ev = &sent(
        r.route(&nagios(
            "db1",
            "disk",
            AlertState::DowntimeStart,
            "CRITICAL",
        ))
        .unwrap(),
    )[0];
    assert_eq!(ev.event.event_action, EventAction::Acknowledge);
    assert_eq!(ev.rule.as_deref(), Some("downtime acks"));
}

const ROUTED: &str = r#"
[routing]
default_routing_key = "d0000000000000000000000000000000"

[[rules]]
name = "ignore test hosts"
drop = true
match = { field = "host", glob = "test-*" }

[[rules]]
name = "databases"
routing_key = "db000000000000000000000000000000"
summary = "[{{ status }}] {{ host | upper }} {{ service }}"
dedup_key = "db/{{ host }}/{{ service }}"
continue = true
links = [{ href = "https://runbooks.example/{{ service }}", text = "Runbook for {{ service }}" }]
details = { team = "dba", escalate = true, owner = "{{ labels.owner | default('nobody') }}" }
match = { all = [{ field = "host", regex = "db[0-9]+" }, { not = { field = "service", equals = "ping" } }] }

[[rules]]
name = "critical also to ops"
routing_key = "0p500000000000000000000000000000"
severity = "critical"
match = { any = [{ field = "status", one_of = ["CRITICAL", "DOWN"] }, { field = "details.perf.load.value", gt = 10 }] }
"#;

#[test]
fn rules_apply_in_order_with_continue_drop_and_every_matcher() {
    let r = rules(ROUTED);
    match r
        .route(&nagios("test-7", "disk", AlertState::Problem, "CRITICAL"))
        .unwrap()
    {
        Decision::Dropped { rule, .. } => assert_eq!(rule.as_deref(), Some("ignore test hosts")),
        other => panic!("{other:?}"),
    }
    // db1 CRITICAL: the database rule, then (continue) the ops rule.
    let evs = sent(
        r.route(&nagios("db1", "disk", AlertState::Problem, "CRITICAL"))
            .unwrap(),
    );
    assert_eq!(evs.len(), 2);
    let (db, ops) = (&evs[0], &evs[1]);
    assert_eq!(
        (db.rule.as_deref(), db.event.routing_key.as_str()),
        (Some("databases"), DB)
    );
    assert_eq!(db.event.dedup_key.as_deref(), Some("db/db1/disk"));
    let p = db.event.payload.as_ref().unwrap();
    assert_eq!(p.summary, "[CRITICAL] DB1 disk");
    assert_eq!(db.event.links[0].href, "https://runbooks.example/disk");
    assert_eq!(db.event.links[0].text.as_deref(), Some("Runbook for disk"));
    let d = p.custom_details.as_ref().unwrap();
    assert_eq!(
        (
            d["team"].as_str(),
            d["escalate"].as_bool(),
            d["owner"].as_str()
        ),
        (Some("dba"), Some(true), Some("nobody"))
    );
    assert_eq!(
        (ops.rule.as_deref(), ops.event.routing_key.as_str()),
        (Some("critical also to ops"), OPS)
    );
    assert_eq!(
        ops.event.dedup_key.as_deref(),
        Some("db1/disk"),
        "its own dedup key: the default"
    );
    // db1 ping: not the database rule; WARNING: not ops -> defaults.
    let evs = sent(
        r.route(&nagios("db1", "ping", AlertState::Problem, "WARNING"))
            .unwrap(),
    );
    assert_eq!(
        (evs[0].rule.as_deref(), evs[0].event.routing_key.as_str()),
        (None, DEFAULT)
    );
    assert_eq!(
        evs[0].event.payload.as_ref().unwrap().severity,
        Severity::Warning
    );
    // Numeric comparison on a nested detail.
    let mut busy = nagios("web1", "load", AlertState::Problem, "WARNING");
    busy.details
        .insert("perf".into(), serde_json::json!({"load": {"value": 12.5}}));
    let evs = sent(r.route(&busy).unwrap());
    assert_eq!(evs[0].rule.as_deref(), Some("critical also to ops"));
    assert_eq!(
        evs[0].event.payload.as_ref().unwrap().severity,
        Severity::Critical,
        "the rule's severity wins"
    );
}

#[test]
fn severity_precedence_rule_then_payload_then_maps_then_default() {
    let r = rules(&format!(
        "[routing]\ndefault_routing_key = \"{DEFAULT}\"\ndefault_severity = \"warning\"\n[routing.severity.nagios]\nUNKNOWN = \"critical\"\n[routing.severity.zabbix]\nHigh = \"critical\""
    ));
    let sev = |a: &Alert| {
        sent(r.route(a).unwrap())[0]
            .event
            .payload
            .as_ref()
            .unwrap()
            .severity
    };
    assert_eq!(
        sev(&nagios("h", "s", AlertState::Problem, "UNKNOWN")),
        Severity::Critical,
        "configured map"
    );
    assert_eq!(
        sev(&nagios("h", "s", AlertState::Problem, "DOWN")),
        Severity::Critical,
        "built-in map"
    );
    assert_eq!(
        sev(&nagios("h", "s", AlertState::Problem, "WEIRD")),
        Severity::Warning,
        "default"
    );
    let mut z = Alert::new(SourceKind::Zabbix, AlertState::Problem, "x", "1");
    z.status = Some("high".into());
    assert_eq!(
        sev(&z),
        Severity::Critical,
        "status words compare without case"
    );
    z.severity = Some(Severity::Info);
    assert_eq!(
        sev(&z),
        Severity::Info,
        "a severity the payload states wins over maps"
    );
}

#[test]
fn routing_key_precedence_and_errors_name_the_problem() {
    let r = rules("");
    assert_eq!(
        r.route(&nagios("h", "s", AlertState::Problem, "CRITICAL")),
        Err(RouteError::NoRoutingKey)
    );
    let mut a = nagios("h", "s", AlertState::Problem, "CRITICAL");
    a.routing_key = Some(DB.into());
    assert_eq!(
        sent(r.route(&a).unwrap())[0].event.routing_key,
        DB,
        "the payload's own key"
    );
    a.routing_key = Some("not-a-key".into());
    match r.route(&a) {
        Err(RouteError::BadRoutingKey { key, origin }) => assert_eq!(
            (key.as_str(), origin.as_str()),
            ("not-a-key", "the payload")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn templates_that_fail_fall_back_and_say_so() {
    let r = rules(&format!(
        "[routing]\ndefault_routing_key = \"{DEFAULT}\"\n[[rules]]\nsummary = \"{{{{ host | nosuchfilter }}}}\"\ndedup_key = \"{{{{ labels.absent }}}}\""
    ));
    let ev = &sent(
        r.route(&nagios("db1", "disk", AlertState::Problem, "CRITICAL"))
            .unwrap(),
    )[0];
    assert_eq!(
        ev.event.payload.as_ref().unwrap().summary,
        "CRITICAL: db1/disk"
    );
    assert_eq!(ev.event.dedup_key.as_deref(), Some("db1/disk"));
    assert_eq!(ev.notes.len(), 2, "{:?}", ev.notes);
}

#[test]
fn compile_errors_name_each_rule_and_field() {
    let errs = errors(
        r#"
[routing]
default_routing_key = "short"
[routing.severity.nagois]
WARNING = "warning"
[[rules]]
routing_key = "x"
action = "escalate"
summary = "{{ unclosed"
match = { field = "host", regex = "(" }
[[rules]]
match = { all = [] }
[[rules]]
match = { field = "host", equals = "a", glob = "b*" }
[[rules]]
drop = true
continue = true
"#,
    );
    let expect = [
        "routing.default_routing_key:",
        "routing.severity.nagois: unknown source kind",
        "rules[0].match.regex: not a valid regular expression",
        "rules[0].routing_key:",
        "rules[0].action:",
        "rules[0].summary: template does not parse",
        "rules[1].match.all: must list at least one condition",
        "rules[2].match.field: give exactly one comparison",
        "rules[3].drop:",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn limits_are_met_without_losing_the_event() {
    let r = rules(&format!(
        "[routing]\ndefault_routing_key = \"{DEFAULT}\"\n[[rules]]\ndedup_key = \"{{{{ summary }}}}\""
    ));
    let mut a = nagios("db1", "disk", AlertState::Problem, "CRITICAL");
    a.summary = "ü".repeat(3000);
    a.details.insert("dump".into(), "x".repeat(700_000).into());
    let ev = &sent(r.route(&a).unwrap())[0];
    let bytes = serde_json::to_vec(&ev.event).unwrap();
    assert!(
        validate_event(&bytes).is_ok(),
        "{:?}",
        validate_event(&bytes).err()
    );
    assert_eq!(
        ev.event.payload.as_ref().unwrap().summary.chars().count(),
        1024
    );
    assert_eq!(ev.event.dedup_key.as_ref().unwrap().chars().count(), 255);
    assert_eq!(ev.notes.len(), 3, "{:?}", ev.notes);
}

mod any_alert {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = AlertState> {
        prop_oneof![
            Just(AlertState::Problem),
            Just(AlertState::Recovery),
            Just(AlertState::Acknowledgement),
            Just(AlertState::FlappingStart),
            Just(AlertState::DowntimeStart),
            Just(AlertState::Custom),
        ]
    }

    proptest! {
        /// Whatever an alert holds, routing never panics and every event it yields is one
        /// PagerDuty accepts.
        #[test]
        fn every_event_is_valid(
            host in ".{0,40}", service in ".{0,40}", summary in ".{0,1500}", status in ".{0,12}",
            hint in ".{0,400}", st in state(), detail in ".{0,200}",
        ) {
            let r = rules(ROUTED);
            let mut a = Alert::new(SourceKind::Nagios, st, summary, hint);
            a.entity.host = Some(host).filter(|h| !h.is_empty());
            a.entity.service = Some(service);
            a.status = Some(status);
            a.details.insert("free text".into(), detail.into());
            if let Ok(Decision::Send { events }) = r.route(&a) {
                for ev in events {
                    let bytes = serde_json::to_vec(&ev.event).unwrap();
                    prop_assert!(validate_event(&bytes).is_ok(), "{:?}: {}", validate_event(&bytes).err(), String::from_utf8_lossy(&bytes));
                }
            }
        }
    }
}
