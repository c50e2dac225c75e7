//! The icinga2 write-back adapter against a real Icinga 2 (Debian's `icinga2`) on 127.0.0.1:
//! what the adapter does is read back through Icinga's own API (the service's
//! `acknowledgement` attributes and `/v1/objects/comments`).
//!
//! Needs root and the package; prints SKIPPED and passes where it cannot have them.

#[path = "common/changes.rs"]
mod changes;

use changes::{apply, change_now};
use jiff::{SignedDuration, Timestamp};
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{self, Action, Change, Kind, Settings};
use pagerbridge_testkit::debian;
use pagerbridge_testkit::monitors::icinga2::{API_PASSWORD, API_USER, Icinga2};
use pagerbridge_testkit::monitors::monitor_dir;
use serde_json::{Value, json};

const HOST: &str = "db1";
const SERVICE: &str = "disk";
/// A name that would end the string and widen the filter if pasted into it.
const QUOTED: &str = r#"disk" || service.name == "other"#;
const OTHER: &str = "other";

fn objects() -> String {
    let service = |name: &str| {
        format!(
            "object Service {name:?} {{\n  host_name = \"{HOST}\"\n  check_command = \"dummy\"\n  \
             enable_active_checks = false\n  max_check_attempts = 1\n}}\n"
        )
    };
    format!(
        "object Host \"{HOST}\" {{\n  address = \"127.0.0.1\"\n  check_command = \"dummy\"\n  \
         enable_active_checks = false\n  max_check_attempts = 1\n}}\n{}{}{}",
        service(SERVICE),
        service(QUOTED),
        service(OTHER)
    )
}

/// Icinga 2 with the objects, or None after printing SKIPPED.
async fn icinga(dir: &std::path::Path) -> Option<Icinga2> {
    if let Err(why) = debian::require_root() {
        debian::skipped(&why);
        return None;
    }
    let program = debian::installed_or_skip("icinga2", &["icinga2"])?;
    match Icinga2::start(&program, dir, &objects(), &[]).await {
        Ok(i) => Some(i),
        Err(why) => {
            debian::skipped(&why);
            None
        }
    }
}

fn settings(icinga: &Icinga2, password: &str, options: Value) -> Settings {
    Settings {
        username: Some(API_USER.into()),
        password: Some(password.into()),
        // Icinga's own CA: the adapter checks the certificate.
        ca_file: Some(icinga.ca_file.clone()),
        ..changes::settings(&icinga.url, options)
    }
}

fn target(service: Option<&str>) -> MonitorRef {
    changes::object(HOST, service)
}

