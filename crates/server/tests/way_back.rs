//! The way back through the daemon: PagerDuty's Webhooks v3 (signed, from the emulator's own
//! subscription) and the legacy V2 route store each change once, answer at once, and the sync
//! task writes it back to the monitor that holds the problem, never echoing pagerbridge's own
//! changes.

mod common;

use std::time::Duration;

use common::*;
use pagerbridge_store::SyncStore;
use pagerbridge_testkit::{Canned, Recorder, TestPd};
use pagerduty::rest::{IncidentStatus, IncidentUpdate};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn firing(status: &str) -> Vec<u8> {
    json!({
        "version": "4", "status": status, "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk full on db1"},
            "startsAt": "2026-11-21T10:00:00Z",
            "fingerprint": "d1a2b3c4",
            "generatorURL": "http://prometheus:9090/graph",
        }],
    })
    .to_string()
    .into_bytes()
}

struct Setup {
    pd: TestPd,
    daemon: Daemon,
    monitor: Recorder,
    secret: String,
}

/// The emulator subscribed to the daemon's webhook route; an Alertmanager source whose
/// problems a `webhook` monitor (a recorder) holds.
async fn setup(extra: &str) -> Setup {
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let secret = pd
        .subscribe_webhooks(&format!("http://{addr}/webhooks/pagerduty"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let o = hook_opts(
        &monitor,
        &format!(
            r#"
[sync.webhooks]
secrets = ["{secret}"]
legacy_secret = "legacyLegacy0123456789"

[sync.writeback]
initial_backoff = "100ms"
max_backoff = "1s"
{extra}"#
        ),
    );
    let daemon = Daemon::start_on(with_api_token(&pd, &o, dir.path()), dir, listener).await;
    Setup {
        pd,
        daemon,
        monitor,
        secret,
    }
}

/// An Alertmanager source whose problems the `webhook` monitor `monitor` holds, plus `extra`.
fn hook_opts(monitor: &Recorder, extra: &str) -> Opts {
    Opts {
        extra: format!(
            r#"
[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"

[[monitors]]
name = "hook"
kind = "webhook"
url = "{url}"
sources = ["am"]
{extra}
"#,
            url = monitor.url()
        ),
        ..Opts::default()
    }
}

/// The test configuration with the emulator's REST API token (poller, reconciler).
fn with_api_token(pd: &TestPd, o: &Opts, dir: &std::path::Path) -> pagerbridge_config::Config {
    let text = config_text(&pd.url(), "data", o).replace(
        "[pagerduty]\n",
        &format!(
            "[pagerduty]\napi_token = \"{}\"\n",
            pagerduty_emulator::seed::DEMO_API_TOKEN
        ),
    );
    pagerbridge_config::Config::from_str(&text, "test.toml", dir).unwrap()
}

async fn post_raw(d: &Daemon, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut req = d
        .http
        .post(format!("{}{path}", d.base))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req).await
}

async fn the_incident(pd: &TestPd) -> pagerduty::rest::Incident {
    eventually("the incident opens", WAIT, || async {
        let w = pd.world();
        w.incidents.first().map(|i| i.id.clone())
    })
    .await;
    let id = pd.world().incidents[0].id.clone();
    pd.rest().get_incident(&id).await.unwrap()
}

/// Waits until every stored change from PagerDuty has been processed.
async fn inbox_processed(store: &pagerbridge_store::sqlite::SqliteStore) {
    eventually("the inbox is processed", WAIT, || async {
        store
            .inbox_pending(10)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

async fn sync_store(d: &Daemon) -> std::sync::Arc<pagerbridge_store::sqlite::SqliteStore> {
    std::sync::Arc::new(
        pagerbridge_store::sqlite::SqliteStore::open(&d.db_path())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_in_pagerduty_reaches_the_monitor_and_our_own_resolve_does_not() {
    let s = setup("").await;
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&s.pd).await;
    let url = inc.html_url.clone().expect("incidents have a page");

    // A person acknowledges in PagerDuty.
    s.pd.rest()
        .update_incident(
            &inc.id,
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    let got = s.monitor.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["action"], "acknowledge", "{body}");
    assert_eq!(
        body["author"], "Ada Operator",
        "the responder's name: {body}"
    );
    assert_eq!(body["incident"]["id"], inc.id.as_str());
    assert_eq!(body["incident"]["url"], url.as_str());
    assert!(body["comment"].as_str().unwrap().contains(&url), "{body}");
    assert_eq!(
        body["monitor_ref"]["kind"], "matchers",
        "the Alertmanager problem it was for: {body}"
    );
    assert_eq!(body["monitor_ref"]["matchers"]["alertname"], "DiskFull");

    let store = sync_store(&s.daemon).await;
    let rows = eventually("the map learns the incident", WAIT, || async {
        let rows = store.list_incidents(false, 10).await.unwrap();
        rows.first()
            .filter(|r| r.pd_status.as_deref() == Some("acknowledged"))
            .cloned()
    })
    .await;
    assert_eq!(rows.incident_id.as_deref(), Some(inc.id.as_str()));
    assert_eq!(rows.incident_url.as_deref(), Some(url.as_str()));

    // The problem recovers in the monitor: pagerbridge resolves the incident, PagerDuty tells
    // us so (agent: the integration), and nothing is written back.
    let a = post_raw(&s.daemon, "/ingest/am", firing("resolved"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    eventually("PagerDuty's resolve is processed", WAIT, || async {
        let rows = store.list_incidents(false, 10).await.unwrap();
        rows.first()
            .filter(|r| r.pd_status.as_deref() == Some("resolved"))
            .cloned()
    })
    .await;
    inbox_processed(&store).await;
    assert_eq!(
        s.monitor.requests().len(),
        1,
        "our own resolve is not echoed back: {:?}",
        s.monitor
            .requests()
            .iter()
            .map(|r| r.json())
            .collect::<Vec<_>>()
    );
    let delivered = s.pd.deliveries();
    assert!(
        delivered
            .iter()
            .all(|d| matches!(d.last_status, Some(200 | 202))),
        "every delivery answered 2xx: {delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_badly_signed_and_repeated_deliveries() {
    let s = setup("").await;
    let body = br#"{"event":{"id":"E1","event_type":"incident.acknowledged","resource_type":"incident","occurred_at":"2026-11-21T10:00:00Z","agent":null,"client":null,"data":{"id":"PX","type":"incident","status":"acknowledged"}}}"#.to_vec();
    let a = post_raw(&s.daemon, "/webhooks/pagerduty", body.clone(), &[]).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["field"], "X-PagerDuty-Signature");
    let wrong = pagerduty::webhook::sign(b"not the secret", &body);
    let a = post_raw(
        &s.daemon,
        "/webhooks/pagerduty",
        body.clone(),
        &[("x-pagerduty-signature", wrong.as_str())],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    let store = sync_store(&s.daemon).await;
    assert!(store.inbox_pending(10).await.unwrap().is_empty());

    // Signed with the old secret and the new one during a rotation: accepted once.
    let both = format!(
        "{},{}",
        pagerduty::webhook::sign(b"old-secret", &body),
        pagerduty::webhook::sign(s.secret.as_bytes(), &body)
    );
    let headers = [
        ("x-pagerduty-signature", both.as_str()),
        ("x-webhook-id", "wh-0001"),
    ];
    let a = post_raw(&s.daemon, "/webhooks/pagerduty", body.clone(), &headers).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let a = post_raw(&s.daemon, "/webhooks/pagerduty", body.clone(), &headers).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["status"], "duplicate");

    let sig = pagerduty::webhook::sign(s.secret.as_bytes(), b"[1,2]");
    let a = post_raw(
        &s.daemon,
        "/webhooks/pagerduty",
        b"[1,2]".to_vec(),
        &[("x-pagerduty-signature", sig.as_str())],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["field"], "event");

    // The legacy route: the secret in the path.
    let v2 = json!({"messages": [{"id": "m-1", "event": "incident.acknowledge",
        "created_on": "2026-11-21T10:00:00Z", "incident": {"id": "PX"}, "log_entries": []}]});
    let a = post_raw(
        &s.daemon,
        "/webhooks/pagerduty-v2/wrongwrongwrong000000",
        v2.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = post_raw(
        &s.daemon,
        "/webhooks/pagerduty-v2/legacyLegacy0123456789",
        v2.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["new"], 1);
    let a = post_raw(
        &s.daemon,
        "/webhooks/pagerduty-v2/legacyLegacy0123456789",
        json!({"messages": [{"event": "x"}]})
            .to_string()
            .into_bytes(),
        &[],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["field"], "messages[0].id");

    // Both stored changes are processed (neither is an incident pagerbridge opened).
    inbox_processed(&store).await;
    assert!(s.monitor.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_that_is_down_gets_the_write_back_when_it_comes_back() {
    let s = setup("").await;
    s.monitor
        .set_default(Canned::json(503, json!({"error": "starting"})));
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&s.pd).await;
    s.pd.rest()
        .create_note(&inc.id, "replacing the disk")
        .await
        .unwrap();
    let failed = s.monitor.wait_for(2, WAIT).await;
    assert!(failed.len() >= 2, "retried while the monitor answers 503");
    s.monitor
        .set_default(Canned::json(200, json!({"ok": true})));
    let got = eventually("the write-back lands", WAIT, || async {
        let store = sync_store(&s.daemon).await;
        let done = store
            .list_writebacks(Some(pagerbridge_store::WritebackState::Done), 10)
            .await
            .unwrap();
        done.first().cloned()
    })
    .await;
    assert!(got.attempts >= 3, "{got:?}");
    let last: Value = s.monitor.requests().last().unwrap().json();
    assert_eq!(last["action"], "comment");
    assert!(
        last["comment"]
            .as_str()
            .unwrap()
            .contains("replacing the disk"),
        "{last}"
    );
}

/// Behind a firewall: no webhooks, the daemon polls PagerDuty's log entries instead, and the
/// acknowledgement reaches the monitor the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_webhooks_off_polling_brings_the_acknowledgement() {
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let o = hook_opts(
        &monitor,
        "\n[sync.poller]\nenabled = true\ninterval = \"5s\"\n",
    );
    let config = with_api_token(&pd, &o, dir.path());
    assert!(config.sync.webhooks.secrets.is_empty(), "no webhook route");
    let d = Daemon::start_config(config, dir).await;
    let a = post_raw(&d, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&pd).await;
    pd.rest()
        .update_incident(
            &inc.id,
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    let got = monitor.wait_for(1, Duration::from_secs(20)).await;
    let body = got[0].json();
    assert_eq!(body["action"], "acknowledge", "{body}");
    assert_eq!(body["author"], "Ada Operator");
    assert_eq!(body["incident"]["id"], inc.id.as_str());
    let a = post_raw(&d, "/webhooks/pagerduty", b"{}".to_vec(), &[]).await;
    assert_eq!(a.status, 404, "the webhook route is off: {}", a.body);
}

/// A resolve PagerDuty refused (a 400, so a dead letter: the fast path gave up) leaves the
/// incident open while the problem has recovered; the reconciler sends the resolve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_repairs_a_lost_resolve() {
    let s = setup("\n[sync.reconciler]\ninterval = \"10s\"\n").await;
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&s.pd).await;
    inject(&s.pd, status_fault(400, 1));
    let a = post_raw(&s.daemon, "/ingest/am", firing("resolved"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let store = sync_store(&s.daemon).await;
    eventually("the resolve becomes a dead letter", WAIT, || async {
        let dead = pagerbridge_store::Store::list(
            store.as_ref(),
            &pagerbridge_store::ListQuery {
                states: vec![pagerbridge_store::State::Dead],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        (!dead.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        s.pd.rest().get_incident(&inc.id).await.unwrap().status,
        IncidentStatus::Triggered,
        "the resolve was lost"
    );
    eventually(
        "the reconciler resolves it",
        Duration::from_secs(45),
        || async {
            let i = s.pd.rest().get_incident(&inc.id).await.unwrap();
            (i.status == IncidentStatus::Resolved).then_some(())
        },
    )
    .await;
    // PagerDuty acts on the event before the dispatcher records its delivery: wait for that.
    eventually(
        "the re-sent resolve is recorded delivered",
        WAIT,
        || async {
            let delivered = pagerbridge_store::Store::list(
                store.as_ref(),
                &pagerbridge_store::ListQuery {
                    states: vec![pagerbridge_store::State::Delivered],
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            delivered
                .iter()
                .any(|e| {
                    e.source == "reconciler"
                        && e.action == Some(pagerduty::events::EventAction::Resolve)
                })
                .then_some(())
        },
    )
    .await;
    assert!(s.monitor.requests().is_empty(), "nothing to write back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_on_a_service_in_maintenance_is_acknowledged_until_the_window_ends() {
    let s = setup("\n[sync.maintenance]\nrefresh = \"5s\"\n").await;
    let now = jiff::Timestamp::now();
    let window =
        s.pd.rest()
            .create_maintenance_window(&pagerduty::rest::MaintenanceWindow::new(
                now - jiff::SignedDuration::from_mins(1),
                now + jiff::SignedDuration::from_mins(90),
                Some("Kernel upgrade on db1".into()),
                &["PDEMO01".to_string()],
            ))
            .await
            .unwrap();
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);

    let got = s.monitor.wait_for(1, Duration::from_secs(30)).await;
    let body = got[0].json();
    assert_eq!(body["action"], "acknowledge", "{body}");
    assert_eq!(body["author"], "PagerDuty", "{body}");
    let comment = body["comment"].as_str().unwrap();
    assert!(comment.contains("Kernel upgrade on db1"), "{body}");
    assert!(comment.contains("in maintenance until"), "{body}");
    assert_eq!(
        body["expires_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        window.end_time,
        "{body}"
    );
    assert_eq!(body["monitor_ref"]["matchers"]["alertname"], "DiskFull");
    assert!(
        s.pd.world().incidents.is_empty(),
        "PagerDuty took the event and opened no incident"
    );
    // Once per window: later checks add nothing.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(s.monitor.requests().len(), 1, "acknowledged once");
}

/// Two monitors hold the same problems; one answers only after 8 s. The other gets its
/// write-back at once: a slow monitor holds up nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_monitor_does_not_hold_up_the_others() {
    let slow =
        Recorder::start(Canned::json(200, json!({"ok": true})).delayed(Duration::from_secs(8)))
            .await;
    let s = setup(&format!(
        "\n[[monitors]]\nname = \"slow\"\nkind = \"webhook\"\nurl = \"{}\"\nsources = [\"am\"]\n",
        slow.url()
    ))
    .await;
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&s.pd).await;
    let acked = std::time::Instant::now();
    s.pd.rest()
        .update_incident(
            &inc.id,
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    s.monitor.wait_for(1, WAIT).await;
    // While the slow monitor still sits on the acknowledgement, a note follows: the fast one
    // gets it too, without waiting for the slow call to end.
    s.pd.rest()
        .create_note(&inc.id, "looking into it")
        .await
        .unwrap();
    let got = s.monitor.wait_for(2, WAIT).await;
    let fast = acked.elapsed();
    assert_eq!(got[1].json()["action"], "comment");
    assert!(
        fast < Duration::from_secs(5),
        "the fast monitor waited {fast:?} for the slow one"
    );
    let got = slow.wait_for(2, WAIT).await;
    assert_eq!(got[0].json()["action"], "acknowledge");
    assert_eq!(
        got[1].json()["action"],
        "comment",
        "in order, once it answers"
    );
}

/// Webhooks and polling both on: a note reaches pagerbridge twice (the webhook at once, the
/// poller a few seconds later) and is written to the monitor once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_arriving_by_webhook_and_by_polling_is_written_once() {
    let s = setup("\n[sync.poller]\nenabled = true\ninterval = \"5s\"\n").await;
    let a = post_raw(&s.daemon, "/ingest/am", firing("firing"), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let inc = the_incident(&s.pd).await;
    let before = s.pd.exchanges().len();
    s.pd.rest()
        .create_note(&inc.id, "disk swapped")
        .await
        .unwrap();
    s.monitor.wait_for(1, WAIT).await;
    // The poller has read the note once it fetched the incident of its log entry.
    let incident_path = format!("/incidents/{}", inc.id);
    eventually(
        "the poller reads the note",
        Duration::from_secs(20),
        || async {
            s.pd.exchanges()[before..]
                .iter()
                .any(|x| x.method == "GET" && x.path.starts_with(&incident_path))
                .then_some(())
        },
    )
    .await;
    let store = sync_store(&s.daemon).await;
    inbox_processed(&store).await;
    let comments: Vec<Value> = s
        .monitor
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["action"] == "comment")
        .collect();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0]["comment"]
            .as_str()
            .unwrap()
            .contains("disk swapped")
    );
}

/// Two problems, two incidents; a responder merges one into the other, then acknowledges the
/// survivor: both problems are acknowledged in the monitor, and the merge itself resolves
/// nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_merge_the_surviving_incident_speaks_for_both_problems() {
    let s = setup("").await;
    let two = json!({
        "version": "4", "status": "firing", "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1:9100"},
             "annotations": {"summary": "Disk full on db1"}, "fingerprint": "f0000001",
             "startsAt": "2026-11-21T10:00:00Z"},
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db2:9100"},
             "annotations": {"summary": "Disk full on db2"}, "fingerprint": "f0000002",
             "startsAt": "2026-11-21T10:00:00Z"},
        ],
    });
    let a = post_raw(&s.daemon, "/ingest/am", two.to_string().into_bytes(), &[]).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let ids = eventually("two incidents", WAIT, || async {
        let w = s.pd.world();
        (w.incidents.len() == 2)
            .then(|| w.incidents.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
    })
    .await;
    let store = sync_store(&s.daemon).await;
    // Both incidents known to the map (their trigger webhooks processed).
    eventually("the map knows both incidents", WAIT, || async {
        let rows = store.list_incidents(false, 10).await.unwrap();
        (rows.iter().filter(|r| r.incident_id.is_some()).count() == 2).then_some(())
    })
    .await;
    s.pd.rest()
        .merge_incidents(&ids[0], std::slice::from_ref(&ids[1]))
        .await
        .unwrap();
    eventually("the merged problem follows the survivor", WAIT, || async {
        (store.incidents_by_id(&ids[0]).await.unwrap().len() == 2).then_some(())
    })
    .await;
    s.pd.rest()
        .update_incident(
            &ids[0],
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    let got = s.monitor.wait_for(2, WAIT).await;
    let mut fingerprints: Vec<String> = got
        .iter()
        .map(|r| {
            let b = r.json();
            assert_eq!(b["action"], "acknowledge", "{b}");
            assert_eq!(b["incident"]["id"], ids[0].as_str());
            b["monitor_ref"]["fingerprint"].as_str().unwrap().to_owned()
        })
        .collect();
    fingerprints.sort();
    assert_eq!(fingerprints, ["f0000001", "f0000002"]);
    inbox_processed(&store).await;
    assert_eq!(
        s.monitor.requests().len(),
        2,
        "the merge wrote nothing back (it resolved no problem)"
    );
}
