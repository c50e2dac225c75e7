//! A plausible life of an alert per key (repeats, acknowledgements, reopenings) and what
//! PagerDuty makes of it: the crash and HA tests send such scripts and check the final state of
//! each incident against the model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }
}

/// PagerDuty's alert rules, reduced to what the final state depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    None,
    Triggered,
    Acknowledged,
    Resolved,
}

pub fn apply(m: Model, a: Action) -> Model {
    match (m, a) {
        (Model::None | Model::Resolved, Action::Trigger) => Model::Triggered,
        (Model::Triggered | Model::Acknowledged, Action::Trigger) => m,
        (Model::Triggered | Model::Acknowledged, Action::Acknowledge) => Model::Acknowledged,
        (Model::Triggered | Model::Acknowledged, Action::Resolve) => Model::Resolved,
        (other, _) => other,
    }
}

/// `events` actions drawn from `seed` (xorshift): half triggers, the rest acknowledgements and
/// resolves, the same every run.
pub fn script(seed: u64, events: usize) -> Vec<Action> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..events)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 10 {
                0..=4 => Action::Trigger,
                5..=6 => Action::Acknowledge,
                _ => Action::Resolve,
            }
        })
        .collect()
}

/// PagerDuty misbehaving all along, until [`Chaos::stop`]: 503s, connections dropped before and
/// after processing, answers slower than `slow_ms`, throttling — a few of each in turn, every
/// 150 ms, on the Events API.
pub struct Chaos {
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Chaos {
    pub fn start(pd: &pagerbridge_testkit::TestPd, slow_ms: u64) -> Chaos {
        use pagerduty_emulator::{FaultKind, FaultSpec, Scope};
        use std::sync::atomic::Ordering;
        let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let running = on.clone();
        let shared = pd.shared().clone();
        let task = tokio::spawn(async move {
            let kinds = [
                (FaultKind::Status, Some(503), None, 4),
                (FaultKind::Drop, None, None, 2),
                (FaultKind::DropAfter, None, None, 2),
                (FaultKind::Delay, None, Some(slow_ms), 1),
                (FaultKind::RateLimit, None, None, 2),
            ];
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                let (kind, status, delay_ms, count) = kinds[i % kinds.len()];
                let _ = shared.faults.add(FaultSpec {
                    kind,
                    status,
                    retry_after: None,
                    delay_ms,
                    count: Some(count),
                    seconds: None,
                    scope: Scope::Events,
                });
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
        });
        Chaos { on, task }
    }

    pub async fn stop(self) {
        self.on.store(false, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap();
    }
}
