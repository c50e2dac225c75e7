//! The sync task's lookup of an incident's problems: an incident holding the alerts of several
//! problems (merged here; PagerDuty's alert grouping gives the same shape) is tied to each of
//! them through its alerts' `alert_key`, when the REST API is at hand.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventKind, NewEvent, Origin, Store, SyncStore};
use pagerbridge_sync::plan::MonitorRoute;
use pagerbridge_sync::worker::{Backoff, MonitorTarget, Sync};
use pagerbridge_sync::writeback::{self, Kind, Settings};
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::events::EventAction;
use pagerduty::{Event, RestClient, Severity};
use serde_json::json;

/// The emulator's account-level API token (its demo seed).
const ACCOUNT_TOKEN: &str = "emulator-account-token";

fn alert(key: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::EventsV2,
        routing_key: DEMO_ROUTING_KEY.into(),
        dedup_key: Some(key.into()),
        action: Some(EventAction::Trigger),
        body: b"{}".to_vec(),
        source: "test".into(),
        received_at: Timestamp::now(),
        origin: Some(Origin {
            source: "nagios".into(),
            monitor_ref: json!({"kind": "object", "host": key, "service": "Disk /"}),
            problem_id: Some("1".into()),
            started_at: None,
        }),
    }
}

async fn trigger(pd: &TestPd, key: &str) -> String {
    let ev = Event::trigger(
        DEMO_ROUTING_KEY,
        format!("{key} disk"),
        key,
        Severity::Critical,
    )
    .with_dedup_key(key);
    pd.events().send(&ev).await.unwrap();
    pd.world()
        .incidents
        .iter()
        .find(|i| i.incident_key == key)
        .map(|i| i.id.clone())
        .unwrap()
}

/// Two problems whose incidents were merged before pagerbridge heard of either, and the
/// acknowledgement of the survivor as its webhook tells it (its incident key is the first
/// problem's).
async fn merged(with_rest: bool) -> (TestPd, tempfile::TempDir, Arc<SqliteStore>, Sync) {
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("pagerbridge.db"))
            .await
            .unwrap(),
    );
    store.insert(&[alert("db1"), alert("db2")]).await.unwrap();
    let a = trigger(&pd, "db1").await;
    let b = trigger(&pd, "db2").await;
    pd.rest().merge_incidents(&a, &[b]).await.unwrap();
    let inc = pd.rest().get_incident(&a).await.unwrap();
    let body = json!({"event": {
        "id": "01EVT", "event_type": "incident.acknowledged", "resource_type": "incident",
        "occurred_at": Timestamp::now().to_string(),
        "agent": {"id": "PADA001", "type": "user_reference", "summary": "Ada Operator"},
        "client": null,
        "data": {"id": inc.id, "type": "incident", "status": "acknowledged",
                 "incident_key": inc.incident_key, "html_url": inc.html_url,
                 "created_at": inc.created_at.map(|t| t.to_string()),
                 "service": {"id": inc.service.as_ref().unwrap().id, "type": "service_reference"}},
    }});
    store
        .receive(
            "webhook_v3",
            "wh-1",
            body.to_string().as_bytes(),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let settings = Settings {
        url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
        timeout: std::time::Duration::from_secs(1),
        ..Settings::default()
    };
    let target = MonitorTarget {
        route: MonitorRoute {
            name: "hook".into(),
            policy: Kind::Webhook.default_policy(),
            sources: vec!["nagios".into()],
        },
        adapter: writeback::build(Kind::Webhook, &settings).unwrap(),
    };
    let backoff = Backoff {
        initial: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(1),
        give_up_after: std::time::Duration::from_secs(60),
    };
    let mut sync = Sync::new(store.clone(), vec![target], HashMap::new(), backoff);
    if with_rest {
        sync = sync.with_rest(RestClient::new(&pd.config(), ACCOUNT_TOKEN).unwrap());
    }
    (pd, dir, store, sync)
}

#[tokio::test]
async fn an_incidents_alerts_name_every_problem_it_holds() {
    let (_pd, _dir, store, sync) = merged(true).await;
    sync.process_inbox(Timestamp::now()).await.unwrap();
    let due = store.due_writebacks(Timestamp::now(), 10).await.unwrap();
    let mut hosts: Vec<String> = due
        .iter()
        .map(|w| w.change["target"]["host"].as_str().unwrap().to_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["db1", "db2"], "{due:?}");
    for w in &due {
        assert_eq!(w.change["change"]["action"], "acknowledge");
        assert_eq!(w.change["change"]["author"], "Ada Operator");
    }
    for key in ["db1", "db2"] {
        let row = &store.incidents_by_dedup_key(key).await.unwrap()[0];
        assert!(row.incident_id.is_some(), "{key} knows its incident");
    }
}

#[tokio::test]
async fn without_the_rest_api_only_the_incident_key_is_known() {
    let (_pd, _dir, store, sync) = merged(false).await;
    sync.process_inbox(Timestamp::now()).await.unwrap();
    let due = store.due_writebacks(Timestamp::now(), 10).await.unwrap();
    let hosts: Vec<&str> = due
        .iter()
        .map(|w| w.change["target"]["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["db1"], "{due:?}");
}
