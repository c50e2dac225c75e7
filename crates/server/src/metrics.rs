//! `/metrics`: what the daemon does, in Prometheus' text exposition format (version 0.0.4).
//!
//! Counters are plain atomics bumped where things happen (ingest routes, the dispatcher, the
//! webhook routes, the way back through [`SyncMetrics`]); nothing on the ingest path takes a
//! lock. What the store already knows (queue depth and age per routing key, dead letters) is
//! read from it at scrape time rather than tracked. Every metric, its labels and its meaning
//! are listed in `docs/observability.md`.
//!
//! Labels are bounded: no dedup key is ever a label. Routing keys are integration keys: a
//! credential of sorts, and chosen by relay clients, so unbounded. They appear only on the queue
//! gauges, masked to their first and last four characters, for the [`TOP_KEYS`] keys with the
//! most pending events; the rest are summed under `routing_key="other"`.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use pagerbridge_store::{QueueStats, Store};
use pagerbridge_sync::metrics::{SyncMetrics, WritebackResult};

use crate::dispatch::Dispatcher;

/// Routing keys shown one by one on the queue gauges; the others are summed as `other`.
pub const TOP_KEYS: usize = 10;

/// The `Content-Type` of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Why an ingest request was refused (nothing of it was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not `application/json`.
    ContentType,
    /// Over the route's size limit.
    TooLarge,
    /// The body could not be read (the connection broke).
    Unreadable,
    /// A source's bearer token or HMAC signature is missing or wrong.
    Unauthorized,
    /// A relayed event fails PagerDuty's validation.
    InvalidEvent,
    /// A monitor's payload cannot be decoded.
    Undecodable,
    /// The rules give an alert no routing key.
    Unroutable,
    /// The outbox could not store it (disk full, database unwritable): answered 503.
    StoreUnavailable,
}

impl Reject {
    const ALL: [Reject; 8] = [
        Reject::ContentType,
        Reject::TooLarge,
        Reject::Unreadable,
        Reject::Unauthorized,
        Reject::InvalidEvent,
        Reject::Undecodable,
        Reject::Unroutable,
        Reject::StoreUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::ContentType => "content_type",
            Reject::TooLarge => "too_large",
            Reject::Unreadable => "unreadable",
            Reject::Unauthorized => "unauthorized",
            Reject::InvalidEvent => "invalid_event",
            Reject::Undecodable => "undecodable",
            Reject::Unroutable => "unroutable",
            Reject::StoreUnavailable => "store_unavailable",
        }
    }

    /// Whether a route of this kind can refuse for this reason (only those series are shown).
    fn applies_to(self, kind: RouteKind) -> bool {
        match self {
            Reject::ContentType | Reject::TooLarge | Reject::StoreUnavailable => true,
            Reject::Unreadable | Reject::InvalidEvent => kind == RouteKind::Relay,
            Reject::Unauthorized | Reject::Undecodable | Reject::Unroutable => {
                kind == RouteKind::Source
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A PagerDuty-compatible relay route: one event per request.
    Relay,
    /// A `[[sources]]` route: a monitor's payload, any number of alerts.
    Source,
}

/// The counters of one ingest route, registered once when the route is built.
#[derive(Debug)]
pub struct RouteCounters {
    source: String,
    route: String,
    kind: RouteKind,
    requests: AtomicU64,
    events: AtomicU64,
    alerts: AtomicU64,
    dropped: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
}

impl RouteCounters {
    pub fn request(&self) {
        inc(&self.requests);
    }

    pub fn rejected(&self, why: Reject) {
        inc(&self.rejected[why as usize]);
    }

    /// `events` were stored durably.
    pub fn accepted(&self, events: usize) {
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// A source's payload held `alerts`, of which the rules dropped `dropped`.
    pub fn alerts(&self, alerts: usize, dropped: usize) {
        self.alerts.fetch_add(alerts as u64, Ordering::Relaxed);
        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
    }
}

/// How one request to PagerDuty's Events API ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: delivered.
    Delivered,
    /// A final refusal (400 and other 4xx): the event became a dead letter.
    Rejected,
    /// 429 (v1: 403): the routing key is paused; the event is retried.
    Throttled,
    /// 5xx: retried after a backoff.
    ServerError,
    /// No answer (timeout, connection refused or reset): retried after a backoff.
    TransportError,
    /// Any other answer PagerDuty documents as worth retrying.
    OtherError,
}

impl Attempt {
    const ALL: [Attempt; 6] = [
        Attempt::Delivered,
        Attempt::Rejected,
        Attempt::Throttled,
        Attempt::ServerError,
        Attempt::TransportError,
        Attempt::OtherError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Rejected => "rejected",
            Attempt::Throttled => "throttled",
            Attempt::ServerError => "server_error",
            Attempt::TransportError => "transport_error",
            Attempt::OtherError => "other_error",
        }
    }
}

/// What held an event back for the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// PagerDuty answered 429: the whole routing key waits.
    PagerDuty,
    /// pagerbridge's own token bucket for the routing key was empty.
    TokenBucket,
}

