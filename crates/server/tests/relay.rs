//! The daemon's PagerDuty-compatible routes, over HTTP: PagerDuty's answers and status codes,
//! PagerDuty's validation errors, nothing invalid stored, and no 2xx before the event is durable.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pagerbridge_store::{EventKind, ListQuery, State, Store};
use pagerbridge_testkit::{DEMO_V1_SERVICE_KEY, TestPd};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

async fn post_raw(d: &Daemon, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let mut req = d.http.post(format!("{}{path}", d.base)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    answer(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_answers_202_with_the_dedup_key_pagerdutys_clients_need() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;

    let a = d
        .post("/v2/enqueue", &trigger(DEMO_ROUTING_KEY, "disk/db1", 1))
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(
        a.body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "disk/db1"})
    );
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    for action in ["acknowledge", "resolve"] {
        let a = d
            .post(
                "/v2/enqueue",
                &event(DEMO_ROUTING_KEY, "disk/db1", action, 2),
            )
            .await;
        assert_eq!(a.status, 202);
        assert_eq!(a.body["dedup_key"], "disk/db1", "{action}: {}", a.body);
    }

    // No dedup key: one is made up, answered, stored and sent, as PagerDuty would make one.
    let mut keyless = trigger(DEMO_ROUTING_KEY, "", 3);
    keyless.as_object_mut().unwrap().remove("dedup_key");
    let a = d.post("/v2/enqueue", &keyless).await;
    assert_eq!(a.status, 202);
    let key = a.body["dedup_key"].as_str().unwrap().to_owned();
    assert!(is_hex32(&key), "{key}");
    let again = d.post("/v2/enqueue", &keyless).await;
    assert_ne!(
        again.body["dedup_key"].as_str(),
        Some(key.as_str()),
        "a new alert each time"
    );

    // Senders that omit the content type, or add a charset, are PagerDuty clients too.
    let body = serde_json::to_vec(&trigger(DEMO_ROUTING_KEY, "no-ct", 4)).unwrap();
    assert_eq!(
        post_raw(&d, "/v2/enqueue", None, body.clone()).await.status,
        202
    );
    let utf8 = Some("application/json; charset=utf-8");
    assert_eq!(post_raw(&d, "/v2/enqueue", utf8, body).await.status, 202);

    wait_drained(&d.store(), WAIT).await;
    let rec = records(&d.store(), &key).await;
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].state, State::Delivered);
    assert_eq!(
        received(&pd, &key).len(),
        1,
        "PagerDuty got the generated key"
    );
    assert_eq!(incident(&pd, &key).1, 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_and_v1_events_answer_as_pagerduty_does() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;

    let change = json!({"routing_key": DEMO_ROUTING_KEY, "payload": {"summary": "Deployed v2.1", "source": "ci"}});
    let a = d.post("/v2/change/enqueue", &change).await;
    assert_eq!(a.status, 202);
    assert_eq!(
        a.body,
        json!({"status": "success", "message": "Change event processed"})
    );

    let v1 = json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger",
        "incident_key": "legacy/1", "description": "Legacy problem"});
    let a = d.post("/generic/2010-04-15/create_event.json", &v1).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"status": "success", "message": "Event processed", "incident_key": "legacy/1"})
    );
    let mut keyless = v1.clone();
    keyless.as_object_mut().unwrap().remove("incident_key");
    let a = d
        .post("/generic/2010-04-15/create_event.json", &keyless)
        .await;
    assert_eq!(a.status, 200);
    let generated = a.body["incident_key"].as_str().unwrap().to_owned();
    assert!(is_hex32(&generated), "{generated}");

    let bad_v1 = json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger"});
    let a = d
        .post("/generic/2010-04-15/create_event.json", &bad_v1)
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["status"], "invalid event");
    assert_eq!(a.body["message"], "Event object is invalid");
    assert!(a.body.get("incident_key").is_none());
    assert_eq!(
        a.body["errors"],
        json!(["'description' is missing or blank"])
    );

    wait_drained(&d.store(), WAIT).await;
    assert_eq!(pd.world().change_events.len(), 1);
    assert_eq!(incident(&pd, "legacy/1").1, 1);
    assert_eq!(incident(&pd, &generated).1, 1);
    let store = d.store();
    let all = all_records(store.as_ref()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].kind, EventKind::Change);
    assert_eq!(all[1].kind, EventKind::EventsV1);
    assert!(all.iter().all(|r| r.state == State::Delivered), "{all:?}");
    // The record keeps PagerDuty's answer, including the key the v1 API answers with.
    let v1_answer: Value = serde_json::from_str(all[1].response.as_deref().unwrap()).unwrap();
    assert_eq!(v1_answer["incident_key"], "legacy/1", "{v1_answer}");
    assert_eq!(all[1].last_status, Some(200));
    drop(store);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_events_get_pagerdutys_400s_and_are_not_stored() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    let second = open_store(&d.db_path()).await;
    let before = second.stats().await.unwrap();

    let unrecognized = |e: &str| json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": [e]});
    let raw_cases: [(&str, &[u8], Value); 3] = [
        (
            "/v2/enqueue",
            b"{not json",
            unrecognized("JSON parse error"),
        ),
        (
            "/v2/enqueue",
            b"[1, 2]",
            unrecognized("Event object must be a JSON object, not an array"),
        ),
        ("/v2/change/enqueue", b"", unrecognized("JSON parse error")),
    ];
    for (path, body, want) in raw_cases {
        let a = post_raw(&d, path, Some("application/json"), body.to_vec()).await;
        assert_eq!((a.status, &a.body), (400, &want), "{path} {body:?}");
    }

    let mut no_severity = trigger(DEMO_ROUTING_KEY, "k", 1);
    no_severity["payload"]
        .as_object_mut()
        .unwrap()
        .remove("severity");
    let mut bad_severity = trigger(DEMO_ROUTING_KEY, "k", 1);
    bad_severity["payload"]["severity"] = json!("fatal");
    let mut no_payload = trigger(DEMO_ROUTING_KEY, "k", 1);
    no_payload.as_object_mut().unwrap().remove("payload");
    let mut ack_without_key = event(DEMO_ROUTING_KEY, "k", "acknowledge", 1);
    ack_without_key.as_object_mut().unwrap().remove("dedup_key");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v2/enqueue",
            trigger("short", "k", 1),
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        (
            "/v2/enqueue",
            no_severity,
            "'payload.severity' is missing or blank",
        ),
        (
            "/v2/enqueue",
            bad_severity,
            "'payload.severity' is invalid (must be one of: critical, error, warning, info; got 'fatal')",
        ),
        ("/v2/enqueue", no_payload, "'payload' is missing or blank"),
        (
            "/v2/enqueue",
            ack_without_key,
            "'dedup_key' is missing or blank",
        ),
        (
            "/v2/enqueue",
            json!({"routing_key": DEMO_ROUTING_KEY, "dedup_key": "k"}),
            "'event_action' is missing or blank",
        ),
        (
            "/v2/change/enqueue",
            json!({"routing_key": DEMO_ROUTING_KEY, "payload": {"source": "ci"}}),
            "'payload.summary' is missing or blank",
        ),
    ];
    for (path, body, error) in cases {
        let a = d.post(path, &body).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.body["status"], "invalid event", "{}", a.body);
        assert_eq!(a.body["message"], "Event object is invalid");
        assert!(a.body.get("dedup_key").is_none());
        let errors: Vec<&str> = (a.body["errors"].as_array().unwrap().iter())
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            errors.contains(&error),
            "{body}: {errors:?} lacks {error:?}"
        );
    }

    let after = second.stats().await.unwrap();
    assert_eq!((before.pending, after.pending), (0, 0));
    assert!(
        all_records(&second).await.is_empty(),
        "nothing invalid was stored"
    );
    assert!(
        all_received(&pd).is_empty(),
        "nothing invalid reached PagerDuty"
    );
    second.close().await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_content_type_is_refused_by_name() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    let body = serde_json::to_vec(&trigger(DEMO_ROUTING_KEY, "ct", 1)).unwrap();
    for path in [
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/generic/2010-04-15/create_event.json",
    ] {
        let a = post_raw(&d, path, Some("text/plain"), body.clone()).await;
        assert_eq!(a.status, 400, "{path}");
        let errors = a.body["errors"].to_string();
        assert!(errors.contains("text/plain"), "{path}: {}", a.body);
        assert_eq!(a.body["message"], "Event object is invalid");
    }
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(post_raw(&d, "/v2/enqueue", form, body).await.status, 400);
    assert!(all_records(d.store().as_ref()).await.is_empty());
    d.stop().await;
}

