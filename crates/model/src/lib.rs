//! The `Alert`: what a monitor said, in one shape whatever the monitor.
//!
//! Every source's decoder (`pagerbridge-ingest`, one file per monitor) turns the monitor's
//! bytes into alerts; the rules (`pagerbridge-rules`) turn alerts into PagerDuty events. An
//! alert keeps what the monitor meant (its own state words, its structured details) and what
//! write-back will need to find the problem in the monitor again ([`MonitorRef`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerduty::events::{EventAction, Image, Link, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kind of monitor an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Alertmanager,
    Icinga2,
    Nagios,
    Naemon,
    CentreonEngine,
    Openitcockpit,
    Zabbix,
    CentreonBroker,
    Zenoss,
    Guance,
    Grafana,
    /// A JSON payload mapped by the configuration.
    Generic,
    /// Events in PagerDuty's own format, through the relay routes.
    Pagerduty,
}

impl SourceKind {
    pub const ALL: [SourceKind; 13] = [
        SourceKind::Alertmanager,
        SourceKind::Icinga2,
        SourceKind::Nagios,
        SourceKind::Naemon,
        SourceKind::CentreonEngine,
        SourceKind::Openitcockpit,
        SourceKind::Zabbix,
        SourceKind::CentreonBroker,
        SourceKind::Zenoss,
        SourceKind::Guance,
        SourceKind::Grafana,
        SourceKind::Generic,
        SourceKind::Pagerduty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Icinga2 => "icinga2",
            SourceKind::Nagios => "nagios",
            SourceKind::Naemon => "naemon",
            SourceKind::CentreonEngine => "centreon_engine",
            SourceKind::Openitcockpit => "openitcockpit",
            SourceKind::Zabbix => "zabbix",
            SourceKind::CentreonBroker => "centreon_broker",
            SourceKind::Zenoss => "zenoss",
            SourceKind::Guance => "guance",
            SourceKind::Grafana => "grafana",
            SourceKind::Generic => "generic",
            SourceKind::Pagerduty => "pagerduty",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The monitors that notify through `pagerbridge send` with Nagios-style macros.
    pub fn is_nagios_family(self) -> bool {
        matches!(
            self,
            SourceKind::Icinga2
                | SourceKind::Nagios
                | SourceKind::Naemon
                | SourceKind::CentreonEngine
                | SourceKind::Openitcockpit
        )
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the notification says happened to the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// A problem exists (Nagios PROBLEM, Alertmanager firing, Zabbix problem...).
    Problem,
    /// The problem is over (RECOVERY, resolved, OK).
    Recovery,
    /// Someone in the monitor acknowledged it.
    Acknowledgement,
    FlappingStart,
    FlappingStop,
    FlappingDisabled,
    DowntimeStart,
    DowntimeEnd,
    DowntimeCancelled,
    /// A custom notification, or anything else informational.
    Custom,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Problem => "problem",
            AlertState::Recovery => "recovery",
            AlertState::Acknowledgement => "acknowledgement",
            AlertState::FlappingStart => "flapping_start",
            AlertState::FlappingStop => "flapping_stop",
            AlertState::FlappingDisabled => "flapping_disabled",
            AlertState::DowntimeStart => "downtime_start",
            AlertState::DowntimeEnd => "downtime_end",
            AlertState::DowntimeCancelled => "downtime_cancelled",
            AlertState::Custom => "custom",
        }
    }

    /// What PagerDuty should do, unless the rules say otherwise: problems (and the start of
    /// flapping, a problem that will not settle) trigger, recoveries resolve, acknowledgements
    /// acknowledge; the rest is information PagerDuty has no event for.
    pub fn default_action(self) -> Option<EventAction> {
        match self {
            AlertState::Problem | AlertState::FlappingStart => Some(EventAction::Trigger),
            AlertState::Recovery => Some(EventAction::Resolve),
            AlertState::Acknowledgement => Some(EventAction::Acknowledge),
            _ => None,
        }
    }
}

