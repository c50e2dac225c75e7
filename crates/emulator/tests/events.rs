//! Events API v2, change events and v1 through the emulator's HTTP routes: PagerDuty's
//! validation answers byte for byte, and its alert/incident semantics.

use std::time::Duration;

use futures::TryStreamExt;
use pagerbridge_testkit::{
    DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, DEMO_V1_SERVICE_KEY, TestPd, unlimited_seed,
};
use pagerduty::events::{
    ChangeEvent, ChangePayload, Event, EventAction, MAX_EVENT_BYTES, Severity, V1Event,
};
use pagerduty::rest::{IncidentQuery, IncidentStatus, LogEntryQuery, MaintenanceWindow, Urgency};
use pagerduty_emulator::Seed;
use pagerduty_emulator::seed::{SeedIntegration, SeedService, SeedWindow};
use serde_json::{Value, json};

const V1_PATH: &str = "/generic/2010-04-15/create_event.json";
/// A second Events v2 key on "Demo Service", for the rule that an alert belongs to the key that
/// opened it.
const SECOND_DEMO_KEY: &str = "b2c3d4e5f60718293a4b5c6d7e8f90a1";
const DISABLED_KEY: &str = "d15ab1edd15ab1edd15ab1edd15ab1ed";
const MAINTENANCE_KEY: &str = "3a1e7a3ce3a1e7a3ce3a1e7a3ce3a1e7";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post_bytes(pd: &TestPd, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = http()
        .post(format!("{}{path}", pd.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the emulator answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("a whole body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

async fn post_json(pd: &TestPd, path: &str, body: Value) -> (u16, Value) {
    post_bytes(pd, path, serde_json::to_vec(&body).unwrap()).await
}

async fn enqueue(pd: &TestPd, body: Value) -> (u16, Value) {
    post_json(pd, "/v2/enqueue", body).await
}

fn trigger(routing_key: &str, dedup_key: &str, summary: &str) -> Event {
    Event::trigger(routing_key, summary, "db01.example.com", Severity::Critical)
        .with_dedup_key(dedup_key)
}

async fn all_incidents(pd: &TestPd) -> Vec<pagerduty::rest::Incident> {
    let q = IncidentQuery {
        all_dates: true,
        ..Default::default()
    };
    pd.rest().list_incidents(&q, 0, 100).await.unwrap().items
}

async fn admin_events(pd: &TestPd) -> Vec<Value> {
    let v: Value = http()
        .get(format!("{}/_emulator/events", pd.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["events"].as_array().unwrap().clone()
}

fn invalid(errors: &[&str]) -> Value {
    json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
}

#[tokio::test]
async fn a_trigger_opens_one_incident_and_repeats_with_its_dedup_key_join_it() {
    let pd = TestPd::start().await;
    for _ in 0..3 {
        let ok = pd
            .events()
            .send(&trigger(DEMO_ROUTING_KEY, "disk-full", "Disk full on db01"))
            .await
            .unwrap();
        assert_eq!(ok.status, 202);
        assert_eq!(ok.body.dedup_key.as_deref(), Some("disk-full"));
        assert_eq!(ok.body.message, "Event processed");
    }
    let incidents = all_incidents(&pd).await;
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].incident_key.as_deref(), Some("disk-full"));
    assert_eq!(incidents[0].status, IncidentStatus::Triggered);
    assert_eq!(incidents[0].title.as_deref(), Some("Disk full on db01"));
    assert_eq!(incidents[0].alert_counts.unwrap().all, 1);
    let trigger_counts: Vec<_> = pd.world().alerts.iter().map(|a| a.trigger_count).collect();
    assert_eq!(trigger_counts, [3]);
    let effects: Vec<_> = admin_events(&pd)
        .await
        .iter()
        .map(|e| e["effect"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(effects, ["created", "deduplicated", "deduplicated"]);
}

#[tokio::test]
async fn acknowledge_then_resolve_move_the_incident_through_its_statuses() {
    let pd = TestPd::start().await;
    let events = pd.events();
    events
        .send(&trigger(DEMO_ROUTING_KEY, "cpu", "CPU hot"))
        .await
        .unwrap();
    let id = all_incidents(&pd).await[0].id.clone();

    let ack = Event::update(DEMO_ROUTING_KEY, EventAction::Acknowledge, "cpu");
    assert_eq!(events.send(&ack).await.unwrap().status, 202);
    let inc = pd.rest().get_incident(&id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledgements.len(), 1);
    assert_eq!(
        inc.acknowledgements[0].acknowledger.kind,
        "service_reference"
    );

    let resolve = Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "cpu");
    assert_eq!(events.send(&resolve).await.unwrap().status, 202);
    let inc = pd.rest().get_incident(&id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert!(inc.resolved_at.is_some());
    assert_eq!(
        inc.alert_counts.map(|c| (c.triggered, c.resolved)),
        Some((0, 1))
    );
}

#[tokio::test]
async fn acknowledge_or_resolve_for_an_unknown_dedup_key_is_accepted_but_changes_nothing() {
    let pd = TestPd::start().await;
    for action in ["acknowledge", "resolve"] {
        let (status, body) = enqueue(
            &pd,
            json!({"routing_key": DEMO_ROUTING_KEY, "event_action": action, "dedup_key": "never-opened"}),
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(
            body,
            json!({"status": "success", "message": "Event processed", "dedup_key": "never-opened"})
        );
    }
    assert!(all_incidents(&pd).await.is_empty());
    let received = admin_events(&pd).await;
    assert_eq!(received.len(), 2);
    for e in &received {
        assert_eq!(e["effect"], "dropped", "{e}");
        assert_eq!(e["reason"], "no open alert with this dedup_key", "{e}");
        assert_eq!(e["dedup_key"], "never-opened");
    }
}

#[tokio::test]
async fn a_trigger_after_resolve_opens_a_new_incident_with_the_same_incident_key() {
    let pd = TestPd::start().await;
    let events = pd.events();
    events
        .send(&trigger(DEMO_ROUTING_KEY, "flappy", "Flapping check"))
        .await
        .unwrap();
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Resolve,
            "flappy",
        ))
        .await
        .unwrap();
    events
        .send(&trigger(DEMO_ROUTING_KEY, "flappy", "Flapping check"))
        .await
        .unwrap();

    let mut incidents = all_incidents(&pd).await;
    incidents.sort_by_key(|i| i.incident_number);
    assert_eq!(incidents.len(), 2);
    assert_ne!(incidents[0].id, incidents[1].id);
    assert_eq!(incidents[0].status, IncidentStatus::Resolved);
    assert_eq!(incidents[1].status, IncidentStatus::Triggered);
    for inc in &incidents {
        assert_eq!(inc.incident_key.as_deref(), Some("flappy"));
    }
    // The resolved alert is gone for good: an acknowledge now reaches the new incident only.
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Acknowledge,
            "flappy",
        ))
        .await
        .unwrap();
    let old = pd.rest().get_incident(&incidents[0].id).await.unwrap();
    let new = pd.rest().get_incident(&incidents[1].id).await.unwrap();
    assert_eq!(old.status, IncidentStatus::Resolved);
    assert_eq!(new.status, IncidentStatus::Acknowledged);
}

#[tokio::test]
async fn events_through_another_routing_key_of_the_same_service_cannot_touch_the_alert() {
    let mut seed = unlimited_seed();
    seed.services[0].integrations.push(SeedIntegration {
        key: SECOND_DEMO_KEY.into(),
        kind: Default::default(),
        name: Some("second source".into()),
    });
    let pd = TestPd::with_seed(seed).await;
    let events = pd.events();
    events
        .send(&trigger(
            DEMO_ROUTING_KEY,
            "shared-key",
            "From the first key",
        ))
        .await
        .unwrap();

    let other_trigger = events
        .send(&trigger(
            SECOND_DEMO_KEY,
            "shared-key",
            "From the second key",
        ))
        .await
        .unwrap();
    assert_eq!(other_trigger.status, 202);
    let other_resolve = Event::update(SECOND_DEMO_KEY, EventAction::Resolve, "shared-key");
    assert_eq!(events.send(&other_resolve).await.unwrap().status, 202);

    let incidents = all_incidents(&pd).await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].status, IncidentStatus::Triggered);
    assert_eq!(pd.world().alerts[0].trigger_count, 1);
    let received = admin_events(&pd).await;
    for e in &received[1..] {
        assert_eq!(e["effect"], "dropped", "{e}");
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("another routing key"),
            "{e}"
        );
    }

    // The same key on another service is another alert altogether.
    events
        .send(&trigger(
            DEMO_DB_ROUTING_KEY,
            "shared-key",
            "On the database",
        ))
        .await
        .unwrap();
    assert_eq!(all_incidents(&pd).await.len(), 2);

    let own_resolve = Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "shared-key");
    events.send(&own_resolve).await.unwrap();
    let inc = pd.rest().get_incident(&incidents[0].id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
}

