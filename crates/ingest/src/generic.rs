//! Any JSON, mapped by the configuration (`[sources.mapping]`): for monitors pagerbridge has no
//! decoder for (an uptime checker, a home-grown script, a SaaS webhook).
//!
//! Every string of a [`Mapping`] is one of two things:
//! - a **JSON pointer** (RFC 6901) when it starts with `/`: `/check/host`, `/tags/0`,
//!   `/a~1b` for the key `a/b`. It reads one value; numbers and booleans become text,
//!   objects and arrays their JSON text, `null` and a missing value mean "nothing";
//! - otherwise a **template** (the syntax of `pagerbridge-template`, Jinja2 as minijinja
//!   implements it) whose context is the payload (or the element of `items`):
//!   `"{{ check.name }} is {{ status | upper }}"`. A string without `{{` is a constant.
//!
//! Results are trimmed; an empty result is "nothing". Required fields (`summary`, `dedup_key`,
//! and `state`/`severity` when configured) that come out as nothing are a [`DecodeError`]
//! naming the field and the pointer, so the sender hears about it.

use std::collections::BTreeMap;

use pagerbridge_model::{Alert, AlertState, DecodeError, Entity, SourceKind};
use pagerbridge_template::Template;
use pagerduty::events::{Link, Severity};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `[sources.mapping]`: how to read an alert out of a JSON payload.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// A JSON pointer to an array: one alert per element, and the element (not the payload) is
    /// what every other field reads. Without it the whole payload is one alert. `""` is the
    /// payload itself (a payload that is an array).
    #[serde(default)]
    pub items: Option<String>,
    /// Required: the incident title.
    pub summary: String,
    /// Required: what identifies the problem, so repeated notifications merge into one
    /// incident and the recovery resolves it.
    pub dedup_key: String,
    /// The payload's word for the state, looked up in `state_map`. Without it every
    /// notification is a problem (a trigger).
    #[serde(default)]
    pub state: Option<String>,
    /// Required with `state`: the payload's words to `problem`, `recovery`,
    /// `acknowledgement`, ... (exact match first, then ignoring ASCII case). A word not in the
    /// map is an error naming it.
    #[serde(default)]
    pub state_map: Option<BTreeMap<String, AlertState>>,
    /// The payload's word for the severity: looked up in `severity_map`, else it must be one
    /// of PagerDuty's (`critical`, `error`, `warning`, `info`, any case). Nothing leaves the
    /// severity to the rules.
    #[serde(default)]
    pub severity: Option<String>,
    /// The payload's severity words to PagerDuty severities.
    #[serde(default)]
    pub severity_map: Option<BTreeMap<String, Severity>>,
    /// The host (PagerDuty `source`, unless a rule says otherwise).
    #[serde(default)]
    pub host: Option<String>,
    /// The service or check (PagerDuty `component`).
    #[serde(default)]
    pub service: Option<String>,
    /// Which installation of the monitor sent it.
    #[serde(default)]
    pub source_instance: Option<String>,
    /// A PagerDuty routing key carried by the payload (a rule's key wins).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// A JSON pointer to the object to send as PagerDuty `custom_details`; default: the whole
    /// element (or payload). A value that is not an object is sent as `{"value": ...}`.
    #[serde(default)]
    pub details: Option<String>,
    /// Links on the incident; a pointer to an array of strings gives one link per string.
    #[serde(default)]
    pub links: Vec<String>,
    /// PagerDuty `client` (the monitor's name) and `client_url` (a link back to it).
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub client_url: Option<String>,
}

/// A [`Mapping`] with its pointers checked and its templates compiled, ready for every
/// request.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledMapping {
    items: Option<String>,
    summary: Expr,
    dedup_key: Expr,
    state: Option<(Expr, BTreeMap<String, AlertState>)>,
    severity: Option<(Expr, BTreeMap<String, Severity>)>,
    host: Option<Expr>,
    service: Option<Expr>,
    source_instance: Option<Expr>,
    routing_key: Option<Expr>,
    details: Option<String>,
    links: Vec<Expr>,
    client: Option<Expr>,
    client_url: Option<Expr>,
}

/// A pointer or a template.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Pointer(String),
    Template(Template),
}

