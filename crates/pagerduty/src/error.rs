//! Errors, PagerDuty's error bodies, and the one place that decides what an outcome means:
//! delivered, final, or worth retrying (and after how long).

use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

/// Which PagerDuty API answered; it changes how some statuses read (v1 throttles with 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    EventsV2,
    ChangeEvents,
    EventsV1,
    Rest,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::EventsV2 => "PagerDuty's Events API v2",
            Api::ChangeEvents => "PagerDuty's Change Events API",
            Api::EventsV1 => "PagerDuty's Events API v1",
            Api::Rest => "PagerDuty's REST API",
        })
    }
}

/// What to do about an outcome, following PagerDuty's documented retry rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// 2xx: done.
    Success,
    /// 400 and other 4xx: retrying the same request cannot succeed.
    Final,
    /// 429, 5xx, timeouts and network errors. `after` is the delay PagerDuty asked for, if any.
    Retry { after: Option<Duration> },
}

/// PagerDuty's error body, in whichever of its shapes it came.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum ErrorBody {
    /// Events APIs: `{"status":"invalid event","message":"...","errors":[...]}`.
    Events {
        status: String,
        message: String,
        errors: Vec<String>,
    },
    /// REST API: `{"error":{"message":"...","code":2001,"errors":[...]}}`; `errors` may arrive as a
    /// string and `error` as an array, both normalised here.
    Rest {
        message: String,
        code: Option<i64>,
        errors: Vec<String>,
    },
    /// Anything else (HTML from a proxy, a bare-text 401, an unknown JSON shape), kept verbatim.
    Text {
        text: String,
    },
    Empty,
}

impl ErrorBody {
    /// Never fails: a body we cannot make sense of is kept as text so the operator still sees it.
    pub fn parse(body: &[u8]) -> ErrorBody {
        let text = String::from_utf8_lossy(body);
        if text.trim().is_empty() {
            return ErrorBody::Empty;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ErrorBody::Text {
                text: truncate(&text, 2048),
            };
        };
        if let Some(err) = v.get("error") {
            return match err {
                Value::Object(o) => ErrorBody::Rest {
                    message: o
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    code: o.get("code").and_then(Value::as_i64),
                    errors: strings(o.get("errors")),
                },
                Value::Array(_) | Value::String(_) => {
                    let errors = strings(Some(err));
                    ErrorBody::Rest {
                        message: errors.first().cloned().unwrap_or_default(),
                        code: None,
                        errors,
                    }
                }
                _ => ErrorBody::Text {
                    text: truncate(&text, 2048),
                },
            };
        }
        if v.get("status").is_some() || v.get("message").is_some() {
            return ErrorBody::Events {
                status: v
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                errors: strings(v.get("errors")),
            };
        }
        ErrorBody::Text {
            text: truncate(&text, 2048),
        }
    }

    /// PagerDuty's REST error code (2001, 2100, ...), when it sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ErrorBody::Rest { code, .. } => *code,
            _ => None,
        }
    }

    /// The detail strings PagerDuty listed (`errors`), e.g. `'payload.summary' is missing or blank`.
    pub fn errors(&self) -> &[String] {
        match self {
            ErrorBody::Events { errors, .. } | ErrorBody::Rest { errors, .. } => errors,
            _ => &[],
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorBody::Events {
                message, errors, ..
            } => {
                f.write_str(message)?;
                if !errors.is_empty() {
                    write!(f, ": {}", errors.join("; "))?;
                }
                Ok(())
            }
            ErrorBody::Rest {
                message,
                code,
                errors,
            } => {
                f.write_str(message)?;
                if let Some(code) = code {
                    write!(f, " (code {code})")?;
                }
                if !errors.is_empty() {
                    write!(f, ": {}", errors.join("; "))?;
                }
                Ok(())
            }
            ErrorBody::Text { text } => f.write_str(text),
            ErrorBody::Empty => f.write_str("(empty body)"),
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.to_string()],
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// PagerDuty's rate-limit headers, as read from any response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Seconds until the window resets.
    pub reset: Option<u64>,
}

impl RateLimit {
    pub fn from_headers(headers: &HeaderMap) -> RateLimit {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: num("ratelimit-limit"),
            remaining: num("ratelimit-remaining"),
            reset: num("ratelimit-reset"),
        }
    }
}

/// The delay a response asks for: `Retry-After` (seconds or an HTTP date) first, then
/// `ratelimit-reset`. `None` when neither is present or readable.
pub fn requested_delay(headers: &HeaderMap) -> Option<Duration> {
    if let Some(v) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(secs) = v.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(Duration::from_secs_f64(secs));
        }
        if let Some(at) = parse_http_date(v) {
            let now = jiff::Timestamp::now();
            let wait = at.duration_since(now);
            return Some(Duration::try_from(wait).unwrap_or(Duration::ZERO));
        }
    }
    RateLimit::from_headers(headers)
        .reset
        .map(Duration::from_secs)
}

fn parse_http_date(s: &str) -> Option<jiff::Timestamp> {
    // IMF-fixdate, the only form RFC 9110 requires senders to use.
    jiff::fmt::rfc2822::parse(s).ok().map(|z| z.timestamp())
}

/// Classifies a status code the way PagerDuty's documentation says to.
pub fn classify(api: Api, status: u16, headers: &HeaderMap) -> Disposition {
    match status {
        200..=299 => Disposition::Success,
        429 => Disposition::Retry {
            after: requested_delay(headers),
        },
        // Events v1 throttles with 403 instead of 429.
        403 if api == Api::EventsV1 => Disposition::Retry {
            after: requested_delay(headers),
        },
        // 408 means the request never reached the application; sending it again is safe.
        408 => Disposition::Retry {
            after: requested_delay(headers),
        },
        500..=599 => Disposition::Retry {
            after: requested_delay(headers),
        },
        _ => Disposition::Final,
    }
}

