//! The Zenoss adapter against a stand-in for Zenoss' `evconsole_router` that checks basic
//! authentication and the Ext.Direct request shape, and answers with the router's shapes
//! (tests/fixtures/zenoss/).

#[path = "common/changes.rs"]
mod changes;
#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use changes::{apply_memo, login_settings as settings, refused};
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{
    Action, Adapter, Applied, Change, Kind, Settings, WriteError, build,
};
use recorder::{Recorder, Reply, Seen, fixture, refused_url};
use serde_json::{Value, json};

const EVID: &str = "0242ac11-0002-8c3e-11e8-5c0f6a1b2c3d";
// base64("pagerbridge:s3cret")
const BASIC: &str = "Basic cGFnZXJicmlkZ2U6czNjcmV0";

/// Zenoss' log line adds the incident's link, so the comment goes without it.
fn change(action: Action) -> Change {
    Change {
        comment: format!("{} by Jane Doe in PagerDuty", action.as_str()),
        ..changes::change(action)
    }
}

fn adapter_at(url: &str, options: Value) -> Arc<dyn Adapter> {
    build(Kind::Zenoss, &settings(url, options)).expect("build")
}

fn event() -> MonitorRef {
    MonitorRef::ZenossEvent { evid: EVID.into() }
}

/// Zenoss' router as its code reads a request: basic auth or the login page, POST to
/// /zport/dmd/evconsole_router, an Ext.Direct call of EventsRouter with one argument object.
fn check_envelope(req: &Seen) -> Option<Reply> {
    if req.header("authorization") != Some(BASIC) {
        return Some(Reply::html(200, &fixture("zenoss/login.html")));
    }
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/zport/dmd/evconsole_router");
    assert!(
        req.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        req.header("content-type")
    );
    let body = req.json();
    assert_eq!(body["action"], "EventsRouter");
    assert_eq!(body["type"], "rpc");
    assert!(body["tid"].is_u64(), "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    None
}

fn zenoss_ok(req: &Seen) -> Reply {
    if let Some(r) = check_envelope(req) {
        return r;
    }
    match req.json()["method"].as_str() {
        Some("write_log") => Reply::json_text(200, &fixture("zenoss/ok-write-log.json")),
        _ => Reply::json_text(200, &fixture("zenoss/ok-update.json")),
    }
}

async fn apply(url: &str, options: Value, action: Action) -> Result<Applied, WriteError> {
    changes::apply(&*adapter_at(url, options), &event(), &change(action)).await
}

fn calls(server: &Recorder) -> Vec<(String, Value)> {
    server
        .seen()
        .iter()
        .map(|s| {
            let b = s.json();
            (
                b["method"].as_str().unwrap_or("").to_string(),
                b["data"][0].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn state_changes_are_followed_by_a_log_line_with_the_link() {
    let log = json!({
        "evid": EVID,
        "message": "acknowledge by Jane Doe in PagerDuty (https://acme.pagerduty.com/incidents/Q1ABC)"
    });
    for (action, method) in [
        (Action::Acknowledge, "acknowledge"),
        (Action::Unacknowledge, "reopen"),
        (Action::Resolve, "close"),
    ] {
        let server = Recorder::start(zenoss_ok).await;
        let applied = apply(&server.url(), Value::Null, action)
            .await
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        assert!(applied.detail.contains(method), "{}", applied.detail);
        let mut expected_log = log.clone();
        expected_log["message"] = json!(format!(
            "{} by Jane Doe in PagerDuty (https://acme.pagerduty.com/incidents/Q1ABC)",
            action.as_str()
        ));
        assert_eq!(
            calls(&server),
            vec![
                (method.to_string(), json!({"evids": [EVID]})),
                ("write_log".to_string(), expected_log),
            ],
            "{action:?}"
        );
        let tids: Vec<u64> = server
            .seen()
            .iter()
            .map(|s| s.json()["tid"].as_u64().unwrap())
            .collect();
        assert_ne!(tids[0], tids[1], "each call has its own tid");
    }
}

#[tokio::test]
async fn a_comment_is_one_write_log() {
    let server = Recorder::start(zenoss_ok).await;
    apply(&server.url(), Value::Null, Action::Comment)
        .await
        .expect("applied");
    assert_eq!(
        calls(&server),
        vec![(
            "write_log".to_string(),
            json!({"evid": EVID, "message": "comment by Jane Doe in PagerDuty (https://acme.pagerduty.com/incidents/Q1ABC)"})
        )]
    );
}

#[tokio::test]
async fn options_choose_the_unacknowledge_method_and_turn_the_log_line_off() {
    let server = Recorder::start(zenoss_ok).await;
    apply(
        &server.url(),
        json!({"unacknowledge_method": "unacknowledge", "log_state_changes": false}),
        Action::Unacknowledge,
    )
    .await
    .expect("applied");
    assert_eq!(
        calls(&server),
        vec![("unacknowledge".to_string(), json!({"evids": [EVID]}))]
    );
}

#[tokio::test]
async fn success_false_is_a_final_error_with_zenoss_message() {
    let server = Recorder::start(|req: &Seen| {
        check_envelope(req)
            .unwrap_or_else(|| Reply::json_text(200, &fixture("zenoss/fail-no-event.json")))
    })
    .await;
    let e = apply(&server.url(), Value::Null, Action::Comment)
        .await
        .expect_err("success false");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("Could not find event"), "{e}");
}

#[tokio::test]
async fn zep_unreachable_is_retried() {
    let server = Recorder::start(|req: &Seen| {
        check_envelope(req)
            .unwrap_or_else(|| Reply::json_text(200, &fixture("zenoss/fail-zep-down.json")))
    })
    .await;
    let e = apply(&server.url(), Value::Null, Action::Acknowledge)
        .await
        .expect_err("ZEP down");
    assert!(e.retry, "{e}");
    assert_eq!(
        server.seen().len(),
        1,
        "no log line after a failed state change"
    );
}

#[tokio::test]
async fn refused_credentials_show_the_login_page_and_are_final() {
    // Straight answer with the login page.
    let server = Recorder::start(zenoss_ok).await;
    let mut s = settings(&server.url(), Value::Null);
    s.password = Some("wrong".into());
    let adapter = build(Kind::Zenoss, &s).expect("build");
    let c = change(Action::Acknowledge);
    let e = changes::apply(&*adapter, &event(), &c)
        .await
        .expect_err("login page");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("login page"), "{e}");
    assert!(e.message.contains("username and password"), "{e}");

    // A redirect to the login form, which the client follows.
    let server = Recorder::start(|req: &Seen| {
        if req
            .path
            .starts_with("/zport/acl_users/cookieAuthHelper/login_form")
        {
            return Reply::html(200, &fixture("zenoss/login.html"));
        }
        Reply::empty(302).header(
            "location",
            "/zport/acl_users/cookieAuthHelper/login_form?came_from=/zport/dmd/evconsole_router",
        )
    })
    .await;
    let e = apply(&server.url(), Value::Null, Action::Acknowledge)
        .await
        .expect_err("redirected to the login page");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("login page"), "{e}");

    // A plain 401.
    let server = Recorder::start(|_: &Seen| Reply::empty(401)).await;
    let e = apply(&server.url(), Value::Null, Action::Acknowledge)
        .await
        .expect_err("401");
    assert!(
        !e.retry && e.message.contains("username and password"),
        "{e}"
    );
}

#[tokio::test]
async fn a_log_line_failing_after_the_state_change() {
    // Retryable: the whole change is retried (the state change again is harmless).
    let fail_log = Arc::new(AtomicBool::new(true));
    let flag = fail_log.clone();
    let server = Recorder::start(move |req: &Seen| {
        if let Some(r) = check_envelope(req) {
            return r;
        }
        if req.json()["method"] == "write_log" && flag.load(Ordering::SeqCst) {
            return Reply::html(503, "<html>Service Unavailable</html>");
        }
        zenoss_ok(req)
    })
    .await;
    let e = apply(&server.url(), Value::Null, Action::Resolve)
        .await
        .expect_err("log line failed");
    assert!(e.retry, "{e}");
    assert!(e.message.contains("close of event"), "{e}");
    assert_eq!(calls(&server).len(), 2);

    // Final: the change was made, so the call succeeds and says the line is missing.
    let server = Recorder::start(|req: &Seen| {
        if let Some(r) = check_envelope(req) {
            return r;
        }
        if req.json()["method"] == "write_log" {
            return Reply::json_text(200, &fixture("zenoss/fail-no-event.json"));
        }
        zenoss_ok(req)
    })
    .await;
    let applied = apply(&server.url(), Value::Null, Action::Acknowledge)
        .await
        .expect("the acknowledgement was made");
    assert!(
        applied.detail.contains("log line was refused"),
        "{}",
        applied.detail
    );
    assert!(applied.memo.is_some());
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_retried() {
    let server =
        Recorder::start(|_: &Seen| Reply::html(500, "<html>Internal Server Error</html>")).await;
    let e = apply(&server.url(), Value::Null, Action::Acknowledge)
        .await
        .expect_err("500");
    assert!(e.retry, "{e}");
    let e = apply(&refused_url().await, Value::Null, Action::Acknowledge)
        .await
        .expect_err("refused");
    assert!(e.retry, "{e}");
}

#[tokio::test]
async fn a_change_the_memo_says_was_done_is_not_sent_again() {
    let server = Recorder::start(zenoss_ok).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let target = event();
    let c = change(Action::Comment);
    let first = changes::apply(&*adapter, &target, &c).await.expect("first");
    let memo = first.memo.expect("memo");
    assert_eq!(
        memo,
        json!({"last_applied": "comment:Q1ABC:2026-11-21T08:15:00Z"})
    );
    let again = apply_memo(&*adapter, &target, &c, Some(&memo))
        .await
        .expect("again");
    assert!(again.detail.contains("already done"), "{}", again.detail);
    assert_eq!(server.seen().len(), 1, "no second log line");
}

#[tokio::test]
async fn another_monitors_reference_is_a_final_error() {
    let adapter = adapter_at("http://127.0.0.1:9", Value::Null);
    let c = change(Action::Acknowledge);
    let target = MonitorRef::CentreonIds {
        host_id: 1,
        service_id: None,
    };
    let e = changes::apply(&*adapter, &target, &c)
        .await
        .expect_err("wrong ref");
    assert!(!e.retry);
    assert!(
        e.message.contains("zenoss_event") && e.message.contains("centreon_ids"),
        "{e}"
    );
}

#[test]
fn build_names_the_bad_setting() {
    let field = |s: Settings| refused(Kind::Zenoss, &s).field;
    let ok = settings("https://zenoss.example.com", Value::Null);
    changes::assert_url_is_checked(Kind::Zenoss, &ok, "file:///tmp/x");
    assert_eq!(
        field(Settings {
            username: None,
            ..ok.clone()
        }),
        "username"
    );
    assert_eq!(
        field(Settings {
            password: None,
            ..ok.clone()
        }),
        "password"
    );
    assert_eq!(
        field(settings(
            "https://z.example.com",
            json!({"unacknowledge_method": "undo"})
        )),
        "options.unacknowledge_method"
    );
    assert_eq!(
        field(settings(
            "https://z.example.com",
            json!({"log_state_changes": "yes"})
        )),
        "options.log_state_changes"
    );
    let e = refused(
        Kind::Zenoss,
        &settings("https://z.example.com", json!({"auth": "body"})),
    );
    assert_eq!(e.field, "options.auth");
    assert_eq!(
        e.message,
        "unknown option; Zenoss takes unacknowledge_method, log_state_changes"
    );
}