/// Checks every pointer and compiles every template of `m`; the error names the field
/// (`summary: template does not parse: ...`).
pub fn compile(m: &Mapping) -> Result<CompiledMapping, String> {
    let opt = |name: &str, s: &Option<String>| s.as_deref().map(|s| expr(name, s)).transpose();
    let state = match (&m.state, &m.state_map) {
        (Some(s), Some(map)) => Some((expr("state", s)?, map.clone())),
        (Some(_), None) => {
            return Err(
                "state_map: required when state is set (the payload's words to problem, \
                 recovery, ...)"
                    .into(),
            );
        }
        (None, Some(_)) => {
            return Err("state: required when state_map is set (where to read the word)".into());
        }
        (None, None) => None,
    };
    let severity = match (&m.severity, &m.severity_map) {
        (Some(s), map) => Some((expr("severity", s)?, map.clone().unwrap_or_default())),
        (None, Some(_)) => {
            return Err(
                "severity: required when severity_map is set (where to read the word)".into(),
            );
        }
        (None, None) => None,
    };
    if let Some(p) = &m.items
        && !p.is_empty()
    {
        check_pointer("items", p)?;
    }
    if let Some(p) = &m.details {
        check_pointer("details", p)?;
    }
    for (name, s) in [("summary", &m.summary), ("dedup_key", &m.dedup_key)] {
        if s.trim().is_empty() {
            return Err(format!("{name}: must not be empty"));
        }
    }
    Ok(CompiledMapping {
        items: m.items.clone(),
        summary: expr("summary", &m.summary)?,
        dedup_key: expr("dedup_key", &m.dedup_key)?,
        state,
        severity,
        host: opt("host", &m.host)?,
        service: opt("service", &m.service)?,
        source_instance: opt("source_instance", &m.source_instance)?,
        routing_key: opt("routing_key", &m.routing_key)?,
        details: m.details.clone(),
        links: m
            .links
            .iter()
            .enumerate()
            .map(|(i, s)| expr(&format!("links[{i}]"), s))
            .collect::<Result<_, _>>()?,
        client: opt("client", &m.client)?,
        client_url: opt("client_url", &m.client_url)?,
    })
}

fn expr(name: &str, s: &str) -> Result<Expr, String> {
    if s.starts_with('/') {
        check_pointer(name, s)?;
        Ok(Expr::Pointer(s.to_owned()))
    } else {
        Template::compile(s)
            .map(Expr::Template)
            .map_err(|e| format!("{name}: {e}"))
    }
}

/// RFC 6901: `/`-separated, `~` only as `~0` or `~1`.
fn check_pointer(name: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "{name}: {p:?} is not a JSON pointer (it must start with '/')"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{name}: {p:?} is not a valid JSON pointer ('~' must be followed by 0 or 1)"
            ));
        }
    }
    Ok(())
}

/// Decodes `body` with the mapping: one alert, or one per element of `items` (an empty array
/// gives no alerts).
pub fn decode(body: &[u8], m: &CompiledMapping) -> Result<Vec<Alert>, DecodeError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::new("", format!("not JSON: {e}")))?;
    let Some(items) = &m.items else {
        return Ok(vec![m.alert(&root, None)?]);
    };
    match root.pointer(items) {
        Some(Value::Array(elements)) => elements
            .iter()
            .enumerate()
            .map(|(i, el)| m.alert(el, Some(&format!("{items}/{i}"))))
            .collect(),
        None | Some(Value::Null) => Err(DecodeError::new(
            "items",
            format!("{} resolved to nothing", shown(items)),
        )),
        Some(other) => Err(DecodeError::new(
            "items",
            format!(
                "{} is {}, expected an array",
                shown(items),
                crate::type_name(other)
            ),
        )),
    }
}

fn shown(pointer: &str) -> &str {
    if pointer.is_empty() { "\"\"" } else { pointer }
}

