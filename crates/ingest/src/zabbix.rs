//! Zabbix, through the webhook media type the project ships
//! (`contrib/zabbix/pagerbridge_media_type.yaml`). Its JavaScript posts one JSON object per
//! notification, built from Zabbix macros:
//!
//! ```json
//! {"pagerbridge_media_type": 1,
//!  "event": {"id": "5021", "value": "1", "source": "0", "name": "High CPU on db1",
//!            "severity": "High", "nseverity": "4", "date": "2024.05.01", "time": "12:00:00",
//!            "timestamp": "1714564800", "opdata": "CPU: 97 %", "acknowledged": "No",
//!            "tags": [{"tag": "service", "value": "db"}], "url": "https://zabbix/tr_events.php?...",
//!            "recovery": {"id": "", "date": "", "time": ""},
//!            "update": {"status": "0", "action": "", "message": "", "user": ""}},
//!  "trigger": {"id": "17500", "name": "High CPU on {HOST.NAME}", "description": ""},
//!  "host": {"name": "db1", "host": "db1.example.com", "ip": "10.0.0.5"},
//!  "items": [{"name": "CPU utilization", "key": "system.cpu.util", "value": "97 %"}],
//!  "routing_key": "", "zabbix_url": "https://zabbix", "sent_at": 1714564801}
//! ```
//!
//! `event.id` is always the *problem* event ({EVENT.ID} stays the original problem's id in
//! recovery and update notifications), so it is the dedup hint. `event.value` 1 is a problem, 0
//! a recovery; an update (`event.update.status` 1) whose action says `acknowledged` is an
//! acknowledgement, any other update (a comment, a severity change, an unacknowledgement) is
//! information (`AlertState::Custom`). `NSEVERITY` maps to PagerDuty as Zabbix's own PagerDuty
//! media type maps it: 5 disaster critical, 4 high error, 3 average and 2 warning warning,
//! 1 information and 0 not classified info.

use crate::type_name;
use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, MonitorRef, SourceKind};
use pagerduty::events::{Link, Severity};
use serde_json::{Map, Value};

/// Zabbix's severity names by NSEVERITY, with the PagerDuty severity each becomes.
pub const SEVERITIES: [(&str, Severity); 6] = [
    ("Not classified", Severity::Info),
    ("Information", Severity::Info),
    ("Warning", Severity::Warning),
    ("Average", Severity::Warning),
    ("High", Severity::Error),
    ("Disaster", Severity::Critical),
];

/// Decodes the media type's body: one object, or an array of them.
pub fn decode(body: &[u8]) -> Result<Vec<Alert>, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("not valid JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(vec![decode_one(&obj, "")?]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("[{i}]");
                match item {
                    Value::Object(obj) => decode_one(obj, &path),
                    other => Err(DecodeError::new(
                        path,
                        format!("expected an object, got {}", type_name(other)),
                    )),
                }
            })
            .collect(),
        other => Err(DecodeError::new(
            "",
            format!(
                "expected the media type's JSON object, got {}",
                type_name(&other)
            ),
        )),
    }
}

