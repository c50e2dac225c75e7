//! Prometheus Alertmanager: the JSON its `webhook_configs` receivers post (payload version 4).
//!
//! Two ways to turn a notification into incidents, chosen per source with
//! [`Options::incident_per`]:
//! - `alert` (default): one [`Alert`] per Alertmanager alert, keyed by the alert's fingerprint,
//!   so an alert that moves between groups, or is sent by both members of an HA pair, stays one
//!   incident;
//! - `group`: one [`Alert`] per notification group, keyed exactly as Alertmanager's own
//!   PagerDuty integration keys it (SHA-256 hex of the group key), so moving a receiver from
//!   `pagerduty_configs` to pagerbridge keeps the open incidents.
//!
//! Grafana's unified alerting is an Alertmanager underneath and posts the same alert shape: its
//! decoder reuses [`WebhookAlert`] from here.

use crate::type_name;
use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, Entity, MonitorRef, SourceKind};
use pagerduty::events::{Link, Severity};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The webhook payload version this decoder reads.
pub const PAYLOAD_VERSION: &str = "4";

/// `[sources.options]` of an Alertmanager source.
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `"alert"` (default): one PagerDuty incident per Alertmanager alert (keyed by its
    /// fingerprint). `"group"`: one incident per Alertmanager notification group (keyed by the
    /// SHA-256 of the group key, as Alertmanager's own PagerDuty integration does).
    pub incident_per: IncidentPer,
}

/// What one PagerDuty incident stands for.
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IncidentPer {
    #[default]
    Alert,
    Group,
}

/// Decodes one webhook notification. A notification with no alerts (`"alerts": []`, which
/// Alertmanager itself never sends) decodes to no alerts: there is nothing to report.
pub fn decode(body: &[u8], opts: &Options) -> Result<Vec<Alert>, DecodeError> {
    let root = parse_object(body)?;
    let top = Fields::root(&root);
    match top.opt_str("version")? {
        Some(PAYLOAD_VERSION) => {}
        Some(other) => {
            return Err(top.error(
                "version",
                format!(
                    "unsupported webhook payload version {other:?}: pagerbridge reads version \
                     \"{PAYLOAD_VERSION}\""
                ),
            ));
        }
        None => {
            return Err(top.error(
                "version",
                format!(
                    "missing: an Alertmanager webhook payload carries \"version\": \
                     \"{PAYLOAD_VERSION}\""
                ),
            ));
        }
    }
    let group = Group::read(&top)?;
    let alerts = top
        .array("alerts")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("alerts[{i}]");
            WebhookAlert::read(&Fields::of(v, &path)?)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    match opts.incident_per {
        IncidentPer::Alert => Ok(alerts.iter().map(|a| per_alert(&group, a)).collect()),
        IncidentPer::Group => Ok(vec![per_group(&top, &group, &alerts)?]),
    }
}

/// The notification-level fields of the payload.
struct Group {
    receiver: Option<String>,
    group_labels: BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    external_url: Option<String>,
    group_key: Option<String>,
    truncated_alerts: u64,
}

impl Group {
    fn read(top: &Fields<'_>) -> Result<Group, DecodeError> {
        Ok(Group {
            receiver: top.opt_str("receiver")?.map(str::to_owned),
            group_labels: top.string_map("groupLabels")?,
            common_labels: top.string_map("commonLabels")?,
            common_annotations: top.string_map("commonAnnotations")?,
            external_url: non_empty(top.opt_str("externalURL")?),
            group_key: top.opt_str("groupKey")?.map(str::to_owned),
            truncated_alerts: top.opt_u64("truncatedAlerts")?.unwrap_or(0),
        })
    }

    /// Where Alertmanager's own PagerDuty integration points `client_url`: its UI, filtered to
    /// the receiver.
    fn client_url(&self) -> Option<String> {
        let base = self.external_url.as_deref()?.trim_end_matches('/');
        Some(match &self.receiver {
            Some(r) if !r.is_empty() => format!("{base}/#/alerts?receiver={}", query_escape(r)),
            _ => base.to_owned(),
        })
    }
}

