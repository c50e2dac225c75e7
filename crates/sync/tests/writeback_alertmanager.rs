//! The alertmanager write-back adapter against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`) on 127.0.0.1, read back through `GET /api/v2/silences` and the
//! alert's own status: acknowledging silences the alert with its labels, author and comment;
//! acknowledging again keeps one silence; resolving expires it; no memo, nothing to do; an
//! unreachable Alertmanager is worth a retry.
//!
//! Needs the package (and root to install it); prints SKIPPED and passes without it.

use std::collections::BTreeMap;
use std::time::Duration;

#[path = "common/changes.rs"]
mod changes;

use changes::{apply_memo as apply, change_now, settings};
use jiff::{SignedDuration, Timestamp};
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{self, Action, Change, Kind};
use pagerbridge_testkit::debian;
use pagerbridge_testkit::monitors::alertmanager::Alertmanager;
use pagerbridge_testkit::monitors::free_port;
use serde_json::{Value, json};

const CONFIG: &str = "route:\n  receiver: none\n  group_wait: 1s\n  group_interval: 2s\nreceivers:\n  - name: none\n";

async fn alertmanager(dir: &std::path::Path) -> Option<Alertmanager> {
    let program =
        debian::installed_or_skip("prometheus-alertmanager", &["prometheus-alertmanager"])?;
    match Alertmanager::start(&program, dir, CONFIG).await {
        Ok(am) => Some(am),
        Err(why) => {
            debian::skipped(&why);
            None
        }
    }
}