fn change(action: Action, author: &str, comment: &str, expires_at: Option<Timestamp>) -> Change {
    Change {
        incident_url: Some("https://example.pagerduty.com/incidents/Q1TEST".into()),
        expires_at,
        ..change_now(action, author, comment)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_remove_and_comment_show_up_in_icinga() {
    let tmp = monitor_dir();
    let Some(icinga) = icinga(tmp.path()).await else {
        return;
    };
    let report = || icinga.proc.log_tail(30);
    let adapter = writeback::build(Kind::Icinga2, &settings(&icinga, API_PASSWORD, Value::Null))
        .expect("settings are valid");
    let svc = target(Some(SERVICE));

    icinga
        .check_result(HOST, Some(SERVICE), 2, "DISK CRITICAL - 5% free")
        .await;
    let expires = Timestamp::now() + SignedDuration::from_hours(2);
    let ack = change(
        Action::Acknowledge,
        "Alice Example",
        "Acknowledged in PagerDuty: https://example.pagerduty.com/incidents/Q1TEST",
        Some(expires),
    );
    let applied = apply(&*adapter, &svc, &ack)
        .await
        .unwrap_or_else(|e| panic!("acknowledge: {e}\n{}", report()));
    assert_eq!(applied.memo, None);

    let attrs = icinga.service_attrs(HOST, SERVICE).await;
    assert_eq!(
        attrs["acknowledgement"], 1.0,
        "a normal (not sticky) acknowledgement: {attrs}"
    );
    assert_eq!(
        attrs["acknowledgement_expiry"].as_f64(),
        Some(expires.as_second() as f64),
        "expiry: {attrs}"
    );
    let comments = icinga.comments().await;
    let ack_comment = comments
        .iter()
        .find(|c| c["service_name"] == SERVICE && c["entry_type"] == 4.0)
        .unwrap_or_else(|| panic!("an acknowledgement comment: {comments:?}"));
    assert_eq!(ack_comment["author"], ack.author);
    assert_eq!(ack_comment["text"], ack.comment);
    assert_eq!(ack_comment["host_name"], HOST);

    // A retry of the same acknowledgement (Icinga: 409 already acknowledged) is done.
    let again = apply(&*adapter, &svc, &ack)
        .await
        .unwrap_or_else(|e| panic!("acknowledging again: {e}"));
    assert!(
        again.detail.contains("already acknowledged"),
        "{}",
        again.detail
    );

    // The other services were left alone.
    for other in [QUOTED, OTHER] {
        let a = icinga.service_attrs(HOST, other).await;
        assert_eq!(a["acknowledgement"], 0.0, "{other}: {a}");
    }

    apply(
        &*adapter,
        &svc,
        &change(Action::Unacknowledge, "Bob", "unack", None),
    )
    .await
    .unwrap_or_else(|e| panic!("remove-acknowledgement: {e}\n{}", report()));
    let attrs = icinga.service_attrs(HOST, SERVICE).await;
    assert_eq!(
        attrs["acknowledgement"], 0.0,
        "acknowledgement removed: {attrs}"
    );
    let comments = icinga.comments().await;
    assert!(
        !comments.iter().any(|c| c["entry_type"] == 4.0),
        "the acknowledgement's comment went with it: {comments:?}"
    );

    let note = change(
        Action::Comment,
        "Carol",
        "Resolved in PagerDuty by Carol; the check decides when it recovers",
        None,
    );
    apply(&*adapter, &svc, &note)
        .await
        .unwrap_or_else(|e| panic!("add-comment: {e}\n{}", report()));
    let comments = icinga.comments().await;
    let user_comments: Vec<&Value> = comments.iter().filter(|c| c["entry_type"] == 1.0).collect();
    assert_eq!(user_comments.len(), 1, "one user comment: {comments:?}");
    assert_eq!(user_comments[0]["author"], "Carol");
    assert_eq!(user_comments[0]["text"], note.comment);
    assert_eq!(user_comments[0]["service_name"], SERVICE);

    // A host problem: the host's own acknowledgement.
    icinga.check_result(HOST, None, 1, "PING CRITICAL").await;
    apply(&*adapter, &target(None), &ack)
        .await
        .unwrap_or_else(|e| panic!("acknowledging the host: {e}\n{}", report()));
    let host = icinga.get(&format!("/objects/hosts/{HOST}")).await;
    assert_eq!(
        host["results"][0]["attrs"]["acknowledgement"], 1.0,
        "{host}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_matched_exactly_and_problems_are_classified() {
    let tmp = monitor_dir();
    let Some(icinga) = icinga(tmp.path()).await else {
        return;
    };
    let adapter = writeback::build(
        Kind::Icinga2,
        &settings(&icinga, API_PASSWORD, json!({"sticky": true})),
    )
    .expect("settings are valid");
    let ack = change(Action::Acknowledge, "Alice", "on it", None);

    // Both fail; only the one named acknowledged, although its name reads like a wider
    // filter.
    for s in [QUOTED, OTHER] {
        icinga.check_result(HOST, Some(s), 2, "CRITICAL").await;
    }
    apply(&*adapter, &target(Some(QUOTED)), &ack)
        .await
        .unwrap_or_else(|e| panic!("acknowledge {QUOTED:?}: {e}"));
    assert_eq!(
        icinga.service_attrs(HOST, QUOTED).await["acknowledgement"],
        2.0,
        "sticky"
    );
    assert_eq!(
        icinga.service_attrs(HOST, OTHER).await["acknowledgement"],
        0.0,
        "the other service is not acknowledged"
    );

    // An unknown service: final, and the message names it.
    let e = apply(&*adapter, &target(Some("nope")), &ack)
        .await
        .expect_err("no such service");
    assert!(!e.retry, "{e:?}");
    assert!(e.message.contains("db1!nope"), "{e:?}");
    assert!(e.message.contains("no object matches"), "{e:?}");

    // A service that is OK has nothing to acknowledge: final.
    icinga.check_result(HOST, Some(SERVICE), 0, "DISK OK").await;
    let e = apply(&*adapter, &target(Some(SERVICE)), &ack)
        .await
        .expect_err("the service is OK");
    assert!(!e.retry, "{e:?}");
    assert!(e.message.contains("db1!disk"), "{e:?}");
    assert!(e.message.contains("not in a problem state"), "{e:?}");

    let e = apply(
        &*adapter,
        &target(Some(OTHER)),
        &change(Action::Resolve, "a", "b", None),
    )
    .await
    .expect_err("icinga2 cannot resolve");
    assert!(!e.retry, "{e:?}");

    // Wrong password: final.
    let wrong = writeback::build(Kind::Icinga2, &settings(&icinga, "wrong", Value::Null))
        .expect("settings are valid");
    let e = apply(&*wrong, &target(Some(OTHER)), &ack)
        .await
        .expect_err("wrong password");
    assert!(!e.retry, "{e:?}");
    assert!(e.message.contains("401"), "{e:?}");
    assert_eq!(
        icinga.service_attrs(HOST, OTHER).await["acknowledgement"],
        0.0,
        "nothing acknowledged with the wrong password"
    );

    // Icinga stopped: worth a retry.
    icinga.proc.stop();
    let e = apply(&*adapter, &target(Some(OTHER)), &ack)
        .await
        .expect_err("Icinga is down");
    assert!(e.retry, "{e:?}");
}

#[tokio::test]
async fn settings_are_checked_before_any_call() {
    let e = changes::refused(Kind::Icinga2, &Settings::default());
    assert_eq!(e.field, "url");
    assert_eq!(e.message, "Icinga 2's API URL is required");
    let s = Settings {
        url: Some("https://localhost:5665".parse().unwrap()),
        username: Some("u".into()),
        password: Some("p".into()),
        options: json!({"notify": "yes"}),
        ..Settings::default()
    };
    let e = changes::refused(Kind::Icinga2, &s);
    assert_eq!(e.field, "options.notify");
}
