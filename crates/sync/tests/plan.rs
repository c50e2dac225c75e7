//! Planning the way back: PagerDuty's changes, as each origin delivers them, against the
//! incident map; the safety rules (echoes, older incidents, merges) included.

use jiff::Timestamp;
use pagerbridge_store::{MappedIncident, MonitorState};
use pagerbridge_sync::plan::{
    ChangeKind, MonitorRoute, PdChange, find_row, monitors_for, parse, parse_maintenance, plan,
    plan_maintenance,
};
use pagerbridge_sync::writeback::{Action, Kind};
use serde_json::{Value, json};

const KEY: &str = "db1/Disk /";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn row(state: MonitorState, incident: Option<&str>) -> MappedIncident {
    MappedIncident {
        routing_key: "R".into(),
        dedup_key: KEY.into(),
        source: "nagios".into(),
        monitor_ref: json!({"kind": "object", "host": "db1", "service": "Disk /"}),
        problem_id: Some("7".into()),
        problem_started_at: Some(ts("2026-11-21T10:00:00Z")),
        problem_seen_at: ts("2026-11-21T10:00:00Z"),
        monitor_state: state,
        monitor_changed_at: ts("2026-11-21T10:00:00Z"),
        incident_id: incident.map(str::to_owned),
        incident_url: None,
        service_id: None,
        pd_status: None,
        pd_changed_at: None,
        memo: None,
        created_at: ts("2026-11-21T10:00:00Z"),
        updated_at: ts("2026-11-21T10:00:00Z"),
    }
}

fn nagios() -> MonitorRoute {
    MonitorRoute {
        name: "nagios".into(),
        policy: Kind::ExternalCommand.default_policy(),
        sources: vec!["nagios".into(), "naemon".into()],
    }
}

fn v3(event_type: &str, agent_type: &str, data: Value) -> Vec<u8> {
    json!({"event": {
        "id": "01EV", "event_type": event_type, "resource_type": "incident",
        "occurred_at": "2026-11-21T10:05:00.123Z",
        "agent": {"id": "PUSER1", "type": agent_type, "summary": "Ann Responder"},
        "client": null, "data": data,
    }})
    .to_string()
    .into_bytes()
}

fn incident_data(created: &str) -> Value {
    json!({
        "id": "PINC1", "type": "incident", "status": "acknowledged", "incident_key": KEY,
        "html_url": "https://acme.pagerduty.com/incidents/PINC1", "created_at": created,
        "service": {"id": "PSVC1", "type": "service_reference"},
    })
}

fn change(body: &[u8]) -> PdChange {
    parse("webhook_v3", body).unwrap().unwrap()
}

#[test]
fn pagerdutys_own_signed_example_parses() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pagerduty/tests/fixtures/webhook-v3-vector/body.json"
    ))
    .unwrap();
    let c = change(&body);
    assert_eq!(c.incident_id, "PGR0VU2");
    assert_eq!(
        c.kind,
        ChangeKind::Other("incident.priority_updated".into())
    );
    assert!(c.agent.is_user);
    assert_eq!(c.agent.name, "Tenex Engineer");
    assert_eq!(c.service_id.as_deref(), Some("PF9KMXH"));
    assert_eq!(
        c.incident_url.as_deref(),
        Some("https://acme.pagerduty.com/incidents/PGR0VU2")
    );
}

#[test]
fn a_persons_acknowledgement_is_written_back_with_their_name_and_the_link() {
    let c = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let r = row(MonitorState::Problem, None);
    let m = nagios();
    let fx = plan(&c, Some(&r), &[&m]);
    assert_eq!(fx.updates.len(), 1);
    assert_eq!(fx.updates[0].incident_id, "PINC1");
    assert_eq!(fx.updates[0].pd_status.as_deref(), Some("acknowledged"));
    assert_eq!(fx.updates[0].service_id.as_deref(), Some("PSVC1"));
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
    let wb = &fx.writebacks[0];
    assert_eq!(wb.monitor, "nagios");
    assert_eq!(wb.change["change"]["action"], "acknowledge");
    assert_eq!(wb.change["change"]["author"], "Ann Responder");
    assert_eq!(
        wb.change["change"]["comment"],
        "Acknowledged in PagerDuty by Ann Responder https://acme.pagerduty.com/incidents/PINC1"
    );
    assert_eq!(wb.change["target"]["host"], "db1", "the problem it was for");
    assert!(
        fx.outcome.contains("acknowledge in nagios"),
        "{}",
        fx.outcome
    );
}

