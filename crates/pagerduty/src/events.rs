//! Events API v2 (`/v2/enqueue`), change events (`/v2/change/enqueue`) and the legacy
//! Events API v1 (`/generic/2010-04-15/create_event.json`): request and response types, and
//! PagerDuty's own validation rules as pure functions.
//!
//! The validation lives here, not in the emulator, because two parts of pagerbridge must answer
//! exactly as PagerDuty does: the emulator, and the daemon's drop-in relay routes that accept
//! events from tools which already speak PagerDuty.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// PagerDuty rejects bodies above 512 KB.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
/// `payload.summary` (v2) and `description` (v1) limit, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// `dedup_key` (v2) and `incident_key` (v1) limit, in characters.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// Integration keys are 32 alphanumeric characters.
pub const ROUTING_KEY_LEN: usize = 32;

/// A routing key as logs and metrics may show it: its first and last four characters
/// (`a1b2...8f90`); a key too short for that, its last two. Whoever holds an integration key
/// can open incidents on its service, so the whole key is never shown.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    if n >= 12 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[n - 4..].iter().collect();
        format!("{head}...{tail}")
    } else {
        let tail: String = chars[n.saturating_sub(2)..].iter().collect();
        format!("...{tail}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Trigger => "trigger",
            EventAction::Acknowledge => "acknowledge",
            EventAction::Resolve => "resolve",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "trigger" => Some(EventAction::Trigger),
            "acknowledge" => Some(EventAction::Acknowledge),
            "resolve" => Some(EventAction::Resolve),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub src: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

/// The PD-CEF payload of a trigger event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    /// Kept as the sender wrote it: PagerDuty accepts several ISO 8601 spellings
    /// (`2015-07-17T08:42:58.315+0000`) that a strict RFC 3339 type would reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_details: Option<Value>,
}

/// An Events API v2 event (`POST /v2/enqueue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub routing_key: String,
    pub event_action: EventAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

impl Event {
    /// A trigger with the required payload fields; everything else can be set on the result.
    pub fn trigger(
        routing_key: impl Into<String>,
        summary: impl Into<String>,
        source: impl Into<String>,
        severity: Severity,
    ) -> Self {
        Event {
            routing_key: routing_key.into(),
            event_action: EventAction::Trigger,
            dedup_key: None,
            payload: Some(Payload {
                summary: summary.into(),
                source: source.into(),
                severity,
                timestamp: None,
                component: None,
                group: None,
                class: None,
                custom_details: None,
            }),
            client: None,
            client_url: None,
            links: Vec::new(),
            images: Vec::new(),
        }
    }

    /// An acknowledge or resolve of an existing alert.
    pub fn update(
        routing_key: impl Into<String>,
        action: EventAction,
        dedup_key: impl Into<String>,
    ) -> Self {
        Event {
            routing_key: routing_key.into(),
            event_action: action,
            dedup_key: Some(dedup_key.into()),
            payload: None,
            client: None,
            client_url: None,
            links: Vec::new(),
            images: Vec::new(),
        }
    }

    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePayload {
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_details: Option<Value>,
}

/// A change event (`POST /v2/change/enqueue`): informational, never opens an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub routing_key: String,
    pub payload: ChangePayload,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

/// A context of a v1 event: a link or an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum V1Context {
    Link {
        href: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    Image {
        src: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        href: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alt: Option<String>,
    },
}

/// A legacy Events API v1 event (`POST /generic/2010-04-15/create_event.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1Event {
    pub service_key: String,
    pub event_type: EventAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<V1Context>,
}

/// The body PagerDuty answers to an event, on success and on 400.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventResponse {
    pub status: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl EventResponse {
    pub fn processed(dedup_key: impl Into<String>) -> Self {
        EventResponse {
            status: "success".into(),
            message: "Event processed".into(),
            dedup_key: Some(dedup_key.into()),
            errors: Vec::new(),
        }
    }

    pub fn change_processed() -> Self {
        EventResponse {
            status: "success".into(),
            message: "Change event processed".into(),
            dedup_key: None,
            errors: Vec::new(),
        }
    }

    pub fn invalid(errors: Vec<String>) -> Self {
        EventResponse {
            status: "invalid event".into(),
            message: "Event object is invalid".into(),
            dedup_key: None,
            errors,
        }
    }

    /// What PagerDuty answers to a body that is not a JSON object (observed wording).
    pub fn unrecognized(error: impl Into<String>) -> Self {
        EventResponse {
            status: "Unrecognized object".into(),
            message: "Event object format is unrecognized".into(),
            dedup_key: None,
            errors: vec![error.into()],
        }
    }
}

/// The body the v1 API answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1Response {
    pub status: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl V1Response {
    pub fn processed(incident_key: impl Into<String>) -> Self {
        V1Response {
            status: "success".into(),
            message: "Event processed".into(),
            incident_key: Some(incident_key.into()),
            errors: Vec::new(),
        }
    }

    pub fn invalid(errors: Vec<String>) -> Self {
        V1Response {
            status: "invalid event".into(),
            message: "Event object is invalid".into(),
            incident_key: None,
            errors,
        }
    }
}

/// Why an event body was refused, in PagerDuty's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body is not a JSON object at all (PagerDuty: "Event object format is unrecognized").
    #[error("event object format is unrecognized: {0}")]
    Unrecognized(String),
    /// A JSON object that breaks one or more field rules; one message per problem.
    #[error("event object is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Rejection {
    pub fn messages(&self) -> Vec<String> {
        match self {
            Rejection::Unrecognized(m) => vec![m.clone()],
            Rejection::Invalid(v) => v.clone(),
        }
    }

    /// The body PagerDuty's v2 endpoints answer with this rejection.
    pub fn to_response(&self) -> EventResponse {
        match self {
            Rejection::Unrecognized(m) => EventResponse::unrecognized(m.clone()),
            Rejection::Invalid(v) => EventResponse::invalid(v.clone()),
        }
    }
}