/// One element of `alerts`, as Alertmanager (and Grafana) send it.
pub(crate) struct WebhookAlert {
    pub firing: bool,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<(String, Timestamp)>,
    /// Absent while the alert fires (Alertmanager sends Go's zero time then).
    pub ends_at: Option<(String, Timestamp)>,
    pub generator_url: Option<String>,
    pub fingerprint: Option<String>,
}

impl WebhookAlert {
    pub fn read(f: &Fields<'_>) -> Result<WebhookAlert, DecodeError> {
        let status = f.req_str("status")?;
        let firing = match status {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(f.error(
                    "status",
                    format!("expected \"firing\" or \"resolved\", got {other:?}"),
                ));
            }
        };
        if !f.has("labels") {
            return Err(f.error("labels", "missing"));
        }
        Ok(WebhookAlert {
            firing,
            status: status.to_owned(),
            labels: f.string_map("labels")?,
            annotations: f.string_map("annotations")?,
            starts_at: f.opt_time("startsAt")?,
            ends_at: f.opt_time("endsAt")?,
            generator_url: non_empty(f.opt_str("generatorURL")?),
            fingerprint: non_empty(f.opt_str("fingerprint")?),
        })
    }

    pub fn state(&self) -> AlertState {
        if self.firing {
            AlertState::Problem
        } else {
            AlertState::Recovery
        }
    }

    /// The source's identity of the alert: its fingerprint, or when the sender left it out
    /// (Alertmanager before 0.22) the same fingerprint computed from the labels.
    pub fn dedup_hint(&self) -> String {
        self.fingerprint
            .clone()
            .unwrap_or_else(|| labels_fingerprint(&self.labels))
    }

    /// `summary`, else `description`, else the alert name and instance.
    pub fn summary(&self) -> String {
        ["summary", "description"]
            .iter()
            .find_map(|k| non_empty(self.annotations.get(*k).map(|s| s.trim())))
            .unwrap_or_else(|| {
                let name = self
                    .labels
                    .get("alertname")
                    .map(String::as_str)
                    .unwrap_or("alert");
                match self.labels.get("instance") {
                    Some(i) => format!("{name} {i}"),
                    None => name.to_owned(),
                }
            })
    }

    pub fn entity(&self) -> Entity {
        Entity {
            host: self.labels.get("instance").map(|i| host_of_instance(i)),
            service: self.labels.get("alertname").cloned(),
            labels: self.labels.clone(),
        }
    }

    /// The `severity` label when it is one of PagerDuty's words.
    pub fn severity(&self) -> Option<Severity> {
        severity_label(&self.labels)
    }

    /// The monitor's word the rules' severity map reads: the `severity` label whatever it
    /// says (`page`, `P1`...), else `firing`/`resolved`.
    pub fn status_word(&self) -> String {
        self.labels
            .get("severity")
            .cloned()
            .unwrap_or_else(|| self.status.clone())
    }

    /// When this notification's news happened: the start of a firing alert, the end of a
    /// resolved one.
    pub fn occurred_at(&self) -> Option<Timestamp> {
        if self.firing {
            self.starts_at.as_ref().map(|t| t.1)
        } else {
            self.ends_at
                .as_ref()
                .or(self.starts_at.as_ref())
                .map(|t| t.1)
        }
    }

    /// Labels, annotations, status and times as structured details.
    pub fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("labels".into(), json!(self.labels));
        d.insert("annotations".into(), json!(self.annotations));
        d.insert("status".into(), json!(self.status));
        if let Some((raw, _)) = &self.starts_at {
            d.insert("startsAt".into(), json!(raw));
        }
        if let Some((raw, _)) = &self.ends_at {
            d.insert("endsAt".into(), json!(raw));
        }
        if let Some(fp) = &self.fingerprint {
            d.insert("fingerprint".into(), json!(fp));
        }
        d
    }

    /// The generator URL (as `source_text`) and a runbook annotation, when there are.
    pub fn links(&self, source_text: &str) -> Vec<Link> {
        let mut links = Vec::new();
        if let Some(u) = &self.generator_url {
            links.push(link(u, source_text));
        }
        if let Some(u) = runbook(&self.annotations) {
            links.push(link(&u, "Runbook"));
        }
        links
    }
}

