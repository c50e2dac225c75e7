//! The generic webhook against a recording receiver: the documented body and headers, the
//! HMAC signature as a receiver would check it, and the retry classification.

#[path = "common/changes.rs"]
mod changes;
#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;
use std::time::Duration;

use changes::{apply, apply_memo, refused, zabbix_event as zabbix_ref};
use hmac::{KeyInit, Mac};
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{Action, Adapter, Change, Kind, Settings, WriteError, build};
use recorder::{Recorder, Reply, Seen, fixture, refused_url};
use serde_json::{Value, json};

fn settings(url: &str, token: Option<&str>, options: Value) -> Settings {
    Settings {
        token: token.map(str::to_string),
        ..changes::settings(url, options)
    }
}

fn adapter_at(url: &str, token: Option<&str>, options: Value) -> Arc<dyn Adapter> {
    build(Kind::Webhook, &settings(url, token, options)).expect("build")
}

/// The change of tests/fixtures/webhook/acknowledge-body.json (with `action`).
fn change(action: Action) -> Change {
    Change {
        comment: format!(
            "Acknowledged by Jane Doe in PagerDuty: {}",
            changes::INCIDENT_URL
        ),
        expires_at: Some("2026-11-21T10:00:00Z".parse().unwrap()),
        ..changes::change(action)
    }
}

/// What a receiver does: HMAC-SHA256 over "<timestamp>.<body>" with its copy of the secret,
/// compared in constant time.
fn verifies(secret: &str, req: &Seen) -> bool {
    let (Some(ts), Some(sig)) = (
        req.header("x-pagerbridge-timestamp"),
        req.header("x-pagerbridge-signature"),
    ) else {
        return false;
    };
    let Some(hex_sig) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(raw) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&req.body);
    mac.verify_slice(&raw).is_ok()
}

#[tokio::test]
async fn posts_the_documented_body_and_headers() {
    let server = Recorder::start(|_: &Seen| Reply::empty(204)).await;
    let adapter = adapter_at(
        &format!("{}/hooks/pd?src=pagerbridge", server.url()),
        Some("rcv-token"),
        Value::Null,
    );
    let c = change(Action::Acknowledge);
    let applied = apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect("delivered");
    assert_eq!(
        applied.memo,
        Some(json!({"last_applied": "acknowledge:Q1ABC:2026-11-21T08:15:00Z"}))
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/pd?src=pagerbridge");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer rcv-token"));
    assert_eq!(
        req.header("idempotency-key"),
        Some("acknowledge:Q1ABC:2026-11-21T08:15:00Z")
    );
    assert!(
        req.header("x-pagerbridge-signature").is_none(),
        "no secret, no signature"
    );
    let expected: Value = serde_json::from_str(&fixture("webhook/acknowledge-body.json")).unwrap();
    assert_eq!(req.json(), expected);
}