/// Collects every problem of a body, as PagerDuty does, instead of stopping at the first.
struct Checker<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(obj: &'a Map<String, Value>) -> Self {
        Checker {
            obj,
            errors: Vec::new(),
        }
    }

    fn blank(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// A string field; `name` is the dotted path PagerDuty uses in its messages.
    fn string(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        name: &str,
        required: bool,
    ) -> Option<String> {
        let v = obj.get(key);
        if Self::blank(v) {
            if required {
                self.errors.push(format!("'{name}' is missing or blank"));
            }
            return None;
        }
        match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.errors.push(format!(
                    "'{name}' must be a string, not {}",
                    json_kind(other)
                ));
                None
            }
            None => None,
        }
    }

    fn max_chars(&mut self, value: &Option<String>, name: &str, max: usize) {
        if let Some(s) = value {
            let n = s.chars().count();
            if n > max {
                self.errors.push(format!(
                    "Length of '{name}' is incorrect (should be at most {max} characters, is {n})"
                ));
            }
        }
    }

    fn routing_key(&mut self, key: &str) -> Option<String> {
        let rk = self.string(self.obj, key, key, true)?;
        if rk.chars().count() != ROUTING_KEY_LEN {
            self.errors.push(format!(
                "Length of '{key}' is incorrect (should be {ROUTING_KEY_LEN} characters)"
            ));
        }
        if !rk.chars().all(|c| c.is_ascii_alphanumeric()) {
            self.errors.push(format!(
                "'{key}' cannot contain non-alphanumeric characters."
            ));
        }
        Some(rk)
    }

    fn action(&mut self, key: &str) -> Option<EventAction> {
        let s = self.string(self.obj, key, key, true)?;
        let parsed = EventAction::parse(&s);
        if parsed.is_none() {
            self.errors.push(format!(
                "'{key}' is invalid (must be one of: trigger, acknowledge, resolve; got '{s}')"
            ));
        }
        parsed
    }

    fn links(&mut self, key: &str) -> Vec<Link> {
        self.array_of(key, |c, i, item| {
            let href = c.string(item, "href", &format!("{key}[{i}].href"), true)?;
            let text = c.string(item, "text", &format!("{key}[{i}].text"), false);
            Some(Link { href, text })
        })
    }

    fn images(&mut self, key: &str) -> Vec<Image> {
        self.array_of(key, |c, i, item| {
            let src = c.string(item, "src", &format!("{key}[{i}].src"), true)?;
            let href = c.string(item, "href", &format!("{key}[{i}].href"), false);
            let alt = c.string(item, "alt", &format!("{key}[{i}].alt"), false);
            Some(Image { src, href, alt })
        })
    }

    fn array_of<T>(
        &mut self,
        key: &str,
        mut each: impl FnMut(&mut Self, usize, &Map<String, Value>) -> Option<T>,
    ) -> Vec<T> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Object(o) => out.extend(each(self, i, o)),
                        other => self.errors.push(format!(
                            "'{key}[{i}]' must be an object, not {}",
                            json_kind(other)
                        )),
                    }
                }
                out
            }
            Some(other) => {
                self.errors.push(format!(
                    "'{key}' must be an array, not {}",
                    json_kind(other)
                ));
                Vec::new()
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Rejection> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(Rejection::Invalid(if self.errors.is_empty() {
                vec!["Event object is invalid".into()]
            } else {
                self.errors
            })),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses bytes as a JSON object, answering like PagerDuty when they are not one.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(Rejection::Invalid(vec![format!(
            "Event object is too large ({} bytes; the limit is {MAX_EVENT_BYTES} bytes)",
            body.len()
        )]));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(Rejection::Unrecognized(format!(
            "Event object must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(_) => Err(Rejection::Unrecognized("JSON parse error".into())),
    }
}

/// Checks an event request's `Content-Type`: a JSON media type (`application/json`, with or
/// without parameters, or any `+json` type), or none at all, which every PagerDuty client and
/// most shell scripts send. Anything else is refused before the body is read, naming the type,
/// since a form or XML body is a sender's mistake that no JSON parse error would explain.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Rejection> {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(Rejection::Invalid(vec![format!(
            "Content-Type must be application/json, not '{ct}'"
        )]))
    }
}

