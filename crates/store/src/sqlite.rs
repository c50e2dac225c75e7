//! The embedded outbox: one SQLite file in the data directory.
//!
//! Durability settings, and why:
//! - `journal_mode = WAL`: a commit appends to the write-ahead log instead of rewriting pages
//!   and a rollback journal, so one commit is one sequential write plus one `fsync`, and readers
//!   (the CLI, `queue status`) never block the writer.
//! - `synchronous = FULL`: in WAL mode SQLite then `fsync`s the log at every commit, so a
//!   committed event survives a power loss, not only a crash of the process. (`NORMAL` would
//!   lose the last commits on power loss: events we already answered 2xx to.) The cost of that
//!   `fsync` is shared by every event in a commit, see [`crate::group_commit`].
//! - `busy_timeout`: the CLI (`pagerbridge event ...`) writes into the same file while the
//!   daemon runs; a writer waits for the other instead of failing.
//! - a bounded page cache: the queue lives on disk, not in memory, whatever its length.
//!
//! One writer connection: SQLite admits one writer at a time anyway, and a single connection
//! keeps this process's writes in order without lock contention. Reads use their own pool.
//! Claims are held in memory: only one daemon uses a data directory (see [`DataDirLock`]), and a
//! claim has no meaning after a restart, so writing them down would cost an `fsync` for nothing.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, Transaction};
use tokio::sync::Mutex;

use crate::rows::{ms, record, ts};
use crate::{
    Claim, EventKind, EventRecord, InboxItem, IncidentUpdate, KeyStats, LaneResult, ListQuery,
    MappedIncident, NewEvent, NewWriteback, Outcome, QueueStats, Received, Result, Store,
    StoreError, SyncEffects, SyncStore, WritebackOutcome, WritebackRecord, WritebackState,
};

#[path = "sqlite_sync.rs"]
mod sync;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per multi-row statement: far below SQLite's limit of 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Rows deleted per purge transaction, so purging a large backlog never holds the writer long.
const PURGE_CHUNK: i64 = 5_000;

/// Who opens the database: the daemon, or a short-lived CLI process.
#[derive(Clone, Copy)]
enum Use {
    Daemon,
    Brief,
}

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    /// lane -> (owner, expires)
    claims: Mutex<HashMap<String, (String, Timestamp)>>,
    /// write-back id -> (owner, expires)
    writeback_claims: Mutex<HashMap<i64, (String, Timestamp)>>,
}

/// Maps SQLite's result codes to what the caller can do about them.
fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return match primary {
            // SQLITE_FULL
            Some(13) => StoreError::Full(db.message().to_owned()),
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN
            Some(5 | 6 | 8 | 10 | 14) => StoreError::Unavailable(db.message().to_owned()),
            _ => StoreError::Other(db.message().to_owned()),
        };
    }
    match e {
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("database pool timed out".into()),
        other => StoreError::Other(other.to_string()),
    }
}

/// An error opening the database at `path`, naming it (SQLite's "unable to open database file"
/// does not say which).
fn opening(path: &Path, e: sqlx::Error) -> StoreError {
    let what = format!("cannot open {}", path.display());
    match map_err(e) {
        StoreError::Full(m) => StoreError::Full(format!("{what}: {m}")),
        StoreError::Invalid(m) => StoreError::Invalid(format!("{what}: {m}")),
        StoreError::Unavailable(m) | StoreError::Other(m) => {
            StoreError::Unavailable(format!("{what}: {m}"))
        }
    }
}

