//! Which replica does the work that must be done once: the poller, the reconciler and the
//! maintenance checks (each reads PagerDuty's REST API for the whole installation: on every
//! replica, they would multiply those calls and race each other's conclusions) and purging old
//! records. Every replica accepts events and delivers them, and processes PagerDuty's changes
//! and write-backs: the shared store hands each lane, inbox item and write-back to one replica
//! at a time.
//!
//! - SQLite: one daemon per store (its data directory is locked), so it always leads.
//! - PostgreSQL: leadership is a session-level advisory lock ([`LOCK_KEY`]) held on a
//!   connection of its own, outside the pool (a pooled connection would carry the lock to
//!   whoever uses it next). The other replicas try to take it every [`CHECK_EVERY`]. The leader
//!   checks its connection as often (`SELECT 1`, at most [`CHECK_TIMEOUT`]) and steps down at
//!   once when the check fails: its leader-only tasks are stopped before it tries again. When the
//!   leader dies its session ends, PostgreSQL frees the lock, and another replica takes it
//!   within [`CHECK_EVERY`]. A leader that hangs (or is cut off from the database) without
//!   its connection closing loses its session after [`IDLE_SESSION_TIMEOUT`] of silence, as
//!   the session is set to; it finds out at its next check and steps down.
//!
//! The leader writes who it is into the store ([`LEADER_CURSOR`], every check), so every
//! replica's `/readyz` and status page can say who leads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_config::Config;
use pagerbridge_store::SyncStore;
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The advisory lock whose holder leads: `pbleader` in ASCII. Advisory locks are per database,
/// so two installations on one PostgreSQL server, each with its own database, do not meet.
pub const LOCK_KEY: i64 = 0x7062_6c65_6164_6572;

/// How often a candidate tries to take the lock, and the leader checks that it still holds it.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A check slower than this counts as a lost connection.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The election session ends after this long without a statement (PostgreSQL 14 and later), so
/// that a leader that hangs, or is cut off, frees the lock for another replica.
pub const IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A leader record not refreshed for this long is shown as stale (the leader is gone, and the
/// next one has not written yet).
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Where the leader writes who it is (among the way back's cursors).
pub const LEADER_CURSOR: &str = "pagerbridge.leader";

/// How long leader-only tasks get to finish what they do when leadership ends, before they are
/// cut short (each of their steps is one transaction, so nothing is left half done).
pub const STEP_DOWN_GRACE: Duration = Duration::from_secs(5);

/// This replica's name: `server.replica_name`, else the host name.
pub fn replica_name(config: &Config) -> String {
    config
        .server
        .replica_name
        .clone()
        .or_else(host_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "pagerbridge".to_owned())
}

/// The host name from the kernel, `/etc/hostname` or `HOSTNAME`, cut to a valid replica name.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(pagerbridge_config::MAX_REPLICA_NAME)
                .collect::<String>()
        })
        .find(|h| !h.is_empty())
}

/// Who leads, as the leader wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub replica: String,
    pub pid: u32,
    /// Since when it leads.
    pub since: Timestamp,
    /// When it last confirmed it still does.
    pub seen: Timestamp,
}

impl LeaderRecord {
    /// Whether the leader has not confirmed for [`STALE_AFTER`].
    pub fn is_stale(&self, now: Timestamp) -> bool {
        now.duration_since(self.seen) > SignedDuration::try_from(STALE_AFTER).unwrap_or_default()
    }
}

/// This replica's view of the leadership. Cheap to clone.
#[derive(Clone)]
pub struct Leadership(Arc<Inner>);

struct Inner {
    replica: String,
    pid: u32,
    /// Other replicas may share the store (PostgreSQL).
    shared: bool,
    leading: watch::Sender<bool>,
    since: Mutex<Option<Timestamp>>,
    store: Arc<dyn SyncStore>,
    /// Counts `pagerbridge_leader`.
    metrics: Arc<Metrics>,
}

/// What `/readyz` and the status page show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderView {
    /// This replica's name.
    pub replica: String,
    /// Whether this replica leads.
    pub leading: bool,
    /// Who leads, as far as this replica knows.
    pub leader: Option<LeaderRecord>,
    /// Whether other replicas may share the store.
    pub shared: bool,
}

