//! Write-back adapters: one file per monitor, each turning a [`Change`] made in PagerDuty into
//! the monitor's own call (Icinga 2's REST API, the Nagios-family external command file,
//! Alertmanager silences, Zabbix's and Zenoss's JSON-RPC, Centreon's REST API v2, or a generic
//! outbound webhook).
//!
//! Adapters are small and stateless between calls: what one needs to remember for a later call
//! (the id of the Alertmanager silence to expire on resolve) it returns as a memo in
//! [`Applied`], which the caller stores with the incident and passes back in [`Request::memo`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use pagerbridge_model::MonitorRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod alertmanager;
pub mod centreon;
pub mod icinga2;
pub mod nagios_cmd;
pub mod webhook;
pub mod zabbix;
pub mod zenoss;

/// What to do in the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Acknowledge the problem (with author and comment).
    Acknowledge,
    /// Take an acknowledgement back (PagerDuty's `incident.unacknowledged`, a re-trigger).
    Unacknowledge,
    /// Add a comment (an annotation made in PagerDuty, or a note about a change).
    Comment,
    /// Resolve or close the problem, where the monitor allows it.
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Unacknowledge => "unacknowledge",
            Action::Comment => "comment",
            Action::Resolve => "resolve",
        }
    }
}

/// A change made in PagerDuty, as the monitor should show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    /// Who did it in PagerDuty (the responder's name, or "PagerDuty" for automatic changes).
    pub author: String,
    /// The text for the monitor: what happened, by whom, and the incident's link.
    pub comment: String,
    /// The PagerDuty incident (`Q1ABC...`).
    pub incident_id: String,
    /// The incident's page in PagerDuty.
    pub incident_url: Option<String>,
    /// When an acknowledgement should lapse by itself (the end of a maintenance window);
    /// `None`: it stays until the problem recovers.
    pub expires_at: Option<Timestamp>,
    /// When the change was made in PagerDuty.
    pub at: Timestamp,
}

/// One call of an adapter: the problem in the monitor, the change, and the memo the previous
/// call for this incident returned.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub target: &'a MonitorRef,
    pub change: &'a Change,
    pub memo: Option<&'a Value>,
}

/// What an adapter did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// To keep with the incident and pass back in the next call (`None`: keep the old memo).
    pub memo: Option<Value>,
    /// One line for the log: what the monitor answered.
    pub detail: String,
}

/// Why an adapter call failed, and whether trying again later can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    pub retry: bool,
    pub message: String,
}

impl WriteError {
    /// A failure that may pass later: the monitor is down, busy, or answered 5xx/429.
    pub fn retry(message: impl Into<String>) -> WriteError {
        WriteError {
            retry: true,
            message: message.into(),
        }
    }

    /// A failure that will not pass by waiting: refused credentials, an unknown object, a
    /// request the monitor rejects, an action this monitor cannot do.
    pub fn fail(message: impl Into<String>) -> WriteError {
        WriteError {
            retry: false,
            message: message.into(),
        }
    }
}

/// One monitor's write-back.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// Carries `req.change` into the monitor.
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError>;
}

/// The kinds of monitor pagerbridge writes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Icinga 2's REST API (`/v1/actions/...`).
    Icinga2,
    /// The external command file of Nagios 4, Naemon, Centreon Engine or openITCOCKPIT.
    ExternalCommand,
    /// Alertmanager's API v2 (silences).
    Alertmanager,
    /// Zabbix's JSON-RPC API (`event.acknowledge`).
    Zabbix,
    /// Zenoss's JSON API (`evconsole_router`).
    Zenoss,
    /// Centreon's REST API v2 (acknowledgements).
    Centreon,
    /// A generic outbound webhook: a JSON POST per change.
    Webhook,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Icinga2,
        Kind::ExternalCommand,
        Kind::Alertmanager,
        Kind::Zabbix,
        Kind::Zenoss,
        Kind::Centreon,
        Kind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Icinga2 => "icinga2",
            Kind::ExternalCommand => "external_command",
            Kind::Alertmanager => "alertmanager",
            Kind::Zabbix => "zabbix",
            Kind::Zenoss => "zenoss",
            Kind::Centreon => "centreon",
            Kind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The actions this kind of monitor can carry out; the configuration may only ask for
    /// these.
    pub fn supports(self, action: Action) -> bool {
        match self {
            Kind::Icinga2 | Kind::ExternalCommand => action != Action::Resolve,
            Kind::Alertmanager => matches!(
                action,
                Action::Acknowledge | Action::Unacknowledge | Action::Resolve
            ),
            Kind::Zabbix | Kind::Zenoss | Kind::Webhook => true,
            Kind::Centreon => action != Action::Resolve,
        }
    }

    /// What each PagerDuty change does by default: what an operator of this monitor expects.
    pub fn default_policy(self) -> Policy {
        let on_resolve = match self {
            // Alertmanager: the silence made on acknowledge is expired.
            Kind::Alertmanager => Some(Action::Resolve),
            // The problem stays until the monitor's own check recovers; say who resolved it.
            Kind::Icinga2 | Kind::ExternalCommand | Kind::Centreon => Some(Action::Comment),
            // Zabbix and Zenoss close events by hand as a matter of course; still only a
            // comment unless the operator asks for closing.
            Kind::Zabbix | Kind::Zenoss | Kind::Webhook => Some(Action::Comment),
        };
        let comment = self.supports(Action::Comment).then_some(Action::Comment);
        Policy {
            on_acknowledge: Some(Action::Acknowledge),
            on_unacknowledge: self
                .supports(Action::Unacknowledge)
                .then_some(Action::Unacknowledge),
            on_annotate: comment,
            on_resolve,
        }
    }
}

