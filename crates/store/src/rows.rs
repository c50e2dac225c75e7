//! Reading records out of rows, once for both backends: SQLite and PostgreSQL differ in their
//! integer widths, not in what a record is.

use jiff::Timestamp;
use pagerduty::events::EventAction;
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::sync::{MappedIncident, MonitorState, WritebackRecord, WritebackState};
use crate::{EventKind, EventRecord, Result, State, StoreError};

/// Times are stored as milliseconds since the epoch on both backends.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn json_text(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// The column reads the records need. Like `Row::get`, a read panics on a column the query did
/// not select: that is a bug in the query, not a state of the data.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> String;
    fn opt_text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> i64;
    fn opt_int(&self, column: &str) -> Option<i64>;
    fn blob(&self, column: &str) -> Vec<u8>;
}

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> String {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Option<String> {
        self.get(column)
    }
    fn int(&self, column: &str) -> i64 {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Option<i64> {
        self.get(column)
    }
    fn blob(&self, column: &str) -> Vec<u8> {
        self.get(column)
    }
}

/// PostgreSQL's `INTEGER` columns are 32 bits, its `BIGINT` ones 64.
impl Columns for PgRow {
    fn text(&self, column: &str) -> String {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Option<String> {
        self.get(column)
    }
    fn int(&self, column: &str) -> i64 {
        self.try_get::<i64, _>(column)
            .unwrap_or_else(|_| i64::from(self.get::<i32, _>(column)))
    }
    fn opt_int(&self, column: &str) -> Option<i64> {
        self.try_get::<Option<i64>, _>(column)
            .unwrap_or_else(|_| self.get::<Option<i32>, _>(column).map(i64::from))
    }
    fn blob(&self, column: &str) -> Vec<u8> {
        self.get(column)
    }
}

fn unknown(what: &str, v: &str) -> StoreError {
    StoreError::Other(format!("unknown {what} {v:?} in the database"))
}

pub(crate) fn record(row: &impl Columns) -> Result<EventRecord> {
    let kind = row.text("kind");
    let state = row.text("state");
    let state = State::parse(&state).ok_or_else(|| unknown("state", &state))?;
    Ok(EventRecord {
        id: row.int("id"),
        lane: row.text("lane"),
        kind: EventKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
        routing_key: row.text("routing_key"),
        dedup_key: row.opt_text("dedup_key"),
        action: match row.opt_text("action").as_deref() {
            None => None,
            Some("trigger") => Some(EventAction::Trigger),
            Some("acknowledge") => Some(EventAction::Acknowledge),
            Some("resolve") => Some(EventAction::Resolve),
            Some(other) => return Err(unknown("action", other)),
        },
        body: row.blob("body"),
        source: row.text("source"),
        received_at: ts(row.int("received_at")),
        attempts: row.int("attempts") as u32,
        next_attempt_at: if state == State::Pending {
            row.opt_int("next_attempt_at").map(ts)
        } else {
            None
        },
        state,
        last_attempt_at: row.opt_int("last_attempt_at").map(ts),
        last_status: row.opt_int("last_status").map(|s| s as u16),
        last_error: row.opt_text("last_error"),
        response: row.opt_text("response"),
        finished_at: row.opt_int("finished_at").map(ts),
        coalesced_into: row.opt_int("coalesced_into"),
    })
}

pub(crate) const INCIDENT_COLUMNS: &str = "routing_key, dedup_key, source, monitor_ref, \
    problem_id, problem_started_at, problem_seen_at, monitor_state, monitor_changed_at, \
    incident_id, incident_url, service_id, pd_status, pd_changed_at, memo, created_at, updated_at";

pub(crate) fn incident(row: &impl Columns) -> Result<MappedIncident> {
    let state = row.text("monitor_state");
    Ok(MappedIncident {
        routing_key: row.text("routing_key"),
        dedup_key: row.text("dedup_key"),
        source: row.text("source"),
        monitor_ref: parse_json(row.opt_text("monitor_ref")).unwrap_or(Value::Null),
        problem_id: row.opt_text("problem_id"),
        problem_started_at: row.opt_int("problem_started_at").map(ts),
        problem_seen_at: ts(row.int("problem_seen_at")),
        monitor_state: MonitorState::parse(&state)
            .ok_or_else(|| unknown("monitor state", &state))?,
        monitor_changed_at: ts(row.int("monitor_changed_at")),
        incident_id: row.opt_text("incident_id"),
        incident_url: row.opt_text("incident_url"),
        service_id: row.opt_text("service_id"),
        pd_status: row.opt_text("pd_status"),
        pd_changed_at: row.opt_int("pd_changed_at").map(ts),
        memo: parse_json(row.opt_text("memo")),
        created_at: ts(row.int("created_at")),
        updated_at: ts(row.int("updated_at")),
    })
}

pub(crate) const WRITEBACK_COLUMNS: &str = "id, monitor, routing_key, dedup_key, change, state, \
    attempts, next_attempt_at, last_error, detail, created_at, finished_at";

pub(crate) fn writeback(row: &impl Columns) -> Result<WritebackRecord> {
    let state = row.text("state");
    Ok(WritebackRecord {
        id: row.int("id"),
        monitor: row.text("monitor"),
        routing_key: row.text("routing_key"),
        dedup_key: row.text("dedup_key"),
        change: parse_json(row.opt_text("change")).unwrap_or(Value::Null),
        state: WritebackState::parse(&state).ok_or_else(|| unknown("write-back state", &state))?,
        attempts: row.int("attempts") as u32,
        next_attempt_at: ts(row.int("next_attempt_at")),
        last_error: row.opt_text("last_error"),
        detail: row.opt_text("detail"),
        created_at: ts(row.int("created_at")),
        finished_at: row.opt_int("finished_at").map(ts),
    })
}
