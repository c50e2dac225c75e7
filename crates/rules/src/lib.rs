//! Rules: from an [`Alert`] to the PagerDuty events it becomes.
//!
//! Rules are tried in order. Each matching rule sends one event (its routing key, severity,
//! templates, links, details); `continue = true` lets later rules match too, which is how one
//! alert reaches several services; `drop = true` stops and sends nothing. When no rule matches,
//! the alert goes to the routing key its payload named, or the default one.
//!
//! Pure and cheap: compiled once from the configuration, then a function of the alert. Every
//! choice it made is in the [`Routed`] result, which `pagerbridge route test` prints.

pub mod limits;
pub mod matcher;
pub mod spec;

use std::collections::BTreeMap;

use pagerbridge_model::{Alert, SourceKind};
use pagerbridge_template::Template;
use pagerduty::events::{Event, EventAction, Link, Payload, Severity};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::matcher::Matcher;
use crate::spec::{RoutingSpec, RuleSpec};

/// A problem in the rules: where (`rules[2].match.all[0].regex`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What PagerDuty should do with a matched alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionChoice {
    FromState,
    Fixed(EventAction),
    Nothing,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    matcher: Option<Matcher>,
    routing_key: Option<String>,
    severity: Option<Severity>,
    action: ActionChoice,
    dedup_key: Option<Template>,
    summary: Option<Template>,
    links: Vec<(Template, Option<Template>)>,
    details: Vec<(String, DetailValue)>,
    drop: bool,
    continue_matching: bool,
}

#[derive(Debug, Clone)]
enum DetailValue {
    Template(Template),
    Fixed(Value),
}

/// Compiled rules.
#[derive(Debug, Clone)]
pub struct Rules {
    default_routing_key: Option<String>,
    default_severity: Severity,
    severity_maps: BTreeMap<String, BTreeMap<String, Severity>>,
    dedup_key: Option<Template>,
    rules: Vec<Rule>,
}

/// One event an alert becomes, with how it was decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routed {
    /// The rule that produced it; `None` for the defaults.
    pub rule: Option<String>,
    pub event: Event,
    /// Limits applied and template fallbacks, for the operator.
    pub notes: Vec<String>,
}

/// What became of an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// One event per matching rule (or one by the defaults).
    Send { events: Vec<Routed> },
    /// Nothing to send, on purpose: a `drop` rule, or a state PagerDuty has no event for.
    Dropped {
        rule: Option<String>,
        reason: String,
    },
}

/// Why an alert cannot be routed. The sender gets this as an error: nothing is silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum RouteError {
    #[error(
        "no routing key: no rule gave one, the payload named none, and [routing] default_routing_key is not set"
    )]
    NoRoutingKey,
    #[error(
        "routing key {key:?} from {origin} is not a PagerDuty integration key (32 letters and digits)"
    )]
    BadRoutingKey { key: String, origin: String },
    #[error("no dedup key to {action} with: the alert has no identity and no rule gives one")]
    NoDedupKey { action: String },
}

/// Built-in severities for the monitors' own words, before `[routing.severity]` adds to them.
fn builtin_severity(source: SourceKind, status: &str) -> Option<Severity> {
    let s = status.to_ascii_uppercase();
    if source.is_nagios_family() || matches!(source, SourceKind::CentreonBroker) {
        return match s.as_str() {
            "CRITICAL" | "DOWN" => Some(Severity::Critical),
            "WARNING" => Some(Severity::Warning),
            "UNKNOWN" | "UNREACHABLE" => Some(Severity::Error),
            "OK" | "UP" => Some(Severity::Info),
            _ => None,
        };
    }
    Severity::parse(&status.to_ascii_lowercase())
}

fn is_routing_key(k: &str) -> bool {
    k.len() == pagerduty::events::ROUTING_KEY_LEN && k.chars().all(|c| c.is_ascii_alphanumeric())
}

fn template(src: &str, path: String, errors: &mut Vec<RuleError>) -> Option<Template> {
    compiled(Template::compile(src), path, errors)
}

/// Dedup keys are identities: a value an alert does not have is an error (and the source's own
/// identity is used), not empty text that would merge unrelated problems.
fn identity_template(src: &str, path: String, errors: &mut Vec<RuleError>) -> Option<Template> {
    compiled(Template::compile_strict(src), path, errors)
}

