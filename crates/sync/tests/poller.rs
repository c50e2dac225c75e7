//! The REST poller against the emulated PagerDuty (a recording server where PagerDuty must say
//! something the emulator cannot, such as a deleted incident): what it stores in a real SQLite
//! inbox, that it stores each change once across polls, pages, walks past the offset ceiling,
//! waits out throttling, and fails clearly without moving its cursor.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::SyncStore;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_sync::poller::{DEFAULT_CURSOR, ORIGIN, PollError, Poller};
use pagerbridge_testkit::{Canned, DEMO_ROUTING_KEY, Recorder, TestPd};
use pagerduty::rest::{IncidentStatus, IncidentUpdate, LogEntry, LogEntryQuery};
use pagerduty::{Event, RestClient, Severity};
use serde_json::{Value, json};

const ACCOUNT_TOKEN: &str = "emulator-account-token";
const BOB: &str = "bob@example.com";
const HOUR: Duration = Duration::from_secs(3600);

async fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("pagerbridge.db"))
        .await
        .expect("store opens");
    (dir, store)
}

/// A read client, as `pagerduty.api_token` gives the poller: no `From`.
fn reader(pd: &TestPd) -> RestClient {
    RestClient::new(&pd.config(), ACCOUNT_TOKEN).expect("client builds")
}

/// Writes as Bob Responder.
fn bob(pd: &TestPd) -> RestClient {
    RestClient::new(&pd.config(), ACCOUNT_TOKEN)
        .expect("client builds")
        .with_from(BOB)
}

/// Triggers through the Events API; returns the incident id.
async fn trigger(pd: &TestPd, dedup_key: &str) -> String {
    let ev = Event::trigger(
        DEMO_ROUTING_KEY,
        format!("{dedup_key} is down"),
        "web-01",
        Severity::Critical,
    )
    .with_dedup_key(dedup_key);
    pd.events().send(&ev).await.expect("event accepted");
    pd.world()
        .incidents
        .iter()
        .rev()
        .find(|i| i.incident_key == dedup_key)
        .map(|i| i.id.clone())
        .expect("the trigger opened an incident")
}

async fn set_status(client: &RestClient, id: &str, status: IncidentStatus) {
    client
        .update_incident(id, &IncidentUpdate::status(status))
        .await
        .expect("status change accepted");
}

/// The inbox, oldest first: (origin, external id, body).
async fn inbox(store: &SqliteStore) -> Vec<(String, String, Value)> {
    store
        .inbox_pending(100_000)
        .await
        .expect("inbox reads")
        .into_iter()
        .map(|i| {
            let body = serde_json::from_slice(&i.body).expect("inbox body is JSON");
            (i.origin, i.external_id, body)
        })
        .collect()
}

/// Every log entry the emulator holds, oldest first.
async fn emulator_log(pd: &TestPd) -> Vec<LogEntry> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = reader(pd)
            .list_log_entries(&LogEntryQuery::default(), offset, 100)
            .await
            .expect("log entries list");
        offset += page.items.len() as u64;
        all.extend(page.items);
        if !page.more {
            break;
        }
    }
    all.reverse();
    all
}

async fn inject_fault(pd: &TestPd, fault: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/faults", pd.url()))
        .json(&fault)
        .send()
        .await
        .expect("admin API answers");
    assert!(resp.status().is_success(), "fault refused: {resp:?}");
}

async fn saved_cursor(store: &SqliteStore) -> Option<String> {
    store.cursor(DEFAULT_CURSOR).await.expect("cursor reads")
}

