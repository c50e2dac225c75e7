//! `[[monitors]]`: where PagerDuty's changes are written back, and what each change does there.

use std::collections::HashSet;
use std::path::PathBuf;

use pagerbridge_sync::writeback::{self, Action, Kind, Policy, Settings};
use serde::Deserialize;

use crate::duration::Duration;
use crate::secret::Secret;
use crate::validate::Validator;

/// One `[[monitors]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Unique name, used in logs, `queue` and the incident map.
    pub name: String,
    /// How to write back: `icinga2`, `external_command` (Nagios 4, Naemon, Centreon Engine,
    /// openITCOCKPIT), `alertmanager`, `zabbix`, `zenoss`, `centreon` or `webhook`.
    pub kind: String,
    /// The sources whose problems live in this monitor: `[[sources]]` names or source kinds.
    /// Default: the kinds that monitor sends (`icinga2` for icinga2; `nagios`, `naemon`,
    /// `centreon_engine`, `openitcockpit` for external_command; and so on).
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Base URL of the monitor's API.
    #[serde(default)]
    pub url: Option<String>,
    /// API user (Icinga 2, Zenoss, Centreon, Alertmanager behind basic auth).
    #[serde(default)]
    pub username: Option<String>,
    /// That user's password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// API token (Zabbix, Centreon, a webhook's bearer token).
    #[serde(default)]
    pub token: Option<Secret>,
    /// The external command file (external_command).
    #[serde(default)]
    pub command_file: Option<PathBuf>,
    /// PEM file of the CAs that signed the monitor's certificate (Icinga 2's own CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (a lab; never in production).
    #[serde(default)]
    pub insecure_tls: bool,
    /// Per request to the monitor.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// What an acknowledgement in PagerDuty does: `acknowledge`, `comment` or `nothing`.
    #[serde(default)]
    pub on_acknowledge: Option<String>,
    /// What taking an acknowledgement back does: `unacknowledge`, `comment` or `nothing`.
    #[serde(default)]
    pub on_unacknowledge: Option<String>,
    /// What a note added in PagerDuty does: `comment` or `nothing`.
    #[serde(default)]
    pub on_annotate: Option<String>,
    /// What a resolve in PagerDuty does: `resolve` (close, where the monitor allows it),
    /// `comment` or `nothing`.
    #[serde(default)]
    pub on_resolve: Option<String>,
    /// Options of the kind; see docs/integrations.
    #[serde(default)]
    pub options: Option<toml::Value>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl MonitorConfig {
    /// The kind, once validated.
    pub fn writeback_kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::Webhook)
    }

    /// The sources whose problems this monitor holds.
    pub fn source_list(&self) -> Vec<String> {
        if let Some(s) = &self.sources {
            return s.clone();
        }
        let kinds: &[&str] = match self.writeback_kind() {
            Kind::Icinga2 => &["icinga2"],
            Kind::ExternalCommand => &["nagios", "naemon", "centreon_engine", "openitcockpit"],
            Kind::Alertmanager => &["alertmanager"],
            Kind::Zabbix => &["zabbix"],
            Kind::Zenoss => &["zenoss"],
            Kind::Centreon => &["centreon_broker"],
            Kind::Webhook => &[],
        };
        kinds.iter().map(|k| k.to_string()).collect()
    }

    /// What each change in PagerDuty does here: the kind's defaults, overridden field by field.
    pub fn policy(&self) -> Policy {
        let d = self.writeback_kind().default_policy();
        let pick = |v: &Option<String>, default| match v.as_deref() {
            None => default,
            Some(s) => parse_action(s).unwrap_or(default),
        };
        Policy {
            on_acknowledge: pick(&self.on_acknowledge, d.on_acknowledge),
            on_unacknowledge: pick(&self.on_unacknowledge, d.on_unacknowledge),
            on_annotate: pick(&self.on_annotate, d.on_annotate),
            on_resolve: pick(&self.on_resolve, d.on_resolve),
        }
    }

    /// The adapter's settings, secrets read (the configuration was checked at load).
    pub fn settings(&self) -> Settings {
        Settings {
            url: self.url.as_deref().and_then(|u| url::Url::parse(u).ok()),
            username: self.username.clone(),
            password: self.password.as_ref().map(|s| s.expose().to_owned()),
            token: self.token.as_ref().map(|s| s.expose().to_owned()),
            command_file: self.command_file.clone(),
            ca_file: self.ca_file.clone(),
            insecure_tls: self.insecure_tls,
            timeout: self.timeout.get(),
            options: self
                .options
                .as_ref()
                .map(|v| serde_json::to_value(v).unwrap_or_default())
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

/// `Some(None)` is `nothing`.
fn parse_action(s: &str) -> Option<Option<Action>> {
    Some(match s {
        "nothing" => None,
        "acknowledge" => Some(Action::Acknowledge),
        "unacknowledge" => Some(Action::Unacknowledge),
        "comment" => Some(Action::Comment),
        "resolve" => Some(Action::Resolve),
        _ => return None,
    })
}

pub(crate) fn validate(
    monitors: &mut [MonitorConfig],
    base_dir: &std::path::Path,
    v: &mut Validator<'_>,
) {
    let mut names = HashSet::new();
    for (i, m) in monitors.iter_mut().enumerate() {
        let at = |f: &str| format!("monitors[{i}].{f}");
        if m.name.is_empty()
            || !m
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            v.problem(
                &at("name"),
                format!("{:?} must be letters, digits, - and _", m.name),
            );
        } else if !names.insert(m.name.clone()) {
            v.problem(
                &at("name"),
                format!("{:?} is used by another monitor", m.name),
            );
        }
        let Some(kind) = Kind::parse(&m.kind) else {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            v.problem(
                &at("kind"),
                format!(
                    "{:?} is not a monitor kind; one of: {}",
                    m.kind,
                    kinds.join(", ")
                ),
            );
            continue;
        };
        v.secret(&at("password"), &mut m.password);
        v.secret(&at("token"), &mut m.token);
        for (field, value, allowed) in [
            (
                "on_acknowledge",
                &m.on_acknowledge,
                &["acknowledge", "comment", "nothing"][..],
            ),
            (
                "on_unacknowledge",
                &m.on_unacknowledge,
                &["unacknowledge", "comment", "nothing"][..],
            ),
            ("on_annotate", &m.on_annotate, &["comment", "nothing"][..]),
            (
                "on_resolve",
                &m.on_resolve,
                &["resolve", "comment", "nothing"][..],
            ),
        ] {
            let Some(value) = value else { continue };
            if !allowed.contains(&value.as_str()) {
                v.problem(
                    &at(field),
                    format!("{value:?} is not one of: {}", allowed.join(", ")),
                );
            } else if let Some(Some(action)) = parse_action(value)
                && !kind.supports(action)
            {
                v.problem(
                    &at(field),
                    format!("{} cannot {} a problem", kind.as_str(), action.as_str()),
                );
            }
        }
        if kind == Kind::Webhook && m.sources.as_ref().is_none_or(Vec::is_empty) {
            v.problem(
                &at("sources"),
                "a webhook monitor must name the sources whose problems it takes",
            );
        }
        for path in [&mut m.command_file, &mut m.ca_file].into_iter().flatten() {
            *path = crate::absolute(base_dir, path);
        }
        if let Some(u) = &m.url
            && url::Url::parse(u).is_err()
        {
            v.problem(&at("url"), format!("{u:?} is not a URL"));
            continue;
        }
        // Building reads the CA file: the daemon's business (see `Purpose::Enqueue`); and
        // with a secret that could not be read there is nothing to build.
        let unread = |s: &Option<Secret>| s.as_ref().is_some_and(|s| s.resolved().is_none());
        if !v.daemon() || unread(&m.password) || unread(&m.token) {
            continue;
        }
        if let Err(e) = writeback::build(kind, &m.settings()) {
            v.problem(&at(&e.field), e.message);
        }
    }
}
