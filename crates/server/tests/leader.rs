//! Leader election on PostgreSQL: one replica leads; leadership moves when the leader resigns
//! or loses its connection; leader-only tasks run exactly while their replica leads.
//! Skipped (saying so) when no PostgreSQL can be had.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pagerbridge_server::leader::{self, Leadership};
use pagerbridge_server::metrics::Metrics;
use pagerbridge_store::postgres::PgStore;
use sqlx::Connection;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A leader-only task that counts how many copies of it run.
fn counted(
    running: Arc<AtomicUsize>,
) -> impl Fn(watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    move |mut stop| {
        let running = running.clone();
        vec![tokio::spawn(async move {
            running.fetch_add(1, Ordering::SeqCst);
            let _ = stop.wait_for(|s| *s).await;
            running.fetch_sub(1, Ordering::SeqCst);
        })]
    }
}

fn leaders(all: &[&Leadership]) -> Vec<String> {
    all.iter()
        .filter(|l| l.is_leader())
        .map(|l| l.replica().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_leadership_moves_when_it_goes() {
    let Some(url) = pagerbridge_testkit::postgres::fresh_database_or_skip().await else {
        return;
    };
    let store = Arc::new(PgStore::connect(&url).await.unwrap());
    let metrics = Arc::new(Metrics::new());
    let (a, election_a) =
        leader::campaign(&url, "a".into(), store.clone(), metrics.clone()).expect("the URL parses");
    until("a leads", || a.is_leader()).await;
    let (b, election_b) =
        leader::campaign(&url, "b".into(), store.clone(), Arc::new(Metrics::new()))
            .expect("the URL parses");
    let (stop, stopped) = watch::channel(false);
    let running = Arc::new(AtomicUsize::new(0));
    let tasks = [&a, &b].map(|l| {
        tokio::spawn(leader::while_leading(
            l.clone(),
            stopped.clone(),
            counted(running.clone()),
        ))
    });

    // b tries for a while and does not lead; it knows who does.
    tokio::time::sleep(leader::CHECK_EVERY * 2).await;
    assert_eq!(leaders(&[&a, &b]), ["a"]);
    assert_eq!(running.load(Ordering::SeqCst), 1);
    let view = b.view().await;
    assert!(!view.leading);
    assert_eq!(view.leader.as_ref().map(|r| r.replica.as_str()), Some("a"));
    let text = pagerbridge_server::metrics::render(
        &metrics,
        None,
        &Default::default(),
        jiff::Timestamp::now(),
    );
    assert!(
        text.contains("pagerbridge_leader{replica=\"a\"} 1"),
        "{text}"
    );

    // a's session ends under it (a network cut, a database failover, an administrator): a
    // steps down and stops its tasks; one replica leads again within seconds.
    let mut a_changes = a.subscribe();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'pagerbridge leader election (a)'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, [true]);
    let started = Instant::now();
    tokio::time::timeout(WAIT, a_changes.wait_for(|l| !*l))
        .await
        .expect("a steps down")
        .unwrap();
    until("one replica leads again", || {
        leaders(&[&a, &b]).len() == 1 && running.load(Ordering::SeqCst) == 1
    })
    .await;
    eprintln!(
        "leader test: a's connection cut; {:?} leads {:.1} s later",
        leaders(&[&a, &b]),
        started.elapsed().as_secs_f64()
    );

    // The leader resigns (a clean stop): the other takes over within a try.
    let (leader, other, election, remaining) = if a.is_leader() {
        (a.clone(), b.clone(), election_a, election_b)
    } else {
        (b.clone(), a.clone(), election_b, election_a)
    };
    election.resign().await;
    assert!(!leader.is_leader());
    let started = Instant::now();
    until("the other replica takes over", || other.is_leader()).await;
    assert!(
        started.elapsed() < leader::CHECK_EVERY + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    until("its tasks run, once", || {
        running.load(Ordering::SeqCst) == 1
    })
    .await;

    let _ = stop.send(true);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(running.load(Ordering::SeqCst), 0, "leader-only tasks stop");
    remaining.resign().await;
    store.as_ref().clone().close().await;
}