fn compiled(
    t: Result<Template, pagerbridge_template::TemplateError>,
    path: String,
    errors: &mut Vec<RuleError>,
) -> Option<Template> {
    match t {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(RuleError {
                path,
                message: e.to_string(),
            });
            None
        }
    }
}

impl Rules {
    /// Compiles `[routing]` and `[[rules]]`, reporting every problem with its path.
    pub fn compile(routing: &RoutingSpec, rules: &[RuleSpec]) -> Result<Rules, Vec<RuleError>> {
        let mut errors = Vec::new();
        if let Some(k) = &routing.default_routing_key
            && !is_routing_key(k)
        {
            errors.push(RuleError {
                path: "routing.default_routing_key".into(),
                message: format!(
                    "{k:?} is not a PagerDuty integration key (32 letters and digits)"
                ),
            });
        }
        for source in routing.severity.keys() {
            if SourceKind::parse(source).is_none() {
                errors.push(RuleError {
                    path: format!("routing.severity.{source}"),
                    message: format!(
                        "unknown source kind; one of: {}",
                        SourceKind::ALL.map(SourceKind::as_str).join(", ")
                    ),
                });
            }
        }
        let dedup_key = routing
            .dedup_key
            .as_deref()
            .and_then(|t| identity_template(t, "routing.dedup_key".into(), &mut errors));
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let p = |f: &str| format!("rules[{i}].{f}");
            let matcher = match &r.matcher {
                None => None,
                Some(m) => match matcher::compile(m, &p("match")) {
                    Ok(m) => Some(m),
                    Err(es) => {
                        errors.extend(
                            es.into_iter()
                                .map(|(path, message)| RuleError { path, message }),
                        );
                        None
                    }
                },
            };
            if let Some(k) = &r.routing_key
                && !is_routing_key(k)
            {
                errors.push(RuleError {
                    path: p("routing_key"),
                    message: format!(
                        "{k:?} is not a PagerDuty integration key (32 letters and digits)"
                    ),
                });
            }
            let action = match r.action.as_deref() {
                None => ActionChoice::FromState,
                Some("trigger") => ActionChoice::Fixed(EventAction::Trigger),
                Some("acknowledge") => ActionChoice::Fixed(EventAction::Acknowledge),
                Some("resolve") => ActionChoice::Fixed(EventAction::Resolve),
                Some("none") => ActionChoice::Nothing,
                Some(other) => {
                    errors.push(RuleError {
                        path: p("action"),
                        message: format!("{other:?} is not trigger, acknowledge, resolve or none"),
                    });
                    ActionChoice::FromState
                }
            };
            if r.drop && (r.routing_key.is_some() || r.continue_matching) {
                errors.push(RuleError {
                    path: p("drop"),
                    message: "a rule that drops sends nothing: routing_key and continue make no sense with it".into(),
                });
            }
            let links = r
                .links
                .iter()
                .enumerate()
                .filter_map(|(j, l)| {
                    let href = template(&l.href, p(&format!("links[{j}].href")), &mut errors)?;
                    let text = match &l.text {
                        Some(t) => Some(template(t, p(&format!("links[{j}].text")), &mut errors)?),
                        None => None,
                    };
                    Some((href, text))
                })
                .collect();
            let details = r
                .details
                .iter()
                .filter_map(|(k, v)| match v {
                    toml::Value::String(s) => template(s, p(&format!("details.{k}")), &mut errors)
                        .map(|t| (k.clone(), DetailValue::Template(t))),
                    other => Some((
                        k.clone(),
                        DetailValue::Fixed(serde_json::to_value(other).unwrap_or(Value::Null)),
                    )),
                })
                .collect();
            compiled.push(Rule {
                name: r.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
                matcher,
                routing_key: r.routing_key.clone(),
                severity: r.severity,
                action,
                dedup_key: r
                    .dedup_key
                    .as_deref()
                    .and_then(|t| identity_template(t, p("dedup_key"), &mut errors)),
                summary: r
                    .summary
                    .as_deref()
                    .and_then(|t| template(t, p("summary"), &mut errors)),
                links,
                details,
                drop: r.drop,
                continue_matching: r.continue_matching,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Rules {
            default_routing_key: routing.default_routing_key.clone(),
            default_severity: routing.default_severity.unwrap_or(Severity::Error),
            severity_maps: routing
                .severity
                .iter()
                .map(|(k, m)| {
                    (
                        k.clone(),
                        m.iter()
                            .map(|(s, v)| (s.to_ascii_uppercase(), *v))
                            .collect(),
                    )
                })
                .collect(),
            dedup_key,
            rules: compiled,
        })
    }

    /// No rules, no default key: alerts must carry their own routing key.
    pub fn empty() -> Rules {
        Rules::compile(&RoutingSpec::default(), &[]).expect("empty rules compile")
    }

    /// The alert as rules and templates see it: its JSON form, plus the shortcuts `host`,
    /// `service` and `labels`.
    pub fn context(alert: &Alert) -> Value {
        let mut v = serde_json::to_value(alert).unwrap_or_else(|_| json!({}));
        if let Value::Object(o) = &mut v {
            o.insert("host".into(), json!(alert.entity.host));
            o.insert("service".into(), json!(alert.entity.service));
            o.insert("labels".into(), json!(alert.entity.labels));
            o.insert("entity_name".into(), json!(alert.entity.name()));
        }
        v
    }

    /// The events `alert` becomes.
    pub fn route(&self, alert: &Alert) -> Result<Decision, RouteError> {
        let ctx = Rules::context(alert);
        let mut events = Vec::new();
        for rule in &self.rules {
            if !rule.matcher.as_ref().is_none_or(|m| m.matches(&ctx)) {
                continue;
            }
            if rule.drop {
                return Ok(Decision::Dropped {
                    rule: Some(rule.name.clone()),
                    reason: format!("dropped by rule {:?}", rule.name),
                });
            }
            if let Some(r) = self.build(alert, &ctx, Some(rule))? {
                events.push(r);
            } else if events.is_empty() && !rule.continue_matching {
                return Ok(Decision::Dropped {
                    rule: Some(rule.name.clone()),
                    reason: self.no_action_reason(alert, Some(rule)),
                });
            }
            if !rule.continue_matching {
                break;
            }
        }
        if events.is_empty() {
            // A rule that matched and continued without an event still leaves the defaults.
            match self.build(alert, &ctx, None)? {
                Some(r) => events.push(r),
                None => {
                    return Ok(Decision::Dropped {
                        rule: None,
                        reason: self.no_action_reason(alert, None),
                    });
                }
            }
        }
        Ok(Decision::Send { events })
    }

    fn no_action_reason(&self, alert: &Alert, rule: Option<&Rule>) -> String {
        match rule.map(|r| r.action) {
            Some(ActionChoice::Nothing) => format!(
                "rule {:?} says action = \"none\"",
                rule.map(|r| r.name.as_str()).unwrap_or("")
            ),
            _ => format!(
                "PagerDuty has no event for a {} notification (a rule can set `action` for it)",
                alert.state.as_str()
            ),
        }
    }

    fn severity(&self, alert: &Alert, rule: Option<&Rule>) -> Severity {
        if let Some(s) = rule.and_then(|r| r.severity).or(alert.severity) {
            return s;
        }
        let Some(status) = alert.status.as_deref() else {
            return self.default_severity;
        };
        self.severity_maps
            .get(alert.source.as_str())
            .and_then(|m| m.get(&status.to_ascii_uppercase()).copied())
            .or_else(|| builtin_severity(alert.source, status))
            .unwrap_or(self.default_severity)
    }

    fn build(
        &self,
        alert: &Alert,
        ctx: &Value,
        rule: Option<&Rule>,
    ) -> Result<Option<Routed>, RouteError> {
        let action = match rule.map(|r| r.action).unwrap_or(ActionChoice::FromState) {
            ActionChoice::Fixed(a) => a,
            ActionChoice::Nothing => return Ok(None),
            ActionChoice::FromState => match alert.state.default_action() {
                Some(a) => a,
                None => return Ok(None),
            },
        };
        let (routing_key, origin) = if let Some(k) = rule.and_then(|r| r.routing_key.clone()) {
            (k, "the rule")
        } else if let Some(k) = alert.routing_key.clone() {
            (k, "the payload")
        } else if let Some(k) = self.default_routing_key.clone() {
            (k, "[routing] default_routing_key")
        } else {
            return Err(RouteError::NoRoutingKey);
        };
        if !is_routing_key(&routing_key) {
            return Err(RouteError::BadRoutingKey {
                key: routing_key,
                origin: origin.into(),
            });
        }
        let mut notes = Vec::new();
        let mut render = |t: &Template, what: &str, fallback: &str| match t.render(ctx) {
            Ok(s) if !s.trim().is_empty() => s,
            Ok(_) => {
                notes.push(format!("{what} template rendered empty; used {fallback:?}"));
                fallback.to_owned()
            }
            Err(e) => {
                notes.push(format!("{what} template failed ({e}); used {fallback:?}"));
                fallback.to_owned()
            }
        };
        let dedup_key = match rule
            .and_then(|r| r.dedup_key.as_ref())
            .or(self.dedup_key.as_ref())
        {
            Some(t) => render(t, "dedup_key", &alert.dedup_hint),
            None => alert.dedup_hint.clone(),
        };
        let mut generated_note = false;
        let dedup_key = if !dedup_key.trim().is_empty() {
            dedup_key
        } else if action == EventAction::Trigger {
            generated_note = true;
            generated_key()
        } else {
            return Err(RouteError::NoDedupKey {
                action: action.as_str().into(),
            });
        };
        let mut event = Event::update(routing_key, action, dedup_key);
        if action == EventAction::Trigger {
            let summary = match rule.and_then(|r| r.summary.as_ref()) {
                Some(t) => render(t, "summary", &alert.summary),
                None => alert.summary.clone(),
            };
            let mut details = alert.details.clone();
            if let Some(r) = rule {
                for (k, v) in &r.details {
                    let v = match v {
                        DetailValue::Fixed(v) => v.clone(),
                        DetailValue::Template(t) => {
                            Value::String(render(t, &format!("details.{k}"), ""))
                        }
                    };
                    details.insert(k.clone(), v);
                }
            }
            let mut links = alert.links.clone();
            if let Some(r) = rule {
                for (href, text) in &r.links {
                    let href = render(href, "links.href", "");
                    if href.is_empty() {
                        continue;
                    }
                    links.push(Link {
                        href,
                        text: text.as_ref().map(|t| render(t, "links.text", "")),
                    });
                }
            }
            let source = alert
                .entity
                .host
                .clone()
                .or_else(|| alert.source_instance.clone())
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| alert.source.as_str().to_owned());
            // Never blank: PagerDuty refuses a trigger without a summary.
            let summary = [summary, alert.summary.clone(), alert.entity.name()]
                .into_iter()
                .find(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("{} alert", alert.source.as_str()));
            event.payload = Some(Payload {
                summary,
                source,
                severity: self.severity(alert, rule),
                timestamp: alert
                    .occurred_at
                    .or(alert.started_at)
                    .map(|t| t.to_string()),
                component: alert.entity.service.clone(),
                group: None,
                class: alert.status.clone(),
                custom_details: Some(Value::Object(with_origin(details, alert))),
            });
            event.client = alert.client.clone();
            event.client_url = alert.client_url.clone();
            event.links = links;
            event.images = alert.images.clone();
        }
        if generated_note {
            notes.push(
                "no dedup key: a new one was generated, so this notification opens its own incident"
                    .into(),
            );
        }
        notes.extend(limits::enforce(&mut event));
        Ok(Some(Routed {
            rule: rule.map(|r| r.name.clone()),
            event,
            notes,
        }))
    }
}

/// A fresh dedup key, as PagerDuty would make for a trigger without one.
fn generated_key() -> String {
    use sha2::Digest;
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..16])
}

/// Where the alert came from, for the responder reading the incident.
fn with_origin(mut details: Map<String, Value>, alert: &Alert) -> Map<String, Value> {
    details.entry("monitor").or_insert_with(|| {
        json!({
            "source": alert.source.as_str(),
            "instance": alert.source_instance,
            "state": alert.state.as_str(),
            "status": alert.status,
        })
    });
    details
}
