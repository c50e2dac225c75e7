//! The Zabbix adapter against a stand-in for Zabbix's JSON-RPC endpoint that checks each
//! request as Zabbix's `event.acknowledge` documentation describes it and answers with the
//! documented shapes (tests/fixtures/zabbix/).

#[path = "common/changes.rs"]
mod changes;
#[path = "common/recorder.rs"]
mod recorder;

use changes::{apply, apply_memo, change, refused, zabbix_event as event};
use pagerbridge_model::MonitorRef;
use std::sync::Arc;

use pagerbridge_sync::writeback::{Action, Adapter, Kind, Settings, WriteError, build};
use recorder::{Recorder, Reply, Seen, fixture, refused_url};
use serde_json::{Value, json};

const TOKEN: &str = "b03a7d0f6c9e4d1a8e2f3c4b5a697887f1e2d3c4b5a6978877665544332211aa";

fn settings(url: &str, options: Value) -> Settings {
    Settings {
        token: Some(TOKEN.into()),
        ..changes::settings(url, options)
    }
}

fn adapter_at(url: &str, options: Value) -> Arc<dyn Adapter> {
    build(Kind::Zabbix, &settings(url, options)).expect("build")
}

/// Zabbix as documented: POST to api_jsonrpc.php, a JSON-RPC 2.0 call of event.acknowledge,
/// the token as a bearer header; anything else gets the error Zabbix would give.
fn strict_zabbix(path: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |req: &Seen| {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, path);
        assert_eq!(req.header("content-type"), Some("application/json-rpc"));
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Reply::json_text(200, &fixture("zabbix/error-not-authorized.json"));
        }
        let body = req.json();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["method"], "event.acknowledge");
        assert!(body["id"].is_u64(), "id: {body}");
        Reply::json_text(200, &fixture("zabbix/acknowledge-ok.json"))
    }
}

#[tokio::test]
async fn each_action_sends_its_documented_bitmask_and_message() {
    let server = Recorder::start(strict_zabbix("/zabbix/api_jsonrpc.php")).await;
    let adapter = adapter_at(&format!("{}/zabbix", server.url()), Value::Null);
    let target = event();
    let cases = [
        (Action::Acknowledge, 6),
        (Action::Unacknowledge, 20),
        (Action::Comment, 4),
        (Action::Resolve, 5),
    ];
    for (action, bits) in cases {
        let c = change(action);
        let applied = apply(&*adapter, &target, &c)
            .await
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        assert!(applied.detail.contains("5021"), "{}", applied.detail);
        assert_eq!(
            applied.memo,
            Some(
                json!({"last_applied": format!("{}:Q1ABC:2026-11-21T08:15:00Z", action.as_str())})
            )
        );
        let seen = server.seen();
        let params = &seen.last().expect("a request").json()["params"];
        assert_eq!(
            params,
            &json!({"eventids": ["5021"], "action": bits, "message": c.comment}),
            "{action:?}"
        );
        assert!(seen.last().unwrap().json().get("auth").is_none());
    }
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn body_auth_puts_the_token_in_the_request_for_older_zabbix() {
    let server = Recorder::start(|req: &Seen| {
        assert!(
            req.header("authorization").is_none(),
            "no header in body mode"
        );
        if req.json()["auth"] != TOKEN {
            return Reply::json_text(200, &fixture("zabbix/error-session-terminated.json"));
        }
        Reply::json_text(200, &fixture("zabbix/acknowledge-ok.json"))
    })
    .await;
    let adapter = adapter_at(&server.url(), json!({"auth": "body"}));
    let c = change(Action::Acknowledge);
    apply(&*adapter, &event(), &c).await.expect("applied");
    assert_eq!(server.seen()[0].path, "/api_jsonrpc.php");
}

async fn error_for(fixture_name: &str, action: Action) -> WriteError {
    let body = fixture(&format!("zabbix/{fixture_name}"));
    let server = Recorder::start(move |_: &Seen| Reply::json_text(200, &body)).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let c = change(action);
    apply(&*adapter, &event(), &c)
        .await
        .expect_err("Zabbix answered an error")
}

#[tokio::test]
async fn json_rpc_errors_are_classified() {
    let e = error_for("error-manual-close.json", Action::Resolve).await;
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("does not allow manual clos"), "{e}");
    assert!(
        e.message.contains("Allow manual close"),
        "says what to do: {e}"
    );

    let e = error_for("error-not-authorized.json", Action::Acknowledge).await;
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("token was refused"), "{e}");

    let e = error_for("error-session-terminated.json", Action::Acknowledge).await;
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("token was refused"), "{e}");

    let e = error_for("error-no-permissions.json", Action::Comment).await;
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("No permissions"), "{e}");

    let e = error_for("error-sql.json", Action::Acknowledge).await;
    assert!(e.retry, "a database failure may pass: {e}");
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_retried() {
    let server = Recorder::start(|_: &Seen| Reply::html(502, "<html>Bad Gateway</html>")).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let c = change(Action::Acknowledge);
    let e = apply(&*adapter, &event(), &c).await.expect_err("502");
    assert!(e.retry, "{e}");
    assert!(e.message.contains("502"), "{e}");

    let adapter = adapter_at(&refused_url().await, Value::Null);
    let e = apply(&*adapter, &event(), &c).await.expect_err("refused");
    assert!(e.retry, "{e}");
}

