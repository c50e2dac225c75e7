//! What every backend's [`SyncStore`] must do (the incident map, the inbox, write-backs,
//! cursors), runnable against any backend:
//! `pagerbridge_store::sync_conformance_tests!(async { Arc::new(MyStore::open(..).await.unwrap()) });`

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use pagerduty::events::EventAction;
use serde_json::json;

use crate::sync::{
    IncidentUpdate, MonitorState, NewWriteback, Origin, Received, SyncEffects, SyncStore,
    WritebackOutcome, WritebackState,
};
use crate::{EventKind, NewEvent, Store};

/// Generates one `#[tokio::test]` per check for the store made by `$make` (a future of an
/// `Arc` of a type that is both [`Store`] and [`SyncStore`]). With `optional`, `$make` gives an
/// `Option` of it, and a check given `None` returns without checking anything.
#[macro_export]
macro_rules! sync_conformance_tests {
    (optional $make:expr) => {
        $crate::sync_conformance_tests!(@checks @optional $make);
    };
    ($make:expr) => {
        $crate::sync_conformance_tests!(@checks @each $make);
    };
    (@checks @$how:ident $make:expr) => {
        $crate::sync_conformance_tests!(@$how $make;
            a_webhook_is_stored_once_per_external_id,
            alert_events_map_their_problem_in_the_same_commit,
            processing_an_inbox_item_applies_its_effects_once,
            a_new_problem_after_recovery_forgets_the_old_incident,
            a_reminder_keeps_the_incident_and_its_acknowledgement,
            write_backs_retry_then_finish_and_keep_the_memo,
            write_backs_of_one_problem_to_one_monitor_apply_in_order,
            open_incidents_exclude_those_resolved_on_both_sides,
            cursors_are_saved,
            several_problems_can_share_an_incident,
            events_of_one_problem_in_one_commit_apply_in_order,
            a_claimed_write_back_is_handed_out_once_until_finished_or_expired,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::sync_conformance::$name(store).await;
            }
        )*
    };
    (@optional $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let ::std::option::Option::Some(store) = $make.await {
                    $crate::sync_conformance::$name(store).await;
                }
            }
        )*
    };
}

const RK: &str = "r0utingkey0000000000000000000001";