#[test]
fn changes_made_by_the_integration_are_recorded_but_never_echoed() {
    for agent in ["service_reference", "integration_reference"] {
        let c = change(&v3(
            "incident.acknowledged",
            agent,
            incident_data("2026-11-21T10:01:00Z"),
        ));
        let fx = plan(&c, Some(&row(MonitorState::Problem, None)), &[&nagios()]);
        assert!(fx.writebacks.is_empty(), "{agent}: {}", fx.outcome);
        assert_eq!(fx.updates.len(), 1, "PagerDuty's side is still recorded");
        assert!(fx.outcome.contains("integration"), "{}", fx.outcome);
    }
}

#[test]
fn what_the_monitor_already_shows_is_not_written_again() {
    let ack = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let fx = plan(
        &ack,
        Some(&row(MonitorState::Acknowledged, Some("PINC1"))),
        &[&nagios()],
    );
    assert!(fx.writebacks.is_empty(), "{}", fx.outcome);
    assert!(
        fx.outcome.contains("acknowledged already"),
        "{}",
        fx.outcome
    );

    let resolved = change(&v3(
        "incident.resolved",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let fx = plan(
        &resolved,
        Some(&row(MonitorState::Recovered, Some("PINC1"))),
        &[&nagios()],
    );
    assert!(fx.writebacks.is_empty(), "{}", fx.outcome);
    assert_eq!(fx.updates[0].pd_status.as_deref(), Some("resolved"));
}

#[test]
fn an_incident_older_than_the_current_problem_does_not_touch_it() {
    // pagerbridge saw the monitor's problem begin at 10:00; this incident was opened at 09:30
    // for an earlier occurrence whose resolve was lost.
    let c = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T09:30:00Z"),
    ));
    let fx = plan(&c, Some(&row(MonitorState::Problem, None)), &[&nagios()]);
    assert!(fx.writebacks.is_empty());
    assert!(
        fx.updates.is_empty(),
        "nor is it taken as this problem's incident"
    );
    assert!(
        fx.outcome.contains("before the monitor's current problem"),
        "{}",
        fx.outcome
    );

    // The same incident once it is known to be this problem's: applied.
    let fx = plan(
        &c,
        Some(&row(MonitorState::Problem, Some("PINC1"))),
        &[&nagios()],
    );
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
}

#[test]
fn a_merge_moves_the_map_to_the_surviving_incident() {
    let mut data = incident_data("2026-11-21T10:01:00Z");
    data["status"] = json!("resolved");
    data["resolve_reason"] = json!({"type": "merge_resolve_reason",
        "incident": {"id": "PINC9", "type": "incident_reference",
                     "html_url": "https://acme.pagerduty.com/incidents/PINC9"}});
    let c = change(&v3("incident.resolved", "user_reference", data));
    assert!(matches!(c.kind, ChangeKind::Merged { ref into_id, .. } if into_id == "PINC9"));
    let fx = plan(
        &c,
        Some(&row(MonitorState::Problem, Some("PINC1"))),
        &[&nagios()],
    );
    assert!(
        fx.writebacks.is_empty(),
        "a merge resolves nothing: {}",
        fx.outcome
    );
    assert_eq!(fx.updates[0].incident_id, "PINC9");
    assert_eq!(fx.updates[0].pd_status, None);
}

#[test]
fn a_note_becomes_a_comment_and_policies_decide_per_monitor() {
    let note = v3(
        "incident.annotated",
        "user_reference",
        json!({"type": "incident_note", "id": "PNOTE", "content": "disk replaced",
               "incident": {"id": "PINC1", "type": "incident_reference",
                            "html_url": "https://acme.pagerduty.com/incidents/PINC1"}}),
    );
    let c = change(&note);
    assert_eq!(
        c.kind,
        ChangeKind::Annotated {
            note: "disk replaced".into()
        }
    );
    let quiet = MonitorRoute {
        name: "quiet".into(),
        policy: pagerbridge_sync::writeback::Policy {
            on_annotate: None,
            ..Kind::Icinga2.default_policy()
        },
        sources: vec!["nagios".into()],
    };
    let fx = plan(
        &c,
        Some(&row(MonitorState::Problem, Some("PINC1"))),
        &[&nagios(), &quiet],
    );
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
    assert_eq!(fx.writebacks[0].change["change"]["action"], "comment");
    assert_eq!(
        fx.writebacks[0].change["change"]["comment"],
        "PagerDuty note by Ann Responder: disk replaced https://acme.pagerduty.com/incidents/PINC1"
    );
    assert_eq!(
        Kind::ExternalCommand.default_policy().on_resolve,
        Some(Action::Comment)
    );
}

