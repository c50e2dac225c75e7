//! Test support shared by the workspace's test suites.
//!
//! - [`TestPd`]: an in-process PagerDuty emulator whose every API response is checked against
//!   PagerDuty's OpenAPI files when the test ends, so no test can pass on a response the real
//!   contract forbids.
//! - [`Recorder`]: an HTTP server on 127.0.0.1 that records what it receives and answers what
//!   the test tells it to; for exact request shapes, proxies and webhook receivers.
//! - [`debian`]: Debian packages a test needs, installed or loudly skipped.
//! - [`monitors`]: real Icinga 2, Nagios 4 and Alertmanager started on 127.0.0.1 for a test.
//! - [`postgres`]: a fresh PostgreSQL database per test, on a throwaway cluster of its own
//!   unless `PAGERBRIDGE_TEST_POSTGRES_URL` names a server.

pub mod debian;
pub mod monitors;
pub mod postgres;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use http::HeaderMap;
use pagerduty::{ClientConfig, EventsClient, RestClient};
use pagerduty_contract::Contract;
use pagerduty_emulator::seed::{DEMO_API_TOKEN, DEMO_USER_EMAIL};
use pagerduty_emulator::{Emulator, FaultKind, FaultSpec, Scope, Seed};

pub use pagerduty_emulator::seed::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, DEMO_V1_SERVICE_KEY};

/// The demo account with the rate limits off and webhook retries 20 ms apart: a base for test
/// seeds, so that no test is throttled or slowed by accident.
pub fn unlimited_seed() -> Seed {
    let mut seed = Seed::demo();
    seed.settings.events_per_minute = 0;
    seed.settings.rest_requests_per_minute = 0;
    seed.settings.webhook_retry_base_ms = 20;
    seed
}

/// An emulator for one test. Dropping it checks every response it served against PagerDuty's
/// published contract and fails the test on the first violation.
pub struct TestPd {
    emu: Option<Emulator>,
}

impl TestPd {
    /// The demo account (see `Seed::demo`) with rate limits off, so tests are not throttled by
    /// accident; tests of the limits turn them on explicitly.
    pub async fn start() -> TestPd {
        TestPd::with_seed(unlimited_seed()).await
    }

    pub async fn with_seed(seed: Seed) -> TestPd {
        TestPd {
            emu: Some(Emulator::for_tests(seed).await),
        }
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::single_host(&self.url()).expect("emulator URL parses");
        c.timeout = Duration::from_secs(10);
        c
    }

    pub fn events(&self) -> EventsClient {
        EventsClient::new(&self.config()).expect("client builds")
    }

    /// The demo account-level token with the demo user as `From`.
    pub fn rest(&self) -> RestClient {
        RestClient::new(&self.config(), DEMO_API_TOKEN)
            .expect("client builds")
            .with_from(DEMO_USER_EMAIL)
    }

    /// Subscribes `url` to every incident event of the account (Webhooks v3) and returns the
    /// signing secret PagerDuty gives once, at creation.
    pub async fn subscribe_webhooks(&self, url: &str) -> String {
        let sub = self
            .rest()
            .create_webhook_subscription(&pagerduty::rest::WebhookSubscription {
                id: None,
                kind: "webhook_subscription".into(),
                active: true,
                delivery_method: pagerduty::rest::DeliveryMethod {
                    kind: "http_delivery_method".into(),
                    url: url.to_owned(),
                    secret: None,
                    temporarily_disabled: None,
                    custom_headers: Vec::new(),
                },
                description: Some("pagerbridge test".into()),
                events: [
                    "incident.triggered",
                    "incident.acknowledged",
                    "incident.unacknowledged",
                    "incident.resolved",
                    "incident.annotated",
                    "incident.reopened",
                ]
                .map(String::from)
                .to_vec(),
                filter: pagerduty::rest::SubscriptionFilter {
                    kind: "account_reference".into(),
                    id: None,
                },
                extra: Default::default(),
            })
            .await
            .expect("the subscription is created");
        sub.delivery_method
            .secret
            .expect("PagerDuty returns the secret at creation")
    }

    /// The id and name of the service that has the integration `routing_key`.
    pub fn service_of(&self, routing_key: &str) -> (String, String) {
        let world = self.world();
        let integration = world
            .integrations
            .get(routing_key)
            .unwrap_or_else(|| panic!("no integration has the routing key {routing_key}"));
        let service = &world.services[integration.service];
        (service.id.clone(), service.name.clone())
    }

    /// The next `count` events (Events API v2, change events, v1) are answered `status`
    /// without being processed, as PagerDuty refuses an event it finds invalid.
    pub fn refuse_next_events(&self, status: u16, count: u32) {
        self.inject(FaultSpec {
            kind: FaultKind::Status,
            status: Some(status),
            retry_after: None,
            delay_ms: None,
            count: Some(count),
            seconds: None,
            scope: Scope::Events,
        })
        .expect("the emulator takes the fault");
    }

    /// Checks the responses so far; also done on drop.
    pub fn check_contract(&self) {
        let violations = contract_violations(self);
        assert!(
            violations.is_empty(),
            "{} emulator response(s) break PagerDuty's OpenAPI contract:\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
}

fn contract_violations(emu: &Emulator) -> Vec<String> {
    let contract = Contract::bundled();
    emu.exchanges()
        .iter()
        .filter_map(|x| {
            contract
                .validate_response(
                    &x.method,
                    &x.path,
                    x.status,
                    x.content_type.as_deref(),
                    &x.body,
                )
                .err()
                .map(|v| {
                    format!(
                        "- {v}\n  body: {}",
                        String::from_utf8_lossy(&x.body[..x.body.len().min(600)])
                    )
                })
        })
        .collect()
}

impl Deref for TestPd {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        self.emu.as_ref().expect("present until drop")
    }
}

impl Drop for TestPd {
    fn drop(&mut self) {
        let Some(emu) = self.emu.take() else { return };
        // A test that already failed keeps its own message.
        if std::thread::panicking() {
            return;
        }
        let violations = contract_violations(&emu);
        if !violations.is_empty() {
            panic!(
                "{} emulator response(s) break PagerDuty's OpenAPI contract:\n{}",
                violations.len(),
                violations.join("\n")
            );
        }
    }
}

/// One request as the recorder received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// As sent on the request line: a path, or an absolute URL when sent to a proxy.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

/// What the recorder answers.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: serde_json::Value) -> Canned {
        Canned {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).expect("JSON serialises"),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Canned {
        self.delay = d;
        self
    }
}

struct RecorderState {
    requests: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Canned>>,
    default: Mutex<Canned>,
}

/// A recording HTTP server on 127.0.0.1. Answers queued responses in order, then the default.
pub struct Recorder {
    addr: SocketAddr,
    state: Arc<RecorderState>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(default: Canned) -> Recorder {
        let state = Arc::new(RecorderState {
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, c: Canned) {
        self.state.queue.lock().expect("lock").push_back(c);
    }

    pub fn set_default(&self, c: Canned) {
        *self.state.default.lock().expect("lock") = c;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived, failing the test after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(state): State<Arc<RecorderState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    state.requests.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let canned = state
        .queue
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| state.default.lock().expect("lock").clone());
    if !canned.delay.is_zero() {
        tokio::time::sleep(canned.delay).await;
    }
    let mut resp = Response::new(axum::body::Body::from(canned.body));
    *resp.status_mut() = http::StatusCode::from_u16(canned.status).expect("valid status");
    for (k, v) in canned.headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(&v).expect("header value"),
        );
    }
    resp
}