fn t0() -> Timestamp {
    Timestamp::from_millisecond(1_795_000_000_000).unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn alert(dedup: &str, action: EventAction, problem_id: &str, when: Timestamp) -> NewEvent {
    NewEvent {
        kind: EventKind::EventsV2,
        routing_key: RK.into(),
        dedup_key: Some(dedup.into()),
        action: Some(action),
        body: format!(r#"{{"dedup_key":"{dedup}","event_action":"{action}"}}"#).into_bytes(),
        source: "icinga".into(),
        received_at: when,
        origin: Some(Origin {
            source: "icinga".into(),
            monitor_ref: json!({"kind": "object", "host": "db1", "service": "disk",
                "problem_id": problem_id}),
            problem_id: Some(problem_id.into()),
            started_at: Some(when),
        }),
    }
}

fn learned(dedup: &str, incident: &str, status: &str, when: Timestamp) -> IncidentUpdate {
    IncidentUpdate {
        routing_key: RK.into(),
        dedup_key: dedup.into(),
        incident_id: incident.into(),
        incident_url: Some(format!("https://pd.example/incidents/{incident}")),
        service_id: Some("PSVC001".into()),
        pd_status: Some(status.into()),
        at: when,
    }
}

pub async fn a_webhook_is_stored_once_per_external_id<S: Store + SyncStore>(s: Arc<S>) {
    let first = s
        .receive("webhook_v3", "wh-1", b"{\"a\":1}", t0())
        .await
        .unwrap();
    assert!(matches!(first, Received::New(_)), "{first:?}");
    let again = s
        .receive("webhook_v3", "wh-1", b"{\"a\":1}", at(1))
        .await
        .unwrap();
    assert_eq!(
        again,
        Received::Duplicate,
        "a retried delivery is stored once"
    );
    s.receive("webhook_v2", "wh-2", b"{\"b\":2}", at(2))
        .await
        .unwrap();
    let pending = s.inbox_pending(10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|i| i.external_id.as_str()).collect();
    assert_eq!(ids, ["wh-1", "wh-2"], "in the order received");
    assert_eq!(pending[0].body, b"{\"a\":1}");
    assert_eq!(pending[1].origin, "webhook_v2");
    assert_eq!(pending[0].received_at, t0());
}

pub async fn alert_events_map_their_problem_in_the_same_commit<S: Store + SyncStore>(s: Arc<S>) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    let rows = s.incidents_by_dedup_key("db1/disk").await.unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.routing_key, RK);
    assert_eq!(r.source, "icinga");
    assert_eq!(r.monitor_ref["host"], "db1");
    assert_eq!(r.problem_id.as_deref(), Some("7"));
    assert_eq!(r.monitor_state, MonitorState::Problem);
    assert_eq!(r.incident_id, None, "PagerDuty has not named it yet");
    assert_eq!(r.problem_seen_at, t0());

    s.insert(&[alert("db1/disk", EventAction::Acknowledge, "7", at(5))])
        .await
        .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.monitor_state, MonitorState::Acknowledged);
    assert_eq!(r.monitor_changed_at, at(5));

    s.insert(&[alert("db1/disk", EventAction::Resolve, "7", at(9))])
        .await
        .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.monitor_state, MonitorState::Recovered);

    let mut plain = alert("relayed", EventAction::Trigger, "1", t0());
    plain.origin = None;
    s.insert(&[plain]).await.unwrap();
    assert!(
        s.incidents_by_dedup_key("relayed")
            .await
            .unwrap()
            .is_empty(),
        "events without an origin map nothing"
    );
}

pub async fn processing_an_inbox_item_applies_its_effects_once<S: Store + SyncStore>(s: Arc<S>) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    let Received::New(id) = s.receive("webhook_v3", "wh-1", b"{}", at(1)).await.unwrap() else {
        panic!("new");
    };
    let effects = SyncEffects {
        updates: vec![learned("db1/disk", "PINC1", "acknowledged", at(1))],
        writebacks: vec![NewWriteback {
            monitor: "icinga".into(),
            routing_key: RK.into(),
            dedup_key: "db1/disk".into(),
            change: json!({"action": "acknowledge", "author": "Ann"}),
            due: at(1),
        }],
        seen: vec!["note:PINC1:abc".into()],
        outcome: "acknowledge by Ann".into(),
    };
    assert!(!s.seen("note:PINC1:abc").await.unwrap());
    s.inbox_done(id, &effects, at(2)).await.unwrap();
    s.inbox_done(id, &effects, at(3)).await.unwrap();
    assert!(s.inbox_pending(10).await.unwrap().is_empty());
    assert!(
        s.seen("note:PINC1:abc").await.unwrap(),
        "recorded with the effects"
    );
    assert!(!s.seen("note:PINC1:other").await.unwrap());
    let due = s.due_writebacks(at(2), 10).await.unwrap();
    assert_eq!(due.len(), 1, "processed twice, written back once: {due:?}");
    assert_eq!(due[0].change["author"], "Ann");
    assert_eq!(due[0].state, WritebackState::Pending);
    let by_id = s.incidents_by_id("PINC1").await.unwrap();
    assert_eq!(by_id.len(), 1, "found by id");
    let r = &by_id[0];
    assert_eq!(r.dedup_key, "db1/disk");
    assert_eq!(r.pd_status.as_deref(), Some("acknowledged"));
    assert_eq!(r.service_id.as_deref(), Some("PSVC001"));
    assert_eq!(r.pd_changed_at, Some(at(1)));
    assert_eq!(
        r.monitor_state,
        MonitorState::Problem,
        "the monitor's side untouched"
    );
}