#[tokio::test]
async fn a_trigger_without_dedup_key_gets_a_generated_key_and_always_opens_a_new_incident() {
    let pd = TestPd::start().await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (status, body) = enqueue(
            &pd,
            json!({
                "routing_key": DEMO_ROUTING_KEY,
                "event_action": "trigger",
                "payload": {"summary": "No key", "source": "cron", "severity": "error"},
            }),
        )
        .await;
        assert_eq!(status, 202);
        let key = body["dedup_key"].as_str().unwrap().to_owned();
        assert_eq!(key.len(), 32, "{key}");
        assert!(
            key.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{key}"
        );
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1]);
    let incidents = all_incidents(&pd).await;
    assert_eq!(incidents.len(), 2);
    let mut incident_keys: Vec<_> = incidents
        .iter()
        .map(|i| i.incident_key.clone().unwrap())
        .collect();
    incident_keys.sort();
    keys.sort();
    assert_eq!(incident_keys, keys);

    // The generated key is a real dedup key: it resolves the alert it was made for.
    pd.events()
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Resolve,
            &keys[0],
        ))
        .await
        .unwrap();
    let resolved = all_incidents(&pd)
        .await
        .into_iter()
        .filter(|i| i.status == IncidentStatus::Resolved)
        .count();
    assert_eq!(resolved, 1);
}

