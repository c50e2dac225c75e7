//! Centreon Broker, through the Lua stream connector the project ships
//! (`contrib/centreon/pagerbridge-stream-connector.lua`). Broker hands the connector every
//! host and service status (neb category 1: `host_status` element 14 and `service_status`
//! element 24, or `pb_host_status` 32 and `pb_service_status` 29 with BBDO 3); the connector
//! keeps the state changes, adds the names from the broker cache and posts them in batches as a
//! JSON array:
//!
//! ```json
//! [{"kind": "service", "host_id": 12, "service_id": 34, "host_name": "db1",
//!   "service_description": "Disk /", "state": 2, "state_type": 1,
//!   "output": "DISK CRITICAL - free space: / 100 MB", "perfdata": "/=900MB;800;900;0;1000",
//!   "acknowledged": false, "scheduled_downtime_depth": 0, "last_state_change": 1714564800,
//!   "last_hard_state_change": 1714564800, "last_check": 1714564800,
//!   "centreon_url": "https://centreon.example.com"}]
//! ```
//!
//! One [`Alert`] per event: OK/UP is a recovery, any other state a problem. Events the
//! [`Options`] filter out are simply not returned (no error): soft states when `hard_only`,
//! problems in a downtime when `skip_in_downtime`, acknowledged problems when
//! `skip_acknowledged`. Recoveries are never filtered out: a resolve for an incident that was
//! never opened changes nothing at PagerDuty, a lost one leaves an incident open for ever.

use crate::type_name;
use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, MonitorRef, SourceKind, parse_perfdata};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Which events become alerts; a route's `[options]` in the configuration.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Only hard states (`state_type` 1): a soft state is the monitor still re-checking.
    /// Default true.
    pub hard_only: bool,
    /// Drop problems of hosts and services in a scheduled downtime. Default true.
    pub skip_in_downtime: bool,
    /// Drop problems someone already acknowledged in Centreon. Default true.
    pub skip_acknowledged: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            hard_only: true,
            skip_in_downtime: true,
            skip_acknowledged: true,
        }
    }
}

/// Service states by number (BBDO `state`).
pub const SERVICE_STATES: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];
/// Host states by number.
pub const HOST_STATES: [&str; 3] = ["UP", "DOWN", "UNREACHABLE"];

/// Decodes a batch from the stream connector: a JSON array of events (a single object is
/// accepted as a batch of one). Returns the alerts of the events `opts` keeps, in order.
pub fn decode(body: &[u8], opts: &Options) -> Result<Vec<Alert>, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("not valid JSON: {e}")))?;
    let events = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(DecodeError::new(
                "",
                format!("expected a JSON array of events, got {}", type_name(&other)),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let path = format!("events[{i}]");
        let Value::Object(obj) = event else {
            return Err(DecodeError::new(
                path,
                format!("expected an object, got {}", type_name(event)),
            ));
        };
        if let Some(alert) = decode_event(&Event { map: obj, path }, opts)? {
            out.push(alert);
        }
    }
    Ok(out)
}