fn sized_trigger(key: &str, bytes: usize) -> Vec<u8> {
    let mut ev = trigger(DEMO_ROUTING_KEY, key, 1);
    ev["payload"]["custom_details"] = json!({"filler": ""});
    let base = serde_json::to_vec(&ev).unwrap().len();
    ev["payload"]["custom_details"]["filler"] = json!("x".repeat(bytes - base));
    let body = serde_json::to_vec(&ev).unwrap();
    assert_eq!(body.len(), bytes);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_bodies_are_refused_cleanly() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    let json_ct = Some("application/json");
    let limit = 512 * 1024;

    let at_limit = post_raw(&d, "/v2/enqueue", json_ct, sized_trigger("at-limit", limit)).await;
    assert_eq!(at_limit.status, 202, "512 KB is allowed: {}", at_limit.body);

    let over = post_raw(&d, "/v2/enqueue", json_ct, sized_trigger("over", limit + 1)).await;
    assert_eq!(over.status, 400);
    assert!(
        over.body["errors"].to_string().contains("too large"),
        "{}",
        over.body
    );

    for (key, size) in [("600k", 600 * 1024), ("2m", 2 * 1024 * 1024)] {
        let started = Instant::now();
        let a = post_raw(&d, "/v2/enqueue", json_ct, sized_trigger(key, size)).await;
        assert_eq!(a.status, 400, "{key}");
        assert_eq!(a.body["status"], "invalid event");
        assert!(
            a.body["errors"].to_string().contains("too large"),
            "{}",
            a.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{key}: {:?}",
            started.elapsed()
        );
    }
    // The daemon still answers, on a new connection and on the pooled ones.
    let a = d
        .post("/v2/enqueue", &trigger(DEMO_ROUTING_KEY, "after", 2))
        .await;
    assert_eq!(a.status, 202);

    let store = d.store();
    let keys: Vec<_> = all_records(store.as_ref())
        .await
        .into_iter()
        .map(|r| r.dedup_key.unwrap())
        .collect();
    assert_eq!(keys, ["at-limit", "after"]);
    wait_drained(&store, WAIT).await;
    drop(store);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_2xx_is_answered_only_once_the_event_is_stored() {
    let pd = TestPd::start().await;
    let mut daemon = Daemon::start(&pd, Opts::default()).await;
    let second = open_store(&daemon.db_path()).await;
    let d = &daemon;
    let second = &second;
    let checks = (0..60).map(|i| async move {
        let key = format!("durable/{i}");
        let (path, body) = match i % 3 {
            0 => ("/v2/enqueue", trigger(DEMO_ROUTING_KEY, &key, i)),
            1 => (
                "/generic/2010-04-15/create_event.json",
                json!({"service_key": DEMO_V1_SERVICE_KEY, "event_type": "trigger",
                    "incident_key": key, "description": "d"}),
            ),
            _ => (
                "/v2/enqueue",
                event(DEMO_DB_ROUTING_KEY, &key, "resolve", i),
            ),
        };
        let a = d.post(path, &body).await;
        assert!(a.status == 202 || a.status == 200, "{}", a.body);
        // Right after the answer, through another connection to the file, as a crash would
        // leave it: the event is there.
        let found = second
            .list(&ListQuery {
                dedup_key: Some(key.clone()),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{key} answered {} but not stored", a.status);
    });
    futures::future::join_all(checks).await;
    let changes = (0..10).map(|i| async move {
        let body =
            json!({"routing_key": DEMO_ROUTING_KEY, "payload": {"summary": format!("change {i}")}});
        let a = d.post("/v2/change/enqueue", &body).await;
        assert_eq!(a.status, 202);
        let n = second
            .list(&ListQuery {
                routing_key: Some(DEMO_ROUTING_KEY.into()),
                ..ListQuery::default()
            })
            .await
            .unwrap()
            .iter()
            .filter(|r| r.kind == EventKind::Change)
            .filter(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["payload"]["summary"]
                    == format!("change {i}")
            })
            .count();
        assert_eq!(n, 1, "change {i}");
    });
    futures::future::join_all(changes).await;
    wait_drained(&d.store(), WAIT).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_methods_and_paths_are_refused() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    for path in [
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/generic/2010-04-15/create_event.json",
    ] {
        let a = answer(d.http.get(format!("{}{path}", d.base))).await;
        assert_eq!(a.status, 405, "GET {path}");
    }
    let a = d
        .post("/v2/enqueue/extra", &trigger(DEMO_ROUTING_KEY, "x", 1))
        .await;
    assert_eq!(a.status, 404);
    let a = answer(d.http.get(format!("{}/healthz", d.base))).await;
    assert_eq!(a.status, 200);
    assert!(all_records(d.store().as_ref()).await.is_empty());
    d.stop().await;
}
