//! The accept loop and the middleware shared by the API routes: fault injection and the
//! exchange recorder used by the contract tests.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::Shared;
use crate::faults::{FaultKind, Scope};

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy)]
pub(crate) struct DropConnection;

/// The error a connection's service returns to make hyper close it without answering.
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedOnPurpose {}

/// Serves until `stop` fires, then closes every open connection at once (an outage, not a
/// graceful drain: that is what the emulator stopping is used to simulate).
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow with every request.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        conns.spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let resp = router
                            .oneshot(req.map(Body::new))
                            .await
                            .unwrap_or_else(|e: Infallible| match e {});
                        if resp.extensions().get::<DropConnection>().is_some() {
                            Err(DroppedOnPurpose)
                        } else {
                            Ok(resp)
                        }
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    conns.abort_all();
}

pub(crate) fn scope_of(path: &str) -> Scope {
    if path.starts_with("/v2/") || path.starts_with("/generic/") {
        Scope::Events
    } else {
        Scope::Rest
    }
}

/// The body PagerDuty's Events API answers when throttling (observed wording).
pub(crate) fn events_throttle_body() -> serde_json::Value {
    json!({
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly.  Please retry later.",
    })
}

pub(crate) fn rest_rate_limit_body() -> serde_json::Value {
    json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}})
}

pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        serde_json::to_vec(body).expect("JSON values serialise"),
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

pub(crate) async fn faults_layer(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let scope = scope_of(req.uri().path());
    let Some(fault) = shared.faults.take(scope) else {
        return next.run(req).await;
    };
    tracing::debug!(path = %req.uri().path(), ?fault, "injecting fault");
    let with_retry_after = |mut resp: Response| {
        if let Some(s) = fault.retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_str(&s.to_string()).expect("digits are a valid header"),
            );
        }
        resp
    };
    match fault.kind {
        FaultKind::Drop => {
            let mut resp = Response::new(Body::empty());
            resp.extensions_mut().insert(DropConnection);
            resp
        }
        FaultKind::DropAfter => {
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(DropConnection);
            resp
        }
        FaultKind::Delay => {
            tokio::time::sleep(fault.delay()).await;
            next.run(req).await
        }
        FaultKind::RateLimit => {
            let v1 = req.uri().path().starts_with("/generic/");
            let resp = match scope {
                // Events v1 throttles with 403.
                Scope::Events if v1 => json_response(403, &events_throttle_body()),
                Scope::Events => json_response(429, &events_throttle_body()),
                _ => json_response(429, &rest_rate_limit_body()),
            };
            with_retry_after(resp)
        }
        FaultKind::Status => {
            let status = fault.status.unwrap_or(500);
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let body = match scope {
                // A 400 in PagerDuty's documented invalid-event shape, other codes as errors.
                Scope::Events if status == 400 => json!({
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["rejected by an injected fault"],
                }),
                Scope::Events => json!({"status": "error", "message": reason}),
                _ => json!({"error": {"message": reason, "code": 2000 + (status as i64 % 100)}}),
            };
            with_retry_after(json_response(status, &body))
        }
    }
}

/// Every API request at debug level: what arrived and what the emulator answered. Bodies of
/// events are logged by the events routes, with what they did.
pub(crate) async fn log_layer(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let from = req
        .headers()
        .get("from")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        from = from.as_deref().unwrap_or(""),
        status = resp.status().as_u16(),
        dropped = resp.extensions().get::<DropConnection>().is_some(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

/// One API request and the emulator's answer, as a client received it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// Path and query as requested.
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

pub(crate) async fn record_layer(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(store) = &shared.exchanges else {
        return next.run(req).await;
    };
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let resp = next.run(req).await;
    if resp.extensions().get::<DropConnection>().is_some() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Exchange {
            method,
            path,
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: bytes.to_vec(),
        });
    Response::from_parts(parts, Body::from(bytes))
}

/// The one `{id}`-like parameter of a path. Axum's `Path` answers an id that is not UTF-8 once
/// percent-decoded with a plain-text 400 before the handler runs; PagerDuty answers JSON, after
/// authentication. No PagerDuty id contains `%`, so such an id is kept as sent and looked up like
/// any other: not found.
pub(crate) struct Id(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Ok(axum::extract::Path(id)) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await
        {
            return Ok(Id(id));
        }
        // The raw segment at the position of the `{...}` segment of the matched route.
        let position = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|m| m.as_str().split('/').position(|seg| seg.starts_with('{')));
        let raw = position
            .and_then(|i| parts.uri.path().split('/').nth(i))
            .unwrap_or_default();
        Ok(Id(raw.to_owned()))
    }
}

/// A method a known path does not serve, answered in PagerDuty's error shape (2001: PagerDuty's
/// code for input it cannot act on).
pub(crate) async fn method_not_allowed(method: axum::http::Method) -> Response {
    json_response(
        405,
        &json!({"error": {"message": "Method Not Allowed", "code": 2001,
            "errors": [format!("{method} is not supported on this path")]}}),
    )
}
