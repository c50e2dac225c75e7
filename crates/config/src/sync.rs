//! `[sync]`: how PagerDuty's changes come back (webhooks v3, the legacy V2 webhook, polling),
//! how often the reconciler compares both sides, and how write-backs are retried.

use serde::Deserialize;

use crate::duration::Duration;
use crate::secret::Secret;
use crate::validate::Validator;

/// `[sync]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// `[sync.webhooks]`: PagerDuty posts its changes to pagerbridge.
    pub webhooks: WebhooksConfig,
    /// `[sync.poller]`: pagerbridge asks PagerDuty for its changes (no inbound traffic needed).
    pub poller: PollerConfig,
    /// `[sync.reconciler]`: compares PagerDuty and the monitors and repairs drift.
    pub reconciler: ReconcilerConfig,
    /// `[sync.writeback]`: retries of write-backs to the monitors.
    pub writeback: WritebackConfig,
    /// `[sync.maintenance]`: problems on PagerDuty services in maintenance or disabled.
    pub maintenance: MaintenanceConfig,
}

/// `[sync.webhooks]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The route of the Webhooks v3 subscription.
    pub path: String,
    /// The subscription's signing secrets. Give two while rotating: a delivery signed with
    /// either is accepted. None: the route is off.
    pub secrets: Vec<Secret>,
    /// The legacy Generic V2 webhook, unsigned: its URL carries this secret as its last path
    /// segment (`/webhooks/pagerduty-v2/<secret>`). Unset: the route is off.
    pub legacy_secret: Option<Secret>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            path: "/webhooks/pagerduty".into(),
            secrets: Vec::new(),
            legacy_secret: None,
        }
    }
}

/// `[sync.poller]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollerConfig {
    /// Poll PagerDuty's log entries (needs `pagerduty.api_token`).
    pub enabled: bool,
    /// Time between polls.
    pub interval: Duration,
    /// On the first poll, how far back to look.
    pub lookback: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            enabled: false,
            interval: Duration::from_secs(60),
            lookback: Duration::from_mins(60),
        }
    }
}

/// `[sync.reconciler]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// Compare the open incidents with the monitors' problems (needs `pagerduty.api_token`).
    pub enabled: bool,
    /// Time between comparisons.
    pub interval: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            enabled: true,
            interval: Duration::from_mins(5),
        }
    }
}

/// `[sync.maintenance]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Check the PagerDuty service of each open problem: in maintenance, the problem is
    /// acknowledged with the window's description and end; disabled, it gets a comment
    /// (needs `pagerduty.api_token`).
    pub enabled: bool,
    /// How long the services' status is kept before PagerDuty is asked again.
    pub refresh: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            enabled: true,
            refresh: Duration::from_secs(60),
        }
    }
}

/// `[sync.writeback]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WritebackConfig {
    /// First wait after a failed write-back; doubled (with jitter) after each failure.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// A write-back still failing this long after it was due is given up (and stays listed).
    pub give_up_after: Duration,
}

impl Default for WritebackConfig {
    fn default() -> Self {
        WritebackConfig {
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_mins(10),
            give_up_after: Duration::from_days(1),
        }
    }
}

impl SyncConfig {
    pub(crate) fn validate(&mut self, v: &mut Validator<'_>) {
        let w = &mut self.webhooks;
        if !w.path.starts_with("/webhooks/") || w.path.contains(char::is_whitespace) {
            v.problem(
                "sync.webhooks.path",
                format!("{:?} must be a path under /webhooks/", w.path),
            );
        }
        if w.path.starts_with("/webhooks/pagerduty-v2") {
            v.problem(
                "sync.webhooks.path",
                "/webhooks/pagerduty-v2 is the legacy webhook's route",
            );
        }
        for i in 0..w.secrets.len() {
            let mut s = Some(w.secrets[i].clone());
            v.secret(&format!("sync.webhooks.secrets[{i}]"), &mut s);
            if let Some(s) = s {
                w.secrets[i] = s;
            }
        }
        v.secret("sync.webhooks.legacy_secret", &mut w.legacy_secret);
        if let Some(s) = &w.legacy_secret
            && let Some(value) = s.resolved()
            && (value.len() < 16 || !value.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            v.problem(
                "sync.webhooks.legacy_secret",
                "must be at least 16 letters and digits: it is the only protection of that route",
            );
        }
        if self.poller.interval < Duration::from_secs(5) {
            v.problem(
                "sync.poller.interval",
                "must be at least 5s (PagerDuty allows 960 REST requests a minute per key)",
            );
        }
        if self.reconciler.interval < Duration::from_secs(10) {
            v.problem("sync.reconciler.interval", "must be at least 10s");
        }
        if self.maintenance.refresh < Duration::from_secs(5) {
            v.problem(
                "sync.maintenance.refresh",
                "must be at least 5s (PagerDuty allows 960 REST requests a minute per key)",
            );
        }
        let wb = &self.writeback;
        if wb.initial_backoff.is_zero() {
            v.problem("sync.writeback.initial_backoff", "must be more than 0");
        }
        if wb.max_backoff < wb.initial_backoff {
            v.problem(
                "sync.writeback.max_backoff",
                "must be at least sync.writeback.initial_backoff",
            );
        }
    }
}
