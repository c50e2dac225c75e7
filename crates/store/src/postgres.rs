//! The shared outbox: PostgreSQL, for several replicas of the daemon on one database.
//!
//! What differs from the embedded store, and why:
//! - Claims are rows, not memory: a replica claims a lane by locking its row in `lanes` with
//!   `FOR UPDATE SKIP LOCKED` (so replicas never wait on each other's claims) and writing its
//!   name and a lease there. Another replica takes the lane once the lease has passed: a
//!   crashed replica's work is picked up, a live one's never is. Write-backs are claimed the
//!   same way, one row each.
//! - Locks are always taken in one order, lane rows (sorted by lane) before event rows before
//!   incident-map rows (sorted by key), so that replicas storing, finishing and dropping events
//!   at once never deadlock.
//! - An insert locks the rows of its lanes *before* numbering its events: two replicas storing
//!   events of one lane commit one after the other, and the later one's events get the higher
//!   ids. A lane's order by id is then its order of commit, and no event can appear ahead of one
//!   already claimed.
//! - Durability is PostgreSQL's: a commit returns once the write-ahead log is flushed
//!   (`synchronous_commit = on`, the default; with a synchronous standby, once the standby has
//!   it too). Every method is one transaction.
//! - Times are Unix milliseconds in `BIGINT` columns, as in SQLite, so both backends round and
//!   compare alike. Leases compare with the `now` the caller passes: replicas' clocks must agree
//!   to well within a lease (NTP does).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};

use crate::rows::{ms, record, ts};
use crate::{
    Claim, EventRecord, InboxItem, IncidentUpdate, KeyStats, LaneResult, ListQuery, MappedIncident,
    NewEvent, NewWriteback, Outcome, QueueStats, Received, Result, Store, StoreError, SyncEffects,
    SyncStore, WritebackOutcome, WritebackRecord, WritebackState,
};

#[path = "postgres_sync.rs"]
mod sync;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The longest [`PgStore::connect`] waits for the server to answer.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// Rows deleted per purge transaction, so purging a large backlog never holds locks long.
const PURGE_CHUNK: i64 = 5_000;

/// The outbox in PostgreSQL. Cheap to clone: clones share one pool. Two `PgStore`s (two pools,
/// two processes or hosts) on one database are two replicas: they share the queue and never
/// work the same lane at once.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    now.checked_add(jiff::SignedDuration::try_from(lease).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Maps PostgreSQL's SQLSTATE classes to what the caller can do about them.
fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let msg = db.message().to_owned();
        return match code.as_str() {
            // disk_full
            "53100" => StoreError::Full(msg),
            // serialization_failure, deadlock_detected: nothing was written; try again.
            "40001" | "40P01" => StoreError::Unavailable(msg),
            // read_only_sql_transaction (a standby), lock_not_available
            "25006" | "55P03" => StoreError::Unavailable(msg),
            // connection exceptions, insufficient resources, operator intervention (shutdown,
            // restart), system errors
            c if c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c.starts_with("58") =>
            {
                StoreError::Unavailable(msg)
            }
            _ => StoreError::Other(msg),
        };
    }
    match e {
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("database pool timed out".into()),
        sqlx::Error::PoolClosed => StoreError::Unavailable("database pool closed".into()),
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("TLS: {e}")),
        other => StoreError::Other(other.to_string()),
    }
}

/// The URL with its password masked, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`, or
    /// `postgresql://`) and brings the schema up to date. Replicas starting together migrate
    /// one at a time (the migrator holds an advisory lock).
    ///
    /// The first connection is made at once and not retried, so that a wrong URL or a server
    /// that is down is reported now (within [`CONNECT_LIMIT`]); later connections are opened as
    /// needed and retried for up to 30 s, across a server restart or a failover.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let what = || format!("cannot connect to {}", redact_url(url));
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", what())))?;
        let unavailable = |m: String| StoreError::Unavailable(format!("{}: {m}", what()));
        let mut first = tokio::time::timeout(CONNECT_LIMIT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| unavailable(format!("no answer within {CONNECT_LIMIT:?}")))?
            .map_err(|e| match map_err(e) {
                StoreError::Full(m) => StoreError::Full(format!("{}: {m}", what())),
                StoreError::Invalid(m) | StoreError::Unavailable(m) | StoreError::Other(m) => {
                    unavailable(m)
                }
            })?;
        MIGRATIONS
            .run(&mut first)
            .await
            .map_err(|e| StoreError::Other(format!("migrating {}: {e}", redact_url(url))))?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options);
        Ok(PgStore { pool })
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(self) {
        self.pool.close().await;
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_err)
    }
}