#[tokio::test]
async fn a_page_that_is_not_json_rpc_is_final_and_says_to_check_the_url() {
    let server = Recorder::start(|_: &Seen| {
        Reply::html(
            200,
            "<!DOCTYPE html><html><title>Zabbix</title><form>Sign in</form></html>",
        )
    })
    .await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let c = change(Action::Acknowledge);
    let e = apply(&*adapter, &event(), &c).await.expect_err("HTML");
    assert!(!e.retry, "{e}");
    assert!(e.message.contains("not JSON-RPC"), "{e}");
}

#[tokio::test]
async fn a_change_the_memo_says_was_done_is_not_sent_again() {
    let server = Recorder::start(strict_zabbix("/api_jsonrpc.php")).await;
    let adapter = adapter_at(&server.url(), Value::Null);
    let target = event();
    let c = change(Action::Acknowledge);
    let first = apply(&*adapter, &target, &c).await.expect("first");
    let memo = first.memo.expect("memo");
    let again = apply_memo(&*adapter, &target, &c, Some(&memo))
        .await
        .expect("again");
    assert_eq!(again.memo, None, "the old memo stays");
    assert!(again.detail.contains("already done"), "{}", again.detail);
    assert_eq!(server.seen().len(), 1, "nothing sent the second time");

    // A later change of the same incident is sent.
    let mut later = change(Action::Comment);
    later.at = "2026-11-21T08:20:00Z".parse().unwrap();
    apply_memo(&*adapter, &target, &later, Some(&memo))
        .await
        .expect("later");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn long_comments_are_cut_to_max_message() {
    let server = Recorder::start(strict_zabbix("/api_jsonrpc.php")).await;
    let adapter = adapter_at(&server.url(), json!({"max_message": 10}));
    let mut c = change(Action::Comment);
    c.comment = "é".repeat(50);
    apply(&*adapter, &event(), &c).await.expect("applied");
    assert_eq!(server.seen()[0].json()["params"]["message"], "é".repeat(10));
}

#[tokio::test]
async fn another_monitors_reference_is_a_final_error_naming_the_expected_one() {
    let adapter = adapter_at("http://127.0.0.1:9/", Value::Null);
    let c = change(Action::Acknowledge);
    let target = MonitorRef::ZenossEvent { evid: "abc".into() };
    let e = apply(&*adapter, &target, &c).await.expect_err("wrong ref");
    assert!(!e.retry);
    assert!(e.message.contains("zabbix_event"), "{e}");
    assert!(e.message.contains("zenoss_event"), "{e}");
}

#[test]
fn build_names_the_bad_setting() {
    let field = |s: Settings| refused(Kind::Zabbix, &s).field;
    let ok = settings("https://zabbix.example.com", Value::Null);
    changes::assert_url_is_checked(Kind::Zabbix, &ok, "ftp://zabbix.example.com");
    assert_eq!(
        field(Settings {
            token: None,
            ..ok.clone()
        }),
        "token"
    );
    assert_eq!(
        field(Settings {
            token: Some("  ".into()),
            ..ok.clone()
        }),
        "token"
    );
    assert_eq!(
        field(settings("https://z.example.com", json!({"auth": "cookie"}))),
        "options.auth"
    );
    assert_eq!(
        field(settings("https://z.example.com", json!({"max_message": 0}))),
        "options.max_message"
    );
    let e = refused(
        Kind::Zabbix,
        &settings("https://z.example.com", json!({"sticky": true})),
    );
    assert_eq!(e.field, "options.sticky");
    assert_eq!(e.message, "unknown option; Zabbix takes auth, max_message");
    assert_eq!(
        field(settings("https://z.example.com", json!([1]))),
        "options"
    );
}
