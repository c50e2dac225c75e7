//! The daemon's HTTP API under /api/v1, against a real daemon and the in-process emulator: every
//! route, its tokens and scopes, its errors, paging past PagerDuty's ceilings, bulk changes past
//! 250, PagerDuty's rate limiting, and the OpenAPI document, which must match its snapshot
//! (docs/api/openapi.json), list only routes that answer, and describe every answer the tests
//! get (each test's answers are checked against it at its end).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jiff::{SignedDuration, Timestamp};
use pagerbridge_server::api::openapi_document;
use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;
use pagerduty::{Event, Severity};
use pagerduty_emulator::world::Effect;
use pagerduty_emulator::{FaultKind, FaultSpec, Scope};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "read-token-0123456789abcdef";
const ADA: &str = "ada@example.com";

const TOKENS: &str = r#"
[[api.tokens]]
name = "ops-bot"
token = "admin-token-0123456789abcdef"
scope = "admin"

[[api.tokens]]
name = "dashboard"
token = "read-token-0123456789abcdef"
scope = "read"
"#;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------- set-up

/// What a test's daemon has.
struct Want {
    tokens: bool,
    pagerduty_token: bool,
    extra: String,
}

impl Default for Want {
    fn default() -> Self {
        Want {
            tokens: true,
            pagerduty_token: true,
            extra: String::new(),
        }
    }
}

struct Setup {
    pd: TestPd,
    daemon: Daemon,
    api: ApiClient,
}

async fn setup(want: Want) -> Setup {
    setup_with(TestPd::start().await, want).await
}

async fn setup_with(pd: TestPd, want: Want) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts {
        extra: format!("{}\n{}", if want.tokens { TOKENS } else { "" }, want.extra),
        ..Opts::default()
    };
    let mut text = config_text(&pd.url(), "data", &o);
    if want.pagerduty_token {
        text = text.replace(
            "[pagerduty]\n",
            &format!(
                "[pagerduty]\napi_token = \"{}\"\n",
                pagerduty_emulator::seed::DEMO_API_TOKEN
            ),
        );
    }
    let config = pagerbridge_config::Config::from_str(&text, "test.toml", dir.path())
        .unwrap_or_else(|e| panic!("test configuration: {e}"));
    let daemon = Daemon::start_config(config, dir).await;
    let api = ApiClient::new(&daemon.base);
    Setup { pd, daemon, api }
}

/// Opens `n` incidents on the demo service straight in the emulator's world, one a second up
/// to now (PagerDuty pages by creation time past its 10,000-offset ceiling).
fn seed_incidents(pd: &TestPd, n: usize) -> Vec<String> {
    let now = Timestamp::now();
    let mut world = pd.world();
    (0..n)
        .map(|i| {
            let ev = Event::trigger(
                DEMO_ROUTING_KEY,
                format!("seeded problem {i}"),
                "web-01",
                Severity::Critical,
            )
            .with_dedup_key(format!("seed-{i}"));
            let at = now - SignedDuration::from_secs((n - i) as i64);
            match world.apply_event(&ev, at).expect("known routing key").1 {
                Effect::Created { incident } => incident,
                other => panic!("seed {i} did not open an incident: {other:?}"),
            }
        })
        .collect()
}

fn status_in_pd(pd: &TestPd, id: &str) -> IncidentStatus {
    let w = pd.world();
    w.incidents
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no incident {id}"))
        .status
}

fn rate_limit(retry_after: u64, count: u32) -> FaultSpec {
    FaultSpec {
        kind: FaultKind::RateLimit,
        status: None,
        retry_after: Some(retry_after),
        delay_ms: None,
        count: Some(count),
        seconds: None,
        scope: Scope::Rest,
    }
}

// ---------------------------------------------------------------- the client

/// One answer the API gave, to check against the OpenAPI document.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    path: String,
    status: u16,
    body: Value,
}

/// Calls the API and keeps every answer; on drop, checks them all against the document.
struct ApiClient {
    base: String,
    http: reqwest::Client,
    seen: Mutex<Vec<Exchange>>,
}

