//! A sliding 60-second window per key, as PagerDuty limits events per integration key and REST
//! calls per token.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the oldest request in the window leaves it.
    pub reset_secs: u64,
}

#[derive(Default)]
pub struct SlidingWindow {
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    /// Counts one request for `key` when it fits under `limit`; `limit == 0` means unlimited.
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Verdict {
        if limit == 0 {
            return Verdict {
                allowed: true,
                limit: 0,
                remaining: u32::MAX,
                reset_secs: 0,
            };
        }
        let mut seen = self.seen.lock().expect("rate limiter lock");
        let q = seen.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        let allowed = q.len() < limit as usize;
        if allowed {
            q.push_back(now);
        }
        let reset_secs = q
            .front()
            .map(|t| {
                (WINDOW.saturating_sub(now.duration_since(*t)))
                    .as_secs_f64()
                    .ceil() as u64
            })
            .unwrap_or(0);
        Verdict {
            allowed,
            limit,
            remaining: limit.saturating_sub(q.len() as u32),
            reset_secs,
        }
    }

    pub fn clear(&self) {
        self.seen.lock().expect("rate limiter lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_frees_after_the_window() {
        let w = SlidingWindow::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let v = w.check("a", 3, t0 + Duration::from_millis(i));
            assert!(v.allowed);
            assert_eq!(v.remaining, 2 - i as u32);
        }
        let v = w.check("a", 3, t0 + Duration::from_secs(1));
        assert!(!v.allowed);
        assert_eq!(v.reset_secs, 59);
        assert!(w.check("b", 3, t0).allowed, "keys are independent");
        assert!(w.check("a", 3, t0 + Duration::from_secs(61)).allowed);
        assert!(w.check("a", 0, t0).allowed, "0 disables the limit");
    }
}