#[tokio::test]
async fn stores_each_change_with_its_incident_and_each_only_once() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let a = trigger(&pd, "disk-full-web-01").await;
    let b = trigger(&pd, "load-db-01").await;
    set_status(&bob(&pd), &a, IncidentStatus::Acknowledged).await;
    bob(&pd)
        .create_note(&a, "replacing the disk")
        .await
        .expect("note added");
    set_status(&pd.rest(), &a, IncidentStatus::Triggered).await;
    set_status(&bob(&pd), &b, IncidentStatus::Resolved).await;
    // A notification, as PagerDuty logs them between the changes: read, not stored.
    {
        let mut w = pd.world();
        let mut notify = w.logs[0].clone();
        notify.id = "RNOTIFY0000000000000000001".into();
        notify.kind = "notify_log_entry";
        notify.created_at = Timestamp::now();
        w.logs.push(notify);
    }

    let poller = Poller::new(reader(&pd), HOUR);
    let report = poller
        .poll_once(&store, Timestamp::now())
        .await
        .expect("poll succeeds");
    assert_eq!(
        (
            report.entries,
            report.stored,
            report.skipped,
            report.duplicates
        ),
        (7, 6, 1, 0),
        "{report:?}"
    );
    assert_eq!(report.incidents_fetched, 2, "one request per incident");

    let log = emulator_log(&pd).await;
    let relevant: Vec<&LogEntry> = log
        .iter()
        .filter(|l| l.kind != "notify_log_entry")
        .collect();
    let items = inbox(&store).await;
    let ids: Vec<&str> = items.iter().map(|(_, id, _)| id.as_str()).collect();
    let expected: Vec<String> = relevant.iter().map(|l| format!("log:{}", l.id)).collect();
    assert_eq!(ids, expected, "exactly the relevant entries, oldest first");
    assert!(items.iter().all(|(origin, _, _)| origin == ORIGIN));

    let kinds: Vec<(&str, &str)> = items
        .iter()
        .map(|(_, _, b)| {
            (
                b["incident"]["id"].as_str().unwrap(),
                b["log_entry"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (a.as_str(), "trigger_log_entry"),
            (b.as_str(), "trigger_log_entry"),
            (a.as_str(), "acknowledge_log_entry"),
            (a.as_str(), "annotate_log_entry"),
            (a.as_str(), "unacknowledge_log_entry"),
            (b.as_str(), "resolve_log_entry"),
        ]
    );
    let ack = &items[2].2;
    assert_eq!(ack["log_entry"]["agent"]["summary"], "Bob Responder");
    assert_eq!(ack["log_entry"]["agent"]["type"], "user_reference");
    assert_eq!(items[3].2["log_entry"]["note"], "replacing the disk");
    // The incident as it is now, with what planning needs to find the monitor's problem.
    assert_eq!(ack["incident"]["incident_key"], "disk-full-web-01");
    assert_eq!(ack["incident"]["status"], "triggered");
    assert_eq!(ack["incident"]["service"]["id"], "PDEMO01");
    assert!(
        ack["incident"]["html_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&a))
    );
    assert_eq!(items[5].2["incident"]["status"], "resolved");
    assert_eq!(items[5].2["incident"]["incident_key"], "load-db-01");

    // The cursor is the newest entry's time (the notification's, logged last), skipped or not.
    let newest = log.iter().map(|l| l.created_at).max().unwrap();
    assert_eq!(saved_cursor(&store).await, Some(newest.to_string()));
    assert_eq!(report.cursor, Some(newest));

    // The overlap reads everything again; nothing is stored twice, nor fetched again.
    let again = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 6), "{again:?}");
    assert_eq!(again.incidents_fetched, 0);
    // A restarted poller (no memory of what it stored) is kept honest by the inbox itself.
    let restarted = Poller::new(reader(&pd), HOUR);
    let third = restarted.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!((third.stored, third.duplicates), (0, 6), "{third:?}");
    assert!(
        third.since < newest,
        "the overlap reaches before the cursor"
    );
    assert_eq!(inbox(&store).await.len(), 6);
}