fn decode_one(obj: &Map<String, Value>, base: &str) -> Result<Alert, DecodeError> {
    let root = Obj {
        map: obj,
        path: base.to_owned(),
    };
    let event = root.object("event")?.ok_or_else(|| root.missing("event"))?;
    let trigger = root.object("trigger")?;
    let host = root.object("host")?;
    let update = event.object("update")?;
    let recovery = event.object("recovery")?;

    let event_id = event.text("id")?.ok_or_else(|| event.missing("id"))?;
    let value = event.text("value")?.ok_or_else(|| event.missing("value"))?;
    let is_problem = match value.as_str() {
        "1" => true,
        "0" => false,
        other => {
            return Err(DecodeError::new(
                event.field("value"),
                format!("expected 1 (problem) or 0 (recovery), got {other:?}"),
            ));
        }
    };
    let update_status = match &update {
        Some(u) => u.text("status")?,
        None => None,
    };
    let is_update = match update_status.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(DecodeError::new(
                update
                    .as_ref()
                    .map_or_else(String::new, |u| u.field("status")),
                format!("expected 0 or 1 ({{EVENT.UPDATE.STATUS}}), got {other:?}"),
            ));
        }
    };
    let update_action = match &update {
        Some(u) => u.text("action")?,
        None => None,
    };
    let acknowledged = event.text("acknowledged")?;
    let state = if is_update {
        match update_action.as_deref() {
            Some(action) if says_acknowledged(action) => AlertState::Acknowledgement,
            Some(_) => AlertState::Custom,
            // No action text: trust the acknowledgement status, as Zabbix's own PagerDuty
            // media type does.
            None if acknowledged.as_deref() == Some("Yes") => AlertState::Acknowledgement,
            None => AlertState::Custom,
        }
    } else if is_problem {
        AlertState::Problem
    } else {
        AlertState::Recovery
    };

    let nseverity = match event.text("nseverity")? {
        Some(n) => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| *n < SEVERITIES.len())
                .ok_or_else(|| {
                    DecodeError::new(
                        event.field("nseverity"),
                        format!("expected 0..=5 ({{EVENT.NSEVERITY}}), got {n:?}"),
                    )
                })?,
        ),
        None => None,
    };
    let severity_name = event
        .text("severity")?
        .or_else(|| nseverity.map(|n| SEVERITIES[n].0.to_owned()));

    let trigger_id = match &trigger {
        Some(t) => t.text("id")?,
        None => None,
    };
    let trigger_name = match &trigger {
        Some(t) => t.text("name")?,
        None => None,
    };
    let event_name = event.text("name")?;
    let host_name = match &host {
        Some(h) => h.text("name")?.or(h.text("host")?),
        None => None,
    };
    let problem_name = event_name
        .clone()
        .or_else(|| trigger_name.clone())
        .unwrap_or_else(|| format!("Zabbix event {event_id}"));
    let summary = match &host_name {
        Some(h) => format!("{h}: {problem_name}"),
        None => problem_name.clone(),
    };

    let mut alert = Alert::new(SourceKind::Zabbix, state, summary, event_id.clone());
    alert.entity.host = host_name.clone();
    alert.entity.service = trigger_name.clone().or(event_name.clone());
    alert.status = severity_name.clone();
    alert.severity = nseverity.map(|n| SEVERITIES[n].1);
    alert.monitor_ref = MonitorRef::ZabbixEvent {
        event_id: event_id.clone(),
        trigger_id: trigger_id.clone(),
    };
    alert.routing_key = root.text("routing_key")?;
    alert.source_instance = root.text("zabbix_url")?;
    alert.client = Some("Zabbix".into());
    let event_url = event.text("url")?;
    alert.client_url = event_url.clone().or_else(|| alert.source_instance.clone());
    if let Some(url) = &event_url {
        alert.links.push(Link {
            href: url.clone(),
            text: Some("Zabbix event".into()),
        });
    }
    if let (true, Some(u)) = (is_update, &update) {
        alert.author = u.text("user")?;
        alert.comment = u.text("message")?;
    }
    alert.started_at = event.timestamp("timestamp")?;
    alert.occurred_at = root.timestamp("sent_at")?;

    // Tags: labels for the rules (several values of one tag joined by commas), and the list as
    // Zabbix gave it in the details.
    let tags = event.tags("tags")?;
    for (tag, value) in &tags {
        alert
            .entity
            .labels
            .entry(tag.clone())
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }

    let mut d = Map::new();
    let mut ev = Map::new();
    put(&mut ev, "id", Some(event_id.clone()));
    put(&mut ev, "value", Some(value));
    put(&mut ev, "name", event_name);
    put(&mut ev, "severity", severity_name);
    if let Some(n) = nseverity {
        ev.insert("nseverity".into(), Value::from(n));
    }
    for key in [
        "source",
        "date",
        "time",
        "opdata",
        "acknowledged",
        "status",
        "age",
    ] {
        put(&mut ev, key, event.text(key)?);
    }
    if let Some(r) = &recovery {
        let mut rec = Map::new();
        for key in ["id", "date", "time"] {
            put(&mut rec, key, r.text(key)?);
        }
        if !rec.is_empty() {
            ev.insert("recovery".into(), Value::Object(rec));
        }
    }
    if let (true, Some(u)) = (is_update, &update) {
        let mut up = Map::new();
        for key in ["action", "message", "user", "date", "time"] {
            put(&mut up, key, u.text(key)?);
        }
        ev.insert("update".into(), Value::Object(up));
    }
    d.insert("event".into(), Value::Object(ev));
    if let Some(t) = &trigger {
        let mut tr = Map::new();
        for key in ["id", "name", "description", "url", "status"] {
            put(&mut tr, key, t.text(key)?);
        }
        if !tr.is_empty() {
            d.insert("trigger".into(), Value::Object(tr));
        }
    }
    if let Some(h) = &host {
        let mut ho = Map::new();
        for key in ["name", "host", "ip", "dns"] {
            put(&mut ho, key, h.text(key)?);
        }
        if !ho.is_empty() {
            d.insert("host".into(), Value::Object(ho));
        }
    }
    if !tags.is_empty() {
        d.insert(
            "tags".into(),
            Value::Array(
                tags.into_iter()
                    .map(|(tag, value)| {
                        let mut m = Map::new();
                        m.insert("tag".into(), Value::String(tag));
                        m.insert("value".into(), Value::String(value));
                        Value::Object(m)
                    })
                    .collect(),
            ),
        );
    }
    let items = root.items("items")?;
    if !items.is_empty() {
        d.insert("items".into(), Value::Array(items));
    }
    alert.details = d;
    Ok(alert)
}