/// What each change in PagerDuty does in a monitor (`None`: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub on_acknowledge: Option<Action>,
    pub on_unacknowledge: Option<Action>,
    pub on_annotate: Option<Action>,
    pub on_resolve: Option<Action>,
}

/// How to reach a monitor: the resolved `[[monitors]]` settings (secrets already read).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Base URL of the monitor's API (`https://icinga:5665`, `http://alertmanager:9093`, ...).
    pub url: Option<url::Url>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An API token (Zabbix, Centreon, a webhook's bearer token).
    pub token: Option<String>,
    /// The external command file (Nagios family).
    pub command_file: Option<PathBuf>,
    /// A PEM file of CAs to trust for the monitor's TLS certificate (Icinga 2's own CA).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate checks (a lab with self-signed certificates).
    pub insecure_tls: bool,
    /// Per request.
    pub timeout: Duration,
    /// Kind-specific options (a JSON object; each adapter documents its own).
    pub options: Value,
}

/// A setting an adapter cannot work with: the field (`url`, `options.sticky`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> SettingsError {
        SettingsError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Settings {
    /// `url`, which must be http or https; `required` is what to say when it is missing
    /// (which URL of the monitor is meant).
    pub fn http_url(&self, required: &str) -> Result<&url::Url, SettingsError> {
        let url = self
            .url
            .as_ref()
            .ok_or_else(|| SettingsError::new("url", required))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SettingsError::new(
                "url",
                format!("must be http or https, got {}", url.scheme()),
            ));
        }
        Ok(url)
    }

    /// `options`, a table (none: empty) of only the `known` keys; `monitor` names the
    /// adapter in the message about an unknown key.
    pub fn options(&self, monitor: &str, known: &[&str]) -> Result<Options, SettingsError> {
        let map = match &self.options {
            Value::Null => serde_json::Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(SettingsError::new(
                    "options",
                    format!("expected a table of options, got {other}"),
                ));
            }
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(SettingsError::new(
                format!("options.{k}"),
                format!("unknown option; {monitor} takes {}", known.join(", ")),
            ));
        }
        Ok(Options(map))
    }
}

/// An adapter's checked `options` table (see [`Settings::options`]). The typed readers take
/// an absent key and `null` alike as "not set" and name `options.<key>` in their errors;
/// [`Options::get`] gives the raw value, for options of an adapter's own kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options(serde_json::Map<String, Value>);

impl Options {
    /// The value as given (`null` included).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A true/false option, `default` when not set.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, SettingsError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Options::expected(key, "true or false", other)),
        }
    }

    /// A string option that `ok` accepts, `None` when not set; anything else is refused as
    /// "expected `expected`, got ...".
    pub fn string(
        &self,
        key: &str,
        expected: &str,
        ok: impl Fn(&str) -> bool,
    ) -> Result<Option<&str>, SettingsError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if ok(s) => Ok(Some(s)),
            Some(other) => Err(Options::expected(key, expected, other)),
        }
    }

    /// The error for `options.<key>` holding `got` where `expected` belongs.
    pub fn expected(key: &str, expected: &str, got: &Value) -> SettingsError {
        SettingsError::new(
            format!("options.{key}"),
            format!("expected {expected}, got {got}"),
        )
    }
}

/// Builds the adapter of `kind` from its settings, checking them.
pub fn build(kind: Kind, settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    match kind {
        Kind::Icinga2 => icinga2::build(settings),
        Kind::ExternalCommand => nagios_cmd::build(settings),
        Kind::Alertmanager => alertmanager::build(settings),
        Kind::Zabbix => zabbix::build(settings),
        Kind::Zenoss => zenoss::build(settings),
        Kind::Centreon => centreon::build(settings),
        Kind::Webhook => webhook::build(settings),
    }
}

/// An HTTP client for a monitor's API with the settings' timeout and TLS choices.
pub fn http_client(settings: &Settings) -> Result<reqwest::Client, SettingsError> {
    let mut b = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(concat!("pagerbridge/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(settings.insecure_tls);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            SettingsError::new("ca_file", format!("cannot read {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            SettingsError::new("ca_file", format!("{} is not PEM: {e}", path.display()))
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| SettingsError::new("url", format!("cannot build an HTTP client: {e}")))
}

/// Classifies an HTTP answer from a monitor's API: 2xx passes, 408/429/5xx are worth a retry,
/// the rest are final. `body` is quoted (shortened) in the error.
pub fn classify(what: &str, status: reqwest::StatusCode, body: &str) -> Result<(), WriteError> {
    if status.is_success() {
        return Ok(());
    }
    let message = format!("{what}: HTTP {status}: {}", shorten(body));
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Err(WriteError::retry(message))
    } else {
        Err(WriteError::fail(message))
    }
}

/// A transport failure (refused, reset, timed out): the monitor may be back later.
pub fn transport(what: &str, e: &reqwest::Error) -> WriteError {
    WriteError::retry(format!("{what}: {e}"))
}

/// The memo key of a change, `<action>:<incident>:<time of the change>`: the same for every
/// delivery of one change.
fn change_key(c: &Change) -> String {
    format!("{}:{}:{}", c.action.as_str(), c.incident_id, c.at)
}

/// Whether `memo` (`{"last_applied": key}`) says the change with `key` was carried out.
fn already_applied(memo: Option<&Value>, key: &str) -> bool {
    memo.and_then(|m| m.get("last_applied"))
        .and_then(Value::as_str)
        == Some(key)
}

/// The `kind` of a monitor reference as it is stored (`zabbix_event`), for messages.
fn ref_kind(target: &MonitorRef) -> String {
    serde_json::to_value(target)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// A monitor's answer cut to 300 characters, to quote in a message.
fn shorten(s: &str) -> String {
    s.chars().take(300).collect()
}
