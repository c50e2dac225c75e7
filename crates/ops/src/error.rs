//! What went wrong with an operation, sorted the way a caller acts on it.
//!
//! The CLI turns the kind into its documented exit code, the daemon's API into an HTTP status;
//! the message is the same for both and names the field or the id at fault.

use pagerduty::Error as PdError;

/// What the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The input is wrong (a flag, a field, a missing From): fix it and try again.
    BadInput,
    /// PagerDuty refused the API token (or it is missing): fix the credentials.
    Auth,
    /// No such incident, service or window.
    NotFound,
    /// PagerDuty did not answer, answered 5xx, or kept rate limiting past the wait budget:
    /// try again later.
    Unavailable,
    /// Anything else (an answer that does not match PagerDuty's API, ...).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{message}")]
pub struct OpError {
    pub kind: Kind,
    /// `error` in JSON, as the daemon's API names it.
    #[serde(rename = "error")]
    pub message: String,
    /// The input field at fault, when one is (`title`, `service`, `from`, `ids[3]`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// PagerDuty's own messages, when it refused the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_errors: Vec<String>,
    /// Seconds PagerDuty asked to wait before trying again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl OpError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        OpError {
            kind,
            message: message.into(),
            field: None,
            pagerduty_errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Bad input in `field`; the message should name it too.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        OpError {
            field: Some(field),
            ..OpError::new(Kind::BadInput, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        OpError::new(Kind::NotFound, message)
    }

    /// A PagerDuty error, `doing` saying what was attempted ("acknowledging Q1ABC").
    pub fn from_pagerduty(doing: &str, e: &PdError) -> Self {
        let pd_errors = e.body().map(|b| b.errors().to_vec()).unwrap_or_default();
        let retry_after = match e {
            PdError::Api { retry_after, .. } => retry_after.map(|d| d.as_secs().max(1)),
            _ => None,
        };
        let kind = match e {
            PdError::Api { status, .. } => match status {
                400 | 413 | 422 => Kind::BadInput,
                401 | 403 => Kind::Auth,
                404 => Kind::NotFound,
                408 | 429 | 500..=599 => Kind::Unavailable,
                _ => Kind::Failed,
            },
            PdError::Transport { .. } => Kind::Unavailable,
            PdError::InvalidRequest(_) => Kind::BadInput,
            PdError::Decode { .. } | PdError::Config(_) => Kind::Failed,
        };
        let what = match (kind, e.status()) {
            (Kind::Auth, Some(s)) => format!(
                "PagerDuty refused the API token (HTTP {s}); check pagerduty.api_token or \
                 PAGERDUTY_API_TOKEN"
            ),
            (Kind::Unavailable, Some(429)) => match retry_after {
                Some(s) => format!("still rate limited by PagerDuty; try again in {s} s"),
                None => "still rate limited by PagerDuty; try again later".to_owned(),
            },
            _ => e.to_string(),
        };
        // PagerDuty names the offending field in its messages ("Incident Key ...", "From
        // header ..."); keep them in the one-line message too.
        let mut message = format!("{doing}: {what}");
        if kind == Kind::BadInput && !pd_errors.is_empty() && !message.contains(&pd_errors[0]) {
            message = format!("{message} ({})", pd_errors.join("; "));
        }
        OpError {
            kind,
            message,
            field: None,
            pagerduty_errors: pd_errors,
            // PagerDuty's rate-limit headers come with every answer; a wait only means
            // something when trying again later is the remedy.
            retry_after: retry_after.filter(|_| kind == Kind::Unavailable),
        }
    }

    /// The exit code the CLI documents for this kind.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Failed => 1,
            Kind::BadInput => 2,
            Kind::Unavailable => 3,
            Kind::NotFound => 4,
            Kind::Auth => 5,
        }
    }

    /// The HTTP status the daemon's API answers with. PagerDuty refusing the daemon's own token
    /// is the daemon's problem, not its caller's: 502.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            Kind::BadInput => 400,
            Kind::NotFound => 404,
            Kind::Auth => 502,
            Kind::Unavailable => 503,
            Kind::Failed => 502,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagerduty::{Api, ErrorBody, RateLimit};
    use std::time::Duration;

    fn api(status: u16, body: &[u8], after: Option<u64>) -> PdError {
        PdError::Api {
            api: Api::Rest,
            status,
            body: Box::new(ErrorBody::parse(body)),
            retry_after: after.map(Duration::from_secs),
            rate_limit: RateLimit::default(),
        }
    }

    #[test]
    fn kinds_follow_pagerdutys_status() {
        let cases = [
            (400, 2),
            (401, 5),
            (403, 5),
            (404, 4),
            (429, 3),
            (502, 3),
            (409, 1),
        ];
        for (status, code) in cases {
            let e = OpError::from_pagerduty("x", &api(status, b"", None));
            assert_eq!(e.exit_code(), code, "HTTP {status}");
        }
    }

    #[test]
    fn keeps_pagerdutys_messages_and_the_wait() {
        let body = br#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["From header is missing"]}}"#;
        let e = OpError::from_pagerduty("acknowledging Q1", &api(400, body, None));
        assert_eq!(e.pagerduty_errors, ["From header is missing"]);
        assert!(
            e.message.contains("From header is missing"),
            "{}",
            e.message
        );
        let e = OpError::from_pagerduty("listing", &api(429, b"", Some(12)));
        assert_eq!(e.retry_after, Some(12));
        assert!(e.message.contains("try again in 12 s"), "{}", e.message);
    }
}
