//! Webhooks v3 (and the legacy v2 body) as a receiver sees them: order, signatures, headers,
//! PagerDuty's retry and drop rules, subscription filters.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pagerbridge_testkit::{
    Canned, DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, Recorded, Recorder, TestPd,
};
use pagerduty::events::{Event, EventAction, Severity};
use pagerduty::rest::{
    DeliveryMethod, IncidentStatus, IncidentUpdate, SubscriptionFilter, WebhookSubscription,
};
use pagerduty::webhook::{V2Webhook, WebhookEnvelope, verify};
use pagerduty_emulator::Seed;
use pagerduty_emulator::seed::{SeedSubscription, WebhookVersion};
use pagerduty_emulator::webhooks::{DeliveryRecord, DeliveryState};
use serde_json::json;

const SECRET: &str = "test-webhook-secret";
const WAIT: Duration = Duration::from_secs(5);

fn subscription(url: &str) -> SeedSubscription {
    SeedSubscription {
        url: url.into(),
        secret: Some(SECRET.into()),
        events: Vec::new(),
        service: None,
        version: WebhookVersion::V3,
        description: Some("test receiver".into()),
    }
}

fn seed(subscriptions: Vec<SeedSubscription>) -> Seed {
    let mut seed = Seed::demo();
    seed.settings.events_per_minute = 0;
    seed.settings.rest_requests_per_minute = 0;
    seed.settings.webhook_retry_base_ms = 20;
    seed.webhook_subscriptions = subscriptions;
    seed
}

async fn accepting_receiver() -> Recorder {
    Recorder::start(Canned::json(202, json!({}))).await
}

async fn trigger(pd: &TestPd, routing_key: &str, key: &str) {
    pd.events()
        .send(
            &Event::trigger(
                routing_key,
                format!("Problem {key}"),
                "host",
                Severity::Critical,
            )
            .with_dedup_key(key),
        )
        .await
        .unwrap();
}

async fn update(pd: &TestPd, routing_key: &str, action: EventAction, key: &str) {
    pd.events()
        .send(&Event::update(routing_key, action, key))
        .await
        .unwrap();
}

fn incident_id(pd: &TestPd, key: &str) -> String {
    let w = pd.world();
    w.incidents
        .iter()
        .rfind(|i| i.incident_key == key)
        .map(|i| i.id.clone())
        .expect("an incident with that key")
}

fn envelope(r: &Recorded) -> WebhookEnvelope {
    serde_json::from_slice(&r.body).expect("a v3 webhook body")
}

fn event_type(r: &Recorded) -> String {
    envelope(r).event.event_type
}

fn webhook_id(r: &Recorded) -> String {
    r.header("x-webhook-id").expect("X-Webhook-Id").to_owned()
}

