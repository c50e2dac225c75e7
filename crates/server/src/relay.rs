//! PagerDuty-compatible relay routes: `POST /v2/enqueue`, `/v2/change/enqueue` and
//! `/generic/2010-04-15/create_event.json`, with PagerDuty's request and response shapes and
//! validation, so a tool that already speaks PagerDuty only changes its URL. The answer is sent
//! only once the event is durably stored.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use pagerbridge_store::group_commit::GroupCommit;
use pagerbridge_store::{EventKind, NewEvent, StoreError};
use pagerduty::events::{
    EventAction, EventResponse, Rejection, V1Response, check_content_type, read_body,
    validate_change_event, validate_event, validate_v1_event,
};
use serde_json::{Value, json};

use crate::dispatch::Dispatcher;
use crate::metrics::{Metrics, Reject, RouteCounters, RouteKind};

/// An event ready for the outbox, and what PagerDuty would answer for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub event: NewEvent,
    pub status: u16,
    pub answer: Value,
}

/// The key PagerDuty would generate for a trigger without one: 32 hex characters. Generating it
/// here, not in PagerDuty, lets us answer the sender with it before PagerDuty is reached (its
/// clients need it in the answer), and a fresh key opens a new alert just as PagerDuty's would.
pub fn generated_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates a body with PagerDuty's rules and turns it into an outbox event. The stored body is
/// the validated event re-serialised: exactly what PagerDuty will receive, with the dedup key
/// filled in when the sender left it out.
pub fn prepare(
    kind: EventKind,
    body: &[u8],
    source: &str,
    now: Timestamp,
) -> Result<Prepared, Rejection> {
    let (routing_key, dedup_key, action, body, status, answer) = match kind {
        EventKind::EventsV2 => {
            let mut ev = validate_event(body)?;
            let key = ev.dedup_key.get_or_insert_with(generated_key).clone();
            let answer = serde_json::to_value(EventResponse::processed(key.clone()));
            (
                ev.routing_key.clone(),
                Some(key),
                Some(ev.event_action),
                stored(&ev),
                202,
                answer,
            )
        }
        EventKind::Change => {
            let ev = validate_change_event(body)?;
            let answer = serde_json::to_value(EventResponse::change_processed());
            (ev.routing_key.clone(), None, None, stored(&ev), 202, answer)
        }
        EventKind::EventsV1 => {
            let mut ev = validate_v1_event(body)?;
            let key = ev.incident_key.get_or_insert_with(generated_key).clone();
            let answer = serde_json::to_value(V1Response::processed(key.clone()));
            (
                ev.service_key.clone(),
                Some(key),
                Some(ev.event_type),
                stored(&ev),
                200,
                answer,
            )
        }
    };
    Ok(Prepared {
        event: NewEvent {
            kind,
            routing_key,
            dedup_key,
            action,
            body,
            source: source.to_owned(),
            received_at: now,
            origin: None,
        },
        status,
        answer: answer.expect("answers serialise"),
    })
}

/// The body the outbox keeps: the validated event, as PagerDuty will receive it.
fn stored<T: serde::Serialize>(event: &T) -> Vec<u8> {
    serde_json::to_vec(event).expect("events serialise")
}

/// Stores prepared events durably and wakes the dispatcher.
#[derive(Clone)]
pub struct Ingest {
    commit: GroupCommit,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    /// The relay routes' counters, in [`RELAY_ROUTES`]' order.
    relay: [Arc<RouteCounters>; 3],
}

/// The relay routes, as their counters name them (`source="relay"`).
pub const RELAY_ROUTES: [(EventKind, &str); 3] = [
    (EventKind::EventsV2, "/v2/enqueue"),
    (EventKind::Change, "/v2/change/enqueue"),
    (EventKind::EventsV1, "/generic/2010-04-15/create_event.json"),
];

impl Ingest {
    pub fn new(commit: GroupCommit, dispatcher: Dispatcher, metrics: Arc<Metrics>) -> Ingest {
        let relay = RELAY_ROUTES.map(|(_, path)| metrics.route("relay", path, RouteKind::Relay));
        Ingest {
            commit,
            dispatcher,
            metrics,
            relay,
        }
    }

    /// The daemon's metrics, for the routes that store through this.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub async fn store(&self, event: NewEvent) -> Result<i64, StoreError> {
        let id = self.committed(self.commit.insert(event).await)?;
        self.dispatcher.wake();
        Ok(id)
    }

    /// Stores events in one commit (all or none), then wakes the dispatcher.
    pub async fn store_all(&self, events: Vec<NewEvent>) -> Result<Vec<i64>, StoreError> {
        let ids = self.committed(self.commit.insert_all(events).await)?;
        if !ids.is_empty() {
            self.dispatcher.wake();
        }
        Ok(ids)
    }

    /// Notes whether a commit succeeded, for `/readyz`.
    fn committed<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => self.metrics.write_ok(),
            Err(e) => self.metrics.write_failed(e),
        }
        r
    }

    fn relay_counters(&self, kind: EventKind) -> &RouteCounters {
        let i = RELAY_ROUTES
            .iter()
            .position(|(k, _)| *k == kind)
            .expect("every kind has a relay route");
        &self.relay[i]
    }
}

