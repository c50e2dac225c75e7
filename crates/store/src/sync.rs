//! What the way back keeps: the incident map (which PagerDuty incident belongs to which
//! monitor problem), the inbox of PagerDuty's changes (stored before the webhook is answered),
//! the write-backs still to do, and the poller's cursors.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::Result;

/// Where an alert event came from, so its incident can be found in the monitor again. Stored
/// with the event (in the same commit) as a row of the incident map.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The `[[sources]]` name, or the source kind for `pagerbridge send` without one.
    pub source: String,
    /// The monitor reference (`pagerbridge_model::MonitorRef` as JSON).
    pub monitor_ref: Value,
    /// The monitor's id of this occurrence of the problem (Nagios problem id, Zabbix event
    /// id): an acknowledgement is never applied to a newer problem than its incident's.
    pub problem_id: Option<String>,
    /// When the problem started, as the monitor says.
    pub started_at: Option<Timestamp>,
}

/// The monitor's side of a problem, as its last alert said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorState {
    Problem,
    Acknowledged,
    Recovered,
}

impl MonitorState {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorState::Problem => "problem",
            MonitorState::Acknowledged => "acknowledged",
            MonitorState::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> Option<MonitorState> {
        match s {
            "problem" => Some(MonitorState::Problem),
            "acknowledged" => Some(MonitorState::Acknowledged),
            "recovered" => Some(MonitorState::Recovered),
            _ => None,
        }
    }
}

/// One row of the incident map: routing key + dedup key <-> PagerDuty incident <-> the
/// monitor's problem, with the last state known on each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedIncident {
    pub routing_key: String,
    pub dedup_key: String,
    pub source: String,
    pub monitor_ref: Value,
    pub problem_id: Option<String>,
    /// When the problem started, by the monitor's clock.
    pub problem_started_at: Option<Timestamp>,
    /// When pagerbridge stored the current problem's first event, by its own clock: what
    /// PagerDuty's incident times are compared with.
    pub problem_seen_at: Timestamp,
    pub monitor_state: MonitorState,
    pub monitor_changed_at: Timestamp,
    /// Unknown until PagerDuty names it (a webhook, a REST lookup).
    pub incident_id: Option<String>,
    pub incident_url: Option<String>,
    pub service_id: Option<String>,
    /// `triggered`, `acknowledged` or `resolved`, as PagerDuty last said.
    pub pd_status: Option<String>,
    pub pd_changed_at: Option<Timestamp>,
    /// What the write-back adapter asked to keep (an Alertmanager silence id).
    pub memo: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// PagerDuty's side of a mapped incident, learned from a webhook, the poller or a lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentUpdate {
    pub routing_key: String,
    pub dedup_key: String,
    pub incident_id: String,
    pub incident_url: Option<String>,
    pub service_id: Option<String>,
    /// `None`: the status is not changed.
    pub pd_status: Option<String>,
    pub at: Timestamp,
}

/// Whether a received change was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    New(i64),
    /// Seen before under the same external id (a webhook retried): stored once.
    Duplicate,
}

/// One change PagerDuty told us about, waiting to be processed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub id: i64,
    /// `webhook_v3`, `webhook_v2` or `poller`.
    pub origin: String,
    /// `X-Webhook-Id`, the v2 message id, or the log entry id.
    pub external_id: String,
    pub body: Vec<u8>,
    pub received_at: Timestamp,
}

/// A write-back to do.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWriteback {
    /// The `[[monitors]]` entry that carries it out.
    pub monitor: String,
    pub routing_key: String,
    pub dedup_key: String,
    /// The change (`pagerbridge_sync::writeback::Change` as JSON).
    pub change: Value,
    pub due: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WritebackState {
    Pending,
    Done,
    Failed,
}