impl Wait {
    const ALL: [Wait; 2] = [Wait::PagerDuty, Wait::TokenBucket];

    pub fn as_str(self) -> &'static str {
        match self {
            Wait::PagerDuty => "pagerduty_429",
            Wait::TokenBucket => "token_bucket",
        }
    }
}

/// A histogram with fixed buckets, lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one past every bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        inc(&self.counts[i]);
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(get).sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        get(&self.sum_nanos) as f64 / 1e9
    }
}

/// From the moment an event was received to PagerDuty's 2xx: minutes while PagerDuty is down.
const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// One request to PagerDuty: milliseconds, up to the client's timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The dispatcher's counters.
#[derive(Debug)]
pub struct DispatchCounters {
    attempts: [AtomicU64; Attempt::ALL.len()],
    coalesced: AtomicU64,
    /// PagerDuty's status (or `none`) -> dead letters; rare, so a lock is fine.
    dead_letters: Mutex<BTreeMap<String, u64>>,
    waits: [AtomicU64; Wait::ALL.len()],
    wait_nanos: [AtomicU64; Wait::ALL.len()],
    circuit_opens: AtomicU64,
    latency: Histogram,
    request: Histogram,
}

/// Distinct statuses given their own `status` label on dead letters; more go to `other`.
const MAX_DEAD_STATUSES: usize = 20;

impl DispatchCounters {
    fn new() -> DispatchCounters {
        DispatchCounters {
            attempts: Default::default(),
            coalesced: AtomicU64::new(0),
            dead_letters: Mutex::new(BTreeMap::new()),
            waits: Default::default(),
            wait_nanos: Default::default(),
            circuit_opens: AtomicU64::new(0),
            latency: Histogram::new(LATENCY_BUCKETS),
            request: Histogram::new(REQUEST_BUCKETS),
        }
    }

    /// One request to PagerDuty ended after `took`.
    pub fn attempt(&self, outcome: Attempt, took: Duration) {
        inc(&self.attempts[outcome as usize]);
        self.request.observe(took);
    }

    /// An event reached PagerDuty `latency` after pagerbridge received it.
    pub fn delivered(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    pub fn dead_letter(&self, status: Option<u16>) {
        let mut d = self.dead_letters.lock().expect("not poisoned");
        let mut label = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        if !d.contains_key(&label) && d.len() >= MAX_DEAD_STATUSES {
            label = "other".into();
        }
        *d.entry(label).or_default() += 1;
    }

    pub fn coalesced(&self) {
        inc(&self.coalesced);
    }

    pub fn waited(&self, why: Wait, how_long: Duration) {
        inc(&self.waits[why as usize]);
        self.wait_nanos[why as usize].fetch_add(
            u64::try_from(how_long.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn circuit_opened(&self) {
        inc(&self.circuit_opens);
    }
}

/// Webhook routes: Webhooks v3 and the legacy Generic V2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    V3,
    V2,
}

impl Hook {
    const ALL: [Hook; 2] = [Hook::V3, Hook::V2];

    fn as_str(self) -> &'static str {
        match self {
            Hook::V3 => "v3",
            Hook::V2 => "v2",
        }
    }
}

/// How a webhook delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookResult {
    /// Stored in the inbox (202).
    Accepted,
    /// Received before (same webhook id): answered 200, nothing stored.
    Duplicate,
    /// v3: no `X-PagerDuty-Signature` matches a configured secret; v2: wrong secret in the URL.
    BadSignature,
    /// Signed, but not a body pagerbridge can use (400).
    Invalid,
    /// The store could not take it (503; PagerDuty retries).
    Unavailable,
}

impl HookResult {
    const ALL: [HookResult; 5] = [
        HookResult::Accepted,
        HookResult::Duplicate,
        HookResult::BadSignature,
        HookResult::Invalid,
        HookResult::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            HookResult::Accepted => "accepted",
            HookResult::Duplicate => "duplicate",
            HookResult::BadSignature => "bad_signature",
            HookResult::Invalid => "invalid",
            HookResult::Unavailable => "unavailable",
        }
    }
}