pub fn routes() -> Router<Arc<Ingest>> {
    Router::new()
        .route("/v2/enqueue", post(enqueue_v2))
        .route("/v2/change/enqueue", post(enqueue_change))
        .route(
            "/generic/2010-04-15/create_event.json",
            post(create_event_v1),
        )
}

async fn enqueue_v2(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    relay(
        &ingest,
        EventKind::EventsV2,
        "http /v2/enqueue",
        &headers,
        body,
    )
    .await
}

async fn enqueue_change(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    relay(
        &ingest,
        EventKind::Change,
        "http /v2/change/enqueue",
        &headers,
        body,
    )
    .await
}

async fn create_event_v1(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    relay(
        &ingest,
        EventKind::EventsV1,
        "http /generic/2010-04-15/create_event.json",
        &headers,
        body,
    )
    .await
}

fn json(status: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        serde_json::to_vec(body).expect("JSON values serialise"),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn refused(kind: EventKind, r: &Rejection) -> Response {
    let body = match kind {
        EventKind::EventsV1 => serde_json::to_value(V1Response::invalid(r.messages())),
        _ => serde_json::to_value(r.to_response()),
    }
    .expect("serialises");
    json(400, &body)
}

async fn relay(
    ingest: &Ingest,
    kind: EventKind,
    source: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let counters = ingest.relay_counters(kind);
    counters.request();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if let Err(r) = check_content_type(content_type) {
        counters.rejected(Reject::ContentType);
        return refused(kind, &r);
    }
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(r) => {
            counters.rejected(match r {
                Rejection::Invalid(_) => Reject::TooLarge,
                Rejection::Unrecognized(_) => Reject::Unreadable,
            });
            return refused(kind, &r);
        }
    };
    let prepared = match prepare(kind, &bytes, source, Timestamp::now()) {
        Ok(p) => p,
        Err(r) => {
            tracing::debug!(source, errors = ?r.messages(), "refused an event");
            counters.rejected(Reject::InvalidEvent);
            return refused(kind, &r);
        }
    };
    let routing_key = prepared.event.routing_key.clone();
    let dedup_key = prepared.event.dedup_key.clone().unwrap_or_default();
    let action = prepared
        .event
        .action
        .map(EventAction::as_str)
        .unwrap_or("change");
    match ingest.store(prepared.event).await {
        Ok(id) => {
            counters.accepted(1);
            tracing::debug!(id, source, routing_key = %pagerduty::events::mask_key(&routing_key), %dedup_key, action, "event stored");
            json(prepared.status, &prepared.answer)
        }
        Err(e) => {
            counters.rejected(Reject::StoreUnavailable);
            // Nothing was stored: a 5xx makes every PagerDuty client send it again later.
            tracing::error!(error = %e, source, routing_key = %pagerduty::events::mask_key(&routing_key), %dedup_key, "cannot store an event; answered 503");
            let mut r = json(
                503,
                &json!({
                    "status": "unavailable",
                    "message": format!("pagerbridge could not store the event, so it was not accepted: {e}"),
                    "errors": [e.to_string()],
                }),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_without_a_key_gets_one_in_the_body_and_the_answer() {
        let body = br#"{"routing_key":"a1b2c3d4e5f60718293a4b5c6d7e8f90","event_action":"trigger",
            "payload":{"summary":"s","source":"h","severity":"info"},"extra":"ignored"}"#;
        let p = prepare(EventKind::EventsV2, body, "test", Timestamp::now()).unwrap();
        let key = p.event.dedup_key.clone().unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(p.answer["dedup_key"], key.as_str());
        let stored: Value = serde_json::from_slice(&p.event.body).unwrap();
        assert_eq!(stored["dedup_key"], key.as_str());
        assert!(
            stored.get("extra").is_none(),
            "PagerDuty ignores unknown fields; we do not forward them"
        );
        let again = prepare(EventKind::EventsV2, body, "test", Timestamp::now()).unwrap();
        assert_ne!(
            again.event.dedup_key, p.event.dedup_key,
            "every keyless trigger is a new alert"
        );
    }

    #[test]
    fn v1_and_change_events_answer_as_pagerduty_does() {
        let v1 = br#"{"service_key":"a1b2c3d4e5f60718293a4b5c6d7e8f90","event_type":"trigger","description":"d"}"#;
        let p = prepare(EventKind::EventsV1, v1, "t", Timestamp::now()).unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(p.answer["incident_key"].as_str().unwrap().len(), 32);
        let ch =
            br#"{"routing_key":"a1b2c3d4e5f60718293a4b5c6d7e8f90","payload":{"summary":"deploy"}}"#;
        let p = prepare(EventKind::Change, ch, "t", Timestamp::now()).unwrap();
        assert_eq!(
            p.answer,
            json!({"status": "success", "message": "Change event processed"})
        );
        assert_eq!(p.event.lane(), "c:a1b2c3d4e5f60718293a4b5c6d7e8f90");
    }
}
