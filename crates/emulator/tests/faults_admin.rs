//! Fault injection, the built-in rate limits, the `/_emulator` admin API and the HTML page.

use std::time::{Duration, Instant};

use pagerbridge_testkit::{
    DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, DEMO_V1_SERVICE_KEY, TestPd, unlimited_seed,
};
use pagerduty::error::{Disposition, TransportKind};
use pagerduty::events::{Event, EventAction, Severity};
use pagerduty::rest::IncidentQuery;
use pagerduty::{Error, EventsClient};
use pagerduty_emulator::seed::{SeedService, SeedSubscription, SeedWindow, WebhookVersion};
use pagerduty_emulator::{FaultKind, FaultSpec, Scope};
use serde_json::{Value, json};

const TOKEN: &str = "Token token=emulator-account-token";
const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("the emulator answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn trigger_body(routing_key: &str, key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {"summary": format!("Problem {key}"), "source": "host", "severity": "critical"},
    })
}

async fn enqueue(pd: &TestPd, routing_key: &str, key: &str) -> Answer {
    answer(
        http()
            .post(format!("{}/v2/enqueue", pd.url()))
            .json(&trigger_body(routing_key, key)),
    )
    .await
}

async fn rest_get(pd: &TestPd, token: &str, path: &str) -> Answer {
    answer(
        http()
            .get(format!("{}{path}", pd.url()))
            .header("authorization", token)
            .header("accept", ACCEPT),
    )
    .await
}

async fn admin_get(pd: &TestPd, path: &str) -> Answer {
    answer(http().get(format!("{}/_emulator/{path}", pd.url()))).await
}

async fn add_fault(pd: &TestPd, spec: Value) -> Answer {
    answer(
        http()
            .post(format!("{}/_emulator/faults", pd.url()))
            .json(&spec),
    )
    .await
}

fn trigger(routing_key: &str, key: &str) -> Event {
    Event::trigger(
        routing_key,
        format!("Problem {key}"),
        "host",
        Severity::Critical,
    )
    .with_dedup_key(key)
}

fn spec(kind: FaultKind) -> FaultSpec {
    FaultSpec {
        kind,
        status: None,
        retry_after: None,
        delay_ms: None,
        count: None,
        seconds: None,
        scope: Scope::All,
    }
}

fn incident_count(pd: &TestPd) -> usize {
    pd.world().incidents.len()
}

#[tokio::test]
async fn a_status_fault_answers_503_for_its_count_then_lets_requests_through() {
    let pd = TestPd::start().await;
    let added = add_fault(&pd, json!({"kind": "status", "status": 503, "count": 2})).await;
    assert_eq!(added.status, 201);
    let listed = admin_get(&pd, "faults").await.body;
    assert_eq!(listed["faults"][0]["id"], added.body["id"]);
    assert_eq!(listed["faults"][0]["remaining"], 2);

    let err = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "f1"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(matches!(err.disposition(), Disposition::Retry { .. }));
    let rest = rest_get(&pd, TOKEN, "/incidents").await;
    assert_eq!(rest.status, 503);
    assert_eq!(rest.body["error"]["message"], "Service Unavailable");

    let ok = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "f1"))
        .await
        .unwrap();
    assert_eq!(ok.status, 202);
    assert_eq!(
        incident_count(&pd),
        1,
        "the refused event was not processed"
    );
    assert_eq!(admin_get(&pd, "faults").await.body["faults"], json!([]));
}

