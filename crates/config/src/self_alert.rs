//! `[self_alert]`: pagerbridge pages about itself when its outbox is stuck or holds dead
//! letters, through its own minimal path to PagerDuty rather than the outbox.

use serde::Deserialize;

use crate::duration::Duration;
use crate::validate::Validator;

/// `[self_alert]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfAlertConfig {
    /// The PagerDuty integration key (32 letters and digits) pagerbridge's own incident goes
    /// to; best a service of its own, apart from the ones it relays to. Unset: self-alerting
    /// is off.
    pub routing_key: Option<String>,
    /// Raise the incident once the oldest undelivered event has waited this long.
    pub max_age: Duration,
    /// Raise the incident while dead letters (events PagerDuty refused) wait for an operator.
    pub on_dead_letters: bool,
    /// Time between two looks at the outbox.
    pub check_interval: Duration,
    /// The dedup key of pagerbridge's own incident. Unset: `pagerbridge-self-alert/<host>`,
    /// with the host name (or the data directory when the host name is unknown).
    pub dedup_key: Option<String>,
}

impl Default for SelfAlertConfig {
    fn default() -> Self {
        SelfAlertConfig {
            routing_key: None,
            max_age: Duration::from_mins(5),
            on_dead_letters: true,
            check_interval: Duration::from_secs(30),
            dedup_key: None,
        }
    }
}

impl SelfAlertConfig {
    /// Whether self-alerting is on (a routing key is set).
    pub fn enabled(&self) -> bool {
        self.routing_key.is_some()
    }

    pub(crate) fn validate(&self, v: &mut Validator<'_>) {
        if let Some(key) = &self.routing_key
            && (key.len() != pagerduty::events::ROUTING_KEY_LEN
                || !key.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            // Not echoed: integration keys are half secret, and the message goes to logs.
            v.problem(
                "self_alert.routing_key",
                "is not a PagerDuty integration key (32 letters and digits)",
            );
        }
        if self.max_age < Duration::from_secs(1) {
            v.problem("self_alert.max_age", "must be at least 1s");
        }
        if self.check_interval < Duration::from_secs(1) {
            v.problem("self_alert.check_interval", "must be at least 1s");
        }
        if let Some(key) = &self.dedup_key
            && (key.trim().is_empty() || key.len() > 255)
        {
            v.problem(
                "self_alert.dedup_key",
                "must not be empty nor longer than 255 bytes (PagerDuty's limit)",
            );
        }
    }
}