fn decode_event(e: &Event<'_>, opts: &Options) -> Result<Option<Alert>, DecodeError> {
    let host_id = e.uint("host_id")?.ok_or_else(|| e.missing("host_id"))?;
    let service_id = e.uint("service_id")?.filter(|id| *id != 0);
    let is_service = match e.text("kind")?.as_deref() {
        Some("service") => true,
        Some("host") => false,
        Some(other) => {
            return Err(DecodeError::new(
                e.field("kind"),
                format!("expected \"service\" or \"host\", got {other:?}"),
            ));
        }
        None => service_id.is_some(),
    };
    if is_service && service_id.is_none() {
        return Err(DecodeError::new(
            e.field("service_id"),
            "missing: a service event needs its service_id",
        ));
    }
    let names: &[&str] = if is_service {
        &SERVICE_STATES
    } else {
        &HOST_STATES
    };
    let state_num = e.uint("state")?.ok_or_else(|| e.missing("state"))?;
    let status = usize::try_from(state_num)
        .ok()
        .and_then(|n| names.get(n))
        .ok_or_else(|| {
            DecodeError::new(
                e.field("state"),
                format!(
                    "expected 0..={} ({}), got {state_num}",
                    names.len() - 1,
                    names.join(", ")
                ),
            )
        })?;
    let is_recovery = state_num == 0;
    let state_type = e.uint("state_type")?;
    let hard = match state_type {
        None | Some(1) => true,
        Some(0) => false,
        Some(other) => {
            return Err(DecodeError::new(
                e.field("state_type"),
                format!("expected 0 (soft) or 1 (hard), got {other}"),
            ));
        }
    };
    let acknowledged = e.flag("acknowledged")?;
    let downtime_depth = e.uint("scheduled_downtime_depth")?.unwrap_or(0);

    if !is_recovery {
        if opts.hard_only && !hard {
            return Ok(None);
        }
        if opts.skip_in_downtime && downtime_depth > 0 {
            return Ok(None);
        }
        if opts.skip_acknowledged && acknowledged {
            return Ok(None);
        }
    }

    let host_name = e.text("host_name")?.unwrap_or_else(|| host_id.to_string());
    let service_name = if is_service {
        Some(
            e.text("service_description")?
                .unwrap_or_else(|| service_id.unwrap_or_default().to_string()),
        )
    } else {
        None
    };
    let output = e.text("output")?;
    let entity_name = match &service_name {
        Some(s) => format!("{host_name}/{s}"),
        None => host_name.clone(),
    };
    let first_line = output
        .as_deref()
        .and_then(|o| o.lines().map(str::trim).find(|l| !l.is_empty()));
    let summary = match first_line {
        Some(line) => format!("{status}: {entity_name} - {line}"),
        None => format!("{status}: {entity_name}"),
    };
    let dedup = match service_id {
        Some(s) if is_service => format!("{host_id}/{s}"),
        _ => host_id.to_string(),
    };
    let state = if is_recovery {
        AlertState::Recovery
    } else {
        AlertState::Problem
    };

    let mut alert = Alert::new(SourceKind::CentreonBroker, state, summary, dedup);
    alert.entity.host = Some(host_name);
    alert.entity.service = service_name;
    alert.status = Some((*status).to_owned());
    alert.monitor_ref = MonitorRef::CentreonIds {
        host_id,
        service_id: if is_service { service_id } else { None },
    };
    alert.client = Some("Centreon".into());
    alert.client_url = e.text("centreon_url")?;
    alert.source_instance = e.text("poller")?;
    alert.occurred_at = e.timestamp("last_check")?;
    if !is_recovery {
        alert.started_at = e
            .timestamp("last_hard_state_change")?
            .or(e.timestamp("last_state_change")?);
    }

    let mut d = Map::new();
    d.insert("state".into(), Value::String((*status).to_owned()));
    d.insert(
        "state_type".into(),
        Value::String(if hard { "HARD" } else { "SOFT" }.into()),
    );
    if let Some(o) = &output {
        d.insert("output".into(), Value::String(o.clone()));
    }
    if let Some(o) = e.text("long_output")? {
        d.insert("long_output".into(), Value::String(o));
    }
    if let Some(p) = e.text("perfdata")? {
        let parsed = parse_perfdata(&p);
        if !parsed.is_empty() {
            d.insert("perfdata".into(), Value::Object(parsed));
        }
    }
    d.insert("host_id".into(), Value::from(host_id));
    if let (true, Some(s)) = (is_service, service_id) {
        d.insert("service_id".into(), Value::from(s));
    }
    d.insert("acknowledged".into(), Value::Bool(acknowledged));
    d.insert(
        "scheduled_downtime_depth".into(),
        Value::from(downtime_depth),
    );
    for key in [
        "last_state_change",
        "last_hard_state_change",
        "last_check",
        "check_attempt",
        "max_check_attempts",
    ] {
        if let Some(v) = e.uint(key)? {
            d.insert(key.into(), Value::from(v));
        }
    }
    if let Some(p) = &alert.source_instance {
        d.insert("poller".into(), Value::String(p.clone()));
    }
    alert.details = d;
    Ok(Some(alert))
}

/// One event of the batch and where it sits, so errors name the field (`events[3].state`).
struct Event<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl Event<'_> {
    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn missing(&self, key: &str) -> DecodeError {
        DecodeError::new(self.field(key), "missing")
    }

    /// A non-negative integer: a JSON number or a string of digits (Lua may send either).
    fn uint(&self, key: &str) -> Result<Option<u64>, DecodeError> {
        let bad = |got: String| {
            DecodeError::new(
                self.field(key),
                format!("expected a non-negative integer, got {got}"),
            )
        };
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                // Lua 5.3 writes integral floats as `12.0`.
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                    _ => Err(bad(n.to_string())),
                },
            },
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("{s:?}"))),
            Some(other) => Err(bad(type_name(other).into())),
        }
    }

    fn text(&self, key: &str) -> Result<Option<String>, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    /// A boolean as broker writes it: `true`/`false`, or 0/1 (BBDO 3's `acknowledgement_type`
    /// is a number: anything above 0 is acknowledged).
    fn flag(&self, key: &str) -> Result<bool, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|v| v > 0.0)),
            Some(Value::String(s)) => match s.trim() {
                "" | "0" | "false" => Ok(false),
                "1" | "true" => Ok(true),
                other => Err(DecodeError::new(
                    self.field(key),
                    format!("expected a boolean, got {other:?}"),
                )),
            },
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected a boolean, got {}", type_name(other)),
            )),
        }
    }

    fn timestamp(&self, key: &str) -> Result<Option<Timestamp>, DecodeError> {
        match self.uint(key)? {
            None | Some(0) => Ok(None),
            Some(secs) => i64::try_from(secs)
                .ok()
                .and_then(|s| Timestamp::from_second(s).ok())
                .map(Some)
                .ok_or_else(|| {
                    DecodeError::new(
                        self.field(key),
                        format!("{secs} is out of range for a time"),
                    )
                }),
        }
    }
}
