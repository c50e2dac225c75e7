//! `[api]`: who may call the daemon's own HTTP API under `/api/v1`, and what they may do.

use std::collections::HashSet;

use serde::Deserialize;

use crate::secret::Secret;
use crate::validate::Validator;

/// Shortest token accepted: long enough that guessing one over HTTP is hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[api]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// `[[api.tokens]]`: the bearer tokens the API accepts, each with its scope. None: the API
    /// is off (its routes answer 404, except the OpenAPI document).
    pub tokens: Vec<ApiToken>,
}

/// One `[[api.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds the token (lowercase letters, digits, `-`, `_`): named in logs, never the token.
    pub name: String,
    /// The token callers send as `Authorization: Bearer <token>`; at least 16 characters.
    pub token: Secret,
    /// `read` (the GET routes) or `admin` (every route).
    pub scope: ApiScope,
}

/// What a token may do. `Admin` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiScope {
    /// Read incidents, services, maintenance windows, the queue and the incident map.
    Read,
    /// Also change them: create, acknowledge, resolve, note; retry and drop queued events.
    Admin,
}

impl ApiScope {
    /// `read` or `admin`, as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Admin => "admin",
        }
    }
}

impl ApiConfig {
    pub(crate) fn validate(&mut self, v: &mut Validator<'_>) {
        let mut names = HashSet::new();
        let mut values: Vec<(usize, String)> = Vec::new();
        for (i, t) in self.tokens.iter_mut().enumerate() {
            let at = |f: &str| format!("api.tokens[{i}].{f}");
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                v.problem(
                    &at("name"),
                    format!("{:?} must be lowercase letters, digits, - and _", t.name),
                );
            } else if !names.insert(t.name.clone()) {
                v.problem(
                    &at("name"),
                    format!("{:?} is the name of another token", t.name),
                );
            }
            let mut secret = Some(t.token.clone());
            v.secret(&at("token"), &mut secret);
            if let Some(resolved) = secret {
                t.token = resolved;
            }
            // Unread (another purpose than the daemon's, or reading failed, already reported).
            let Some(value) = t.token.resolved() else {
                continue;
            };
            if value.chars().count() < MIN_TOKEN_LEN {
                v.problem(
                    &at("token"),
                    format!("must be at least {MIN_TOKEN_LEN} characters long"),
                );
            } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
                // It travels in an HTTP header.
                v.problem(
                    &at("token"),
                    "must be printable ASCII without spaces (it is sent in a header)",
                );
            } else if let Some((other, _)) = values.iter().find(|(_, seen)| seen == value) {
                v.problem(
                    &at("token"),
                    format!("is the token of api.tokens[{other}] too; give each holder its own"),
                );
            } else {
                values.push((i, value.to_owned()));
            }
        }
    }
}
