//! The maintenance watch against the emulator: a problem whose PagerDuty service is in
//! maintenance is noted once per window (a new window, once more), one whose service is
//! disabled once, one on an active service not at all; PagerDuty is asked at most once per
//! refresh.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventKind, InboxItem, NewEvent, Origin, Store, SyncStore};
use pagerbridge_sync::maintenance::{MaintenanceWatch, ORIGIN};
use pagerbridge_sync::plan::{NoticeKind, parse_maintenance};
use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, TestPd};
use pagerduty::events::EventAction;
use pagerduty::rest::MaintenanceWindow;
use serde_json::{Value, json};

const DEMO: &str = "PDEMO01";
const DB: &str = "PDEMO02";

async fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("pagerbridge.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A problem as pagerbridge stored it (the map row comes with the event).
async fn problem(store: &SqliteStore, routing_key: &str, dedup_key: &str) {
    let ids = store
        .insert(&[NewEvent {
            kind: EventKind::EventsV2,
            routing_key: routing_key.into(),
            dedup_key: Some(dedup_key.into()),
            action: Some(EventAction::Trigger),
            body: json!({"routing_key": routing_key, "dedup_key": dedup_key,
                         "event_action": "trigger"})
            .to_string()
            .into_bytes(),
            source: "test".into(),
            received_at: Timestamp::now(),
            origin: Some(Origin {
                source: "nagios".into(),
                monitor_ref: json!({"kind": "object", "host": "db1", "service": dedup_key}),
                problem_id: Some("7".into()),
                started_at: None,
            }),
        }])
        .await
        .unwrap();
    store.drop_events(&ids, Timestamp::now()).await.unwrap();
}

fn watch(pd: &TestPd) -> MaintenanceWatch {
    MaintenanceWatch::new(pd.rest()).with_refresh(Duration::from_secs(60))
}

async fn window(pd: &TestPd, service: &str, description: &str, minutes: i64) -> MaintenanceWindow {
    let now = Timestamp::now();
    pd.rest()
        .create_maintenance_window(&MaintenanceWindow::new(
            now - SignedDuration::from_mins(1),
            now + SignedDuration::from_mins(minutes),
            Some(description.into()),
            &[service.to_string()],
        ))
        .await
        .unwrap()
}

/// The REST reads the watch made (services and maintenance windows).
fn reads(pd: &TestPd) -> usize {
    pd.exchanges()
        .iter()
        .filter(|x| {
            x.method == "GET"
                && (x.path.starts_with("/services") || x.path.starts_with("/maintenance_windows"))
        })
        .count()
}

async fn inbox(store: &SqliteStore) -> Vec<InboxItem> {
    store.inbox_pending(100).await.unwrap()
}

fn body(item: &InboxItem) -> Value {
    serde_json::from_slice(&item.body).unwrap()
}

#[tokio::test]
async fn a_problem_in_maintenance_is_noted_once_per_window() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    problem(&store, DEMO_ROUTING_KEY, "web1/HTTP").await;
    let first = window(&pd, DEMO, "Kernel upgrade", 60).await;
    let w = watch(&pd);
    let now = Timestamp::now();

    let report = w.check_once(&store, now).await.unwrap();
    assert_eq!(
        (report.checked, report.in_maintenance, report.stored),
        (1, 1, 1),
        "{report}"
    );
    assert!(report.refreshed);
    assert_eq!(reads(&pd), 2, "the services, then the ongoing windows");
    let items = inbox(&store).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].origin, ORIGIN);
    let b = body(&items[0]);
    assert_eq!(b["kind"], "maintenance");
    assert_eq!(b["routing_key"], DEMO_ROUTING_KEY);
    assert_eq!(b["dedup_key"], "web1/HTTP");
    assert_eq!(b["service"]["id"], DEMO);
    assert_eq!(b["window"]["id"], first.id.clone().unwrap().as_str());
    assert_eq!(b["window"]["description"], "Kernel upgrade");
    let notice = parse_maintenance(&items[0].body).unwrap();
    assert_eq!(
        notice.kind,
        NoticeKind::Maintenance {
            window_id: first.id.clone().unwrap(),
            description: "Kernel upgrade".into(),
            end_time: first.end_time,
        }
    );
    assert!(
        items[0]
            .external_id
            .starts_with(&format!("maint:{}:", first.id.as_deref().unwrap())),
        "{}",
        items[0].external_id
    );

    // Within the refresh: the cache answers, nothing new is stored.
    let again = w
        .check_once(&store, now + SignedDuration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((again.stored, again.refreshed), (0, false), "{again}");
    assert_eq!(reads(&pd), 2, "no REST call within the refresh");
    assert_eq!(inbox(&store).await.len(), 1);

    // After the refresh, the same window: asked again, still nothing new.
    let later = w
        .check_once(&store, now + SignedDuration::from_secs(61))
        .await
        .unwrap();
    assert_eq!((later.stored, later.refreshed), (0, true), "{later}");
    assert_eq!(reads(&pd), 4);

    // A new window (longer than the first) starts: the problem is noted again, with it.
    let second = window(&pd, DEMO, "Database migration", 120).await;
    let report = w
        .check_once(&store, now + SignedDuration::from_secs(122))
        .await
        .unwrap();
    assert_eq!(report.stored, 1, "{report}");
    assert_eq!(reads(&pd), 6);
    let items = inbox(&store).await;
    assert_eq!(items.len(), 2);
    let b = body(&items[1]);
    assert_eq!(b["window"]["id"], second.id.clone().unwrap().as_str());
    assert_eq!(b["window"]["description"], "Database migration");
    assert_eq!(
        b["window"]["end_time"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .unwrap(),
        second.end_time
    );
}

#[tokio::test]
async fn a_disabled_service_is_noted_once_and_an_active_one_not_at_all() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    problem(&store, DEMO_ROUTING_KEY, "web1/HTTP").await;
    problem(&store, DEMO_DB_ROUTING_KEY, "db1/Disk /").await;
    let svc = pd
        .rest()
        .update_service(DB, &json!({"status": "disabled"}))
        .await
        .unwrap();
    assert_eq!(svc.status, pagerduty::rest::ServiceStatus::Disabled);
    let w = watch(&pd);
    let now = Timestamp::now();

    let report = w.check_once(&store, now).await.unwrap();
    assert_eq!(
        (
            report.checked,
            report.disabled,
            report.in_maintenance,
            report.stored
        ),
        (2, 1, 0, 1),
        "{report}"
    );
    assert_eq!(reads(&pd), 1, "the services only: none is in maintenance");
    let items = inbox(&store).await;
    assert_eq!(items.len(), 1);
    let b = body(&items[0]);
    assert_eq!(b["kind"], "disabled");
    assert_eq!(b["dedup_key"], "db1/Disk /");
    assert_eq!(b["service"]["id"], DB);
    assert!(items[0].external_id.starts_with("disabled:PDEMO02:"));
    assert_eq!(
        parse_maintenance(&items[0].body).unwrap().kind,
        NoticeKind::Disabled
    );

    let again = w
        .check_once(&store, now + SignedDuration::from_secs(61))
        .await
        .unwrap();
    assert_eq!((again.stored, again.refreshed), (0, true), "{again}");
    assert_eq!(inbox(&store).await.len(), 1);
}

#[tokio::test]
async fn nothing_waits_nothing_is_asked() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let w = watch(&pd);
    let report = w.check_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!(report.checked, 0);
    assert_eq!(reads(&pd), 0, "no problem, no REST call");

    // An active service: asked, nothing stored.
    problem(&store, DEMO_ROUTING_KEY, "web1/HTTP").await;
    let report = w.check_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!((report.checked, report.stored), (1, 0), "{report}");
    assert_eq!(reads(&pd), 1);
    assert!(inbox(&store).await.is_empty());
}
