//! Filling an outbox before the daemon starts, and reading its depth while the daemon runs: a
//! SQLite file, or a PostgreSQL database (both schemas have `lanes.pending` and
//! `events.state`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use pagerbridge_server::relay::prepare;
use pagerbridge_store::postgres::PgStore;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventKind, NewEvent, Store};
use sqlx::postgres::{PgPool, PgPoolOptions};
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
    fill(&store, total, keys, batch).await?;
    store.close().await;
    Ok(started.elapsed())
}

/// [`prefill`] into the PostgreSQL database at `url` (its tables created if needed).
pub async fn prefill_postgres(
    url: &str,
    total: usize,
    keys: usize,
    batch: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let store = PgStore::connect(url).await?;
    fill(&store, total, keys, batch).await?;
    store.close().await;
    Ok(started.elapsed())
}

async fn fill(store: &dyn Store, total: usize, keys: usize, batch: usize) -> anyhow::Result<()> {
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
    Ok(())
}

/// A read-only connection to a daemon's outbox.
pub enum Reader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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
        Ok(Reader::Sqlite(pool))
    }

    /// The PostgreSQL database at `url`, whose tables exist (filled, or a daemon started).
    pub async fn open_postgres(url: &str) -> anyhow::Result<Reader> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .context("connecting to the PostgreSQL store")?;
        Ok(Reader::Postgres(pool))
    }

    /// Pending events, from the per-lane counts the dispatcher keeps (cheap at any depth).
    pub async fn pending(&self) -> anyhow::Result<u64> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(pending), 0) AS BIGINT) FROM lanes";
        let n: i64 = match self {
            Reader::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
            Reader::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await?,
        };
        Ok(n as u64)
    }

    /// Events per state.
    pub async fn states(&self) -> anyhow::Result<Vec<(String, u64)>> {
        const SQL: &str = "SELECT state, COUNT(*) FROM events GROUP BY state ORDER BY state";
        let rows: Vec<(String, i64)> = match self {
            Reader::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
            Reader::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
        };
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }

    pub async fn close(self) {
        match self {
            Reader::Sqlite(pool) => pool.close().await,
            Reader::Postgres(pool) => pool.close().await,
        }
    }
}

/// Size of the database and its write-ahead log, in bytes.
pub fn database_bytes(db: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    size(db) + size(Path::new(&wal))
}
