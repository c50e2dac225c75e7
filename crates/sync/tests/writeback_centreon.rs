//! The Centreon adapter against a stand-in for Centreon's REST API v2 that hands out session
//! tokens at /login, checks X-AUTH-TOKEN and the documented paths and bodies, and answers with
//! Centreon's shapes (tests/fixtures/centreon/).

#[path = "common/changes.rs"]
mod changes;
#[path = "common/recorder.rs"]
mod recorder;

use std::sync::{Arc, Mutex};

use changes::{PASSWORD, USER, apply, apply_memo, change, login_settings as settings, refused};
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{Action, Adapter, Applied, Kind, Settings, WriteError, build};
use recorder::{Recorder, Reply, Seen, fixture, refused_url};
use serde_json::{Value, json};

const API: &str = "/centreon/api/latest";

fn adapter_at(url: &str, options: Value) -> Arc<dyn Adapter> {
    build(Kind::Centreon, &settings(url, options)).expect("build")
}

fn service() -> MonitorRef {
    MonitorRef::CentreonIds {
        host_id: 12,
        service_id: Some(34),
    }
}

fn host() -> MonitorRef {
    MonitorRef::CentreonIds {
        host_id: 12,
        service_id: None,
    }
}

/// Centreon: tokens from /login (one per login, numbered), only the latest valid; `expire`
/// makes the server forget the tokens it gave once, as when a session times out.
#[derive(Default)]
struct State {
    logins: usize,
    valid: Option<String>,
    expire_once: bool,
}

fn centreon(state: Arc<Mutex<State>>, answer: Reply) -> impl Fn(&Seen) -> Reply + Send + Sync {
    move |req: &Seen| {
        let mut st = state.lock().unwrap();
        if req.path == format!("{API}/login") {
            assert_eq!(req.method, "POST");
            let body = req.json();
            if body != json!({"security": {"credentials": {"login": USER, "password": PASSWORD}}}) {
                return Reply::json_text(401, &fixture("centreon/login-refused.json"));
            }
            st.logins += 1;
            let token = format!("token-{}", st.logins);
            st.valid = Some(token.clone());
            let mut ok: Value = serde_json::from_str(&fixture("centreon/login-ok.json")).unwrap();
            ok["security"]["token"] = json!(token);
            return Reply::json(200, &ok);
        }
        if st.expire_once {
            st.expire_once = false;
            st.valid = None;
        }
        if req.header("x-auth-token").is_none() || req.header("x-auth-token") != st.valid.as_deref()
        {
            return Reply::json_text(401, &fixture("centreon/unauthorized.json"));
        }
        answer.clone()
    }
}

async fn apply_to(
    adapter: &Arc<dyn Adapter>,
    target: &MonitorRef,
    action: Action,
) -> Result<Applied, WriteError> {
    apply(&**adapter, target, &change(action)).await
}

