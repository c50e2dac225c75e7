//! PagerDuty's changes coming in: the Webhooks v3 route (signed) and the legacy Generic V2
//! route (a secret in the URL). A delivery is verified, stored in the inbox (once per webhook
//! id: PagerDuty retries with the same one) and answered at once; planning and writing back
//! happen afterwards, from the store, so the answer stays far under PagerDuty's 5 s.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use pagerbridge_store::{Received, SyncStore};
use pagerbridge_sync::worker::Sync;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::metrics::{Hook, HookResult, Metrics};

/// The webhook routes' shared state.
pub struct Webhooks {
    pub store: Arc<dyn SyncStore>,
    pub sync: Arc<Sync>,
    /// Webhooks v3 signing secrets; the v3 route exists only when there are some.
    pub secrets: Vec<String>,
    pub v3_path: String,
    /// The legacy route's secret; the route exists only when set.
    pub legacy_secret: Option<String>,
    pub metrics: Arc<Metrics>,
}

pub const LEGACY_PREFIX: &str = "/webhooks/pagerduty-v2";

pub fn routes(w: Arc<Webhooks>) -> Router {
    let mut r = Router::new();
    if !w.secrets.is_empty() {
        r = r.route(&w.v3_path, post(v3));
    }
    if w.legacy_secret.is_some() {
        r = r.route(&format!("{LEGACY_PREFIX}/{{secret}}"), post(legacy));
    }
    r.with_state(w)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refuse(status: StatusCode, field: &str, error: impl Into<String>) -> Response {
    answer(
        status,
        json!({"status": "refused", "field": field, "error": error.into()}),
    )
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "cannot store a PagerDuty webhook; PagerDuty will retry");
    // 5xx: PagerDuty retries it, for up to 48 hours.
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "error": format!("not stored: {e}")}),
    )
}

async fn v3(State(w): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    let (response, result) = v3_answer(&w, &headers, &body).await;
    w.metrics.webhook(Hook::V3, result);
    response
}

async fn v3_answer(w: &Webhooks, headers: &HeaderMap, body: &Bytes) -> (Response, HookResult) {
    let invalid = |r: Response| (r, HookResult::Invalid);
    let signature = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = pagerduty::webhook::verify(signature, body, &w.secrets) {
        tracing::warn!(error = %e, "refused a webhook delivery: bad signature");
        let r = refuse(
            StatusCode::UNAUTHORIZED,
            "X-PagerDuty-Signature",
            e.to_string(),
        );
        return (r, HookResult::BadSignature);
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return invalid(refuse(
                StatusCode::BAD_REQUEST,
                "body",
                format!("not JSON: {e}"),
            ));
        }
    };
    if !v["event"].is_object() {
        return invalid(refuse(
            StatusCode::BAD_REQUEST,
            "event",
            "missing: a Webhooks v3 body is {\"event\": {...}}",
        ));
    }
    let id = headers
        .get("x-webhook-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| v["event"]["id"].as_str().map(|s| format!("event:{s}")));
    let Some(id) = id else {
        return invalid(refuse(
            StatusCode::BAD_REQUEST,
            "X-Webhook-Id",
            "missing, and the event has no id to use instead",
        ));
    };
    match w
        .store
        .receive("webhook_v3", &id, body, Timestamp::now())
        .await
    {
        Ok(Received::New(_)) => {
            w.metrics.write_ok();
            w.sync.wake();
            (
                answer(StatusCode::ACCEPTED, json!({"status": "accepted"})),
                HookResult::Accepted,
            )
        }
        Ok(Received::Duplicate) => (
            answer(
                StatusCode::OK,
                json!({"status": "duplicate", "detail": format!("webhook {id} was received before")}),
            ),
            HookResult::Duplicate,
        ),
        Err(e) => {
            w.metrics.write_failed(&e);
            (unavailable(e), HookResult::Unavailable)
        }
    }
}

async fn legacy(
    State(w): State<Arc<Webhooks>>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    let (response, result) = legacy_answer(&w, &secret, &body).await;
    w.metrics.webhook(Hook::V2, result);
    response
}

async fn legacy_answer(w: &Webhooks, secret: &str, body: &Bytes) -> (Response, HookResult) {
    let invalid = |r: Response| (r, HookResult::Invalid);
    let expected = w.legacy_secret.as_deref().unwrap_or_default();
    // Constant time: the secret is the route's only protection.
    if expected.is_empty() || !bool::from(secret.as_bytes().ct_eq(expected.as_bytes())) {
        tracing::warn!("refused a legacy V2 webhook delivery: wrong secret in the URL");
        let r = refuse(StatusCode::UNAUTHORIZED, "path", "wrong secret");
        return (r, HookResult::BadSignature);
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return invalid(refuse(
                StatusCode::BAD_REQUEST,
                "body",
                format!("not JSON: {e}"),
            ));
        }
    };
    let Some(messages) = v["messages"].as_array() else {
        return invalid(refuse(
            StatusCode::BAD_REQUEST,
            "messages",
            "missing: a Generic V2 body is {\"messages\": [...]}",
        ));
    };
    for (i, m) in messages.iter().enumerate() {
        if m["id"].as_str().is_none_or(str::is_empty) {
            return invalid(refuse(
                StatusCode::BAD_REQUEST,
                &format!("messages[{i}].id"),
                "missing",
            ));
        }
    }
    let mut stored = 0;
    for m in messages {
        let id = format!("v2:{}", m["id"].as_str().unwrap_or_default());
        let body = serde_json::to_vec(m).expect("JSON values serialise");
        match w
            .store
            .receive("webhook_v2", &id, &body, Timestamp::now())
            .await
        {
            Ok(Received::New(_)) => stored += 1,
            Ok(Received::Duplicate) => {}
            // What was stored stays; PagerDuty's retry stores the rest (duplicates are dropped).
            Err(e) => {
                w.metrics.write_failed(&e);
                return (unavailable(e), HookResult::Unavailable);
            }
        }
    }
    if stored > 0 {
        w.metrics.write_ok();
        w.sync.wake();
    }
    let result = if stored == 0 && !messages.is_empty() {
        HookResult::Duplicate
    } else {
        HookResult::Accepted
    };
    let r = answer(
        StatusCode::ACCEPTED,
        json!({"status": "accepted", "messages": messages.len(), "new": stored}),
    );
    (r, result)
}
