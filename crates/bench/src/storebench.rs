//! The outbox alone, in-process, for the analysis of ingest (not one of the goals): what one
//! durable commit costs as a function of its size, and what group commit reaches with N
//! concurrent producers and no HTTP in front.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use pagerbridge_server::relay::prepare;
use pagerbridge_store::group_commit::GroupCommit;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{
    Claim, EventKind, EventRecord, LaneResult, ListQuery, NewEvent, QueueStats, Store,
};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::load::trigger;
use crate::stats::{Latency, ms};

fn event(i: usize, keys: usize) -> NewEvent {
    let body = trigger(&format!("bench-{:07}", i % keys.max(1)));
    prepare(EventKind::EventsV2, &body, "bench", Timestamp::now())
        .expect("valid event")
        .event
}

/// A writer connection set up as the store's (WAL, `synchronous = FULL`, same cache).
async fn proto_pool(db: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(10))
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("cache_size", "-8000");
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?)
}

/// A prototype of the store's `insert` (same schema, same transaction, same durability) with
/// two statements per commit instead of two per event: one multi-row `INSERT INTO events`, and
/// one multi-row upsert of the lanes with their counts added up beforehand. Not the product's
/// code: the evidence for a suggested change.
async fn proto_insert(pool: &SqlitePool, events: &[NewEvent]) -> anyhow::Result<Vec<i64>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut ids = Vec::with_capacity(events.len());
    // 8 parameters a row; SQLite allows 32766 per statement.
    for chunk in events.chunks(4000) {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (lane, kind, routing_key, dedup_key, action, body, source, received_at) ",
        );
        b.push_values(chunk, |mut row, ev| {
            row.push_bind(ev.lane())
                .push_bind(ev.kind.as_str())
                .push_bind(ev.routing_key.clone())
                .push_bind(ev.dedup_key.clone())
                .push_bind(ev.action.map(|a| a.as_str()))
                .push_bind(ev.body.clone())
                .push_bind(ev.source.clone())
                .push_bind(ev.received_at.as_millisecond());
        });
        b.push(" RETURNING id");
        let rows: Vec<(i64,)> = b.build_query_as().fetch_all(&mut *tx).await?;
        ids.extend(rows.into_iter().map(|r| r.0));
    }
    let mut lanes: Vec<(String, String, i64, i64)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for ev in events {
        let lane = ev.lane();
        match index.get(&lane) {
            Some(&i) => lanes[i].2 += 1,
            None => {
                index.insert(lane.clone(), lanes.len());
                lanes.push((
                    lane,
                    ev.routing_key.clone(),
                    1,
                    ev.received_at.as_millisecond(),
                ));
            }
        }
    }
    for chunk in lanes.chunks(8000) {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO lanes (lane, routing_key, pending, next_attempt_at) ");
        b.push_values(chunk, |mut row, l| {
            row.push_bind(l.0.clone())
                .push_bind(l.1.clone())
                .push_bind(l.2)
                .push_bind(l.3);
        });
        b.push(" ON CONFLICT (lane) DO UPDATE SET pending = pending + excluded.pending");
        b.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// Median time of one `insert` of `size` events, `rounds` times, on a fresh database.
pub async fn commit_cost(
    dir: &Path,
    sizes: &[usize],
    rounds: usize,
    keys: usize,
) -> anyhow::Result<String> {
    let mut out = String::from(
        "| events per commit | median commit | p90 commit | events/s at that size | prototype: median commit | prototype: events/s |\n|---|---|---|---|---|---|\n",
    );
    for &size in sizes {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let store = SqliteStore::open(&dir.join("pagerbridge.db")).await?;
        let mut n = 0;
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let batch: Vec<NewEvent> = (n..n + size).map(|i| event(i, keys)).collect();
            n += size;
            let t = Instant::now();
            store.insert(&batch).await?;
            times.push(t.elapsed().as_micros() as u64);
        }
        store.close().await;
        let l = Latency::of(times);
        // The prototype, on a fresh database of the same schema.
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let db = dir.join("pagerbridge.db");
        SqliteStore::open(&db).await?.close().await;
        let pool = proto_pool(&db).await?;
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let batch: Vec<NewEvent> = (n..n + size).map(|i| event(i, keys)).collect();
            n += size;
            let t = Instant::now();
            let ids = proto_insert(&pool, &batch).await?;
            times.push(t.elapsed().as_micros() as u64);
            assert_eq!(ids.len(), size);
        }
        pool.close().await;
        let p = Latency::of(times);
        out.push_str(&format!(
            "| {size} | {} | {} | {:.0} | {} | {:.0} |\n",
            ms(l.p50),
            ms(l.p90),
            size as f64 * 1e6 / l.p50.max(1) as f64,
            ms(p.p50),
            size as f64 * 1e6 / p.p50.max(1) as f64
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(out)
}

/// Counts the commits group commit makes and the events they carry.
struct Counting {
    inner: Arc<SqliteStore>,
    /// Insert with the prototype instead of the store's own `insert`.
    proto: Option<SqlitePool>,
    commits: AtomicU64,
    events: AtomicU64,
    busy_micros: AtomicU64,
}

#[async_trait::async_trait]
impl Store for Counting {
    async fn insert(&self, events: &[NewEvent]) -> pagerbridge_store::Result<Vec<i64>> {
        let t = Instant::now();
        let r = match &self.proto {
            None => self.inner.insert(events).await,
            Some(pool) => proto_insert(pool, events)
                .await
                .map_err(|e| pagerbridge_store::StoreError::Other(e.to_string())),
        };
        self.busy_micros
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        r
    }
    async fn claim(
        &self,
        owner: &str,
        max_lanes: usize,
        per_lane: usize,
        lease: Duration,
        now: Timestamp,
    ) -> pagerbridge_store::Result<Vec<Claim>> {
        self.inner
            .claim(owner, max_lanes, per_lane, lease, now)
            .await
    }
    async fn finish(&self, results: &[LaneResult]) -> pagerbridge_store::Result<()> {
        self.inner.finish(results).await
    }
    async fn next_due(&self) -> pagerbridge_store::Result<Option<Timestamp>> {
        self.inner.next_due().await
    }
    async fn stats(&self) -> pagerbridge_store::Result<QueueStats> {
        self.inner.stats().await
    }
    async fn delivered_since(&self, since: Timestamp) -> pagerbridge_store::Result<u64> {
        self.inner.delivered_since(since).await
    }
    async fn list(&self, q: &ListQuery) -> pagerbridge_store::Result<Vec<EventRecord>> {
        self.inner.list(q).await
    }
    async fn get(&self, id: i64) -> pagerbridge_store::Result<Option<EventRecord>> {
        self.inner.get(id).await
    }
    async fn retry(&self, ids: &[i64], now: Timestamp) -> pagerbridge_store::Result<u64> {
        self.inner.retry(ids, now).await
    }
    async fn drop_events(&self, ids: &[i64], now: Timestamp) -> pagerbridge_store::Result<u64> {
        self.inner.drop_events(ids, now).await
    }
    async fn purge(&self, before: Timestamp) -> pagerbridge_store::Result<u64> {
        self.inner.purge(before).await
    }
}

/// `producers` tasks, each inserting one event at a time through the daemon's group commit
/// (batch limit 512, as in the daemon), for `seconds`.
pub async fn group_commit(
    dir: &Path,
    producers: &[usize],
    seconds: f64,
    keys: usize,
) -> anyhow::Result<String> {
    let mut out = String::from(
        "| insert | producers | events/s | commits/s | mean events per commit | writer busy |\n|---|---|---|---|---|---|\n",
    );
    for (proto, p) in producers
        .iter()
        .map(|p| (false, *p))
        .chain(producers.iter().map(|p| (true, *p)))
    {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let store = Arc::new(SqliteStore::open(&dir.join("pagerbridge.db")).await?);
        let counting = Arc::new(Counting {
            inner: store.clone(),
            proto: if proto {
                Some(proto_pool(&dir.join("pagerbridge.db")).await?)
            } else {
                None
            },
            commits: AtomicU64::new(0),
            events: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
        });
        let gc = GroupCommit::start(counting.clone(), 512);
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for t in 0..p {
            let gc = gc.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < until {
                    gc.insert(event(i, keys)).await.expect("stored");
                    i += p;
                }
            }));
        }
        let started = Instant::now();
        for t in tasks {
            t.await?;
        }
        let wall = started.elapsed().as_secs_f64();
        let commits = counting.commits.load(Ordering::Relaxed) as f64;
        let events = counting.events.load(Ordering::Relaxed) as f64;
        let busy = counting.busy_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "| {} | {p} | {:.0} | {:.0} | {:.1} | {:.0}% |\n",
            if proto { "prototype" } else { "store" },
            events / wall,
            commits / wall,
            events / commits.max(1.0),
            busy * 100.0 / wall
        ));
        drop(gc);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(pool) = Arc::try_unwrap(counting).ok().and_then(|c| c.proto) {
            pool.close().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(s) = Arc::try_unwrap(store) {
            s.close().await;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(out)
}
