//! Counters of the way back, for the daemon's `/metrics`: write-back outcomes per monitor,
//! reconciler passes and repairs, poller polls and how far behind the poller is.
//!
//! Plain atomics (and one map for the monitors, touched once per write-back, never on a hot
//! path); this crate knows nothing of how they are exposed. [`Sync::with_metrics`],
//! [`Reconciler::with_metrics`] and [`Poller::with_metrics`] share one instance.
//!
//! [`Sync::with_metrics`]: crate::worker::Sync::with_metrics
//! [`Reconciler::with_metrics`]: crate::reconciler::Reconciler::with_metrics
//! [`Poller::with_metrics`]: crate::poller::Poller::with_metrics

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;
use pagerbridge_store::WritebackOutcome;

use crate::reconciler::Report;

/// What became of one write-back attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackResult {
    /// The monitor took it.
    Done,
    /// It failed in a way that may pass; tried again later.
    Retry,
    /// Given up (refused for good, or still failing after `give_up_after`).
    Failed,
}

impl WritebackResult {
    pub const ALL: [WritebackResult; 3] = [
        WritebackResult::Done,
        WritebackResult::Retry,
        WritebackResult::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WritebackResult::Done => "done",
            WritebackResult::Retry => "retry",
            WritebackResult::Failed => "failed",
        }
    }

    pub fn of(outcome: &WritebackOutcome) -> WritebackResult {
        match outcome {
            WritebackOutcome::Done { .. } => WritebackResult::Done,
            WritebackOutcome::Retry { .. } => WritebackResult::Retry,
            WritebackOutcome::Failed { .. } => WritebackResult::Failed,
        }
    }
}