#[tokio::test]
async fn every_action_and_any_reference_is_posted() {
    let server = Recorder::start(|_: &Seen| Reply::json(200, &json!({"ok": true}))).await;
    let adapter = adapter_at(&server.url(), None, Value::Null);
    let target = MonitorRef::Object {
        host: "db1".into(),
        service: Some("Disk /".into()),
        problem_id: Some("812".into()),
        last_problem_id: None,
    };
    for action in [
        Action::Acknowledge,
        Action::Unacknowledge,
        Action::Comment,
        Action::Resolve,
    ] {
        let mut c = change(action);
        c.expires_at = None;
        c.incident_url = None;
        apply(&*adapter, &target, &c)
            .await
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        let body = server.seen().last().unwrap().json();
        assert_eq!(body["action"], action.as_str());
        assert_eq!(body["expires_at"], Value::Null);
        assert_eq!(body["incident"], json!({"id": "Q1ABC", "url": null}));
        assert_eq!(
            body["monitor_ref"],
            json!({"kind": "object", "host": "db1", "service": "Disk /", "problem_id": "812"})
        );
        assert!(
            server
                .seen()
                .last()
                .unwrap()
                .header("authorization")
                .is_none()
        );
    }
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn the_signature_verifies_with_the_secret_and_not_with_another() {
    let server = Recorder::start(|_: &Seen| Reply::empty(200)).await;
    let adapter = adapter_at(&server.url(), None, json!({"hmac_secret": "shared-secret"}));
    let c = change(Action::Resolve);
    apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect("delivered");
    let req = &server.seen()[0];
    let ts: i64 = req
        .header("x-pagerbridge-timestamp")
        .expect("timestamp")
        .parse()
        .expect("unix seconds");
    assert!((jiff::Timestamp::now().as_second() - ts).abs() < 60, "{ts}");
    assert!(verifies("shared-secret", req));
    assert!(!verifies("another-secret", req));
    let mut tampered = req.clone();
    tampered.body = req.body.slice(..req.body.len() - 1);
    assert!(!verifies("shared-secret", &tampered), "the body is covered");
}

#[tokio::test]
async fn a_custom_signature_header() {
    let server = Recorder::start(|_: &Seen| Reply::empty(200)).await;
    let adapter = adapter_at(
        &server.url(),
        None,
        json!({"hmac_secret": "k", "signature_header": "X-Hub-Signature-256"}),
    );
    let c = change(Action::Comment);
    apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect("delivered");
    let req = &server.seen()[0];
    assert!(
        req.header("x-hub-signature-256")
            .unwrap()
            .starts_with("sha256=")
    );
    assert!(req.header("x-pagerbridge-signature").is_none());
}

async fn status_error(status: u16) -> WriteError {
    let server =
        Recorder::start(move |_: &Seen| Reply::json(status, &json!({"error": "nope"}))).await;
    let adapter = adapter_at(&server.url(), None, Value::Null);
    let c = change(Action::Acknowledge);
    apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect_err("not 2xx")
}

#[tokio::test]
async fn answers_are_classified() {
    for s in [500, 502, 503, 429, 408] {
        let e = status_error(s).await;
        assert!(e.retry, "{s}: {e}");
        assert!(e.message.contains(&s.to_string()), "{e}");
    }
    for s in [400, 401, 403, 404, 410, 422] {
        let e = status_error(s).await;
        assert!(!e.retry, "{s}: {e}");
    }
    let adapter = adapter_at(&refused_url().await, None, Value::Null);
    let c = change(Action::Acknowledge);
    let e = apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect_err("refused");
    assert!(e.retry, "{e}");
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        }
    });
    let mut s = settings(&format!("http://{addr}"), None, Value::Null);
    s.timeout = Duration::from_millis(300);
    let adapter = build(Kind::Webhook, &s).expect("build");
    let c = change(Action::Acknowledge);
    let e = apply(&*adapter, &zabbix_ref(), &c)
        .await
        .expect_err("timeout");
    assert!(e.retry, "{e}");
    hold.abort();
}

#[tokio::test]
async fn a_change_the_memo_says_was_delivered_is_not_posted_again() {
    let server = Recorder::start(|_: &Seen| Reply::empty(204)).await;
    let adapter = adapter_at(&server.url(), None, Value::Null);
    let c = change(Action::Acknowledge);
    let target = zabbix_ref();
    let memo = apply(&*adapter, &target, &c)
        .await
        .expect("first")
        .memo
        .expect("memo");
    let again = apply_memo(&*adapter, &target, &c, Some(&memo))
        .await
        .expect("again");
    assert_eq!(again.memo, None);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn build_names_the_bad_setting() {
    let field = |s: Settings| refused(Kind::Webhook, &s).field;
    let ok = settings("https://hooks.example.com/pd", None, Value::Null);
    changes::assert_url_is_checked(Kind::Webhook, &ok, "mailto:ops@example.com");
    assert_eq!(
        field(settings(
            "https://h.example.com",
            None,
            json!({"hmac_secret": ""})
        )),
        "options.hmac_secret"
    );
    assert_eq!(
        field(settings(
            "https://h.example.com",
            None,
            json!({"hmac_secret": "k", "signature_header": "bad header"})
        )),
        "options.signature_header"
    );
    assert_eq!(
        field(settings(
            "https://h.example.com",
            None,
            json!({"signature_header": "X-Sig"})
        )),
        "options.signature_header"
    );
    let e = refused(
        Kind::Webhook,
        &settings("https://h.example.com", None, json!({"secret": "k"})),
    );
    assert_eq!(e.field, "options.secret");
    assert_eq!(
        e.message,
        "unknown option; the webhook takes hmac_secret, signature_header"
    );
}