/// Whether the store takes writes, as its writers last found out (for `/readyz`).
#[derive(Debug, Default)]
struct Writes {
    /// Unix milliseconds of the last write that succeeded (0: none yet).
    last_ok_ms: AtomicI64,
    failures: AtomicU64,
    last_error: Mutex<Option<(Timestamp, String)>>,
}

/// The daemon's metrics. One per daemon, shared by every part that counts.
#[derive(Debug)]
pub struct Metrics {
    started: Timestamp,
    routes: Mutex<Vec<Arc<RouteCounters>>>,
    dispatch: DispatchCounters,
    hooks: [[AtomicU64; HookResult::ALL.len()]; Hook::ALL.len()],
    sync: Arc<SyncMetrics>,
    writes: Writes,
    /// This replica's name and whether it leads (see [`crate::leader`]); unset until known.
    leader: Mutex<Option<(String, bool)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let started = Timestamp::now();
        Metrics {
            started,
            routes: Mutex::new(Vec::new()),
            dispatch: DispatchCounters::new(),
            hooks: Default::default(),
            sync: Arc::new(SyncMetrics::new(started)),
            writes: Writes::default(),
            leader: Mutex::new(None),
        }
    }

    /// Whether this replica (`replica`) leads now: `pagerbridge_leader`.
    pub fn set_leader(&self, replica: &str, leading: bool) {
        *self.leader.lock().expect("not poisoned") = Some((replica.to_owned(), leading));
    }

    /// The counters of an ingest route; called once per route when the routes are built.
    /// `source` is the `[[sources]]` name (`relay` for the PagerDuty-compatible routes), `route`
    /// the path: both come from the configuration, so their number is bounded.
    pub fn route(&self, source: &str, route: &str, kind: RouteKind) -> Arc<RouteCounters> {
        let mut routes = self.routes.lock().expect("not poisoned");
        if let Some(r) = routes
            .iter()
            .find(|r| r.source == source && r.route == route)
        {
            return r.clone();
        }
        let r = Arc::new(RouteCounters {
            source: source.to_owned(),
            route: route.to_owned(),
            kind,
            requests: AtomicU64::new(0),
            events: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: Default::default(),
        });
        routes.push(r.clone());
        r
    }

    pub fn dispatch(&self) -> &DispatchCounters {
        &self.dispatch
    }

    pub fn webhook(&self, hook: Hook, result: HookResult) {
        inc(&self.hooks[hook as usize][result as usize]);
    }

    /// The way back's counters, to hand to [`pagerbridge_sync`]'s parts.
    pub fn sync(&self) -> Arc<SyncMetrics> {
        self.sync.clone()
    }

    /// A write to the store succeeded (an ingest commit, a delivery recorded, a probe).
    pub fn write_ok(&self) {
        self.writes
            .last_ok_ms
            .fetch_max(Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }

    /// A write to the store failed.
    pub fn write_failed(&self, error: &dyn Display) {
        inc(&self.writes.failures);
        *self.writes.last_error.lock().expect("not poisoned") =
            Some((Timestamp::now(), error.to_string()));
    }

    /// When a write last succeeded, and the last failure.
    pub fn writes(&self) -> (Option<Timestamp>, Option<(Timestamp, String)>) {
        let ms = self.writes.last_ok_ms.load(Ordering::Relaxed);
        let ok = (ms > 0)
            .then(|| Timestamp::from_millisecond(ms).ok())
            .flatten();
        let err = self.writes.last_error.lock().expect("not poisoned").clone();
        (ok, err)
    }

    /// Totals since the start, for the status page and the tests.
    pub fn snapshot(&self) -> Snapshot {
        let routes = self.routes.lock().expect("not poisoned");
        let attempt = |a: Attempt| get(&self.dispatch.attempts[a as usize]);
        Snapshot {
            started: self.started,
            events_accepted: routes.iter().map(|r| get(&r.events)).sum(),
            requests_rejected: routes.iter().flat_map(|r| r.rejected.iter().map(get)).sum(),
            delivered: attempt(Attempt::Delivered),
            dead_letters: attempt(Attempt::Rejected),
            throttled: attempt(Attempt::Throttled),
            failed_attempts: attempt(Attempt::ServerError)
                + attempt(Attempt::TransportError)
                + attempt(Attempt::OtherError),
            coalesced: get(&self.dispatch.coalesced),
            delivery_latency_count: self.dispatch.latency.count(),
            delivery_latency_sum_seconds: self.dispatch.latency.sum_seconds(),
            webhooks_accepted: Hook::ALL
                .iter()
                .map(|h| get(&self.hooks[*h as usize][HookResult::Accepted as usize]))
                .sum(),
            webhook_signature_failures: Hook::ALL
                .iter()
                .map(|h| get(&self.hooks[*h as usize][HookResult::BadSignature as usize]))
                .sum(),
        }
    }
}

