//! Self-alerting through a real daemon and the emulator: pagerbridge raises its own incident
//! (on a service of its own) when an event stays undelivered or a dead letter appears, by its
//! own request to PagerDuty, and resolves it once the outbox is healthy again.
//!
//! "PagerDuty down for deliveries" is a window of 503s on the Events API, for every request:
//! the self-alert's own first tries fail too and must be retried. The relay retries its event
//! only after the window and after the self-alert got through (a long `initial_delay`), so
//! the self incident has something to report, and the relay's success then resolves it.

mod common;

use std::time::Duration;

use common::*;
use pagerbridge_store::{State, Store};
use pagerbridge_testkit::TestPd;
use pagerduty::rest::IncidentStatus;
use pagerduty_emulator::{Emulator, FaultKind};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const SELF_KEY: &str = "pagerbridge-self-alert/test";

fn opts(self_alert: &str, initial_delay: &'static str) -> Opts {
    Opts {
        initial_delay,
        max_delay: initial_delay,
        extra: format!(
            "[self_alert]\nrouting_key = \"{DEMO_DB_ROUTING_KEY}\"\nmax_age = \"1s\"\n\
             check_interval = \"1s\"\n{self_alert}"
        ),
        ..Opts::default()
    }
}

/// The self incident's title and status, once it exists.
fn self_incident(pd: &Emulator, key: &str) -> Option<(String, IncidentStatus)> {
    let w = pd.world();
    w.incidents
        .iter()
        .rfind(|i| i.incident_key == key)
        .map(|i| (i.title.clone(), i.status))
}

/// The body of the last trigger the emulator took for `key`.
fn last_trigger(pd: &Emulator, key: &str) -> Value {
    received(pd, key)
        .into_iter()
        .rfind(|r| r.body["event_action"] == "trigger" && r.status == 202)
        .map(|r| r.body)
        .unwrap_or_else(|| panic!("no trigger for {key}"))
}

/// At start pagerbridge closes whatever self incident a previous run may have left open: a
/// resolve PagerDuty takes and ignores. Waiting for it keeps later faults for the test's own
/// events.
async fn started(pd: &Emulator, key: &str) {
    eventually("the self-alert's first look", WAIT, || async {
        received(pd, key)
            .iter()
            .any(|r| r.body["event_action"] == "resolve" && r.status == 202)
            .then_some(())
    })
    .await;
}

async fn no_self_events_in_the_outbox(store: &dyn Store) {
    let all = all_records(store).await;
    assert!(
        all.iter().all(|r| r.routing_key != DEMO_DB_ROUTING_KEY),
        "the self-alert went through the outbox: {all:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_failing_deliveries_opens_a_self_incident_and_recovery_resolves_it() {
    let pd = TestPd::start().await;
    let d = Daemon::start(&pd, opts(&format!("dedup_key = \"{SELF_KEY}\"\n"), "16s")).await;
    started(&pd, SELF_KEY).await;

    // PagerDuty answers 503 to every event for 2.5 s; the relay's event fails once and waits
    // at least 8 s before its next try.
    inject(
        &pd,
        pagerduty_emulator::FaultSpec {
            status: Some(503),
            seconds: Some(2.5),
            ..fault(FaultKind::Status)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "mq1/stuck", 1)).await;

    let (title, status) = eventually("the self incident opens", WAIT, || async {
        self_incident(&pd, SELF_KEY)
    })
    .await;
    assert_eq!(status, IncidentStatus::Triggered);
    assert!(
        title.starts_with("pagerbridge on ")
            && title.contains(": 1 event undelivered, oldest ")
            && title.ends_with(" (PagerDuty answers 503)"),
        "{title}"
    );
    // The relay's event is still waiting: the self-alert did not need it to go first.
    let rec = records(&d.store(), "mq1/stuck").await;
    assert_eq!(rec[0].state, State::Pending, "{rec:#?}");
    // Its own first try hit the outage too, and was retried.
    assert!(
        answered(&pd, 503) >= 2,
        "the relay's and the self-alert's tries"
    );
    let details = &last_trigger(&pd, SELF_KEY)["payload"]["custom_details"];
    assert_eq!(details["undelivered"], 1, "{details}");
    assert_eq!(details["pagerduty_last_status"], 503, "{details}");
    assert_eq!(details["dead_letters"], 0, "{details}");

    // PagerDuty is back: the relay delivers, and the self incident is resolved.
    wait_drained(&d.store(), WAIT).await;
    eventually("the self incident is resolved", WAIT, || async {
        self_incident(&pd, SELF_KEY)
            .filter(|(_, s)| *s == IncidentStatus::Resolved)
            .map(|_| ())
    })
    .await;
    assert_eq!(
        incident(&pd, "mq1/stuck"),
        (Some(IncidentStatus::Triggered), 1)
    );
    // One self incident for the whole episode.
    assert_eq!(incident(&pd, SELF_KEY).1, 1);
    no_self_events_in_the_outbox(d.store().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_opens_a_self_incident_until_an_operator_drops_it() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, opts("", "50ms")).await;
    // The default dedup key: one per host.
    let key = eventually("the self-alert's first look", WAIT, || async {
        all_received(&pd)
            .into_iter()
            .find(|r| r.routing_key.as_deref() == Some(DEMO_DB_ROUTING_KEY))
            .and_then(|r| r.dedup_key)
    })
    .await;
    assert!(key.starts_with("pagerbridge-self-alert/"), "{key}");
    started(&pd, &key).await;

    pd.refuse_next_events(400, 1);
    d.send(&trigger(DEMO_ROUTING_KEY, "bad/1", 1)).await;
    let (title, _) = eventually("the self incident opens", WAIT, || async {
        self_incident(&pd, &key)
    })
    .await;
    assert!(title.ends_with(": 1 dead letter"), "{title}");
    let trigger = last_trigger(&pd, &key);
    assert_eq!(trigger["payload"]["severity"], "error");
    assert_eq!(trigger["payload"]["custom_details"]["dead_letters"], 1);

    // The operator drops it (`pagerbridge queue drop`): healthy again, resolved.
    let dead = records(&d.store(), "bad/1").await;
    assert_eq!(dead[0].state, State::Dead);
    d.store()
        .drop_events(&[dead[0].id], jiff::Timestamp::now())
        .await
        .unwrap();
    eventually("the self incident is resolved", WAIT, || async {
        self_incident(&pd, &key)
            .filter(|(_, s)| *s == IncidentStatus::Resolved)
            .map(|_| ())
    })
    .await;
    assert_eq!(incident(&pd, &key).1, 1);
    no_self_events_in_the_outbox(d.store().as_ref()).await;
    d.stop().await;
}