impl WritebackState {
    pub fn as_str(self) -> &'static str {
        match self {
            WritebackState::Pending => "pending",
            WritebackState::Done => "done",
            WritebackState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<WritebackState> {
        match s {
            "pending" => Some(WritebackState::Pending),
            "done" => Some(WritebackState::Done),
            "failed" => Some(WritebackState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WritebackRecord {
    pub id: i64,
    pub monitor: String,
    pub routing_key: String,
    pub dedup_key: String,
    pub change: Value,
    pub state: WritebackState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub detail: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// What became of one write-back attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum WritebackOutcome {
    /// Done; `memo`, when set, replaces the incident's memo.
    Done { detail: String, memo: Option<Value> },
    /// Failed for now; tried again at `retry_at`.
    Retry { error: String, retry_at: Timestamp },
    /// Failed for good.
    Failed { error: String },
}

/// Everything one processed inbox item changes, applied in one transaction with marking the
/// item processed, so a crash never writes back twice nor loses the change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncEffects {
    pub updates: Vec<IncidentUpdate>,
    pub writebacks: Vec<NewWriteback>,
    /// Changes now acted on, by a key of their own (a note's incident and text), so the same
    /// change arriving another way (webhook and poller) is recognised: see
    /// [`SyncStore::seen`].
    pub seen: Vec<String>,
    /// One line for the record: what the item did (or why it did nothing).
    pub outcome: String,
}

/// The way back as a backend provides it, beside [`crate::Store`] (the incident map rows
/// themselves are written by `Store::insert`, with the events). Every method is one
/// transaction.
#[async_trait::async_trait]
pub trait SyncStore: Send + Sync + 'static {
    /// Stores a change PagerDuty sent (a webhook body, a log entry) unless one with the same
    /// `external_id` is already stored. Durable when it returns.
    async fn receive(
        &self,
        origin: &str,
        external_id: &str,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Received>;

    /// The oldest unprocessed inbox items, oldest first.
    async fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>>;

    /// Marks an inbox item processed and applies what it changes, in one transaction.
    async fn inbox_done(&self, id: i64, effects: &SyncEffects, now: Timestamp) -> Result<()>;

    /// Map rows by dedup key (PagerDuty's incident key), newest first: one per routing key.
    async fn incidents_by_dedup_key(&self, dedup_key: &str) -> Result<Vec<MappedIncident>>;

    /// The map rows of a PagerDuty incident, once known: one, or several when the incident
    /// holds alerts of several problems (PagerDuty grouped them, or incidents were merged).
    async fn incidents_by_id(&self, incident_id: &str) -> Result<Vec<MappedIncident>>;

    /// Map rows, most recently updated first; `open_only`: those not resolved on both sides.
    async fn list_incidents(&self, open_only: bool, limit: usize) -> Result<Vec<MappedIncident>>;

    /// Records PagerDuty's side of mapped incidents (rows that do not exist are skipped).
    async fn update_incidents(&self, updates: &[IncidentUpdate]) -> Result<()>;

    /// Queues write-backs outside of inbox processing (the reconciler, maintenance).
    async fn enqueue_writebacks(&self, items: &[NewWriteback]) -> Result<Vec<i64>>;

    /// Pending write-backs due at `now`, oldest first; of the write-backs of one problem to
    /// one monitor only the oldest pending one, so they apply in order. Those claimed (see
    /// [`SyncStore::claim_writebacks`]) under a lease that has not passed are left out: they are
    /// being carried out.
    async fn due_writebacks(&self, now: Timestamp, limit: usize) -> Result<Vec<WritebackRecord>>;

    /// Claims for `owner`, until `now + lease`, those of the write-backs `ids` that are due at
    /// `now` as [`SyncStore::due_writebacks`] would return them (pending, due, the oldest
    /// pending one of their problem and monitor) and that no live claim holds; returns them,
    /// oldest first. Until [`SyncStore::finish_writeback`] records their attempt or the lease
    /// passes (the owner died), nobody claims them again, not even `owner`, and
    /// `due_writebacks` leaves them out. So two replicas of the daemon never carry out the same
    /// write-back, and a dead one's are taken over.
    async fn claim_writebacks(
        &self,
        owner: &str,
        ids: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<WritebackRecord>>;

    /// Records one attempt of a write-back (and the adapter's memo on the incident), and ends
    /// its claim.
    async fn finish_writeback(
        &self,
        id: i64,
        outcome: &WritebackOutcome,
        now: Timestamp,
    ) -> Result<()>;

    /// Write-backs, newest first, optionally of one state.
    async fn list_writebacks(
        &self,
        state: Option<WritebackState>,
        limit: usize,
    ) -> Result<Vec<WritebackRecord>>;

    /// Whether a change with this key was acted on (recorded by [`SyncStore::inbox_done`]).
    async fn seen(&self, key: &str) -> Result<bool>;

    /// A saved cursor (the poller's position).
    async fn cursor(&self, name: &str) -> Result<Option<String>>;

    async fn set_cursor(&self, name: &str, value: &str, now: Timestamp) -> Result<()>;
}