pub async fn a_new_problem_after_recovery_forgets_the_old_incident<S: Store + SyncStore>(
    s: Arc<S>,
) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    s.update_incidents(&[learned("db1/disk", "PINC1", "triggered", at(1))])
        .await
        .unwrap();
    s.insert(&[alert("db1/disk", EventAction::Resolve, "7", at(2))])
        .await
        .unwrap();
    s.insert(&[alert("db1/disk", EventAction::Trigger, "9", at(3))])
        .await
        .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.incident_id, None, "PagerDuty opens a new incident: {r:?}");
    assert_eq!(r.pd_status, None);
    assert_eq!(r.problem_id.as_deref(), Some("9"), "the new problem's id");
    assert_eq!(r.problem_seen_at, at(3), "when pagerbridge saw it begin");
    assert_eq!(r.monitor_state, MonitorState::Problem);
    assert!(s.incidents_by_id("PINC1").await.unwrap().is_empty());
}

pub async fn a_reminder_keeps_the_incident_and_its_acknowledgement<S: Store + SyncStore>(
    s: Arc<S>,
) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    s.update_incidents(&[learned("db1/disk", "PINC1", "acknowledged", at(1))])
        .await
        .unwrap();
    s.insert(&[alert("db1/disk", EventAction::Acknowledge, "7", at(2))])
        .await
        .unwrap();
    s.insert(&[alert("db1/disk", EventAction::Trigger, "8", at(3))])
        .await
        .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.incident_id.as_deref(), Some("PINC1"));
    assert_eq!(r.monitor_state, MonitorState::Acknowledged);
    assert_eq!(r.problem_seen_at, t0(), "a reminder is the same problem");
    assert_eq!(
        r.problem_id.as_deref(),
        Some("7"),
        "the incident stays the problem it was opened for"
    );

    // Resolved in PagerDuty while the monitor still reports it: the next trigger is a new
    // incident there, so the old one is forgotten here too.
    s.update_incidents(&[learned("db1/disk", "PINC1", "resolved", at(4))])
        .await
        .unwrap();
    s.insert(&[alert("db1/disk", EventAction::Trigger, "8", at(5))])
        .await
        .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.incident_id, None);
    assert_eq!(r.monitor_state, MonitorState::Problem);
}

pub async fn write_backs_retry_then_finish_and_keep_the_memo<S: Store + SyncStore>(s: Arc<S>) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    let ids = s
        .enqueue_writebacks(&[NewWriteback {
            monitor: "am".into(),
            routing_key: RK.into(),
            dedup_key: "db1/disk".into(),
            change: json!({"action": "acknowledge"}),
            due: at(0),
        }])
        .await
        .unwrap();
    let id = ids[0];
    s.finish_writeback(
        id,
        &WritebackOutcome::Retry {
            error: "connection refused".into(),
            retry_at: at(10),
        },
        at(1),
    )
    .await
    .unwrap();
    assert!(
        s.due_writebacks(at(5), 10).await.unwrap().is_empty(),
        "backing off"
    );
    let due = s.due_writebacks(at(10), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("connection refused"));
    s.finish_writeback(
        id,
        &WritebackOutcome::Done {
            detail: "silence abc".into(),
            memo: Some(json!({"silence_id": "abc"})),
        },
        at(11),
    )
    .await
    .unwrap();
    assert!(s.due_writebacks(at(60), 10).await.unwrap().is_empty());
    let done = s
        .list_writebacks(Some(WritebackState::Done), 10)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 2);
    assert_eq!(done[0].detail.as_deref(), Some("silence abc"));
    assert_eq!(done[0].finished_at, Some(at(11)));
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(r.memo, Some(json!({"silence_id": "abc"})));

    let failed = s
        .enqueue_writebacks(&[NewWriteback {
            monitor: "am".into(),
            routing_key: RK.into(),
            dedup_key: "db1/disk".into(),
            change: json!({"action": "comment"}),
            due: at(0),
        }])
        .await
        .unwrap()[0];
    s.finish_writeback(
        failed,
        &WritebackOutcome::Failed {
            error: "401".into(),
        },
        at(12),
    )
    .await
    .unwrap();
    let listed = s
        .list_writebacks(Some(WritebackState::Failed), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_error.as_deref(), Some("401"));
    assert_eq!(s.list_writebacks(None, 10).await.unwrap().len(), 2);
}

