//! Zenoss events: the fields a Zenoss notification or event command exposes (`${evt/evid}`,
//! `${evt/device}`, ...), either as a JSON object (or array of them) posted to a route, or as
//! `--field name=value` pairs given to `pagerbridge send --source zenoss` ([`decode_fields`]).
//!
//! Mapping: severity 0 (Clear), or an event state of Closed, Cleared or Aged, is a recovery; an
//! Acknowledged event an acknowledgement; Dropped is information; anything else a problem.
//! `evid` is the dedup hint and the write-back reference; `device` the host and `component` the
//! service. A routing key set by an event transform as `evt.pdServiceKey` (the convention of the
//! community PagerDuty ZenPack) becomes the alert's routing key.

use crate::type_name;
use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, MonitorRef, SourceKind};
use pagerduty::events::Severity;
use serde_json::{Map, Value};

/// Zenoss severities by number, with the PagerDuty severity each becomes (Clear has none).
pub const SEVERITIES: [(&str, Option<Severity>); 6] = [
    ("Clear", None),
    ("Debug", Some(Severity::Info)),
    ("Info", Some(Severity::Info)),
    ("Warning", Some(Severity::Warning)),
    ("Error", Some(Severity::Error)),
    ("Critical", Some(Severity::Critical)),
];

/// Zenoss event states by number, with what each means here.
pub const EVENT_STATES: [(&str, AlertState); 7] = [
    ("New", AlertState::Problem),
    ("Acknowledged", AlertState::Acknowledgement),
    // Suppressed by Zenoss itself (a component of a device that is down): still a problem;
    // the rules can drop it by `details.eventState`.
    ("Suppressed", AlertState::Problem),
    ("Closed", AlertState::Recovery),
    ("Cleared", AlertState::Recovery),
    ("Dropped", AlertState::Custom),
    ("Aged", AlertState::Recovery),
];

/// Field names read by this decoder (matched without regard to case); every other field given
/// is kept in the details as it came.
const READ: [&str; 8] = [
    "evid",
    "device",
    "component",
    "summary",
    "severity",
    "eventState",
    "pdServiceKey",
    "ownerid",
];

/// Decodes a Zenoss event as JSON: one object, or an array of them.
pub fn decode(body: &[u8]) -> Result<Vec<Alert>, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("not valid JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(vec![decode_event(&obj, "")?]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(obj) => decode_event(obj, &format!("[{i}]")),
                other => Err(DecodeError::new(
                    format!("[{i}]"),
                    format!("expected an event object, got {}", type_name(other)),
                )),
            })
            .collect(),
        other => Err(DecodeError::new(
            "",
            format!(
                "expected a Zenoss event object or an array of them, got {}",
                type_name(&other)
            ),
        )),
    }
}

/// Decodes the command-line form: `evid=...`, `device=...` pairs as a Zenoss event command
/// passes them (`--field evid=${evt/evid}`).
pub fn decode_fields(fields: &BTreeMap<String, String>) -> Result<Alert, DecodeError> {
    let obj: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.trim().to_owned(), Value::String(v.clone())))
        .collect();
    decode_event(&obj, "")
}

