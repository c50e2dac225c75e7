//! `/api/v1/incident_map`: which PagerDuty incident belongs to which monitor problem, with the
//! last state known on each side (the way back's table, see docs/sync.md).

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};

use super::error::ApiError;
use super::input::{LIMIT, Param, ParamKind, PathText, Query};
use super::{Api, Endpoint};

const LIST: &[Param] = &[
    Param::query(
        "open",
        ParamKind::Boolean,
        "Only rows not resolved on both sides (the monitor recovered and PagerDuty resolved).",
    )
    .or("false"),
    LIMIT,
];

const KEY: &[Param] = &[Param::path(
    "dedup_key",
    "The dedup key (PagerDuty's incident key), percent-encoded (`/` as `%2F`).",
)];

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/incident_map", list)
            .doc(
                "incident map",
                "List the incident map",
                "Rows most recently updated first.",
            )
            .params(LIST)
            .answers(200, "IncidentMapList", "The rows."),
        Endpoint::get("/incident_map/{dedup_key}", by_dedup_key)
            .doc(
                "incident map",
                "Rows of a dedup key",
                "One per routing key, newest first.",
            )
            .params(KEY)
            .answers(200, "IncidentMapRows", "The rows."),
    ]
}

async fn list(State(api): State<Api>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query(), LIST)?;
    let limit = q.integer("limit").unwrap_or(100) as usize;
    let rows = api
        .sync_store()
        .list_incidents(q.boolean("open"), limit)
        .await?;
    Ok(Json(json!({
        "incidents": rows,
        "count": rows.len(),
        "limit": limit,
    })))
}

async fn by_dedup_key(
    State(api): State<Api>,
    PathText(key): PathText,
) -> Result<Json<Value>, ApiError> {
    let rows = api.sync_store().incidents_by_dedup_key(&key).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no incident map row has the dedup key {key:?}"
        )));
    }
    Ok(Json(json!({
        "dedup_key": key,
        "incidents": rows,
        "count": rows.len(),
    })))
}