#[tokio::test]
async fn acknowledge_unacknowledge_and_comment_use_the_documented_requests() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(state.clone(), Reply::empty(204))).await;
    let adapter = adapter_at(&server.url(), Value::Null);

    apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect("ack service");
    apply_to(&adapter, &host(), Action::Acknowledge)
        .await
        .expect("ack host");
    apply_to(&adapter, &service(), Action::Unacknowledge)
        .await
        .expect("unack");
    apply_to(&adapter, &service(), Action::Comment)
        .await
        .expect("comment service");
    apply_to(&adapter, &host(), Action::Comment)
        .await
        .expect("comment host");

    let seen = server.seen();
    assert_eq!(
        state.lock().unwrap().logins,
        1,
        "the token is kept between calls"
    );
    let calls: Vec<(String, String)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("POST".into(), format!("{API}/login")),
            (
                "POST".into(),
                format!("{API}/monitoring/hosts/12/services/34/acknowledgements")
            ),
            (
                "POST".into(),
                format!("{API}/monitoring/hosts/12/acknowledgements")
            ),
            (
                "DELETE".into(),
                format!("{API}/monitoring/hosts/12/services/34/acknowledgements")
            ),
            (
                "POST".into(),
                format!("{API}/monitoring/resources/comments")
            ),
            (
                "POST".into(),
                format!("{API}/monitoring/resources/comments")
            ),
        ]
    );
    for s in &seen[1..] {
        assert_eq!(s.header("x-auth-token"), Some("token-1"));
    }
    let ack = "acknowledge by Jane Doe in PagerDuty: https://acme.pagerduty.com/incidents/Q1ABC";
    assert_eq!(
        seen[1].json(),
        json!({"comment": ack, "is_notify_contacts": false, "is_persistent_comment": true, "is_sticky": true}),
        "no with_services on a service: Centreon refuses it there"
    );
    assert_eq!(
        seen[2].json(),
        json!({"comment": ack, "is_notify_contacts": false, "is_persistent_comment": true, "is_sticky": true, "with_services": true})
    );
    assert!(seen[3].body.is_empty());
    let comment = "comment by Jane Doe in PagerDuty: https://acme.pagerduty.com/incidents/Q1ABC";
    assert_eq!(
        seen[4].json(),
        json!({"resources": [{"type": "service", "id": 34, "parent": {"id": 12}, "comment": comment, "date": "2026-11-21T08:15:00Z"}]})
    );
    assert_eq!(
        seen[5].json(),
        json!({"resources": [{"type": "host", "id": 12, "parent": null, "comment": comment, "date": "2026-11-21T08:15:00Z"}]})
    );
}

#[tokio::test]
async fn options_set_the_acknowledgement_flags_and_the_api_path() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(move |req: &Seen| {
        // The same Centreon, mounted at the API's root.
        let mut req = req.clone();
        req.path = format!("{API}{}", req.path.trim_start_matches("/api/v23.10"));
        centreon(state.clone(), Reply::empty(204))(&req)
    })
    .await;
    let adapter = adapter_at(
        &server.url(),
        json!({"api_path": "/api/v23.10", "sticky": false, "notify": true, "persistent": false, "with_services": false}),
    );
    apply_to(&adapter, &host(), Action::Acknowledge)
        .await
        .expect("ack");
    let seen = server.seen();
    assert_eq!(seen[0].path, "/api/v23.10/login");
    assert_eq!(
        seen[1].path,
        "/api/v23.10/monitoring/hosts/12/acknowledgements"
    );
    let body = seen[1].json();
    assert_eq!(body["is_sticky"], false);
    assert_eq!(body["is_notify_contacts"], true);
    assert_eq!(body["is_persistent_comment"], false);
    assert_eq!(body["with_services"], false);
}

#[tokio::test]
async fn an_expired_token_means_one_new_login_and_the_request_again() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(state.clone(), Reply::empty(204))).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect("first");
    state.lock().unwrap().expire_once = true;
    apply_to(&adapter, &service(), Action::Comment)
        .await
        .expect("after a new login");
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/centreon/api/latest/login",
            "/centreon/api/latest/monitoring/hosts/12/services/34/acknowledgements",
            "/centreon/api/latest/monitoring/resources/comments",
            "/centreon/api/latest/login",
            "/centreon/api/latest/monitoring/resources/comments",
        ]
    );
    assert_eq!(seen[2].header("x-auth-token"), Some("token-1"));
    assert_eq!(seen[4].header("x-auth-token"), Some("token-2"));
}

#[tokio::test]
async fn a_request_refused_after_a_fresh_login_is_final_and_not_looped() {
    let state = Arc::new(Mutex::new(State::default()));
    let logins = state.clone();
    let server = Recorder::start(move |req: &Seen| {
        if req.path.ends_with("/login") {
            return centreon(logins.clone(), Reply::empty(204))(req);
        }
        Reply::json(
            403,
            &json!({"code": 403, "message": "You are not allowed to acknowledge"}),
        )
    })
    .await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("403");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("lacks the rights"), "{e}");
    assert_eq!(
        server.seen().len(),
        2,
        "one login, one request: no second login right after the first"
    );
}