/// Bodies past this are not even read to the end: the connection is closed on the sender.
pub const MAX_DRAINED_BYTES: usize = 8 * 1024 * 1024;

/// Reads an event request's body as far as PagerDuty's limit. A body over the limit is read on
/// (and thrown away) up to [`MAX_DRAINED_BYTES`] before the caller answers it: answering while
/// the sender is still writing makes its HTTP client see a reset connection instead of the
/// `400` that explains what was wrong.
pub async fn read_body<B>(body: B) -> Result<bytes::Bytes, Rejection>
where
    B: http_body_util::BodyExt<Data = bytes::Bytes> + Unpin,
{
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Rejection::Unrecognized(
                "the request body could not be read".into(),
            ));
        };
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            if seen <= MAX_EVENT_BYTES {
                buf.extend_from_slice(data);
            } else if seen > MAX_DRAINED_BYTES {
                break;
            }
        }
    }
    if seen > MAX_EVENT_BYTES {
        return Err(Rejection::Invalid(vec![format!(
            "Event object is too large ({seen}{} bytes; the limit is {MAX_EVENT_BYTES} bytes)",
            if seen > MAX_DRAINED_BYTES { "+" } else { "" }
        )]));
    }
    Ok(buf.freeze())
}

/// Validates an Events API v2 body with PagerDuty's rules and returns the typed event.
/// Unknown fields are ignored, as PagerDuty ignores them.
pub fn validate_event(body: &[u8]) -> Result<Event, Rejection> {
    let obj = parse_object(body)?;
    let mut c = Checker::new(&obj);
    let routing_key = c.routing_key("routing_key");
    let action = c.action("event_action");
    let dedup_key = c.string(&obj, "dedup_key", "dedup_key", false);
    c.max_chars(&dedup_key, "dedup_key", MAX_DEDUP_KEY_CHARS);
    if matches!(
        action,
        Some(EventAction::Acknowledge | EventAction::Resolve)
    ) && dedup_key.is_none()
    {
        c.errors.push("'dedup_key' is missing or blank".into());
    }
    let payload = if action == Some(EventAction::Trigger) {
        trigger_payload(&mut c, &obj)
    } else {
        None
    };
    let client = c.string(&obj, "client", "client", false);
    let client_url = c.string(&obj, "client_url", "client_url", false);
    let links = c.links("links");
    let images = c.images("images");
    let event = match (routing_key, action) {
        (Some(routing_key), Some(event_action))
            if event_action != EventAction::Trigger || payload.is_some() =>
        {
            Some(Event {
                routing_key,
                event_action,
                dedup_key,
                payload,
                client,
                client_url,
                links,
                images,
            })
        }
        _ => None,
    };
    c.finish(event)
}

fn trigger_payload(c: &mut Checker<'_>, obj: &Map<String, Value>) -> Option<Payload> {
    let p = match obj.get("payload") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => {
            c.errors.push("'payload' is missing or blank".into());
            return None;
        }
        Some(other) => {
            c.errors.push(format!(
                "'payload' must be an object, not {}",
                json_kind(other)
            ));
            return None;
        }
    };
    let summary = c.string(p, "summary", "payload.summary", true);
    c.max_chars(&summary, "payload.summary", MAX_SUMMARY_CHARS);
    let source = c.string(p, "source", "payload.source", true);
    let severity = c
        .string(p, "severity", "payload.severity", true)
        .and_then(|s| {
            let parsed = Severity::parse(&s);
            if parsed.is_none() {
                c.errors.push(format!(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info; got '{s}')"
                ));
            }
            parsed
        });
    let timestamp = c.string(p, "timestamp", "payload.timestamp", false);
    let component = c.string(p, "component", "payload.component", false);
    let group = c.string(p, "group", "payload.group", false);
    let class = c.string(p, "class", "payload.class", false);
    let custom_details = p.get("custom_details").filter(|v| !v.is_null()).cloned();
    Some(Payload {
        summary: summary?,
        source: source?,
        severity: severity?,
        timestamp,
        component,
        group,
        class,
        custom_details,
    })
}