#[test]
fn an_incident_pagerbridge_did_not_open_is_left_alone() {
    let c = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let fx = plan(&c, None, &[&nagios()]);
    assert!(fx.updates.is_empty() && fx.writebacks.is_empty());
    assert!(
        fx.outcome.contains("not one pagerbridge opened"),
        "{}",
        fx.outcome
    );
}

#[test]
fn legacy_v2_messages_and_polled_log_entries_give_the_same_change() {
    let inc = json!({"id": "PINC1", "incident_key": KEY, "status": "acknowledged",
        "html_url": "https://acme.pagerduty.com/incidents/PINC1",
        "created_at": "2026-11-21T10:01:00Z", "service": {"id": "PSVC1"}});
    let log = json!({"id": "RLOG1", "type": "acknowledge_log_entry",
        "created_at": "2026-11-21T10:05:00Z",
        "agent": {"id": "PUSER1", "type": "user_reference", "summary": "Ann Responder"},
        "incident": {"id": "PINC1"}});
    let v2 = json!({"id": "m1", "event": "incident.acknowledge",
        "created_on": "2026-11-21T10:05:00Z", "incident": inc, "log_entries": [log]});
    let from_v2 = parse("webhook_v2", v2.to_string().as_bytes())
        .unwrap()
        .unwrap();
    let polled = json!({"log_entry": log, "incident": inc});
    let from_poll = parse("poller", polled.to_string().as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(from_v2, from_poll);
    assert_eq!(from_v2.kind, ChangeKind::Acknowledged);
    assert_eq!(from_v2.agent.name, "Ann Responder");
    assert!(from_v2.agent.is_user);
    assert_eq!(from_v2.incident_key.as_deref(), Some(KEY));
    assert_eq!(from_v2.at, ts("2026-11-21T10:05:00Z"));

    assert!(
        parse("webhook_v3", b"{\"event\": {}}")
            .unwrap_err()
            .contains("event_type")
    );
    assert!(parse("poller", b"[1]").is_err());
    assert!(
        parse("webhook_v3", b"not json")
            .unwrap_err()
            .contains("not JSON")
    );
}

#[test]
fn monitors_take_their_sources_by_name_or_kind_and_rows_are_found_by_service() {
    let monitors = vec![
        nagios(),
        MonitorRoute {
            name: "am".into(),
            policy: Kind::Alertmanager.default_policy(),
            sources: vec!["prod-am".into()],
        },
    ];
    let names = |v: Vec<&MonitorRoute>| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(monitors_for(&monitors, "nagios", None)), ["nagios"]);
    assert_eq!(
        names(monitors_for(&monitors, "prod-am", Some("alertmanager"))),
        ["am"]
    );
    assert_eq!(
        names(monitors_for(&monitors, "dc2", Some("naemon"))),
        ["nagios"]
    );
    assert!(monitors_for(&monitors, "zabbix", None).is_empty());

    let c = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let mut a = row(MonitorState::Problem, None);
    a.routing_key = "A".into();
    a.service_id = Some("POTHER".into());
    let mut b = row(MonitorState::Problem, None);
    b.routing_key = "B".into();
    b.service_id = Some("PSVC1".into());
    let rows = [a, b];
    assert_eq!(find_row(&c, &rows).unwrap().routing_key, "B");
    let mut taken = row(MonitorState::Problem, Some("POLD"));
    taken.routing_key = "C".into();
    assert!(
        find_row(&c, std::slice::from_ref(&taken)).is_none(),
        "another incident's row"
    );
}

