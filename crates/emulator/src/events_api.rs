//! `POST /v2/enqueue`, `POST /v2/change/enqueue` and `POST /generic/2010-04-15/create_event.json`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use jiff::Timestamp;
use pagerduty::events::{
    EventResponse, Rejection, V1Response, check_content_type, read_body, validate_change_event,
    validate_event, validate_v1_event,
};
use serde_json::{Value, json};

use crate::Shared;
use crate::server::{events_throttle_body, json_response};
use crate::world::{Effect, Received};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/enqueue", post(enqueue))
        .route("/v2/change/enqueue", post(change_enqueue))
        .route(
            "/generic/2010-04-15/create_event.json",
            post(create_event_v1),
        )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V2,
    Change,
    V1,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::V2 => "events_v2",
            Api::Change => "change",
            Api::V1 => "events_v1",
        }
    }
}

fn body_as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned())
    })
}

struct Outcome {
    status: u16,
    body: Value,
    routing_key: Option<String>,
    dedup_key: Option<String>,
    errors: Vec<String>,
    effect: Option<Effect>,
}

async fn enqueue(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle(&shared, Api::V2, &headers, body).await
}

async fn change_enqueue(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&shared, Api::Change, &headers, body).await
}

async fn create_event_v1(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&shared, Api::V1, &headers, body).await
}

fn rejected(api: Api, r: Rejection, routing_key: Option<String>) -> Outcome {
    let errors = r.messages();
    let body = match api {
        Api::V1 => serde_json::to_value(V1Response::invalid(errors.clone())),
        _ => serde_json::to_value(r.to_response()),
    }
    .expect("responses serialise");
    Outcome {
        status: 400,
        body,
        routing_key,
        dedup_key: None,
        errors,
        effect: None,
    }
}

/// Validation, rate limit, then PagerDuty's semantics, all recorded for the admin API.
async fn handle(shared: &Shared, api: Api, headers: &HeaderMap, body: Body) -> Response {
    let now = Timestamp::now();
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let bytes = match check_content_type(content_type) {
        Ok(()) => read_body(body).await,
        Err(r) => Err(r),
    };
    let (outcome, logged_body) = match bytes {
        Err(rejection) => (
            rejected(api, rejection, None),
            Value::String("(body not read)".into()),
        ),
        Ok(bytes) => (process(shared, api, &bytes, now), body_as_json(&bytes)),
    };
    tracing::debug!(
        api = api.name(),
        status = outcome.status,
        routing_key = outcome.routing_key.as_deref().unwrap_or(""),
        dedup_key = outcome.dedup_key.as_deref().unwrap_or(""),
        effect = ?outcome.effect,
        errors = ?outcome.errors,
        "event received"
    );
    let mut world = shared.world();
    world.record_received(Received {
        seq: 0,
        received_at: now,
        api: api.name(),
        status: outcome.status,
        body: logged_body,
        routing_key: outcome.routing_key,
        dedup_key: outcome.dedup_key,
        errors: outcome.errors,
        effect: outcome.effect,
    });
    drop(world);
    json_response(outcome.status, &outcome.body)
}

fn process(shared: &Shared, api: Api, bytes: &[u8], now: Timestamp) -> Outcome {
    let validated = match api {
        Api::V2 => validate_event(bytes).map(Validated::V2),
        Api::Change => validate_change_event(bytes).map(Validated::Change),
        Api::V1 => validate_v1_event(bytes).map(Validated::V1),
    };
    let ev = match validated {
        Ok(ev) => ev,
        Err(r) => {
            let rk = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
                v.get(if api == Api::V1 {
                    "service_key"
                } else {
                    "routing_key"
                })
                .and_then(Value::as_str)
                .map(str::to_owned)
            });
            return rejected(api, r, rk);
        }
    };
    let routing_key = ev.routing_key().to_owned();
    let limit = shared.world().settings.events_per_minute;
    let verdict = shared
        .events_limit
        .check(&routing_key, limit, Instant::now());
    if !verdict.allowed {
        return Outcome {
            // Events v1 throttles with 403.
            status: if api == Api::V1 { 403 } else { 429 },
            body: events_throttle_body(),
            routing_key: Some(routing_key),
            dedup_key: None,
            errors: vec!["rate limited".into()],
            effect: None,
        };
    }
    let mut world = shared.world();
    let result = match &ev {
        Validated::V2(e) => world.apply_event(e, now).map(|(k, eff)| (Some(k), eff)),
        Validated::V1(e) => world.apply_v1_event(e, now).map(|(k, eff)| (Some(k), eff)),
        Validated::Change(e) => world.apply_change_event(e, now).map(|eff| (None, eff)),
    };
    shared.flush(&mut world);
    drop(world);
    match result {
        Err(errors) => rejected(api, Rejection::Invalid(errors), Some(routing_key)),
        Ok((dedup_key, effect)) => {
            let (status, body) = match api {
                Api::V2 => (
                    202,
                    serde_json::to_value(EventResponse::processed(
                        dedup_key.clone().unwrap_or_default(),
                    )),
                ),
                Api::Change => (202, serde_json::to_value(EventResponse::change_processed())),
                Api::V1 => (
                    200,
                    serde_json::to_value(V1Response::processed(
                        dedup_key.clone().unwrap_or_default(),
                    )),
                ),
            };
            Outcome {
                status,
                body: body.unwrap_or_else(|_| json!({})),
                routing_key: Some(routing_key),
                dedup_key,
                errors: Vec::new(),
                effect: Some(effect),
            }
        }
    }
}

enum Validated {
    V2(pagerduty::events::Event),
    Change(pagerduty::events::ChangeEvent),
    V1(pagerduty::events::V1Event),
}

impl Validated {
    fn routing_key(&self) -> &str {
        match self {
            Validated::V2(e) => &e.routing_key,
            Validated::Change(e) => &e.routing_key,
            Validated::V1(e) => &e.service_key,
        }
    }
}
