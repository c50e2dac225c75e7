//! The outbox: every event pagerbridge accepted, stored before the sender hears "accepted", and
//! kept until PagerDuty has it (then, for a while, as an audit trail).
//!
//! [`Store`] is the contract a backend fulfils; [`sqlite::SqliteStore`] is the embedded one
//! (the default), [`postgres::PgStore`] the one several replicas of the daemon can share.
//! [`group_commit::GroupCommit`] sits in front of any backend so that concurrent requests share
//! one durable commit. [`conformance`] is the behaviour every backend must show, runnable against
//! any of them.
//!
//! Ordering is per *lane*: the events of one (routing key, dedup key), which PagerDuty applies
//! to one alert. A lane is worked by one dispatcher at a time (a claim with a lease), head first;
//! different lanes proceed in parallel.

pub mod change;
pub mod conformance;
pub mod group_commit;
pub mod postgres;
mod rows;
pub mod sqlite;
pub mod sync;
pub mod sync_conformance;

pub use sync::{
    InboxItem, IncidentUpdate, MappedIncident, MonitorState, NewWriteback, Origin, Received,
    SyncEffects, SyncStore, WritebackOutcome, WritebackRecord, WritebackState,
};

use std::time::Duration;

use jiff::Timestamp;
use pagerduty::events::EventAction;
use serde::{Deserialize, Serialize};

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk or the database is full: nothing was written; retry once space is freed.
    #[error("storage is full: {0}")]
    Full(String),
    /// The database cannot be written now (read-only, locked too long, I/O error).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Refused: the input breaks a rule of the store (bad id, bad state for the operation).
    #[error("{0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// Which PagerDuty endpoint an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `/v2/enqueue`
    EventsV2,
    /// `/v2/change/enqueue`
    Change,
    /// `/generic/2010-04-15/create_event.json`
    EventsV1,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::EventsV2 => "events_v2",
            EventKind::Change => "change",
            EventKind::EventsV1 => "events_v1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "events_v2" => Some(EventKind::EventsV2),
            "change" => Some(EventKind::Change),
            "events_v1" => Some(EventKind::EventsV1),
            _ => None,
        }
    }

    pub fn api(self) -> pagerduty::Api {
        match self {
            EventKind::EventsV2 => pagerduty::Api::EventsV2,
            EventKind::Change => pagerduty::Api::ChangeEvents,
            EventKind::EventsV1 => pagerduty::Api::EventsV1,
        }
    }
}

/// An event to store. `body` is exactly what will be sent to PagerDuty.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub routing_key: String,
    /// The dedup key (v1: incident key). Change events have none.
    pub dedup_key: Option<String>,
    /// trigger/acknowledge/resolve; none for change events.
    pub action: Option<EventAction>,
    pub body: Vec<u8>,
    /// Where it came from (`http /v2/enqueue`, `cli`, ...), for the operator.
    pub source: String,
    pub received_at: Timestamp,
    /// The monitor's problem behind an alert event, for the way back: stored in the incident
    /// map in the same commit. `None` for events that name no monitor (relayed PagerDuty
    /// events, `pagerbridge event`).
    pub origin: Option<Origin>,
}

impl NewEvent {
    /// The ordering lane. Alert events of one routing key and dedup key share a lane whatever
    /// their API (v1 and v2 name the same alert); change events of a routing key have their own.
    pub fn lane(&self) -> String {
        lane_of(self.kind, &self.routing_key, self.dedup_key.as_deref())
    }
}

pub fn lane_of(kind: EventKind, routing_key: &str, dedup_key: Option<&str>) -> String {
    match kind {
        EventKind::Change => format!("c:{routing_key}"),
        _ => format!("e:{routing_key}:{}", dedup_key.unwrap_or_default()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting to be sent (or to be sent again).
    Pending,
    /// PagerDuty accepted it.
    Delivered,
    /// PagerDuty refused it (400): kept with PagerDuty's reason until an operator retries or
    /// drops it. Never blocks the events behind it.
    Dead,
    /// Not sent because a later event of the same lane with the same action superseded it while
    /// both waited; `coalesced_into` names that event.
    Coalesced,
    /// Removed by an operator.
    Dropped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Dead => "dead",
            State::Coalesced => "coalesced",
            State::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            State::Pending,
            State::Delivered,
            State::Dead,
            State::Coalesced,
            State::Dropped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event with its delivery history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub lane: String,
    pub kind: EventKind,
    pub routing_key: String,
    pub dedup_key: Option<String>,
    pub action: Option<EventAction>,
    /// What is (or was) sent. Serialised as JSON text for readability.
    #[serde(serialize_with = "body_as_json")]
    pub body: Vec<u8>,
    pub source: String,
    pub received_at: Timestamp,
    pub state: State,
    /// Sends tried so far.
    pub attempts: u32,
    /// When the dispatcher may try it next (pending events only).
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    /// PagerDuty's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// The last failure: PagerDuty's error text, or the transport error.
    pub last_error: Option<String>,
    /// PagerDuty's answer to the delivery (its JSON body).
    pub response: Option<String>,
    pub finished_at: Option<Timestamp>,
    pub coalesced_into: Option<i64>,
}

fn body_as_json<S: serde::Serializer>(body: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.serialize(s),
        Err(_) => String::from_utf8_lossy(body).serialize(s),
    }
}

/// The pending events of one lane, claimed by one worker until `expires`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub lane: String,
    pub routing_key: String,
    /// Oldest first. At most the number asked for; the lane may hold more.
    pub events: Vec<EventRecord>,
    pub owner: String,
    pub expires: Timestamp,
}