fn per_alert(group: &Group, a: &WebhookAlert) -> Alert {
    let mut alert = Alert::new(
        SourceKind::Alertmanager,
        a.state(),
        a.summary(),
        a.dedup_hint(),
    );
    alert.source_instance = group.external_url.clone();
    alert.entity = a.entity();
    alert.status = Some(a.status_word());
    alert.severity = a.severity();
    alert.details = a.details();
    alert.links = a.links("Source");
    alert.started_at = a.starts_at.as_ref().map(|t| t.1);
    alert.occurred_at = a.occurred_at();
    alert.monitor_ref = MonitorRef::Matchers {
        matchers: a.labels.clone(),
        fingerprint: Some(a.dedup_hint()),
        group_key: group.group_key.clone(),
    };
    alert.client = Some("Alertmanager".into());
    alert.client_url = group.client_url();
    alert
}

fn per_group(
    top: &Fields<'_>,
    group: &Group,
    alerts: &[WebhookAlert],
) -> Result<Alert, DecodeError> {
    let Some(group_key) = group.group_key.as_deref() else {
        return Err(top.error(
            "groupKey",
            "missing: incident_per = \"group\" keys incidents by the group key",
        ));
    };
    let status = top.req_str("status")?;
    let state = match status {
        "firing" => AlertState::Problem,
        "resolved" => AlertState::Recovery,
        other => {
            return Err(top.error(
                "status",
                format!("expected \"firing\" or \"resolved\", got {other:?}"),
            ));
        }
    };
    let num_firing = alerts.iter().filter(|a| a.firing).count();
    let num_resolved = alerts.len() - num_firing;
    let summary = non_empty(group.common_annotations.get("summary").map(|s| s.trim()))
        .unwrap_or_else(|| default_title(status, num_firing, group));

    let mut alert = Alert::new(
        SourceKind::Alertmanager,
        state,
        summary,
        group_dedup_key(group_key),
    );
    alert.source_instance = group.external_url.clone();
    alert.entity = Entity {
        host: group
            .common_labels
            .get("instance")
            .map(|i| host_of_instance(i)),
        service: group
            .group_labels
            .get("alertname")
            .or_else(|| group.common_labels.get("alertname"))
            .cloned(),
        labels: group.group_labels.clone(),
    };
    alert.status = Some(
        group
            .common_labels
            .get("severity")
            .cloned()
            .unwrap_or_else(|| status.to_owned()),
    );
    alert.severity = severity_label(&group.common_labels);

    let mut details = Map::new();
    details.insert("status".into(), json!(status));
    details.insert("num_firing".into(), json!(num_firing));
    details.insert("num_resolved".into(), json!(num_resolved));
    details.insert("groupLabels".into(), json!(group.group_labels));
    details.insert("commonLabels".into(), json!(group.common_labels));
    details.insert("commonAnnotations".into(), json!(group.common_annotations));
    // Each alert with only what sets it apart from the group: a group of hundreds stays far
    // below PagerDuty's size limit, and nothing said is lost.
    let listed: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut d = Map::new();
            d.insert("status".into(), json!(a.status));
            d.insert(
                "labels".into(),
                json!(difference(&a.labels, &group.common_labels)),
            );
            d.insert(
                "annotations".into(),
                json!(difference(&a.annotations, &group.common_annotations)),
            );
            if let Some((raw, _)) = &a.starts_at {
                d.insert("startsAt".into(), json!(raw));
            }
            if let Some((raw, _)) = &a.ends_at {
                d.insert("endsAt".into(), json!(raw));
            }
            d.insert("fingerprint".into(), json!(a.dedup_hint()));
            Value::Object(d)
        })
        .collect();
    details.insert("alerts".into(), Value::Array(listed));
    if group.truncated_alerts > 0 {
        details.insert("truncatedAlerts".into(), json!(group.truncated_alerts));
    }
    alert.details = details;

    let mut seen = Vec::new();
    for a in alerts {
        for l in a.links("Source") {
            if !seen.iter().any(|s: &Link| s.href == l.href) && seen.len() < MAX_GROUP_LINKS {
                seen.push(l);
            }
        }
    }
    alert.links = seen;
    alert.started_at = alerts
        .iter()
        .filter_map(|a| a.starts_at.as_ref().map(|t| t.1))
        .min();
    alert.occurred_at = if state == AlertState::Recovery {
        alerts
            .iter()
            .filter_map(|a| a.ends_at.as_ref().map(|t| t.1))
            .max()
    } else {
        alerts
            .iter()
            .filter(|a| a.firing)
            .filter_map(|a| a.starts_at.as_ref().map(|t| t.1))
            .max()
    };
    // A silence on the group labels silences the group; a group without group labels
    // (`group_by: []`) falls back to what all its alerts share, never to an empty matcher set
    // that would silence everything.
    let matchers = if group.group_labels.is_empty() {
        group.common_labels.clone()
    } else {
        group.group_labels.clone()
    };
    alert.monitor_ref = MonitorRef::Matchers {
        matchers,
        fingerprint: None,
        group_key: Some(group_key.to_owned()),
    };
    alert.client = Some("Alertmanager".into());
    alert.client_url = group.client_url();
    Ok(alert)
}

