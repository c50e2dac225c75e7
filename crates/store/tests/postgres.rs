//! The conformance suites on the PostgreSQL store, plus what only a shared database has:
//! several replicas (here, several `PgStore`s, each with its own pool) on one queue.
//!
//! Each test gets a fresh database on the server `PAGERBRIDGE_TEST_POSTGRES_URL` names, or on
//! a throwaway cluster the test process starts (see `pagerbridge_testkit::postgres`). Without
//! PostgreSQL a test prints `SKIPPED: <why>` and passes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::postgres::PgStore;
use pagerbridge_store::{
    EventKind, LaneResult, NewEvent, NewWriteback, Outcome, Received, State, Store, SyncEffects,
    SyncStore, WritebackOutcome,
};
use pagerbridge_testkit::postgres::fresh_database_or_skip;
use pagerduty::events::EventAction;
use serde_json::json;

async fn fresh_pg() -> Option<Arc<PgStore>> {
    let url = fresh_database_or_skip().await?;
    Some(Arc::new(PgStore::connect(&url).await.unwrap()))
}

async fn fresh() -> Option<Arc<dyn Store>> {
    Some(fresh_pg().await? as Arc<dyn Store>)
}

pagerbridge_store::conformance_tests!(optional fresh());

mod sync {
    pagerbridge_store::sync_conformance_tests!(optional super::fresh_pg());
}

/// Two replicas on one fresh database, connected at once (both run the migrations).
async fn two_replicas() -> Option<(PgStore, PgStore)> {
    let url = fresh_database_or_skip().await?;
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    Some((a.unwrap(), b.unwrap()))
}

const RK: &str = "r0utingkey0000000000000000000001";
const LEASE: Duration = Duration::from_secs(30);
const LIMIT: Duration = Duration::from_secs(60);

