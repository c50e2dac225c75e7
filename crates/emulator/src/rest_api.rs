//! The REST API v2 subset: incidents, notes, log entries, alerts, services, maintenance windows,
//! users and webhook subscriptions, with PagerDuty's token auth, `From` rule, pagination limits,
//! rate-limit headers and error bodies.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post, put};
use jiff::Timestamp;
use pagerduty::rest::{IncidentStatus, Urgency};
use serde_json::{Value, json};

use crate::Shared;
use crate::seed::{TokenKind, WebhookVersion};
use crate::server::{Id, json_response, rest_rate_limit_body};
use crate::world::{
    IncidentPatch, NewIncidentReq, RestError, SubscriptionRec, World, new_id, new_secret,
};

/// PagerDuty refuses `offset + limit` above this.
const MAX_OFFSET: u64 = 10_000;
const MAX_BULK: usize = 250;
/// Request bodies above this are refused (PagerDuty's REST limit is not published; no body this
/// API takes comes near it).
const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/incidents",
            get(list_incidents).put(bulk_update).post(create_incident),
        )
        .route("/incidents/{id}", get(get_incident).put(update_incident))
        .route("/incidents/{id}/merge", put(merge_incidents))
        .route("/incidents/{id}/notes", get(list_notes).post(create_note))
        .route("/incidents/{id}/log_entries", get(incident_log_entries))
        .route("/incidents/{id}/alerts", get(incident_alerts))
        .route("/log_entries", get(list_log_entries))
        .route("/log_entries/{id}", get(get_log_entry))
        .route("/services", get(list_services))
        .route("/services/{id}", get(get_service).put(update_service))
        .route(
            "/maintenance_windows",
            get(list_windows).post(create_window),
        )
        .route(
            "/maintenance_windows/{id}",
            get(get_window).delete(delete_window),
        )
        .route("/users", get(list_users))
        .route("/users/me", get(get_me))
        .route("/users/{id}", get(get_user))
        .route(
            "/webhook_subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/webhook_subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .route("/webhook_subscriptions/{id}/ping", post(ping_subscription))
}

pub(crate) async fn not_found() -> Response {
    json_response(
        404,
        &json!({"error": {"message": "Not Found", "code": 2100}}),
    )
}

type Reply = Result<Response, RestError>;

/// Turns a handler result into PagerDuty's answer, with the rate-limit headers every REST
/// response carries.
struct Call {
    limit: Option<crate::ratelimit::Verdict>,
}

impl Call {
    fn finish(self, r: Reply) -> Response {
        let mut resp = r.unwrap_or_else(|e| json_response(e.status, &e.body()));
        if let Some(v) = self.limit
            && v.limit > 0
        {
            let h = resp.headers_mut();
            for (name, value) in [
                ("ratelimit-limit", v.limit as u64),
                ("ratelimit-remaining", v.remaining as u64),
                ("ratelimit-reset", v.reset_secs),
            ] {
                h.insert(name, HeaderValue::from(value));
            }
        }
        resp
    }
}

/// The caller behind a token.
#[derive(Debug, Clone, Copy)]
struct Caller {
    kind: TokenKind,
    user: Option<usize>,
}

fn token_from(headers: &HeaderMap) -> Option<String> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(rest) = h.strip_prefix("Token") {
        let rest = rest.trim_start();
        return rest.strip_prefix("token=").map(|t| t.trim().to_owned());
    }
    // OAuth access tokens arrive as bearer tokens; the emulator treats them like API keys.
    h.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// Authenticates and rate-limits a request.
fn begin(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    write: bool,
) -> (Call, Result<Caller, RestError>) {
    let mut call = Call { limit: None };
    let world = shared.world();
    let token = token_from(headers);
    let Some(rec) = token.as_ref().and_then(|t| world.tokens.get(t)).cloned() else {
        return (
            call,
            Err(RestError {
                status: 401,
                message: "Unauthorized".into(),
                code: 2006,
                errors: vec![if token.is_none() {
                    "No API token given: send `Authorization: Token token=<key>`".into()
                } else {
                    "The API token is not valid".into()
                }],
            }),
        );
    };
    let limit = world.settings.rest_requests_per_minute;
    drop(world);
    let verdict =
        shared
            .rest_limit
            .check(token.as_deref().unwrap_or_default(), limit, Instant::now());
    call.limit = Some(verdict);
    if !verdict.allowed {
        let body = rest_rate_limit_body();
        return (
            call,
            Err(RestError {
                status: 429,
                message: body["error"]["message"].as_str().unwrap_or_default().into(),
                code: 2020,
                errors: Vec::new(),
            }),
        );
    }
    if write && rec.read_only {
        return (
            call,
            Err(RestError {
                status: 403,
                message: "Access Denied".into(),
                code: 2010,
                errors: vec!["This API token is read-only".into()],
            }),
        );
    }
    (
        call,
        Ok(Caller {
            kind: rec.kind,
            user: rec.user,
        }),
    )
}

