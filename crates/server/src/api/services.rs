//! `/api/v1/services` and `/api/v1/maintenance_windows`, through PagerDuty's REST API with the
//! operations of `pagerbridge service` and `pagerbridge maintenance`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use jiff::Timestamp;
use pagerbridge_ops::{maintenance, services};
use pagerduty::rest::{MaintenanceWindow, Service};
use serde_json::{Value, json};

use super::error::ApiError;
use super::input::{JsonBody, Param, ParamKind, PathText, Query};
use super::{Api, Endpoint};

const LIST: &[Param] = &[Param::query(
    "query",
    ParamKind::Text,
    "Only services whose name contains this text.",
)];

const ONE: &[Param] = &[Param::path(
    "id_or_name",
    "The service's id, or its name (exact, then ignoring case).",
)];

const WINDOWS: &[Param] = &[
    Param::query(
        "filter",
        ParamKind::OneOf(&["open", "ongoing", "future", "past", "all"]),
        "Which windows: `open` is ongoing and future ones.",
    )
    .or("open"),
    Param::query(
        "service",
        ParamKind::List,
        "Only windows of these services, by id or name. Repeat or separate with commas.",
    ),
];

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/services", list)
            .doc(
                "services",
                "List services",
                "Every service of the account, or those whose name contains `query`.",
            )
            .params(LIST)
            .answers(200, "ServiceList", "The services.")
            .pagerduty(),
        Endpoint::get("/services/{id_or_name}", show)
            .doc(
                "services",
                "Find a service",
                "By id, then by name. A name several services share is refused with their ids.",
            )
            .params(ONE)
            .answers(200, "ServiceOne", "The service.")
            .pagerduty(),
        Endpoint::get("/maintenance_windows", list_windows)
            .doc(
                "maintenance",
                "List maintenance windows",
                "Open (ongoing and future) windows by default.",
            )
            .params(WINDOWS)
            .answers(200, "MaintenanceWindowList", "The windows.")
            .pagerduty(),
        Endpoint::post("/maintenance_windows", create_window)
            .doc(
                "maintenance",
                "Create a maintenance window",
                "On the services given by id or name, from `start` (default now) until `end` or \
                 for `duration` (`90m`, `2h`, `1d`). Times as a duration ago, a date or an RFC \
                 3339 timestamp. `from`: the PagerDuty user it is created as.",
            )
            .body("NewMaintenanceWindow")
            .answers(
                201,
                "MaintenanceWindowOne",
                "The window, as PagerDuty created it.",
            )
            .pagerduty(),
    ]
}

async fn list(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), LIST)?;
    let found: Vec<Service> = services::list(api.rest()?, q.text("query"))
        .try_collect()
        .await?;
    Ok(Json(json!({"services": found, "count": found.len()})))
}

async fn show(State(api): State<Api>, PathText(wanted): PathText) -> Result<Json<Value>, ApiError> {
    let service = services::resolve(api.rest()?, &wanted).await?;
    Ok(Json(json!({ "service": service })))
}

async fn list_windows(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), WINDOWS)?;
    let filter = maintenance::parse_filter(q.text("filter"))?;
    let found: Vec<MaintenanceWindow> = maintenance::list(api.rest()?, &q.list("service"), filter)
        .await?
        .try_collect()
        .await?;
    Ok(Json(
        json!({"maintenance_windows": found, "count": found.len()}),
    ))
}

async fn create_window(
    State(api): State<Api>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    body.only(&[
        "services",
        "start",
        "end",
        "duration",
        "description",
        "from",
    ])?;
    let window = maintenance::NewWindow {
        services: body.strings("services")?.unwrap_or_default(),
        start: body.string("start")?,
        end: body.string("end")?,
        duration: body.string("duration")?,
        description: body.string("description")?,
    };
    let rest = api.writer(body.string("from")?, &headers)?;
    let created = maintenance::create(&rest, &window, Timestamp::now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "maintenance_window": created })),
    )
        .into_response())
}
