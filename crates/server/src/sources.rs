//! Ingest routes: one per `[[sources]]` entry. A request is checked (method, type, size,
//! authentication), decoded into alerts, routed by the rules, and its events stored in one
//! durable commit before the monitor hears `202`. Every refusal is a JSON body naming the
//! problem; nothing that was answered `2xx` is lost.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use pagerbridge_ingest::Decoder;
use pagerbridge_model::{Alert, MonitorRef};
use pagerbridge_rules::{Decision, Rules};
use pagerbridge_store::{EventKind, NewEvent, Origin};
use serde_json::{Value, json};

use crate::auth::RouteAuth;
use crate::metrics::{Reject, RouteCounters, RouteKind};
use crate::relay::Ingest;

/// Largest request a source may post. Monitors batch (Centreon Broker, Alertmanager groups),
/// so this is more than one PagerDuty event's 512 KB.
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// A configured source, ready to serve.
pub struct Source {
    pub name: String,
    pub path: String,
    pub decoder: Decoder,
    pub auth: Option<RouteAuth>,
}

struct Route {
    source: Source,
    rules: Arc<Rules>,
    ingest: Arc<Ingest>,
    counters: Arc<RouteCounters>,
}

/// The routes of every source.
pub fn routes(sources: Vec<Source>, rules: Arc<Rules>, ingest: Arc<Ingest>) -> Router {
    let mut router = Router::new();
    for source in sources {
        let path = source.path.clone();
        let counters = ingest
            .metrics()
            .route(&source.name, &path, RouteKind::Source);
        let route = Arc::new(Route {
            source,
            rules: rules.clone(),
            ingest: ingest.clone(),
            counters,
        });
        router = router.route(&path, post(handle).with_state(route));
    }
    router
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut r = (
        status,
        serde_json::to_vec(&body).expect("JSON values serialise"),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn refuse(status: StatusCode, field: &str, message: impl Into<String>) -> Response {
    let mut body = json!({"status": "refused", "error": message.into()});
    if !field.is_empty() {
        body["field"] = json!(field);
    }
    answer(status, body)
}

/// The events an alert's decision yields, as outbox records. `label` says where they came
/// from (for the operator); `origin` names the source for the way back (its `[[sources]]`
/// name, or its kind), recorded with the alert's monitor reference in the incident map.
pub fn events_of(
    decision: &Decision,
    alert: &Alert,
    label: &str,
    origin: &str,
    now: Timestamp,
) -> Vec<NewEvent> {
    let origin = (alert.monitor_ref != MonitorRef::None).then(|| Origin {
        source: origin.to_owned(),
        monitor_ref: serde_json::to_value(&alert.monitor_ref).expect("references serialise"),
        problem_id: alert.monitor_ref.problem_id().map(str::to_owned),
        started_at: alert.started_at,
    });
    match decision {
        Decision::Dropped { .. } => Vec::new(),
        Decision::Send { events } => events
            .iter()
            .map(|r| NewEvent {
                kind: EventKind::EventsV2,
                routing_key: r.event.routing_key.clone(),
                dedup_key: r.event.dedup_key.clone(),
                action: Some(r.event.event_action),
                body: serde_json::to_vec(&r.event).expect("events serialise"),
                source: label.to_owned(),
                received_at: now,
                origin: origin.clone(),
            })
            .collect(),
    }
}

/// Routes decoded alerts. An alert the rules cannot route (no routing key) refuses the whole
/// request: storing the others would leave the monitor believing all went through.
pub fn route_all(
    rules: &Rules,
    alerts: &[Alert],
    label: &str,
    origin: &str,
    now: Timestamp,
) -> Result<(Vec<NewEvent>, Vec<Value>), (usize, String)> {
    let mut events = Vec::new();
    let mut summary = Vec::new();
    for (i, alert) in alerts.iter().enumerate() {
        let decision = rules.route(alert).map_err(|e| (i, e.to_string()))?;
        let evs = events_of(&decision, alert, label, origin, now);
        summary.push(match &decision {
            Decision::Send { events: routed } => json!({
                "dedup_keys": routed.iter().map(|r| r.event.dedup_key.clone()).collect::<Vec<_>>(),
                "actions": routed.iter().map(|r| r.event.event_action.as_str()).collect::<Vec<_>>(),
            }),
            Decision::Dropped { reason, .. } => json!({"dropped": reason}),
        });
        events.extend(evs);
    }
    Ok((events, summary))
}

async fn handle(State(route): State<Arc<Route>>, headers: HeaderMap, body: Body) -> Response {
    let src = &route.source;
    let counters = &route.counters;
    counters.request();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    // Monitors post JSON; Zabbix's HttpRequest and some scripts send no type at all.
    if !(essence.is_empty() || essence == "application/json" || essence.ends_with("+json")) {
        counters.rejected(Reject::ContentType);
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            format!("expected application/json, got {ct:?}"),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        counters.rejected(Reject::TooLarge);
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            format!("the body is over {MAX_BODY} bytes"),
        );
    };
    if let Some(auth) = &src.auth
        && let Err(e) = auth.check(&headers, &bytes)
    {
        tracing::warn!(source = %src.name, error = %e, "refused an unauthenticated request");
        counters.rejected(Reject::Unauthorized);
        return refuse(StatusCode::UNAUTHORIZED, "", e.to_string());
    }
    let alerts = match src.decoder.decode(&bytes) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(source = %src.name, error = %e, "refused a payload it cannot decode");
            counters.rejected(Reject::Undecodable);
            return refuse(StatusCode::BAD_REQUEST, &e.field, e.message);
        }
    };
    let label = format!("source {}", src.name);
    let (events, summary) =
        match route_all(&route.rules, &alerts, &label, &src.name, Timestamp::now()) {
            Ok(x) => x,
            Err((i, message)) => {
                counters.rejected(Reject::Unroutable);
                return refuse(StatusCode::BAD_REQUEST, &format!("alerts[{i}]"), message);
            }
        };
    let stored = events.len();
    let dropped = summary
        .iter()
        .filter(|s| s.get("dropped").is_some())
        .count();
    if let Err(e) = route.ingest.store_all(events).await {
        counters.rejected(Reject::StoreUnavailable);
        tracing::error!(source = %src.name, error = %e, "cannot store events; answered 503");
        let mut r = answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "error": format!("pagerbridge could not store the events, so none was accepted: {e}")}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    counters.alerts(alerts.len(), dropped);
    counters.accepted(stored);
    tracing::debug!(source = %src.name, alerts = alerts.len(), events = stored, "stored");
    answer(
        StatusCode::ACCEPTED,
        json!({"status": "accepted", "alerts": alerts.len(), "events": stored, "results": summary}),
    )
}