#[tokio::test]
async fn refused_credentials_at_login_are_final() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(state, Reply::empty(204))).await;
    let mut s = settings(&server.url(), Value::Null);
    s.password = Some("wrong".into());
    let adapter = build(Kind::Centreon, &s).expect("build");
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("login refused");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("refused username and password"), "{e}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn an_api_token_is_sent_as_is_without_login() {
    let server = Recorder::start(|req: &Seen| {
        assert!(!req.path.ends_with("/login"), "no login with an API token");
        if req.header("x-auth-token") == Some("api-token-1") {
            Reply::empty(204)
        } else {
            Reply::json_text(401, &fixture("centreon/unauthorized.json"))
        }
    })
    .await;
    let mut s = settings(&server.url(), Value::Null);
    s.username = None;
    s.password = None;
    s.token = Some("api-token-1".into());
    let adapter = build(Kind::Centreon, &s).expect("build");
    apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect("ack");

    s.token = Some("revoked".into());
    let adapter = build(Kind::Centreon, &s).expect("build");
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("401");
    assert!(!e.retry && e.message.contains("API token"), "{e}");
}

#[tokio::test]
async fn centreon_errors_and_outages_are_classified() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(
        state,
        Reply::json_text(404, &fixture("centreon/not-found.json")),
    ))
    .await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("404");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("Service not found"), "{e}");
    // Cancelling an acknowledgement that is gone is what was wanted.
    let applied = apply_to(&adapter, &service(), Action::Unacknowledge)
        .await
        .expect("404 on DELETE");
    assert!(
        applied.detail.contains("no acknowledgement"),
        "{}",
        applied.detail
    );

    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(
        state,
        Reply::html(503, "<html>Service Unavailable</html>"),
    ))
    .await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("503");
    assert!(e.retry, "{e}");

    let adapter = adapter_at(&refused_url().await, Value::Null);
    let e = apply_to(&adapter, &service(), Action::Acknowledge)
        .await
        .expect_err("refused");
    assert!(e.retry, "{e}");
}

#[tokio::test]
async fn resolve_and_other_monitors_references_are_final_without_a_request() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(state, Reply::empty(204))).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let e = apply_to(&adapter, &service(), Action::Resolve)
        .await
        .expect_err("resolve");
    assert!(!e.retry && e.message.contains("no manual resolve"), "{e}");
    let e = apply_to(
        &adapter,
        &MonitorRef::ZabbixEvent {
            event_id: "1".into(),
            trigger_id: None,
        },
        Action::Acknowledge,
    )
    .await
    .expect_err("wrong ref");
    assert!(
        !e.retry && e.message.contains("centreon_ids") && e.message.contains("zabbix_event"),
        "{e}"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_change_the_memo_says_was_done_is_not_sent_again() {
    let state = Arc::new(Mutex::new(State::default()));
    let server = Recorder::start(centreon(state, Reply::empty(204))).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let target = service();
    let c = change(Action::Comment);
    let first = apply(&*adapter, &target, &c).await.expect("first");
    let memo = first.memo.expect("memo");
    let again = apply_memo(&*adapter, &target, &c, Some(&memo))
        .await
        .expect("again");
    assert!(again.detail.contains("already done"), "{}", again.detail);
    assert_eq!(server.seen().len(), 2, "login and one comment only");
}

#[test]
fn build_names_the_bad_setting() {
    let field = |s: Settings| refused(Kind::Centreon, &s).field;
    let ok = settings("https://centreon.example.com", Value::Null);
    changes::assert_url_is_checked(Kind::Centreon, &ok, "ftp://c.example.com");
    assert_eq!(
        field(Settings {
            username: None,
            password: None,
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
    assert!(
        build(
            Kind::Centreon,
            &Settings {
                username: None,
                password: None,
                token: Some("t".into()),
                ..ok.clone()
            }
        )
        .is_ok()
    );
    assert_eq!(
        field(settings("https://c.example.com", json!({"sticky": "yes"}))),
        "options.sticky"
    );
    assert_eq!(
        field(settings(
            "https://c.example.com",
            json!({"api_path": "api"})
        )),
        "options.api_path"
    );
    let e = refused(
        Kind::Centreon,
        &settings("https://c.example.com", json!({"hmac_secret": "x"})),
    );
    assert_eq!(e.field, "options.hmac_secret");
    assert_eq!(
        e.message,
        "unknown option; Centreon takes api_path, sticky, notify, persistent, with_services"
    );
}