/// What the alert is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The service or check (Nagios service description, Zabbix trigger, alert name...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Label sets (Alertmanager, Grafana), tags (Zabbix, Guance dimensions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Entity {
    /// `host/service`, `host` or the sorted labels: a stable name for dedup keys and summaries.
    pub fn name(&self) -> String {
        match (&self.host, &self.service) {
            (Some(h), Some(s)) => format!("{h}/{s}"),
            (Some(h), None) => h.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// What write-back needs to find the problem in the monitor again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MonitorRef {
    /// Icinga 2, Nagios, Naemon, Centreon Engine, openITCOCKPIT: an object by name, and the
    /// problem id that tells one occurrence of a problem from the next.
    Object {
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_problem_id: Option<String>,
    },
    /// Alertmanager: the labels that match the alert (for a silence), and its fingerprint.
    Matchers {
        matchers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
    },
    /// Zabbix: the problem event (and its trigger).
    ZabbixEvent {
        event_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger_id: Option<String>,
    },
    /// Centreon Broker: numeric ids of host and service.
    CentreonIds {
        host_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_id: Option<u64>,
    },
    /// Zenoss: the event id (evid).
    ZenossEvent { evid: String },
    /// Guance: the monitor's event reference.
    GuanceEvent {
        event_ref: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Grafana: the alert's fingerprint and labels.
    GrafanaAlert {
        fingerprint: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        labels: BTreeMap<String, String>,
    },
    /// Nothing to write back to.
    None,
}

impl MonitorRef {
    /// The monitor's id of this occurrence of the problem, where it has one: what tells an
    /// acknowledgement for the problem an incident was opened for from a newer one.
    pub fn problem_id(&self) -> Option<&str> {
        match self {
            MonitorRef::Object { problem_id, .. } => problem_id.as_deref(),
            MonitorRef::Matchers { fingerprint, .. } => fingerprint.as_deref(),
            MonitorRef::ZabbixEvent { event_id, .. } => Some(event_id),
            MonitorRef::ZenossEvent { evid } => Some(evid),
            MonitorRef::GuanceEvent { event_ref, .. } => Some(event_ref),
            MonitorRef::GrafanaAlert { fingerprint, .. } => Some(fingerprint),
            MonitorRef::CentreonIds { .. } | MonitorRef::None => None,
        }
    }
}

/// One monitor's report about one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub source: SourceKind,
    /// Which installation: Alertmanager's external URL, a Zabbix server, a Guance workspace...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_instance: Option<String>,
    pub entity: Entity,
    pub state: AlertState,
    /// The monitor's own word for the state: CRITICAL, WARNING, DOWN, firing, High...; the
    /// per-source severity map of the rules reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A PagerDuty severity the payload already states (Alertmanager's `severity` label...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub summary: String,
    /// Structured: labels, annotations, perfdata as numbers, the monitor's output... Goes to
    /// PagerDuty as `custom_details`.
    #[serde(default)]
    pub details: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// When the problem began, if the monitor says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When this notification happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
    pub monitor_ref: MonitorRef,
    /// The source's own identity of the problem (fingerprint, evid, host + service): the
    /// default dedup key, so repeated notifications of one problem stay one incident.
    pub dedup_hint: String,
    /// A routing key the payload itself carries (Zenoss `pdServiceKey`, a Nagios contact
    /// variable): used unless a rule sets another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Who acknowledged, commented or acted, when the monitor says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// PagerDuty's `client` / `client_url`: the monitor's name and a link back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
}

impl Alert {
    /// A minimal alert; decoders fill in the rest.
    pub fn new(
        source: SourceKind,
        state: AlertState,
        summary: impl Into<String>,
        dedup_hint: impl Into<String>,
    ) -> Alert {
        Alert {
            source,
            source_instance: None,
            entity: Entity::default(),
            state,
            status: None,
            severity: None,
            summary: summary.into(),
            details: Map::new(),
            links: Vec::new(),
            images: Vec::new(),
            started_at: None,
            occurred_at: None,
            monitor_ref: MonitorRef::None,
            dedup_hint: dedup_hint.into(),
            routing_key: None,
            author: None,
            comment: None,
            client: None,
            client_url: None,
        }
    }
}

/// Why bytes could not be decoded, naming the field (`alerts[2].labels`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodeError {
    /// Where in the payload; empty for the payload as a whole.
    pub field: String,
    pub message: String,
}

