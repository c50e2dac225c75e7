//! The emulator's starting state: services and their integration keys, users, API tokens,
//! maintenance windows, webhook subscriptions and settings, read from a TOML or JSON file.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The demo account's Events API v2 integration key (on "Demo Service").
pub const DEMO_ROUTING_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// A second service, so routing can be tried with two keys.
pub const DEMO_DB_ROUTING_KEY: &str = "0f9e8d7c6b5a49382716a5b4c3d2e1f0";
/// A legacy Events API v1 key on "Demo Service".
pub const DEMO_V1_SERVICE_KEY: &str = "5e1f1ce0a1b2c3d4e5f60718293a4b5c";
/// The demo account-level REST API token (needs a `From` header on writes, like PagerDuty's).
pub const DEMO_API_TOKEN: &str = "emulator-account-token";
/// The demo user's email, to put in `From`.
pub const DEMO_USER_EMAIL: &str = "ada@example.com";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
    #[serde(default)]
    pub services: Vec<SeedService>,
    #[serde(default)]
    pub maintenance_windows: Vec<SeedWindow>,
    #[serde(default)]
    pub webhook_subscriptions: Vec<SeedSubscription>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Events accepted per integration key per 60 s before 429; 0 turns the limit off
    /// (benchmarks). PagerDuty's documented figure is about 120.
    pub events_per_minute: u32,
    /// REST requests per token per 60 s before 429; 0 turns the limit off. PagerDuty: 960.
    pub rest_requests_per_minute: u32,
    /// How often a failing webhook delivery is tried before it is given up.
    pub webhook_max_attempts: u32,
    /// First retry delay of a failing webhook delivery, doubled each attempt (capped at 60 s).
    pub webhook_retry_base_ms: u64,
    /// Per-attempt timeout of a webhook delivery. PagerDuty waits about 5 s.
    pub webhook_timeout_ms: u64,
    /// Oldest received events are forgotten beyond this many (the admin log, not incidents).
    pub max_received_events: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            events_per_minute: 120,
            rest_requests_per_minute: 960,
            webhook_max_attempts: 10,
            webhook_retry_base_ms: 1000,
            webhook_timeout_ms: 5000,
            max_received_events: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub email: String,
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "admin".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Account-level key: writes need a `From` header naming a user.
    #[default]
    Account,
    /// A user's own key: writes act as that user.
    User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedToken {
    pub token: String,
    #[serde(default)]
    pub kind: TokenKind,
    /// Email of the owning user (user tokens only).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgencyRule {
    #[default]
    High,
    Low,
    /// critical/error -> high, warning/info -> low.
    SeverityBased,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedService {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub urgency: UrgencyRule,
    /// Email of the user new incidents are assigned to; the first user when absent.
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub integrations: Vec<SeedIntegration>,
}

impl SeedService {
    /// A service with one Events API v2 integration key and every other setting at its default.
    pub fn new(name: impl Into<String>, routing_key: impl Into<String>) -> Self {
        SeedService {
            id: None,
            name: name.into(),
            description: None,
            disabled: false,
            urgency: UrgencyRule::High,
            assignee: None,
            integrations: vec![SeedIntegration {
                key: routing_key.into(),
                kind: IntegrationKind::EventsApiV2,
                name: None,
            }],
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    #[default]
    EventsApiV2,
    /// Legacy "Generic API" (Events v1).
    GenericEventsApi,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIntegration {
    pub key: String,
    #[serde(default)]
    pub kind: IntegrationKind,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWindow {
    /// Service names or ids.
    pub services: Vec<String>,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookVersion {
    #[default]
    V3,
    /// The legacy "Generic V2 Webhook" body (`{"messages":[...]}`), unsigned.
    V2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSubscription {
    pub url: String,
    /// Signing secret; generated when absent (and shown by `GET /_emulator/state`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Event types to deliver; all incident events when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only incidents of this service (name or id); the whole account when absent.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub version: WebhookVersion,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("seed file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("seed: {0}")]
    Invalid(String),
}

impl Seed {
    /// Reads a `.toml` or `.json` seed file. TOML errors carry the line and column.
    pub fn load(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parsed = if path.extension().and_then(|e| e.to_str()) == Some("json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let seed: Seed = parsed.map_err(|message| SeedError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// The account `pagerbridge emulator` starts with when given no seed file.
    pub fn demo() -> Seed {
        Seed {
            settings: Settings::default(),
            users: vec![
                SeedUser {
                    id: Some("PADA001".into()),
                    name: "Ada Operator".into(),
                    email: DEMO_USER_EMAIL.into(),
                    role: "admin".into(),
                },
                SeedUser {
                    id: Some("PBOB002".into()),
                    name: "Bob Responder".into(),
                    email: "bob@example.com".into(),
                    role: "user".into(),
                },
            ],
            tokens: vec![
                SeedToken {
                    token: DEMO_API_TOKEN.into(),
                    kind: TokenKind::Account,
                    user: None,
                    read_only: false,
                },
                SeedToken {
                    token: "emulator-bob-token".into(),
                    kind: TokenKind::User,
                    user: Some("bob@example.com".into()),
                    read_only: false,
                },
                SeedToken {
                    token: "emulator-read-only-token".into(),
                    kind: TokenKind::Account,
                    user: None,
                    read_only: true,
                },
            ],
            services: vec![
                SeedService {
                    id: Some("PDEMO01".into()),
                    name: "Demo Service".into(),
                    description: Some("Where the README's first curl lands".into()),
                    disabled: false,
                    urgency: UrgencyRule::High,
                    assignee: None,
                    integrations: vec![
                        SeedIntegration {
                            key: DEMO_ROUTING_KEY.into(),
                            kind: IntegrationKind::EventsApiV2,
                            name: Some("pagerbridge".into()),
                        },
                        SeedIntegration {
                            key: DEMO_V1_SERVICE_KEY.into(),
                            kind: IntegrationKind::GenericEventsApi,
                            name: Some("legacy v1".into()),
                        },
                    ],
                },
                SeedService {
                    id: Some("PDEMO02".into()),
                    name: "Database".into(),
                    description: Some("A second service for routing rules".into()),
                    disabled: false,
                    urgency: UrgencyRule::SeverityBased,
                    assignee: Some("bob@example.com".into()),
                    integrations: vec![SeedIntegration {
                        key: DEMO_DB_ROUTING_KEY.into(),
                        kind: IntegrationKind::EventsApiV2,
                        name: Some("pagerbridge".into()),
                    }],
                },
            ],
            maintenance_windows: Vec::new(),
            webhook_subscriptions: Vec::new(),
        }
    }

    /// Cross-field checks that serde cannot express; names the offending entry.
    pub fn validate(&self) -> Result<(), SeedError> {
        let mut keys = std::collections::HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            for (j, integ) in s.integrations.iter().enumerate() {
                if integ.key.is_empty() {
                    return Err(SeedError::Invalid(format!(
                        "services[{i}].integrations[{j}].key is empty"
                    )));
                }
                // The events validators refuse any other key before it reaches the service, so
                // such an integration could never receive an event.
                let alphanumeric = integ.key.chars().all(|c| c.is_ascii_alphanumeric());
                if integ.key.chars().count() != pagerduty::events::ROUTING_KEY_LEN
                    || (integ.kind == IntegrationKind::EventsApiV2 && !alphanumeric)
                {
                    return Err(SeedError::Invalid(format!(
                        "services[{i}].integrations[{j}].key {:?} is not a 32-character integration key \
                         (letters and digits only for events_api_v2), so no event could use it",
                        integ.key
                    )));
                }
                if !keys.insert(integ.key.as_str()) {
                    return Err(SeedError::Invalid(format!(
                        "services[{i}].integrations[{j}].key {:?} is used twice",
                        integ.key
                    )));
                }
            }
            if let Some(a) = &s.assignee
                && !self.users.iter().any(|u| &u.email == a)
            {
                return Err(SeedError::Invalid(format!(
                    "services[{i}].assignee {a:?} is not the email of a seeded user"
                )));
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            match (&t.kind, &t.user) {
                (TokenKind::User, None) => {
                    return Err(SeedError::Invalid(format!(
                        "tokens[{i}] is a user token without `user`"
                    )));
                }
                (TokenKind::User, Some(u)) if !self.users.iter().any(|x| &x.email == u) => {
                    return Err(SeedError::Invalid(format!(
                        "tokens[{i}].user {u:?} is not the email of a seeded user"
                    )));
                }
                _ => {}
            }
        }
        let service_known = |name: &String| {
            self.services
                .iter()
                .any(|s| &s.name == name || s.id.as_ref() == Some(name))
        };
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            for s in &w.services {
                if !service_known(s) {
                    return Err(SeedError::Invalid(format!(
                        "maintenance_windows[{i}].services: no service named {s:?}"
                    )));
                }
            }
            for (field, v) in [("start", &w.start), ("end", &w.end)] {
                if v.parse::<jiff::Timestamp>().is_err() {
                    return Err(SeedError::Invalid(format!(
                        "maintenance_windows[{i}].{field} {v:?} is not an RFC 3339 time"
                    )));
                }
            }
        }
        for (i, s) in self.webhook_subscriptions.iter().enumerate() {
            if url::Url::parse(&s.url).is_err() {
                return Err(SeedError::Invalid(format!(
                    "webhook_subscriptions[{i}].url {:?} is not a URL",
                    s.url
                )));
            }
            if let Some(svc) = &s.service
                && !service_known(svc)
            {
                return Err(SeedError::Invalid(format!(
                    "webhook_subscriptions[{i}].service: no service named {svc:?}"
                )));
            }
        }
        Ok(())
    }
}