/// Locks the rows of `lanes` (those that exist) in lane order: the first lock any writer of
/// lanes takes, so that two writers never wait on each other in a cycle.
async fn lock_lanes(tx: &mut Transaction<'_, Postgres>, lanes: &[String]) -> Result<()> {
    if lanes.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT lane FROM lanes WHERE lane = ANY($1) ORDER BY lane FOR UPDATE")
        .bind(lanes)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// [`lock_lanes`] for the lanes of the events `ids`.
async fn lock_lanes_of(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT lane FROM lanes WHERE lane IN (SELECT lane FROM events WHERE id = ANY($1)) \
         ORDER BY lane FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

const EVENT_COLUMNS: &str = "e.id, e.lane, e.kind, e.routing_key, e.dedup_key, e.action, e.body, \
    e.source, e.received_at, e.state, e.attempts, e.last_attempt_at, e.last_status, e.last_error, \
    e.response, e.finished_at, e.coalesced_into, l.next_attempt_at";

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
    tx: &mut Transaction<'_, Postgres>,
    kind: OutcomeKind,
    rows: &[&Outcome],
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut statuses: Vec<Option<i32>> = Vec::with_capacity(rows.len());
    let mut texts: Vec<Option<String>> = Vec::with_capacity(rows.len());
    let mut ats = Vec::with_capacity(rows.len());
    let mut intos: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    for o in rows {
        let (id, status, text, at, into) = match o {
            Outcome::Delivered {
                id,
                status,
                response,
                at,
            } => (*id, Some(*status as i32), Some(response.clone()), *at, None),
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
                status.map(|s| s as i32),
                Some(error.clone()),
                *at,
                None,
            ),
            Outcome::Coalesced { id, into, at } => (*id, None, None, *at, Some(*into)),
        };
        ids.push(id);
        statuses.push(status);
        texts.push(text);
        ats.push(ms(at));
        intos.push(into);
    }
    let set = match kind {
        OutcomeKind::Delivered => {
            "SET state = 'delivered', attempts = events.attempts + 1, last_status = v.status, \
             response = v.text, last_attempt_at = v.at, finished_at = v.at, last_error = NULL"
        }
        OutcomeKind::Dead => {
            "SET state = 'dead', attempts = events.attempts + 1, last_status = v.status, \
             last_error = v.text, last_attempt_at = v.at, finished_at = v.at"
        }
        OutcomeKind::Coalesced => {
            "SET state = 'coalesced', coalesced_into = v.into_id, finished_at = v.at"
        }
        OutcomeKind::Failed => {
            "SET attempts = events.attempts + 1, last_status = v.status, last_error = v.text, \
             last_attempt_at = v.at"
        }
    };
    // Built from constants only; values are bound.
    let sql = format!(
        "UPDATE events {set} FROM UNNEST($1::BIGINT[], $2::INTEGER[], $3::TEXT[], $4::BIGINT[], \
         $5::BIGINT[]) AS v (id, status, text, at, into_id) \
         WHERE events.id = v.id AND events.state = 'pending' RETURNING events.lane"
    );
    let lanes: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&statuses)
        .bind(&texts)
        .bind(&ats)
        .bind(&intos)
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

