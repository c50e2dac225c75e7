//! `/metrics`, `/healthz` and `/readyz` of a running daemon against the emulator: exact counts
//! of what was ingested, refused, delivered, throttled, dead-lettered and received by webhook;
//! queue gauges that move while PagerDuty is down; labels that never show a dedup key or a whole
//! routing key; the exposition checked by the real `promtool`; readiness that fails while the
//! store cannot be written and stays up (with the reason) while PagerDuty is in backoff.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pagerbridge_testkit::{Canned, Recorder, TestPd, debian};
use pagerduty::rest::{IncidentStatus, IncidentUpdate};
use pagerduty_emulator::{FaultKind, FaultSpec};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const WEBHOOK_SECRET: &str = "observability-webhook-secret";
const LEGACY_SECRET: &str = "legacyLegacy0123456789";
const SOURCE_TOKEN: &str = "source-token-0123456789";

/// One sample of the exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape: the text as served, and its samples.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the sample with exactly these labels; panics naming what is there if none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| {
            let have: Vec<_> = self
                .samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| &s.labels)
                .collect();
            panic!("no {name}{labels:?}; the series of {name} are {have:?}")
        })
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    fn label_values(&self) -> impl Iterator<Item = &String> {
        self.samples.iter().flat_map(|s| s.labels.values())
    }
}

/// Parses Prometheus' text format (what the daemon writes: no timestamps).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                (name.to_owned(), parse_labels(body))
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("the value is closed") {
                (_, '\\') => match chars.next().expect("an escape is complete").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

async fn scrape(d: &Daemon) -> Scrape {
    let resp = d
        .http
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("the body arrives");
    let samples = parse(&text);
    Scrape { text, samples }
}

async fn readyz(d: &Daemon) -> Answer {
    answer(d.http.get(format!("{}/readyz", d.base))).await
}

/// The exposition passes `promtool check metrics` (Debian's `prometheus` package), the linter
/// Prometheus' own maintainers use; skipped loudly when promtool cannot be installed.
fn promtool_accepts(text: &str) {
    let Some(promtool) = debian::installed_or_skip("promtool", &["prometheus"]) else {
        return;
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {} {said}\n--- exposition ---\n{text}",
        out.status
    );
    eprintln!("promtool check metrics: no problem found");
}

/// What the first four and last four characters of a routing key look like on a label.
fn masked(key: &str) -> String {
    format!("{}...{}", &key[..4], &key[key.len() - 4..])
}

/// No label value holds a whole routing key or any dedup key the outbox knows.
async fn no_secret_labels(d: &Daemon, s: &Scrape, routing_keys: &[&str]) {
    let dedup_keys: Vec<String> = all_records(d.store().as_ref())
        .await
        .into_iter()
        .filter_map(|r| r.dedup_key)
        .collect();
    assert!(!dedup_keys.is_empty());
    for v in s.label_values() {
        for k in routing_keys {
            assert!(!v.contains(k), "a label shows the routing key {k}: {v}");
        }
        for k in &dedup_keys {
            assert!(
                !v.contains(k.as_str()),
                "a label shows the dedup key {k}: {v}"
            );
        }
    }
    for k in routing_keys {
        assert!(
            !s.text.contains(k),
            "the exposition shows the routing key {k}"
        );
    }
}

fn alertmanager(status: &str) -> Vec<u8> {
    json!({
        "version": "4", "status": status, "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk full on db1"},
            "startsAt": "2026-11-21T10:00:00Z",
            "fingerprint": "d1a2b3c4",
        }],
    })
    .to_string()
    .into_bytes()
}

async fn post_raw(
    d: &Daemon,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = d
        .http
        .post(format!("{}{path}", d.base))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req).await
}