/// Brings the schema up to date. The migrator's own bookkeeping costs several statements;
/// `pagerbridge send` opens the store once per notification, so a database already at the
/// latest version (recorded in `user_version` after migrating) skips it with one read.
async fn migrate(writer: &SqlitePool) -> std::result::Result<(), sqlx::Error> {
    let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    let current: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(writer)
        .await?;
    if current == latest {
        return Ok(());
    }
    MIGRATIONS.run(writer).await?;
    // A PRAGMA takes no bound parameters; `latest` is a number from the migration files.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA user_version = {latest}"
    )))
    .execute(writer)
    .await?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Use::Daemon).await
    }

    /// Opens the database for a process that writes a few rows and exits (`pagerbridge send`,
    /// `event`, one per notification). The first connection to a database nobody else has
    /// open replays the whole write-ahead log, which the daemon lets grow to SQLite's default
    /// of 1,000 pages (4 MB) before copying it into the database: with the daemon down, every
    /// notification would read up to 4 MB before writing one row. Such a process checkpoints
    /// at 64 pages instead, so the log the next one replays stays small.
    pub async fn open_brief(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Use::Brief).await
    }

    async fn open_with(path: &Path, usage: Use) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let writer_opts = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("cache_size", "-8000");
        let writer_opts = match usage {
            Use::Daemon => writer_opts,
            Use::Brief => writer_opts.pragma("wal_autocheckpoint", "64"),
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // When a COMMIT fails (a full disk), SQLite has already ended the transaction, the
            // ROLLBACK sqlx then sends fails, and sqlx keeps counting the transaction as open:
            // every later BEGIN on that connection would fail. Such a connection is closed
            // instead of being reused; the pool opens a fresh one.
            .after_release(|conn, _| {
                let clean = !conn.is_in_transaction();
                Box::pin(async move { Ok(clean) })
            })
            .connect_with(writer_opts)
            .await
            .map_err(|e| opening(path, e))?;
        migrate(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", path.display())))?;
        let reader_opts = base
            .read_only(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("cache_size", "-2000");
        // Lazy: a CLI call that only inserts never opens a reader.
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(reader_opts);
        Ok(SqliteStore {
            writer,
            reader,
            path: path.to_owned(),
            claims: Mutex::new(HashMap::new()),
            writeback_claims: Mutex::new(HashMap::new()),
        })
    }

    /// Opens a `sqlite://` URL (`sqlite:///abs/path.db` or `sqlite://relative.db`).
    pub async fn open_url(url: &str) -> Result<SqliteStore> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| StoreError::Invalid(format!("not a sqlite:// URL: {url}")))?;
        let path = path.split('?').next().unwrap_or(path);
        SqliteStore::open(Path::new(path)).await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pools after checkpointing the log into the database file, so the next open
    /// does not replay it.
    pub async fn close(self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await;
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'_, Sqlite>> {
        // IMMEDIATE takes the write lock at once, so a transaction never fails half-way on
        // a lock another process (the CLI) took after it started.
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    async fn unclaimed_due(
        &self,
        now: Timestamp,
        want: usize,
        claims: &HashMap<String, (String, Timestamp)>,
    ) -> Result<Vec<(String, String)>> {
        let live = claims.values().filter(|(_, exp)| *exp > now).count();
        let rows = sqlx::query(
            "SELECT lane, routing_key FROM lanes WHERE next_attempt_at <= ?1 \
             ORDER BY next_attempt_at, lane LIMIT ?2",
        )
        .bind(ms(now))
        .bind((want + live) as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .filter(|(lane, _)| !held(claims, lane, now))
            .take(want)
            .collect())
    }
}

/// Whether a live claim holds `lane`.
fn held(claims: &HashMap<String, (String, Timestamp)>, lane: &str, now: Timestamp) -> bool {
    claims.get(lane).is_some_and(|(_, expires)| *expires > now)
}

const EVENT_COLUMNS: &str = "e.id, e.lane, e.kind, e.routing_key, e.dedup_key, e.action, e.body, \
    e.source, e.received_at, e.state, e.attempts, e.last_attempt_at, e.last_status, e.last_error, \
    e.response, e.finished_at, e.coalesced_into, l.next_attempt_at";

/// After events of `lane` left the pending state: lowers its count, and removes the lane when
/// nothing is left (checking, so that a count off by an operator's concurrent change can never
/// strand pending events).
async fn lane_lost(tx: &mut Transaction<'_, Sqlite>, lane: &str, n: u64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let left: Option<i64> = sqlx::query_scalar(
        "UPDATE lanes SET pending = pending - ?1 WHERE lane = ?2 RETURNING pending",
    )
    .bind(n as i64)
    .bind(lane)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    if left.is_some_and(|p| p <= 0) {
        let real: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE lane = ?1 AND state = 'pending' LIMIT 1)",
        )
        .bind(lane)
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
        if real == 0 {
            sqlx::query("DELETE FROM lanes WHERE lane = ?1")
                .bind(lane)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        } else {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM events WHERE lane = ?1 AND state = 'pending'",
            )
            .bind(lane)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            sqlx::query("UPDATE lanes SET pending = ?1 WHERE lane = ?2")
                .bind(count)
                .bind(lane)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OutcomeKind {
    Delivered,
    Dead,
    Coalesced,
    Failed,
}

