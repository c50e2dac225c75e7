//! Filling an outbox before the daemon starts, and reading its depth while the daemon runs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use pagerbridge_server::relay::prepare;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventKind, NewEvent, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::load::trigger;

/// Stores `total` triggers over `keys` dedup keys (event `i` has key `i % keys`), `batch` per
/// transaction, through the store's own `insert` and the relay's own `prepare`: the rows are
/// what the relay would have stored. Returns how long it took.
pub async fn prefill(
    db: &Path,
    total: usize,
    keys: usize,
    batch: usize,
) -> anyhow::Result<Duration> {
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let started = Instant::now();
    let store = SqliteStore::open(db).await?;
    let keys = keys.max(1);
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        let now = Timestamp::now();
        let events: Vec<NewEvent> = (done..done + n)
            .map(|i| {
                let body = trigger(&format!("bench-{:07}", i % keys));
                prepare(EventKind::EventsV2, &body, "bench prefill", now)
                    .map(|p| p.event)
                    .map_err(|r| anyhow::anyhow!("invalid event: {:?}", r.messages()))
            })
            .collect::<anyhow::Result<_>>()?;
        store.insert(&events).await?;
        done += n;
    }
    store.close().await;
    Ok(started.elapsed())
}

/// A read-only connection to a daemon's outbox.
pub struct Reader {
    pool: SqlitePool,
}

impl Reader {
    pub async fn open(db: &Path) -> anyhow::Result<Reader> {
        let opts = SqliteConnectOptions::new()
            .filename(db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening {} read-only", db.display()))?;
        Ok(Reader { pool })
    }

    /// Pending events, from the per-lane counts the dispatcher keeps (cheap at any depth).
    pub async fn pending(&self) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(pending), 0) FROM lanes")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Events per state.
    pub async fn states(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM events GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// Size of the database and its write-ahead log, in bytes.
pub fn database_bytes(db: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    size(db) + size(Path::new(&wal))
}
