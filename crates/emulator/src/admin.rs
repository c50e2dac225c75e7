//! The emulator's own control API under `/_emulator`: what it received, what it delivered,
//! faults to inject, settings, and reset. Not part of PagerDuty.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Shared;
use crate::faults::FaultSpec;
use crate::seed::Settings;
use crate::server::{Id, json_response};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/events", get(events))
        .route("/_emulator/deliveries", get(deliveries))
        .route("/_emulator/reset", post(reset))
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_emulator/settings", get(get_settings).put(put_settings))
        .route("/_emulator/incidents/{key}", get(incident_by_key))
}

fn bad(field_error: String) -> Response {
    json_response(400, &json!({"error": field_error}))
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let w = s.world();
    let now = jiff::Timestamp::now();
    let services: Vec<Value> = (0..w.services.len())
        .map(|i| {
            let svc = &w.services[i];
            json!({
                "id": svc.id,
                "name": svc.name,
                "status": w.service_status(i, now),
                "integration_keys": svc.integrations,
            })
        })
        .collect();
    let subscriptions: Vec<Value> = w
        .subscriptions
        .iter()
        .map(|s| json!({"id": s.id, "url": s.url, "secret": s.secret, "version": s.version, "events": s.events}))
        .collect();
    let open = w
        .incidents
        .iter()
        .filter(|i| i.status != pagerduty::rest::IncidentStatus::Resolved)
        .count();
    json_response(
        200,
        &json!({
            "services": services,
            "users": w.users.iter().map(|u| json!({"id": u.id, "name": u.name, "email": u.email})).collect::<Vec<_>>(),
            "webhook_subscriptions": subscriptions,
            "incidents": {"total": w.incidents.len(), "open": open},
            "events_received": w.received.len(),
            "change_events": w.change_events.len(),
            "settings": w.settings,
        }),
    )
}

/// `?routing_key=...&since_seq=N&limit=N`: received event requests, oldest first.
async fn events(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(&q.unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return bad(format!("query string: {e}")),
    };
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let since_seq = match get("since_seq").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("since_seq: not a non-negative integer".into()),
    };
    let limit = match get("limit").map(str::parse::<usize>) {
        None => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad("limit: not a non-negative integer".into()),
    };
    let rk = get("routing_key");
    let w = s.world();
    let list: Vec<&crate::world::Received> = w
        .received
        .iter()
        .filter(|r| r.seq > since_seq && rk.is_none_or(|k| r.routing_key.as_deref() == Some(k)))
        .take(limit)
        .collect();
    json_response(200, &json!({"events": list}))
}

async fn deliveries(State(s): State<Arc<Shared>>) -> Response {
    json_response(200, &json!({"deliveries": s.webhooks.deliveries()}))
}

async fn reset(State(s): State<Arc<Shared>>) -> Response {
    s.reset();
    json_response(200, &json!({"status": "reset"}))
}

async fn list_faults(State(s): State<Arc<Shared>>) -> Response {
    json_response(200, &json!({"faults": s.faults.list()}))
}

async fn add_fault(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec = match FaultSpec::from_json(&body) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    match s.faults.add(spec) {
        Ok(id) => json_response(201, &json!({"id": id})),
        Err(e) => bad(e),
    }
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> Response {
    s.faults.clear();
    json_response(200, &json!({"faults": []}))
}

async fn get_settings(State(s): State<Arc<Shared>>) -> Response {
    json_response(200, &json!(s.world().settings))
}

/// Changes the settings named in the body; the others keep their current values, so a test can
/// turn one limit off without resetting the rest.
async fn put_settings(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("settings: {e}")),
    };
    let mut world = s.world();
    let mut merged = json!(world.settings);
    for (k, v) in patch {
        merged[k] = v;
    }
    let settings: Settings = match serde_json::from_value(merged) {
        Ok(v) => v,
        Err(e) => return bad(format!("settings: {e}")),
    };
    s.webhooks.set_settings(settings.clone());
    world.settings = settings.clone();
    json_response(200, &json!(settings))
}

/// The incident opened for a dedup key, for tests that only know the key they sent.
async fn incident_by_key(State(s): State<Arc<Shared>>, Id(key): Id) -> Response {
    let w = s.world();
    match w.incidents.iter().rposition(|i| i.incident_key == key) {
        Some(i) => json_response(200, &json!({"incident": w.incident_json(i, &[])})),
        None => json_response(
            404,
            &json!({"error": format!("no incident with incident_key {key:?}")}),
        ),
    }
}
