//! `/readyz`: whether this daemon can take events now, for systemd and Kubernetes probes.
//! (`/healthz`, in the daemon's route table, only says the process answers.)
//!
//! Ready means every check passes:
//!
//! - `store`: the outbox database takes writes. A write that succeeded in the last
//!   [`RECENT_WRITE`] (an ingest commit, a delivery recorded) with no failure since is enough;
//!   otherwise a probe writes one row ([`PROBE_CURSOR`]) and waits for its commit, at most once
//!   per [`PROBE_EVERY`] however often the probe is asked.
//! - `dispatcher`: the task that delivers to PagerDuty runs.
//! - `pagerduty`: never fails readiness. PagerDuty being down, slow or throttling is what the
//!   outbox is for: a daemon taken out of service then would stop accepting the very events it
//!   must keep. The check says whether PagerDuty answers, or that pagerbridge is in backoff and
//!   why (`warn`).
//!
//! - `leader`: never fails readiness either: every replica takes and delivers events, leader
//!   or not. It says whether this replica leads (runs the poller, the reconciler and the
//!   maintenance checks) and, if not, which one does; `warn` when no replica has confirmed
//!   leading for a while.
//!
//! The body names each check with its status (`pass`, `warn`, `fail`) and reason, and this
//! replica's name, whether it leads and the leader's name (`replica`, `leading`, `leader`); the
//! answer is `200` when ready, `503` when not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use pagerbridge_store::SyncStore;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::dispatch::{Dispatcher, Status};
use crate::leader::{LeaderView, Leadership};
use crate::metrics::Metrics;

/// The row the store probe writes (in the way back's cursors table, where nothing reads it).
pub const PROBE_CURSOR: &str = "pagerbridge.readyz";
/// A write this recent (with no failure since) shows the store is writable without a probe.
pub const RECENT_WRITE: Duration = Duration::from_secs(2);
/// Probes are at most this frequent; askers in between get the last probe's result.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe that takes longer fails: a store that slow cannot take events either.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    /// Not as it should be, but the daemon does its job: not a reason to take it out of service.
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub reason: String,
}

impl Check {
    fn pass(reason: impl Into<String>) -> Check {
        Check {
            status: CheckStatus::Pass,
            reason: reason.into(),
        }
    }

    fn warn(reason: impl Into<String>) -> Check {
        Check {
            status: CheckStatus::Warn,
            reason: reason.into(),
        }
    }

    fn fail(reason: impl Into<String>) -> Check {
        Check {
            status: CheckStatus::Fail,
            reason: reason.into(),
        }
    }
}

/// The checks, in the order they are shown; ready unless one fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub checks: Vec<(&'static str, Check)>,
    /// Who this replica is and who leads.
    pub leader: Option<LeaderView>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.checks
            .iter()
            .all(|(_, c)| c.status != CheckStatus::Fail)
    }

    pub fn to_json(&self) -> Value {
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|(name, c)| ((*name).to_owned(), json!(c)))
            .collect();
        let mut body = json!({
            "status": if self.ready() { "ready" } else { "not ready" },
            "checks": checks,
        });
        if let Some(l) = &self.leader {
            body["replica"] = json!(l.replica);
            body["leading"] = json!(l.leading);
            body["leader"] = json!(l.leader.as_ref().map(|r| &r.replica));
        }
        body
    }
}

/// The leader check: `pass` while someone leads, `warn` when nobody has confirmed leading for
/// a while (the poller and the reconciler wait meanwhile); never `fail`.
pub fn leader_check(view: &LeaderView, now: Timestamp) -> Check {
    let me = &view.replica;
    if view.leading {
        return Check::pass(if view.shared {
            format!(
                "this replica ({me}) leads: it runs the poller, the reconciler and the \
                 maintenance checks"
            )
        } else {
            format!("this daemon ({me}) is the only one on its store, so it leads")
        });
    }
    match &view.leader {
        Some(r) if !r.is_stale(now) && !r.replica.is_empty() => Check::pass(format!(
            "replica {} (pid {}) leads, since {}; this replica ({me}) takes and delivers events",
            r.replica, r.pid, r.since
        )),
        Some(r) if !r.replica.is_empty() => Check::warn(format!(
            "no replica leads at the moment: {} last confirmed at {}; this replica ({me}) \
             tries to take over every few seconds",
            r.replica, r.seen
        )),
        _ => Check::warn(format!(
            "no replica leads at the moment; this replica ({me}) tries to take over every few \
             seconds"
        )),
    }
}

/// The dispatcher check.
pub fn dispatcher_check(s: &Status) -> Check {
    if s.running {
        Check::pass(format!(
            "running: {} delivered, {} dead letters, {} failed attempts since the start",
            s.delivered, s.dead, s.failed_attempts
        ))
    } else {
        Check::fail("the dispatcher is not running: nothing is delivered (see the log)")
    }
}

/// The PagerDuty check: `pass` while PagerDuty answers, `warn` in backoff; never `fail`.
pub fn pagerduty_check(s: &Status) -> Check {
    let last_error = s.last_error.as_deref().unwrap_or("none recorded");
    if let Some(until) = s.circuit_open_until {
        return Check::warn(format!(
            "in backoff: PagerDuty failed repeatedly, so the circuit is open and nothing is \
             sent until {until}; events are kept and sent then. Last error: {last_error}"
        ));
    }
    if let Some(since) = s.pagerduty_failing_since {
        return Check::warn(format!(
            "in backoff: PagerDuty's answers have been failing since {since}; events are kept \
             and retried. Last error: {last_error}"
        ));
    }
    match s.last_delivery_at {
        Some(at) => Check::pass(format!("reachable: last delivery at {at}")),
        None => Check::pass("nothing delivered yet, and no failure"),
    }
}