impl ApiClient {
    fn new(base: &str) -> ApiClient {
        ApiClient {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(180))
                .build()
                .unwrap(),
            seen: Mutex::new(Vec::new()),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let built = req.build().expect("the request builds");
        let (method, path) = (built.method().to_string(), built.url().path().to_owned());
        let a = answer_of(self.http.execute(built).await.expect("the daemon answers")).await;
        self.seen.lock().unwrap().push(Exchange {
            method,
            path,
            status: a.status,
            body: a.body.clone(),
        });
        a
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// GET with the read token.
    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path, Some(READER)))
            .await
    }

    /// POST with the admin token.
    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(Method::POST, path, Some(ADMIN)).json(body))
            .await
    }

    fn check(&self) {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        let checker = Checker::new();
        let problems: Vec<String> = seen.iter().filter_map(|x| checker.check(x).err()).collect();
        assert!(
            problems.is_empty(),
            "{} answer(s) do not fit docs/api/openapi.json:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

impl Drop for ApiClient {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check();
        }
    }
}

async fn answer_of(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("the body arrives");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Validates answers against the response schemas of the OpenAPI document.
struct Checker {
    doc: Arc<Value>,
    registry: jsonschema::Registry<'static>,
}

const DOC_URI: &str = "https://pagerbridge.invalid/api/v1/openapi.json";

impl Checker {
    fn new() -> Checker {
        let doc = Arc::new(openapi_document());
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft202012)
            .add(DOC_URI, Arc::clone(&doc))
            .and_then(|b| b.prepare())
            .expect("the document registers");
        Checker { doc, registry }
    }

    fn validator(&self, schema_name: &str) -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&json!({"$ref": format!("{DOC_URI}#/components/schemas/{schema_name}")}))
            .unwrap_or_else(|e| panic!("schema {schema_name} compiles: {e}"))
    }

    /// The document's operation for a concrete request: a literal segment wins over a
    /// parameter, as in the router.
    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let paths = self.doc["paths"].as_object().unwrap();
        paths
            .iter()
            .filter(|(template, item)| {
                fits(template, path) && item.get(method.to_ascii_lowercase()).is_some()
            })
            .min_by_key(|(template, _)| template.matches('{').count())
            .map(|(_, item)| &item[method.to_ascii_lowercase()])
    }

    fn check(&self, x: &Exchange) -> Result<(), String> {
        let at = format!("{} {} -> {}", x.method, x.path, x.status);
        let schema = match self.operation(&x.method, &x.path) {
            Some(op) => {
                let responses = &op["responses"];
                let mut response = responses
                    .get(x.status.to_string())
                    .or_else(|| responses.get("default"))
                    .ok_or_else(|| format!("{at}: undocumented status"))?;
                if let Some(target) = response.get("$ref").and_then(Value::as_str) {
                    response = self
                        .doc
                        .pointer(target.trim_start_matches('#'))
                        .ok_or_else(|| format!("{at}: dangling {target}"))?;
                }
                let reference = response
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{at}: no JSON schema documented"))?;
                reference
                    .trim_start_matches("#/components/schemas/")
                    .to_owned()
            }
            // No route, or not this method: the fallbacks answer errors.
            None if x.status == 404 || x.status == 405 => "Error".to_owned(),
            None => return Err(format!("{at}: no such operation in the document")),
        };
        let validator = self.validator(&schema);
        let errors: Vec<String> = validator
            .iter_errors(&x.body)
            .take(5)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            let body = x.body.to_string();
            Err(format!(
                "{at} ({schema}): {}\n  body: {}",
                errors.join("; "),
                &body[..body.len().min(400)]
            ))
        }
    }
}

fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

fn error_of(a: &Answer) -> (&str, Option<&str>, &str) {
    (
        a.body["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("no kind in {}", a.body)),
        a.body["field"].as_str(),
        a.body["error"].as_str().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------- the document

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let path = repo_root().join("docs/api/openapi.json");
    let text = serde_json::to_string_pretty(&openapi_document()).unwrap() + "\n";
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if snapshot != text {
        let line = snapshot
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| snapshot.lines().count().min(text.lines().count()));
        panic!(
            "docs/api/openapi.json differs from the document the daemon serves, from line {}:\n  \
             snapshot:  {}\n  generated: {}\nIf the change is meant, rewrite the snapshot: \
             UPDATE_SNAPSHOTS=1 cargo test -p pagerbridge-server --test api",
            line + 1,
            snapshot.lines().nth(line).unwrap_or("(end)"),
            text.lines().nth(line).unwrap_or("(end)"),
        );
    }
}

#[test]
fn docs_api_md_describes_every_route() {
    let doc = std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap();
    for (path, item) in openapi_document()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let alone = format!("### `{method} {path}`");
            let paired = format!("`{method} {path}`");
            assert!(
                doc.contains(&alone)
                    || doc
                        .lines()
                        .any(|l| l.starts_with("### ") && l.contains(&paired)),
                "docs/api.md has no heading for {method} {path}"
            );
        }
    }
}

