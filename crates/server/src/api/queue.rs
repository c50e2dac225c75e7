//! `/api/v1/queue` and `/api/v1/dead_letters`: the outbox as `pagerbridge queue` shows it (the
//! same JSON), and retry and drop, which change one state transition each in the store's own
//! transactions, so they are safe while the dispatcher delivers.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use pagerbridge_store::change::{self, Change};
use pagerbridge_store::{ListQuery, QueueStats, State as EventState};
use serde_json::{Value, json};

use super::error::{ApiError, ErrorKind};
use super::input::{JsonBody, LIMIT, Param, ParamKind, PathText, Query};
use super::{Api, Endpoint};

const STATES: &[&str] = &["pending", "delivered", "dead", "coalesced", "dropped"];

const BEFORE: Param = Param::query(
    "before",
    ParamKind::Integer {
        min: 1,
        max: i64::MAX,
    },
    "Only events with a smaller id: the next page, from the `next_before` of the last one.",
);

const EVENTS: &[Param] = &[
    Param::query(
        "state",
        ParamKind::SomeOf(STATES),
        "Only events in these states. Repeat or separate with commas. Default: every state.",
    ),
    Param::query(
        "routing_key",
        ParamKind::Text,
        "Only events for this routing key.",
    ),
    Param::query(
        "dedup_key",
        ParamKind::Text,
        "Only events with this dedup key.",
    ),
    BEFORE,
    LIMIT,
];

const DEAD: &[Param] = &[BEFORE, LIMIT];

const ID: &[Param] = &[Param::path("id", "The event's id in the outbox.")];

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/queue", stats)
            .doc(
                "queue",
                "Outbox status",
                "Events by state, the oldest pending one, and the backlog of each routing key \
                 (what `pagerbridge queue status --json` prints).",
            )
            .answers(200, "QueueStats", "The outbox's figures."),
        Endpoint::get("/queue/events", events)
            .doc("queue", "List stored events", "Newest first.")
            .params(EVENTS)
            .answers(200, "EventList", "The events."),
        Endpoint::get("/queue/events/{id}", event)
            .doc(
                "queue",
                "Show a stored event",
                "Its body, PagerDuty's answer and the last error.",
            )
            .params(ID)
            .answers(200, "EventOne", "The event."),
        Endpoint::get("/dead_letters", dead_letters)
            .doc(
                "queue",
                "List dead letters",
                "Events PagerDuty refused for good, newest first: retry them once the cause is \
                 fixed, or drop them.",
            )
            .params(DEAD)
            .answers(200, "EventList", "The dead letters."),
        Endpoint::post("/queue/retry", retry)
            .doc(
                "queue",
                "Retry events",
                "Dead (or dropped) events become pending again, due now, in their lane's order. \
                 200: every id changed; 207: some did; 404 when no id exists, 409 when none could \
                 change.",
            )
            .body("QueueChangeRequest")
            .answers(200, "QueueChangeReport", "Every event changed.")
            .answers(
                207,
                "QueueChangeReport",
                "Some changed; the others are listed.",
            )
            .answers(
                409,
                "Error",
                "None could change; the report is in the error body.",
            ),
        Endpoint::post("/queue/drop", drop_events)
            .doc(
                "queue",
                "Drop events",
                "Pending or dead events are not delivered (state `dropped`; a retry brings them \
                 back until they are purged). Statuses as for retry.",
            )
            .body("QueueChangeRequest")
            .answers(200, "QueueChangeReport", "Every event changed.")
            .answers(
                207,
                "QueueChangeReport",
                "Some changed; the others are listed.",
            )
            .answers(
                409,
                "Error",
                "None could change; the report is in the error body.",
            ),
    ]
}

async fn stats(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let stats = api.store().stats().await?;
    Ok(Json(stats_json(&stats, Timestamp::now())))
}

/// The store's figures as they are, plus ages in seconds (as `pagerbridge queue status --json`).
fn stats_json(stats: &QueueStats, now: Timestamp) -> Value {
    let secs = |from: Timestamp, to: Timestamp| to.as_second() - from.as_second();
    let mut v = serde_json::to_value(stats).expect("stats serialise");
    v["now"] = json!(now);
    v["oldest_pending_age_seconds"] = json!(stats.oldest_pending_at.map(|t| secs(t, now)));
    if let Some(keys) = v["by_routing_key"].as_array_mut() {
        for (k, stat) in keys.iter_mut().zip(&stats.by_routing_key) {
            k["oldest_pending_age_seconds"] = json!(stat.oldest_pending_at.map(|t| secs(t, now)));
            k["next_attempt_in_seconds"] = json!(stat.next_attempt_at.map(|t| secs(now, t).max(0)));
        }
    }
    v
}

async fn events(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), EVENTS)?;
    let states = q
        .list("state")
        .iter()
        .filter_map(|s| EventState::parse(s))
        .collect();
    page(&api, &q, states).await
}

async fn dead_letters(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), DEAD)?;
    page(&api, &q, vec![EventState::Dead]).await
}

async fn page(api: &Api, q: &Query, states: Vec<EventState>) -> Result<Json<Value>, ApiError> {
    let limit = q.integer("limit").unwrap_or(100) as usize;
    let records = api
        .store()
        .list(&ListQuery {
            states,
            routing_key: q.text("routing_key").map(str::to_owned),
            dedup_key: q.text("dedup_key").map(str::to_owned),
            before_id: q.integer("before"),
            limit,
        })
        .await?;
    let next_before = (records.len() == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({
        "events": records,
        "count": records.len(),
        "limit": limit,
        "next_before": next_before,
    })))
}

async fn event(State(api): State<Api>, PathText(id): PathText) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::field(
            "id",
            format!("id: {id:?} is not an event id (a whole number)"),
        )
    })?;
    match api.store().get(id).await? {
        Some(r) => Ok(Json(json!({ "event": r }))),
        None => Err(ApiError::not_found(format!("no event with id {id}"))),
    }
}

async fn retry(State(api): State<Api>, body: JsonBody) -> Result<Response, ApiError> {
    change(&api, Change::Retry, body).await
}

async fn drop_events(State(api): State<Api>, body: JsonBody) -> Result<Response, ApiError> {
    change(&api, Change::Drop, body).await
}

async fn change(api: &Api, op: Change, body: JsonBody) -> Result<Response, ApiError> {
    body.only(&["ids"])?;
    let ids = body.integers("ids")?.unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::field("ids", "ids: give at least one event id"));
    }
    let report = change::apply(api.store(), op, ids, Timestamp::now()).await?;
    if report.all_changed() {
        return Ok((StatusCode::OK, Json(report)).into_response());
    }
    if report.changed > 0 {
        return Ok((StatusCode::MULTI_STATUS, Json(report)).into_response());
    }
    let mut err = if report.not_eligible.is_empty() && report.changed_meanwhile == 0 {
        ApiError::not_found(format!(
            "no event with id {}",
            report
                .unknown
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorKind::Conflict,
            format!("nothing to {}: {}", op.name(), op.allowed()),
        )
    };
    err.field = Some("ids".into());
    let Value::Object(members) = json!(report) else {
        unreachable!("a report serialises as an object")
    };
    err.extra = Some(Box::new(members));
    Err(err)
}