#[tokio::test]
async fn a_later_poll_stores_only_the_new_changes() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let a = trigger(&pd, "mem-app-01").await;
    let poller = Poller::new(reader(&pd), HOUR);
    let first = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!(first.stored, 1);
    let before: Vec<String> = inbox(&store).await.into_iter().map(|i| i.1).collect();

    set_status(&bob(&pd), &a, IncidentStatus::Acknowledged).await;
    bob(&pd).create_note(&a, "looking").await.unwrap();
    let c = trigger(&pd, "mem-app-02").await;
    let second = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!((second.stored, second.duplicates), (3, 1), "{second:?}");

    let after = inbox(&store).await;
    assert_eq!(after.len(), 4);
    assert_eq!(
        after[0].1, before[0],
        "the first change is still stored once"
    );
    let new: Vec<(&str, &str)> = after[1..]
        .iter()
        .map(|(_, _, b)| {
            (
                b["incident"]["id"].as_str().unwrap(),
                b["log_entry"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        new,
        [
            (a.as_str(), "acknowledge_log_entry"),
            (a.as_str(), "annotate_log_entry"),
            (c.as_str(), "trigger_log_entry"),
        ]
    );
    // The incident is read at poll time: acknowledged now.
    assert_eq!(after[1].2["incident"]["status"], "acknowledged");
}

#[tokio::test]
async fn more_than_a_page_of_entries_is_read_page_by_page() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    let mut ids = Vec::new();
    for n in 0..60 {
        ids.push(trigger(&pd, &format!("page-{n}")).await);
    }
    let acks: Vec<IncidentUpdate> = ids
        .iter()
        .map(|id| IncidentUpdate {
            id: Some(id.clone()),
            ..IncidentUpdate::status(IncidentStatus::Acknowledged)
        })
        .collect();
    bob(&pd).update_incidents(&acks).await.expect("bulk ack");

    let poller = Poller::new(reader(&pd), HOUR);
    let report = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!(report.pages, 2, "120 entries are two pages of 100");
    assert_eq!((report.entries, report.stored), (120, 120), "{report:?}");
    assert_eq!(report.incidents_fetched, 60, "each incident fetched once");
    assert_eq!(report.requests, 62);

    let items = inbox(&store).await;
    let mut unique: Vec<&str> = items.iter().map(|i| i.1.as_str()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120);
    let expected: Vec<String> = emulator_log(&pd)
        .await
        .iter()
        .map(|l| format!("log:{}", l.id))
        .collect();
    let got: Vec<String> = items.into_iter().map(|i| i.1).collect();
    assert_eq!(got, expected, "every entry, oldest first");
    // Each list request asked for all entries, a hundred at a time.
    let list_paths: Vec<String> = pd
        .exchanges()
        .into_iter()
        .filter(|x| x.path.starts_with("/log_entries?") && x.path.contains("since="))
        .map(|x| x.path)
        .collect();
    assert_eq!(list_paths.len(), 2);
    assert!(
        list_paths
            .iter()
            .all(|p| p.contains("is_overview=false") && p.contains("limit=100")),
        "{list_paths:?}"
    );
}

/// Spreads the emulator's log over the past, one entry per second, in the order logged.
fn spread_log(pd: &TestPd, start: Timestamp, step: SignedDuration) {
    let mut w = pd.world();
    for (n, log) in w.logs.iter_mut().enumerate() {
        log.created_at = start + step * (n as i32);
    }
}

#[tokio::test]
async fn a_window_longer_than_the_offset_ceiling_is_walked_by_time() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    for n in 0..40 {
        let id = trigger(&pd, &format!("walk-{n}")).await;
        set_status(&bob(&pd), &id, IncidentStatus::Resolved).await;
    }
    let start = Timestamp::from_second(Timestamp::now().as_second() - 600).unwrap();
    spread_log(&pd, start, SignedDuration::from_secs(1));

    // A ceiling of 30 with pages of 10: the 80 entries need the walk to move `until` twice.
    let poller = Poller::new(reader(&pd), HOUR).with_page_bounds(10, 30);
    let report = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert_eq!((report.entries, report.stored), (80, 80), "{report:?}");
    let items = inbox(&store).await;
    let log = emulator_log(&pd).await;
    let expected: Vec<String> = log.iter().map(|l| format!("log:{}", l.id)).collect();
    let got: Vec<String> = items.iter().map(|i| i.1.clone()).collect();
    assert_eq!(got, expected, "every entry once, oldest first");
    let untils = pd
        .exchanges()
        .into_iter()
        .filter(|x| x.path.starts_with("/log_entries?") && x.path.contains("until="))
        .count();
    assert!(
        untils >= 2,
        "the walk continued by time ({untils} requests)"
    );
    assert_eq!(log[79].created_at, start + SignedDuration::from_secs(79));
    assert_eq!(
        saved_cursor(&store).await,
        Some(log[79].created_at.to_string())
    );
}

#[tokio::test]
async fn more_entries_in_one_second_than_the_ceiling_fail_without_moving_the_cursor() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    for n in 0..20 {
        trigger(&pd, &format!("dense-{n}")).await;
    }
    let at = Timestamp::now() - SignedDuration::from_mins(5);
    spread_log(&pd, at, SignedDuration::ZERO);
    let poller = Poller::new(reader(&pd), HOUR).with_page_bounds(5, 10);
    let err = poller
        .poll_once(&store, Timestamp::now())
        .await
        .expect_err("the API cannot page through 20 entries of one second");
    assert!(matches!(err, PollError::TooDense { max: 10, .. }), "{err}");
    assert_eq!(saved_cursor(&store).await, None);
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_pagerduty_asks() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    trigger(&pd, "throttled-1").await;
    inject_fault(
        &pd,
        json!({"kind": "rate_limit", "retry_after": 1, "count": 1, "scope": "rest"}),
    )
    .await;
    let poller = Poller::new(reader(&pd), HOUR);
    let started = Instant::now();
    let report = poller.poll_once(&store, Timestamp::now()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!((report.retries, report.stored), (1, 1), "{report:?}");
    assert_eq!(report.waited, Duration::from_secs(1));
    let statuses: Vec<u16> = pd
        .exchanges()
        .into_iter()
        .filter(|x| x.path.starts_with("/log_entries?"))
        .map(|x| x.status)
        .collect();
    assert_eq!(statuses, [429, 200], "asked again once, after the wait");
}

