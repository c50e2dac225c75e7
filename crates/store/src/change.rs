//! Retrying and dropping events by id: what `pagerbridge queue retry|drop` and the daemon's
//! `POST /api/v1/queue/retry|drop` do, written once so that both check and report alike.

use std::collections::HashSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::{Result, State, Store};

/// Ids changed per store call, so that any number of ids fits in bounded statements.
const CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Dead (or dropped) events back in their lanes, due now.
    Retry,
    /// Pending or dead events out of delivery.
    Drop,
}

impl Change {
    pub fn eligible(self, state: State) -> bool {
        match self {
            Change::Retry => matches!(state, State::Dead | State::Dropped),
            Change::Drop => matches!(state, State::Pending | State::Dead),
        }
    }

    /// `retry`, `drop`.
    pub fn name(self) -> &'static str {
        match self {
            Change::Retry => "retry",
            Change::Drop => "drop",
        }
    }

    /// `retried`, `dropped`.
    pub fn verb(self) -> &'static str {
        match self {
            Change::Retry => "retried",
            Change::Drop => "dropped",
        }
    }

    /// Which events the change applies to, for messages.
    pub fn allowed(self) -> &'static str {
        match self {
            Change::Retry => "only dead or dropped events can be retried",
            Change::Drop => "only pending or dead events can be dropped",
        }
    }
}

/// An id whose event is in a state the change does not apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotEligible {
    pub id: i64,
    pub state: State,
}

/// What a change did, id by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    pub action: &'static str,
    pub changed: u64,
    /// The eligible ids, in the order given (duplicates removed).
    pub ids: Vec<i64>,
    pub not_eligible: Vec<NotEligible>,
    pub unknown: Vec<i64>,
    /// Eligible when checked, changed by someone else (the dispatcher delivering a pending
    /// event, another operator) before the change: left as they were.
    pub changed_meanwhile: u64,
}

impl ChangeReport {
    pub fn all_changed(&self) -> bool {
        self.not_eligible.is_empty() && self.unknown.is_empty() && self.changed_meanwhile == 0
    }
}

/// Applies `op` to the events `ids` that it applies to.
pub async fn apply(
    store: &dyn Store,
    op: Change,
    ids: Vec<i64>,
    now: Timestamp,
) -> Result<ChangeReport> {
    let mut seen = HashSet::new();
    let mut eligible = Vec::new();
    let mut not_eligible = Vec::new();
    let mut unknown = Vec::new();
    for id in ids.into_iter().filter(|id| seen.insert(*id)) {
        match store.get(id).await? {
            None => unknown.push(id),
            Some(r) if op.eligible(r.state) => eligible.push(id),
            Some(r) => not_eligible.push(NotEligible { id, state: r.state }),
        }
    }
    let mut changed = 0;
    for chunk in eligible.chunks(CHUNK) {
        changed += match op {
            Change::Retry => store.retry(chunk, now).await?,
            Change::Drop => store.drop_events(chunk, now).await?,
        };
    }
    let raced = eligible.len() as u64 - changed.min(eligible.len() as u64);
    Ok(ChangeReport {
        action: op.name(),
        changed,
        ids: eligible,
        not_eligible,
        unknown,
        changed_meanwhile: raced,
    })
}