#[test]
fn every_schema_of_the_document_compiles() {
    let checker = Checker::new();
    let doc = openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        checker.validator(name);
    }
}

#[tokio::test]
async fn every_documented_route_answers() {
    let s = setup(Want::default()).await;
    let doc = openapi_document();
    let served = s
        .api
        .send(s.api.request(Method::GET, "/openapi.json", None))
        .await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, doc, "the daemon serves the generated document");

    let mut routes = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path: String = template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let path = path.strip_prefix("/api/v1").unwrap().to_owned();
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut req = s.api.request(method.clone(), &path, Some(ADMIN));
            if method == Method::POST {
                req = req.json(&json!({}));
            }
            let a = s.api.send(req).await;
            assert!(
                a.status != 405 && a.body["kind"] != "no_route",
                "{method} {template} is documented but not routed: {} {}",
                a.status,
                a.body
            );
            routes += 1;
        }
    }
    assert!(routes >= 18, "{routes} routes");
}

// ---------------------------------------------------------------- access

#[tokio::test]
async fn the_api_is_off_without_tokens() {
    let s = setup(Want {
        tokens: false,
        ..Want::default()
    })
    .await;
    for a in [
        s.api.get("/incidents").await,
        s.api.get("/queue").await,
        s.api.post("/queue/retry", &json!({"ids": [1]})).await,
        s.api
            .send(s.api.request(Method::GET, "/services", None))
            .await,
    ] {
        assert_eq!(a.status, 404, "{}", a.body);
        assert_eq!(
            a.body,
            json!({"error": "the API is off: no [[api.tokens]] in the configuration", "kind": "api_off"})
        );
    }
    let doc = s
        .api
        .send(s.api.request(Method::GET, "/openapi.json", None))
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn tokens_and_scopes_are_enforced() {
    let s = setup(Want::default()).await;
    let a = s.api.send(s.api.request(Method::GET, "/queue", None)).await;
    assert_eq!(a.status, 401);
    assert_eq!(error_of(&a).0, "unauthorized");
    assert!(
        error_of(&a).2.contains("Authorization: Bearer"),
        "{}",
        a.body
    );
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer realm=\"pagerbridge\"")
    );

    let a = s
        .api
        .send(
            s.api
                .request(Method::GET, "/queue", Some("not-a-token-0123456789")),
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        error_of(&a).2,
        "the bearer token is not one of [[api.tokens]]"
    );
    // A prefix of a real token is no token.
    let a = s
        .api
        .send(s.api.request(Method::GET, "/queue", Some(&ADMIN[..20])))
        .await;
    assert_eq!(a.status, 401);

    // The read token reads, and is refused writes, naming the scope needed.
    assert_eq!(s.api.get("/queue").await.status, 200);
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, "/queue/retry", Some(READER))
                .json(&json!({"ids": [1]})),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let (kind, _, message) = error_of(&a);
    assert_eq!(kind, "forbidden");
    assert_eq!(
        message,
        "POST /api/v1/queue/retry needs a token of scope admin; the token \"dashboard\" has \
         scope read"
    );
    // The admin token reads too.
    let a = s
        .api
        .send(s.api.request(Method::GET, "/queue", Some(ADMIN)))
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_input_are_json_errors() {
    let s = setup(Want::default()).await;
    let a = s.api.get("/incidentz").await;
    assert_eq!(a.status, 404);
    assert_eq!(error_of(&a).0, "no_route");
    assert!(error_of(&a).2.contains("/api/v1/incidentz"), "{}", a.body);
    let a = s.api.get("/incidents/Q1/alerts").await;
    assert_eq!((a.status, error_of(&a).0), (404, "no_route"));
    // Outside /api/v1, the daemon's own answers are unchanged.
    let a = answer(s.daemon.http.get(format!("{}/nowhere", s.daemon.base))).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["status"], "refused");
    assert_eq!(
        answer(s.daemon.http.get(format!("{}/healthz", s.daemon.base)))
            .await
            .status,
        200
    );

    let a = s
        .api
        .send(s.api.request(Method::DELETE, "/incidents", Some(ADMIN)))
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(
        error_of(&a),
        (
            "method_not_allowed",
            None,
            "DELETE is not allowed on /api/v1/incidents; send GET or POST"
        )
    );
    let a = s.api.get("/incidents/resolve").await;
    assert_eq!(a.status, 405);
    assert!(error_of(&a).2.ends_with("send POST"), "{}", a.body);

    // Query parameters: unknown, out of range, of the wrong kind, given twice.
    for (query, field) in [
        ("/incidents?limit=0", "limit"),
        ("/incidents?limit=100001", "limit"),
        ("/incidents?statu=open", "statu"),
        ("/incidents?status=closed", "status"),
        ("/incidents?since=yesterday", "since"),
        ("/incident_map?open=yes", "open"),
        ("/queue/events?state=lost", "state"),
        ("/queue/events?limit=5&limit=6", "limit"),
        ("/maintenance_windows?filter=soon", "filter"),
    ] {
        let a = s.api.get(query).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert_eq!(error_of(&a).1, Some(field), "{query}: {}", a.body);
        assert!(error_of(&a).2.starts_with(field), "{query}: {}", a.body);
    }

    // Bodies: not JSON, not an object, a field of the wrong type, an unknown field.
    let raw = |body: &'static str| {
        s.api
            .request(Method::POST, "/incidents/acknowledge", Some(ADMIN))
            .header("content-type", "application/json")
            .body(body)
    };
    for (body, field, starts) in [
        ("{\"ids\": [", "body", "body: not JSON"),
        (
            "[\"Q1\"]",
            "body",
            "body: expected a JSON object, got an array",
        ),
        ("", "body", "body: send a JSON object"),
        (
            "{\"ids\": [\"Q1\", 2]}",
            "ids[1]",
            "ids[1]: expected a string, got a number",
        ),
        (
            "{\"ids\": [\"Q1\"], \"frm\": \"x\"}",
            "frm",
            "frm: no such field",
        ),
        ("{\"ids\": []}", "ids", "ids: give at least one incident id"),
        (
            "{\"ids\": [\"Q1/notes\"]}",
            "ids[0]",
            "ids[0]: \"Q1/notes\" is not a PagerDuty incident id",
        ),
    ] {
        let a = s.api.send(raw(body)).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(error_of(&a).0, "bad_input");
        assert_eq!(error_of(&a).1, Some(field), "{body}: {}", a.body);
        assert!(error_of(&a).2.starts_with(starts), "{body}: {}", a.body);
    }
    let a = s.api.post("/queue/retry", &json!({"ids": ["one"]})).await;
    assert_eq!(error_of(&a).1, Some("ids[0]"));

    // Over the body limit.
    let big = json!({"ids": vec!["Q0123456789ABC"; 80_000]});
    let a = s.api.post("/incidents/resolve", &big).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(error_of(&a).0, "too_large");
}