/// Zabbix writes the update's actions as text (`acknowledged`, `commented`, `changed severity
/// from Warning to High`, `unacknowledged`, `closed`, joined by commas when one update does
/// several): an acknowledgement is the word `acknowledged` not preceded by `un`.
fn says_acknowledged(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|word| word == "acknowledged")
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<String>) {
    if let Some(v) = v {
        m.insert(key.to_owned(), Value::String(v));
    }
}

/// A JSON object and where it sits in the body, so errors name the field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
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

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Obj {
                map: m,
                path: self.field(key),
            })),
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected an object, got {}", type_name(other)),
            )),
        }
    }

    /// A text value: strings, or numbers written as text. Empty strings and Zabbix macros it
    /// could not resolve (`{EVENT.RECOVERY.ID}` in a problem notification) count as absent.
    fn text(&self, key: &str) -> Result<Option<String>, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() || is_unresolved_macro(t) {
                    Ok(None)
                } else {
                    Ok(Some(t.to_owned()))
                }
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    /// Unix seconds as a number or a string of digits.
    fn timestamp(&self, key: &str) -> Result<Option<Timestamp>, DecodeError> {
        let Some(text) = self.text(key)? else {
            return Ok(None);
        };
        let secs: i64 = text.parse().map_err(|_| {
            DecodeError::new(
                self.field(key),
                format!("expected Unix seconds, got {text:?}"),
            )
        })?;
        if secs <= 0 {
            return Ok(None);
        }
        Timestamp::from_second(secs).map(Some).map_err(|_| {
            DecodeError::new(
                self.field(key),
                format!("{secs} is out of range for a time"),
            )
        })
    }

    /// Event tags: `[{"tag": "k", "value": "v"}]` ({EVENT.TAGSJSON}) or the text form
    /// `k:v, k2:v2` ({EVENT.TAGS}).
    fn tags(&self, key: &str) -> Result<Vec<(String, String)>, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{}[{i}]", self.field(key));
                    let Value::Object(m) = item else {
                        return Err(DecodeError::new(
                            path,
                            format!("expected an object {{tag, value}}, got {}", type_name(item)),
                        ));
                    };
                    let o = Obj { map: m, path };
                    let Some(tag) = o.text("tag")? else {
                        return Err(o.missing("tag"));
                    };
                    out.push((tag, o.text("value")?.unwrap_or_default()));
                }
                Ok(out)
            }
            Some(Value::String(s)) if is_unresolved_macro(s.trim()) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| match t.split_once(':') {
                    Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                    None => (t.to_owned(), String::new()),
                })
                .collect()),
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected an array of tags, got {}", type_name(other)),
            )),
        }
    }

    /// Item values, kept as given (objects of text), without the empty ones.
    fn items(&self, key: &str) -> Result<Vec<Value>, DecodeError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{}[{i}]", self.field(key));
                    let Value::Object(m) = item else {
                        return Err(DecodeError::new(
                            path,
                            format!("expected an object, got {}", type_name(item)),
                        ));
                    };
                    let o = Obj { map: m, path };
                    let mut kept = Map::new();
                    for k in m.keys() {
                        put(&mut kept, k, o.text(k)?);
                    }
                    if !kept.is_empty() {
                        out.push(Value::Object(kept));
                    }
                }
                Ok(out)
            }
            Some(other) => Err(DecodeError::new(
                self.field(key),
                format!("expected an array of items, got {}", type_name(other)),
            )),
        }
    }
}

/// `{EVENT.RECOVERY.ID}`, `{$ZABBIX.URL}`, `{ITEM.VALUE2}`: what Zabbix leaves in place of a
/// macro it cannot resolve in this notification.
fn is_unresolved_macro(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('{')
        && s.ends_with('}')
        && s[1..s.len() - 1].bytes().all(|b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'$' | b'#')
        })
}