/// What `/readyz` reads.
pub struct Readiness {
    store: Arc<dyn SyncStore>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    leadership: Option<Leadership>,
    last_probe: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub fn new(store: Arc<dyn SyncStore>, dispatcher: Dispatcher, metrics: Arc<Metrics>) -> Self {
        Readiness {
            store,
            dispatcher,
            metrics,
            leadership: None,
            last_probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Adds the `leader` check.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    pub async fn report(&self) -> Report {
        let status = self.dispatcher.status();
        let mut checks = vec![
            ("store", self.store_check().await),
            ("dispatcher", dispatcher_check(&status)),
            ("pagerduty", pagerduty_check(&status)),
        ];
        let leader = match &self.leadership {
            Some(l) => {
                let view = l.view().await;
                checks.push(("leader", leader_check(&view, Timestamp::now())));
                Some(view)
            }
            None => None,
        };
        Report { checks, leader }
    }

    async fn store_check(&self) -> Check {
        let now = Timestamp::now();
        let (last_ok, last_err) = self.metrics.writes();
        if let Some(ok) = last_ok
            && now.duration_since(ok)
                < jiff::SignedDuration::try_from(RECENT_WRITE).unwrap_or_default()
            && last_err.as_ref().is_none_or(|(at, _)| *at < ok)
        {
            return Check::pass(format!(
                "writable: the last write, {} ms ago, succeeded",
                now.duration_since(ok).as_millis()
            ));
        }
        match self.probe().await {
            Ok(()) => Check::pass("writable: a write probe succeeded"),
            Err(e) => Check::fail(format!("the outbox database cannot be written: {e}")),
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < PROBE_EVERY
        {
            return result.clone();
        }
        let now = Timestamp::now();
        let result = match tokio::time::timeout(
            PROBE_TIMEOUT,
            self.store.set_cursor(PROBE_CURSOR, &now.to_string(), now),
        )
        .await
        {
            Ok(Ok(())) => {
                self.metrics.write_ok();
                Ok(())
            }
            Ok(Err(e)) => {
                self.metrics.write_failed(&e);
                Err(e.to_string())
            }
            Err(_) => {
                let e = format!(
                    "a one-row write did not commit within {} s",
                    PROBE_TIMEOUT.as_secs()
                );
                self.metrics.write_failed(&e);
                Err(e)
            }
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// `GET /readyz`.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(Arc::new(readiness))
}

async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let report = r.report().await;
    let code = if report.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !report.ready() {
        tracing::warn!(report = %report.to_json(), "not ready");
    }
    let mut resp = (code, axum::Json(report.to_json())).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerduty_in_backoff_warns_and_never_fails() {
        let mut s = Status {
            running: true,
            ..Status::default()
        };
        assert_eq!(pagerduty_check(&s).status, CheckStatus::Pass);
        s.pagerduty_failing_since = Some(Timestamp::UNIX_EPOCH);
        s.last_error = Some("PagerDuty answered 503".into());
        let c = pagerduty_check(&s);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.reason.contains("in backoff") && c.reason.contains("503"),
            "{c:?}"
        );
        s.circuit_open_until = Some(Timestamp::now());
        assert!(pagerduty_check(&s).reason.contains("circuit is open"));
        let report = Report {
            checks: vec![
                ("dispatcher", dispatcher_check(&s)),
                ("pagerduty", pagerduty_check(&s)),
            ],
            leader: None,
        };
        assert!(report.ready());
        assert_eq!(report.to_json()["status"], "ready");
        assert_eq!(report.to_json()["checks"]["pagerduty"]["status"], "warn");
    }

    #[test]
    fn a_stopped_dispatcher_is_not_ready() {
        let report = Report {
            checks: vec![("dispatcher", dispatcher_check(&Status::default()))],
            leader: None,
        };
        assert!(!report.ready());
        assert_eq!(report.to_json()["status"], "not ready");
        assert_eq!(report.to_json()["checks"]["dispatcher"]["status"], "fail");
    }

    #[test]
    fn the_leader_check_names_the_leader_and_never_fails() {
        use crate::leader::LeaderRecord;
        let now = Timestamp::now();
        let mut view = LeaderView {
            replica: "b".into(),
            leading: false,
            leader: Some(LeaderRecord {
                replica: "a".into(),
                pid: 7,
                since: now,
                seen: now,
            }),
            shared: true,
        };
        let c = leader_check(&view, now);
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(c.reason.starts_with("replica a (pid 7) leads"), "{c:?}");
        view.leader.as_mut().unwrap().seen = now - jiff::SignedDuration::from_secs(60);
        assert_eq!(leader_check(&view, now).status, CheckStatus::Warn);
        view.leader = None;
        assert_eq!(leader_check(&view, now).status, CheckStatus::Warn);
        view.leading = true;
        let c = leader_check(&view, now);
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(c.reason.contains("this replica (b) leads"), "{c:?}");
        let report = Report {
            checks: vec![("leader", c)],
            leader: Some(view),
        };
        let body = report.to_json();
        assert_eq!(body["replica"], "b");
        assert_eq!(body["leading"], true);
    }
}