/// After events left the pending state: lowers their lanes' counts, and removes the lanes left
/// with nothing (checking, so that a count off by an operator's concurrent change can never
/// strand pending events).
async fn lanes_lost(
    tx: &mut Transaction<'_, Postgres>,
    left: &BTreeMap<String, i64>,
) -> Result<()> {
    if left.is_empty() {
        return Ok(());
    }
    let lanes: Vec<String> = left.keys().cloned().collect();
    let counts: Vec<i64> = left.values().copied().collect();
    sqlx::query(
        "UPDATE lanes SET pending = lanes.pending - v.n \
         FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS v (lane, n) WHERE lanes.lane = v.lane",
    )
    .bind(&lanes)
    .bind(&counts)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "DELETE FROM lanes WHERE lane = ANY($1) AND pending <= 0 AND NOT EXISTS \
         (SELECT 1 FROM events e WHERE e.lane = lanes.lane AND e.state = 'pending')",
    )
    .bind(&lanes)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "UPDATE lanes SET pending = (SELECT COUNT(*) FROM events e WHERE e.lane = lanes.lane \
         AND e.state = 'pending') WHERE lane = ANY($1) AND pending <= 0",
    )
    .bind(&lanes)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn insert(&self, events: &[NewEvent]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let lanes: Vec<String> = events.iter().map(NewEvent::lane).collect();
        // One row per lane, counted here, in lane order (the locking order). A lane that exists
        // may be backing off: new events do not make it due sooner; a new lane is due at once.
        let mut per_lane: BTreeMap<&str, (&str, i64, i64)> = BTreeMap::new();
        for (ev, lane) in events.iter().zip(&lanes) {
            per_lane
                .entry(lane)
                .and_modify(|(_, n, _)| *n += 1)
                .or_insert((&ev.routing_key, 1, ms(ev.received_at)));
        }
        let lane_names: Vec<&str> = per_lane.keys().copied().collect();
        let lane_keys: Vec<&str> = per_lane.values().map(|(rk, _, _)| *rk).collect();
        let lane_counts: Vec<i64> = per_lane.values().map(|(_, n, _)| *n).collect();
        let lane_due: Vec<i64> = per_lane.values().map(|(_, _, at)| *at).collect();

        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO lanes (lane, routing_key, pending, next_attempt_at) \
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
             ON CONFLICT (lane) DO UPDATE SET pending = lanes.pending + excluded.pending",
        )
        .bind(&lane_names)
        .bind(&lane_keys)
        .bind(&lane_counts)
        .bind(&lane_due)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // Numbered now that the lanes are ours: ids drawn together, sorted, and handed out in
        // the order given, so they increase in that order whatever order the sequence served
        // them in.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, $1)",
        )
        .bind(events.len() as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        ids.sort_unstable();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let routing_keys: Vec<&str> = events.iter().map(|e| e.routing_key.as_str()).collect();
        let dedup_keys: Vec<Option<&str>> = events.iter().map(|e| e.dedup_key.as_deref()).collect();
        let actions: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.action.map(|a| a.as_str()))
            .collect();
        let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_slice()).collect();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let received: Vec<i64> = events.iter().map(|e| ms(e.received_at)).collect();
        sqlx::query(
            "INSERT INTO events (id, lane, kind, routing_key, dedup_key, action, body, source, \
               received_at) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
               $6::TEXT[], $7::BYTEA[], $8::TEXT[], $9::BIGINT[])",
        )
        .bind(&ids)
        .bind(&lanes)
        .bind(&kinds)
        .bind(&routing_keys)
        .bind(&dedup_keys)
        .bind(&actions)
        .bind(&bodies)
        .bind(&sources)
        .bind(&received)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
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
        let expires = lease_end(now, lease);
        let mut tx = self.begin().await?;
        // Lanes due and free (never claimed, released, or their lease passed); rows another
        // replica is claiming this very moment are skipped, not waited for.
        let picked = sqlx::query(
            "WITH picked AS ( \
               SELECT lane FROM lanes \
               WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
               ORDER BY next_attempt_at, lane LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE lanes SET claimed_by = $3, lease_until = $4 FROM picked \
             WHERE lanes.lane = picked.lane \
             RETURNING lanes.lane, lanes.routing_key, lanes.next_attempt_at",
        )
        .bind(ms(now))
        .bind(max_lanes as i64)
        .bind(owner)
        .bind(ms(expires))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut picked: Vec<(String, String, i64)> = picked
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if picked.is_empty() {
            tx.commit().await.map_err(map_err)?;
            return Ok(Vec::new());
        }
        picked.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        let names: Vec<&str> = picked.iter().map(|(lane, _, _)| lane.as_str()).collect();
        // Built from constants only; values are bound.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM lanes l CROSS JOIN LATERAL ( \
               SELECT * FROM events e WHERE e.lane = l.lane AND e.state = 'pending' \
               ORDER BY e.id LIMIT $2) e \
             WHERE l.lane = ANY($1) ORDER BY e.lane, e.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&names)
            .bind(per_lane.max(1) as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut by_lane: HashMap<String, Vec<EventRecord>> = HashMap::new();
        for row in &rows {
            let r = record(row)?;
            by_lane.entry(r.lane.clone()).or_default().push(r);
        }
        let empty: Vec<&str> = names
            .iter()
            .copied()
            .filter(|l| !by_lane.contains_key(*l))
            .collect();
        if !empty.is_empty() {
            sqlx::query(
                "UPDATE lanes SET claimed_by = NULL, lease_until = NULL WHERE lane = ANY($1)",
            )
            .bind(&empty)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(picked
            .into_iter()
            .filter_map(|(lane, routing_key, _)| {
                let events = by_lane.remove(&lane)?;
                Some(Claim {
                    lane,
                    routing_key,
                    events,
                    owner: owner.to_owned(),
                    expires,
                })
            })
            .collect())
    }

    async fn finish(&self, results: &[LaneResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut lanes: Vec<String> = results.iter().map(|r| r.lane.clone()).collect();
        lanes.sort();
        lanes.dedup();
        let outcomes: Vec<&Outcome> = results.iter().flat_map(|r| &r.outcomes).collect();
        let mut tx = self.begin().await?;
        lock_lanes(&mut tx, &lanes).await?;
        // Recorded whoever sends them: an owner whose lease passed did deliver what it says
        // it delivered, and recording it spares the lane's new owner a second send.
        let mut left: BTreeMap<String, i64> = BTreeMap::new();
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
            if rows.is_empty() {
                continue;
            }
            for lane in apply_outcomes(&mut tx, kind, &rows).await? {
                *left.entry(lane).or_default() += 1;
            }
        }
        lanes_lost(&mut tx, &left).await?;
        // The backoff and the release are the owner's: a replica whose lease passed and whose
        // lane another took does not move that one's schedule nor free its claim.
        let retries: Vec<&LaneResult> = results.iter().filter(|r| r.retry_at.is_some()).collect();
        if !retries.is_empty() {
            let names: Vec<&str> = retries.iter().map(|r| r.lane.as_str()).collect();
            let owners: Vec<&str> = retries.iter().map(|r| r.owner.as_str()).collect();
            let ats: Vec<i64> = retries.iter().filter_map(|r| r.retry_at.map(ms)).collect();
            sqlx::query(
                "UPDATE lanes SET next_attempt_at = v.at \
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS v (lane, owner, at) \
                 WHERE lanes.lane = v.lane \
                   AND (lanes.claimed_by IS NULL OR lanes.claimed_by = v.owner)",
            )
            .bind(&names)
            .bind(&owners)
            .bind(&ats)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let releases: Vec<&LaneResult> = results.iter().filter(|r| r.release).collect();
        if !releases.is_empty() {
            let names: Vec<&str> = releases.iter().map(|r| r.lane.as_str()).collect();
            let owners: Vec<&str> = releases.iter().map(|r| r.owner.as_str()).collect();
            sqlx::query(
                "UPDATE lanes SET claimed_by = NULL, lease_until = NULL \
                 FROM UNNEST($1::TEXT[], $2::TEXT[]) AS v (lane, owner) \
                 WHERE lanes.lane = v.lane AND lanes.claimed_by = v.owner",
            )
            .bind(&names)
            .bind(&owners)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        // A claimed lane is due again when its lease passes (its owner may have died), or
        // later if it backs off.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > $1 THEN GREATEST(next_attempt_at, lease_until) \
               ELSE next_attempt_at END) FROM lanes",
        )
        .bind(ms(Timestamp::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(due.map(ts))
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut s = QueueStats::default();
        for row in sqlx::query(
            "SELECT state, COUNT(*) FROM events WHERE state IN ('delivered', 'coalesced', 'dropped', 'dead') \
             GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        {
            let n = row.get::<i64, _>(1) as u64;
            match row.get::<String, _>(0).as_str() {
                "delivered" => s.delivered = n,
                "coalesced" => s.coalesced = n,
                "dead" => s.dead = n,
                _ => s.dropped = n,
            }
        }
        let rows = sqlx::query(
            "SELECT l.routing_key, SUM(l.pending)::BIGINT, COUNT(*), MIN(l.next_attempt_at), \
             MIN((SELECT received_at FROM events e WHERE e.lane = l.lane AND e.state = 'pending' \
               ORDER BY e.id LIMIT 1)) \
             FROM lanes l GROUP BY l.routing_key ORDER BY SUM(l.pending) DESC, l.routing_key",
        )
        .fetch_all(&self.pool)
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
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE finished_at >= $1 AND state = 'delivered'",
        )
        .bind(ms(since))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<EventRecord>> {
        let mut b: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN lanes l ON l.lane = e.lane WHERE TRUE"
        ));
        if !q.states.is_empty() {
            let states: Vec<&str> = q.states.iter().map(|s| s.as_str()).collect();
            b.push(" AND e.state = ANY(").push_bind(states).push(")");
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
        let rows = b.build().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(record).collect()
    }

    async fn get(&self, id: i64) -> Result<Option<EventRecord>> {
        // Built from constants only; the id is bound.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN lanes l ON l.lane = e.lane WHERE e.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn retry(&self, ids: &[i64], now: Timestamp) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        lock_lanes_of(&mut tx, ids).await?;
        let rows = sqlx::query(
            "UPDATE events SET state = 'pending', attempts = 0, finished_at = NULL, \
               coalesced_into = NULL \
             WHERE id = ANY($1) AND state IN ('dead', 'dropped') RETURNING lane, routing_key",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut gained: BTreeMap<String, (String, i64)> = BTreeMap::new();
        for row in &rows {
            gained
                .entry(row.get(0))
                .or_insert_with(|| (row.get(1), 0))
                .1 += 1;
        }
        if !gained.is_empty() {
            let names: Vec<&str> = gained.keys().map(String::as_str).collect();
            let keys: Vec<&str> = gained.values().map(|(rk, _)| rk.as_str()).collect();
            let counts: Vec<i64> = gained.values().map(|(_, n)| *n).collect();
            // Due now at the latest: a lane backing off is not held back for the retried ones.
            sqlx::query(
                "INSERT INTO lanes (lane, routing_key, pending, next_attempt_at) \
                 SELECT v.lane, v.routing_key, v.n, $4 \
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS v (lane, routing_key, n) \
                 ON CONFLICT (lane) DO UPDATE SET pending = lanes.pending + excluded.pending, \
                   next_attempt_at = LEAST(lanes.next_attempt_at, excluded.next_attempt_at)",
            )
            .bind(&names)
            .bind(&keys)
            .bind(&counts)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(rows.len() as u64)
    }

    async fn drop_events(&self, ids: &[i64], now: Timestamp) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        lock_lanes_of(&mut tx, ids).await?;
        let rows = sqlx::query(
            "WITH old AS ( \
               SELECT id, state, lane FROM events \
               WHERE id = ANY($1) AND state IN ('pending', 'dead') FOR UPDATE) \
             UPDATE events SET state = 'dropped', finished_at = $2 FROM old \
             WHERE events.id = old.id RETURNING old.state, old.lane",
        )
        .bind(ids)
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut left: BTreeMap<String, i64> = BTreeMap::new();
        for row in &rows {
            if row.get::<String, _>(0) == "pending" {
                *left.entry(row.get(1)).or_default() += 1;
            }
        }
        lanes_lost(&mut tx, &left).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows.len() as u64)
    }

    async fn purge(&self, before: Timestamp) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events \
                 WHERE state IN ('delivered', 'coalesced', 'dropped') AND finished_at < $1 \
                 LIMIT $2)",
            )
            .bind(ms(before))
            .bind(PURGE_CHUNK)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
            total += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait]
impl SyncStore for PgStore {
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
        self.sync_claim_writebacks(owner, ids, now, lease_end(now, lease))
            .await
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_in_messages() {
        assert_eq!(
            redact_url("postgres://pb:s3cr:et@db.example:5432/pb?sslmode=require"),
            "postgres://pb:***@db.example:5432/pb?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://pb@db.example/pb"),
            "postgres://pb@db.example/pb"
        );
        assert_eq!(
            redact_url("postgresql://localhost/pb"),
            "postgresql://localhost/pb"
        );
    }
}