pub async fn open_incidents_exclude_those_resolved_on_both_sides<S: Store + SyncStore>(s: Arc<S>) {
    for key in ["a", "b", "c"] {
        s.insert(&[alert(key, EventAction::Trigger, "1", t0())])
            .await
            .unwrap();
    }
    s.insert(&[alert("a", EventAction::Resolve, "1", at(1))])
        .await
        .unwrap();
    s.update_incidents(&[
        learned("a", "PA", "resolved", at(2)),
        learned("b", "PB", "resolved", at(2)),
    ])
    .await
    .unwrap();
    let open: Vec<String> = s
        .list_incidents(true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.dedup_key)
        .collect();
    assert!(!open.contains(&"a".to_string()), "{open:?}");
    assert!(
        open.contains(&"b".to_string()),
        "resolved in PagerDuty only: drift"
    );
    assert!(open.contains(&"c".to_string()));
    assert_eq!(s.list_incidents(false, 10).await.unwrap().len(), 3);
}

pub async fn cursors_are_saved<S: Store + SyncStore>(s: Arc<S>) {
    assert_eq!(s.cursor("poller").await.unwrap(), None);
    s.set_cursor("poller", "2026-11-21T00:00:00Z", t0())
        .await
        .unwrap();
    s.set_cursor("poller", "2026-11-21T00:05:00Z", at(1))
        .await
        .unwrap();
    assert_eq!(
        s.cursor("poller").await.unwrap().as_deref(),
        Some("2026-11-21T00:05:00Z")
    );
}

