//! Guance (DataFlux): the JSON a monitor posts to a "Webhook custom" notification target, one
//! event per request (`df_title`, `df_message`, `df_status`, `df_event_link`, ...).
//!
//! The mapping follows Guance's own PagerDuty integration script (summary `df_title`, severity
//! from `df_status`, client "Guance <workspace>", client_url `df_event_link`) and completes it:
//! `df_status = ok` resolves instead of triggering again, `nodata` gets a severity PagerDuty
//! accepts (the script passed it through, which PagerDuty rejects), and every event of one
//! problem shares a dedup key (`df_monitor_checker_event_ref`, stable across the problem's
//! events, unlike `df_event_id`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, Entity, MonitorRef, SourceKind};
use pagerduty::events::Severity;
use serde_json::{Map, Value};

use crate::alertmanager::{Fields, non_empty, parse_object};
use crate::type_name;

/// `df_status` of a `nodata` event ("the monitored data stopped arriving"): a lost agent or
/// host is more often an outage than noise, so it pages like an error; a rule can lower it.
pub const NODATA_SEVERITY: Severity = Severity::Error;

pub fn decode(body: &[u8]) -> Result<Vec<Alert>, DecodeError> {
    let root = parse_object(body)?;
    let f = Fields::root(&root);

    let status = f.req_str("df_status")?;
    let (state, severity) = match status.to_ascii_lowercase().as_str() {
        "ok" => (AlertState::Recovery, None),
        "critical" => (AlertState::Problem, Some(Severity::Critical)),
        "error" => (AlertState::Problem, Some(Severity::Error)),
        "warning" => (AlertState::Problem, Some(Severity::Warning)),
        "info" => (AlertState::Problem, Some(Severity::Info)),
        "nodata" => (AlertState::Problem, Some(NODATA_SEVERITY)),
        // A status this decoder does not know yet: still a problem, and the rules' severity
        // map (`[routing.severity.guance]`) can name its severity.
        _ => (AlertState::Problem, None),
    };

    let event_id = non_empty(f.opt_str("df_event_id")?);
    let event_ref = non_empty(f.opt_str("df_monitor_checker_event_ref")?)
        .or_else(|| event_id.clone())
        .ok_or_else(|| {
            f.error(
                "df_monitor_checker_event_ref",
                "missing, and so is df_event_id: nothing identifies the problem",
            )
        })?;
    let checker_name = non_empty(f.opt_str("df_monitor_checker_name")?);
    let summary = non_empty(f.opt_str("df_title")?.map(str::trim))
        .or_else(|| checker_name.clone())
        .ok_or_else(|| f.error("df_title", "missing (and no df_monitor_checker_name)"))?;

    let dimensions = json_text(&root, "df_dimension_tags");
    let labels: BTreeMap<String, String> = match &dimensions {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
        _ => BTreeMap::new(),
    };
    let host = non_empty(f.opt_str("host")?).or_else(|| labels.get("host").cloned());

    let workspace =
        non_empty(f.opt_str("workspace_name")?).or(non_empty(f.opt_str("df_workspace_name")?));
    let workspace_uuid =
        non_empty(f.opt_str("workspace_uuid")?).or(non_empty(f.opt_str("df_workspace_uuid")?));

    let mut alert = Alert::new(SourceKind::Guance, state, summary, event_ref.clone());
    alert.source_instance = workspace_uuid;
    alert.entity = Entity {
        host,
        service: checker_name,
        labels,
    };
    alert.status = Some(status.to_owned());
    alert.severity = severity;
    alert.details = details(&root, dimensions);
    alert.occurred_at = match epoch(&f, "date")? {
        Some(t) => Some(t),
        None => epoch(&f, "timestamp")?,
    };
    alert.started_at = epoch(&f, "df_issue_start_time")?;
    alert.monitor_ref = MonitorRef::GuanceEvent {
        event_ref,
        event_id,
    };
    alert.client = Some(match workspace {
        Some(w) => format!("Guance {w}"),
        None => "Guance".to_owned(),
    });
    alert.client_url = non_empty(f.opt_str("df_event_link")?);
    Ok(vec![alert])
}

/// `df_message` first, then every other field as sent, with the JSON-in-a-string fields
/// (`df_dimension_tags`, `df_label`) parsed.
fn details(root: &Map<String, Value>, dimensions: Option<Value>) -> Map<String, Value> {
    let mut d = Map::new();
    if let Some(m) = root.get("df_message") {
        d.insert("df_message".into(), m.clone());
    }
    for (k, v) in root {
        let v = match k.as_str() {
            "df_message" => continue,
            "df_dimension_tags" => dimensions.clone().unwrap_or_else(|| v.clone()),
            "df_label" => json_text(root, k).unwrap_or_else(|| v.clone()),
            _ => v.clone(),
        };
        d.insert(k.clone(), v);
    }
    d
}

/// A field Guance sends as JSON inside a string (`"{\"host\":\"share\"}"`), parsed; already
/// structured values are taken as they are. `None` when absent or not JSON.
fn json_text(root: &Map<String, Value>, key: &str) -> Option<Value> {
    match root.get(key)? {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(|v| v.is_object() || v.is_array()),
        v @ (Value::Object(_) | Value::Array(_)) => Some(v.clone()),
        _ => None,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Epoch seconds, as a number or a numeric string.
fn epoch(f: &Fields<'_>, key: &str) -> Result<Option<Timestamp>, DecodeError> {
    let seconds = match f.object().get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(other) => {
            return Err(f.error(
                key,
                format!("expected epoch seconds, got {}", type_name(other)),
            ));
        }
    };
    let Some(seconds) = seconds.filter(|s| s.is_finite()) else {
        return Err(f.error(key, "expected epoch seconds"));
    };
    // Whole milliseconds are plenty; the range check is jiff's.
    let millis = (seconds * 1000.0).round();
    if millis.abs() > 1e17 {
        return Err(f.error(key, "epoch seconds out of range"));
    }
    Timestamp::from_millisecond(millis as i64)
        .map(Some)
        .map_err(|e| f.error(key, format!("epoch seconds out of range: {e}")))
}
