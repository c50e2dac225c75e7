//! Whatever a client sends — any body bytes, any Content-Type, any query string, any
//! Authorization and From header — every route the emulator serves answers with a status
//! PagerDuty uses and a body of the kind the route promises, and never panics.
//!
//! Requests go through the router in-process, so one case costs microseconds and each case is
//! sent to every route of its group.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, header};
use http_body_util::BodyExt;
use pagerduty::{Event, Severity};
use pagerduty_emulator::seed::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, DEMO_V1_SERVICE_KEY};
use pagerduty_emulator::world::{Effect, SubscriptionRec, World};
use pagerduty_emulator::{Seed, Shared, router};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every status PagerDuty's APIs answer with, short of its own 5xx failures.
const PAGERDUTY_STATUSES: [u16; 12] = [200, 201, 202, 204, 400, 401, 403, 404, 405, 413, 415, 429];

const CASES: u32 = 300;

/// What a route answers with when it answers at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// PagerDuty's APIs: JSON except where the contract documents no content (204, ping's 202).
    Api,
    /// `/_emulator/...`: always JSON.
    Admin,
    /// The browser view: HTML.
    Html,
}

/// Ids the routes know, so that some requests get past the lookup to the body and the rules.
struct Known {
    incident: String,
    log_entry: String,
    window: String,
    subscription: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The demo account with one of everything that has an id. Rate limits are off so that cases
/// exercise the handlers rather than the limiter (which `rest.rs` tests on its own).
fn account() -> (Arc<Shared>, Known) {
    let mut seed = Seed::demo();
    seed.settings.events_per_minute = 0;
    seed.settings.rest_requests_per_minute = 0;
    let mut world = World::new(seed, "http://127.0.0.1".into()).expect("demo seed is valid");
    let now = jiff::Timestamp::now();
    let ev = Event::trigger(DEMO_ROUTING_KEY, "disk full", "db-1", Severity::Critical)
        .with_dedup_key("any-bytes");
    let incident = match world.apply_event(&ev, now).expect("demo key").1 {
        Effect::Created { incident } => incident,
        other => panic!("no incident: {other:?}"),
    };
    let window = world.add_window(
        now + jiff::SignedDuration::from_hours(1),
        now + jiff::SignedDuration::from_hours(2),
        Some("later".into()),
        vec![0],
        None,
    );
    let sub = world.add_subscription(SubscriptionRec {
        id: "PSUB001".into(),
        // Nothing listens there: deliveries fail fast in the background.
        url: "http://127.0.0.1:9/".into(),
        secret: "s".repeat(32),
        events: Vec::new(),
        service: None,
        version: Default::default(),
        description: None,
        active: true,
    });
    let known = Known {
        incident,
        log_entry: world.logs[0].id.clone(),
        window: world.windows[window].id.clone(),
        subscription: world.subscriptions[sub].id.clone(),
    };
    (Shared::new(world, false), known)
}

/// Each REST path with `{id}` left to the case, with the four methods clients use.
fn rest_routes() -> Vec<(Method, String)> {
    let paths = [
        "/incidents",
        "/incidents/{id}",
        "/incidents/{id}/notes",
        "/incidents/{id}/log_entries",
        "/incidents/{id}/alerts",
        "/log_entries",
        "/log_entries/{id}",
        "/services",
        "/services/{id}",
        "/maintenance_windows",
        "/maintenance_windows/{id}",
        "/users",
        "/users/me",
        "/users/{id}",
        "/webhook_subscriptions",
        "/webhook_subscriptions/{id}",
        "/webhook_subscriptions/{id}/ping",
    ];
    paths
        .iter()
        .flat_map(|p| {
            [Method::GET, Method::PUT, Method::POST, Method::DELETE]
                .into_iter()
                .map(move |m| (m, p.to_string()))
        })
        .collect()
}

fn events_routes() -> Vec<(Method, String)> {
    [
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/generic/2010-04-15/create_event.json",
    ]
    .into_iter()
    .map(|p| (Method::POST, p.to_string()))
    .collect()
}

fn admin_routes() -> Vec<(Method, String)> {
    [
        (Method::GET, "/_emulator/state"),
        (Method::GET, "/_emulator/events"),
        (Method::GET, "/_emulator/deliveries"),
        (Method::POST, "/_emulator/reset"),
        (Method::GET, "/_emulator/faults"),
        (Method::POST, "/_emulator/faults"),
        (Method::DELETE, "/_emulator/faults"),
        (Method::GET, "/_emulator/settings"),
        (Method::PUT, "/_emulator/settings"),
        (Method::GET, "/_emulator/incidents/{id}"),
    ]
    .into_iter()
    .map(|(m, p)| (m, p.to_string()))
    .collect()
}

fn html_routes() -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/".to_string()),
        (Method::GET, "/ui/incidents/x".to_string()),
        (Method::GET, "/ui/incidents/{id}".to_string()),
    ]
}

