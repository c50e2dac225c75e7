//! `[outbox]`: how events wait for and are delivered to PagerDuty.

use serde::Deserialize;

use crate::duration::Duration;
use crate::validate::Validator;

/// Upper bound on `outbox.max_in_flight`: beyond it PagerDuty's rate limits bite long before
/// the extra concurrency helps.
pub const MAX_IN_FLIGHT: usize = 1024;

/// `[outbox]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// How long delivered, coalesced and dropped records, and PagerDuty's answers to them, are
    /// kept for inspection before they are purged.
    pub retention: Duration,
    /// Deliveries in progress at once, across all routing keys (1 to 1024).
    pub max_in_flight: usize,
    /// While a backlog exists, collapse runs of identical actions for one dedup key into one
    /// delivery (e.g. ten queued triggers become one).
    pub coalesce: bool,
    /// `[outbox.rate_limit]`
    pub rate_limit: RateLimitConfig,
    /// `[outbox.retry]`
    pub retry: RetryConfig,
    /// `[outbox.circuit]`
    pub circuit: CircuitConfig,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            retention: Duration::from_days(7),
            max_in_flight: 32,
            coalesce: true,
            rate_limit: RateLimitConfig::default(),
            retry: RetryConfig::default(),
            circuit: CircuitConfig::default(),
        }
    }
}

/// `[outbox.rate_limit]`: pagerbridge's own limit per routing key, kept under PagerDuty's
/// (about 120 events a minute per key) so throttling is the exception.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained events per minute per routing key; 0 turns the limit off.
    pub events_per_minute: u32,
    /// Events per routing key that may go at once before the sustained rate applies; 1 to
    /// `events_per_minute`.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            events_per_minute: 100,
            burst: 10,
        }
    }
}

/// `[outbox.retry]`: delays between attempts at one event after a retryable failure, doubling
/// from `initial_delay` up to `max_delay`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Longest delay between retries; at least `initial_delay`.
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_mins(5),
        }
    }
}

/// `[outbox.circuit]`: after repeated transport errors or 5xx answers, stop sending for a
/// while instead of hammering an API that is down.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive transport errors or 5xx answers that open the circuit; at least 1.
    pub failures: u32,
    /// How long the circuit first stays open; doubled while the failures go on.
    pub cooldown: Duration,
    /// Longest the circuit stays open; at least `cooldown`.
    pub max_cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failures: 5,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_mins(2),
        }
    }
}

impl OutboxConfig {
    pub(crate) fn validate(&self, v: &mut Validator<'_>) {
        for (field, value) in [
            ("outbox.retention", self.retention),
            ("outbox.retry.initial_delay", self.retry.initial_delay),
            ("outbox.retry.max_delay", self.retry.max_delay),
            ("outbox.circuit.cooldown", self.circuit.cooldown),
            ("outbox.circuit.max_cooldown", self.circuit.max_cooldown),
        ] {
            if value.is_zero() {
                v.problem(field, "must be longer than 0s");
            }
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            v.problem(
                "outbox.max_in_flight",
                format!(
                    "{} is out of range: must be from 1 to {MAX_IN_FLIGHT}",
                    self.max_in_flight
                ),
            );
        }
        if self.circuit.failures == 0 {
            v.problem("outbox.circuit.failures", "must be at least 1");
        }

        let rate = &self.rate_limit;
        if rate.events_per_minute > 0 {
            if rate.burst == 0 {
                v.problem(
                    "outbox.rate_limit.burst",
                    "must be at least 1 while events_per_minute is above 0",
                );
            } else if rate.burst > rate.events_per_minute {
                at_most(
                    v,
                    ("outbox.rate_limit.burst", rate.burst),
                    (
                        "outbox.rate_limit.events_per_minute",
                        rate.events_per_minute,
                    ),
                );
            }
        }
        if self.retry.initial_delay > self.retry.max_delay {
            at_most(
                v,
                ("outbox.retry.initial_delay", self.retry.initial_delay),
                ("outbox.retry.max_delay", self.retry.max_delay),
            );
        }
        if self.circuit.cooldown > self.circuit.max_cooldown {
            at_most(
                v,
                ("outbox.circuit.cooldown", self.circuit.cooldown),
                ("outbox.circuit.max_cooldown", self.circuit.max_cooldown),
            );
        }
    }
}

/// Reports `small` exceeding `large` at whichever of the two the file sets (at `small` when
/// both are), saying when the other one is a default the reader may not have in mind.
fn at_most<T: std::fmt::Display>(v: &mut Validator<'_>, small: (&str, T), large: (&str, T)) {
    let name = |field: &str| field.rsplit('.').next().unwrap_or(field).to_owned();
    if v.is_set(small.0) || !v.is_set(large.0) {
        let note = if v.is_set(large.0) {
            ""
        } else {
            ", the default"
        };
        v.problem(
            small.0,
            format!(
                "{} must not exceed {} ({}{note})",
                small.1,
                name(large.0),
                large.1
            ),
        );
    } else {
        v.problem(
            large.0,
            format!(
                "{} must not be less than {} ({}, the default)",
                large.1,
                name(small.0),
                small.1
            ),
        );
    }
}