fn trig(dedup: &str, n: u32) -> NewEvent {
    NewEvent {
        kind: EventKind::EventsV2,
        routing_key: RK.into(),
        dedup_key: Some(dedup.into()),
        action: Some(EventAction::Trigger),
        body: format!(r#"{{"dedup_key":"{dedup}","n":{n}}}"#).into_bytes(),
        source: "replicas".into(),
        received_at: Timestamp::now(),
        origin: None,
    }
}

fn delivered(id: i64) -> Outcome {
    Outcome::Delivered {
        id,
        status: 202,
        response: "{}".into(),
        at: Timestamp::now(),
    }
}

/// What the replicas did, checked as they do it.
#[derive(Default)]
struct Ledger {
    /// lane -> the replica working it now.
    holders: HashMap<String, String>,
    /// lane -> the ids sent, in the order sent.
    sent: BTreeMap<String, Vec<i64>>,
    total: usize,
}

/// Works the queue as a dispatcher does until `expected` events have been sent: claim lanes,
/// send their events in order (recording each before the next), release.
async fn replica(store: PgStore, owner: String, ledger: Arc<Mutex<Ledger>>, expected: usize) {
    let deadline = Instant::now() + LIMIT;
    loop {
        if ledger.lock().unwrap().total >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{owner}: the queue never drained"
        );
        let claims = store
            .claim(&owner, 3, 4, LEASE, Timestamp::now())
            .await
            .unwrap();
        if claims.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for c in &claims {
            let mut l = ledger.lock().unwrap();
            if let Some(other) = l.holders.insert(c.lane.clone(), owner.clone()) {
                panic!("{owner} claimed {} while {other} held it", c.lane);
            }
        }
        for c in claims {
            for (i, e) in c.events.iter().enumerate() {
                ledger
                    .lock()
                    .unwrap()
                    .sent
                    .entry(c.lane.clone())
                    .or_default()
                    .push(e.id);
                tokio::task::yield_now().await;
                let last = i + 1 == c.events.len();
                if last {
                    ledger.lock().unwrap().holders.remove(&c.lane);
                }
                store
                    .finish(&[LaneResult {
                        lane: c.lane.clone(),
                        owner: owner.clone(),
                        outcomes: vec![delivered(e.id)],
                        retry_at: None,
                        release: last,
                    }])
                    .await
                    .unwrap();
                ledger.lock().unwrap().total += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_claiming_at_once_never_share_a_lane_and_keep_each_lanes_order() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    const LANES: usize = 12;
    const PER_BATCH: u32 = 3;
    const BATCHES: u32 = 8;
    let expected = LANES * (PER_BATCH * BATCHES) as usize;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Both replicas store events of the same lanes while both work the queue: every lane's
    // events must still go out once each, in the order of their ids.
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(w, store)| {
            tokio::spawn(async move {
                for batch in 0..BATCHES / 2 {
                    let events: Vec<NewEvent> = (0..LANES)
                        .flat_map(|lane| {
                            (0..PER_BATCH).map(move |n| {
                                trig(&format!("lane-{lane}"), (w as u32) * 1000 + batch * 10 + n)
                            })
                        })
                        .collect();
                    store.insert(&events).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let workers: Vec<_> = [(a.clone(), "replica-a"), (b.clone(), "replica-b")]
        .into_iter()
        .flat_map(|(store, name)| {
            let ledger = ledger.clone();
            // Two dispatch loops per replica, as a dispatcher runs many lanes at once.
            (0..2).map(move |i| {
                tokio::spawn(replica(
                    store.clone(),
                    format!("{name}-{i}"),
                    ledger.clone(),
                    expected,
                ))
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert_eq!(ledger.total, expected, "every event sent once");
    assert_eq!(ledger.sent.len(), LANES);
    for (lane, sent) in &ledger.sent {
        let mut in_order = sent.clone();
        in_order.sort();
        in_order.dedup();
        assert_eq!(sent, &in_order, "{lane}: sent out of order or twice");
        assert_eq!(sent.len(), (PER_BATCH * BATCHES) as usize, "{lane}");
    }
    let st = a.stats().await.unwrap();
    assert_eq!((st.pending, st.delivered), (0, expected as u64));
}

#[tokio::test]
async fn a_lease_that_passes_lets_the_other_replica_take_the_lane() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let t = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let ids = a.insert(&[trig("k", 1), trig("k", 2)]).await.unwrap();
    let mine = a.claim("replica-a", 10, 10, LEASE, t).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        b.claim(
            "replica-b",
            10,
            10,
            LEASE,
            t + SignedDuration::from_secs(29)
        )
        .await
        .unwrap()
        .is_empty(),
        "replica-a's lease holds"
    );
    // replica-a dies. Once its lease has passed, replica-b takes the lane, head first.
    let later = t + SignedDuration::from_secs(31);
    let taken = b.claim("replica-b", 10, 10, LEASE, later).await.unwrap();
    assert_eq!(taken.len(), 1, "taken over");
    assert_eq!(taken[0].owner, "replica-b");
    assert_eq!(
        taken[0].events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids
    );
    // replica-a was only slow: what it delivered counts, but it cannot free replica-b's claim.
    a.finish(&[LaneResult {
        lane: mine[0].lane.clone(),
        owner: "replica-a".into(),
        outcomes: vec![delivered(ids[0])],
        retry_at: Some(later + SignedDuration::from_secs(600)),
        release: true,
    }])
    .await
    .unwrap();
    assert_eq!(
        b.get(ids[0]).await.unwrap().unwrap().state,
        State::Delivered
    );
    assert!(
        a.claim(
            "replica-c",
            10,
            10,
            LEASE,
            later + SignedDuration::from_secs(1)
        )
        .await
        .unwrap()
        .is_empty(),
        "still replica-b's"
    );
    b.finish(&[LaneResult {
        lane: taken[0].lane.clone(),
        owner: "replica-b".into(),
        outcomes: vec![delivered(ids[0]), delivered(ids[1])],
        retry_at: None,
        release: true,
    }])
    .await
    .unwrap();
    let st = a.stats().await.unwrap();
    assert_eq!((st.pending, st.delivered), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_delivered_to_two_replicas_at_once_is_stored_once() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let now = Timestamp::now();
    for n in 0..40 {
        let id = format!("wh-{n}");
        let body = format!(r#"{{"n":{n}}}"#);
        let (x, y) = tokio::join!(
            a.receive("webhook_v3", &id, body.as_bytes(), now),
            b.receive("webhook_v3", &id, body.as_bytes(), now)
        );
        let got = [x.unwrap(), y.unwrap()];
        let new = got.iter().filter(|r| matches!(r, Received::New(_))).count();
        assert_eq!(new, 1, "{id}: {got:?}");
        assert!(got.contains(&Received::Duplicate), "{id}: {got:?}");
    }
    let inbox = a.inbox_pending(100).await.unwrap();
    assert_eq!(inbox.len(), 40, "one row per webhook id");

    // Both replicas processing the same item apply its effects once.
    let effects = SyncEffects {
        writebacks: vec![NewWriteback {
            monitor: "icinga".into(),
            routing_key: RK.into(),
            dedup_key: "k".into(),
            change: json!({"action": "acknowledge"}),
            due: now,
        }],
        outcome: "acknowledge".into(),
        ..Default::default()
    };
    let (x, y) = tokio::join!(
        a.inbox_done(inbox[0].id, &effects, now),
        b.inbox_done(inbox[0].id, &effects, now)
    );
    x.unwrap();
    y.unwrap();
    assert_eq!(a.list_writebacks(None, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_back_is_carried_out_by_one_replica_only_and_in_order() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let now = Timestamp::now();
    // Ten problems, four write-backs each (acknowledge, notes, resolve: in that order).
    let items: Vec<NewWriteback> = (0..4)
        .flat_map(|step| {
            (0..10).map(move |p| NewWriteback {
                monitor: "icinga".into(),
                routing_key: RK.into(),
                dedup_key: format!("problem-{p}"),
                change: json!({"step": step}),
                due: now,
            })
        })
        .collect();
    let ids = a.enqueue_writebacks(&items).await.unwrap();
    let done: Arc<Mutex<Vec<(String, i64, String)>>> = Arc::default();
    let workers: Vec<_> = [(a.clone(), "replica-a"), (b.clone(), "replica-b")]
        .into_iter()
        .flat_map(|(store, name)| {
            let done = done.clone();
            (0..2).map(move |i| {
                let (store, done, owner) = (store.clone(), done.clone(), format!("{name}-{i}"));
                tokio::spawn(async move {
                    let deadline = Instant::now() + LIMIT;
                    while done.lock().unwrap().len() < 40 {
                        assert!(Instant::now() < deadline, "write-backs never finished");
                        // As the sync worker does: read what is due, claim what it will
                        // run. Every worker sees the same list and races for it.
                        let now = Timestamp::now();
                        let due: Vec<i64> = store
                            .due_writebacks(now, 3)
                            .await
                            .unwrap()
                            .iter()
                            .map(|w| w.id)
                            .collect();
                        let claimed = store
                            .claim_writebacks(&owner, &due, now, LEASE)
                            .await
                            .unwrap();
                        if claimed.is_empty() {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        for w in claimed {
                            done.lock()
                                .unwrap()
                                .push((w.dedup_key.clone(), w.id, owner.clone()));
                            tokio::task::yield_now().await;
                            store
                                .finish_writeback(
                                    w.id,
                                    &WritebackOutcome::Done {
                                        detail: owner.clone(),
                                        memo: None,
                                    },
                                    Timestamp::now(),
                                )
                                .await
                                .unwrap();
                        }
                    }
                })
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let done = done.lock().unwrap();
    let unique: HashSet<i64> = done.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(done.len(), 40, "each carried out once: {done:?}");
    assert_eq!(unique.len(), 40);
    assert_eq!(unique, ids.iter().copied().collect());
    let mut per_problem: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (problem, id, _) in done.iter() {
        per_problem.entry(problem).or_default().push(*id);
    }
    for (problem, order) in per_problem {
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{problem}: out of order");
    }
    let owners: HashSet<&str> = done.iter().map(|(_, _, o)| o.as_str()).collect();
    assert!(owners.len() > 1, "both replicas worked: {owners:?}");
}

#[tokio::test]
async fn the_schema_survives_reconnecting_and_so_does_the_queue() {
    let Some(url) = fresh_database_or_skip().await else {
        return;
    };
    let s = PgStore::connect(&url).await.unwrap();
    let ids = s.insert(&[trig("k", 1)]).await.unwrap();
    s.close().await;
    let s = PgStore::connect(&url).await.unwrap();
    assert_eq!(s.stats().await.unwrap().pending, 1);
    assert!(s.get(ids[0]).await.unwrap().is_some());
    s.close().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://pb:hunter2@127.0.0.1:{port}/pb");
    let err = PgStore::connect(&url).await.err().expect("no server there");
    let msg = err.to_string();
    assert!(
        matches!(err, pagerbridge_store::StoreError::Unavailable(_)),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")),
        "names the server: {msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}