/// Totals since the daemon started. Two snapshots give rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Snapshot {
    pub started: Timestamp,
    /// Events stored by the ingest routes (relay and sources).
    pub events_accepted: u64,
    /// Ingest requests refused, for any reason.
    pub requests_rejected: u64,
    pub delivered: u64,
    pub dead_letters: u64,
    /// 429 answers.
    pub throttled: u64,
    /// 5xx answers and requests without an answer.
    pub failed_attempts: u64,
    pub coalesced: u64,
    pub delivery_latency_count: u64,
    pub delivery_latency_sum_seconds: f64,
    pub webhooks_accepted: u64,
    pub webhook_signature_failures: u64,
}

/// A routing key as it may be shown (one masking for metrics, logs and the status page).
pub use pagerduty::events::mask_key;

/// One row of the queue gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyQueue {
    /// A masked routing key, or `other`.
    pub label: String,
    pub pending: u64,
    pub lanes: u64,
    pub oldest_age: Duration,
}

/// The queue per routing key as the gauges show it: masked, the `top` busiest keys with
/// pending events (most pending first), then the rest summed as `other` (its age the oldest),
/// present whenever some key was left out.
pub fn queue_by_key(stats: &QueueStats, now: Timestamp, top: usize) -> Vec<KeyQueue> {
    let age = |at: Option<Timestamp>| {
        at.and_then(|t| Duration::try_from(now.duration_since(t)).ok())
            .unwrap_or_default()
    };
    // Masks may collide (two keys with the same ends): their rows are merged, never repeated.
    let mut by_label: BTreeMap<String, KeyQueue> = BTreeMap::new();
    for k in stats.by_routing_key.iter().filter(|k| k.pending > 0) {
        let label = mask_key(&k.routing_key);
        let row = by_label.entry(label.clone()).or_insert(KeyQueue {
            label,
            pending: 0,
            lanes: 0,
            oldest_age: Duration::ZERO,
        });
        row.pending += k.pending;
        row.lanes += k.lanes;
        row.oldest_age = row.oldest_age.max(age(k.oldest_pending_at));
    }
    let mut rows: Vec<KeyQueue> = by_label.into_values().collect();
    rows.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.label.cmp(&b.label)));
    if rows.len() > top {
        let rest = rows.split_off(top);
        rows.push(KeyQueue {
            label: "other".into(),
            pending: rest.iter().map(|r| r.pending).sum(),
            lanes: rest.iter().map(|r| r.lanes).sum(),
            oldest_age: rest.iter().map(|r| r.oldest_age).max().unwrap_or_default(),
        });
    }
    rows
}