#[tokio::test]
async fn change_events_answer_their_own_message_and_never_open_incidents() {
    let pd = TestPd::start().await;
    let (status, body) = post_json(
        &pd,
        "/v2/change/enqueue",
        json!({
            "routing_key": DEMO_ROUTING_KEY,
            "payload": {"summary": "Deployed v1.2.3", "source": "ci", "custom_details": {"sha": "abc"}},
            "links": [{"href": "https://ci.example.com/1", "text": "build"}],
        }),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Change event processed"})
    );
    let typed = ChangeEvent {
        routing_key: DEMO_DB_ROUTING_KEY.into(),
        payload: ChangePayload {
            summary: "Schema migration".into(),
            timestamp: None,
            source: None,
            custom_details: None,
        },
        links: Vec::new(),
        images: Vec::new(),
    };
    let ok = pd.events().send_change(&typed).await.unwrap();
    assert_eq!(ok.status, 202);
    assert_eq!(ok.body.message, "Change event processed");

    let (status, body) = post_json(
        &pd,
        "/v2/change/enqueue",
        json!({"routing_key": DEMO_ROUTING_KEY, "payload": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body, invalid(&["'payload.summary' is missing or blank"]));

    assert!(all_incidents(&pd).await.is_empty());
    assert_eq!(pd.world().change_events.len(), 2);
}

#[tokio::test]
async fn v1_trigger_acknowledge_and_resolve_with_an_incident_key_answer_200_with_the_key() {
    let pd = TestPd::start().await;
    let (status, body) = post_json(
        &pd,
        V1_PATH,
        json!({
            "service_key": DEMO_V1_SERVICE_KEY,
            "event_type": "trigger",
            "incident_key": "nagios/db01/load",
            "description": "Load is CRITICAL",
            "details": {"load": 12.5},
            "client": "Nagios",
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "incident_key": "nagios/db01/load"})
    );
    let incidents = all_incidents(&pd).await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].title.as_deref(), Some("Load is CRITICAL"));
    let id = incidents[0].id.clone();

    let v1 = |event_type| V1Event {
        service_key: DEMO_V1_SERVICE_KEY.into(),
        event_type,
        incident_key: Some("nagios/db01/load".into()),
        description: None,
        details: None,
        client: None,
        client_url: None,
        contexts: Vec::new(),
    };
    let ack = pd.events().send_v1(&v1(EventAction::Acknowledge)).await;
    let ack = ack.unwrap();
    assert_eq!(ack.status, 200);
    assert_eq!(ack.body.incident_key.as_deref(), Some("nagios/db01/load"));
    let inc = pd.rest().get_incident(&id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Acknowledged);

    pd.events()
        .send_v1(&v1(EventAction::Resolve))
        .await
        .unwrap();
    let inc = pd.rest().get_incident(&id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);

    let (status, body) = post_json(
        &pd,
        V1_PATH,
        json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger", "description": "No key"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["incident_key"].as_str().map(str::len), Some(32));
}

#[tokio::test]
async fn v1_validation_errors_answer_400_with_pagerduty_s_body() {
    let pd = TestPd::start().await;
    let cases = [
        (
            json!({"event_type": "trigger", "description": "x"}),
            vec!["'service_key' is missing or blank"],
        ),
        (
            json!({"service_key": "short", "event_type": "trigger", "description": "x"}),
            vec!["Length of 'service_key' is incorrect (should be 32 characters)"],
        ),
        (
            json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger"}),
            vec!["'description' is missing or blank"],
        ),
        (
            json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "resolve"}),
            vec!["'incident_key' is missing or blank"],
        ),
    ];
    for (body, errors) in cases {
        let (status, answer) = post_json(&pd, V1_PATH, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, invalid(&errors), "{body}");
    }
    let (status, answer) = post_bytes(&pd, V1_PATH, b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["status"], "invalid event");
    assert_eq!(answer["errors"], json!(["JSON parse error"]));
    assert!(all_incidents(&pd).await.is_empty());
}