// ---------------------------------------------------------------- inputs

#[derive(Debug, Clone)]
struct Input {
    id: String,
    query: Option<String>,
    content_type: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    from: Option<Vec<u8>>,
    body: Bytes,
}

/// Bytes a header may carry: control characters (which `http` refuses to build) become `?`;
/// everything else, bytes above 0x7f included, stays.
fn header_safe(mut b: Vec<u8>) -> Vec<u8> {
    for c in &mut b {
        if (*c < 0x20 && *c != b'\t') || *c == 0x7f {
            *c = b'?';
        }
    }
    b
}

fn header_value(known: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        3 => proptest::sample::select(known).prop_map(|s| Some(s.as_bytes().to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(|b| Some(header_safe(b))),
    ]
}

/// Percent-encodes what a URI cannot carry, but leaves `%` alone so that broken escapes
/// (`%zz`, `%FF` that is not UTF-8) reach the server.
fn uri_safe(raw: &[u8]) -> String {
    let mut out = String::new();
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"%&=.+_~:,-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const QUERY_NAMES: &[&str] = &[
    "limit",
    "offset",
    "total",
    "statuses%5B%5D",
    "statuses",
    "service_ids%5B%5D",
    "user_ids%5B%5D",
    "team_ids%5B%5D",
    "urgencies%5B%5D",
    "incident_key",
    "since",
    "until",
    "date_range",
    "sort_by",
    "include%5B%5D",
    "filter",
    "query",
    "is_overview",
    "time_zone",
    "routing_key",
    "since_seq",
];

const QUERY_VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "25",
    "100",
    "101",
    "9900",
    "9901",
    "10000",
    "18446744073709551615",
    "99999999999999999999",
    "-1",
    "1e3",
    "true",
    "false",
    "all",
    "triggered",
    "acknowledged",
    "resolved",
    "high",
    "low",
    "PDEMO01",
    "PADA001",
    "created_at%3Adesc",
    "incident_number",
    "urgency%2Ccreated_at%3Adesc",
    "resolved_at%3Asideways",
    "2024-01-01",
    "2024-01-01T00%3A00%3A00Z",
    "2024-13-45",
    "-009999-01-01",
    "ongoing",
    "past",
    "future",
    "open",
    "body",
    "%FF",
];

/// `offset`/`limit` values: the edges of PagerDuty's rules and of `u64`.
fn paging_number() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(QUERY_VALUES).prop_map(String::from),
        1 => (0u64..10_100).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => (u64::MAX - 100..=u64::MAX).prop_map(|n| n.to_string()),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let raw = || proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| uri_safe(&b));
    let name =
        prop_oneof![4 => proptest::sample::select(QUERY_NAMES).prop_map(String::from), 1 => raw()];
    let value =
        prop_oneof![4 => proptest::sample::select(QUERY_VALUES).prop_map(String::from), 1 => raw()];
    // Paging is on nearly every list route, so it gets its own, likelier, pairs.
    let paging = (
        proptest::option::of(paging_number()),
        proptest::option::of(paging_number()),
    );
    prop_oneof![
        1 => Just(None),
        4 => (paging, proptest::collection::vec((name, value), 0..5)).prop_map(
            |((offset, limit), pairs)| {
                let mut all: Vec<String> =
                    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                all.extend(offset.map(|v| format!("offset={v}")));
                all.extend(limit.map(|v| format!("limit={v}")));
                Some(all.join("&"))
            }
        ),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Some(uri_safe(&b))),
    ]
}