/// The way back's counters. All monotonic except the poller's last success.
#[derive(Debug)]
pub struct SyncMetrics {
    created_at: Timestamp,
    writebacks: Mutex<BTreeMap<String, [u64; 3]>>,
    reconciler_enabled: AtomicBool,
    reconciler_passes_ok: AtomicU64,
    reconciler_passes_failed: AtomicU64,
    reconciler_checked: AtomicU64,
    reconciler_errors: AtomicU64,
    resolves_resent: AtomicU64,
    changes_fed: AtomicU64,
    ids_learned: AtomicU64,
    poller_enabled: AtomicBool,
    polls_ok: AtomicU64,
    polls_failed: AtomicU64,
    poller_stored: AtomicU64,
    /// When the last successful poll started (Unix milliseconds; 0: none yet).
    poller_last_ok_ms: AtomicI64,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        SyncMetrics::new(Timestamp::now())
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSnapshot {
    /// Monitor name -> attempts by [`WritebackResult`] (in [`WritebackResult::ALL`]'s order).
    pub writebacks: BTreeMap<String, [u64; 3]>,
    /// `None` while no reconciler runs.
    pub reconciler: Option<ReconcilerCounts>,
    /// `None` while no poller runs.
    pub poller: Option<PollerCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcilerCounts {
    pub passes_ok: u64,
    pub passes_failed: u64,
    pub checked: u64,
    /// Incidents PagerDuty could not answer for during a pass.
    pub errors: u64,
    pub resolves_resent: u64,
    pub changes_fed: u64,
    pub ids_learned: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerCounts {
    pub polls_ok: u64,
    pub polls_failed: u64,
    /// Log entries stored in the inbox.
    pub stored: u64,
    /// When the last successful poll started; `None` before the first.
    pub last_ok: Option<Timestamp>,
    /// When counting began (the daemon's start): the poller's lag is measured from here
    /// while no poll has succeeded.
    pub since: Timestamp,
}

impl PollerCounts {
    /// How far behind PagerDuty's log the inbox may be: PagerDuty's changes older than the last
    /// successful poll are in; anything since may not be.
    pub fn lag(&self, now: Timestamp) -> std::time::Duration {
        let from = self.last_ok.unwrap_or(self.since);
        std::time::Duration::try_from(now.duration_since(from)).unwrap_or_default()
    }
}

impl SyncMetrics {
    pub fn new(created_at: Timestamp) -> SyncMetrics {
        SyncMetrics {
            created_at,
            writebacks: Mutex::new(BTreeMap::new()),
            reconciler_enabled: AtomicBool::new(false),
            reconciler_passes_ok: AtomicU64::new(0),
            reconciler_passes_failed: AtomicU64::new(0),
            reconciler_checked: AtomicU64::new(0),
            reconciler_errors: AtomicU64::new(0),
            resolves_resent: AtomicU64::new(0),
            changes_fed: AtomicU64::new(0),
            ids_learned: AtomicU64::new(0),
            poller_enabled: AtomicBool::new(false),
            polls_ok: AtomicU64::new(0),
            polls_failed: AtomicU64::new(0),
            poller_stored: AtomicU64::new(0),
            poller_last_ok_ms: AtomicI64::new(0),
        }
    }

    /// A configured monitor, so its counters show (at zero) before its first write-back.
    pub fn register_monitor(&self, monitor: &str) {
        self.writebacks
            .lock()
            .expect("not poisoned")
            .entry(monitor.to_owned())
            .or_default();
    }

    pub fn writeback(&self, monitor: &str, result: WritebackResult) {
        let mut w = self.writebacks.lock().expect("not poisoned");
        let counts = match w.get_mut(monitor) {
            Some(c) => c,
            // A monitor removed from the configuration keeps write-backs in the store; they
            // still count, under their monitor's name (bounded by what was ever configured).
            None => w.entry(monitor.to_owned()).or_default(),
        };
        counts[result as usize] += 1;
    }

    pub(crate) fn reconciler_enabled(&self) {
        self.reconciler_enabled.store(true, Ordering::Relaxed);
    }

    pub fn reconciler_pass(&self, result: Result<&Report, ()>) {
        match result {
            Ok(r) => {
                self.reconciler_passes_ok.fetch_add(1, Ordering::Relaxed);
                self.reconciler_checked
                    .fetch_add(r.checked as u64, Ordering::Relaxed);
                self.reconciler_errors
                    .fetch_add(r.errors as u64, Ordering::Relaxed);
                self.resolves_resent
                    .fetch_add(r.resolves_resent as u64, Ordering::Relaxed);
                self.changes_fed
                    .fetch_add(r.changes_fed as u64, Ordering::Relaxed);
                self.ids_learned
                    .fetch_add(r.ids_learned as u64, Ordering::Relaxed);
            }
            Err(()) => {
                self.reconciler_passes_failed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn poller_enabled(&self) {
        self.poller_enabled.store(true, Ordering::Relaxed);
    }

    /// A poll that started at `started` ended: `Some(stored)` when it succeeded.
    pub fn poll(&self, started: Timestamp, stored: Option<usize>) {
        match stored {
            Some(n) => {
                self.polls_ok.fetch_add(1, Ordering::Relaxed);
                self.poller_stored.fetch_add(n as u64, Ordering::Relaxed);
                self.poller_last_ok_ms
                    .fetch_max(started.as_millisecond(), Ordering::Relaxed);
            }
            None => {
                self.polls_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let reconciler =
            self.reconciler_enabled
                .load(Ordering::Relaxed)
                .then(|| ReconcilerCounts {
                    passes_ok: get(&self.reconciler_passes_ok),
                    passes_failed: get(&self.reconciler_passes_failed),
                    checked: get(&self.reconciler_checked),
                    errors: get(&self.reconciler_errors),
                    resolves_resent: get(&self.resolves_resent),
                    changes_fed: get(&self.changes_fed),
                    ids_learned: get(&self.ids_learned),
                });
        let poller = self.poller_enabled.load(Ordering::Relaxed).then(|| {
            let ms = self.poller_last_ok_ms.load(Ordering::Relaxed);
            PollerCounts {
                polls_ok: get(&self.polls_ok),
                polls_failed: get(&self.polls_failed),
                stored: get(&self.poller_stored),
                last_ok: (ms > 0)
                    .then(|| Timestamp::from_millisecond(ms).ok())
                    .flatten(),
                since: self.created_at,
            }
        });
        SyncSnapshot {
            writebacks: self.writebacks.lock().expect("not poisoned").clone(),
            reconciler,
            poller,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_monitor_and_the_pollers_lag() {
        let start: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let m = SyncMetrics::new(start);
        m.register_monitor("icinga");
        m.writeback("icinga", WritebackResult::Retry);
        m.writeback("icinga", WritebackResult::Done);
        m.writeback("gone", WritebackResult::Failed);
        let s = m.snapshot();
        assert_eq!(s.writebacks["icinga"], [1, 1, 0]);
        assert_eq!(s.writebacks["gone"], [0, 0, 1]);
        assert!(s.poller.is_none() && s.reconciler.is_none());

        m.poller_enabled();
        let now = start + jiff::SignedDuration::from_secs(90);
        assert_eq!(m.snapshot().poller.unwrap().lag(now).as_secs(), 90);
        m.poll(start + jiff::SignedDuration::from_secs(60), Some(3));
        m.poll(now, None);
        let p = m.snapshot().poller.unwrap();
        assert_eq!((p.polls_ok, p.polls_failed, p.stored), (1, 1, 3));
        assert_eq!(p.lag(now).as_secs(), 30);
    }
}