// ---------------------------------------------------------------- incidents

#[tokio::test]
async fn listing_pages_past_100_and_past_10000_incidents() {
    let pd = TestPd::start().await;
    let seeded_at = Timestamp::now();
    let seeded = seed_incidents(&pd, 10_250);
    assert_eq!(
        seeded.iter().collect::<HashSet<_>>().len(),
        seeded.len(),
        "the emulator gave two incidents the same id"
    );
    let s = setup_with(pd, Want::default()).await;

    let a = s.api.get("/incidents").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["count"], 100);
    assert_eq!(a.body["limit"], 100);
    assert_eq!(a.body["more"], true);
    assert_eq!(
        a.body["incidents"][0]["id"],
        seeded[0].as_str(),
        "oldest first"
    );

    let a = s.api.get("/incidents?limit=250").await;
    assert_eq!(a.body["count"], 250);
    assert_eq!(a.body["incidents"][249]["id"], seeded[249].as_str());

    let started = Instant::now();
    let a = s.api.get("/incidents?status=open&limit=100000").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["count"], 10_250,
        "every incident, past the 10,000 ceiling"
    );
    assert_eq!(a.body["more"], false);
    let ids: Vec<&str> = a.body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10_250);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        10_250,
        "no incident twice"
    );
    assert_eq!(ids, seeded, "in creation order");
    eprintln!("10,250 incidents listed in {:?}", started.elapsed());

    // The same filters as the CLI.
    let a = s.api.get("/incidents?status=resolved").await;
    assert_eq!(a.body["count"], 0);
    let a = s
        .api
        .get("/incidents?service=Database&status=triggered,acknowledged")
        .await;
    assert_eq!(a.body["count"], 0);
    let since = seeded_at - SignedDuration::from_millis(30_500);
    let a = s
        .api
        .get(&format!("/incidents?since={since}&urgency=high"))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let recent = a.body["count"].as_u64().unwrap();
    assert!(
        (29..=31).contains(&recent),
        "{recent} in the last 30 s of the seeding"
    );
}