/// At most this many distinct source links on a group incident.
const MAX_GROUP_LINKS: usize = 5;

/// The dedup key Alertmanager's own PagerDuty integration sends for a group: the SHA-256 hex of
/// the group key.
pub fn group_dedup_key(group_key: &str) -> String {
    hex::encode(Sha256::digest(group_key.as_bytes()))
}

/// Alertmanager's default notification title (`template "__subject"`):
/// `[FIRING:2] HighCPU web-1:9100 (node critical)`.
fn default_title(status: &str, num_firing: usize, group: &Group) -> String {
    let mut t = format!("[{}", status.to_uppercase());
    if status == "firing" {
        t.push_str(&format!(":{num_firing}"));
    }
    t.push_str("] ");
    t.push_str(&sorted_values(&group.group_labels).join(" "));
    if group.common_labels.len() > group.group_labels.len() {
        let extra = difference(&group.common_labels, &group.group_labels);
        t.push_str(&format!(" ({})", sorted_values(&extra).join(" ")));
    }
    t.trim_end().to_owned()
}

/// Label values in Alertmanager's `SortedPairs` order: `alertname` first, then by name.
fn sorted_values(labels: &BTreeMap<String, String>) -> Vec<&str> {
    let mut out: Vec<&str> = labels
        .get("alertname")
        .map(String::as_str)
        .into_iter()
        .collect();
    out.extend(
        labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(_, v)| v.as_str()),
    );
    out
}

/// Entries of `all` whose key `common` lacks.
fn difference(
    all: &BTreeMap<String, String>,
    common: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| !common.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn severity_label(labels: &BTreeMap<String, String>) -> Option<Severity> {
    labels
        .get("severity")
        .and_then(|s| Severity::parse(&s.trim().to_ascii_lowercase()))
}

pub(crate) fn runbook(annotations: &BTreeMap<String, String>) -> Option<String> {
    ["runbook_url", "runbook"]
        .iter()
        .find_map(|k| non_empty(annotations.get(*k).map(|s| s.trim())))
}

pub(crate) fn link(href: &str, text: &str) -> Link {
    Link {
        href: href.to_owned(),
        text: Some(text.to_owned()),
    }
}

/// The host part of a Prometheus `instance` label: `web-1:9100` -> `web-1`,
/// `[2001:db8::1]:9100` -> `2001:db8::1`. Anything else (a bare name, a blackbox probe's URL)
/// is kept as it is: only a trailing numeric port is taken off.
pub fn host_of_instance(instance: &str) -> String {
    if let Some(rest) = instance.strip_prefix('[')
        && let Some((addr, port)) = rest.split_once("]:")
        && is_port(port)
    {
        return addr.to_owned();
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if is_port(port) && !host.is_empty() && !host.contains([':', '/']) => {
            host.to_owned()
        }
        _ => instance.to_owned(),
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Prometheus' fingerprint of a label set (FNV-1a 64 over sorted names and values, each
/// followed by 0xff), formatted as Alertmanager formats it: what Alertmanager itself would put
/// in `fingerprint`.
pub fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// Go's `url.QueryEscape`, as Alertmanager's templates apply it to the receiver name.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The body as a JSON object, or an error for the payload as a whole.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(DecodeError::new(
            "",
            format!("expected a JSON object, got {}", type_name(&other)),
        )),
        Err(e) => Err(DecodeError::new("", format!("not JSON: {e}"))),
    }
}

