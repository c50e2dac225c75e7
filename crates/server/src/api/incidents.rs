//! `/api/v1/incidents`: list, show, create, acknowledge and resolve in bulk, note; through
//! PagerDuty's REST API with the operations of `pagerbridge incident`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use jiff::Timestamp;
use pagerbridge_ops::incidents::{self, BulkReport, ListFilter, NewFromFlags};
use pagerduty::rest::{Incident, IncidentStatus};
use serde_json::{Value, json};

use super::error::{ApiError, ErrorKind};
use super::input::{JsonBody, LIMIT, Param, ParamKind, PathText, Query};
use super::{Api, Endpoint};

const LIST: &[Param] = &[
    Param::query(
        "status",
        ParamKind::SomeOf(&["triggered", "acknowledged", "resolved", "open", "all"]),
        "Incident statuses; `open` is triggered and acknowledged, `all` every status. Repeat the \
         parameter or separate with commas.",
    )
    .or("open"),
    Param::query(
        "service",
        ParamKind::List,
        "Only incidents of these services, by id or name. Repeat or separate with commas.",
    ),
    Param::query(
        "since",
        ParamKind::Text,
        "Created at or after: a duration ago (`2h`, `7d`), a date (`2026-11-20`) or an RFC 3339 \
         timestamp. Default: every date.",
    ),
    Param::query(
        "until",
        ParamKind::Text,
        "Created before, in the same forms as `since`.",
    ),
    Param::query(
        "urgency",
        ParamKind::SomeOf(&["high", "low"]),
        "Only incidents of these urgencies.",
    ),
    LIMIT,
];

const ID: &[Param] = &[Param::path("id", "The PagerDuty incident id.")];

/// Fields of the short form of a new incident.
const SHORT_FORM: &[&str] = &[
    "title",
    "service",
    "urgency",
    "body",
    "incident_key",
    "escalation_policy",
    "priority",
    "from",
];

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/incidents", list)
            .doc(
                "incidents",
                "List incidents",
                "Oldest first, paging through PagerDuty past its 10,000-offset ceiling. `more` \
                 says that more incidents match than `limit` let through.",
            )
            .params(LIST)
            .answers(200, "IncidentList", "The incidents.")
            .pagerduty(),
        Endpoint::post("/incidents", create)
            .doc(
                "incidents",
                "Create an incident",
                "The body is PagerDuty's `POST /incidents` body (`{\"incident\": {...}}` or the \
                 incident object itself), checked against PagerDuty's schema, or the short form \
                 `{\"title\", \"service\" (id or name), \"urgency\", \"body\", \"incident_key\"}`. \
                 `from` (either form) is the email of the PagerDuty user it is created as.",
            )
            .body("NewIncident")
            .answers(201, "IncidentOne", "The incident, as PagerDuty created it.")
            .pagerduty(),
        Endpoint::post("/incidents/acknowledge", acknowledge)
            .doc(
                "incidents",
                "Acknowledge incidents",
                "Any number of ids, sent to PagerDuty 250 at a time. A batch PagerDuty refuses \
                 for one bad id is retried one incident at a time, so that the others change and \
                 the bad one is named in `failed`. 200: all changed; 207: some did; an error \
                 status when none did.",
            )
            .body("BulkRequest")
            .answers(200, "BulkReport", "Every incident changed.")
            .answers(
                207,
                "BulkReport",
                "Some changed, `failed` says why the others did not.",
            )
            .pagerduty(),
        Endpoint::post("/incidents/resolve", resolve)
            .doc(
                "incidents",
                "Resolve incidents",
                "As acknowledge; `resolution` is the text PagerDuty records with the resolve.",
            )
            .body("BulkRequest")
            .answers(200, "BulkReport", "Every incident changed.")
            .answers(
                207,
                "BulkReport",
                "Some changed, `failed` says why the others did not.",
            )
            .pagerduty(),
        Endpoint::get("/incidents/{id}", show)
            .doc(
                "incidents",
                "Show an incident",
                "The incident with its alerts, log entries and notes.",
            )
            .params(ID)
            .answers(
                200,
                "IncidentDetail",
                "The incident and what happened to it.",
            )
            .pagerduty(),
        Endpoint::post("/incidents/{id}/notes", add_note)
            .doc(
                "incidents",
                "Add a note",
                "Adds a note to the incident, as the `from` user.",
            )
            .params(ID)
            .body("NewNote")
            .answers(201, "NoteOne", "The note.")
            .pagerduty(),
    ]
}