impl CompiledMapping {
    /// The alert in `ctx`, the payload or the element at `item` (a pointer, for errors).
    fn alert(&self, ctx: &Value, item: Option<&str>) -> Result<Alert, DecodeError> {
        let at = Place {
            item,
            template_ctx: without_nulls(ctx),
        };
        let summary = at.required("summary", &self.summary, ctx)?;
        let dedup_key = at.required("dedup_key", &self.dedup_key, ctx)?;

        let mut status = None;
        let state = match &self.state {
            None => AlertState::Problem,
            Some((e, map)) => {
                let word = at.required("state", e, ctx)?;
                let state = lookup(map, &word).ok_or_else(|| {
                    at.error(
                        "state",
                        format!(
                            "{word:?} is not in state_map (which knows {})",
                            known(map.keys())
                        ),
                    )
                })?;
                status = Some(word);
                state
            }
        };
        let severity = match &self.severity {
            None => None,
            Some((e, map)) => match at.optional("severity", e, ctx)? {
                None => None,
                Some(word) => Some(
                    lookup(map, &word)
                        .or_else(|| Severity::parse(&word.to_ascii_lowercase()))
                        .ok_or_else(|| {
                            at.error(
                                "severity",
                                format!(
                                    "{word:?} is neither in severity_map nor a PagerDuty \
                                     severity (critical, error, warning, info)"
                                ),
                            )
                        })?,
                ),
            },
        };

        let mut alert = Alert::new(SourceKind::Generic, state, summary, dedup_key);
        alert.status = status;
        alert.severity = severity;
        alert.entity = Entity {
            host: at.opt("host", &self.host, ctx)?,
            service: at.opt("service", &self.service, ctx)?,
            labels: BTreeMap::new(),
        };
        alert.source_instance = at.opt("source_instance", &self.source_instance, ctx)?;
        alert.routing_key = at.opt("routing_key", &self.routing_key, ctx)?;
        alert.client = at.opt("client", &self.client, ctx)?;
        alert.client_url = at.opt("client_url", &self.client_url, ctx)?;
        alert.details = match &self.details {
            None => as_details(ctx.clone()),
            Some(p) => match ctx.pointer(p) {
                None | Some(Value::Null) => Map::new(),
                Some(v) => as_details(v.clone()),
            },
        };
        for (i, e) in self.links.iter().enumerate() {
            let name = format!("links[{i}]");
            for href in at.many(&name, e, ctx)? {
                alert.links.push(Link { href, text: None });
            }
        }
        Ok(alert)
    }
}

/// The context templates see: `null` members left out, so that to a template a `null` is as
/// absent as a missing key (renders empty, takes `default(...)`, is not `defined`) instead of
/// rendering as `none`.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn as_details(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

fn lookup<T: Copy>(map: &BTreeMap<String, T>, word: &str) -> Option<T> {
    map.get(word).copied().or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, v)| *v)
    })
}

fn known<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<String> = keys.map(|k| format!("{k:?}")).collect();
    if keys.is_empty() {
        "nothing".into()
    } else {
        keys.join(", ")
    }
}

/// Which element an error is about, when there are several.
struct Place<'a> {
    item: Option<&'a str>,
    template_ctx: Value,
}

impl Place<'_> {
    fn error(&self, field: &str, message: String) -> DecodeError {
        match self.item {
            Some(item) => DecodeError::new(field, format!("{message} (in item {item})")),
            None => DecodeError::new(field, message),
        }
    }

    fn required(&self, field: &str, e: &Expr, ctx: &Value) -> Result<String, DecodeError> {
        self.optional(field, e, ctx)?.ok_or_else(|| {
            self.error(
                field,
                match e {
                    Expr::Pointer(p) => format!("{p} resolved to nothing"),
                    Expr::Template(_) => "template rendered an empty string".into(),
                },
            )
        })
    }

    fn opt(
        &self,
        field: &str,
        e: &Option<Expr>,
        ctx: &Value,
    ) -> Result<Option<String>, DecodeError> {
        match e {
            Some(e) => self.optional(field, e, ctx),
            None => Ok(None),
        }
    }

    fn optional(&self, field: &str, e: &Expr, ctx: &Value) -> Result<Option<String>, DecodeError> {
        let text = match e {
            Expr::Pointer(p) => match ctx.pointer(p) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            },
            Expr::Template(t) => t
                .render(&self.template_ctx)
                .map_err(|err| self.error(field, err.to_string()))?,
        };
        let text = text.trim();
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }

    /// Like `optional`, but a pointer to an array gives each of its strings.
    fn many(&self, field: &str, e: &Expr, ctx: &Value) -> Result<Vec<String>, DecodeError> {
        if let Expr::Pointer(p) = e
            && let Some(Value::Array(items)) = ctx.pointer(p)
        {
            return Ok(items
                .iter()
                .filter_map(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect());
        }
        Ok(self.optional(field, e, ctx)?.into_iter().collect())
    }
}