fn sources_and_webhooks() -> String {
    format!(
        r#"
[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"

[[sources]]
name = "locked"
kind = "alertmanager"
auth = {{ bearer = "{SOURCE_TOKEN}" }}

[sync.webhooks]
secrets = ["{WEBHOOK_SECRET}"]
legacy_secret = "{LEGACY_SECRET}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_ingest_deliveries_and_webhooks_exactly() {
    let pd = TestPd::start().await;
    let opts = Opts {
        extra: sources_and_webhooks(),
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;

    let health = answer(d.http.get(format!("{}/healthz", d.base))).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, Value::String("ok\n".into()));

    // Throttled once (429 with Retry-After: 1), then delivered.
    inject(
        &pd,
        FaultSpec {
            retry_after: Some(1),
            count: Some(1),
            ..fault(FaultKind::RateLimit)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "obs/throttled", 1)).await;
    wait_drained(&d.store(), WAIT).await;
    // Refused for good: a dead letter.
    inject(&pd, status_fault(400, 1));
    d.send(&trigger(DEMO_ROUTING_KEY, "obs/refused", 2)).await;
    wait_drained(&d.store(), WAIT).await;
    // Three delivered, on two routing keys.
    d.send_all(&[
        trigger(DEMO_ROUTING_KEY, "obs/ok/1", 3),
        trigger(DEMO_DB_ROUTING_KEY, "obs/ok/2", 4),
        trigger(DEMO_DB_ROUTING_KEY, "obs/ok/3", 5),
    ])
    .await;
    // Refused by the relay: invalid, and not JSON's content type.
    let a = d
        .post("/v2/enqueue", &trigger("short", "obs/invalid", 6))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let body = serde_json::to_vec(&trigger(DEMO_ROUTING_KEY, "obs/text", 7)).unwrap();
    let a = post_raw(&d, "/v2/enqueue", "text/plain", body, &[]).await;
    assert_eq!(a.status, 400, "{}", a.body);
    // A change event.
    let change = json!({"routing_key": DEMO_ROUTING_KEY,
        "payload": {"summary": "Deployed v2.1", "source": "ci"}});
    assert_eq!(d.post("/v2/change/enqueue", &change).await.status, 202);

    // A monitor's source: accepted, undecodable, wrong type; the locked one without its token.
    let json_ct = "application/json";
    let a = post_raw(&d, "/ingest/am", json_ct, alertmanager("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let a = post_raw(&d, "/ingest/am", json_ct, b"{not json".to_vec(), &[]).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = post_raw(&d, "/ingest/am", "text/plain", alertmanager("firing"), &[]).await;
    assert_eq!(a.status, 415, "{}", a.body);
    let a = post_raw(&d, "/ingest/locked", json_ct, alertmanager("firing"), &[]).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // PagerDuty's webhooks: signed (twice: the second is a duplicate), badly signed; the legacy
    // route with the wrong and the right secret.
    let hook = br#"{"event":{"id":"E1","event_type":"incident.acknowledged","resource_type":"incident","occurred_at":"2026-11-21T10:00:00Z","agent":null,"client":null,"data":{"id":"PX","type":"incident","status":"acknowledged"}}}"#.to_vec();
    let good = pagerduty::webhook::sign(WEBHOOK_SECRET.as_bytes(), &hook);
    let signed = [
        ("x-pagerduty-signature", good.as_str()),
        ("x-webhook-id", "wh-1"),
    ];
    let a = post_raw(&d, "/webhooks/pagerduty", json_ct, hook.clone(), &signed).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let a = post_raw(&d, "/webhooks/pagerduty", json_ct, hook.clone(), &signed).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let bad = pagerduty::webhook::sign(b"not the secret", &hook);
    let badly = [
        ("x-pagerduty-signature", bad.as_str()),
        ("x-webhook-id", "wh-2"),
    ];
    let a = post_raw(&d, "/webhooks/pagerduty", json_ct, hook.clone(), &badly).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let v2 = json!({"messages": [{"id": "m-1", "event": "incident.acknowledge",
        "created_on": "2026-11-21T10:00:00Z", "incident": {"id": "PX"}, "log_entries": []}]});
    let v2 = v2.to_string().into_bytes();
    let a = post_raw(
        &d,
        "/webhooks/pagerduty-v2/wrongwrongwrong000000",
        json_ct,
        v2.clone(),
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    let path = format!("/webhooks/pagerduty-v2/{LEGACY_SECRET}");
    assert_eq!(post_raw(&d, &path, json_ct, v2, &[]).await.status, 202);

    wait_drained(&d.store(), WAIT).await;
    let s = scrape(&d).await;
    eprintln!("{}", s.text);

    // Ingest, per source and route.
    let v2r = [("source", "relay"), ("route", "/v2/enqueue")];
    let req = "pagerbridge_ingest_requests_total";
    assert_eq!(s.get(req, &v2r), 7.0);
    assert_eq!(s.get("pagerbridge_events_accepted_total", &v2r), 5.0);
    let rejected = |source: &str, route: &str, reason: &str| {
        s.get(
            "pagerbridge_ingest_rejected_total",
            &[("source", source), ("route", route), ("reason", reason)],
        )
    };
    assert_eq!(rejected("relay", "/v2/enqueue", "invalid_event"), 1.0);
    assert_eq!(rejected("relay", "/v2/enqueue", "content_type"), 1.0);
    assert_eq!(rejected("relay", "/v2/enqueue", "too_large"), 0.0);
    assert_eq!(rejected("relay", "/v2/enqueue", "store_unavailable"), 0.0);
    let change_route = [("source", "relay"), ("route", "/v2/change/enqueue")];
    assert_eq!(s.get(req, &change_route), 1.0);
    assert_eq!(
        s.get("pagerbridge_events_accepted_total", &change_route),
        1.0
    );
    let v1_route = [
        ("source", "relay"),
        ("route", "/generic/2010-04-15/create_event.json"),
    ];
    assert_eq!(s.get(req, &v1_route), 0.0);
    let am = [("source", "am"), ("route", "/ingest/am")];
    assert_eq!(s.get(req, &am), 3.0);
    assert_eq!(s.get("pagerbridge_events_accepted_total", &am), 1.0);
    assert_eq!(s.get("pagerbridge_alerts_received_total", &am), 1.0);
    assert_eq!(s.get("pagerbridge_alerts_dropped_total", &am), 0.0);
    assert_eq!(rejected("am", "/ingest/am", "undecodable"), 1.0);
    assert_eq!(rejected("am", "/ingest/am", "content_type"), 1.0);
    assert_eq!(rejected("am", "/ingest/am", "unauthorized"), 0.0);
    assert_eq!(rejected("locked", "/ingest/locked", "unauthorized"), 1.0);
    assert_eq!(
        s.get(req, &[("source", "locked"), ("route", "/ingest/locked")]),
        1.0
    );
    assert!(
        s.find(
            "pagerbridge_ingest_rejected_total",
            &[
                ("source", "relay"),
                ("route", "/v2/enqueue"),
                ("reason", "unauthorized")
            ]
        )
        .is_none(),
        "only the reasons a route can have are shown"
    );

    // Deliveries: the throttled one, three, the change event and the monitor's alert.
    let attempts = |outcome: &str| {
        s.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(attempts("delivered"), 6.0);
    assert_eq!(attempts("throttled"), 1.0);
    assert_eq!(attempts("rejected"), 1.0);
    assert_eq!(attempts("server_error"), 0.0);
    assert_eq!(attempts("transport_error"), 0.0);
    assert_eq!(
        s.get("pagerbridge_dead_letters_total", &[("status", "400")]),
        1.0
    );
    assert_eq!(s.series("pagerbridge_dead_letters_total").len(), 1);
    assert_eq!(
        s.get(
            "pagerbridge_rate_limit_waits_total",
            &[("reason", "pagerduty_429")]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            "pagerbridge_rate_limit_waits_total",
            &[("reason", "token_bucket")]
        ),
        0.0
    );
    let waited = s.get(
        "pagerbridge_rate_limit_wait_seconds_total",
        &[("reason", "pagerduty_429")],
    );
    assert!(
        (1.0..5.0).contains(&waited),
        "Retry-After: 1 was honoured: {waited}"
    );
    assert_eq!(
        s.get("pagerbridge_delivery_latency_seconds_count", &[]),
        6.0
    );
    assert_eq!(
        s.get(
            "pagerbridge_delivery_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        6.0
    );
    let latency = s.get("pagerbridge_delivery_latency_seconds_sum", &[]);
    assert!(
        latency >= 1.0,
        "the throttled event alone waited a second: {latency}"
    );
    assert_eq!(
        s.get("pagerbridge_pagerduty_request_duration_seconds_count", &[]),
        8.0
    );
    assert_eq!(s.get("pagerbridge_events_coalesced_total", &[]), 0.0);
    assert_eq!(s.get("pagerbridge_circuit_open", &[]), 0.0);
    assert_eq!(s.get("pagerbridge_circuit_opens_total", &[]), 0.0);
    assert_eq!(s.get("pagerbridge_dispatcher_running", &[]), 1.0);
    assert!(s.get("pagerbridge_last_delivery_timestamp_seconds", &[]) > 1.7e9);

    // The outbox as the store has it.
    let state = |st: &str| s.get("pagerbridge_outbox_events", &[("state", st)]);
    assert_eq!(state("pending"), 0.0);
    assert_eq!(state("dead"), 1.0);
    assert_eq!(state("delivered"), 6.0);
    assert!(s.series("pagerbridge_queue_pending_events").is_empty());
    assert_eq!(s.get("pagerbridge_queue_stats_up", &[]), 1.0);

    // Webhooks.
    let hooks = |kind: &str, result: &str| {
        s.get(
            "pagerbridge_webhook_requests_total",
            &[("kind", kind), ("result", result)],
        )
    };
    assert_eq!(hooks("v3", "accepted"), 1.0);
    assert_eq!(hooks("v3", "duplicate"), 1.0);
    assert_eq!(hooks("v3", "bad_signature"), 1.0);
    assert_eq!(hooks("v3", "invalid"), 0.0);
    assert_eq!(hooks("v2", "accepted"), 1.0);
    assert_eq!(hooks("v2", "bad_signature"), 1.0);

    assert_eq!(s.get("pagerbridge_store_write_failures_total", &[]), 0.0);
    assert_eq!(
        s.get(
            "pagerbridge_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Not configured, so not shown.
    assert!(s.series("pagerbridge_poller_lag_seconds").is_empty());
    assert!(s.series("pagerbridge_reconciler_passes_total").is_empty());

    no_secret_labels(&d, &s, &[DEMO_ROUTING_KEY, DEMO_DB_ROUTING_KEY]).await;
    promtool_accepts(&s.text);

    let r = readyz(&d).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "ready");
    for check in ["store", "dispatcher", "pagerduty"] {
        assert_eq!(r.body["checks"][check]["status"], "pass", "{}", r.body);
    }
    assert!(
        r.body["checks"]["pagerduty"]["reason"]
            .as_str()
            .unwrap()
            .contains("last delivery"),
        "{}",
        r.body
    );
    d.stop().await;
}

/// A routing key no PagerDuty integration has: 32 characters, as PagerDuty requires.
fn made_up_key(i: usize) -> String {
    format!("{i:02}{}", "f".repeat(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_gauges_move_while_pagerduty_is_down_and_readyz_says_backoff() {
    let pd = TestPd::start().await;
    let opts = Opts {
        circuit_failures: 2,
        circuit_cooldown: "300ms",
        circuit_max_cooldown: "1s",
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    inject(
        &pd,
        FaultSpec {
            status: Some(503),
            seconds: Some(60.0),
            ..fault(FaultKind::Status)
        },
    );
    let mut evs: Vec<Value> = (1..=3)
        .map(|i| trigger(DEMO_ROUTING_KEY, &format!("obs/down/{i}"), i))
        .collect();
    evs.push(trigger(DEMO_DB_ROUTING_KEY, "obs/down/db/1", 4));
    evs.push(trigger(DEMO_DB_ROUTING_KEY, "obs/down/db/2", 5));
    let others: Vec<String> = (0..11).map(made_up_key).collect();
    for (i, k) in others.iter().enumerate() {
        evs.push(trigger(k, &format!("obs/down/other/{i}"), 10 + i as u64));
    }
    d.send_all(&evs).await;

    let r = eventually("readyz to report the backoff", WAIT, || async {
        let r = readyz(&d).await;
        (r.body["checks"]["pagerduty"]["status"] == "warn").then_some(r)
    })
    .await;
    assert_eq!(
        r.status, 200,
        "PagerDuty in backoff is expected: still ready"
    );
    assert_eq!(r.body["status"], "ready");
    let reason = r.body["checks"]["pagerduty"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("in backoff") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(r.body["checks"]["store"]["status"], "pass", "{}", r.body);
    assert_eq!(
        r.body["checks"]["dispatcher"]["status"], "pass",
        "{}",
        r.body
    );
    eventually("the circuit to open", WAIT, || async {
        (scrape(&d).await.get("pagerbridge_circuit_open", &[]) == 1.0).then_some(())
    })
    .await;

    let first = scrape(&d).await;
    eprintln!("{}", first.text);
    let demo = masked(DEMO_ROUTING_KEY);
    let db = masked(DEMO_DB_ROUTING_KEY);
    let pending =
        |s: &Scrape, key: &str| s.get("pagerbridge_queue_pending_events", &[("routing_key", key)]);
    let age = |s: &Scrape, key: &str| {
        s.get(
            "pagerbridge_queue_oldest_pending_age_seconds",
            &[("routing_key", key)],
        )
    };
    assert_eq!(pending(&first, &demo), 3.0);
    assert_eq!(
        first.get("pagerbridge_queue_pending_lanes", &[("routing_key", &demo)]),
        3.0
    );
    assert_eq!(pending(&first, &db), 2.0);
    // Thirteen keys: the ten busiest one by one, three summed as `other`.
    let rows = first.series("pagerbridge_queue_pending_events");
    assert_eq!(rows.len(), 11, "{rows:?}");
    assert_eq!(pending(&first, "other"), 3.0);
    let total: f64 = rows.iter().map(|r| r.value).sum();
    assert_eq!(total, 16.0);
    assert_eq!(
        first.get("pagerbridge_outbox_events", &[("state", "pending")]),
        16.0
    );
    assert!(
        first.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", "server_error")]
        ) >= 2.0
    );
    assert!(first.get("pagerbridge_circuit_opens_total", &[]) >= 1.0);
    assert_eq!(
        first.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", "delivered")]
        ),
        0.0
    );
    let mut routing_keys = vec![DEMO_ROUTING_KEY, DEMO_DB_ROUTING_KEY];
    routing_keys.extend(others.iter().map(String::as_str));
    no_secret_labels(&d, &first, &routing_keys).await;
    promtool_accepts(&first.text);

    // The queue ages while PagerDuty stays down.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = scrape(&d).await;
    assert_eq!(pending(&second, &demo), 3.0);
    let (a1, a2) = (age(&first, &demo), age(&second, &demo));
    assert!(
        a1 > 0.0 && a2 >= a1 + 1.0,
        "the oldest event ages: {a1} -> {a2}"
    );
    assert!(age(&second, "other") >= 1.0);

    // PagerDuty is back: the queue drains, the gauges go, readiness says PagerDuty answers.
    pd.shared().faults.clear();
    wait_drained(&d.store(), Duration::from_secs(30)).await;
    let after = scrape(&d).await;
    assert!(
        after.series("pagerbridge_queue_pending_events").is_empty(),
        "{:?}",
        after.series("pagerbridge_queue_pending_events")
    );
    assert_eq!(
        after.get("pagerbridge_outbox_events", &[("state", "pending")]),
        0.0
    );
    assert_eq!(after.get("pagerbridge_circuit_open", &[]), 0.0);
    assert_eq!(
        after.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", "delivered")]
        ) + after.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", "rejected")]
        ),
        16.0,
        "each event delivered or, for keys PagerDuty does not know, refused once"
    );
    assert_eq!(
        after.get("pagerbridge_delivery_latency_seconds_count", &[]),
        after.get(
            "pagerbridge_delivery_attempts_total",
            &[("outcome", "delivered")]
        )
    );
    let r = eventually("readyz to see PagerDuty answer again", WAIT, || async {
        let r = readyz(&d).await;
        (r.body["checks"]["pagerduty"]["status"] == "pass").then_some(r)
    })
    .await;
    assert_eq!(r.status, 200);
    d.stop().await;
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, options: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the file system of `file` to the last block.
fn fill(file: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_fails_while_the_store_cannot_be_written_and_recovers() {
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "size=4m") {
        Ok(m) => m,
        Err(reason) => {
            debian::skipped(&format!(
                "readyz with a store that cannot be written needs a full file system: {reason}"
            ));
            return;
        }
    };
    let mut d = Daemon::start_at(&pd.url(), dir, "mnt/data", Opts::default()).await;
    let r = readyz(&d).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["checks"]["store"]["status"], "pass");

    // No room left: the store cannot commit (as root, a read-only mode would not stop us, and
    // a file system cannot be made read-only under files open for writing).
    let filler = mnt.join("filler");
    fill(&filler);
    // Past the window in which a recent successful write stands for the store.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = readyz(&d).await;
    eprintln!("full: {} {}", r.status, r.body);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["status"], "not ready");
    assert_eq!(r.body["checks"]["store"]["status"], "fail");
    let reason = r.body["checks"]["store"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot be written") && reason.contains("full"),
        "{reason}"
    );
    assert_eq!(
        r.body["checks"]["dispatcher"]["status"], "pass",
        "the other checks still say how they are: {}",
        r.body
    );
    let a = d
        .post("/v2/enqueue", &trigger(DEMO_ROUTING_KEY, "obs/full", 1))
        .await;
    assert_eq!(a.status, 503, "{}", a.body);
    let s = scrape(&d).await;
    assert_eq!(
        s.get(
            "pagerbridge_ingest_rejected_total",
            &[
                ("source", "relay"),
                ("route", "/v2/enqueue"),
                ("reason", "store_unavailable")
            ]
        ),
        1.0
    );
    assert!(s.get("pagerbridge_store_write_failures_total", &[]) >= 2.0);

    // Room again: ready again, and events are taken.
    std::fs::remove_file(&filler).unwrap();
    let r = eventually("readyz to pass again", WAIT, || async {
        let r = readyz(&d).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.body["checks"]["store"]["status"], "pass", "{}", r.body);
    d.send(&trigger(DEMO_ROUTING_KEY, "obs/after", 2)).await;
    wait_drained(&d.store(), WAIT).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn way_back_metrics_count_write_backs_polls_and_reconciler_passes() {
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let secret = pd
        .subscribe_webhooks(&format!("http://{addr}/webhooks/pagerduty"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let o = Opts {
        extra: format!(
            r#"
[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"

[[monitors]]
name = "hook"
kind = "webhook"
url = "{url}"
sources = ["am"]

[sync.webhooks]
secrets = ["{secret}"]

[sync.poller]
enabled = true
interval = "5s"

[sync.reconciler]
interval = "10s"
"#,
            url = monitor.url()
        ),
        ..Opts::default()
    };
    let text = config_text(&pd.url(), "data", &o).replace(
        "[pagerduty]\n",
        &format!(
            "[pagerduty]\napi_token = \"{}\"\n",
            pagerduty_emulator::seed::DEMO_API_TOKEN
        ),
    );
    let config = pagerbridge_config::Config::from_str(&text, "test.toml", dir.path()).unwrap();
    let mut d = Daemon::start_on(config, dir, listener).await;

    let a = post_raw(
        &d,
        "/ingest/am",
        "application/json",
        alertmanager("firing"),
        &[],
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = eventually("the incident opens", WAIT, || async {
        pd.world().incidents.first().map(|i| i.id.clone())
    })
    .await;
    pd.rest()
        .update_incident(&id, &IncidentUpdate::status(IncidentStatus::Acknowledged))
        .await
        .unwrap();
    monitor.wait_for(1, WAIT).await;
    let s = eventually("the write-back to be counted", WAIT, || async {
        let s = scrape(&d).await;
        let done = s.get(
            "pagerbridge_writebacks_total",
            &[("monitor", "hook"), ("outcome", "done")],
        );
        (done == 1.0).then_some(s)
    })
    .await;
    for outcome in ["retry", "failed"] {
        assert_eq!(
            s.get(
                "pagerbridge_writebacks_total",
                &[("monitor", "hook"), ("outcome", outcome)]
            ),
            0.0
        );
    }
    assert!(s.get("pagerbridge_poller_polls_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(
        s.get("pagerbridge_poller_polls_total", &[("result", "error")]),
        0.0
    );
    let lag = s.get("pagerbridge_poller_lag_seconds", &[]);
    assert!((0.0..10.0).contains(&lag), "polled within 5 s: lag {lag}");

    // PagerDuty's webhook deliveries, each counted as received.
    eventually("every webhook delivery to be counted", WAIT, || async {
        let delivered = pd
            .deliveries()
            .iter()
            .filter(|x| matches!(x.last_status, Some(200 | 202)))
            .count() as f64;
        let s = scrape(&d).await;
        let counted = s.get(
            "pagerbridge_webhook_requests_total",
            &[("kind", "v3"), ("result", "accepted")],
        ) + s.get(
            "pagerbridge_webhook_requests_total",
            &[("kind", "v3"), ("result", "duplicate")],
        );
        (delivered >= 2.0 && counted == delivered).then_some(())
    })
    .await;

    // The reconciler's first pass comes after its interval.
    let s = eventually("a reconciler pass", Duration::from_secs(25), || async {
        let s = scrape(&d).await;
        (s.get("pagerbridge_reconciler_passes_total", &[("result", "ok")]) >= 1.0).then_some(s)
    })
    .await;
    assert!(s.get("pagerbridge_reconciler_incidents_checked_total", &[]) >= 1.0);
    assert_eq!(
        s.get("pagerbridge_reconciler_incident_errors_total", &[]),
        0.0
    );
    for kind in ["resolve_resent", "change_fed", "incident_found"] {
        s.get("pagerbridge_reconciler_repairs_total", &[("kind", kind)]);
    }
    no_secret_labels(&d, &s, &[DEMO_ROUTING_KEY]).await;
    promtool_accepts(&s.text);
    d.stop().await;
}