#[tokio::test]
async fn throttling_that_does_not_end_fails_the_poll_after_bounded_waits() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    trigger(&pd, "throttled-2").await;
    inject_fault(
        &pd,
        json!({"kind": "rate_limit", "retry_after": 30, "seconds": 60, "scope": "rest"}),
    )
    .await;
    let poller = Poller::new(reader(&pd), HOUR).with_retries(3, Duration::from_millis(600));
    let started = Instant::now();
    let err = poller
        .poll_once(&store, Timestamp::now())
        .await
        .expect_err("still throttled");
    let took = started.elapsed();
    assert!(matches!(err, PollError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("429"), "{err}");
    // Two waits of at most 600 ms, not the 30 s PagerDuty asked for, and not a busy loop.
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let tries = pd
        .exchanges()
        .iter()
        .filter(|x| x.path.starts_with("/log_entries?"))
        .count();
    assert_eq!(tries, 3);
    assert_eq!(saved_cursor(&store).await, None);
    assert!(inbox(&store).await.is_empty());
}

#[tokio::test]
async fn a_wrong_token_names_the_setting_and_leaves_the_cursor() {
    let pd = TestPd::start().await;
    let (_dir, store) = open_store().await;
    trigger(&pd, "auth-1").await;
    Poller::new(reader(&pd), HOUR)
        .poll_once(&store, Timestamp::now())
        .await
        .unwrap();
    let cursor = saved_cursor(&store).await;
    assert!(cursor.is_some());
    let id = trigger(&pd, "auth-2").await;
    set_status(&bob(&pd), &id, IncidentStatus::Acknowledged).await;

    let wrong = RestClient::new(&pd.config(), "not-the-token").unwrap();
    let err = Poller::new(wrong, HOUR)
        .poll_once(&store, Timestamp::now())
        .await
        .expect_err("401");
    assert!(matches!(err, PollError::Unauthorized { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("pagerduty.api_token") && msg.contains("401"),
        "{msg}"
    );
    assert_eq!(saved_cursor(&store).await, cursor);
    assert_eq!(inbox(&store).await.len(), 1);
    let refused = pd.exchanges().iter().filter(|x| x.status == 401).count();
    assert_eq!(refused, 1, "a refused token is not tried again");
}

#[tokio::test]
async fn an_unreachable_pagerduty_is_named() {
    let (_dir, store) = open_store().await;
    // A port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = pagerduty::ClientConfig::single_host(&format!("http://{addr}")).unwrap();
    let client = RestClient::new(&config, ACCOUNT_TOKEN).unwrap();
    let err = Poller::new(client, HOUR)
        .with_retries(2, Duration::from_millis(500))
        .poll_once(&store, Timestamp::now())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, PollError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    assert_eq!(saved_cursor(&store).await, None);
}

// ---------------------------------------------------------------- a scripted PagerDuty

fn log_entry(id: &str, kind: &str, incident: &str, at: &str) -> Value {
    json!({
        "id": id, "type": kind, "summary": kind, "created_at": at,
        "agent": {"id": "PBOB002", "type": "user_reference", "summary": "Bob Responder"},
        "channel": {"type": "website"},
        "service": {"id": "PSVC001", "type": "service_reference"},
        "incident": {"id": incident, "type": "incident_reference"},
    })
}

fn page(entries: Vec<Value>) -> Canned {
    Canned::json(
        200,
        json!({"log_entries": entries, "limit": 100, "offset": 0, "more": false, "total": null}),
    )
}

fn incident(id: &str, key: &str) -> Canned {
    Canned::json(
        200,
        json!({"incident": {
            "id": id, "type": "incident", "status": "acknowledged", "incident_key": key,
            "html_url": format!("https://acme.pagerduty.com/incidents/{id}"),
            "service": {"id": "PSVC001", "type": "service_reference"},
        }}),
    )
}

fn not_found() -> Canned {
    Canned::json(
        404,
        json!({"error": {"message": "Incident Not Found", "code": 5001}}),
    )
}

fn paths(rec: &Recorder) -> Vec<String> {
    rec.requests()
        .into_iter()
        .map(|r| r.uri.split('?').next().unwrap().to_owned())
        .collect()
}

fn scripted_poller(rec: &Recorder) -> Poller {
    let config = pagerduty::ClientConfig::single_host(&rec.url()).unwrap();
    Poller::new(RestClient::new(&config, "token").unwrap(), HOUR)
}

#[tokio::test]
async fn an_incident_that_no_longer_exists_is_stored_as_null() {
    let rec = Recorder::start(Canned::json(500, json!({}))).await;
    let (_dir, store) = open_store().await;
    rec.push(page(vec![
        log_entry(
            "R3",
            "acknowledge_log_entry",
            "PLIVE01",
            "2026-03-01T10:00:03Z",
        ),
        log_entry("R2", "assign_log_entry", "PGONE01", "2026-03-01T10:00:02Z"),
        log_entry("R1", "resolve_log_entry", "PGONE01", "2026-03-01T10:00:01Z"),
    ]));
    rec.push(not_found());
    rec.push(incident("PLIVE01", "cpu-web-02"));
    let now: Timestamp = "2026-03-01T10:05:00Z".parse().unwrap();
    let report = scripted_poller(&rec).poll_once(&store, now).await.unwrap();
    assert_eq!(
        (report.stored, report.skipped, report.incidents_missing),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        paths(&rec),
        ["/log_entries", "/incidents/PGONE01", "/incidents/PLIVE01"],
        "skipped entries cost no incident request"
    );
    let query = rec.requests()[0].uri.clone();
    for part in [
        "since=2026-03-01T09%3A05%3A00Z",
        "is_overview=false",
        "offset=0",
        "limit=100",
    ] {
        assert!(query.contains(part), "{part} missing from {query}");
    }
    let items = inbox(&store).await;
    assert_eq!(items[0].1, "log:R1");
    assert_eq!(items[0].2["incident"], Value::Null);
    assert_eq!(items[0].2["log_entry"]["incident"]["id"], "PGONE01");
    assert_eq!(items[1].1, "log:R3");
    assert_eq!(items[1].2["incident"]["incident_key"], "cpu-web-02");
    assert_eq!(
        saved_cursor(&store).await.as_deref(),
        Some("2026-03-01T10:00:03Z")
    );
}

#[tokio::test]
async fn a_poll_failing_midway_keeps_what_it_stored_and_the_next_one_finishes() {
    let rec = Recorder::start(Canned::json(500, json!({}))).await;
    let (_dir, store) = open_store().await;
    let entries = vec![
        log_entry(
            "R2",
            "acknowledge_log_entry",
            "PB00001",
            "2026-03-01T10:00:02Z",
        ),
        log_entry(
            "R1",
            "acknowledge_log_entry",
            "PA00001",
            "2026-03-01T10:00:01Z",
        ),
    ];
    let now: Timestamp = "2026-03-01T10:05:00Z".parse().unwrap();
    rec.push(page(entries.clone()));
    rec.push(incident("PA00001", "a"));
    rec.push(Canned::json(
        403,
        json!({"error": {"message": "Access Denied", "code": 2010}}),
    ));
    let poller = scripted_poller(&rec);
    let err = poller.poll_once(&store, now).await.expect_err("403");
    assert!(matches!(err, PollError::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("pagerduty.api_token"), "{err}");
    assert_eq!(saved_cursor(&store).await, None, "the cursor did not move");
    let ids: Vec<String> = inbox(&store).await.into_iter().map(|i| i.1).collect();
    assert_eq!(ids, ["log:R1"], "what was stored before the failure stays");

    // The next poll reads the same window again and stores only what is missing.
    rec.push(page(entries));
    rec.push(incident("PB00001", "b"));
    let report = poller.poll_once(&store, now).await.unwrap();
    assert_eq!((report.stored, report.duplicates), (1, 1), "{report:?}");
    let ids: Vec<String> = inbox(&store).await.into_iter().map(|i| i.1).collect();
    assert_eq!(ids, ["log:R1", "log:R2"]);
    assert_eq!(
        saved_cursor(&store).await.as_deref(),
        Some("2026-03-01T10:00:02Z")
    );
    let second_query = &rec.requests()[3].uri;
    assert!(
        second_query.contains("since=2026-03-01T09%3A05%3A00Z"),
        "the failed poll's window is read again: {second_query}"
    );
}