#[tokio::test]
async fn show_create_and_note_incidents() {
    let s = setup(Want::default()).await;

    // The short form, the service by name.
    let a = s
        .api
        .post(
            "/incidents",
            &json!({"title": "Disk full on db1", "service": "Database", "urgency": "low",
                    "body": "5% left", "incident_key": "db1/disk", "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let short = a.body["incident"]["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["incident"]["urgency"], "low");
    assert_eq!(
        a.body["incident"]["service"]["id"],
        s.pd.service_of(DEMO_DB_ROUTING_KEY).0
    );

    // PagerDuty's own body, wrapped and bare; the From header.
    let service = json!({"id": "PDEMO01", "type": "service_reference"});
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, "/incidents", Some(ADMIN))
                .header("From", ADA)
                .json(&json!({"incident": {"type": "incident", "title": "wrapped", "service": service}})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = s
        .api
        .post(
            "/incidents",
            &json!({"type": "incident", "title": "bare", "service": service, "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // Refusals name the field.
    for (body, status, field) in [
        (json!({"service": "Database", "from": ADA}), 400, "title"),
        (
            json!({"title": "x", "service": "Nope", "from": ADA}),
            404,
            "service",
        ),
        (
            json!({"type": "incident", "title": "x", "from": ADA}),
            400,
            "incident.service",
        ),
        (
            json!({"incident": {"type": "incident", "title": "x", "service": service, "urgency": "urgent"}, "from": ADA}),
            400,
            "incident.urgency",
        ),
        (
            json!({"title": "x", "service": "Database", "from": "ada"}),
            400,
            "from",
        ),
        (
            json!({"title": "x", "service": "Database", "colour": "red"}),
            400,
            "colour",
        ),
    ] {
        let a = s.api.post("/incidents", &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(error_of(&a).1, Some(field), "{body}: {}", a.body);
    }

    // A note, then the incident with its alerts, log entries and notes.
    let a = s
        .api
        .post(
            &format!("/incidents/{short}/notes"),
            &json!({"content": "looking into it", "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["note"]["content"], "looking into it");
    let a = s
        .api
        .post(
            &format!("/incidents/{short}/notes"),
            &json!({"content": " ", "from": ADA}),
        )
        .await;
    assert_eq!((a.status, error_of(&a).1), (400, Some("content")));

    let a = s.api.get(&format!("/incidents/{short}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["incident"]["id"], short.as_str());
    assert_eq!(a.body["notes"][0]["content"], "looking into it");
    assert!(!a.body["log_entries"].as_array().unwrap().is_empty());
    assert!(a.body["alerts"].is_array());

    // A nonexistent incident, and a malformed id.
    let a = s.api.get("/incidents/Q0NOSUCHINCIDENT").await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(
        error_of(&a),
        ("not_found", None, "no incident Q0NOSUCHINCIDENT")
    );
    let a = s
        .api
        .post(
            "/incidents/Q0NOSUCHINCIDENT/notes",
            &json!({"content": "x", "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let a = s.api.get("/incidents/Q1-2").await;
    assert_eq!((a.status, error_of(&a).1), (400, Some("id")));
}

#[tokio::test]
async fn a_missing_from_is_named() {
    let s = setup(Want::default()).await;
    let ids = seed_incidents(&s.pd, 3);
    // No from in the body, no From header, no pagerduty.from: the demo token is an account
    // token, which PagerDuty refuses writes without From.
    let a = s
        .api
        .post("/incidents/acknowledge", &json!({"ids": ids}))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let (kind, field, message) = error_of(&a);
    assert_eq!((kind, field), ("bad_input", Some("from")));
    assert!(message.contains("\"from\" in an API request"), "{message}");
    assert_eq!(status_in_pd(&s.pd, &ids[0]), IncidentStatus::Triggered);

    let a = s
        .api
        .post("/incidents", &json!({"title": "x", "service": "Database"}))
        .await;
    assert_eq!(
        (a.status, error_of(&a).1),
        (400, Some("from")),
        "{}",
        a.body
    );
    let a = s
        .api
        .post(
            &format!("/incidents/{}/notes", ids[0]),
            &json!({"content": "x"}),
        )
        .await;
    assert_eq!(
        (a.status, error_of(&a).1),
        (400, Some("from")),
        "{}",
        a.body
    );
    let a = s
        .api
        .post(
            "/maintenance_windows",
            &json!({"services": ["PDEMO01"], "duration": "1h"}),
        )
        .await;
    assert_eq!(
        (a.status, error_of(&a).1),
        (400, Some("from")),
        "{}",
        a.body
    );

    // A malformed From header is named as well.
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, "/incidents/acknowledge", Some(ADMIN))
                .header("From", "ada")
                .json(&json!({"ids": ids})),
        )
        .await;
    assert_eq!(
        (a.status, error_of(&a).1),
        (400, Some("from")),
        "{}",
        a.body
    );
    assert!(
        error_of(&a).2.starts_with("From header: \"ada\""),
        "{}",
        a.body
    );

    // The From header works.
    let a = s
        .api
        .send(
            s.api
                .request(Method::POST, "/incidents/acknowledge", Some(ADMIN))
                .header("From", ADA)
                .json(&json!({"ids": ids})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn the_configured_from_is_the_default() {
    // pagerduty.from in the file: no from needed in requests.
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &pd.url(),
        "data",
        &Opts {
            extra: TOKENS.to_owned(),
            ..Opts::default()
        },
    )
    .replace(
        "[pagerduty]\n",
        &format!(
            "[pagerduty]\napi_token = \"{}\"\nfrom = \"{ADA}\"\n",
            pagerduty_emulator::seed::DEMO_API_TOKEN
        ),
    );
    let config = pagerbridge_config::Config::from_str(&text, "test.toml", dir.path()).unwrap();
    let daemon = Daemon::start_config(config, dir).await;
    let api = ApiClient::new(&daemon.base);
    let ids = seed_incidents(&pd, 2);
    let a = api.post("/incidents/resolve", &json!({"ids": ids})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(status_in_pd(&pd, &ids[1]), IncidentStatus::Resolved);
}

#[tokio::test]
async fn bulk_acknowledge_and_resolve_past_250() {
    let s = setup(Want::default()).await;
    let ids = seed_incidents(&s.pd, 320);
    let a = s
        .api
        .post("/incidents/acknowledge", &json!({"ids": ids, "from": ADA}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["updated"].as_array().unwrap().len(), 320);
    assert_eq!(a.body["failed"], json!([]));
    assert!(
        ids.iter()
            .all(|id| status_in_pd(&s.pd, id) == IncidentStatus::Acknowledged)
    );

    let a = s
        .api
        .post(
            "/incidents/resolve",
            &json!({"ids": ids, "from": ADA, "resolution": "disk cleaned"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["updated"].as_array().unwrap().len(), 320);
    assert!(
        ids.iter()
            .all(|id| status_in_pd(&s.pd, id) == IncidentStatus::Resolved)
    );
    let a = s.api.get("/incidents?status=resolved&limit=1000").await;
    assert_eq!(a.body["count"], 320);
    // Acknowledge takes no resolution.
    let a = s
        .api
        .post(
            "/incidents/acknowledge",
            &json!({"ids": ids, "from": ADA, "resolution": "x"}),
        )
        .await;
    assert_eq!((a.status, error_of(&a).1), (400, Some("resolution")));
}

#[tokio::test]
async fn one_bad_id_among_good_ones_is_named_and_the_others_change() {
    let s = setup(Want::default()).await;
    let good = seed_incidents(&s.pd, 5);
    let mut ids = good.clone();
    ids.insert(2, "Q0NOSUCHINCIDENT".to_owned());
    let a = s
        .api
        .post("/incidents/resolve", &json!({"ids": ids, "from": ADA}))
        .await;
    assert_eq!(a.status, 207, "{}", a.body);
    assert_eq!(a.body["updated"].as_array().unwrap().len(), 5);
    let failed = a.body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "Q0NOSUCHINCIDENT");
    assert_eq!(failed[0]["kind"], "not_found");
    assert_eq!(failed[0]["error"], "no incident Q0NOSUCHINCIDENT");
    assert!(
        good.iter()
            .all(|id| status_in_pd(&s.pd, id) == IncidentStatus::Resolved)
    );

    // Nothing changed: an error status, with the report.
    let a = s
        .api
        .post(
            "/incidents/acknowledge",
            &json!({"ids": ["Q0NOSUCH1", "Q0NOSUCH2"], "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let (kind, field, message) = error_of(&a);
    assert_eq!((kind, field), ("not_found", Some("ids")));
    assert!(
        message.starts_with("none of the 2 incident(s) could be acknowledged: Q0NOSUCH1"),
        "{message}"
    );
    assert_eq!(a.body["failed"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["updated"], json!([]));
}

#[tokio::test]
async fn pagerduty_rate_limiting_is_waited_out_within_a_budget() {
    let s = setup(Want::default()).await;
    s.pd.inject(rate_limit(1, 2)).unwrap();
    let started = Instant::now();
    let a = s.api.get("/services").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?} for two 1 s Retry-After",
        started.elapsed()
    );
    // Writes too: PagerDuty did nothing with a throttled request.
    let ids = seed_incidents(&s.pd, 1);
    s.pd.inject(rate_limit(1, 1)).unwrap();
    let a = s
        .api
        .post("/incidents/acknowledge", &json!({"ids": ids, "from": ADA}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // PagerDuty asks for longer than the API waits: 503 with its Retry-After.
    s.pd.inject(rate_limit(60, 1)).unwrap();
    let started = Instant::now();
    let a = s.api.get("/incidents").await;
    assert!(started.elapsed() < Duration::from_secs(5), "did not wait");
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("60"));
    let (kind, _, message) = error_of(&a);
    assert_eq!(kind, "unavailable");
    assert!(
        message.contains("rate limited by PagerDuty; try again in 60 s"),
        "{message}"
    );
    assert_eq!(a.body["retry_after"], 60);
}

#[tokio::test]
async fn without_a_pagerduty_token_the_pagerduty_routes_answer_503() {
    let s = setup(Want {
        pagerduty_token: false,
        ..Want::default()
    })
    .await;
    for a in [
        s.api.get("/incidents").await,
        s.api.get("/services/PDEMO01").await,
        s.api.get("/maintenance_windows").await,
        s.api
            .post("/incidents/acknowledge", &json!({"ids": ["Q1"]}))
            .await,
    ] {
        assert_eq!(a.status, 503, "{}", a.body);
        assert_eq!(error_of(&a).0, "not_configured");
        assert!(error_of(&a).2.contains("pagerduty.api_token"), "{}", a.body);
    }
    // The store's routes do not need PagerDuty.
    assert_eq!(s.api.get("/queue").await.status, 200);
    assert_eq!(s.api.get("/incident_map").await.status, 200);
}

// ---------------------------------------------------------------- services, maintenance

#[tokio::test]
async fn services_and_maintenance_windows() {
    let s = setup(Want::default()).await;
    let a = s.api.get("/services").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["count"], 2);
    let a = s.api.get("/services?query=Data").await;
    assert_eq!(a.body["count"], 1);
    assert_eq!(a.body["services"][0]["id"], "PDEMO02");
    let a = s.api.get("/services/database").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["service"]["id"], "PDEMO02");
    let a = s.api.get("/services/PDEMO01").await;
    assert_eq!(a.body["service"]["name"], "Demo Service");
    let a = s.api.get("/services/Nowhere%20Service").await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(error_of(&a).1, Some("service"));

    let a = s
        .api
        .post(
            "/maintenance_windows",
            &json!({"services": ["Demo Service"], "duration": "1h", "description": "disk swap",
                    "from": ADA}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["maintenance_window"]["description"], "disk swap");
    assert_eq!(a.body["maintenance_window"]["services"][0]["id"], "PDEMO01");
    let a = s.api.get("/maintenance_windows").await;
    assert_eq!(a.body["count"], 1, "{}", a.body);
    let a = s
        .api
        .get("/maintenance_windows?service=Database&filter=all")
        .await;
    assert_eq!(a.body["count"], 0, "{}", a.body);
    let a = s.api.get("/maintenance_windows?filter=past").await;
    assert_eq!(a.body["count"], 0, "{}", a.body);

    for (body, field) in [
        (json!({"services": ["PDEMO01"], "from": ADA}), "end"),
        (
            json!({"services": [], "duration": "1h", "from": ADA}),
            "services",
        ),
        (
            json!({"services": ["PDEMO01"], "duration": "soon", "from": ADA}),
            "duration",
        ),
        (
            json!({"services": ["PDEMO01"], "end": "1h", "duration": "1h", "from": ADA}),
            "duration",
        ),
    ] {
        let a = s.api.post("/maintenance_windows", &body).await;
        assert_eq!(
            (a.status, error_of(&a).1),
            (400, Some(field)),
            "{body}: {}",
            a.body
        );
    }
}

// ---------------------------------------------------------------- the outbox

#[tokio::test]
async fn queue_dead_letters_retry_and_drop() {
    let s = setup(Want::default()).await;
    s.pd.refuse_next_events(400, 2);
    s.daemon.send(&trigger(DEMO_ROUTING_KEY, "dead-1", 1)).await;
    s.daemon.send(&trigger(DEMO_ROUTING_KEY, "dead-2", 2)).await;
    let dead = eventually("two dead letters", Duration::from_secs(10), || async {
        let a = s.api.get("/dead_letters").await;
        (a.body["count"] == 2).then_some(a)
    })
    .await;
    let ids: Vec<i64> = dead.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids[0] > ids[1], "newest first");
    assert_eq!(dead.body["events"][0]["last_status"], 400);

    let a = s.api.get("/queue").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["dead"], 2);
    assert_eq!(a.body["pending"], 0);
    let a = s.api.get("/queue/events?state=dead,pending&limit=1").await;
    assert_eq!(a.body["count"], 1);
    assert_eq!(a.body["next_before"], ids[0]);
    let a = s
        .api
        .get(&format!("/queue/events?state=dead&before={}", ids[0]))
        .await;
    assert_eq!(a.body["events"][0]["id"], ids[1]);
    let a = s
        .api
        .get(&format!(
            "/queue/events?routing_key={DEMO_ROUTING_KEY}&dedup_key=dead-1"
        ))
        .await;
    assert_eq!(a.body["count"], 1);
    let a = s.api.get(&format!("/queue/events/{}", ids[1])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["event"]["dedup_key"], "dead-1");
    assert_eq!(a.body["event"]["body"]["routing_key"], DEMO_ROUTING_KEY);
    let a = s.api.get("/queue/events/999999").await;
    assert_eq!((a.status, error_of(&a).2), (404, "no event with id 999999"));
    let a = s.api.get("/queue/events/abc").await;
    assert_eq!((a.status, error_of(&a).1), (400, Some("id")));

    // Retry one: it is delivered this time.
    let a = s.api.post("/queue/retry", &json!({"ids": [ids[1]]})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["changed"], 1);
    wait_drained(&s.daemon.store(), Duration::from_secs(10)).await;
    let a = s.api.get(&format!("/queue/events/{}", ids[1])).await;
    assert_eq!(a.body["event"]["state"], "delivered");
    assert_eq!(incident(&s.pd, "dead-1").1, 1);

    // Drop the other, with an id of no event: 207.
    let a = s
        .api
        .post("/queue/drop", &json!({"ids": [ids[0], 999999]}))
        .await;
    assert_eq!(a.status, 207, "{}", a.body);
    assert_eq!(a.body["changed"], 1);
    assert_eq!(a.body["unknown"], json!([999999]));
    let a = s.api.get("/dead_letters").await;
    assert_eq!(a.body["count"], 0);

    // Nothing eligible: 409; nothing known: 404.
    let a = s.api.post("/queue/drop", &json!({"ids": [ids[1]]})).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(error_of(&a).0, "conflict");
    assert_eq!(
        a.body["not_eligible"],
        json!([{"id": ids[1], "state": "delivered"}])
    );
    let a = s.api.post("/queue/retry", &json!({"ids": [999999]})).await;
    assert_eq!(a.status, 404, "{}", a.body);
    let a = s.api.post("/queue/retry", &json!({"ids": []})).await;
    assert_eq!((a.status, error_of(&a).1), (400, Some("ids")));

    // The API holds the store too: the daemon still stops cleanly, closing it.
    let mut s = s;
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_incident_map() {
    let s = setup(Want {
        extra: format!(
            "[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\n[[sources]]\nname = \"am\"\nkind = \"alertmanager\"\n"
        ),
        ..Want::default()
    })
    .await;
    let alert = json!({
        "version": "4", "status": "firing", "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk full on db1"},
            "startsAt": "2026-11-21T10:00:00Z",
            "fingerprint": "d1a2b3c4",
        }],
    });
    let a = s.daemon.post("/ingest/am", &alert).await;
    assert!(a.status < 300, "{}", a.body);
    let a = s.api.get("/incident_map").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["count"], 1, "{}", a.body);
    let row = &a.body["incidents"][0];
    assert_eq!(row["source"], "am");
    assert_eq!(row["monitor_state"], "problem");
    let key = row["dedup_key"].as_str().unwrap().to_owned();
    let a = s.api.get("/incident_map?open=true&limit=5").await;
    assert_eq!(a.body["count"], 1);
    assert_eq!(a.body["limit"], 5);

    let encoded: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let a = s.api.get(&format!("/incident_map/{encoded}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["dedup_key"], key.as_str());
    assert_eq!(a.body["incidents"][0]["routing_key"], DEMO_ROUTING_KEY);
    let a = s.api.get("/incident_map/no-such-key").await;
    assert_eq!(a.status, 404, "{}", a.body);
}