/// Prometheus' text format, written family by family.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += get(&h.counts[i]);
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        cumulative += get(&h.counts[h.bounds.len()]);
        self.sample(&bucket, &[("le", "+Inf")], cumulative);
        self.sample(&format!("{name}_sum"), &[], h.sum_seconds());
        self.sample(&format!("{name}_count"), &[], cumulative);
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn unix(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The whole exposition. `queue` is the store's statistics (`None` when it could not be read:
/// the queue gauges are left out, and `pagerbridge_queue_stats_up` says so).
pub fn render(
    m: &Metrics,
    queue: Option<&QueueStats>,
    dispatcher: &crate::dispatch::Status,
    now: Timestamp,
) -> String {
    let mut t = Text(String::with_capacity(16 * 1024));

    t.family(
        "pagerbridge_build_info",
        "gauge",
        "The running pagerbridge's version (always 1).",
    );
    t.sample(
        "pagerbridge_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    t.family(
        "pagerbridge_start_time_seconds",
        "gauge",
        "When the daemon started, in seconds since the Unix epoch.",
    );
    t.sample("pagerbridge_start_time_seconds", &[], unix(m.started));
    if let Some((replica, leading)) = m.leader.lock().expect("not poisoned").clone() {
        t.family(
            "pagerbridge_leader",
            "gauge",
            "1 while this replica leads (runs the poller, the reconciler and the maintenance \
             checks), else 0. Always 1 with SQLite; with PostgreSQL, one replica.",
        );
        t.sample(
            "pagerbridge_leader",
            &[("replica", replica.as_str())],
            u8::from(leading),
        );
    }

    // Ingest.
    let routes: Vec<Arc<RouteCounters>> = m.routes.lock().expect("not poisoned").clone();
    t.family(
        "pagerbridge_ingest_requests_total",
        "counter",
        "Requests received on an ingest route (relay or [[sources]]).",
    );
    for r in &routes {
        let l = [("source", r.source.as_str()), ("route", r.route.as_str())];
        t.sample("pagerbridge_ingest_requests_total", &l, get(&r.requests));
    }
    t.family(
        "pagerbridge_ingest_rejected_total",
        "counter",
        "Ingest requests refused, nothing of them stored, by reason.",
    );
    for r in &routes {
        for why in Reject::ALL.iter().filter(|w| w.applies_to(r.kind)) {
            let l = [
                ("source", r.source.as_str()),
                ("route", r.route.as_str()),
                ("reason", why.as_str()),
            ];
            t.sample(
                "pagerbridge_ingest_rejected_total",
                &l,
                get(&r.rejected[*why as usize]),
            );
        }
    }
    t.family(
        "pagerbridge_events_accepted_total",
        "counter",
        "Events stored durably in the outbox by an ingest route (the sender was answered 2xx).",
    );
    for r in &routes {
        let l = [("source", r.source.as_str()), ("route", r.route.as_str())];
        t.sample("pagerbridge_events_accepted_total", &l, get(&r.events));
    }
    t.family(
        "pagerbridge_alerts_received_total",
        "counter",
        "Alerts in the monitors' payloads that [[sources]] routes accepted.",
    );
    for r in routes.iter().filter(|r| r.kind == RouteKind::Source) {
        let l = [("source", r.source.as_str()), ("route", r.route.as_str())];
        t.sample("pagerbridge_alerts_received_total", &l, get(&r.alerts));
    }
    t.family(
        "pagerbridge_alerts_dropped_total",
        "counter",
        "Alerts of accepted payloads that a routing rule dropped (no event stored).",
    );
    for r in routes.iter().filter(|r| r.kind == RouteKind::Source) {
        let l = [("source", r.source.as_str()), ("route", r.route.as_str())];
        t.sample("pagerbridge_alerts_dropped_total", &l, get(&r.dropped));
    }

    // The outbox, as the store has it now.
    t.family(
        "pagerbridge_queue_stats_up",
        "gauge",
        "1 when the outbox's statistics could be read for this scrape, else 0.",
    );
    t.sample("pagerbridge_queue_stats_up", &[], u8::from(queue.is_some()));
    if let Some(q) = queue {
        t.family(
            "pagerbridge_outbox_events",
            "gauge",
            "Events in the outbox by state (delivered, coalesced and dropped ones are kept for \
             outbox.retention).",
        );
        for (state, n) in [
            ("pending", q.pending),
            ("dead", q.dead),
            ("delivered", q.delivered),
            ("coalesced", q.coalesced),
            ("dropped", q.dropped),
        ] {
            t.sample("pagerbridge_outbox_events", &[("state", state)], n);
        }
        let rows = queue_by_key(q, now, TOP_KEYS);
        t.family(
            "pagerbridge_queue_pending_events",
            "gauge",
            "Pending events per routing key (masked; the busiest keys, the rest as other).",
        );
        for r in &rows {
            t.sample(
                "pagerbridge_queue_pending_events",
                &[("routing_key", &r.label)],
                r.pending,
            );
        }
        t.family(
            "pagerbridge_queue_pending_lanes",
            "gauge",
            "Alerts (lanes: routing key and dedup key) with pending events, per routing key.",
        );
        for r in &rows {
            t.sample(
                "pagerbridge_queue_pending_lanes",
                &[("routing_key", &r.label)],
                r.lanes,
            );
        }
        t.family(
            "pagerbridge_queue_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest pending event per routing key.",
        );
        for r in &rows {
            t.sample(
                "pagerbridge_queue_oldest_pending_age_seconds",
                &[("routing_key", &r.label)],
                secs(r.oldest_age),
            );
        }
    }

    // Deliveries.
    let d = &m.dispatch;
    t.family(
        "pagerbridge_delivery_attempts_total",
        "counter",
        "Requests to PagerDuty's Events API, by how they ended.",
    );
    for a in Attempt::ALL {
        t.sample(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", a.as_str())],
            get(&d.attempts[a as usize]),
        );
    }
    t.family(
        "pagerbridge_dead_letters_total",
        "counter",
        "Events PagerDuty refused for good, kept as dead letters, by PagerDuty's HTTP status.",
    );
    let dead = d.dead_letters.lock().expect("not poisoned").clone();
    if !dead.contains_key("400") {
        t.sample("pagerbridge_dead_letters_total", &[("status", "400")], 0);
    }
    for (status, n) in &dead {
        t.sample("pagerbridge_dead_letters_total", &[("status", status)], n);
    }
    t.family(
        "pagerbridge_events_coalesced_total",
        "counter",
        "Queued events replaced by a later one of the same alert and action, never sent.",
    );
    t.sample("pagerbridge_events_coalesced_total", &[], get(&d.coalesced));
    t.histogram(
        "pagerbridge_delivery_latency_seconds",
        "From the moment pagerbridge received an event to PagerDuty's 2xx for it.",
        &d.latency,
    );
    t.histogram(
        "pagerbridge_pagerduty_request_duration_seconds",
        "Duration of each request to PagerDuty's Events API, whatever the answer.",
        &d.request,
    );
    t.family(
        "pagerbridge_rate_limit_waits_total",
        "counter",
        "Times a routing key was held back: PagerDuty answered 429, or pagerbridge's own token \
         bucket was empty.",
    );
    for w in Wait::ALL {
        t.sample(
            "pagerbridge_rate_limit_waits_total",
            &[("reason", w.as_str())],
            get(&d.waits[w as usize]),
        );
    }
    t.family(
        "pagerbridge_rate_limit_wait_seconds_total",
        "counter",
        "Time routing keys were held back for the rate limit, summed.",
    );
    for w in Wait::ALL {
        t.sample(
            "pagerbridge_rate_limit_wait_seconds_total",
            &[("reason", w.as_str())],
            get(&d.wait_nanos[w as usize]) as f64 / 1e9,
        );
    }
    t.family(
        "pagerbridge_circuit_opens_total",
        "counter",
        "Times the circuit for PagerDuty opened (failures in a row, or a failed probe).",
    );
    t.sample(
        "pagerbridge_circuit_opens_total",
        &[],
        get(&d.circuit_opens),
    );
    t.family(
        "pagerbridge_circuit_open",
        "gauge",
        "1 while the circuit for PagerDuty is open (nothing is sent until it probes again).",
    );
    t.sample(
        "pagerbridge_circuit_open",
        &[],
        u8::from(dispatcher.circuit_open_until.is_some()),
    );
    t.family(
        "pagerbridge_dispatcher_running",
        "gauge",
        "1 while the dispatcher runs.",
    );
    t.sample(
        "pagerbridge_dispatcher_running",
        &[],
        u8::from(dispatcher.running),
    );
    if let Some(at) = dispatcher.last_delivery_at {
        t.family(
            "pagerbridge_last_delivery_timestamp_seconds",
            "gauge",
            "When PagerDuty last accepted an event, in seconds since the Unix epoch.",
        );
        t.sample("pagerbridge_last_delivery_timestamp_seconds", &[], unix(at));
    }

    // PagerDuty's changes coming in.
    t.family(
        "pagerbridge_webhook_requests_total",
        "counter",
        "PagerDuty webhook deliveries received (kind v3: Webhooks v3, v2: the legacy Generic \
         V2 webhook), by how they were answered; bad_signature counts signature failures.",
    );
    for h in Hook::ALL {
        for r in HookResult::ALL {
            t.sample(
                "pagerbridge_webhook_requests_total",
                &[("kind", h.as_str()), ("result", r.as_str())],
                get(&m.hooks[h as usize][r as usize]),
            );
        }
    }

    // The way back.
    let s = m.sync.snapshot();
    t.family(
        "pagerbridge_writebacks_total",
        "counter",
        "Write-back attempts per [[monitors]] entry: done, retry (failed, tried again later) or \
         failed (given up).",
    );
    for (monitor, counts) in &s.writebacks {
        for r in WritebackResult::ALL {
            t.sample(
                "pagerbridge_writebacks_total",
                &[("monitor", monitor), ("outcome", r.as_str())],
                counts[r as usize],
            );
        }
    }
    if let Some(r) = s.reconciler {
        t.family(
            "pagerbridge_reconciler_passes_total",
            "counter",
            "Reconciler passes, by result (error: the store failed during the pass).",
        );
        t.sample(
            "pagerbridge_reconciler_passes_total",
            &[("result", "ok")],
            r.passes_ok,
        );
        t.sample(
            "pagerbridge_reconciler_passes_total",
            &[("result", "error")],
            r.passes_failed,
        );
        t.family(
            "pagerbridge_reconciler_incidents_checked_total",
            "counter",
            "Incident map rows the reconciler checked against PagerDuty.",
        );
        t.sample(
            "pagerbridge_reconciler_incidents_checked_total",
            &[],
            r.checked,
        );
        t.family(
            "pagerbridge_reconciler_incident_errors_total",
            "counter",
            "Incidents PagerDuty could not answer for during a pass (tried at the next).",
        );
        t.sample(
            "pagerbridge_reconciler_incident_errors_total",
            &[],
            r.errors,
        );
        t.family(
            "pagerbridge_reconciler_repairs_total",
            "counter",
            "What the reconciler repaired: a lost resolve sent again, a change PagerDuty made \
             that never arrived fed to the inbox, an incident found by its key.",
        );
        for (kind, n) in [
            ("resolve_resent", r.resolves_resent),
            ("change_fed", r.changes_fed),
            ("incident_found", r.ids_learned),
        ] {
            t.sample("pagerbridge_reconciler_repairs_total", &[("kind", kind)], n);
        }
    }
    if let Some(p) = s.poller {
        t.family(
            "pagerbridge_poller_polls_total",
            "counter",
            "Polls of PagerDuty's log entries, by result.",
        );
        t.sample(
            "pagerbridge_poller_polls_total",
            &[("result", "ok")],
            p.polls_ok,
        );
        t.sample(
            "pagerbridge_poller_polls_total",
            &[("result", "error")],
            p.polls_failed,
        );
        t.family(
            "pagerbridge_poller_entries_stored_total",
            "counter",
            "Log entries the poller stored in the inbox.",
        );
        t.sample("pagerbridge_poller_entries_stored_total", &[], p.stored);
        t.family(
            "pagerbridge_poller_lag_seconds",
            "gauge",
            "Time since the start of the last successful poll (since the daemon's start before \
             the first): PagerDuty's changes since then may not be in yet.",
        );
        t.sample("pagerbridge_poller_lag_seconds", &[], secs(p.lag(now)));
    }

    t.family(
        "pagerbridge_store_write_failures_total",
        "counter",
        "Writes to the outbox database that failed (ingest commits, delivery records, readiness \
         probes).",
    );
    t.sample(
        "pagerbridge_store_write_failures_total",
        &[],
        get(&m.writes.failures),
    );
    t.0
}

struct Endpoint {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
}

/// `GET /metrics`.
pub fn routes(metrics: Arc<Metrics>, store: Arc<dyn Store>, dispatcher: Dispatcher) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Arc::new(Endpoint {
            metrics,
            store,
            dispatcher,
        }))
}