pub async fn write_backs_of_one_problem_to_one_monitor_apply_in_order<S: Store + SyncStore>(
    s: Arc<S>,
) {
    let wb = |monitor: &str, dedup: &str, action: &str| NewWriteback {
        monitor: monitor.into(),
        routing_key: RK.into(),
        dedup_key: dedup.into(),
        change: json!({"action": action}),
        due: at(0),
    };
    let ids = s
        .enqueue_writebacks(&[
            wb("am", "a", "acknowledge"),
            wb("am", "a", "resolve"),
            wb("icinga", "a", "acknowledge"),
            wb("am", "b", "acknowledge"),
        ])
        .await
        .unwrap();
    let due: Vec<i64> = s
        .due_writebacks(at(1), 10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(
        due,
        [ids[0], ids[2], ids[3]],
        "the resolve waits for the acknowledgement"
    );
    s.finish_writeback(
        ids[0],
        &WritebackOutcome::Retry {
            error: "down".into(),
            retry_at: at(30),
        },
        at(1),
    )
    .await
    .unwrap();
    let due: Vec<i64> = s
        .due_writebacks(at(2), 10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(
        due,
        [ids[2], ids[3]],
        "still behind its head while that backs off"
    );
    s.finish_writeback(
        ids[0],
        &WritebackOutcome::Done {
            detail: "ok".into(),
            memo: None,
        },
        at(31),
    )
    .await
    .unwrap();
    let due: Vec<i64> = s
        .due_writebacks(at(31), 10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert!(due.contains(&ids[1]), "then it goes: {due:?}");
}

pub async fn several_problems_can_share_an_incident<S: Store + SyncStore>(s: Arc<S>) {
    for key in ["a", "b"] {
        s.insert(&[alert(key, EventAction::Trigger, "1", t0())])
            .await
            .unwrap();
    }
    s.update_incidents(&[
        learned("a", "PGROUP", "triggered", at(1)),
        learned("b", "PGROUP", "triggered", at(2)),
    ])
    .await
    .unwrap();
    let mut keys: Vec<String> = s
        .incidents_by_id("PGROUP")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.dedup_key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"], "grouped or merged: both problems");
}

pub async fn events_of_one_problem_in_one_commit_apply_in_order<S: Store + SyncStore>(s: Arc<S>) {
    s.insert(&[alert("db1/disk", EventAction::Trigger, "7", t0())])
        .await
        .unwrap();
    s.update_incidents(&[learned("db1/disk", "PINC1", "triggered", at(1))])
        .await
        .unwrap();
    // A recovery and the next problem, stored together (one group commit).
    s.insert(&[
        alert("db1/disk", EventAction::Resolve, "7", at(2)),
        alert("db1/disk", EventAction::Trigger, "9", at(3)),
        alert("other", EventAction::Trigger, "1", at(3)),
    ])
    .await
    .unwrap();
    let r = &s.incidents_by_dedup_key("db1/disk").await.unwrap()[0];
    assert_eq!(
        r.incident_id, None,
        "the new problem's incident is not the old: {r:?}"
    );
    assert_eq!(r.problem_id.as_deref(), Some("9"));
    assert_eq!(r.problem_seen_at, at(3));
    assert_eq!(r.monitor_state, MonitorState::Problem);
    assert_eq!(s.incidents_by_dedup_key("other").await.unwrap().len(), 1);
}

pub async fn a_claimed_write_back_is_handed_out_once_until_finished_or_expired<
    S: Store + SyncStore,
>(
    s: Arc<S>,
) {
    const LEASE: std::time::Duration = std::time::Duration::from_secs(60);
    let wb = |dedup: &str, action: &str| NewWriteback {
        monitor: "icinga".into(),
        routing_key: RK.into(),
        dedup_key: dedup.into(),
        change: json!({"action": action}),
        due: at(0),
    };
    let ids = s
        .enqueue_writebacks(&[
            wb("a", "acknowledge"),
            wb("a", "resolve"),
            wb("b", "acknowledge"),
        ])
        .await
        .unwrap();
    let claim = async |owner: &str, when: Timestamp| -> Vec<i64> {
        let got = s.claim_writebacks(owner, &ids, when, LEASE).await.unwrap();
        got.iter().map(|w| w.id).collect()
    };
    let first = s
        .claim_writebacks("r1", &ids[..1], at(1), LEASE)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "claimed what was asked for");
    assert_eq!(first[0].change["action"], "acknowledge");
    assert_eq!(
        claim("r2", at(1)).await,
        [ids[2]],
        "not the one r1 holds, nor the one queued behind it"
    );
    assert!(
        claim("r1", at(2)).await.is_empty(),
        "nothing is handed out twice, not even to its owner"
    );
    assert!(
        s.due_writebacks(at(2), 10).await.unwrap().is_empty(),
        "claimed write-backs are not due"
    );
    assert!(
        s.claim_writebacks("r3", &[ids[2] + 1000], at(2), LEASE)
            .await
            .unwrap()
            .is_empty(),
        "unknown ids are skipped"
    );

    // Finishing ends the claim: a retry is due again when it says, the next of a problem once
    // the one before it is done.
    s.finish_writeback(
        ids[0],
        &WritebackOutcome::Retry {
            error: "down".into(),
            retry_at: at(30),
        },
        at(3),
    )
    .await
    .unwrap();
    assert!(
        claim("r2", at(4)).await.is_empty(),
        "backing off, and still ahead of the resolve"
    );
    let retried = s.claim_writebacks("r2", &ids, at(30), LEASE).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (ids[0], 1));
    s.finish_writeback(
        ids[0],
        &WritebackOutcome::Done {
            detail: "ok".into(),
            memo: None,
        },
        at(31),
    )
    .await
    .unwrap();
    assert_eq!(claim("r1", at(31)).await, [ids[1]], "then the resolve");

    // A claim whose owner died (no finish) is taken over once its lease has passed.
    assert!(
        claim("r2", at(60)).await.is_empty(),
        "r1's lease on the resolve and r2's on b still hold"
    );
    let mut taken = claim("r2", at(92)).await;
    taken.sort();
    assert_eq!(taken, [ids[1], ids[2]], "both leases passed");
}