#[tokio::test]
async fn a_rate_limit_fault_answers_like_pagerduty_throttling_on_each_api() {
    let pd = TestPd::start().await;
    pd.inject(FaultSpec {
        retry_after: Some(7),
        count: Some(4),
        ..spec(FaultKind::RateLimit)
    })
    .unwrap();

    let events = enqueue(&pd, DEMO_ROUTING_KEY, "t1").await;
    assert_eq!(events.status, 429);
    assert_eq!(events.header("retry-after"), Some("7"));
    assert_eq!(events.body["status"], "throttle event");
    assert!(events.body["message"].is_string());

    let rest = rest_get(&pd, TOKEN, "/incidents").await;
    assert_eq!(rest.status, 429);
    assert_eq!(rest.header("retry-after"), Some("7"));
    assert_eq!(
        rest.body,
        json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    );

    let v1 = answer(
        http()
            .post(format!("{}/generic/2010-04-15/create_event.json", pd.url()))
            .json(&json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger", "description": "x"})),
    )
    .await;
    assert_eq!(v1.status, 403, "Events v1 throttles with 403");
    assert_eq!(v1.header("retry-after"), Some("7"));

    let err = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "t1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(incident_count(&pd), 0);
}

#[tokio::test]
async fn a_delay_fault_slows_the_answer_and_a_shorter_client_timeout_gives_up() {
    let pd = TestPd::start().await;
    pd.inject(FaultSpec {
        delay_ms: Some(300),
        ..spec(FaultKind::Delay)
    })
    .unwrap();
    let started = Instant::now();
    let ok = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "slow"))
        .await
        .unwrap();
    assert_eq!(ok.status, 202);
    assert!(started.elapsed() >= Duration::from_millis(300));

    pd.inject(FaultSpec {
        delay_ms: Some(300),
        ..spec(FaultKind::Delay)
    })
    .unwrap();
    let mut config = pd.config();
    config.timeout = Duration::from_millis(100);
    let impatient = EventsClient::new(&config).unwrap();
    let err = impatient
        .send(&trigger(DEMO_ROUTING_KEY, "slow"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_fails_the_client_and_the_event_is_not_processed() {
    let pd = TestPd::start().await;
    pd.inject(spec(FaultKind::Drop)).unwrap();
    let err = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "lost"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(incident_count(&pd), 0);
    assert_eq!(admin_get(&pd, "events").await.body["events"], json!([]));

    let ok = pd.events().send(&trigger(DEMO_ROUTING_KEY, "lost")).await;
    assert_eq!(ok.unwrap().status, 202);
    assert_eq!(incident_count(&pd), 1);
}

#[tokio::test]
async fn drop_after_processes_the_event_though_the_client_never_hears_so() {
    let pd = TestPd::start().await;
    pd.inject(FaultSpec {
        scope: Scope::Events,
        ..spec(FaultKind::DropAfter)
    })
    .unwrap();
    let err = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "acted-on"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(incident_count(&pd), 1, "the event was processed");

    // The sender retries, and the dedup key keeps the retry from opening a second incident.
    pd.events()
        .send(&trigger(DEMO_ROUTING_KEY, "acted-on"))
        .await
        .unwrap();
    assert_eq!(incident_count(&pd), 1);
    let effects: Vec<_> = admin_get(&pd, "events").await.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["effect"].clone())
        .collect();
    assert_eq!(effects, [json!("created"), json!("deduplicated")]);
}

#[tokio::test]
async fn a_seconds_window_fault_hits_every_request_until_it_expires() {
    let pd = TestPd::start().await;
    let injected = Instant::now();
    pd.inject(FaultSpec {
        status: Some(502),
        seconds: Some(0.3),
        ..spec(FaultKind::Status)
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(enqueue(&pd, DEMO_ROUTING_KEY, "w").await.status, 502);
    }
    let deadline = injected + Duration::from_secs(5);
    let recovered_after = loop {
        let a = enqueue(&pd, DEMO_ROUTING_KEY, "w").await;
        if a.status == 202 {
            break injected.elapsed();
        }
        assert_eq!(a.status, 502);
        assert!(Instant::now() < deadline, "the window fault never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(recovered_after >= Duration::from_millis(300));
    assert_eq!(admin_get(&pd, "faults").await.body["faults"], json!([]));
}

#[tokio::test]
async fn a_scoped_fault_leaves_the_other_api_alone() {
    let pd = TestPd::start().await;
    pd.inject(FaultSpec {
        scope: Scope::Events,
        ..spec(FaultKind::RateLimit)
    })
    .unwrap();
    assert_eq!(rest_get(&pd, TOKEN, "/incidents").await.status, 200);
    assert_eq!(enqueue(&pd, DEMO_ROUTING_KEY, "s").await.status, 429);
    assert_eq!(enqueue(&pd, DEMO_ROUTING_KEY, "s").await.status, 202);

    pd.inject(FaultSpec {
        status: Some(500),
        scope: Scope::Rest,
        ..spec(FaultKind::Status)
    })
    .unwrap();
    assert_eq!(enqueue(&pd, DEMO_ROUTING_KEY, "s").await.status, 202);
    assert_eq!(rest_get(&pd, TOKEN, "/services").await.status, 500);
    assert_eq!(rest_get(&pd, TOKEN, "/services").await.status, 200);
}

#[tokio::test]
async fn invalid_fault_specs_are_refused_with_the_field_named() {
    let pd = TestPd::start().await;
    let cases = [
        (json!({"kind": "status"}), "status:"),
        (json!({"kind": "status", "status": 200}), "status:"),
        (json!({"kind": "status", "status": "503"}), "status:"),
        (json!({"kind": "delay"}), "delay_ms:"),
        (json!({"kind": "delay", "delay_ms": 900000}), "delay_ms:"),
        (json!({"kind": "drop", "count": 0}), "count:"),
        (json!({"kind": "drop", "count": -1}), "count:"),
        (json!({"kind": "drop", "seconds": -1.0}), "seconds:"),
        (
            json!({"kind": "drop", "count": 1, "seconds": 1.0}),
            "count, seconds:",
        ),
        (json!({"kind": "teleport"}), "kind:"),
        (json!({"kind": "drop", "scope": "webhooks"}), "scope:"),
        (json!({"kind": "drop", "colour": "red"}), "colour:"),
    ];
    for (body, field) in cases {
        let a = add_fault(&pd, body.clone()).await;
        assert_eq!(a.status, 400, "{body}");
        let message = a.body["error"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let missing_kind = add_fault(&pd, json!({"status": 503})).await;
    assert_eq!(missing_kind.status, 400);
    assert!(
        missing_kind.body["error"]
            .as_str()
            .unwrap()
            .contains("`kind`"),
        "{}",
        missing_kind.body
    );
    let err = pd.inject(spec(FaultKind::Delay)).unwrap_err();
    assert!(err.starts_with("delay_ms:"), "{err}");
    assert_eq!(admin_get(&pd, "faults").await.body["faults"], json!([]));
}

#[tokio::test]
async fn the_per_key_events_limit_throttles_the_sixth_event_and_can_be_turned_off() {
    let mut seed = unlimited_seed();
    seed.settings.events_per_minute = 5;
    let pd = TestPd::with_seed(seed).await;
    for i in 0..5 {
        let a = enqueue(&pd, DEMO_ROUTING_KEY, &format!("k{i}")).await;
        assert_eq!(a.status, 202, "event {i}");
    }
    let throttled = enqueue(&pd, DEMO_ROUTING_KEY, "k5").await;
    assert_eq!(throttled.status, 429);
    assert_eq!(
        throttled.body,
        json!({
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly.  Please retry later.",
        })
    );
    assert!(
        pd.world().incidents.iter().all(|i| i.incident_key != "k5"),
        "a throttled event is not processed"
    );
    assert_eq!(
        enqueue(&pd, DEMO_DB_ROUTING_KEY, "other-key").await.status,
        202,
        "the limit is per integration key"
    );

    let put = answer(
        http()
            .put(format!("{}/_emulator/settings", pd.url()))
            .json(&json!({"events_per_minute": 0, "rest_requests_per_minute": 0})),
    )
    .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body["events_per_minute"], 0);
    assert_eq!(
        admin_get(&pd, "settings").await.body["events_per_minute"],
        0
    );
    assert_eq!(enqueue(&pd, DEMO_ROUTING_KEY, "k5").await.status, 202);
}

#[tokio::test]
async fn the_per_token_rest_limit_answers_429_code_2020_and_reports_itself_in_headers() {
    let mut seed = unlimited_seed();
    seed.settings.rest_requests_per_minute = 3;
    let pd = TestPd::with_seed(seed).await;
    for remaining in [2, 1, 0] {
        let a = rest_get(&pd, TOKEN, "/services").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            a.header("ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        let reset: u64 = a.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let limited = rest_get(&pd, TOKEN, "/incidents").await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.body,
        json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    );
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert!(limited.header("ratelimit-reset").is_some());

    let err = pd
        .rest()
        .list_incidents(&IncidentQuery::default(), 0, 10)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(2020));
    assert!(matches!(
        err.disposition(),
        Disposition::Retry { after: Some(_) }
    ));

    let bob = rest_get(&pd, "Token token=emulator-bob-token", "/services").await;
    assert_eq!(bob.status, 200, "the limit is per token");
}

#[tokio::test]
async fn the_admin_event_log_filters_by_routing_key_and_sequence() {
    let pd = TestPd::start().await;
    enqueue(&pd, DEMO_ROUTING_KEY, "a1").await;
    enqueue(&pd, DEMO_DB_ROUTING_KEY, "b1").await;
    enqueue(&pd, DEMO_ROUTING_KEY, "a2").await;
    answer(
        http()
            .post(format!("{}/v2/enqueue", pd.url()))
            .body("not json"),
    )
    .await;

    let all = admin_get(&pd, "events").await.body["events"].clone();
    let seqs: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(all[3]["status"], 400);

    let keys = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["dedup_key"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    let by_key = admin_get(&pd, &format!("events?routing_key={DEMO_ROUTING_KEY}")).await;
    assert_eq!(keys(&by_key.body), ["a1", "a2"]);
    let since = admin_get(&pd, "events?since_seq=2").await;
    assert_eq!(keys(&since.body), ["a2", "-"]);
    let both = admin_get(
        &pd,
        &format!("events?routing_key={DEMO_DB_ROUTING_KEY}&since_seq=2"),
    )
    .await;
    assert_eq!(keys(&both.body), Vec::<String>::new());
    let limited = admin_get(&pd, "events?limit=1&since_seq=1").await;
    assert_eq!(keys(&limited.body), ["b1"]);

    let bad = admin_get(&pd, "events?since_seq=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"].as_str().unwrap().starts_with("since_seq"),
        "{}",
        bad.body
    );
}

#[tokio::test]
async fn reset_empties_incidents_and_events_but_keeps_services_and_subscriptions() {
    let mut seed = unlimited_seed();
    // No id in the seed: the one generated at start must survive the reset.
    seed.services.push(SeedService::new(
        "Payments",
        "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a",
    ));
    seed.webhook_subscriptions.push(SeedSubscription {
        url: "http://127.0.0.1:9/unused".into(),
        secret: None,
        events: vec!["incident.resolved".into()],
        service: None,
        version: WebhookVersion::V3,
        description: None,
    });
    let pd = TestPd::with_seed(seed).await;
    enqueue(&pd, DEMO_ROUTING_KEY, "before-reset").await;
    pd.inject(FaultSpec {
        seconds: Some(60.0),
        scope: Scope::Rest,
        ..spec(FaultKind::RateLimit)
    })
    .unwrap();
    let before = admin_get(&pd, "state").await.body;
    assert_eq!(before["incidents"]["total"], 1);
    assert_eq!(before["events_received"], 1);

    let reset = answer(http().post(format!("{}/_emulator/reset", pd.url()))).await;
    assert_eq!(reset.status, 200);

    let after = admin_get(&pd, "state").await.body;
    assert_eq!(after["incidents"]["total"], 0);
    assert_eq!(after["events_received"], 0);
    let ids = |state: &Value| -> Vec<(Value, Value)> {
        state["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].clone(), s["integration_keys"].clone()))
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after["services"][0]["status"], "active");
    assert_eq!(after["users"], before["users"]);
    assert_eq!(
        after["webhook_subscriptions"],
        before["webhook_subscriptions"]
    );
    assert_eq!(
        after["webhook_subscriptions"][0]["secret"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert_eq!(admin_get(&pd, "events").await.body["events"], json!([]));
    assert_eq!(admin_get(&pd, "faults").await.body["faults"], json!([]));
    let incidents = rest_get(&pd, TOKEN, "/incidents?date_range=all").await;
    assert_eq!(incidents.status, 200, "faults are cleared too");
    assert_eq!(incidents.body["incidents"], json!([]));
    assert_eq!(admin_get(&pd, "incidents/before-reset").await.status, 404);
}

#[tokio::test]
async fn the_state_shows_each_service_s_status() {
    let mut seed = unlimited_seed();
    let mut retired = SeedService::new("Retired", "d15ab1edd15ab1edd15ab1edd15ab1ed");
    retired.disabled = true;
    seed.services.push(retired);
    seed.services.push(SeedService::new(
        "Patching",
        "3a1e7a3ce3a1e7a3ce3a1e7a3ce3a1e7",
    ));
    let now = jiff::Timestamp::now();
    seed.maintenance_windows.push(SeedWindow {
        services: vec!["Patching".into()],
        start: (now - jiff::SignedDuration::from_mins(1)).to_string(),
        end: (now + jiff::SignedDuration::from_hours(1)).to_string(),
        description: None,
    });
    let pd = TestPd::with_seed(seed).await;
    let statuses = |state: &Value| -> Vec<(String, String)> {
        state["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let expect = |demo: &str, db: &str| {
        [
            ("Demo Service", demo),
            ("Database", db),
            ("Retired", "disabled"),
            ("Patching", "maintenance"),
        ]
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .to_vec()
    };
    assert_eq!(
        statuses(&admin_get(&pd, "state").await.body),
        expect("active", "active")
    );

    enqueue(&pd, DEMO_ROUTING_KEY, "high").await;
    // A triggered incident makes a service critical whatever its urgency (REST reference).
    pd.events()
        .send(
            &Event::trigger(DEMO_DB_ROUTING_KEY, "slow queries", "db", Severity::Warning)
                .with_dedup_key("low"),
        )
        .await
        .unwrap();
    assert_eq!(
        statuses(&admin_get(&pd, "state").await.body),
        expect("critical", "critical")
    );

    pd.events()
        .send(&Event::update(
            DEMO_DB_ROUTING_KEY,
            EventAction::Acknowledge,
            "low",
        ))
        .await
        .unwrap();
    assert_eq!(
        statuses(&admin_get(&pd, "state").await.body),
        expect("critical", "warning")
    );
    let db = pd.rest().get_service("PDEMO02").await.unwrap();
    assert_eq!(db.status, pagerduty::rest::ServiceStatus::Warning);

    pd.events()
        .send(&Event::update(
            DEMO_DB_ROUTING_KEY,
            EventAction::Resolve,
            "low",
        ))
        .await
        .unwrap();
    assert_eq!(
        statuses(&admin_get(&pd, "state").await.body),
        expect("critical", "active")
    );
}

async fn page(pd: &TestPd, path: &str) -> (u16, String, String) {
    let resp = http()
        .get(format!("{}{path}", pd.url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_html_page_lists_services_and_incidents_with_titles_escaped() {
    let pd = TestPd::start().await;
    let title = r#"<script>alert("pwned")</script> & more"#;
    pd.events()
        .send(
            &Event::trigger(DEMO_ROUTING_KEY, title, "web", Severity::Critical)
                .with_dedup_key("xss"),
        )
        .await
        .unwrap();

    let (status, content_type, html) = page(&pd, "/").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("Demo Service") && html.contains("Database"));
    assert!(html.contains(DEMO_ROUTING_KEY));
    assert!(
        html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; more"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test]
async fn the_incident_page_shows_the_log() {
    let pd = TestPd::start().await;
    pd.events()
        .send(&trigger(DEMO_ROUTING_KEY, "paged"))
        .await
        .unwrap();
    pd.events()
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Acknowledge,
            "paged",
        ))
        .await
        .unwrap();
    let id = pd.world().incidents[0].id.clone();

    let (status, _, html) = page(&pd, &format!("/ui/incidents/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Problem paged"), "{html}");
    assert!(html.contains("Triggered through the API"), "{html}");
    assert!(html.contains("Acknowledged by Demo Service"), "{html}");
    let log = &html[html.find("<h2>Log</h2>").expect("a log section")..];
    let triggered = log.find("Triggered through the API").unwrap();
    let acked = log.find("Acknowledged by Demo Service").unwrap();
    assert!(triggered < acked, "the log reads oldest first");

    let (status, _, _) = page(&pd, "/ui/incidents/PNOPE00").await;
    assert_eq!(status, 404);
}
