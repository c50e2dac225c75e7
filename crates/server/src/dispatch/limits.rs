//! The dispatcher's brakes: a token bucket per routing key (PagerDuty throttles per
//! integration key), a circuit for the destination (an outage must not become a retry storm),
//! and the backoff between attempts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Token buckets, one per routing key, refilled at `per_minute / 60` per second up to `burst`.
/// In any 60 seconds a key sends at most `per_minute + burst` events; the defaults (100 + 10)
/// stay under PagerDuty's documented ~120 per minute per integration key.
pub struct Buckets {
    per_minute: u32,
    burst: u32,
    keys: HashMap<String, Bucket>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
    /// PagerDuty said 429 for this key: nothing goes until then.
    paused_until: Option<Instant>,
}

impl Buckets {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32, burst: u32) -> Buckets {
        Buckets {
            per_minute,
            burst: burst.max(1),
            keys: HashMap::new(),
        }
    }

    /// Takes a token for `key`, or says when one will be there.
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), Instant> {
        let paused = self.keys.get(key).and_then(|b| b.paused_until);
        if let Some(until) = paused
            && until > now
        {
            return Err(until);
        }
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = self.per_minute as f64 / 60.0;
        let burst = self.burst as f64;
        let b = self.keys.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
            paused_until: None,
        });
        b.paused_until = None;
        b.tokens =
            (b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// PagerDuty throttled `key`: hold it until `until`.
    pub fn pause(&mut self, key: &str, until: Instant) {
        let b = self.keys.entry(key.to_owned()).or_insert(Bucket {
            tokens: 0.0,
            updated: until,
            paused_until: None,
        });
        b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// A circuit breaker for one destination. After `threshold` failures in a row (no answer, or
/// a 5xx) it opens: nothing is sent for a cooldown that doubles while the destination keeps
/// failing; then one request probes it, and its outcome closes or reopens the circuit.
pub struct Circuit {
    threshold: u32,
    base: Duration,
    max: Duration,
    failures: u32,
    cooldown: Duration,
    open_until: Option<Instant>,
    probing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// The one request that tests a destination after its cooldown.
    Probe,
    Open {
        until: Instant,
    },
}

impl Circuit {
    pub fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration) -> Circuit {
        Circuit {
            threshold: threshold.max(1),
            base: cooldown,
            max: max_cooldown.max(cooldown),
            failures: 0,
            cooldown,
            open_until: None,
            probing: false,
        }
    }

    /// Whether a request may go now. Returns `Probe` to exactly one caller after a cooldown.
    pub fn gate(&mut self, now: Instant) -> Gate {
        match self.open_until {
            None => Gate::Closed,
            Some(until) if now < until => Gate::Open { until },
            Some(_) if self.probing => Gate::Open {
                until: now + Duration::from_millis(100),
            },
            Some(_) => {
                self.probing = true;
                Gate::Probe
            }
        }
    }

    /// When it reopens, if it is open now (for callers that only look).
    pub fn open_until(&self, now: Instant) -> Option<Instant> {
        self.open_until.filter(|u| *u > now)
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.probing = false;
        self.cooldown = self.base;
    }

    /// A request failed (no answer, or a 5xx). `probe`: it was the request `gate` let through as
    /// the probe. Only the probe's failure reopens an open circuit; requests that were already on
    /// their way when it opened say nothing new about the destination. Returns whether this
    /// failure opened (or reopened) the circuit.
    pub fn failure(&mut self, now: Instant, probe: bool) -> bool {
        self.failures += 1;
        if probe {
            self.probing = false;
            self.cooldown = (self.cooldown * 2).min(self.max);
            self.open_until = Some(now + self.cooldown);
            true
        } else if self.open_until.is_none() && self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
            true
        } else {
            false
        }
    }

    /// A probe that ended without an answer either way (the lane gave up its turn).
    pub fn probe_abandoned(&mut self) {
        self.probing = false;
    }
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits between half and all of
/// `initial * 2^(n-1)`, capped at `max`, and never less than what PagerDuty asked for. The
/// jitter keeps many lanes that failed together from retrying together.
pub fn backoff(
    attempt: u32,
    initial: Duration,
    max: Duration,
    asked: Option<Duration>,
) -> Duration {
    let exp = initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = exp / 2;
    let jittered = half + half.mul_f64(rand::random::<f64>());
    // A Retry-After longer than an hour is a misconfiguration somewhere; an hour is plenty.
    let asked = asked
        .map(|a| a.min(Duration::from_secs(3600)))
        .unwrap_or_default();
    jittered.max(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_sustained_rate_per_key() {
        let mut b = Buckets::new(60, 3); // one per second, bursts of 3
        let t = Instant::now();
        for _ in 0..3 {
            assert!(b.take("a", t).is_ok());
        }
        let wait = b.take("a", t).unwrap_err();
        assert!(
            wait > t && wait <= t + Duration::from_secs(1),
            "{:?}",
            wait - t
        );
        assert!(b.take("b", t).is_ok(), "other keys have their own bucket");
        assert!(b.take("a", t + Duration::from_millis(1001)).is_ok());
        assert!(b.take("a", t + Duration::from_millis(1002)).is_err());
    }

    #[test]
    fn a_key_never_exceeds_per_minute_plus_burst_in_any_minute() {
        let mut b = Buckets::new(100, 10);
        let t = Instant::now();
        let mut sent = Vec::new();
        // Ask every 10 ms for two minutes.
        for i in 0..12_000u64 {
            let now = t + Duration::from_millis(i * 10);
            if b.take("k", now).is_ok() {
                sent.push(now);
            }
        }
        for (i, start) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|s| **s < *start + Duration::from_secs(60))
                .count();
            assert!(in_window <= 110, "{in_window} in one minute");
        }
        assert!(
            sent.len() >= 200,
            "the sustained rate is reached: {}",
            sent.len()
        );
    }

    #[test]
    fn a_throttled_key_waits_for_pagerduty_even_with_limits_off() {
        let mut b = Buckets::new(0, 10);
        let t = Instant::now();
        assert!(b.take("k", t).is_ok());
        b.pause("k", t + Duration::from_secs(7));
        assert_eq!(
            b.take("k", t + Duration::from_secs(1)),
            Err(t + Duration::from_secs(7))
        );
        assert!(b.take("k", t + Duration::from_secs(7)).is_ok());
    }

    #[test]
    fn the_circuit_opens_after_failures_probes_once_and_backs_off() {
        let base = Duration::from_secs(5);
        let mut c = Circuit::new(3, base, Duration::from_secs(20));
        let t = Instant::now();
        assert!(!c.failure(t, false));
        assert!(!c.failure(t, false));
        assert_eq!(c.gate(t), Gate::Closed);
        assert!(c.failure(t, false), "the third failure opens it");
        assert_eq!(
            c.gate(t + Duration::from_secs(1)),
            Gate::Open { until: t + base }
        );
        let later = t + base;
        assert_eq!(c.gate(later), Gate::Probe);
        assert!(
            matches!(c.gate(later), Gate::Open { .. }),
            "one probe at a time"
        );
        assert!(!c.failure(later, false));
        assert!(
            matches!(c.gate(later), Gate::Open { .. }),
            "a straggler's failure does not decide for the probe"
        );
        assert!(c.failure(later, true), "a failed probe reopens it");
        assert_eq!(
            c.open_until(later),
            Some(later + base * 2),
            "cooldown doubles"
        );
        let later = later + base * 2;
        assert_eq!(c.gate(later), Gate::Probe);
        c.failure(later, true);
        assert_eq!(
            c.open_until(later),
            Some(later + Duration::from_secs(20)),
            "capped"
        );
        let later = later + Duration::from_secs(20);
        assert_eq!(c.gate(later), Gate::Probe);
        c.success();
        assert_eq!(c.gate(later), Gate::Closed);
        c.failure(later, false);
        c.failure(later, false);
        assert_eq!(
            c.gate(later),
            Gate::Closed,
            "the count starts again after a success"
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..10 {
            let full = (i * 2u32.pow(attempt - 1)).min(m);
            for _ in 0..50 {
                let d = backoff(attempt, i, m, None);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(
            backoff(1, i, m, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(1, i, m, Some(Duration::from_secs(99_999))),
            Duration::from_secs(3600)
        );
    }
}