#[tokio::test]
async fn malformed_json_is_an_unrecognized_object() {
    let pd = TestPd::start().await;
    let (status, body) = post_bytes(&pd, "/v2/enqueue", b"{\"routing_key\": ".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "status": "Unrecognized object",
            "message": "Event object format is unrecognized",
            "errors": ["JSON parse error"],
        })
    );
    let received = admin_events(&pd).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["status"], 400);
    assert_eq!(received[0]["errors"], json!(["JSON parse error"]));
}

#[tokio::test]
async fn invalid_events_are_answered_400_with_every_problem_named() {
    let pd = TestPd::start().await;
    let payload = json!({"summary": "s", "source": "src", "severity": "critical"});
    let cases = [
        (
            json!({"routing_key": "tooshort", "event_action": "trigger", "payload": payload}),
            vec!["Length of 'routing_key' is incorrect (should be 32 characters)"],
        ),
        (
            json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "trigger", "payload": {}}),
            vec![
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is missing or blank",
            ],
        ),
        (
            json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "trigger"}),
            vec!["'payload' is missing or blank"],
        ),
        (
            json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "resolve"}),
            vec!["'dedup_key' is missing or blank"],
        ),
        (
            json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "  "}),
            vec!["'dedup_key' is missing or blank"],
        ),
        (
            json!({"routing_key": "0123456789abcdef0123456789abcdef", "event_action": "trigger", "payload": payload}),
            vec!["Invalid routing key"],
        ),
    ];
    for (body, errors) in cases {
        let (status, answer) = enqueue(&pd, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, invalid(&errors), "{body}");
    }

    let (status, answer) = enqueue(
        &pd,
        json!({
            "routing_key": DEMO_ROUTING_KEY,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "src", "severity": "fatal"},
        }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["status"], "invalid event");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("'payload.severity'"),
        "{answer}"
    );

    let (status, answer) = enqueue(
        &pd,
        json!({
            "routing_key": DEMO_ROUTING_KEY,
            "event_action": "snooze",
            "dedup_key": "k",
        }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("'event_action'"),
        "{answer}"
    );
    assert!(all_incidents(&pd).await.is_empty());
    assert!(admin_events(&pd).await.iter().all(|e| e["status"] == 400));
}

