//! Fault injection: make the next N requests, or every request for a while, fail the way
//! PagerDuty fails (429 with Retry-After, 5xx, slow answers, dropped connections).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (a 4xx or 5xx) without processing the request.
    Status,
    /// Answer 429 with PagerDuty's throttling body, without processing the request.
    RateLimit,
    /// Wait `delay_ms`, then process and answer normally (a slow PagerDuty; longer than the
    /// client's timeout, a timeout).
    Delay,
    /// Close the connection without answering and without processing.
    Drop,
    /// Process the request, then close the connection without answering: PagerDuty acted on it
    /// but the sender never learns so, and will send it again.
    DropAfter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Events v2, change events, v1 and the REST API.
    #[default]
    All,
    /// `/v2/enqueue`, `/v2/change/enqueue`, `/generic/...`.
    Events,
    Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// For `status`: the code to answer (400-599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `status` and `rate_limit`: a `Retry-After` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// For `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Affect the next `count` matching requests...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// ...or every matching request for this many seconds. One of the two; `count: 1` if neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub scope: Scope,
}

impl FaultSpec {
    /// Parses a spec sent to the admin API, naming the field at fault. serde's own message names
    /// a missing or unknown field but not one whose value is wrong, so each field is tried alone
    /// (alone, the only error that is not about that field is the missing `kind`).
    pub fn from_json(body: &[u8]) -> Result<FaultSpec, String> {
        let whole = match serde_json::from_slice::<FaultSpec>(body) {
            Ok(spec) => return Ok(spec),
            Err(e) => e,
        };
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
            for (name, value) in fields {
                let alone =
                    serde_json::Value::Object([(name.clone(), value)].into_iter().collect());
                if let Err(e) = serde_json::from_value::<FaultSpec>(alone)
                    && !e.to_string().starts_with("missing field")
                {
                    return Err(format!("{name}: {e}"));
                }
            }
        }
        Err(format!("fault: {whole}"))
    }

    /// Names the field that makes a spec unusable.
    pub fn validate(&self) -> Result<(), String> {
        match self.kind {
            FaultKind::Status => match self.status {
                Some(s) if (400..=599).contains(&s) => {}
                Some(s) => return Err(format!("status: {s} is not a 4xx or 5xx code")),
                None => return Err("status: required for kind \"status\"".into()),
            },
            FaultKind::Delay if self.delay_ms.is_none() => {
                return Err("delay_ms: required for kind \"delay\"".into());
            }
            _ => {}
        }
        if self.count.is_some() && self.seconds.is_some() {
            return Err("count, seconds: give one of them, not both".into());
        }
        if let Some(s) = self.seconds
            && !(s.is_finite() && s > 0.0 && s <= 86_400.0)
        {
            return Err(format!("seconds: {s} is not between 0 and 86400"));
        }
        if self.count == Some(0) {
            return Err("count: must be at least 1".into());
        }
        if self.delay_ms.is_some_and(|d| d > 600_000) {
            return Err("delay_ms: at most 600000 (10 minutes)".into());
        }
        Ok(())
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.unwrap_or(0))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    pub spec: FaultSpec,
    /// Requests still to affect (count-based faults).
    pub remaining: Option<u32>,
    pub hits: u64,
    #[serde(skip)]
    until: Option<Instant>,
}

#[derive(Default)]
pub struct Faults {
    active: Mutex<(u64, Vec<ActiveFault>)>,
}

impl Faults {
    pub fn add(&self, spec: FaultSpec) -> Result<u64, String> {
        spec.validate()?;
        let mut g = self.active.lock().expect("faults lock");
        g.0 += 1;
        let id = g.0;
        let until = spec
            .seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s));
        let remaining = if until.is_some() {
            None
        } else {
            Some(spec.count.unwrap_or(1))
        };
        g.1.push(ActiveFault {
            id,
            spec,
            remaining,
            hits: 0,
            until,
        });
        Ok(id)
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        let mut g = self.active.lock().expect("faults lock");
        let now = Instant::now();
        g.1.retain(|f| f.until.is_none_or(|u| u > now));
        g.1.clone()
    }

    pub fn clear(&self) {
        self.active.lock().expect("faults lock").1.clear();
    }

    /// The fault that applies to a request of `scope`, consuming one use of it. Faults apply in
    /// the order they were added.
    pub fn take(&self, scope: Scope) -> Option<FaultSpec> {
        let mut g = self.active.lock().expect("faults lock");
        let now = Instant::now();
        g.1.retain(|f| f.until.is_none_or(|u| u > now) && f.remaining != Some(0));
        let f =
            g.1.iter_mut()
                .find(|f| f.spec.scope == Scope::All || f.spec.scope == scope)?;
        f.hits += 1;
        if let Some(r) = f.remaining.as_mut() {
            *r -= 1;
        }
        let spec = f.spec.clone();
        g.1.retain(|f| f.remaining != Some(0));
        Some(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FaultKind) -> FaultSpec {
        FaultSpec {
            kind,
            status: None,
            retry_after: None,
            delay_ms: None,
            count: None,
            seconds: None,
            scope: Scope::All,
        }
    }

    #[test]
    fn count_faults_are_used_up_in_order() {
        let f = Faults::default();
        f.add(FaultSpec {
            status: Some(503),
            count: Some(2),
            ..spec(FaultKind::Status)
        })
        .unwrap();
        f.add(spec(FaultKind::Drop)).unwrap();
        assert_eq!(f.take(Scope::Events).unwrap().status, Some(503));
        assert_eq!(f.take(Scope::Rest).unwrap().status, Some(503));
        assert_eq!(f.take(Scope::Events).unwrap().kind, FaultKind::Drop);
        assert!(f.take(Scope::Events).is_none());
    }

    #[test]
    fn scope_filters_and_validation_names_the_field() {
        let f = Faults::default();
        f.add(FaultSpec {
            scope: Scope::Rest,
            ..spec(FaultKind::RateLimit)
        })
        .unwrap();
        assert!(f.take(Scope::Events).is_none());
        assert!(f.take(Scope::Rest).is_some());
        let err = f.add(spec(FaultKind::Status)).unwrap_err();
        assert!(err.starts_with("status:"), "{err}");
        let err = f
            .add(FaultSpec {
                count: Some(1),
                seconds: Some(1.0),
                ..spec(FaultKind::Drop)
            })
            .unwrap_err();
        assert!(err.contains("count, seconds"), "{err}");
    }

    #[test]
    fn time_window_faults_expire() {
        let f = Faults::default();
        f.add(FaultSpec {
            seconds: Some(0.05),
            ..spec(FaultKind::Drop)
        })
        .unwrap();
        assert!(f.take(Scope::Events).is_some());
        assert!(
            f.take(Scope::Events).is_some(),
            "window faults are not used up"
        );
        std::thread::sleep(Duration::from_millis(80));
        assert!(f.take(Scope::Events).is_none());
    }
}