const JSON_KEYS: &[&str] = &[
    "incident",
    "incidents",
    "id",
    "type",
    "status",
    "title",
    "urgency",
    "resolution",
    "service",
    "incident_key",
    "body",
    "details",
    "note",
    "content",
    "maintenance_window",
    "start_time",
    "end_time",
    "services",
    "description",
    "webhook_subscription",
    "delivery_method",
    "url",
    "events",
    "filter",
    "active",
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "summary",
    "source",
    "severity",
    "custom_details",
    "links",
    "images",
    "service_key",
    "event_type",
    "contexts",
    "kind",
    "count",
    "seconds",
    "delay_ms",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        proptest::sample::select(QUERY_VALUES).prop_map(Value::from),
        proptest::sample::select(JSON_KEYS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::vec((proptest::sample::select(JSON_KEYS), inner), 0..6).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

/// Bodies each route accepts, to be mutated: random bytes rarely get past the JSON parser.
fn templates(known: &Known) -> Vec<Value> {
    vec![
        json!({"incident": {"type": "incident_reference", "status": "acknowledged"}}),
        json!({"incident": {"type": "incident_reference", "status": "resolved", "resolution": "r"}}),
        json!({"incident": {"type": "incident", "title": "t", "urgency": "low", "incident_key": "k",
            "service": {"id": "PDEMO01", "type": "service_reference"},
            "body": {"type": "incident_body", "details": "d"}}}),
        json!({"incidents": [{"id": known.incident, "type": "incident_reference", "status": "acknowledged"}]}),
        json!({"note": {"content": "looking"}}),
        json!({"maintenance_window": {"type": "maintenance_window",
            "start_time": "2030-01-01T00:00:00Z", "end_time": "2030-01-02T00:00:00Z",
            "services": [{"id": "PDEMO02", "type": "service_reference"}]}}),
        json!({"service": {"status": "disabled", "name": "n"}}),
        json!({"webhook_subscription": {"type": "webhook_subscription",
            "delivery_method": {"type": "http_delivery_method", "url": "http://127.0.0.1:9/"},
            "events": ["incident.triggered"], "filter": {"type": "service_reference", "id": "PDEMO01"}}}),
        json!({"routing_key": DEMO_DB_ROUTING_KEY, "event_action": "trigger", "dedup_key": "d",
            "payload": {"summary": "s", "source": "h", "severity": "critical", "custom_details": {"a": 1}},
            "links": [{"href": "https://example.com"}], "images": [{"src": "https://example.com/i.png"}]}),
        json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "resolve", "dedup_key": "any-bytes"}),
        json!({"routing_key": DEMO_ROUTING_KEY, "payload": {"summary": "deploy", "source": "ci"}}),
        json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger", "description": "d",
            "incident_key": "v1", "contexts": [{"type": "link", "href": "https://example.com"}]}),
        json!({"kind": "status", "status": 503, "count": 1}),
        json!({"events_per_minute": 1, "max_received_events": 0}),
    ]
}

/// Replaces the `n`th value (in document order, containers included) with `leaf`.
fn replace_nth(v: &mut Value, n: &mut usize, leaf: &Value) -> bool {
    if *n == 0 {
        *v = leaf.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Object(map) => map.values_mut().any(|c| replace_nth(c, n, leaf)),
        Value::Array(items) => items.iter_mut().any(|c| replace_nth(c, n, leaf)),
        _ => false,
    }
}

fn body(templates: Vec<Value>) -> impl Strategy<Value = Bytes> {
    let mutated = (
        proptest::sample::select(templates),
        0usize..24,
        json_value(),
    )
        .prop_map(|(mut t, n, leaf)| {
            let _ = replace_nth(&mut t, &mut n.clone(), &leaf);
            t
        });
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(Bytes::from),
        4 => json_value().prop_map(|v| Bytes::from(serde_json::to_vec(&v).unwrap())),
        6 => mutated.prop_map(|v| Bytes::from(serde_json::to_vec(&v).unwrap())),
        // Past both PagerDuty's 512 KB event limit and the emulator's 1 MB REST limit.
        1 => (any::<u8>(), 500_000usize..1_100_000).prop_map(|(b, n)| Bytes::from(vec![b; n])),
    ]
}

