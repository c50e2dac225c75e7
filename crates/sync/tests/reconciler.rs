//! The reconciler against the emulator: a lost resolve is sent again (once), an
//! acknowledgement that never reached pagerbridge is fed to the inbox, and an incident
//! pagerbridge did not know by id is found by its key.

use std::time::Duration;

use jiff::Timestamp;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventKind, ListQuery, NewEvent, Origin, State, Store, SyncStore};
use pagerbridge_sync::plan::{ChangeKind, parse};
use pagerbridge_sync::reconciler::{ORIGIN, Reconciler};
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::events::EventAction;
use pagerduty::rest::{IncidentStatus, IncidentUpdate};
use pagerduty::{Event, RestClient, Severity};
use serde_json::json;

const KEY: &str = "db1/Disk /";
/// The emulator's account-level API token (its demo seed).
const ACCOUNT_TOKEN: &str = "emulator-account-token";

async fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("pagerbridge.db"))
        .await
        .unwrap();
    (dir, store)
}

fn alert(action: EventAction, when: Timestamp) -> NewEvent {
    NewEvent {
        kind: EventKind::EventsV2,
        routing_key: DEMO_ROUTING_KEY.into(),
        dedup_key: Some(KEY.into()),
        action: Some(action),
        body: json!({"routing_key": DEMO_ROUTING_KEY, "dedup_key": KEY,
                     "event_action": action.as_str()})
        .to_string()
        .into_bytes(),
        source: "test".into(),
        received_at: when,
        origin: Some(Origin {
            source: "nagios".into(),
            monitor_ref: json!({"kind": "object", "host": "db1", "service": "Disk /"}),
            problem_id: Some("7".into()),
            started_at: None,
        }),
    }
}

/// The problem as pagerbridge stored it (and, for the test, took out of the outbox as if
/// delivered), and the incident it opened in the emulator.
async fn problem(pd: &TestPd, store: &SqliteStore) -> String {
    let ids = store
        .insert(&[alert(EventAction::Trigger, Timestamp::now())])
        .await
        .unwrap();
    store.drop_events(&ids, Timestamp::now()).await.unwrap();
    let ev = Event::trigger(
        DEMO_ROUTING_KEY,
        "Disk / CRITICAL",
        "db1",
        Severity::Critical,
    )
    .with_dedup_key(KEY);
    pd.events().send(&ev).await.unwrap();
    pd.world()
        .incidents
        .iter()
        .find(|i| i.incident_key == KEY)
        .map(|i| i.id.clone())
        .unwrap()
}

fn reconciler(pd: &TestPd) -> Reconciler {
    let rest = RestClient::new(&pd.config(), ACCOUNT_TOKEN).unwrap();
    Reconciler::new(rest).with_settle(Duration::ZERO)
}

#[tokio::test]
async fn a_lost_resolve_is_sent_again_once() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let incident = problem(&pd, &store).await;
    // The monitor recovered; the resolve left the outbox but never reached PagerDuty.
    let ids = store
        .insert(&[alert(EventAction::Resolve, Timestamp::now())])
        .await
        .unwrap();
    store.drop_events(&ids, Timestamp::now()).await.unwrap();

    let r = reconciler(&pd);
    let report = r
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.checked, 1, "{report}");
    assert_eq!(report.ids_learned, 1, "found by its incident key: {report}");
    assert_eq!(report.resolves_resent, 1, "{report}");
    let pending = store
        .list(&ListQuery {
            states: vec![State::Pending],
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].action, Some(EventAction::Resolve));
    assert_eq!(pending[0].dedup_key.as_deref(), Some(KEY));
    assert_eq!(pending[0].source, "reconciler");
    let row = &store.incidents_by_dedup_key(KEY).await.unwrap()[0];
    assert_eq!(row.incident_id.as_deref(), Some(incident.as_str()));

    let again = r
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        again.resolves_resent, 0,
        "the first one is still queued: {again}"
    );
    assert_eq!(again.ids_learned, 0);
}

#[tokio::test]
async fn a_missed_acknowledgement_is_fed_to_the_inbox_once() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let incident = problem(&pd, &store).await;
    pd.rest()
        .update_incident(
            &incident,
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    let r = reconciler(&pd);
    let report = r
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.changes_fed, 1, "{report}");
    assert_eq!(
        report.resolves_resent, 0,
        "the problem is still open in the monitor"
    );
    let inbox = store.inbox_pending(10).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].origin, ORIGIN);
    let change = parse(&inbox[0].origin, &inbox[0].body).unwrap().unwrap();
    assert_eq!(change.kind, ChangeKind::Acknowledged);
    assert_eq!(change.incident_id, incident);
    assert!(change.agent.is_user);
    assert_eq!(change.agent.name, "Ada Operator");
    assert_eq!(change.incident_key.as_deref(), Some(KEY));

    let again = r
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        again.changes_fed, 0,
        "the same change is not fed twice: {again}"
    );
    assert_eq!(store.inbox_pending(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn settled_incidents_and_young_recoveries_are_left_alone() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    problem(&pd, &store).await;
    let ids = store
        .insert(&[alert(EventAction::Resolve, Timestamp::now())])
        .await
        .unwrap();
    store.drop_events(&ids, Timestamp::now()).await.unwrap();
    let rest = RestClient::new(&pd.config(), ACCOUNT_TOKEN).unwrap();
    let patient = Reconciler::new(rest);
    let report = patient
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        report.resolves_resent, 0,
        "a recovery of a moment ago is left to the outbox: {report}"
    );

    // Resolved on both sides: not checked at all.
    let ev = Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, KEY);
    pd.events().send(&ev).await.unwrap();
    store
        .update_incidents(&[pagerbridge_store::IncidentUpdate {
            routing_key: DEMO_ROUTING_KEY.into(),
            dedup_key: KEY.into(),
            incident_id: "PX".into(),
            incident_url: None,
            service_id: None,
            pd_status: Some("resolved".into()),
            at: Timestamp::now(),
        }])
        .await
        .unwrap();
    let report = reconciler(&pd)
        .reconcile_once(&store, &store, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.checked, 0, "{report}");
}