impl Leadership {
    fn new(
        replica: String,
        shared: bool,
        leading: bool,
        store: Arc<dyn SyncStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, _) = watch::channel(leading);
        metrics.set_leader(&replica, leading);
        Leadership(Arc::new(Inner {
            replica,
            pid: std::process::id(),
            shared,
            leading: tx,
            since: Mutex::new(leading.then(Timestamp::now)),
            store,
            metrics,
        }))
    }

    /// The only daemon on its store (SQLite): it leads, always.
    pub fn sole(replica: String, store: Arc<dyn SyncStore>, metrics: Arc<Metrics>) -> Self {
        Leadership::new(replica, false, true, store, metrics)
    }

    pub fn replica(&self) -> &str {
        &self.0.replica
    }

    /// The owner of this process's claims: unique per replica and per run of it.
    pub fn owner(&self) -> String {
        format!("pagerbridge-{}-{}", self.0.replica, self.0.pid)
    }

    pub fn is_leader(&self) -> bool {
        *self.0.leading.borrow()
    }

    /// Changes of [`Leadership::is_leader`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.leading.subscribe()
    }

    fn me(&self, now: Timestamp) -> LeaderRecord {
        LeaderRecord {
            replica: self.0.replica.clone(),
            pid: self.0.pid,
            since: self.0.since.lock().expect("not poisoned").unwrap_or(now),
            seen: now,
        }
    }

    fn set_leading(&self, leading: bool) {
        *self.0.since.lock().expect("not poisoned") = leading.then(Timestamp::now);
        self.0.leading.send_replace(leading);
        self.0.metrics.set_leader(&self.0.replica, leading);
    }

    /// Who leads: this replica, or the record the leader last wrote (`None` if none ever did).
    pub async fn view(&self) -> LeaderView {
        let now = Timestamp::now();
        let leading = self.is_leader();
        let leader = if leading {
            Some(self.me(now))
        } else {
            match self.0.store.cursor(LEADER_CURSOR).await {
                Ok(Some(text)) => serde_json::from_str(&text).ok(),
                _ => None,
            }
        };
        LeaderView {
            replica: self.0.replica.clone(),
            leading,
            leader,
            shared: self.0.shared,
        }
    }

    async fn write_record(&self) {
        let now = Timestamp::now();
        let text = serde_json::to_string(&self.me(now)).unwrap_or_default();
        match tokio::time::timeout(
            CHECK_TIMEOUT,
            self.0.store.set_cursor(LEADER_CURSOR, &text, now),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot record this replica as the leader"),
            Err(_) => tracing::debug!("recording this replica as the leader timed out"),
        }
    }
}