#[tokio::test]
async fn a_summary_longer_than_1024_characters_is_refused_and_1024_is_accepted() {
    let pd = TestPd::start().await;
    let event = |summary: String| {
        json!({
            "routing_key": DEMO_ROUTING_KEY,
            "event_action": "trigger",
            "payload": {"summary": summary, "source": "src", "severity": "info"},
        })
    };
    // Characters, not bytes: a multi-byte summary of 1024 characters is fine.
    let (status, _) = enqueue(&pd, event("é".repeat(1024))).await;
    assert_eq!(status, 202);
    let (status, answer) = enqueue(&pd, event("x".repeat(1025))).await;
    assert_eq!(status, 400);
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("Length of 'payload.summary' is incorrect"),
        "{answer}"
    );
    assert_eq!(all_incidents(&pd).await.len(), 1);
}

/// A valid trigger padded with custom details to exactly `len` bytes.
fn trigger_of_size(len: usize) -> Vec<u8> {
    let mut event = json!({
        "routing_key": DEMO_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "big",
        "payload": {"summary": "Big", "source": "src", "severity": "info", "custom_details": {"pad": ""}},
    });
    let bare = serde_json::to_vec(&event).unwrap().len();
    event["payload"]["custom_details"]["pad"] = json!("p".repeat(len - bare));
    let bytes = serde_json::to_vec(&event).unwrap();
    assert_eq!(bytes.len(), len);
    bytes
}