fn decode_event(obj: &Map<String, Value>, base: &str) -> Result<Alert, DecodeError> {
    let e = Fields {
        map: obj,
        path: base,
    };
    let evid = e.text("evid")?.ok_or_else(|| e.missing("evid"))?;
    let device = e.text("device")?;
    let component = e.text("component")?;

    let severity_num = match e.get("severity") {
        Some((key, v)) => Some(parse_enum(v, &SEVERITIES.map(|(n, _)| n)).ok_or_else(|| {
            DecodeError::new(
                e.field(key),
                format!(
                    "expected 0..=5 or a severity name (Clear, Debug, Info, Warning, Error, Critical), got {}",
                    show(v)
                ),
            )
        })?),
        None => None,
    };
    let state_num = match e.get("eventState") {
        Some((key, v)) => Some(parse_enum(v, &EVENT_STATES.map(|(n, _)| n)).ok_or_else(|| {
            DecodeError::new(
                e.field(key),
                format!(
                    "expected 0..=6 or a state name (New, Acknowledged, Suppressed, Closed, Cleared, Dropped, Aged), got {}",
                    show(v)
                ),
            )
        })?),
        None => None,
    };

    let state = if severity_num == Some(0) {
        AlertState::Recovery
    } else {
        state_num.map_or(AlertState::Problem, |n| EVENT_STATES[n].1)
    };
    let severity_name = severity_num.map(|n| SEVERITIES[n].0);
    let event_summary = e.text("summary")?.or(e.text("message")?);

    let entity_name = match (&device, &component) {
        (Some(d), Some(c)) => format!("{d}/{c}"),
        (Some(d), None) => d.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => format!("event {evid}"),
    };
    let head = severity_name.unwrap_or("Event");
    let summary = match &event_summary {
        Some(s) => format!("{head}: {entity_name} - {}", first_line(s)),
        None => format!("{head}: {entity_name}"),
    };

    let mut alert = Alert::new(SourceKind::Zenoss, state, summary, evid.clone());
    alert.entity.host = device;
    alert.entity.service = component;
    alert.status = severity_name.map(str::to_owned);
    alert.severity = severity_num.and_then(|n| SEVERITIES[n].1);
    alert.monitor_ref = MonitorRef::ZenossEvent { evid };
    alert.routing_key = e.text("pdServiceKey")?;
    alert.client = Some("Zenoss".into());
    if matches!(state, AlertState::Acknowledgement) {
        alert.author = e.text("ownerid")?;
    }
    alert.started_at = e.time("firstTime")?;
    alert.occurred_at = e.time("lastTime")?;

    let mut d = Map::new();
    if let Some(n) = severity_num {
        d.insert("severity".into(), Value::String(SEVERITIES[n].0.into()));
    }
    if let Some(n) = state_num {
        d.insert("eventState".into(), Value::String(EVENT_STATES[n].0.into()));
    }
    if let Some(s) = &event_summary {
        d.insert("summary".into(), Value::String(s.clone()));
    }
    if let Some(o) = e.text("ownerid")? {
        d.insert("ownerid".into(), Value::String(o));
    }
    for (key, v) in obj {
        if READ.iter().any(|r| r.eq_ignore_ascii_case(key)) {
            continue;
        }
        let kept = match v {
            Value::Null => continue,
            Value::String(s) if s.trim().is_empty() => continue,
            // The JSON API's `{"text": "db1", "uid": "/zport/..."}` objects: keep them whole.
            other => other.clone(),
        };
        d.insert(key.clone(), kept);
    }
    alert.details = d;
    Ok(alert)
}

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// A number in range, or one of `names` (any case).
fn parse_enum(v: &Value, names: &[&str]) -> Option<usize> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })?,
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(n) => n,
                Err(_) => return names.iter().position(|name| name.eq_ignore_ascii_case(s)),
            }
        }
        _ => return None,
    };
    usize::try_from(n).ok().filter(|n| *n < names.len())
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The event's fields, looked up without regard to case (`eventstate` from a hand-written
/// command line is `eventState`).
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn missing(&self, key: &str) -> DecodeError {
        DecodeError::new(self.field(key), "missing")
    }

    /// The value of `name` and the key it was found under; null and empty strings are absent.
    fn get(&self, name: &str) -> Option<(&'a str, &'a Value)> {
        let found = self
            .map
            .get_key_value(name)
            .or_else(|| self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))?;
        match found.1 {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            _ => Some((found.0.as_str(), found.1)),
        }
    }

    /// Text: a string, a number written as text, or the JSON API's `{"text": ...}` object.
    fn text(&self, name: &str) -> Result<Option<String>, DecodeError> {
        let Some((key, v)) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::String(s) => Ok(Some(s.trim().to_owned())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Object(o) => match o.get("text") {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                Some(Value::String(_)) | Some(Value::Null) => Ok(None),
                _ => Err(DecodeError::new(
                    self.field(key),
                    "expected a string or an object with a \"text\" string",
                )),
            },
            other => Err(DecodeError::new(
                self.field(key),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    /// Zenoss writes times as epoch seconds (a float, from the event itself) or as
    /// `2013/04/18 12:00:00.000` local time (the JSON API); only the first says which instant it
    /// is, the text form stays in the details.
    fn time(&self, name: &str) -> Result<Option<Timestamp>, DecodeError> {
        let Some((_, v)) = self.get(name) else {
            return Ok(None);
        };
        let secs = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        Ok(secs
            // ZEP counts in milliseconds: no event is from after the year 5000.
            .map(|s| if s > 1e11 { s / 1000.0 } else { s })
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 253_402_300_800.0)
            .and_then(|s| {
                let whole = s.trunc() as i64;
                let nanos = ((s - s.trunc()) * 1e9).round() as i32;
                Timestamp::new(whole, nanos.clamp(0, 999_999_999)).ok()
            }))
    }
}