/// How a request failed before PagerDuty could answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Timeout,
    Connect,
    /// The connection broke after the request started (reset, closed early).
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PagerDuty answered with a non-2xx status.
    #[error("{api} answered HTTP {status}: {body}")]
    Api {
        api: Api,
        status: u16,
        /// Boxed: errors travel through `Result`s on every call, and most are never this one.
        body: Box<ErrorBody>,
        /// The delay PagerDuty asked for (`Retry-After`, `ratelimit-reset`).
        retry_after: Option<Duration>,
        rate_limit: RateLimit,
    },
    /// No answer: timeout, refused connection, dropped connection.
    #[error("no answer from PagerDuty ({kind:?}) at {url}: {message}")]
    Transport {
        kind: TransportKind,
        url: String,
        message: String,
    },
    /// A 2xx whose body is not what the API documents.
    #[error("PagerDuty answered HTTP {status} with a body that does not match its API: {detail}")]
    Decode {
        status: u16,
        detail: String,
        body: String,
    },
    /// Refused before sending: the request breaks a rule PagerDuty would reject anyway.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client could not be built (bad proxy URL, bad base URL).
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Api {
                api,
                status,
                retry_after,
                ..
            } => match classify(*api, *status, &HeaderMap::new()) {
                Disposition::Retry { .. } => Disposition::Retry {
                    after: *retry_after,
                },
                other => other,
            },
            Error::Transport { .. } => Disposition::Retry { after: None },
            // A 2xx means PagerDuty took the request; sending it again could duplicate it.
            Error::Decode { .. } => Disposition::Final,
            Error::InvalidRequest(_) | Error::Config(_) => Disposition::Final,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api { body, .. } => Some(body.as_ref()),
            _ => None,
        }
    }

    /// REST error code, e.g. 2100 for "not found" or 2006 for a bad token.
    pub fn code(&self) -> Option<i64> {
        self.body().and_then(ErrorBody::code)
    }

    pub(crate) fn from_reqwest(url: &str, e: reqwest::Error) -> Error {
        let kind = if e.is_timeout() {
            TransportKind::Timeout
        } else if e.is_connect() {
            TransportKind::Connect
        } else {
            TransportKind::Interrupted
        };
        Error::Transport {
            kind,
            url: url.to_owned(),
            message: error_chain(&e),
        }
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; operators need it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn parses_every_documented_and_observed_shape() {
        let rest = ErrorBody::parse(br#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["Status is invalid"]}}"#);
        assert_eq!(rest.code(), Some(2001));
        assert_eq!(rest.errors(), ["Status is invalid"]);
        // `errors` as a string, `error` as an array: both seen from the real API.
        let s = ErrorBody::parse(br#"{"error":{"message":"m","code":2002,"errors":"only one"}}"#);
        assert_eq!(s.errors(), ["only one"]);
        let a = ErrorBody::parse(br#"{"error":["a","b"]}"#);
        assert_eq!(a.errors(), ["a", "b"]);
        let ev = ErrorBody::parse(br#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is missing or blank"]}"#);
        assert!(matches!(ev, ErrorBody::Events { ref status, .. } if status == "invalid event"));
        assert_eq!(
            ev.to_string(),
            "Event object is invalid: 'payload.severity' is missing or blank"
        );
        // A bare-text 401, as some PagerDuty edges send.
        assert_eq!(
            ErrorBody::parse(b"Unauthorized"),
            ErrorBody::Text {
                text: "Unauthorized".into()
            }
        );
        assert_eq!(ErrorBody::parse(b"  "), ErrorBody::Empty);
    }

    #[test]
    fn classification_follows_pagerduty_rules() {
        let h = HeaderMap::new();
        assert_eq!(classify(Api::EventsV2, 202, &h), Disposition::Success);
        assert_eq!(classify(Api::EventsV2, 400, &h), Disposition::Final);
        assert_eq!(classify(Api::Rest, 404, &h), Disposition::Final);
        assert_eq!(classify(Api::EventsV2, 403, &h), Disposition::Final);
        assert_eq!(
            classify(Api::EventsV1, 403, &h),
            Disposition::Retry { after: None }
        );
        assert_eq!(
            classify(Api::EventsV2, 503, &h),
            Disposition::Retry { after: None }
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            classify(Api::EventsV2, 429, &h),
            Disposition::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn delay_prefers_retry_after_then_ratelimit_reset() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(requested_delay(&h), Some(Duration::from_secs(12)));
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(requested_delay(&h), Some(Duration::from_secs(3)));
        let mut h = HeaderMap::new();
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&future)
            .unwrap();
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let d = requested_delay(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(requested_delay(&h), None);
    }

    #[test]
    fn error_disposition_uses_the_delay_from_the_response() {
        let e = Error::Api {
            api: Api::EventsV2,
            status: 429,
            body: Box::new(ErrorBody::Empty),
            retry_after: Some(Duration::from_secs(9)),
            rate_limit: RateLimit::default(),
        };
        assert_eq!(
            e.disposition(),
            Disposition::Retry {
                after: Some(Duration::from_secs(9))
            }
        );
        let e = Error::Transport {
            kind: TransportKind::Timeout,
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(e.disposition(), Disposition::Retry { after: None });
    }
}