impl OutcomeKind {
    fn of(o: &Outcome) -> OutcomeKind {
        match o {
            Outcome::Delivered { .. } => OutcomeKind::Delivered,
            Outcome::Dead { .. } => OutcomeKind::Dead,
            Outcome::Coalesced { .. } => OutcomeKind::Coalesced,
            Outcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}

/// Applies outcomes of one kind in one statement; returns the lane of each event that left the
/// pending state (events an operator dropped meanwhile are not pending and stay as they are).
async fn apply_outcomes(
    tx: &mut Transaction<'_, Sqlite>,
    kind: OutcomeKind,
    rows: &[&Outcome],
) -> Result<Vec<String>> {
    let mut b = QueryBuilder::<Sqlite>::new("WITH v (id, status, text, at, into_id) AS (");
    b.push_values(rows, |mut row, o| {
        let (id, status, text, at, into): (
            i64,
            Option<i64>,
            Option<String>,
            Timestamp,
            Option<i64>,
        ) = match o {
            Outcome::Delivered {
                id,
                status,
                response,
                at,
            } => (*id, Some(*status as i64), Some(response.clone()), *at, None),
            Outcome::Dead {
                id,
                status,
                error,
                at,
            }
            | Outcome::Failed {
                id,
                status,
                error,
                at,
            } => (
                *id,
                status.map(|s| s as i64),
                Some(error.clone()),
                *at,
                None,
            ),
            Outcome::Coalesced { id, into, at } => (*id, None, None, *at, Some(*into)),
        };
        row.push_bind(id)
            .push_bind(status)
            .push_bind(text)
            .push_bind(ms(at))
            .push_bind(into);
    });
    b.push(match kind {
        OutcomeKind::Delivered => {
            ") UPDATE events SET state = 'delivered', attempts = attempts + 1, last_status = v.status, \
             response = v.text, last_attempt_at = v.at, finished_at = v.at, last_error = NULL"
        }
        OutcomeKind::Dead => {
            ") UPDATE events SET state = 'dead', attempts = attempts + 1, last_status = v.status, \
             last_error = v.text, last_attempt_at = v.at, finished_at = v.at"
        }
        OutcomeKind::Coalesced => {
            ") UPDATE events SET state = 'coalesced', coalesced_into = v.into_id, finished_at = v.at"
        }
        OutcomeKind::Failed => {
            ") UPDATE events SET attempts = attempts + 1, last_status = v.status, last_error = v.text, \
             last_attempt_at = v.at"
        }
    });
    b.push(" FROM v WHERE events.id = v.id AND events.state = 'pending' RETURNING events.lane");
    let lanes: Vec<String> = b
        .build_query_scalar()
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    // A failed attempt leaves its event pending: no lane loses anything.
    Ok(if kind == OutcomeKind::Failed {
        Vec::new()
    } else {
        lanes
    })
}

/// [`lane_lost`] for many lanes in a few statements.
async fn lanes_lost(tx: &mut Transaction<'_, Sqlite>, left: &HashMap<String, i64>) -> Result<()> {
    let rows: Vec<(&String, &i64)> = left.iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut b = QueryBuilder::<Sqlite>::new("WITH v (lane, n) AS (");
        b.push_values(chunk, |mut row, (lane, n)| {
            row.push_bind((*lane).clone()).push_bind(**n);
        });
        b.push(") UPDATE lanes SET pending = pending - v.n FROM v WHERE lanes.lane = v.lane");
        b.build().execute(&mut **tx).await.map_err(map_err)?;
        // Emptied lanes go; a count an operator's concurrent change put off is recounted, so
        // pending events are never stranded without a lane.
        for (sql, tail) in [
            (
                "DELETE FROM lanes WHERE pending <= 0 AND NOT EXISTS \
                 (SELECT 1 FROM events e WHERE e.lane = lanes.lane AND e.state = 'pending') AND lane IN (",
                ")",
            ),
            (
                "UPDATE lanes SET pending = (SELECT COUNT(*) FROM events e WHERE e.lane = lanes.lane \
                 AND e.state = 'pending') WHERE pending <= 0 AND lane IN (",
                ")",
            ),
        ] {
            let mut b = QueryBuilder::<Sqlite>::new(sql);
            let mut sep = b.separated(", ");
            for (lane, _) in chunk {
                sep.push_bind((*lane).clone());
            }
            b.push(tail);
            b.build().execute(&mut **tx).await.map_err(map_err)?;
        }
    }
    Ok(())
}

/// After an event of `lane` became pending again: counts it, due at `due` at the latest.
async fn lane_gained(
    tx: &mut Transaction<'_, Sqlite>,
    lane: &str,
    routing_key: &str,
    due: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO lanes (lane, routing_key, pending, next_attempt_at) VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (lane) DO UPDATE SET pending = pending + 1, \
         next_attempt_at = MIN(next_attempt_at, excluded.next_attempt_at)",
    )
    .bind(lane)
    .bind(routing_key)
    .bind(ms(due))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert(&self, events: &[NewEvent]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let lanes: Vec<String> = events.iter().map(NewEvent::lane).collect();
        let mut tx = self.begin().await?;
        let mut ids = Vec::with_capacity(events.len());
        for (chunk, chunk_lanes) in events
            .chunks(ROWS_PER_STATEMENT)
            .zip(lanes.chunks(ROWS_PER_STATEMENT))
        {
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (lane, kind, routing_key, dedup_key, action, body, source, received_at) ",
            );
            b.push_values(chunk.iter().zip(chunk_lanes), |mut row, (ev, lane)| {
                row.push_bind(lane.clone())
                    .push_bind(ev.kind.as_str())
                    .push_bind(ev.routing_key.clone())
                    .push_bind(ev.dedup_key.clone())
                    .push_bind(ev.action.map(|a| a.as_str()))
                    .push_bind(ev.body.clone())
                    .push_bind(ev.source.clone())
                    .push_bind(ms(ev.received_at));
            });
            b.push(" RETURNING id");
            let mut got: Vec<i64> = b
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            // SQLite numbers the rows of one INSERT in the order of its VALUES (the write lock
            // is ours); the order RETURNING lists them in is unspecified.
            got.sort_unstable();
            ids.extend(got);
        }
        // One row per lane, counted here. A lane that exists may be backing off: new events do
        // not make it due sooner (the upsert keeps its next_attempt_at); a new lane is due at once.
        let mut per_lane: Vec<(&str, &str, i64, i64)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (ev, lane) in events.iter().zip(&lanes) {
            match index.get(lane.as_str()) {
                Some(&i) => per_lane[i].2 += 1,
                None => {
                    index.insert(lane, per_lane.len());
                    per_lane.push((lane, &ev.routing_key, 1, ms(ev.received_at)));
                }
            }
        }
        for chunk in per_lane.chunks(ROWS_PER_STATEMENT) {
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO lanes (lane, routing_key, pending, next_attempt_at) ",
            );
            b.push_values(chunk, |mut row, (lane, rk, n, at)| {
                row.push_bind(lane.to_string())
                    .push_bind(rk.to_string())
                    .push_bind(*n)
                    .push_bind(*at);
            });
            b.push(" ON CONFLICT (lane) DO UPDATE SET pending = pending + excluded.pending");
            b.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        sync::map_origins(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }

    async fn claim(
        &self,
        owner: &str,
        max_lanes: usize,
        per_lane: usize,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<Claim>> {
        if max_lanes == 0 {
            return Ok(Vec::new());
        }
        let mut claims = self.claims.lock().await;
        claims.retain(|_, (_, exp)| *exp > now);
        let due = self.unclaimed_due(now, max_lanes, &claims).await?;
        let expires =
            now + jiff::SignedDuration::try_from(lease).unwrap_or(jiff::SignedDuration::MAX);
        let mut out = Vec::with_capacity(due.len());
        // Built from constants only; values are bound.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN lanes l ON l.lane = e.lane \
             WHERE e.lane = ?1 AND e.state = 'pending' ORDER BY e.id LIMIT ?2"
        );
        for (lane, routing_key) in due {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&lane)
                .bind(per_lane.max(1) as i64)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
            let events = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
            if events.is_empty() {
                continue;
            }
            claims.insert(lane.clone(), (owner.to_owned(), expires));
            out.push(Claim {
                lane,
                routing_key,
                events,
                owner: owner.to_owned(),
                expires,
            });
        }
        Ok(out)
    }

    async fn finish(&self, results: &[LaneResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        // A few statements per commit, whatever the number of outcomes: one per kind of
        // outcome, then the lanes. (One statement per event made the writer spend its time
        // handing work between threads rather than writing.)
        let outcomes: Vec<&Outcome> = results.iter().flat_map(|r| &r.outcomes).collect();
        let mut tx = self.begin().await?;
        let mut left: HashMap<String, i64> = HashMap::new();
        for kind in [
            OutcomeKind::Delivered,
            OutcomeKind::Dead,
            OutcomeKind::Coalesced,
            OutcomeKind::Failed,
        ] {
            let rows: Vec<&Outcome> = outcomes
                .iter()
                .copied()
                .filter(|o| OutcomeKind::of(o) == kind)
                .collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let lanes: Vec<String> = apply_outcomes(&mut tx, kind, chunk).await?;
                for lane in lanes {
                    *left.entry(lane).or_default() += 1;
                }
            }
        }
        lanes_lost(&mut tx, &left).await?;
        let retries: Vec<(&str, i64)> = results
            .iter()
            .filter_map(|r| r.retry_at.map(|at| (r.lane.as_str(), ms(at))))
            .collect();
        for chunk in retries.chunks(ROWS_PER_STATEMENT) {
            let mut b = QueryBuilder::<Sqlite>::new("WITH v (lane, at) AS (");
            b.push_values(chunk, |mut row, (lane, at)| {
                row.push_bind(lane.to_string()).push_bind(*at);
            });
            b.push(") UPDATE lanes SET next_attempt_at = v.at FROM v WHERE lanes.lane = v.lane");
            b.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        let mut claims = self.claims.lock().await;
        for r in results.iter().filter(|r| r.release) {
            if claims.get(&r.lane).is_some_and(|(o, _)| *o == r.owner) {
                claims.remove(&r.lane);
            }
        }
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        let claims = self.claims.lock().await;
        let now = Timestamp::now();
        let live = claims.values().filter(|(_, exp)| *exp > now).count();
        let rows = sqlx::query(
            "SELECT lane, next_attempt_at FROM lanes ORDER BY next_attempt_at LIMIT ?1",
        )
        .bind((live + 1) as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(rows
            .iter()
            .find(|r| !held(&claims, &r.get::<String, _>(0), now))
            .map(|r| ts(r.get(1))))
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut s = QueueStats::default();
        for row in sqlx::query(
            "SELECT state, COUNT(*) FROM events WHERE state IN ('delivered', 'coalesced', 'dropped') GROUP BY state",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        {
            let n = row.get::<i64, _>(1) as u64;
            match row.get::<String, _>(0).as_str() {
                "delivered" => s.delivered = n,
                "coalesced" => s.coalesced = n,
                _ => s.dropped = n,
            }
        }
        s.dead = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE state = 'dead'")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)? as u64;
        let rows = sqlx::query(
            "SELECT l.routing_key, SUM(l.pending), COUNT(*), MIN(l.next_attempt_at), \
             MIN((SELECT received_at FROM events e WHERE e.lane = l.lane AND e.state = 'pending' ORDER BY e.id LIMIT 1)) \
             FROM lanes l GROUP BY l.routing_key ORDER BY SUM(l.pending) DESC, l.routing_key",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        for row in rows {
            let k = KeyStats {
                routing_key: row.get(0),
                pending: row.get::<i64, _>(1) as u64,
                lanes: row.get::<i64, _>(2) as u64,
                next_attempt_at: row.get::<Option<i64>, _>(3).map(ts),
                oldest_pending_at: row.get::<Option<i64>, _>(4).map(ts),
            };
            s.pending += k.pending;
            s.oldest_pending_at = match (s.oldest_pending_at, k.oldest_pending_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.by_routing_key.push(k);
        }
        Ok(s)
    }

    async fn delivered_since(&self, since: Timestamp) -> Result<u64> {
        // `events_finished (finished_at, state)` covers it: a range scan, not a table scan.
        let n = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events WHERE finished_at >= ?1 AND state = 'delivered'",
        )
        .bind(ms(since))
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<EventRecord>> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN lanes l ON l.lane = e.lane WHERE 1 = 1"
        ));
        if !q.states.is_empty() {
            b.push(" AND e.state IN (");
            let mut sep = b.separated(", ");
            for s in &q.states {
                sep.push_bind(s.as_str());
            }
            b.push(")");
        }
        if let Some(rk) = &q.routing_key {
            b.push(" AND e.routing_key = ").push_bind(rk.clone());
        }
        if let Some(dk) = &q.dedup_key {
            b.push(" AND e.dedup_key = ").push_bind(dk.clone());
        }
        if let Some(before) = q.before_id {
            b.push(" AND e.id < ").push_bind(before);
        }
        let limit = if q.limit == 0 { 100 } else { q.limit };
        b.push(" ORDER BY e.id DESC LIMIT ").push_bind(limit as i64);
        let rows = b.build().fetch_all(&self.reader).await.map_err(map_err)?;
        rows.iter().map(record).collect()
    }

    async fn get(&self, id: i64) -> Result<Option<EventRecord>> {
        // Built from constants only; the id is bound.
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN lanes l ON l.lane = e.lane WHERE e.id = ?1"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn retry(&self, ids: &[i64], now: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for id in ids {
            let row = sqlx::query(
                "UPDATE events SET state = 'pending', attempts = 0, finished_at = NULL, coalesced_into = NULL \
                 WHERE id = ?1 AND state IN ('dead', 'dropped') RETURNING lane, routing_key",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if let Some(row) = row {
                lane_gained(
                    &mut tx,
                    &row.get::<String, _>(0),
                    &row.get::<String, _>(1),
                    now,
                )
                .await?;
                n += 1;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn drop_events(&self, ids: &[i64], now: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for id in ids {
            let row = sqlx::query("SELECT state, lane FROM events WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some(row) = row else { continue };
            let (state, lane): (String, String) = (row.get(0), row.get(1));
            if state != "pending" && state != "dead" {
                continue;
            }
            sqlx::query("UPDATE events SET state = 'dropped', finished_at = ?1 WHERE id = ?2")
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if state == "pending" {
                lane_lost(&mut tx, &lane, 1).await?;
            }
            n += 1;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn purge(&self, before: Timestamp) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let n = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events \
                 WHERE state IN ('delivered', 'coalesced', 'dropped') AND finished_at < ?1 LIMIT ?2)",
            )
            .bind(ms(before))
            .bind(PURGE_CHUNK)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            tx.commit().await.map_err(map_err)?;
            total += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait]
impl SyncStore for SqliteStore {
    async fn receive(
        &self,
        origin: &str,
        external_id: &str,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Received> {
        self.sync_receive(origin, external_id, body, now).await
    }

    async fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>> {
        self.sync_inbox_pending(limit).await
    }

    async fn inbox_done(&self, id: i64, effects: &SyncEffects, now: Timestamp) -> Result<()> {
        self.sync_inbox_done(id, effects, now).await
    }

    async fn incidents_by_dedup_key(&self, dedup_key: &str) -> Result<Vec<MappedIncident>> {
        self.sync_incidents_by_dedup_key(dedup_key).await
    }

    async fn incidents_by_id(&self, incident_id: &str) -> Result<Vec<MappedIncident>> {
        self.sync_incidents_by_id(incident_id).await
    }

    async fn list_incidents(&self, open_only: bool, limit: usize) -> Result<Vec<MappedIncident>> {
        self.sync_list_incidents(open_only, limit).await
    }

    async fn update_incidents(&self, updates: &[IncidentUpdate]) -> Result<()> {
        self.sync_update_incidents(updates).await
    }

    async fn enqueue_writebacks(&self, items: &[NewWriteback]) -> Result<Vec<i64>> {
        self.sync_enqueue_writebacks(items, Timestamp::now()).await
    }

    async fn due_writebacks(&self, now: Timestamp, limit: usize) -> Result<Vec<WritebackRecord>> {
        self.sync_due_writebacks(now, limit).await
    }

    async fn claim_writebacks(
        &self,
        owner: &str,
        ids: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<WritebackRecord>> {
        self.sync_claim_writebacks(owner, ids, now, lease).await
    }

    async fn finish_writeback(
        &self,
        id: i64,
        outcome: &WritebackOutcome,
        now: Timestamp,
    ) -> Result<()> {
        self.sync_finish_writeback(id, outcome, now).await
    }

    async fn list_writebacks(
        &self,
        state: Option<WritebackState>,
        limit: usize,
    ) -> Result<Vec<WritebackRecord>> {
        self.sync_list_writebacks(state, limit).await
    }

    async fn seen(&self, key: &str) -> Result<bool> {
        self.sync_seen(key).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>> {
        self.sync_cursor(name).await
    }

    async fn set_cursor(&self, name: &str, value: &str, now: Timestamp) -> Result<()> {
        self.sync_set_cursor(name, value, now).await
    }
}

/// Exclusive use of a data directory by one daemon: two daemons on one SQLite outbox would
/// each believe they own every claim and send every event twice.
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates the directory if needed and takes its lock, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("pagerbridge.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot write in data directory {}: {e}",
                    dir.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(StoreError::Unavailable(format!(
                    "data directory {} is in use by another pagerbridge daemon{}",
                    dir.display(),
                    match holder.trim() {
                        "" => String::new(),
                        pid => format!(" (pid {pid})"),
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        // The pid is only for the message above; the lock is what counts.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        let _ = file.sync_all();
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FromStr for EventKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        EventKind::parse(s).ok_or_else(|| StoreError::Invalid(format!("unknown event kind {s:?}")))
    }
}