/// Validates a change event body (`/v2/change/enqueue`).
pub fn validate_change_event(body: &[u8]) -> Result<ChangeEvent, Rejection> {
    let obj = parse_object(body)?;
    let mut c = Checker::new(&obj);
    let routing_key = c.routing_key("routing_key");
    let payload = match obj.get("payload") {
        Some(Value::Object(p)) => {
            let summary = c.string(p, "summary", "payload.summary", true);
            c.max_chars(&summary, "payload.summary", MAX_SUMMARY_CHARS);
            let timestamp = c.string(p, "timestamp", "payload.timestamp", false);
            let source = c.string(p, "source", "payload.source", false);
            let custom_details = p.get("custom_details").filter(|v| !v.is_null()).cloned();
            summary.map(|summary| ChangePayload {
                summary,
                timestamp,
                source,
                custom_details,
            })
        }
        None | Some(Value::Null) => {
            c.errors.push("'payload' is missing or blank".into());
            None
        }
        Some(other) => {
            c.errors.push(format!(
                "'payload' must be an object, not {}",
                json_kind(other)
            ));
            None
        }
    };
    let links = c.links("links");
    let images = c.images("images");
    let event = match (routing_key, payload) {
        (Some(routing_key), Some(payload)) => Some(ChangeEvent {
            routing_key,
            payload,
            links,
            images,
        }),
        _ => None,
    };
    c.finish(event)
}