/// What happened to one claimed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        id: i64,
        status: u16,
        response: String,
        at: Timestamp,
    },
    /// Refused for good (400 and other final answers).
    Dead {
        id: i64,
        status: Option<u16>,
        error: String,
        at: Timestamp,
    },
    Coalesced {
        id: i64,
        into: i64,
        at: Timestamp,
    },
    /// Not delivered this time; stays pending and at the head of its lane.
    Failed {
        id: i64,
        status: Option<u16>,
        error: String,
        at: Timestamp,
    },
}

impl Outcome {
    pub fn id(&self) -> i64 {
        match self {
            Outcome::Delivered { id, .. }
            | Outcome::Dead { id, .. }
            | Outcome::Coalesced { id, .. }
            | Outcome::Failed { id, .. } => *id,
        }
    }
}

/// Progress on one claim: what happened to some of its events, and when the lane may be worked
/// again (`None`: as soon as it has pending events).
///
/// A dispatcher records each delivery before it sends the next event of the lane
/// (`release: false`), so that after a crash at most the one event in flight is sent again: a
/// repeated trigger, acknowledge or resolve changes nothing in PagerDuty, whereas replaying a
/// delivered trigger after a delivered resolve would open a second incident. The last record of
/// a claim releases it (`release: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneResult {
    pub lane: String,
    pub owner: String,
    pub outcomes: Vec<Outcome>,
    pub retry_at: Option<Timestamp>,
    pub release: bool,
}

/// Filters of [`Store::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub states: Vec<State>,
    pub routing_key: Option<String>,
    pub dedup_key: Option<String>,
    /// Only ids below this (paging newest first).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Depth and age of the queue of one routing key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStats {
    pub routing_key: String,
    pub pending: u64,
    pub lanes: u64,
    pub oldest_pending_at: Option<Timestamp>,
    /// The earliest time one of its lanes may be tried again (in backoff when in the future).
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub pending: u64,
    pub dead: u64,
    pub delivered: u64,
    pub coalesced: u64,
    pub dropped: u64,
    pub oldest_pending_at: Option<Timestamp>,
    pub by_routing_key: Vec<KeyStats>,
}

/// The outbox as a backend provides it. Every method is one transaction.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores events durably, in order, in one commit: when this returns `Ok`, they survive a
    /// crash and a power loss. Returns their ids, increasing in the order given.
    async fn insert(&self, events: &[NewEvent]) -> Result<Vec<i64>>;

    /// Claims up to `max_lanes` lanes whose head is due at `now` and that nobody else holds,
    /// with up to `per_lane` of their pending events each, for `lease`. A claim that is not
    /// finished before it expires may be taken by another owner.
    async fn claim(
        &self,
        owner: &str,
        max_lanes: usize,
        per_lane: usize,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<Claim>>;

    /// Records what happened to claimed events, and releases the lanes whose result says so.
    /// Outcomes for events that are no longer pending (an operator dropped them meanwhile) are
    /// ignored.
    async fn finish(&self, results: &[LaneResult]) -> Result<()>;

    /// When the first unclaimed lane becomes due, if any lane is pending.
    async fn next_due(&self) -> Result<Option<Timestamp>>;

    async fn stats(&self) -> Result<QueueStats>;

    /// How many events PagerDuty accepted at or after `since` (by when it accepted them, not
    /// when they arrived): the delivery rate an operator reads.
    async fn delivered_since(&self, since: Timestamp) -> Result<u64>;

    /// Newest first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<EventRecord>>;

    async fn get(&self, id: i64) -> Result<Option<EventRecord>>;

    /// Puts dead (or dropped) events back in their lanes as pending, due now. Returns how many.
    async fn retry(&self, ids: &[i64], now: Timestamp) -> Result<u64>;

    /// Removes pending or dead events from delivery (state `dropped`). Returns how many.
    async fn drop_events(&self, ids: &[i64], now: Timestamp) -> Result<u64>;

    /// Deletes delivered, coalesced and dropped records finished before `before`. Dead letters
    /// stay until an operator acts on them.
    async fn purge(&self, before: Timestamp) -> Result<u64>;
}