#[test]
fn the_same_change_arriving_by_webhook_and_by_polling_is_written_once() {
    let c = change(&v3(
        "incident.acknowledged",
        "user_reference",
        incident_data("2026-11-21T10:01:00Z"),
    ));
    let mut r = row(MonitorState::Problem, Some("PINC1"));
    r.pd_status = Some("acknowledged".into());
    r.pd_changed_at = Some(ts("2026-11-21T10:05:00Z"));
    let fx = plan(&c, Some(&r), &[&nagios()]);
    assert!(fx.writebacks.is_empty(), "{}", fx.outcome);
    assert!(fx.outcome.contains("seen already"), "{}", fx.outcome);

    // Acknowledged again later (after an unacknowledge): a new change.
    r.pd_changed_at = Some(ts("2026-11-21T09:58:00Z"));
    let fx = plan(&c, Some(&r), &[&nagios()]);
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
}

// ---------------------------------------------------------------- maintenance

fn maintenance_notice(seen: &str) -> Vec<u8> {
    json!({
        "kind": "maintenance", "routing_key": "R", "dedup_key": KEY, "problem_seen_at": seen,
        "service": {"id": "PSVC1", "name": "Database"},
        "window": {"id": "PW1", "description": "Kernel upgrade",
                   "start_time": "2026-11-21T09:55:00Z", "end_time": "2026-11-21T12:00:00Z"},
        "at": "2026-11-21T10:01:00Z",
    })
    .to_string()
    .into_bytes()
}

fn disabled_notice() -> Vec<u8> {
    json!({
        "kind": "disabled", "routing_key": "R", "dedup_key": KEY,
        "problem_seen_at": "2026-11-21T10:00:00Z",
        "service": {"id": "PSVC1", "name": "Database"}, "at": "2026-11-21T10:01:00Z",
    })
    .to_string()
    .into_bytes()
}

fn stored_change(w: &pagerbridge_store::NewWriteback) -> pagerbridge_sync::writeback::Change {
    serde_json::from_value(w.change["change"].clone()).unwrap()
}

#[test]
fn a_problem_in_maintenance_is_acknowledged_until_the_windows_end() {
    let r = row(MonitorState::Problem, None);
    let n = nagios();
    let fx = plan_maintenance(&maintenance_notice("2026-11-21T10:00:00Z"), Some(&r), &[&n]);
    assert!(fx.updates.is_empty(), "the map does not change");
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
    let w = &fx.writebacks[0];
    assert_eq!((w.monitor.as_str(), w.dedup_key.as_str()), ("nagios", KEY));
    assert_eq!(w.change["target"], r.monitor_ref);
    let c = stored_change(w);
    assert_eq!(c.action, Action::Acknowledge);
    assert_eq!(c.author, "PagerDuty");
    assert_eq!(
        c.comment,
        "PagerDuty service Database is in maintenance until 2026-11-21T12:00:00Z: Kernel upgrade"
    );
    assert_eq!(c.expires_at, Some(ts("2026-11-21T12:00:00Z")));
    assert_eq!(c.at, ts("2026-11-21T10:01:00Z"));
    assert_eq!(c.incident_id, "", "PagerDuty opened no incident");
}

#[test]
fn maintenance_follows_each_monitors_acknowledge_policy() {
    let r = row(MonitorState::Problem, None);
    let mut comments = nagios();
    comments.name = "comments".into();
    comments.policy.on_acknowledge = Some(Action::Comment);
    let mut silent = nagios();
    silent.name = "silent".into();
    silent.policy.on_acknowledge = None;
    let fx = plan_maintenance(
        &maintenance_notice("2026-11-21T10:00:00Z"),
        Some(&r),
        &[&comments, &silent],
    );
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
    let c = stored_change(&fx.writebacks[0]);
    assert_eq!(
        (fx.writebacks[0].monitor.as_str(), c.action),
        ("comments", Action::Comment)
    );
    assert_eq!(c.expires_at, None, "a comment does not lapse");
}