/// A JSON object and where it is in the payload, so every error names its field
/// (`alerts[0].labels.job`).
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    pub fn root(obj: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            obj,
            path: String::new(),
        }
    }

    /// `v` (found at `path`), which must be an object.
    pub fn of(v: &'a Value, path: &str) -> Result<Fields<'a>, DecodeError> {
        match v {
            Value::Object(obj) => Ok(Fields {
                obj,
                path: path.to_owned(),
            }),
            other => Err(DecodeError::new(
                path,
                format!("expected an object, got {}", type_name(other)),
            )),
        }
    }

    pub fn object(&self) -> &'a Map<String, Value> {
        self.obj
    }

    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn error(&self, key: &str, message: impl Into<String>) -> DecodeError {
        DecodeError::new(self.field(key), message)
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> DecodeError {
        self.error(key, format!("expected {expected}, got {}", type_name(got)))
    }

    pub fn has(&self, key: &str) -> bool {
        self.obj.get(key).is_some_and(|v| !v.is_null())
    }

    /// A string field; absent and `null` are `None`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    pub fn req_str(&self, key: &str) -> Result<&'a str, DecodeError> {
        self.opt_str(key)?.ok_or_else(|| self.error(key, "missing"))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(key, format!("expected a count, got {n}"))),
            Some(other) => Err(self.wrong_type(key, "a number", other)),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a [Value], DecodeError> {
        match self.obj.get(key) {
            Some(Value::Array(a)) => Ok(a),
            None | Some(Value::Null) => Err(self.error(key, "missing")),
            Some(other) => Err(self.wrong_type(key, "an array", other)),
        }
    }

    /// An object of strings (labels, annotations); absent and `null` are empty.
    pub fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(DecodeError::new(
                        format!("{}.{k}", self.field(key)),
                        format!("expected a string, got {}", type_name(other)),
                    )),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(key, "an object", other)),
        }
    }

    /// An RFC 3339 time; Go's zero time (`0001-01-01T00:00:00Z`, "not set") is `None`.
    pub fn opt_time(&self, key: &str) -> Result<Option<(String, Timestamp)>, DecodeError> {
        let Some(raw) = self.opt_str(key)? else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        let t: Timestamp = raw
            .parse()
            .map_err(|e| self.error(key, format!("not an RFC 3339 time: {e}")))?;
        // 0001-01-01T00:00:00Z and anything before it.
        if t.as_second() <= -62_135_596_800 {
            return Ok(None);
        }
        Ok(Some((raw.to_owned(), t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ports_come_off_only_when_they_are_ports() {
        assert_eq!(host_of_instance("web-1:9100"), "web-1");
        assert_eq!(host_of_instance("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(host_of_instance("[2001:db8::1]:9100"), "2001:db8::1");
        assert_eq!(host_of_instance("web-1"), "web-1");
        assert_eq!(
            host_of_instance("https://example.com:8443/health"),
            "https://example.com:8443/health"
        );
        assert_eq!(
            host_of_instance("https://example.com"),
            "https://example.com"
        );
        assert_eq!(host_of_instance("2001:db8::1"), "2001:db8::1");
        assert_eq!(host_of_instance(":9100"), ":9100");
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(query_escape("pd"), "pd");
        assert_eq!(query_escape("team a/b&c"), "team+a%2Fb%26c");
    }

    #[test]
    fn default_title_matches_alertmanager() {
        let g = Group {
            receiver: None,
            group_labels: [("instance", "web-1:9100"), ("alertname", "HighCPU")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            common_labels: [
                ("instance", "web-1:9100"),
                ("alertname", "HighCPU"),
                ("job", "node"),
                ("severity", "critical"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
            common_annotations: BTreeMap::new(),
            external_url: None,
            group_key: None,
            truncated_alerts: 0,
        };
        assert_eq!(
            default_title("firing", 1, &g),
            "[FIRING:1] HighCPU web-1:9100 (node critical)"
        );
        assert_eq!(
            default_title("resolved", 0, &g),
            "[RESOLVED] HighCPU web-1:9100 (node critical)"
        );
    }
}