/// Validates a legacy v1 body. v1 keys are 32 characters too but PagerDuty never enforced the
/// alphanumeric rule on them, so only presence and length are checked.
pub fn validate_v1_event(body: &[u8]) -> Result<V1Event, Rejection> {
    let obj = parse_object(body)?;
    let mut c = Checker::new(&obj);
    let service_key = c.string(&obj, "service_key", "service_key", true);
    if let Some(k) = &service_key
        && k.chars().count() != ROUTING_KEY_LEN
    {
        c.errors.push(format!(
            "Length of 'service_key' is incorrect (should be {ROUTING_KEY_LEN} characters)"
        ));
    }
    let event_type = c.action("event_type");
    let incident_key = c.string(&obj, "incident_key", "incident_key", false);
    c.max_chars(&incident_key, "incident_key", MAX_DEDUP_KEY_CHARS);
    if matches!(
        event_type,
        Some(EventAction::Acknowledge | EventAction::Resolve)
    ) && incident_key.is_none()
    {
        c.errors.push("'incident_key' is missing or blank".into());
    }
    let description = c.string(
        &obj,
        "description",
        "description",
        event_type == Some(EventAction::Trigger),
    );
    c.max_chars(&description, "description", MAX_SUMMARY_CHARS);
    let details = obj.get("details").filter(|v| !v.is_null()).cloned();
    let client = c.string(&obj, "client", "client", false);
    let client_url = c.string(&obj, "client_url", "client_url", false);
    let contexts = c.array_of("contexts", |c, i, item| {
        let name = format!("contexts[{i}]");
        let kind = c.string(item, "type", &format!("{name}.type"), true)?;
        match kind.as_str() {
            "link" => Some(V1Context::Link {
                href: c.string(item, "href", &format!("{name}.href"), true)?,
                text: c.string(item, "text", &format!("{name}.text"), false),
            }),
            "image" => Some(V1Context::Image {
                src: c.string(item, "src", &format!("{name}.src"), true)?,
                href: c.string(item, "href", &format!("{name}.href"), false),
                alt: c.string(item, "alt", &format!("{name}.alt"), false),
            }),
            other => {
                c.errors.push(format!(
                    "'{name}.type' is invalid (must be link or image; got '{other}')"
                ));
                None
            }
        }
    });
    let event = match (service_key, event_type) {
        (Some(service_key), Some(event_type))
            if event_type != EventAction::Trigger || description.is_some() =>
        {
            Some(V1Event {
                service_key,
                event_type,
                incident_key,
                description,
                details,
                client,
                client_url,
                contexts,
            })
        }
        _ => None,
    };
    c.finish(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RK: &str = "e93facc04764012d7bfb002500d5d1a6";

    fn check(v: Value) -> Result<Event, Rejection> {
        validate_event(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn full_trigger_round_trips_every_field() {
        let body = json!({
            "routing_key": RK, "event_action": "trigger", "dedup_key": "srv01/mysql",
            "client": "Sample", "client_url": "https://monitoring.example.com",
            "links": [{"href": "https://a.example", "text": "A"}],
            "images": [{"src": "https://i.example/x.png", "href": "https://i.example", "alt": "x"}],
            "payload": {"summary": "DISK at 99%", "source": "db1", "severity": "critical",
                "timestamp": "2015-07-17T08:42:58.315+0000", "component": "mysql",
                "group": "prod", "class": "disk", "custom_details": {"free": "1%", "nested": [1, {"a": null}]}}
        });
        let ev = check(body.clone()).unwrap();
        assert_eq!(ev.payload.as_ref().unwrap().severity, Severity::Critical);
        assert_eq!(serde_json::to_value(&ev).unwrap(), body);
    }

    #[test]
    fn reports_every_problem_with_pagerduty_wording() {
        let err = check(json!({"routing_key": "short", "event_action": "trigger",
            "payload": {"summary": "x", "severity": "fatal"}}))
        .unwrap_err();
        let msgs = err.messages();
        assert!(
            msgs.contains(
                &"Length of 'routing_key' is incorrect (should be 32 characters)".to_string()
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"'payload.source' is missing or blank".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("'payload.severity' is invalid")),
            "{msgs:?}"
        );
    }

    #[test]
    fn resolve_needs_dedup_key_but_no_payload() {
        let err = check(json!({"routing_key": RK, "event_action": "resolve"})).unwrap_err();
        assert_eq!(err.messages(), vec!["'dedup_key' is missing or blank"]);
        let ok =
            check(json!({"routing_key": RK, "event_action": "resolve", "dedup_key": "k"})).unwrap();
        assert!(ok.payload.is_none());
    }

    #[test]
    fn summary_limit_counts_characters_not_bytes() {
        let ok = "é".repeat(1024);
        assert!(
            check(json!({"routing_key": RK, "event_action": "trigger",
            "payload": {"summary": ok, "source": "s", "severity": "info"}}))
            .is_ok()
        );
        let long = "é".repeat(1025);
        let err = check(json!({"routing_key": RK, "event_action": "trigger",
            "payload": {"summary": long, "source": "s", "severity": "info"}}))
        .unwrap_err();
        assert!(err.messages()[0].contains("payload.summary"));
    }

    #[test]
    fn non_objects_are_unrecognized() {
        assert_eq!(
            validate_event(b"{not json").unwrap_err(),
            Rejection::Unrecognized("JSON parse error".into())
        );
        assert!(matches!(
            validate_event(b"[1]").unwrap_err(),
            Rejection::Unrecognized(_)
        ));
    }

    #[test]
    fn content_type_must_be_json_when_given() {
        for ok in [
            None,
            Some(""),
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/vnd.api+json"),
        ] {
            assert!(check_content_type(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
            "application/json-seq",
        ] {
            let err = check_content_type(Some(bad)).unwrap_err();
            assert!(err.messages()[0].contains(bad), "{err}");
        }
    }

    #[test]
    fn oversized_body_is_rejected() {
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(
            matches!(validate_event(&big).unwrap_err(), Rejection::Invalid(m) if m[0].contains("too large"))
        );
    }

    #[test]
    fn change_event_and_v1_rules() {
        let ch = validate_change_event(
            &serde_json::to_vec(&json!({"routing_key": RK, "payload": {"summary": "deploy"}}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ch.payload.summary, "deploy");
        let err = validate_change_event(br#"{"routing_key": "x"}"#).unwrap_err();
        assert!(
            err.messages()
                .contains(&"'payload' is missing or blank".to_string())
        );

        let v1 = validate_v1_event(
            &serde_json::to_vec(&json!({"service_key": RK, "event_type": "trigger", "description": "d",
                "contexts": [{"type": "link", "href": "https://x"}, {"type": "image", "src": "https://y"}]}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(v1.contexts.len(), 2);
        let err = validate_v1_event(
            &serde_json::to_vec(&json!({"service_key": RK, "event_type": "trigger"})).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.messages(), vec!["'description' is missing or blank"]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = validate_event(&bytes);
            let _ = validate_change_event(&bytes);
            let _ = validate_v1_event(&bytes);
        }
    }

    #[test]
    fn masked_keys_keep_both_ends_only() {
        assert_eq!(mask_key("a1b2c3d4e5f60718293a4b5c6d7e8f90"), "a1b2...8f90");
        assert_eq!(mask_key("short"), "...rt");
        assert_eq!(mask_key(""), "...");
    }
}