fn input(known: &Known) -> impl Strategy<Value = Input> {
    let ids = vec![
        known.incident.clone(),
        known.log_entry.clone(),
        known.window.clone(),
        known.subscription.clone(),
        "PDEMO01".into(),
        "PADA001".into(),
        "any-bytes".into(),
    ];
    let id = prop_oneof![
        3 => proptest::sample::select(ids),
        // Percent-decoding these need not give UTF-8.
        1 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(|b| uri_safe(&b)),
    ];
    let content_type = header_value(&[
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.pagerduty+json;version=2",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]);
    let authorization = header_value(&[
        "Token token=emulator-account-token",
        "Token token=emulator-bob-token",
        "Token token=emulator-read-only-token",
        "Bearer emulator-account-token",
        "token token=emulator-account-token",
        "Token token=",
        "Token",
        "Basic Zm9vOmJhcg==",
    ]);
    let from = header_value(&[
        "ada@example.com",
        "bob@example.com",
        "BOB@EXAMPLE.COM",
        " ada@example.com ",
        "nobody@example.com",
        "not-an-email",
        "@",
        "",
    ]);
    (
        id,
        query(),
        content_type,
        authorization,
        from,
        body(templates(known)),
    )
        .prop_map(
            |(id, query, content_type, authorization, from, body)| Input {
                id,
                query,
                content_type,
                authorization,
                from,
                body,
            },
        )
}

// ---------------------------------------------------------------- the property

fn request(method: &Method, path: &str, input: &Input) -> Request<Body> {
    let path = path.replace("{id}", &input.id);
    let uri = match &input.query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut b = Request::builder().method(method.clone()).uri(&uri);
    for (name, value) in [
        (header::CONTENT_TYPE, &input.content_type),
        (header::AUTHORIZATION, &input.authorization),
        (header::FROM, &input.from),
    ] {
        if let Some(v) = value {
            b = b.header(name, HeaderValue::from_bytes(v).expect("header_safe bytes"));
        }
    }
    b.body(Body::from(input.body.clone()))
        .unwrap_or_else(|e| panic!("test built an invalid request {method} {uri}: {e}"))
}

async fn check(
    shared: &Arc<Shared>,
    kind: Kind,
    method: &Method,
    path: &str,
    input: &Input,
) -> Result<(), TestCaseError> {
    let req = request(method, path, input);
    let what = format!("{method} {}", req.uri());
    let resp = router(shared.clone())
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("in-memory bodies read")
        .to_bytes();
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    prop_assert!(
        PAGERDUTY_STATUSES.contains(&status),
        "{what}: status {status} is not one PagerDuty uses: {shown}"
    );
    let documented_empty = status == 204 || (status == 202 && path.ends_with("/ping"));
    match kind {
        _ if documented_empty => {
            prop_assert!(body.is_empty(), "{what}: {status} with a body: {shown}")
        }
        Kind::Api | Kind::Admin => {
            prop_assert!(
                content_type.starts_with("application/json"),
                "{what}: {status} as {content_type:?}: {shown}"
            );
            prop_assert!(
                serde_json::from_slice::<Value>(&body).is_ok(),
                "{what}: {status} body is not JSON: {shown}"
            );
        }
        Kind::Html => {
            prop_assert!(
                content_type.starts_with("text/html"),
                "{what}: {status} as {content_type:?}: {shown}"
            );
            prop_assert!(
                body.starts_with(b"<!doctype html>"),
                "{what}: not an HTML page: {shown}"
            );
        }
    }
    Ok(())
}

/// Sends each case to every route of the group, against one account that lives through all
/// cases (state left by earlier cases is part of what later ones meet).
fn run_group(kind: Kind, routes: Vec<(Method, String)>) {
    let rt = runtime();
    let (shared, known) = rt.block_on(async { account() });
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&input(&known), |input| {
        rt.block_on(async {
            for (method, path) in &routes {
                check(&shared, kind, method, path, &input).await?;
            }
            // A fault posted to the admin API would fail the next API request on purpose.
            shared.faults.clear();
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn rest_routes_answer_any_request_with_json() {
    run_group(Kind::Api, rest_routes());
}

#[test]
fn events_routes_answer_any_request_with_json() {
    run_group(Kind::Api, events_routes());
}

#[test]
fn admin_routes_answer_any_request_with_json() {
    run_group(Kind::Admin, admin_routes());
}

#[test]
fn html_routes_answer_any_request_with_html() {
    run_group(Kind::Html, html_routes());
}

/// Outside the REST API too, a method a route does not serve and a path id that is not UTF-8
/// once decoded get answers in the route's own kind, not axum's bare 405 or plain-text 400.
#[test]
fn outside_the_rest_api_wrong_methods_and_non_utf8_ids_answer_in_kind() {
    let rt = runtime();
    let (shared, _) = rt.block_on(async { account() });
    let input = |id: &str| Input {
        id: id.into(),
        query: None,
        content_type: None,
        authorization: None,
        from: None,
        body: Bytes::new(),
    };
    let cases = [
        (Kind::Api, Method::GET, "/v2/enqueue", "x"),
        (Kind::Api, Method::PUT, "/v2/change/enqueue", "x"),
        (
            Kind::Api,
            Method::GET,
            "/generic/2010-04-15/create_event.json",
            "x",
        ),
        (Kind::Admin, Method::GET, "/_emulator/reset", "x"),
        (Kind::Admin, Method::GET, "/_emulator/incidents/{id}", "%80"),
        (Kind::Html, Method::GET, "/ui/incidents/{id}", "%80"),
    ];
    let mut failures = Vec::new();
    for (kind, method, path, id) in cases {
        if let Err(e) = rt.block_on(check(&shared, kind, &method, path, &input(id))) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