/// A running election on PostgreSQL; [`Election::resign`] ends it.
pub struct Election {
    resign: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Election {
    /// For the sole daemon on a SQLite store: nothing to run.
    pub fn none() -> Election {
        Election {
            resign: watch::channel(false).0,
            task: None,
        }
    }

    /// Gives leadership up (the lock is freed at once, so another replica takes it at its next
    /// try) and ends the election. Call it once the leader-only tasks have stopped.
    pub async fn resign(mut self) {
        let _ = self.resign.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Starts campaigning for leadership on the PostgreSQL database at `connect_url` (which may
/// hold a password: never logged). The replica does not lead until it holds the lock.
pub fn campaign(
    connect_url: &str,
    replica: String,
    store: Arc<dyn SyncStore>,
    metrics: Arc<Metrics>,
) -> Result<(Leadership, Election), sqlx::Error> {
    let options: PgConnectOptions = connect_url.parse()?;
    let options = options.application_name(&format!("pagerbridge leader election ({replica})"));
    let leadership = Leadership::new(replica, true, false, store, metrics);
    let (resign, resigned) = watch::channel(false);
    let task = tokio::spawn(run(options, leadership.clone(), resigned));
    Ok((
        leadership,
        Election {
            resign,
            task: Some(task),
        },
    ))
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let mut conn = tokio::time::timeout(CHECK_TIMEOUT * 2, PgConnection::connect_with(options))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no connection within 6 s",
            ))
        })??;
    // Before PostgreSQL 14 there is no idle_session_timeout: a hung leader then keeps the lock
    // until the server notices its connection is gone (TCP keepalive).
    let idle = format!(
        "SET idle_session_timeout = '{}s'",
        IDLE_SESSION_TIMEOUT.as_secs()
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(idle))
        .execute(&mut conn)
        .await
    {
        tracing::debug!(error = %e, "idle_session_timeout is not available");
    }
    let statement = format!("SET statement_timeout = '{}ms'", CHECK_TIMEOUT.as_millis());
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

async fn run(options: PgConnectOptions, me: Leadership, mut resign: watch::Receiver<bool>) {
    let mut conn: Option<PgConnection> = None;
    // Log a failing database once per outage, not every try.
    let mut failing = false;
    loop {
        if *resign.borrow() {
            break;
        }
        if conn.is_none() {
            match connect(&options).await {
                Ok(c) => {
                    if failing {
                        tracing::info!("leader election: connected to the database again");
                    }
                    failing = false;
                    conn = Some(c);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e,
                            "leader election: cannot connect to the database; trying again");
                    }
                    failing = true;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            if me.is_leader() {
                match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *c))
                    .await
                {
                    Ok(Ok(_)) => me.write_record().await,
                    outcome => {
                        let error = match outcome {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
                        };
                        tracing::warn!(replica = %me.replica(), %error,
                            "leader election: lost the connection that holds leadership; \
                             stepping down");
                        me.set_leading(false);
                        conn = None;
                    }
                }
            } else {
                let took = tokio::time::timeout(
                    CHECK_TIMEOUT,
                    sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                        .bind(LOCK_KEY)
                        .fetch_one(&mut *c),
                )
                .await;
                match took {
                    Ok(Ok(true)) => {
                        me.set_leading(true);
                        tracing::info!(replica = %me.replica(),
                            "leader election: this replica leads now: it runs the poller, \
                             the reconciler and the maintenance checks");
                        me.write_record().await;
                    }
                    Ok(Ok(false)) => {}
                    outcome => {
                        if let Ok(Err(e)) = outcome {
                            tracing::debug!(error = %e, "leader election: the try failed");
                        }
                        conn = None;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = resign.wait_for(|r| *r) => {}
        }
    }
    if me.is_leader() {
        me.set_leading(false);
        // Say at once that nobody leads rather than let the record go stale.
        let _ =
            me.0.store
                .set_cursor(LEADER_CURSOR, "", Timestamp::now())
                .await;
        tracing::info!(replica = %me.replica(), "leader election: gave up leadership");
    }
    if let Some(c) = conn {
        // Ending the session frees the lock.
        let _ = tokio::time::timeout(CHECK_TIMEOUT, c.close()).await;
    }
}

/// Runs the tasks `start` spawns while this replica leads: started when it becomes the leader,
/// told to stop (their `watch` turns true) when it steps down or `stop` turns true, and given
/// [`STEP_DOWN_GRACE`] to finish before they are aborted. Returns once `stop` is true and they
/// have ended.
pub async fn while_leading<F>(leadership: Leadership, mut stop: watch::Receiver<bool>, start: F)
where
    F: Fn(watch::Receiver<bool>) -> Vec<JoinHandle<()>>,
{
    let mut leading = leadership.subscribe();
    loop {
        tokio::select! {
            r = leading.wait_for(|l| *l) => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let (tx, rx) = watch::channel(false);
        let tasks = start(rx);
        tokio::select! {
            _ = leading.wait_for(|l| !*l) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        let _ = tx.send(true);
        let deadline = tokio::time::Instant::now() + STEP_DOWN_GRACE;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_replica_name_is_the_host_name_made_valid() {
        let name = replica_name(&Config::default());
        assert!(
            pagerbridge_config::check_replica_name(&name).is_ok(),
            "{name:?}"
        );
        let mut config = Config::default();
        config.server.replica_name = Some("pagerbridge-a".into());
        assert_eq!(replica_name(&config), "pagerbridge-a");
    }

    #[test]
    fn a_record_goes_stale() {
        let now = Timestamp::now();
        let r = LeaderRecord {
            replica: "a".into(),
            pid: 1,
            since: now,
            seen: now - SignedDuration::from_secs(16),
        };
        assert!(r.is_stale(now));
        assert!(!r.is_stale(r.seen));
    }
}