impl DecodeError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> DecodeError {
        DecodeError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

/// Parses Nagios-style performance data (`'time'=0.002s;1;2;0 size=512B;;;0`) into numbers:
/// `{"time": {"value": 0.002, "unit": "s", "warn": 1, "crit": 2, "min": 0}, ...}`. Items that do
/// not parse are kept as text under `_unparsed`, never dropped.
pub fn parse_perfdata(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut unparsed = Vec::new();
    for item in split_perfdata(text) {
        match parse_perf_item(&item) {
            Some((label, v)) => {
                out.insert(label, v);
            }
            None => unparsed.push(Value::String(item)),
        }
    }
    if !unparsed.is_empty() {
        out.insert("_unparsed".into(), Value::Array(unparsed));
    }
    out
}

/// Splits on spaces outside single quotes (labels may contain spaces when quoted).
fn split_perfdata(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    items.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

fn parse_perf_item(item: &str) -> Option<(String, Value)> {
    let eq = item.rfind('=')?;
    let (label, rest) = (&item[..eq], &item[eq + 1..]);
    let label = label
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or(label);
    let label = label.replace("''", "'");
    if label.is_empty() {
        return None;
    }
    let mut parts = rest.split(';');
    let first = parts.next()?;
    let split_at = first
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(first.len());
    let (num, unit) = first.split_at(split_at);
    let value: f64 = num.parse().ok().filter(|v: &f64| v.is_finite())?;
    let mut obj = Map::new();
    obj.insert("value".into(), num_value(value));
    if !unit.is_empty() {
        obj.insert("unit".into(), Value::String(unit.to_owned()));
    }
    for name in ["warn", "crit", "min", "max"] {
        match parts.next() {
            Some(p) if !p.is_empty() => {
                // Thresholds may be ranges (`10:20`, `@~:5`): numbers when they are numbers.
                let v = p
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(num_value)
                    .unwrap_or_else(|| Value::String(p.to_owned()));
                obj.insert(name.into(), v);
            }
            _ => {}
        }
    }
    Some((label, Value::Object(obj)))
}

fn num_value(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn perfdata_becomes_numbers_with_units_and_thresholds() {
        let p = parse_perfdata(
            "time=0.002s;1;2;0 'free space'=512MB;100:;50:;0;1024 load1=0.75 broken",
        );
        assert_eq!(
            p["time"],
            json!({"value": 0.002, "unit": "s", "warn": 1.0, "crit": 2.0, "min": 0.0})
        );
        assert_eq!(
            p["free space"],
            json!({"value": 512.0, "unit": "MB", "warn": "100:", "crit": "50:", "min": 0.0, "max": 1024.0})
        );
        assert_eq!(p["load1"], json!({"value": 0.75}));
        assert_eq!(p["_unparsed"], json!(["broken"]));
        assert!(parse_perfdata("").is_empty());
        assert_eq!(parse_perfdata("'it''s'=1")["it's"]["value"], 1.0);
    }

    #[test]
    fn states_map_to_pagerduty_actions() {
        assert_eq!(
            AlertState::Problem.default_action(),
            Some(EventAction::Trigger)
        );
        assert_eq!(
            AlertState::Recovery.default_action(),
            Some(EventAction::Resolve)
        );
        assert_eq!(
            AlertState::Acknowledgement.default_action(),
            Some(EventAction::Acknowledge)
        );
        assert_eq!(AlertState::DowntimeStart.default_action(), None);
    }

    #[test]
    fn an_alert_round_trips_through_json() {
        let mut a = Alert::new(SourceKind::Nagios, AlertState::Problem, "disk", "db1/disk");
        a.entity.host = Some("db1".into());
        a.monitor_ref = MonitorRef::Object {
            host: "db1".into(),
            service: Some("disk".into()),
            problem_id: Some("42".into()),
            last_problem_id: None,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["monitor_ref"]["kind"], "object");
        assert_eq!(serde_json::from_value::<Alert>(v).unwrap(), a);
        assert_eq!(a.entity.name(), "db1");
    }

    proptest::proptest! {
        /// Perfdata comes from plugins anyone writes: no input may panic the parser, and
        /// nothing given is lost (every item is parsed or kept as text).
        #[test]
        fn perfdata_never_panics_and_loses_nothing(s in "[ -~é€']{0,80}") {
            let p = parse_perfdata(&s);
            let items = split_perfdata(&s).len();
            let unparsed = p.get("_unparsed").and_then(|v| v.as_array()).map_or(0, Vec::len);
            proptest::prop_assert!(p.len() - usize::from(unparsed > 0) + unparsed <= items);
        }
    }
}