#[tokio::test]
async fn a_body_over_512_kb_is_refused_and_one_of_exactly_512_kb_is_accepted() {
    let pd = TestPd::start().await;
    let (status, answer) =
        post_bytes(&pd, "/v2/enqueue", trigger_of_size(MAX_EVENT_BYTES + 1)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["status"], "invalid event");
    assert_eq!(answer["message"], "Event object is invalid");
    assert!(
        answer["errors"][0].as_str().unwrap().contains("too large"),
        "{answer}"
    );
    assert!(all_incidents(&pd).await.is_empty());

    let (status, answer) = post_bytes(&pd, "/v2/enqueue", trigger_of_size(MAX_EVENT_BYTES)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(all_incidents(&pd).await.len(), 1);
}

#[tokio::test]
async fn a_2_mb_body_gets_a_clean_400_without_hanging() {
    let pd = TestPd::start().await;
    let started = std::time::Instant::now();
    let (status, answer) = post_bytes(&pd, "/v2/enqueue", trigger_of_size(2 * 1024 * 1024)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["status"], "invalid event");
    assert!(
        answer["errors"][0].as_str().unwrap().contains("too large"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(all_incidents(&pd).await.is_empty());
    // The connection was not left in a state that breaks the next request.
    let ok = pd
        .events()
        .send(&trigger(DEMO_ROUTING_KEY, "after-big", "After"))
        .await
        .unwrap();
    assert_eq!(ok.status, 202);
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let pd = TestPd::start().await;
    let (status, body) = enqueue(
        &pd,
        json!({
            "routing_key": DEMO_ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "extra",
            "future_field": {"nested": true},
            "payload": {"summary": "s", "source": "src", "severity": "warning", "colour": "blue"},
        }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["dedup_key"], "extra");
    assert_eq!(all_incidents(&pd).await.len(), 1);
}

#[tokio::test]
async fn a_body_declared_as_another_format_is_refused_naming_its_type() {
    let pd = TestPd::start().await;
    let body = serde_json::to_vec(&json!({
        "routing_key": DEMO_ROUTING_KEY, "event_action": "trigger",
        "payload": {"summary": "s", "source": "src", "severity": "info"},
    }))
    .unwrap();
    for (content_type, accepted) in [
        (Some("text/plain"), false),
        (Some("application/x-www-form-urlencoded"), false),
        (Some("application/json; charset=utf-8"), true),
        (None, true),
    ] {
        let mut req = http()
            .post(format!("{}/v2/enqueue", pd.url()))
            .body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        if accepted {
            assert_eq!(status, 202, "{content_type:?}: {answer}");
        } else {
            assert_eq!(status, 400, "{content_type:?}");
            assert_eq!(answer["status"], "invalid event");
            assert!(
                answer["errors"][0]
                    .as_str()
                    .unwrap()
                    .contains(content_type.unwrap()),
                "{answer}"
            );
        }
    }
    assert_eq!(all_incidents(&pd).await.len(), 2, "only the JSON ones");
}

fn seed_with_disabled_and_maintenance() -> Seed {
    let mut seed = unlimited_seed();
    let mut disabled = SeedService::new("Retired", DISABLED_KEY);
    disabled.disabled = true;
    seed.services.push(disabled);
    seed.services
        .push(SeedService::new("Patching", MAINTENANCE_KEY));
    let now = jiff::Timestamp::now();
    seed.maintenance_windows.push(SeedWindow {
        services: vec!["Patching".into()],
        start: (now - jiff::SignedDuration::from_mins(5)).to_string(),
        end: (now + jiff::SignedDuration::from_hours(1)).to_string(),
        description: Some("OS patching".into()),
    });
    seed
}

#[tokio::test]
async fn events_for_a_disabled_service_or_one_in_maintenance_are_accepted_but_open_nothing() {
    let pd = TestPd::with_seed(seed_with_disabled_and_maintenance()).await;
    for key in [DISABLED_KEY, MAINTENANCE_KEY] {
        let ok = pd
            .events()
            .send(&trigger(key, "quiet", "Should stay quiet"))
            .await
            .unwrap();
        assert_eq!(ok.status, 202);
        assert_eq!(ok.body.dedup_key.as_deref(), Some("quiet"));
    }
    assert!(all_incidents(&pd).await.is_empty());
    let reasons: Vec<_> = admin_events(&pd)
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["effect"], "dropped", "{e}");
            e["reason"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        reasons,
        ["service is disabled", "service is in a maintenance window"]
    );
}

#[tokio::test]
async fn an_alert_opened_before_maintenance_or_disabling_can_still_be_acknowledged_and_resolved() {
    let pd = TestPd::start().await;
    let events = pd.events();
    events
        .send(&trigger(
            DEMO_ROUTING_KEY,
            "before-window",
            "Before the window",
        ))
        .await
        .unwrap();
    events
        .send(&trigger(
            DEMO_DB_ROUTING_KEY,
            "before-disable",
            "Before disabling",
        ))
        .await
        .unwrap();

    let now = jiff::Timestamp::now();
    pd.rest()
        .create_maintenance_window(&MaintenanceWindow::new(
            now - jiff::SignedDuration::from_mins(1),
            now + jiff::SignedDuration::from_hours(1),
            Some("deploy".into()),
            &["PDEMO01".to_string()],
        ))
        .await
        .unwrap();
    let resp = http()
        .put(format!("{}/services/PDEMO02", pd.url()))
        .header("authorization", "Token token=emulator-account-token")
        .header("accept", "application/vnd.pagerduty+json;version=2")
        .json(&json!({"service": {"type": "service", "status": "disabled"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // New alerts are refused now...
    events
        .send(&trigger(DEMO_ROUTING_KEY, "during-window", "During"))
        .await
        .unwrap();
    events
        .send(&trigger(DEMO_DB_ROUTING_KEY, "while-disabled", "Disabled"))
        .await
        .unwrap();
    assert_eq!(all_incidents(&pd).await.len(), 2);

    // ...but the open ones still follow their events.
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Acknowledge,
            "before-window",
        ))
        .await
        .unwrap();
    events
        .send(&Event::update(
            DEMO_DB_ROUTING_KEY,
            EventAction::Resolve,
            "before-disable",
        ))
        .await
        .unwrap();
    let mut statuses: Vec<_> = all_incidents(&pd)
        .await
        .into_iter()
        .map(|i| (i.incident_key.unwrap(), i.status))
        .collect();
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        statuses,
        [
            ("before-disable".to_string(), IncidentStatus::Resolved),
            ("before-window".to_string(), IncidentStatus::Acknowledged),
        ]
    );
}

#[tokio::test]
async fn a_severity_based_service_opens_low_urgency_incidents_for_warnings_and_high_for_critical() {
    let pd = TestPd::start().await;
    let cases = [
        ("sev-critical", Severity::Critical, Urgency::High),
        ("sev-error", Severity::Error, Urgency::High),
        ("sev-warning", Severity::Warning, Urgency::Low),
        ("sev-info", Severity::Info, Urgency::Low),
    ];
    for (key, severity, _) in cases {
        pd.events()
            .send(&Event::trigger(DEMO_DB_ROUTING_KEY, key, "db", severity).with_dedup_key(key))
            .await
            .unwrap();
    }
    // A constant-urgency service ignores the severity.
    pd.events()
        .send(
            &Event::trigger(DEMO_ROUTING_KEY, "demo-info", "demo", Severity::Info)
                .with_dedup_key("demo-info"),
        )
        .await
        .unwrap();
    let incidents = all_incidents(&pd).await;
    let urgency_of = |key: &str| {
        incidents
            .iter()
            .find(|i| i.incident_key.as_deref() == Some(key))
            .and_then(|i| i.urgency)
    };
    for (key, _, urgency) in cases {
        assert_eq!(urgency_of(key), Some(urgency), "{key}");
    }
    assert_eq!(urgency_of("demo-info"), Some(Urgency::High));
}

#[tokio::test]
async fn alerts_and_log_entries_carry_what_the_events_said() {
    let pd = TestPd::start().await;
    let mut event = Event::trigger(
        DEMO_ROUTING_KEY,
        "Replication lag 300s",
        "db02",
        Severity::Error,
    )
    .with_dedup_key("lag/db02");
    let details = json!({"lag_seconds": 300, "replica": "db02", "tags": ["prod"]});
    event.payload.as_mut().unwrap().custom_details = Some(details.clone());
    let events = pd.events();
    events.send(&event).await.unwrap();
    let id = all_incidents(&pd).await[0].id.clone();
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Acknowledge,
            "lag/db02",
        ))
        .await
        .unwrap();
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Resolve,
            "lag/db02",
        ))
        .await
        .unwrap();

    let alerts: Vec<_> = pd.rest().incident_alerts(&id).try_collect().await.unwrap();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.alert_key.as_deref(), Some("lag/db02"));
    assert_eq!(alert.severity, Some(Severity::Error));
    assert_eq!(alert.status, "resolved");
    assert_eq!(alert.summary.as_deref(), Some("Replication lag 300s"));
    assert_eq!(alert.body.as_ref().unwrap()["details"], details);

    let logs: Vec<_> = pd
        .rest()
        .incident_log_entries(&id, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let mut kinds: Vec<_> = logs.iter().map(|l| l.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "acknowledge_log_entry",
            "resolve_log_entry",
            "trigger_log_entry"
        ]
    );
    for l in &logs {
        assert_eq!(
            l.agent.as_ref().map(|a| a.kind.as_str()),
            Some("service_reference"),
            "{l:?}"
        );
        assert_eq!(l.agent.as_ref().unwrap().id, "PDEMO01");
        assert_eq!(l.channel_type(), Some("api"), "{l:?}");
    }
}

#[tokio::test]
async fn a_seeded_integration_key_that_no_event_could_use_is_refused_at_start() {
    let mut seed = unlimited_seed();
    seed.services[1].integrations[0].key = "database-key".into();
    let started = pagerduty_emulator::Emulator::start(pagerduty_emulator::Config {
        seed,
        ..Default::default()
    })
    .await;
    let Err(err) = started else {
        panic!("a 12-character key was accepted")
    };
    let message = err.to_string();
    assert!(
        message.contains("services[1].integrations[0].key \"database-key\""),
        "{message}"
    );

    // v1 keys were never held to the alphanumeric rule, only to the length.
    let mut seed = unlimited_seed();
    seed.services[0].integrations[1].key = "legacy-v1-key-with-dashes-000000".into();
    let pd = TestPd::with_seed(seed).await;
    let (status, _) = post_json(
        &pd,
        V1_PATH,
        json!({"service_key": "legacy-v1-key-with-dashes-000000", "event_type": "trigger", "description": "old tool"}),
    )
    .await;
    assert_eq!(status, 200);
}