/// Polls the delivery log until `done` holds, since the log is updated after the receiver
/// answered.
async fn deliveries_until(
    pd: &TestPd,
    done: impl Fn(&[DeliveryRecord]) -> bool,
) -> Vec<DeliveryRecord> {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = pd.deliveries();
        if done(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn settled(d: &[DeliveryRecord]) -> bool {
    !d.is_empty() && d.iter().all(|r| r.state != DeliveryState::Pending)
}

#[tokio::test]
async fn incident_changes_arrive_in_order_signed_and_naming_who_made_them() {
    let rx = accepting_receiver().await;
    let pd = TestPd::with_seed(seed(vec![subscription(&rx.url())])).await;
    let sub_id = pd.world().subscriptions[0].id.clone();

    trigger(&pd, DEMO_ROUTING_KEY, "w1").await;
    update(&pd, DEMO_ROUTING_KEY, EventAction::Acknowledge, "w1").await;
    update(&pd, DEMO_ROUTING_KEY, EventAction::Resolve, "w1").await;
    trigger(&pd, DEMO_ROUTING_KEY, "w2").await;
    let w2 = incident_id(&pd, "w2");
    pd.rest().create_note(&w2, "Looking into it").await.unwrap();
    pd.rest()
        .update_incident(&w2, &IncidentUpdate::status(IncidentStatus::Acknowledged))
        .await
        .unwrap();

    let got = rx.wait_for(6, WAIT).await;
    assert_eq!(got.len(), 6);
    let types: Vec<_> = got.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            "incident.triggered",
            "incident.acknowledged",
            "incident.resolved",
            "incident.triggered",
            "incident.annotated",
            "incident.acknowledged",
        ]
    );

    let ids: HashSet<_> = got.iter().map(webhook_id).collect();
    assert_eq!(ids.len(), 6, "every delivery has its own X-Webhook-Id");
    let event_ids: HashSet<_> = got.iter().map(|r| envelope(r).event.id).collect();
    assert_eq!(event_ids.len(), 6);
    for r in &got {
        assert_eq!(r.method, "POST");
        verify(r.header("x-pagerduty-signature"), &r.body, &[SECRET]).expect("a valid signature");
        assert_eq!(r.header("x-webhook-subscription"), Some(sub_id.as_str()));
        assert_eq!(r.header("user-agent"), Some("PagerDuty-Webhook/V3.0"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    let expected = [
        (1, IncidentStatus::Triggered, "w1"),
        (1, IncidentStatus::Acknowledged, "w1"),
        (1, IncidentStatus::Resolved, "w1"),
        (2, IncidentStatus::Triggered, "w2"),
    ];
    for (r, (number, status, key)) in got.iter().zip(expected) {
        let event = envelope(r).event;
        let inc = event.incident().expect("incident data");
        assert_eq!(inc.number, Some(number));
        assert_eq!(inc.status, status);
        assert_eq!(inc.incident_key.as_deref(), Some(key));
        assert_eq!(inc.service.as_ref().map(|s| s.id.as_str()), Some("PDEMO01"));
        let agent = event.agent.expect("an agent");
        assert_eq!(
            (agent.kind.as_str(), agent.id.as_str()),
            ("service_reference", "PDEMO01")
        );
    }

    let annotated = envelope(&got[4]).event;
    let note = annotated.note().expect("note data");
    assert_eq!(note.content, "Looking into it");
    assert_eq!(note.incident.id, w2);
    let agent = annotated.agent.expect("an agent");
    assert_eq!(
        (agent.kind.as_str(), agent.id.as_str()),
        ("user_reference", "PADA001")
    );

    let acked = envelope(&got[5]).event;
    assert_eq!(
        acked.incident().unwrap().status,
        IncidentStatus::Acknowledged
    );
    assert_eq!(acked.agent.unwrap().kind, "user_reference");

    let log = deliveries_until(&pd, settled).await;
    assert!(
        log.iter()
            .all(|d| d.state == DeliveryState::Delivered && d.attempts == 1),
        "{log:#?}"
    );
}

#[tokio::test]
async fn a_5xx_answer_is_retried_with_the_same_webhook_id_and_later_events_wait_behind_it() {
    let rx = accepting_receiver().await;
    rx.push(Canned::json(500, json!({})));
    rx.push(Canned::json(500, json!({})));
    let pd = TestPd::with_seed(seed(vec![subscription(&rx.url())])).await;

    trigger(&pd, DEMO_ROUTING_KEY, "r1").await;
    update(&pd, DEMO_ROUTING_KEY, EventAction::Acknowledge, "r1").await;

    let got = rx.wait_for(4, WAIT).await;
    assert_eq!(got.len(), 4);
    let first = webhook_id(&got[0]);
    for r in &got[..3] {
        assert_eq!(webhook_id(r), first);
        assert_eq!(event_type(r), "incident.triggered");
        assert_eq!(r.body, got[0].body, "a retry sends the same bytes");
        verify(r.header("x-pagerduty-signature"), &r.body, &[SECRET]).unwrap();
    }
    assert_eq!(event_type(&got[3]), "incident.acknowledged");
    assert_ne!(webhook_id(&got[3]), first);
    // Backoff: the second wait is at least twice the 20 ms base.
    assert!(got[1].at - got[0].at >= Duration::from_millis(20));
    assert!(got[2].at - got[1].at >= Duration::from_millis(40));

    let log = deliveries_until(&pd, |d| d.len() == 2 && settled(d)).await;
    assert_eq!(
        (log[0].state, log[0].attempts, log[0].last_status),
        (DeliveryState::Delivered, 3, Some(202))
    );
    assert_eq!(
        (log[1].state, log[1].attempts),
        (DeliveryState::Delivered, 1)
    );
}

#[tokio::test]
async fn a_429_answer_is_retried() {
    let rx = accepting_receiver().await;
    rx.push(Canned::json(429, json!({})).header("retry-after", "0"));
    let pd = TestPd::with_seed(seed(vec![subscription(&rx.url())])).await;
    trigger(&pd, DEMO_ROUTING_KEY, "throttled").await;

    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(webhook_id(&got[0]), webhook_id(&got[1]));
    let log = deliveries_until(&pd, settled).await;
    assert_eq!(
        (log[0].state, log[0].attempts),
        (DeliveryState::Delivered, 2)
    );
}

#[tokio::test]
async fn a_400_answer_drops_the_delivery_without_retrying_it() {
    let rx = accepting_receiver().await;
    rx.push(Canned::json(400, json!({"error": "no thanks"})));
    let pd = TestPd::with_seed(seed(vec![subscription(&rx.url())])).await;
    trigger(&pd, DEMO_ROUTING_KEY, "d1").await;
    update(&pd, DEMO_ROUTING_KEY, EventAction::Acknowledge, "d1").await;

    // Deliveries of one subscription go one at a time, so a retry would come before the next.
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(event_type(&got[0]), "incident.triggered");
    assert_eq!(event_type(&got[1]), "incident.acknowledged");
    let log = deliveries_until(&pd, |d| d.len() == 2 && settled(d)).await;
    assert_eq!(
        (log[0].state, log[0].attempts, log[0].last_status),
        (DeliveryState::Dropped, 1, Some(400))
    );
    assert_eq!(log[1].state, DeliveryState::Delivered);
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn a_receiver_that_answers_too_slowly_is_tried_again() {
    let rx = accepting_receiver().await;
    rx.push(Canned::json(202, json!({})).delayed(Duration::from_secs(2)));
    let mut seed = seed(vec![subscription(&rx.url())]);
    seed.settings.webhook_timeout_ms = 100;
    let pd = TestPd::with_seed(seed).await;
    trigger(&pd, DEMO_ROUTING_KEY, "slow").await;

    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(webhook_id(&got[0]), webhook_id(&got[1]));
    let log = deliveries_until(&pd, settled).await;
    assert_eq!(
        (log[0].state, log[0].attempts),
        (DeliveryState::Delivered, 2)
    );
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_given_up_after_the_configured_attempts() {
    let rx = Recorder::start(Canned::json(503, json!({}))).await;
    let mut seed = seed(vec![subscription(&rx.url())]);
    seed.settings.webhook_max_attempts = 3;
    let pd = TestPd::with_seed(seed).await;
    trigger(&pd, DEMO_ROUTING_KEY, "down").await;

    let log = deliveries_until(&pd, settled).await;
    assert_eq!(
        (log[0].state, log[0].attempts, log[0].last_status),
        (DeliveryState::GaveUp, 3, Some(503))
    );
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test]
async fn three_dropped_deliveries_in_a_row_pause_the_subscription_until_a_reset() {
    let rx = Recorder::start(Canned::json(410, json!({}))).await;
    let pd = TestPd::with_seed(seed(vec![subscription(&rx.url())])).await;
    for key in ["p1", "p2", "p3", "p4"] {
        trigger(&pd, DEMO_ROUTING_KEY, key).await;
    }
    let log = deliveries_until(&pd, |d| d.len() == 4 && settled(d)).await;
    let states: Vec<_> = log.iter().map(|d| d.state).collect();
    assert_eq!(
        states,
        [
            DeliveryState::Dropped,
            DeliveryState::Dropped,
            DeliveryState::Dropped,
            DeliveryState::SubscriptionDisabled
        ]
    );
    assert_eq!(
        rx.requests().len(),
        3,
        "a paused subscription is not called"
    );

    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/reset", pd.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rx.set_default(Canned::json(202, json!({})));
    trigger(&pd, DEMO_ROUTING_KEY, "after-reset").await;
    let got = rx.wait_for(4, WAIT).await;
    assert_eq!(
        envelope(&got[3])
            .event
            .incident()
            .unwrap()
            .incident_key
            .as_deref(),
        Some("after-reset")
    );
}

#[tokio::test]
async fn a_legacy_v2_subscription_gets_unsigned_message_batches() {
    let rx = accepting_receiver().await;
    let mut sub = subscription(&rx.url());
    sub.version = WebhookVersion::V2;
    let pd = TestPd::with_seed(seed(vec![sub])).await;
    trigger(&pd, DEMO_ROUTING_KEY, "legacy").await;
    update(&pd, DEMO_ROUTING_KEY, EventAction::Resolve, "legacy").await;

    let got = rx.wait_for(2, WAIT).await;
    let expected = [
        ("incident.trigger", "triggered"),
        ("incident.resolve", "resolved"),
    ];
    for (r, (event, status)) in got.iter().zip(expected) {
        assert_eq!(r.header("x-pagerduty-signature"), None);
        let body: V2Webhook = serde_json::from_slice(&r.body).expect("a v2 body");
        assert_eq!(body.messages.len(), 1);
        let m = &body.messages[0];
        assert_eq!(m.event, event);
        assert_eq!(m.incident["status"], status);
        assert_eq!(m.incident["incident_key"], "legacy");
        assert_eq!(m.incident["incident_number"], 1);
    }
}

fn new_subscription(url: &str, events: &[&str], filter: SubscriptionFilter) -> WebhookSubscription {
    WebhookSubscription {
        id: None,
        kind: "webhook_subscription".into(),
        active: true,
        delivery_method: DeliveryMethod {
            kind: "http_delivery_method".into(),
            url: url.into(),
            secret: None,
            temporarily_disabled: None,
            custom_headers: Vec::new(),
        },
        description: Some("created over REST".into()),
        events: events.iter().map(|e| e.to_string()).collect(),
        filter,
        extra: Default::default(),
    }
}

#[tokio::test]
async fn a_subscription_created_over_rest_shows_its_secret_once_and_receives_pings_and_incidents() {
    let rx = accepting_receiver().await;
    let pd = TestPd::with_seed(seed(Vec::new())).await;
    let account = SubscriptionFilter {
        kind: "account_reference".into(),
        id: None,
    };
    let created = pd
        .rest()
        .create_webhook_subscription(&new_subscription(
            &rx.url(),
            &["incident.triggered"],
            account,
        ))
        .await
        .unwrap();
    let id = created.id.clone().expect("an id");
    let secret = created
        .delivery_method
        .secret
        .clone()
        .expect("the secret, once");

    let listed: Vec<WebhookSubscription> =
        futures::TryStreamExt::try_collect(pd.rest().webhook_subscriptions())
            .await
            .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_deref(), Some(id.as_str()));
    assert_eq!(
        listed[0].delivery_method.secret, None,
        "the secret is never shown again"
    );

    let ping = reqwest::Client::new()
        .post(format!("{}/webhook_subscriptions/{id}/ping", pd.url()))
        .header("authorization", "Token token=emulator-account-token")
        .header("accept", "application/vnd.pagerduty+json;version=2")
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 202);
    trigger(&pd, DEMO_ROUTING_KEY, "rest-sub").await;

    let got = rx.wait_for(2, WAIT).await;
    for r in &got {
        verify(r.header("x-pagerduty-signature"), &r.body, &[&secret])
            .expect("signed with the returned secret");
        assert_eq!(r.header("x-webhook-subscription"), Some(id.as_str()));
    }
    let ping = envelope(&got[0]).event;
    assert_eq!(ping.event_type, "pagey.ping");
    assert!(ping.incident().is_none());
    assert_eq!(event_type(&got[1]), "incident.triggered");
}

#[tokio::test]
async fn service_and_event_type_filters_limit_what_a_subscription_receives() {
    let db_rx = accepting_receiver().await;
    let triggers_rx = accepting_receiver().await;
    let mut db_only = subscription(&db_rx.url());
    db_only.service = Some("Database".into());
    let mut triggers_only = subscription(&triggers_rx.url());
    triggers_only.events = vec!["incident.triggered".into()];
    let pd = TestPd::with_seed(seed(vec![db_only, triggers_only])).await;
    let (db_sub, triggers_sub) = {
        let w = pd.world();
        (w.subscriptions[0].id.clone(), w.subscriptions[1].id.clone())
    };

    trigger(&pd, DEMO_ROUTING_KEY, "on-demo").await;
    trigger(&pd, DEMO_DB_ROUTING_KEY, "on-db").await;
    update(&pd, DEMO_DB_ROUTING_KEY, EventAction::Acknowledge, "on-db").await;

    // Deliveries are queued while the event is processed, so the log is complete already.
    let queued: Vec<_> = pd
        .deliveries()
        .into_iter()
        .map(|d| (d.subscription, d.event_type))
        .collect();
    assert_eq!(
        queued,
        [
            (triggers_sub.clone(), "incident.triggered".to_string()),
            (db_sub.clone(), "incident.triggered".to_string()),
            (triggers_sub.clone(), "incident.triggered".to_string()),
            (db_sub.clone(), "incident.acknowledged".to_string()),
        ]
    );

    let keys = |got: Vec<Recorded>| -> Vec<(String, String)> {
        got.iter()
            .map(|r| {
                let e = envelope(r).event;
                (
                    e.event_type.clone(),
                    e.incident().unwrap().incident_key.unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(db_rx.wait_for(2, WAIT).await),
        [
            ("incident.triggered".to_string(), "on-db".to_string()),
            ("incident.acknowledged".to_string(), "on-db".to_string()),
        ]
    );
    assert_eq!(
        keys(triggers_rx.wait_for(2, WAIT).await),
        [
            ("incident.triggered".to_string(), "on-demo".to_string()),
            ("incident.triggered".to_string(), "on-db".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_merged_source_is_resolved_by_webhook_with_the_merge_reason() {
    let v3 = accepting_receiver().await;
    let v2 = accepting_receiver().await;
    let mut legacy = subscription(&v2.url());
    legacy.version = WebhookVersion::V2;
    let pd = TestPd::with_seed(seed(vec![subscription(&v3.url()), legacy])).await;
    trigger(&pd, DEMO_ROUTING_KEY, "merge-target").await;
    trigger(&pd, DEMO_ROUTING_KEY, "merge-source").await;
    let target = incident_id(&pd, "merge-target");
    let source = incident_id(&pd, "merge-source");
    pd.rest()
        .merge_incidents(&target, std::slice::from_ref(&source))
        .await
        .unwrap();

    let got = v3.wait_for(3, WAIT).await;
    assert_eq!(
        got.len(),
        3,
        "two triggers and the source's resolution, nothing for the target"
    );
    let types: Vec<_> = got.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            "incident.triggered",
            "incident.triggered",
            "incident.resolved"
        ]
    );
    for r in &got {
        verify(r.header("x-pagerduty-signature"), &r.body, &[SECRET]).unwrap();
    }
    let resolved = envelope(&got[2]).event;
    let agent = resolved.agent.clone().expect("an agent");
    assert_eq!(
        (agent.kind.as_str(), agent.id.as_str()),
        ("user_reference", "PADA001"),
        "the merging user resolved it"
    );
    let inc = resolved.incident().expect("incident data");
    assert_eq!(inc.id, source);
    assert_eq!(inc.status, IncidentStatus::Resolved);
    let reason = inc.resolve_reason.expect("a resolve_reason");
    assert_eq!(reason["type"], "merge_resolve_reason");
    assert_eq!(reason["incident"]["id"], target.as_str());
    assert_eq!(reason["incident"]["type"], "incident_reference");
    // The triggers carried no reason.
    for r in &got[..2] {
        let inc = envelope(r).event.incident().unwrap();
        assert_eq!(inc.resolve_reason, None);
    }

    let got = v2.wait_for(3, WAIT).await;
    let body: V2Webhook = serde_json::from_slice(&got[2].body).expect("a v2 body");
    let m = &body.messages[0];
    assert_eq!(m.event, "incident.resolve");
    assert_eq!(m.incident["id"], source.as_str());
    assert_eq!(m.incident["resolve_reason"]["type"], "merge_resolve_reason");
    assert_eq!(
        m.incident["resolve_reason"]["incident"]["id"],
        target.as_str()
    );
    assert_eq!(m.log_entries[0]["type"], "resolve_log_entry");
    assert_eq!(m.log_entries[0]["agent"]["id"], "PADA001");
    let first: V2Webhook = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        first.messages[0].incident["resolve_reason"],
        serde_json::Value::Null
    );
}
