//! Every error of the API, as one JSON shape:
//! `{"error": "<message>", "kind": "...", "field": "...", "pagerduty_errors": [...]}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pagerbridge_ops::{Kind, OpError};
use pagerbridge_store::StoreError;
use serde_json::{Map, Value};

/// What went wrong, as the caller acts on it (`kind` in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A parameter or a body field is wrong: `field` names it.
    BadInput,
    /// No bearer token, or not one of `[[api.tokens]]`.
    Unauthorized,
    /// The token's scope does not cover the route.
    Forbidden,
    /// No such incident, service, event or map row.
    NotFound,
    /// No route at this path.
    NoRoute,
    /// No `[[api.tokens]]`: the API is off.
    ApiOff,
    MethodNotAllowed,
    /// Nothing could be done to any of the ids given (a retry of events that are not dead).
    Conflict,
    TooLarge,
    /// PagerDuty refused the daemon's own API token.
    PagerdutyAuth,
    /// PagerDuty (or the store) cannot answer now: try again later (`Retry-After` when known).
    Unavailable,
    /// The route needs `pagerduty.api_token`, which the configuration does not set.
    NotConfigured,
    /// Anything else: an answer from PagerDuty that does not fit its API, a storage error.
    Failed,
}

impl ErrorKind {
    /// Every kind, for the OpenAPI document.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::BadInput,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::NoRoute,
        ErrorKind::ApiOff,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::PagerdutyAuth,
        ErrorKind::Unavailable,
        ErrorKind::NotConfigured,
        ErrorKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::ApiOff => "api_off",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::PagerdutyAuth => "pagerduty_auth",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotConfigured => "not_configured",
            ErrorKind::Failed => "failed",
        }
    }

    fn of(kind: Kind) -> ErrorKind {
        match kind {
            Kind::BadInput => ErrorKind::BadInput,
            Kind::Auth => ErrorKind::PagerdutyAuth,
            Kind::NotFound => ErrorKind::NotFound,
            Kind::Unavailable => ErrorKind::Unavailable,
            Kind::Failed => ErrorKind::Failed,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
    pub field: Option<String>,
    pub pagerduty_errors: Vec<String>,
    /// Seconds to wait before trying again (also sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// More members of the body (a bulk report's `updated` and `failed`); boxed, as rare.
    pub extra: Option<Box<Map<String, Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            pagerduty_errors: Vec::new(),
            retry_after: None,
            extra: None,
        }
    }

    /// Bad input in `field`; the message names it too.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::BadInput, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra
            .get_or_insert_default()
            .insert(key.to_owned(), value);
        self
    }

    /// The body, as the OpenAPI document's `Error` schema describes it.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(self.message.as_str()));
        body.insert("kind".into(), Value::from(self.kind.as_str()));
        if let Some(f) = &self.field {
            body.insert("field".into(), Value::from(f.as_str()));
        }
        if !self.pagerduty_errors.is_empty() {
            body.insert(
                "pagerduty_errors".into(),
                Value::from(self.pagerduty_errors.clone()),
            );
        }
        if let Some(s) = self.retry_after {
            body.insert("retry_after".into(), Value::from(s));
        }
        for (k, v) in self.extra.iter().flat_map(|m| m.iter()) {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        ApiError {
            status,
            kind: ErrorKind::of(e.kind),
            message: e.message,
            field: e.field,
            pagerduty_errors: e.pagerduty_errors,
            retry_after: e.retry_after,
            extra: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let (status, kind) = match &e {
            StoreError::Full(_) | StoreError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unavailable)
            }
            StoreError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorKind::BadInput),
            StoreError::Other(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Failed),
        };
        ApiError::new(status, kind, format!("the outbox: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        let headers = resp.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pagerbridge\""),
            );
        }
        resp
    }
}
