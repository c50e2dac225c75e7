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
