//! `[[sources]]`: the monitors that post to pagerbridge, each on its own route.

use std::collections::HashSet;

use pagerbridge_ingest::Decoder;
use pagerbridge_model::SourceKind;
use serde::Deserialize;

use crate::secret::Secret;
use crate::validate::Validator;

/// Paths the daemon serves itself; a source cannot take them.
const RESERVED: &[&str] = &[
    "/v2/",
    "/generic/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/",
    "/webhooks/",
];

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name, used in logs and as the default route (`/ingest/<name>`).
    pub name: String,
    /// The monitor: `alertmanager`, `grafana`, `guance`, `zabbix`, `centreon_broker`,
    /// `zenoss`, `generic`, or a Nagios-family kind (`icinga2`, `nagios`, `naemon`,
    /// `centreon_engine`, `openitcockpit`) for a JSON route of macros.
    pub kind: String,
    /// The route the monitor posts to; default `/ingest/<name>`.
    #[serde(default)]
    pub path: Option<String>,
    /// Who may post: a bearer token, or an HMAC of the body. Default: anyone who can reach the
    /// daemon.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Options of the kind (alertmanager, centreon_broker); see docs/integrations.
    #[serde(default)]
    pub options: Option<toml::Value>,
    /// The mapping of a generic source; see docs/integrations/generic-json.md.
    #[serde(default)]
    pub mapping: Option<toml::Value>,
}

/// `auth` of a source: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `Authorization: Bearer <token>` must carry this token.
    #[serde(default)]
    pub bearer: Option<Secret>,
    /// A header must carry the HMAC-SHA256 of the body.
    #[serde(default)]
    pub hmac: Option<HmacConfig>,
}

/// HMAC authentication of a source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// The shared secret.
    pub secret: Secret,
    /// The header carrying the signature (default `X-Signature`).
    #[serde(default = "default_header")]
    pub header: String,
    /// What precedes the hex signature in the header, such as `sha256=` (default none).
    #[serde(default)]
    pub prefix: String,
}

fn default_header() -> String {
    "X-Signature".into()
}

impl SourceConfig {
    /// The route, `/ingest/<name>` unless set.
    pub fn route(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("/ingest/{}", self.name))
    }

    /// The kind, once validated.
    pub fn source_kind(&self) -> SourceKind {
        SourceKind::parse(&self.kind).unwrap_or(SourceKind::Generic)
    }

    /// The decoder with its options (the configuration was checked at load).
    pub fn decoder(&self) -> Result<Decoder, String> {
        let json = |v: &Option<toml::Value>| {
            v.as_ref()
                .map(|v| serde_json::to_value(v).unwrap_or_default())
        };
        Decoder::build(
            self.source_kind(),
            json(&self.options).as_ref(),
            json(&self.mapping).as_ref(),
        )
        .map_err(|e| format!("{}: {}", e.field, e.message))
    }
}

pub(crate) fn validate(sources: &mut [SourceConfig], v: &mut Validator<'_>) {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, s) in sources.iter_mut().enumerate() {
        let at = |f: &str| format!("sources[{i}].{f}");
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            v.problem(
                &at("name"),
                format!("{:?} must be letters, digits, - and _", s.name),
            );
        } else if !names.insert(s.name.clone()) {
            v.problem(
                &at("name"),
                format!("{:?} is used by another source", s.name),
            );
        }
        let kind = SourceKind::parse(&s.kind);
        match kind {
            None | Some(SourceKind::Pagerduty) => v.problem(
                &at("kind"),
                format!(
                    "{:?} is not a source kind; one of: {}",
                    s.kind,
                    SourceKind::ALL
                        .iter()
                        .filter(|k| **k != SourceKind::Pagerduty)
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(_) => {
                if let Err(message) = s.decoder() {
                    let field = message.split(':').next().unwrap_or("options").to_owned();
                    let text = message
                        .split_once(": ")
                        .map_or(message.as_str(), |(_, m)| m)
                        .to_owned();
                    v.problem(&at(&field), text);
                }
            }
        }
        let route = s.route();
        if !route.starts_with('/') || route.contains(char::is_whitespace) || route.contains('?') {
            v.problem(
                &at("path"),
                format!("{route:?} must be a path starting with /"),
            );
        } else if RESERVED
            .iter()
            .any(|r| route.starts_with(r) || route == r.trim_end_matches('/'))
        {
            v.problem(
                &at("path"),
                format!("{route:?} is a route of pagerbridge itself"),
            );
        } else if !paths.insert(route.clone()) {
            v.problem(
                &at("path"),
                format!("{route:?} is the route of another source"),
            );
        }
        if let Some(auth) = &mut s.auth {
            match (auth.bearer.is_some(), auth.hmac.as_mut()) {
                (true, None) => v.secret(&at("auth.bearer"), &mut auth.bearer),
                (false, Some(h)) => {
                    let mut secret = Some(h.secret.clone());
                    v.secret(&at("auth.hmac.secret"), &mut secret);
                    if let Some(resolved) = secret {
                        h.secret = resolved;
                    }
                    if h.header.trim().is_empty() || http_header_invalid(&h.header) {
                        v.problem(
                            &at("auth.hmac.header"),
                            format!("{:?} is not a header name", h.header),
                        );
                    }
                }
                _ => v.problem(&at("auth"), "give exactly one of bearer or hmac"),
            }
        }
    }
}

fn http_header_invalid(name: &str) -> bool {
    !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
