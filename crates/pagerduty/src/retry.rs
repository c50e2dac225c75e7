//! Waiting out PagerDuty's throttling and outages on REST calls, visibly.
//!
//! A person at a terminal (or a chat-ops runner) who pages through thousands of incidents will
//! meet a 429 sooner or later. PagerDuty says how long to wait (`Retry-After`, `ratelimit-reset`);
//! the client waits that long, tells whoever is watching ("waiting 12 s for the rate limit"), and
//! tries again, within a total budget. Without a policy the client fails at once, which is what
//! the daemon's own loops want (they have their own schedules).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use crate::error::{Disposition, Error, TransportKind};

/// Why a call is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// HTTP 429: the account's or the token's rate limit.
    RateLimit,
    /// PagerDuty answered with this 5xx (or 408).
    Status(u16),
    /// No answer at all (refused connection, timeout, dropped connection).
    NoAnswer(TransportKind),
}

/// One wait before trying a call again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub delay: Duration,
    pub reason: WaitReason,
    /// The attempt that failed, from 1.
    pub attempt: u32,
    pub method: String,
    pub path: String,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole seconds read best; below one second, say so rather than "0 s".
        let secs = self.delay.as_secs_f64();
        let delay = if secs < 1.0 {
            format!("{} ms", self.delay.as_millis())
        } else {
            format!("{} s", secs.round() as u64)
        };
        match &self.reason {
            WaitReason::RateLimit => write!(f, "waiting {delay} for the rate limit")?,
            WaitReason::Status(status) => {
                write!(f, "waiting {delay}: PagerDuty answered HTTP {status}")?
            }
            WaitReason::NoAnswer(kind) => {
                let what = match kind {
                    TransportKind::Timeout => "timed out",
                    TransportKind::Connect => "could not connect",
                    TransportKind::Interrupted => "connection dropped",
                };
                write!(f, "waiting {delay}: no answer from PagerDuty ({what})")?
            }
        }
        write!(
            f,
            " ({} {}, attempt {})",
            self.method, self.path, self.attempt
        )
    }
}

/// Who is told about waits.
pub type OnWait = Arc<dyn Fn(&Wait) + Send + Sync>;

/// How a [`crate::RestClient`] retries.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The waits of one call add up to at most this; a wait PagerDuty asks for that would go
    /// past it is not waited: the error is returned instead (its `retry_after` says how long).
    pub max_total_wait: Duration,
    /// First wait after a 5xx or no answer when PagerDuty names none; doubled each time.
    pub initial_delay: Duration,
    /// Cap on one wait PagerDuty did not ask for.
    pub max_delay: Duration,
    pub on_wait: Option<OnWait>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("max_total_wait", &self.max_total_wait)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("on_wait", &self.on_wait.is_some())
            .finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_total_wait: Duration::from_secs(120),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            on_wait: None,
        }
    }
}

impl RetryPolicy {
    /// Calls `f` before each wait.
    pub fn on_wait(mut self, f: impl Fn(&Wait) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(Arc::new(f));
        self
    }

    /// The wait before attempt `attempt + 1` after `error`, or `None` to give up. `waited` is
    /// what this call has waited so far.
    pub fn next_wait(
        &self,
        method: &Method,
        error: &Error,
        attempt: u32,
        waited: Duration,
    ) -> Option<(Duration, WaitReason)> {
        if attempt >= self.max_attempts {
            return None;
        }
        let Disposition::Retry { after } = error.disposition() else {
            return None;
        };
        let reason = match error {
            Error::Api { status: 429, .. } => WaitReason::RateLimit,
            Error::Api { status, .. } => WaitReason::Status(*status),
            Error::Transport { kind, .. } => WaitReason::NoAnswer(*kind),
            _ => return None,
        };
        // A 429 means PagerDuty did nothing, and a refused connection means nothing was sent:
        // any call can be repeated. Otherwise the request may have been carried out, so only
        // calls that are safe to repeat are (not POST: a second incident or note).
        let repeatable = matches!(
            reason,
            WaitReason::RateLimit | WaitReason::NoAnswer(TransportKind::Connect)
        ) || matches!(*method, Method::GET | Method::PUT | Method::DELETE);
        if !repeatable {
            return None;
        }
        let backoff = self
            .initial_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        let delay = match after {
            Some(asked) => asked,
            None => backoff,
        };
        if waited + delay > self.max_total_wait {
            return None;
        }
        Some((delay, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Api, ErrorBody, RateLimit};

    fn api(status: u16, after: Option<u64>) -> Error {
        Error::Api {
            api: Api::Rest,
            status,
            body: Box::new(ErrorBody::parse(b"")),
            retry_after: after.map(Duration::from_secs),
            rate_limit: RateLimit::default(),
        }
    }

    #[test]
    fn waits_what_pagerduty_asks_then_gives_up_past_the_budget() {
        let p = RetryPolicy::default();
        let (d, r) = p
            .next_wait(&Method::GET, &api(429, Some(12)), 1, Duration::ZERO)
            .unwrap();
        assert_eq!((d, r), (Duration::from_secs(12), WaitReason::RateLimit));
        // 110 s already waited: another 12 s would pass the 120 s budget.
        assert!(
            p.next_wait(
                &Method::GET,
                &api(429, Some(12)),
                2,
                Duration::from_secs(110)
            )
            .is_none()
        );
        assert!(
            p.next_wait(&Method::GET, &api(429, Some(1)), 6, Duration::ZERO)
                .is_none()
        );
    }

    #[test]
    fn backs_off_on_5xx_only_for_repeatable_calls() {
        let p = RetryPolicy::default();
        let d: Vec<_> = (1..=4)
            .map(|n| {
                p.next_wait(&Method::PUT, &api(503, None), n, Duration::ZERO)
                    .unwrap()
                    .0
                    .as_secs()
            })
            .collect();
        assert_eq!(d, [1, 2, 4, 8]);
        assert!(
            p.next_wait(&Method::POST, &api(503, None), 1, Duration::ZERO)
                .is_none()
        );
        // A throttled POST was not carried out: it is repeated.
        assert!(
            p.next_wait(&Method::POST, &api(429, None), 1, Duration::ZERO)
                .is_some()
        );
        assert!(
            p.next_wait(&Method::GET, &api(404, None), 1, Duration::ZERO)
                .is_none()
        );
    }

    #[test]
    fn says_what_it_waits_for() {
        let w = Wait {
            delay: Duration::from_secs(12),
            reason: WaitReason::RateLimit,
            attempt: 1,
            method: "GET".into(),
            path: "/incidents".into(),
        };
        assert_eq!(
            w.to_string(),
            "waiting 12 s for the rate limit (GET /incidents, attempt 1)"
        );
    }
}