#[test]
fn maintenance_is_not_written_to_an_acknowledged_recovered_or_newer_problem() {
    let n = nagios();
    let body = maintenance_notice("2026-11-21T10:00:00Z");
    for state in [MonitorState::Acknowledged, MonitorState::Recovered] {
        let r = row(state, None);
        let fx = plan_maintenance(&body, Some(&r), &[&n]);
        assert!(fx.writebacks.is_empty(), "{state:?}: {}", fx.outcome);
    }
    // The watch saw an earlier occurrence; the problem came back since.
    let r = row(MonitorState::Problem, None);
    let fx = plan_maintenance(&maintenance_notice("2026-11-21T09:00:00Z"), Some(&r), &[&n]);
    assert!(fx.writebacks.is_empty(), "{}", fx.outcome);
    assert!(fx.outcome.contains("earlier occurrence"), "{}", fx.outcome);
    // No map row.
    let fx = plan_maintenance(&body, None, &[&n]);
    assert!(fx.writebacks.is_empty());
    assert!(fx.outcome.contains("no map entry"), "{}", fx.outcome);
}

#[test]
fn a_disabled_service_gives_a_comment_never_an_acknowledgement() {
    let r = row(MonitorState::Problem, None);
    let n = nagios();
    let mut am = nagios();
    am.name = "am".into();
    am.policy = Kind::Alertmanager.default_policy();
    let fx = plan_maintenance(&disabled_notice(), Some(&r), &[&n, &am]);
    assert_eq!(fx.writebacks.len(), 1, "{}", fx.outcome);
    let c = stored_change(&fx.writebacks[0]);
    assert_eq!(fx.writebacks[0].monitor, "nagios");
    assert_eq!(c.action, Action::Comment);
    assert_eq!(
        c.comment,
        "PagerDuty service Database is disabled: no incident is opened, nobody is paged"
    );
    assert_eq!(c.expires_at, None);
    // A monitor that does not write PagerDuty's notes gets nothing.
    let mut quiet = nagios();
    quiet.policy.on_annotate = None;
    let fx = plan_maintenance(&disabled_notice(), Some(&r), &[&quiet]);
    assert!(fx.writebacks.is_empty(), "{}", fx.outcome);
}

#[test]
fn unreadable_maintenance_notices_are_set_aside() {
    let r = row(MonitorState::Problem, None);
    let n = nagios();
    for body in [
        b"not json".to_vec(),
        json!({"kind": "holiday"}).to_string().into_bytes(),
        json!({"kind": "maintenance", "routing_key": "R", "dedup_key": KEY,
               "service": {"id": "PSVC1"}, "at": "2026-11-21T10:01:00Z", "window": {}})
        .to_string()
        .into_bytes(),
    ] {
        let fx = plan_maintenance(&body, Some(&r), &[&n]);
        assert!(fx.writebacks.is_empty());
        assert!(fx.outcome.starts_with("unreadable"), "{}", fx.outcome);
        assert!(parse_maintenance(&body).is_err());
    }
}

#[test]
fn merges_are_followed_whichever_way_the_change_arrives() {
    let inc = json!({"id": "PINC1", "incident_key": KEY, "status": "resolved",
        "html_url": "https://acme.pagerduty.com/incidents/PINC1",
        "created_at": "2026-11-21T10:01:00Z", "service": {"id": "PSVC1"},
        "resolve_reason": {"type": "merge_resolve_reason",
            "incident": {"id": "PINC9", "type": "incident_reference",
                         "html_url": "https://acme.pagerduty.com/incidents/PINC9"}}});
    let log = json!({"id": "RLOG2", "type": "resolve_log_entry",
        "created_at": "2026-11-21T10:06:00Z",
        "agent": {"id": "PUSER1", "type": "user_reference", "summary": "Ann Responder"},
        "incident": {"id": "PINC1"}});
    let polled = json!({"log_entry": log, "incident": inc});
    let v2 = json!({"id": "m2", "event": "incident.resolve",
        "created_on": "2026-11-21T10:06:00Z", "incident": inc, "log_entries": [log]});
    for (origin, body) in [("poller", polled), ("webhook_v2", v2)] {
        let c = parse(origin, body.to_string().as_bytes()).unwrap().unwrap();
        assert!(
            matches!(c.kind, ChangeKind::Merged { ref into_id, .. } if into_id == "PINC9"),
            "{origin}: {:?}",
            c.kind
        );
        let fx = plan(
            &c,
            Some(&row(MonitorState::Problem, Some("PINC1"))),
            &[&nagios()],
        );
        assert!(fx.writebacks.is_empty(), "{origin}: {}", fx.outcome);
        assert_eq!(fx.updates[0].incident_id, "PINC9");
    }
}