async fn list(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), LIST)?;
    let rest = api.rest()?;
    let limit = q.integer("limit").unwrap_or(100) as usize;
    let filter = ListFilter::parse(
        &q.all("status"),
        &q.all("service"),
        q.text("since"),
        q.text("until"),
        &q.all("urgency"),
        Timestamp::now(),
    )?;
    let query = filter.query(rest).await?;
    // One more than asked says whether there is more.
    let mut found: Vec<Incident> = incidents::list(rest, query, Some(limit + 1))
        .try_collect()
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    Ok(Json(json!({
        "incidents": found,
        "count": found.len(),
        "limit": limit,
        "more": more,
    })))
}

async fn show(State(api): State<Api>, PathText(id): PathText) -> Result<Response, ApiError> {
    let detail = incidents::show(api.rest()?, &id).await?;
    Ok(Json(detail).into_response())
}

async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    JsonBody(mut fields): JsonBody,
) -> Result<Response, ApiError> {
    let from = match fields.remove("from") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::field("from", "from: expected an email address")),
    };
    let rest = api.writer(from, &headers)?;
    // PagerDuty's own form has `incident` (wrapped) or `type` (bare); the short form neither.
    let body = if fields.contains_key("incident") || fields.contains_key("type") {
        incidents::validate_new(&Value::Object(fields))?
    } else {
        let b = JsonBody(fields);
        b.only(SHORT_FORM)?;
        let flags = NewFromFlags {
            title: b.string("title")?.unwrap_or_default(),
            service: b.string("service")?.unwrap_or_default(),
            urgency: b.string("urgency")?,
            body: b.string("body")?,
            incident_key: b.string("incident_key")?,
            escalation_policy: b.string("escalation_policy")?,
            priority: b.string("priority")?,
        };
        incidents::body_from_flags(&rest, &flags).await?
    };
    let incident = incidents::create(&rest, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "incident": incident }))).into_response())
}

async fn acknowledge(
    State(api): State<Api>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    set_status(api, headers, body, IncidentStatus::Acknowledged).await
}

async fn resolve(
    State(api): State<Api>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    set_status(api, headers, body, IncidentStatus::Resolved).await
}

async fn set_status(
    api: Api,
    headers: HeaderMap,
    body: JsonBody,
    status: IncidentStatus,
) -> Result<Response, ApiError> {
    if status == IncidentStatus::Resolved {
        body.only(&["ids", "from", "resolution"])?;
    } else {
        body.only(&["ids", "from"])?;
    }
    let ids = body.strings("ids")?.unwrap_or_default();
    let resolution = body.string("resolution")?;
    let rest = api.writer(body.string("from")?, &headers)?;
    let report =
        incidents::set_status(&rest, &ids, status, resolution.as_deref(), &mut |_, _| {}).await?;
    bulk_answer(&report, status)
}

/// 200 when every incident changed, 207 when some did, an error when none did (the status of
/// the failures when they agree).
fn bulk_answer(report: &BulkReport, status: IncidentStatus) -> Result<Response, ApiError> {
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|f| {
            let e = ApiError::from(f.error.clone());
            let mut v = e.body();
            v.as_object_mut()
                .expect("an object")
                .insert("id".into(), Value::from(f.id.as_str()));
            v
        })
        .collect();
    let body = json!({"updated": report.updated, "failed": failed});
    let Some(first) = report.failed.first() else {
        return Ok((StatusCode::OK, Json(body)).into_response());
    };
    if !report.updated.is_empty() {
        return Ok((StatusCode::MULTI_STATUS, Json(body)).into_response());
    }
    let verb = match status {
        IncidentStatus::Resolved => "resolved",
        _ => "acknowledged",
    };
    let mut err = ApiError::from(first.error.clone());
    if !report
        .failed
        .iter()
        .all(|f| f.error.kind == first.error.kind)
    {
        err.status = StatusCode::BAD_REQUEST;
        err.kind = ErrorKind::BadInput;
    }
    let others = report.failed.len() - 1;
    err.message = format!(
        "none of the {} incident(s) could be {verb}: {}: {}{}",
        report.failed.len(),
        first.id,
        first.error.message,
        if others > 0 {
            format!(" (and {others} more, in failed)")
        } else {
            String::new()
        }
    );
    err.field = Some("ids".into());
    Err(err
        .with("updated", body["updated"].clone())
        .with("failed", body["failed"].clone()))
}

async fn add_note(
    State(api): State<Api>,
    PathText(id): PathText,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    body.only(&["content", "from"])?;
    let content = body.string("content")?.unwrap_or_default();
    let rest = api.writer(body.string("from")?, &headers)?;
    let note = incidents::add_note(&rest, &id, &content).await?;
    Ok((StatusCode::CREATED, Json(json!({ "note": note }))).into_response())
}