fn labels(instance: &str) -> BTreeMap<String, String> {
    [
        ("alertname", "DiskFull"),
        ("instance", instance),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn target(instance: &str) -> MonitorRef {
    MonitorRef::Matchers {
        matchers: labels(instance),
        fingerprint: None,
        group_key: None,
    }
}

fn change(action: Action, expires_at: Option<Timestamp>) -> Change {
    Change {
        expires_at,
        ..change_now(
            action,
            "Alice Example",
            "Acknowledged in PagerDuty: https://example.pagerduty.com/incidents/Q1TEST",
        )
    }
}

/// The silence with `id`, as Alertmanager lists it.
async fn silence(am: &Alertmanager, id: &str) -> Value {
    am.silences()
        .await
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no silence {id}"))
}

/// The alert's status (`active`, `suppressed`) and what silences it.
async fn alert_state(am: &Alertmanager, instance: &str) -> (String, Vec<String>) {
    let alerts = am.get("alerts").await;
    let a = alerts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["labels"]["instance"] == instance)
        .unwrap_or_else(|| panic!("no alert for {instance}: {alerts}"));
    let state = a["status"]["state"].as_str().unwrap_or_default().to_owned();
    let by = a["status"]["silencedBy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    (state, by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_silences_and_resolve_expires() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(am) = alertmanager(tmp.path()).await else {
        return;
    };
    let report = || am.proc.log_tail(30);
    let mut alert_labels = serde_json::Map::new();
    for (k, v) in labels("db1:9100") {
        alert_labels.insert(k, json!(v));
    }
    am.post_alerts(&[json!({"labels": alert_labels, "startsAt": Timestamp::now().to_string()})])
        .await;
    am.post_alerts(&[json!({
        "labels": {"alertname": "DiskFull", "instance": "db2:9100", "severity": "critical"},
        "startsAt": Timestamp::now().to_string(),
    })])
    .await;
    let adapter = writeback::build(Kind::Alertmanager, &settings(&am.url, Value::Null))
        .expect("settings are valid");

    let before = Timestamp::now();
    let ack = change(Action::Acknowledge, None);
    let applied = apply(&*adapter, &target("db1:9100"), &ack, None)
        .await
        .unwrap_or_else(|e| panic!("acknowledge: {e}\n{}", report()));
    let memo = applied.memo.clone().expect("a memo");
    let id = memo["silence_id"].as_str().expect("silence_id").to_owned();

    let s = silence(&am, &id).await;
    assert_eq!(s["status"]["state"], "active", "{s}");
    assert_eq!(s["createdBy"], ack.author);
    assert_eq!(s["comment"], ack.comment);
    let mut matchers: Vec<(String, String, bool, bool)> = s["matchers"]
        .as_array()
        .expect("matchers")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
                m["isRegex"].as_bool().unwrap(),
                m["isEqual"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    matchers.sort();
    let expected: Vec<_> = labels("db1:9100")
        .into_iter()
        .map(|(k, v)| (k, v, false, true))
        .collect();
    assert_eq!(matchers, expected, "{s}");
    // The default silence lasts a day.
    let ends: Timestamp = s["endsAt"].as_str().unwrap().parse().expect("endsAt");
    let day = SignedDuration::from_hours(24);
    assert!(
        ends >= before + day - SignedDuration::from_secs(5)
            && ends <= Timestamp::now() + day + SignedDuration::from_secs(5),
        "endsAt {ends}"
    );

    // Alertmanager marks alerts silenced as it evaluates them; poll briefly.
    let mut seen = alert_state(&am, "db1:9100").await;
    for _ in 0..50 {
        if seen.0 == "suppressed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = alert_state(&am, "db1:9100").await;
    }
    let (state, by) = seen;
    let (other, _) = alert_state(&am, "db2:9100").await;
    assert_eq!((state.as_str(), by), ("suppressed", vec![id.clone()]));
    assert_eq!(
        other, "active",
        "the other instance's alert is not silenced"
    );

    // Acknowledging again (a retry, a second acknowledgement) keeps to the one silence.
    let expires = Timestamp::now() + SignedDuration::from_hours(3);
    let again = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Acknowledge, Some(expires)),
        Some(&memo),
    )
    .await
    .unwrap_or_else(|e| panic!("acknowledge again: {e}\n{}", report()));
    let id2 = again.memo.as_ref().unwrap()["silence_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let active: Vec<Value> = am
        .silences()
        .await
        .into_iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "one active silence: {active:?}");
    assert_eq!(active[0]["id"], id2.as_str());
    let ends: Timestamp = active[0]["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(
        ends.duration_since(expires).abs() < SignedDuration::from_secs(1),
        "the acknowledgement's end: {ends} vs {expires}"
    );
    let memo = again.memo.unwrap();

    let resolved = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Resolve, None),
        Some(&memo),
    )
    .await
    .unwrap_or_else(|e| panic!("resolve: {e}\n{}", report()));
    assert!(resolved.detail.contains("expired"), "{}", resolved.detail);
    let s = silence(&am, &id2).await;
    assert_eq!(s["status"]["state"], "expired", "{s}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (state, _) = alert_state(&am, "db1:9100").await;
    assert_eq!(state, "active", "no longer silenced");

    // Once more (a retry after a lost answer): already expired counts as done.
    apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Unacknowledge, None),
        Some(&memo),
    )
    .await
    .unwrap_or_else(|e| panic!("expire again: {e}\n{}", report()));
    // A silence Alertmanager never had: gone already.
    let unknown = json!({"silence_id": "00000000-0000-0000-0000-000000000000"});
    apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Resolve, None),
        Some(&unknown),
    )
    .await
    .unwrap_or_else(|e| panic!("expire an unknown silence: {e}\n{}", report()));

    // A memo of a silence Alertmanager lost: acknowledging makes a new one.
    let fresh = apply(&*adapter, &target("db1:9100"), &ack, Some(&unknown))
        .await
        .unwrap_or_else(|e| panic!("acknowledge with a lost silence: {e}\n{}", report()));
    let id3 = fresh.memo.as_ref().unwrap()["silence_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(id3, id2);
    assert_eq!(silence(&am, &id3).await["status"]["state"], "active");
    apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Resolve, None),
        fresh.memo.as_ref(),
    )
    .await
    .unwrap_or_else(|e| panic!("resolve: {e}\n{}", report()));

    // No memo: no silence of ours, nothing to do.
    let nothing = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Resolve, None),
        None,
    )
    .await
    .expect("nothing to expire");
    assert!(nothing.detail.contains("no silence"), "{}", nothing.detail);
    assert_eq!(nothing.memo, None);

    let e = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Comment, None),
        None,
    )
    .await
    .expect_err("no comments");
    assert!(!e.retry, "{e:?}");
    let e = apply(
        &*adapter,
        &MonitorRef::Matchers {
            matchers: BTreeMap::new(),
            fingerprint: None,
            group_key: None,
        },
        &ack,
        None,
    )
    .await
    .expect_err("no matchers: would silence everything");
    assert!(!e.retry, "{e:?}");
    assert_eq!(
        am.silences()
            .await
            .iter()
            .filter(|s| s["status"]["state"] == "active")
            .count(),
        0
    );
}

#[tokio::test]
async fn an_unreachable_alertmanager_is_worth_a_retry() {
    // A port nobody listens on.
    let url = format!("http://127.0.0.1:{}", free_port());
    let adapter = writeback::build(
        Kind::Alertmanager,
        &settings(&url, json!({"silence_duration": "2h"})),
    )
    .expect("settings are valid");
    let e = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Acknowledge, None),
        None,
    )
    .await
    .expect_err("nobody listens");
    assert!(e.retry, "{e:?}");
    let memo = json!({"silence_id": "abc"});
    let e = apply(
        &*adapter,
        &target("db1:9100"),
        &change(Action::Resolve, None),
        Some(&memo),
    )
    .await
    .expect_err("nobody listens");
    assert!(e.retry, "{e:?}");

    let e = changes::refused(
        Kind::Alertmanager,
        &settings(&url, json!({"silence_duration": "forever"})),
    );
    assert_eq!(e.field, "options.silence_duration");
}