/// Runs a read after authentication and the rate limit, and answers with PagerDuty's
/// rate-limit headers.
fn read(s: &Arc<Shared>, headers: &HeaderMap, body: impl FnOnce(Caller) -> Reply) -> Response {
    let (call, caller) = begin(s, headers, false);
    call.finish(caller.and_then(body))
}

/// The user a write acts as: the `From` header's user, or the owner of a user token.
fn acting_user(world: &World, caller: Caller, headers: &HeaderMap) -> Result<usize, RestError> {
    match headers.get("from").map(|v| v.to_str().map(str::trim)) {
        Some(Ok(email)) if !email.is_empty() => {
            if !email.contains('@') {
                return Err(RestError {
                    status: 400,
                    message: "Malformed \"From\" header".into(),
                    code: 1028,
                    errors: vec![format!("{email:?} is not an email address")],
                });
            }
            world.user_by_email(email).ok_or_else(|| RestError {
                status: 400,
                message: "Invalid \"From\" header".into(),
                code: 2016,
                errors: vec![format!("No user on this account has the email {email}")],
            })
        }
        Some(Err(_)) => Err(RestError::new(400, 1028, "Malformed \"From\" header")),
        _ => match (caller.kind, caller.user) {
            (TokenKind::User, Some(u)) => Ok(u),
            _ => Err(RestError {
                status: 400,
                message: "You must specify a user's email address in the \"From\" header to perform this action".into(),
                code: 2016,
                errors: Vec::new(),
            }),
        },
    }
}

// ---------------------------------------------------------------- query parsing

struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<String>) -> Result<Query, RestError> {
        let raw = raw.unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw)
            .map_err(|e| RestError::invalid([format!("query string: {e}")]))?;
        Ok(Query { pairs })
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name[]=a&name[]=b`, also accepting `name=a` as PagerDuty does.
    fn many(&self, name: &str) -> Vec<&str> {
        let bracket = format!("{name}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == bracket || k == name)
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, RestError> {
        match self.one(name) {
            None | Some("") => Ok(None),
            Some(v) => parse_time(v).map(Some).ok_or_else(|| {
                RestError::invalid([format!("{name}: {v:?} is not an ISO 8601 date-time")])
            }),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, RestError> {
        match self.one(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(RestError::invalid([format!(
                "{name}: {v:?} is not true or false"
            )])),
        }
    }

    /// `offset`, `limit`, `total` with PagerDuty's rules: limit defaults to 25 and is capped at
    /// 100; `offset + limit` beyond 10,000 is refused.
    fn paging(&self) -> Result<(u64, u64, bool), RestError> {
        let num = |name: &str| -> Result<Option<u64>, RestError> {
            match self.one(name) {
                None | Some("") => Ok(None),
                Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                    RestError::invalid([format!("{name}: {v:?} is not a non-negative integer")])
                }),
            }
        };
        let offset = num("offset")?.unwrap_or(0);
        let limit = num("limit")?.unwrap_or(25).clamp(1, 100);
        // saturating: an offset near u64::MAX must be refused, not overflow.
        if offset.saturating_add(limit) > MAX_OFFSET {
            return Err(RestError::invalid([format!(
                "offset + limit must not exceed {MAX_OFFSET} (got offset {offset}, limit {limit}); narrow the query with since/until to see further"
            )]));
        }
        let total = self.bool("total")?.unwrap_or(false);
        Ok((offset, limit, total))
    }
}

fn parse_time(v: &str) -> Option<Timestamp> {
    if let Ok(t) = v.parse::<Timestamp>() {
        return Some(t);
    }
    // Dates and offset-less times are read as UTC, as PagerDuty does without time_zone.
    if let Ok(dt) = v.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    v.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

/// One page of `found` (world indices in list order). Only the page is rendered: an account
/// can hold tens of thousands of incidents, walked a hundred at a time.
fn page(
    key: &str,
    found: &[usize],
    (offset, limit, total): (u64, u64, bool),
    render: impl Fn(usize) -> Value,
) -> Response {
    let count = found.len() as u64;
    let slice: Vec<Value> = found
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|&i| render(i))
        .collect();
    json_response(
        200,
        &json!({
            key: slice,
            "limit": limit,
            "offset": offset,
            "more": offset + limit < count,
            "total": if total { json!(count) } else { Value::Null },
        }),
    )
}

async fn read_json(body: Body, headers: &HeaderMap) -> Result<Value, RestError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The media type must match exactly; `application/jsonp` or `application/json-seq` is no
    // JSON body to PagerDuty. Parameters such as `charset` are allowed.
    let media_type = ct.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(RestError::invalid([format!(
            "Content-Type must be application/json (got {:?})",
            if ct.is_empty() { "nothing" } else { ct }
        )]));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| RestError {
            status: 413,
            message: "Request Entity Too Large".into(),
            code: 2001,
            errors: vec![format!("request bodies are limited to {MAX_BODY} bytes")],
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RestError::invalid([format!("request body is not valid JSON: {e}")]))
}

fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn string_field(v: &Value, path: &str, required: bool) -> Result<Option<String>, RestError> {
    match field(v, path) {
        None if required => Err(RestError::invalid([format!("{path} is required")])),
        None => Ok(None),
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            Err(RestError::invalid([format!("{path} must not be blank")]))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RestError::invalid([format!("{path} must be a string")])),
    }
}

fn enum_field<T>(
    v: &Value,
    path: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, RestError> {
    match string_field(v, path, false)? {
        None => Ok(None),
        Some(s) => parse(&s)
            .map(Some)
            .ok_or_else(|| RestError::invalid([format!("{path}: {s:?} is not one of {allowed}")])),
    }
}

fn patch_from(v: &Value, prefix: &str) -> Result<IncidentPatch, RestError> {
    let p = |f: &str| format!("{prefix}.{f}");
    if let Some(t) = string_field(v, &p("type"), false)?
        && t != "incident_reference"
        && t != "incident"
    {
        return Err(RestError::invalid([format!(
            "{}: {t:?} is not incident_reference",
            p("type")
        )]));
    }
    Ok(IncidentPatch {
        status: enum_field(
            v,
            &p("status"),
            IncidentStatus::parse,
            "triggered, acknowledged, resolved",
        )?,
        resolution: string_field(v, &p("resolution"), false)?,
        title: string_field(v, &p("title"), false)?,
        urgency: enum_field(v, &p("urgency"), Urgency::parse, "high, low")?,
    })
}

// ---------------------------------------------------------------- incidents

async fn list_incidents(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let now = Timestamp::now();
        let statuses = q
            .many("statuses")
            .into_iter()
            .map(|v| {
                IncidentStatus::parse(v).ok_or_else(|| {
                    RestError::invalid([format!(
                        "statuses[]: {v:?} is not triggered, acknowledged or resolved"
                    )])
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let urgencies = q
            .many("urgencies")
            .into_iter()
            .map(|v| {
                Urgency::parse(v).ok_or_else(|| {
                    RestError::invalid([format!("urgencies[]: {v:?} is not high or low")])
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let service_ids = q.many("service_ids");
        let user_ids = q.many("user_ids");
        let team_ids = q.many("team_ids");
        let key = q.one("incident_key");
        let all = match q.one("date_range") {
            None => false,
            Some("all") => true,
            Some(v) => {
                return Err(RestError::invalid([format!(
                    "date_range: {v:?} is not \"all\""
                )]));
            }
        };
        let since = q.time("since")?;
        let until = q.time("until")?;
        if let (Some(a), Some(b)) = (since, until)
            && a > b
        {
            return Err(RestError::invalid([
                "since must be before until".to_string()
            ]));
        }
        // PagerDuty's default window is the last month.
        let (since, until) = if all {
            (None, None)
        } else {
            (
                Some(since.unwrap_or(now - jiff::SignedDuration::from_hours(24 * 30))),
                Some(until.unwrap_or(now + jiff::SignedDuration::from_secs(1))),
            )
        };
        let sort = parse_sort(q.one("sort_by"))?;
        let include: Vec<String> = q.many("include").into_iter().map(String::from).collect();
        let world = s.world();
        let mut found: Vec<usize> = (0..world.incidents.len())
            .filter(|&i| {
                let inc = &world.incidents[i];
                (statuses.is_empty() || statuses.contains(&inc.status))
                    && (urgencies.is_empty() || urgencies.contains(&inc.urgency))
                    && (service_ids.is_empty() || service_ids.contains(&world.services[inc.service].id.as_str()))
                    && (user_ids.is_empty()
                        || inc.assignee.is_some_and(|(_, u)| user_ids.contains(&world.users[u].id.as_str())))
                    // The emulator has no teams: a team filter matches nothing.
                    && team_ids.is_empty()
                    && key.is_none_or(|k| inc.incident_key == k)
                    && since.is_none_or(|t| inc.created_at >= t)
                    && until.is_none_or(|t| inc.created_at < t)
            })
            .collect();
        found.sort_by(|&a, &b| {
            let (x, y) = (&world.incidents[a], &world.incidents[b]);
            let mut ord = std::cmp::Ordering::Equal;
            for (field, desc) in &sort {
                let o = match field.as_str() {
                    "created_at" => x.created_at.cmp(&y.created_at),
                    "resolved_at" => x.resolved_at.cmp(&y.resolved_at),
                    "urgency" => x.urgency.as_str().cmp(y.urgency.as_str()),
                    _ => x.number.cmp(&y.number),
                };
                let o = if *desc { o.reverse() } else { o };
                ord = ord.then(o);
            }
            ord.then(x.number.cmp(&y.number))
        });
        Ok(page("incidents", &found, paging, |i| {
            world.incident_json(i, &include)
        }))
    })
}

fn parse_sort(v: Option<&str>) -> Result<Vec<(String, bool)>, RestError> {
    let Some(v) = v else {
        return Ok(vec![("incident_number".into(), false)]);
    };
    v.split(',')
        .map(|part| {
            let (field, dir) = part.split_once(':').unwrap_or((part, "asc"));
            if !["incident_number", "created_at", "resolved_at", "urgency"].contains(&field) {
                return Err(RestError::invalid([format!(
                    "sort_by: {field:?} is not incident_number, created_at, resolved_at or urgency"
                )]));
            }
            match dir {
                "asc" => Ok((field.to_owned(), false)),
                "desc" => Ok((field.to_owned(), true)),
                d => Err(RestError::invalid([format!(
                    "sort_by: direction {d:?} is not asc or desc"
                )])),
            }
        })
        .collect()
}

fn incident_idx(world: &World, id: &str) -> Result<usize, RestError> {
    world
        .incident_by_id(id)
        .ok_or_else(|| RestError::not_found("Incident"))
}

async fn get_incident(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let include: Vec<String> = q.many("include").into_iter().map(String::from).collect();
        let world = s.world();
        let i = incident_idx(&world, &id)?;
        Ok(json_response(
            200,
            &json!({"incident": world.incident_json(i, &include)}),
        ))
    })
}

async fn update_incident(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    body: Body,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        if field(&v, "incident").is_none() {
            return Err(RestError::invalid(["incident is required".to_string()]));
        }
        let patch = patch_from(&v, "incident")?;
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        let i = incident_idx(&world, &id)?;
        world.check_update(i, &patch)?;
        world.apply_update(i, &patch, user, Timestamp::now());
        s.flush(&mut world);
        Ok(json_response(
            200,
            &json!({"incident": world.incident_json(i, &[])}),
        ))
    }
    .await;
    call.finish(r)
}

/// `PUT /incidents/{id}/merge`: the sources' alerts move to the target, the sources are resolved
/// with a `merge_resolve_reason` naming it. All or nothing: every source is checked first.
async fn merge_incidents(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    body: Body,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        let list = match field(&v, "source_incidents") {
            None => {
                return Err(RestError::invalid([
                    "source_incidents is required".to_string()
                ]));
            }
            Some(Value::Array(a)) if a.is_empty() => {
                return Err(RestError::invalid([
                    "source_incidents must list at least one incident".to_string(),
                ]));
            }
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(RestError::invalid([
                    "source_incidents must be an array of incident references".to_string(),
                ]));
            }
        };
        let mut source_ids = Vec::with_capacity(list.len());
        for (n, item) in list.iter().enumerate() {
            let wrapped = json!({ "source": item });
            let prefix = format!("source_incidents[{n}]");
            let named = |e: RestError| RestError {
                errors: e
                    .errors
                    .iter()
                    .map(|m| m.replace("source.", &format!("{prefix}.")))
                    .collect(),
                ..e
            };
            if !item.is_object() {
                return Err(RestError::invalid([format!(
                    "{prefix} must be an incident reference ({{\"id\", \"type\": \"incident_reference\"}})"
                )]));
            }
            let sid = string_field(&wrapped, "source.id", true)
                .map_err(named)?
                .unwrap_or_default();
            if let Some(t) = string_field(&wrapped, "source.type", false).map_err(named)?
                && t != "incident_reference"
                && t != "incident"
            {
                return Err(RestError::invalid([format!(
                    "{prefix}.type: {t:?} is not incident_reference"
                )]));
            }
            source_ids.push(sid);
        }
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        let target = incident_idx(&world, &id)?;
        let mut sources = Vec::with_capacity(source_ids.len());
        for (n, sid) in source_ids.iter().enumerate() {
            let i = world.incident_by_id(sid).ok_or_else(|| RestError {
                errors: vec![format!("source_incidents[{n}].id: incident {sid} not found")],
                ..RestError::not_found("Incident")
            })?;
            sources.push(i);
        }
        world.check_merge(target, &sources)?;
        world.apply_merge(target, &sources, user, Timestamp::now());
        s.flush(&mut world);
        // The published contract answers with a reference to the target (schema and example).
        Ok(json_response(
            200,
            &json!({"incident": world.incident_ref(target)}),
        ))
    }
    .await;
    call.finish(r)
}

async fn bulk_update(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        let Some(list) = field(&v, "incidents").and_then(Value::as_array) else {
            return Err(RestError::invalid([
                "incidents must be an array".to_string()
            ]));
        };
        if list.len() > MAX_BULK {
            return Err(RestError {
                status: 413,
                message: "Request Entity Too Large".into(),
                code: 2001,
                errors: vec![format!(
                    "At most {MAX_BULK} incidents can be updated at once; got {}",
                    list.len()
                )],
            });
        }
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        // All or nothing: every element is checked before any is applied.
        let mut plan = Vec::with_capacity(list.len());
        for (n, item) in list.iter().enumerate() {
            let wrapped = json!({"incident": item});
            let prefix = format!("incidents[{n}]");
            let id = string_field(&wrapped, "incident.id", true)
                .map_err(|_| RestError::invalid([format!("{prefix}.id is required")]))?
                .unwrap_or_default();
            let patch = patch_from(&wrapped, "incident").map_err(|mut e| {
                e.errors = e
                    .errors
                    .iter()
                    .map(|m| m.replace("incident.", &format!("{prefix}.")))
                    .collect();
                e
            })?;
            let i = world.incident_by_id(&id).ok_or_else(|| {
                RestError::invalid([format!("{prefix}.id: incident {id} not found")])
            })?;
            world.check_update(i, &patch).map_err(|mut e| {
                e.errors = e.errors.iter().map(|m| format!("{prefix}: {m}")).collect();
                e
            })?;
            // The world is only changed after the whole batch passed, so an earlier element
            // resolving the same incident is not visible to `check_update`; applied one by one,
            // the later change would be refused.
            let resolved_earlier = plan.iter().any(|(j, p): &(usize, IncidentPatch)| {
                *j == i && p.status == Some(IncidentStatus::Resolved)
            });
            if resolved_earlier && patch.status.is_some() {
                return Err(RestError {
                    status: 400,
                    message: "Incident Already Resolved".into(),
                    code: 1001,
                    errors: vec![format!(
                        "{prefix}: incident {id} is resolved by an earlier element of this batch"
                    )],
                });
            }
            plan.push((i, patch));
        }
        let now = Timestamp::now();
        for (i, patch) in &plan {
            world.apply_update(*i, patch, user, now);
        }
        s.flush(&mut world);
        let out: Vec<Value> = plan
            .iter()
            .map(|(i, _)| world.incident_json(*i, &[]))
            .collect();
        Ok(json_response(200, &json!({"incidents": out})))
    }
    .await;
    call.finish(r)
}

async fn create_incident(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        if field(&v, "incident").is_none() {
            return Err(RestError::invalid(["incident is required".to_string()]));
        }
        if let Some(t) = string_field(&v, "incident.type", false)?
            && t != "incident"
        {
            return Err(RestError::invalid([format!(
                "incident.type: {t:?} is not \"incident\""
            )]));
        }
        let title = string_field(&v, "incident.title", true)?.unwrap_or_default();
        let service_id = string_field(&v, "incident.service.id", true)?.unwrap_or_default();
        let urgency = enum_field(&v, "incident.urgency", Urgency::parse, "high, low")?;
        let incident_key = string_field(&v, "incident.incident_key", false)?;
        let body_details = match field(&v, "incident.body.details") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        let i = world.create_incident(
            NewIncidentReq {
                title,
                service_id,
                urgency,
                incident_key,
                body_details,
            },
            user,
            Timestamp::now(),
        )?;
        s.flush(&mut world);
        Ok(json_response(
            201,
            &json!({"incident": world.incident_json(i, &[])}),
        ))
    }
    .await;
    call.finish(r)
}

async fn list_notes(State(s): State<Arc<Shared>>, headers: HeaderMap, Id(id): Id) -> Response {
    read(&s, &headers, |_| {
        let world = s.world();
        let i = incident_idx(&world, &id)?;
        let notes: Vec<Value> = (0..world.notes.len())
            .filter(|&n| world.notes[n].incident == i)
            .map(|n| world.note_json(n))
            .collect();
        Ok(json_response(200, &json!({"notes": notes})))
    })
}

async fn create_note(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    body: Body,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        let content = string_field(&v, "note.content", true)?.unwrap_or_default();
        if content.chars().count() > 25_000 {
            return Err(RestError::invalid([
                "note.content is longer than 25000 characters".to_string(),
            ]));
        }
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        let i = incident_idx(&world, &id)?;
        if world.notes.iter().filter(|n| n.incident == i).count() >= 2000 {
            return Err(RestError::invalid([
                "An incident can have at most 2000 notes".to_string(),
            ]));
        }
        let n = world.add_note(i, user, content, Timestamp::now());
        s.flush(&mut world);
        Ok(json_response(200, &json!({"note": world.note_json(n)})))
    }
    .await;
    call.finish(r)
}

fn log_filter(q: &Query) -> Result<(Option<Timestamp>, Option<Timestamp>), RestError> {
    let since = q.time("since")?;
    let until = q.time("until")?;
    q.bool("is_overview")?;
    Ok((since, until))
}

/// Log entries newest first, as PagerDuty lists them.
fn logs_page(world: &World, q: &Query, incident: Option<usize>) -> Reply {
    let paging = q.paging()?;
    let (since, until) = log_filter(q)?;
    let found: Vec<usize> = (0..world.logs.len())
        .rev()
        .filter(|&l| {
            let log = &world.logs[l];
            incident.is_none_or(|i| log.incident == i)
                && since.is_none_or(|t| log.created_at >= t)
                && until.is_none_or(|t| log.created_at < t)
        })
        .collect();
    Ok(page("log_entries", &found, paging, |l| world.log_json(l)))
}

async fn incident_log_entries(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let world = s.world();
        let i = incident_idx(&world, &id)?;
        logs_page(&world, &q, Some(i))
    })
}

async fn list_log_entries(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let world = s.world();
        logs_page(&world, &q, None)
    })
}

async fn get_log_entry(State(s): State<Arc<Shared>>, headers: HeaderMap, Id(id): Id) -> Response {
    read(&s, &headers, |_| {
        let world = s.world();
        let l = world
            .logs
            .iter()
            .position(|l| l.id == id)
            .ok_or_else(|| RestError::not_found("Log Entry"))?;
        Ok(json_response(200, &json!({"log_entry": world.log_json(l)})))
    })
}

async fn incident_alerts(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let statuses = q.many("statuses");
        if let Some(bad) = statuses
            .iter()
            .find(|s| **s != "triggered" && **s != "resolved")
        {
            return Err(RestError::invalid([format!(
                "statuses[]: {bad:?} is not triggered or resolved"
            )]));
        }
        let world = s.world();
        let i = incident_idx(&world, &id)?;
        let found: Vec<usize> = world.incidents[i]
            .alerts
            .iter()
            .copied()
            .filter(|&a| {
                let st = if world.alerts[a].resolved {
                    "resolved"
                } else {
                    "triggered"
                };
                statuses.is_empty() || statuses.contains(&st)
            })
            .collect();
        Ok(page("alerts", &found, paging, |a| world.alert_json(a)))
    })
}

// ---------------------------------------------------------------- services

async fn list_services(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let name = q.one("query").map(str::to_lowercase);
        let include = q.many("include");
        let world = s.world();
        let now = Timestamp::now();
        let found: Vec<usize> = (0..world.services.len())
            .filter(|&i| {
                name.as_ref()
                    .is_none_or(|n| world.services[i].name.to_lowercase().contains(n))
            })
            .collect();
        Ok(page("services", &found, paging, |i| {
            world.service_json_including(i, now, &include)
        }))
    })
}

async fn get_service(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let include = q.many("include");
        let world = s.world();
        let i = world
            .service_by_id(&id)
            .ok_or_else(|| RestError::not_found("Service"))?;
        Ok(json_response(
            200,
            &json!({"service": world.service_json_including(i, Timestamp::now(), &include)}),
        ))
    })
}

/// Only what changes how the emulator behaves: `status` (active/disabled), name, description.
async fn update_service(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
    body: Body,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        caller?;
        let v = read_json(body, &headers).await?;
        let status = string_field(&v, "service.status", false)?;
        let name = string_field(&v, "service.name", false)?;
        let description = string_field(&v, "service.description", false)?;
        let mut world = s.world();
        let i = world
            .service_by_id(&id)
            .ok_or_else(|| RestError::not_found("Service"))?;
        match status.as_deref() {
            None => {}
            Some("disabled") => world.services[i].disabled = true,
            Some("active") => world.services[i].disabled = false,
            Some(other) => {
                return Err(RestError::invalid([format!(
                    "service.status: {other:?} is not active or disabled"
                )]));
            }
        }
        if let Some(n) = name {
            world.services[i].name = n;
        }
        if let Some(d) = description {
            world.services[i].description = Some(d);
        }
        Ok(json_response(
            200,
            &json!({"service": world.service_json(i, Timestamp::now())}),
        ))
    }
    .await;
    call.finish(r)
}

// ---------------------------------------------------------------- maintenance windows

async fn list_windows(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let service_ids = q.many("service_ids");
        let filter = q.one("filter").unwrap_or("all");
        if !["past", "future", "ongoing", "open", "all"].contains(&filter) {
            return Err(RestError::invalid([format!(
                "filter: {filter:?} is not past, future, ongoing, open or all"
            )]));
        }
        let now = Timestamp::now();
        let world = s.world();
        let found: Vec<usize> = (0..world.windows.len())
            .filter(|&w| {
                let win = &world.windows[w];
                let state_ok = match filter {
                    "past" => win.end <= now,
                    "future" => win.start > now,
                    "ongoing" => win.start <= now && now < win.end,
                    "open" => now < win.end,
                    _ => true,
                };
                state_ok
                    && (service_ids.is_empty()
                        || win
                            .services
                            .iter()
                            .any(|&sv| service_ids.contains(&world.services[sv].id.as_str())))
            })
            .collect();
        Ok(page("maintenance_windows", &found, paging, |w| {
            world.window_json(w)
        }))
    })
}

async fn get_window(State(s): State<Arc<Shared>>, headers: HeaderMap, Id(id): Id) -> Response {
    read(&s, &headers, |_| {
        let world = s.world();
        let w = world
            .window_by_id(&id)
            .ok_or_else(|| RestError::not_found("Maintenance Window"))?;
        Ok(json_response(
            200,
            &json!({"maintenance_window": world.window_json(w)}),
        ))
    })
}

async fn create_window(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        let caller = caller?;
        let v = read_json(body, &headers).await?;
        let time = |name: &str| -> Result<Timestamp, RestError> {
            let raw =
                string_field(&v, &format!("maintenance_window.{name}"), true)?.unwrap_or_default();
            parse_time(&raw).ok_or_else(|| {
                RestError::invalid([format!(
                    "maintenance_window.{name}: {raw:?} is not an ISO 8601 date-time"
                )])
            })
        };
        let start = time("start_time")?;
        let end = time("end_time")?;
        if end <= start {
            return Err(RestError::invalid([
                "maintenance_window.end_time must be after start_time".to_string(),
            ]));
        }
        let description = string_field(&v, "maintenance_window.description", false)?;
        let refs = field(&v, "maintenance_window.services")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                RestError::invalid([
                    "maintenance_window.services must list at least one service".to_string()
                ])
            })?;
        let mut world = s.world();
        let user = acting_user(&world, caller, &headers)?;
        let mut services = Vec::new();
        for (n, r) in refs.iter().enumerate() {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            let idx = world.service_by_id(id).ok_or_else(|| {
                RestError::invalid([format!(
                    "maintenance_window.services[{n}].id: service {id:?} not found"
                )])
            })?;
            services.push(idx);
        }
        let w = world.add_window(start, end, description, services, Some(user));
        Ok(json_response(
            201,
            &json!({"maintenance_window": world.window_json(w)}),
        ))
    }
    .await;
    call.finish(r)
}

async fn delete_window(State(s): State<Arc<Shared>>, headers: HeaderMap, Id(id): Id) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = (|| {
        caller?;
        let mut world = s.world();
        let w = world
            .window_by_id(&id)
            .ok_or_else(|| RestError::not_found("Maintenance Window"))?;
        if world.windows[w].end <= Timestamp::now() {
            return Err(RestError::new(
                405,
                2001,
                "Past maintenance windows cannot be deleted",
            ));
        }
        world.windows.remove(w);
        Ok(empty(204))
    })();
    call.finish(r)
}

fn empty(status: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = axum::http::StatusCode::from_u16(status).expect("valid status");
    r
}

// ---------------------------------------------------------------- users

async fn list_users(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let name = q.one("query").map(str::to_lowercase);
        let world = s.world();
        let found: Vec<usize> = (0..world.users.len())
            .filter(|&u| {
                name.as_ref().is_none_or(|n| {
                    world.users[u].name.to_lowercase().contains(n)
                        || world.users[u].email.to_lowercase().contains(n)
                })
            })
            .collect();
        Ok(page("users", &found, paging, |u| world.user_json(u)))
    })
}

async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap, Id(id): Id) -> Response {
    read(&s, &headers, |_| {
        let world = s.world();
        let u = world
            .user_by_id(&id)
            .ok_or_else(|| RestError::not_found("User"))?;
        Ok(json_response(200, &json!({"user": world.user_json(u)})))
    })
}

async fn get_me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    read(&s, &headers, |caller| {
        let world = s.world();
        let u = caller.user.ok_or_else(|| {
            RestError::invalid([
                "/users/me needs a user-level API token; this is an account-level token"
                    .to_string(),
            ])
        })?;
        Ok(json_response(200, &json!({"user": world.user_json(u)})))
    })
}

// ---------------------------------------------------------------- webhook subscriptions

async fn list_subscriptions(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    read(&s, &headers, |_| {
        let q = Query::parse(q)?;
        let paging = q.paging()?;
        let world = s.world();
        let found: Vec<usize> = (0..world.subscriptions.len()).collect();
        Ok(page("webhook_subscriptions", &found, paging, |i| {
            subscription_view(&s, &world, i, false)
        }))
    })
}

/// A subscription as PagerDuty shows it, with the pause the delivery worker may have imposed.
fn subscription_view(s: &Shared, world: &World, i: usize, with_secret: bool) -> Value {
    let mut v = world.subscription_json(i, with_secret);
    v["delivery_method"]["temporarily_disabled"] =
        json!(s.webhooks.is_paused(&world.subscriptions[i].id));
    v
}

fn subscription_idx(world: &World, id: &str) -> Result<usize, RestError> {
    world
        .subscriptions
        .iter()
        .position(|s| s.id == id)
        .ok_or_else(|| RestError::not_found("Webhook Subscription"))
}

async fn get_subscription(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
) -> Response {
    read(&s, &headers, |_| {
        let world = s.world();
        let i = subscription_idx(&world, &id)?;
        Ok(json_response(
            200,
            &json!({"webhook_subscription": subscription_view(&s, &world, i, false)}),
        ))
    })
}

async fn create_subscription(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = async {
        caller?;
        let v = read_json(body, &headers).await?;
        let p = "webhook_subscription";
        let url = string_field(&v, &format!("{p}.delivery_method.url"), true)?.unwrap_or_default();
        if url::Url::parse(&url).is_err() {
            return Err(RestError::invalid([format!("{p}.delivery_method.url: {url:?} is not a URL")]));
        }
        if let Some(t) = string_field(&v, &format!("{p}.delivery_method.type"), false)?
            && t != "http_delivery_method"
        {
            return Err(RestError::invalid([format!("{p}.delivery_method.type: {t:?} is not http_delivery_method")]));
        }
        let events: Vec<String> = match field(&v, &format!("{p}.events")) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            _ => return Err(RestError::invalid([format!("{p}.events must be an array of event types")])),
        };
        let filter_type = string_field(&v, &format!("{p}.filter.type"), true)?.unwrap_or_default();
        let mut world = s.world();
        let service = match filter_type.as_str() {
            "account_reference" | "team_reference" => None,
            "service_reference" => {
                let id = string_field(&v, &format!("{p}.filter.id"), true)?.unwrap_or_default();
                Some(world.service_by_id(&id).ok_or_else(|| {
                    RestError::invalid([format!("{p}.filter.id: service {id:?} not found")])
                })?)
            }
            other => {
                return Err(RestError::invalid([format!(
                    "{p}.filter.type: {other:?} is not account_reference, service_reference or team_reference"
                )]));
            }
        };
        let i = world.add_subscription(SubscriptionRec {
            id: new_id('P', 7),
            url,
            secret: new_secret(),
            events,
            service,
            version: WebhookVersion::V3,
            description: string_field(&v, &format!("{p}.description"), false)?,
            active: field(&v, &format!("{p}.active")).and_then(Value::as_bool).unwrap_or(true),
        });
        Ok(json_response(200, &json!({"webhook_subscription": subscription_view(&s, &world, i, true)})))
    }
    .await;
    call.finish(r)
}

async fn delete_subscription(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = (|| {
        caller?;
        let mut world = s.world();
        let i = subscription_idx(&world, &id)?;
        world.subscriptions.remove(i);
        Ok(empty(204))
    })();
    call.finish(r)
}

async fn ping_subscription(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Id(id): Id,
) -> Response {
    let (call, caller) = begin(&s, &headers, true);
    let r = (|| {
        caller?;
        let mut world = s.world();
        let i = subscription_idx(&world, &id)?;
        world.ping(i, Timestamp::now());
        s.flush(&mut world);
        Ok(empty(202))
    })();
    call.finish(r)
}