async fn scrape(State(e): State<Arc<Endpoint>>) -> Response {
    let stats = match e.store.stats().await {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the outbox's statistics for /metrics");
            None
        }
    };
    let body = render(
        &e.metrics,
        stats.as_ref(),
        &e.dispatcher.status(),
        Timestamp::now(),
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagerbridge_store::KeyStats;

    fn key(k: &str, pending: u64, age_s: i64, now: Timestamp) -> KeyStats {
        KeyStats {
            routing_key: k.into(),
            pending,
            lanes: pending,
            oldest_pending_at: Some(now - jiff::SignedDuration::from_secs(age_s)),
            next_attempt_at: None,
        }
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask_key("a1b2c3d4e5f60718293a4b5c6d7e8f90"), "a1b2...8f90");
        assert_eq!(mask_key("short"), "...rt");
        assert_eq!(mask_key(""), "...");
    }

    #[test]
    fn the_busiest_keys_are_shown_and_the_rest_summed() {
        let now = Timestamp::now();
        let mut stats = QueueStats::default();
        for i in 0..5u64 {
            stats.by_routing_key.push(key(
                &format!("key{i}aaaaaaaaaaaaaaaaaaaaaaaaaaa{i}"),
                i + 1,
                10 * i as i64,
                now,
            ));
        }
        stats
            .by_routing_key
            .push(key("idle000000000000000000000000000z", 0, 0, now));
        let rows = queue_by_key(&stats, now, 2);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["key4...aaa4", "key3...aaa3", "other"]);
        assert_eq!(rows[2].pending, 1 + 2 + 3);
        assert_eq!(rows[2].oldest_age.as_secs(), 20);
        assert_eq!(
            queue_by_key(&stats, now, 10).len(),
            5,
            "idle keys are not shown"
        );
    }

    #[test]
    fn colliding_masks_are_merged_not_repeated() {
        let now = Timestamp::now();
        let mut stats = QueueStats::default();
        stats
            .by_routing_key
            .push(key("abcdXXXXXXXXXXXXXXXXXXXXXXXXwxyz", 2, 5, now));
        stats
            .by_routing_key
            .push(key("abcdYYYYYYYYYYYYYYYYYYYYYYYYwxyz", 3, 9, now));
        let rows = queue_by_key(&stats, now, 10);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].pending, rows[0].oldest_age.as_secs()), (5, 9));
    }

    #[test]
    fn label_values_are_escaped_and_histograms_cumulative() {
        let m = Metrics::new();
        m.route("we\"ird\\", "/x\ny", RouteKind::Source).request();
        m.dispatch()
            .attempt(Attempt::Delivered, Duration::from_millis(3));
        m.dispatch()
            .attempt(Attempt::Delivered, Duration::from_secs(100));
        let text = render(&m, None, &Default::default(), Timestamp::now());
        assert!(
            text.contains(
                r#"pagerbridge_ingest_requests_total{source="we\"ird\\",route="/x\ny"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pagerbridge_pagerduty_request_duration_seconds_bucket{le="0.005"} 1"#)
        );
        assert!(
            text.contains(r#"pagerbridge_pagerduty_request_duration_seconds_bucket{le="30"} 1"#)
        );
        assert!(
            text.contains(r#"pagerbridge_pagerduty_request_duration_seconds_bucket{le="+Inf"} 2"#)
        );
        assert!(text.contains("pagerbridge_pagerduty_request_duration_seconds_count 2"));
        assert!(text.contains("pagerbridge_queue_stats_up 0"));
    }
}
