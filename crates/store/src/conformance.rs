//! What every [`Store`] backend must do, as checks runnable against any of them.
//!
//! A backend's test file runs them all with one line:
//! `pagerbridge_store::conformance_tests!(async { Arc::new(MyStore::open(...).await.unwrap()) as Arc<dyn Store> });`
//! Each check gets a fresh, empty store and panics with a message on failure.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerduty::events::EventAction;

use crate::group_commit::GroupCommit;
use crate::{EventKind, LaneResult, ListQuery, NewEvent, Outcome, State, Store};

/// Generates one `#[tokio::test]` per conformance check for the store made by `$make` (an
/// expression evaluating to a future of `Arc<dyn Store>`). With `optional`, `$make` gives an
/// `Option` of it, and a check given `None` (a backend not available here, which `$make` has
/// reported) returns without checking anything.
#[macro_export]
macro_rules! conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@checks @optional $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@checks @each $make);
    };
    (@checks @$how:ident $make:expr) => {
        $crate::conformance_tests!(@$how $make;
            inserted_events_read_back_as_written,
            ids_increase_in_insert_order,
            a_lane_is_claimed_head_first_with_its_backlog_in_order,
            different_lanes_are_claimed_together_and_per_lane_limits_apply,
            a_claimed_lane_is_not_claimed_again_until_finished_or_expired,
            delivered_events_leave_the_queue_with_pagerdutys_answer,
            progress_recorded_without_release_keeps_the_claim,
            a_dead_letter_does_not_block_the_events_behind_it,
            a_failed_head_stays_first_and_its_lane_waits_until_retry_at,
            new_events_do_not_cut_a_lanes_backoff_short,
            coalesced_events_name_the_event_that_superseded_them,
            next_due_is_the_earliest_unclaimed_lane,
            stats_count_states_and_describe_each_routing_key,
            delivered_since_counts_by_when_pagerduty_accepted,
            list_filters_and_pages_newest_first,
            retry_puts_dead_letters_back_in_their_lane,
            dropped_events_leave_the_queue_and_late_outcomes_are_ignored,
            purge_removes_only_old_finished_records,
            change_events_have_their_own_lane,
            group_commit_stores_concurrent_events_each_once,
            group_commit_keeps_a_callers_batch_together_and_in_order,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::Store> = $make.await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
    (@optional $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store: ::std::option::Option<::std::sync::Arc<dyn $crate::Store>> =
                    $make.await;
                if let ::std::option::Option::Some(store) = store {
                    $crate::conformance::$name(store).await;
                }
            }
        )*
    };
}

const RK: &str = "r0utingkey0000000000000000000001";
const RK2: &str = "r0utingkey0000000000000000000002";
const LEASE: Duration = Duration::from_secs(30);

fn t0() -> Timestamp {
    // Whole milliseconds: backends store milliseconds.
    Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap()
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn ev(routing_key: &str, dedup: &str, action: EventAction, at: Timestamp, n: u32) -> NewEvent {
    NewEvent {
        kind: EventKind::EventsV2,
        routing_key: routing_key.into(),
        dedup_key: Some(dedup.into()),
        action: Some(action),
        body: format!(
            r#"{{"routing_key":"{routing_key}","event_action":"{action}","dedup_key":"{dedup}","n":{n}}}"#
        )
        .into_bytes(),
        source: "conformance".into(),
        received_at: at,
        origin: None,
    }
}

fn trig(dedup: &str, at: Timestamp, n: u32) -> NewEvent {
    ev(RK, dedup, EventAction::Trigger, at, n)
}

fn delivered(id: i64, at: Timestamp) -> Outcome {
    Outcome::Delivered {
        id,
        status: 202,
        response: r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#.into(),
        at,
    }
}

fn done(lane: &str, outcomes: Vec<Outcome>, retry_at: Option<Timestamp>) -> LaneResult {
    LaneResult {
        lane: lane.into(),
        owner: "w1".into(),
        outcomes,
        retry_at,
        release: true,
    }
}

pub async fn inserted_events_read_back_as_written(s: Arc<dyn Store>) {
    let t = t0();
    let mut e = trig("db1/disk", t, 1);
    e.body = r#"{"payload":{"custom_details":{"é":"ü","n":[1,2]}}}"#
        .as_bytes()
        .to_vec();
    let ids = s.insert(std::slice::from_ref(&e)).await.unwrap();
    let r = s.get(ids[0]).await.unwrap().expect("stored");
    assert_eq!(r.id, ids[0]);
    assert_eq!(r.kind, EventKind::EventsV2);
    assert_eq!(r.routing_key, RK);
    assert_eq!(r.dedup_key.as_deref(), Some("db1/disk"));
    assert_eq!(r.action, Some(EventAction::Trigger));
    assert_eq!(r.body, e.body, "the body is stored byte for byte");
    assert_eq!(r.source, "conformance");
    assert_eq!(r.received_at, t);
    assert_eq!(r.state, State::Pending);
    assert_eq!(r.attempts, 0);
    assert_eq!(r.next_attempt_at, Some(t), "a new lane is due at once");
    assert_eq!(r.lane, e.lane());
    assert!(s.get(ids[0] + 1000).await.unwrap().is_none());
    assert!(s.insert(&[]).await.unwrap().is_empty());
}

pub async fn ids_increase_in_insert_order(s: Arc<dyn Store>) {
    let t = t0();
    let a = s
        .insert(&[trig("a", t, 1), trig("b", t, 2), trig("a", t, 3)])
        .await
        .unwrap();
    let b = s.insert(&[trig("c", t, 4)]).await.unwrap();
    assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
    assert!(a[2] < b[0]);
}

pub async fn a_lane_is_claimed_head_first_with_its_backlog_in_order(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[
            trig("k", t, 1),
            ev(RK, "k", EventAction::Acknowledge, t, 2),
            ev(RK, "k", EventAction::Resolve, t, 3),
        ])
        .await
        .unwrap();
    let claims = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c.routing_key, RK);
    assert_eq!(c.owner, "w1");
    assert_eq!(c.events.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        c.events.iter().map(|e| e.action).collect::<Vec<_>>(),
        [
            Some(EventAction::Trigger),
            Some(EventAction::Acknowledge),
            Some(EventAction::Resolve)
        ]
    );
    // Not due before its events arrived.
    let s2_claims = s.claim("w2", 10, 10, LEASE, t - secs(5)).await.unwrap();
    assert!(s2_claims.is_empty());
}

pub async fn different_lanes_are_claimed_together_and_per_lane_limits_apply(s: Arc<dyn Store>) {
    let t = t0();
    let mut batch = Vec::new();
    for lane in 0..20 {
        for n in 0..5 {
            batch.push(trig(&format!("lane-{lane}"), t, n));
        }
    }
    s.insert(&batch).await.unwrap();
    let first = s.claim("w1", 8, 3, LEASE, t).await.unwrap();
    assert_eq!(first.len(), 8);
    assert!(first.iter().all(|c| c.events.len() == 3), "per-lane limit");
    let second = s.claim("w2", 100, 10, LEASE, t).await.unwrap();
    assert_eq!(second.len(), 12, "the other lanes, not the claimed ones");
    assert!(second.iter().all(|c| c.events.len() == 5));
    let mut lanes: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|c| c.lane.clone())
        .collect();
    lanes.sort();
    lanes.dedup();
    assert_eq!(lanes.len(), 20);
}

pub async fn a_claimed_lane_is_not_claimed_again_until_finished_or_expired(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s.insert(&[trig("k", t, 1), trig("k", t, 2)]).await.unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    assert_eq!(c.len(), 1);
    assert!(s.claim("w2", 10, 10, LEASE, t).await.unwrap().is_empty());
    assert!(
        s.claim("w1", 10, 10, LEASE, t + secs(1))
            .await
            .unwrap()
            .is_empty(),
        "not even by its owner"
    );
    // Released by finishing: what remains is claimable again.
    s.finish(&[done(&c[0].lane, vec![delivered(ids[0], t)], None)])
        .await
        .unwrap();
    let again = s.claim("w2", 10, 10, LEASE, t + secs(1)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].events.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[1]]
    );
    // An expired lease (a crashed owner) frees the lane for someone else.
    assert!(
        s.claim("w3", 10, 10, LEASE, t + secs(2))
            .await
            .unwrap()
            .is_empty()
    );
    let taken = s
        .claim(
            "w3",
            10,
            10,
            LEASE,
            t + secs(1) + SignedDuration::try_from(LEASE).unwrap() + secs(1),
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "claim taken over after the lease expired");
    assert_eq!(taken[0].owner, "w3");
}

pub async fn delivered_events_leave_the_queue_with_pagerdutys_answer(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s.insert(&[trig("k", t, 1)]).await.unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(&c[0].lane, vec![delivered(ids[0], t + secs(1))], None)])
        .await
        .unwrap();
    let r = s.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.last_status, Some(202));
    assert!(r.response.as_deref().unwrap().contains("Event processed"));
    assert_eq!(r.finished_at, Some(t + secs(1)));
    assert_eq!(r.next_attempt_at, None);
    let st = s.stats().await.unwrap();
    assert_eq!((st.pending, st.delivered), (0, 1));
    assert!(st.by_routing_key.is_empty(), "no backlog left for the key");
    assert!(
        s.claim("w1", 10, 10, LEASE, t + secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_due().await.unwrap(), None);
}

pub async fn progress_recorded_without_release_keeps_the_claim(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[trig("k", t, 1), ev(RK, "k", EventAction::Resolve, t, 2)])
        .await
        .unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    let mut first = done(&c[0].lane, vec![delivered(ids[0], t)], None);
    first.release = false;
    s.finish(&[first]).await.unwrap();
    assert_eq!(
        s.get(ids[0]).await.unwrap().unwrap().state,
        State::Delivered,
        "recorded at once"
    );
    assert!(
        s.claim("w2", 10, 10, LEASE, t + secs(1))
            .await
            .unwrap()
            .is_empty(),
        "still w1's lane"
    );
    s.finish(&[done(&c[0].lane, vec![delivered(ids[1], t)], None)])
        .await
        .unwrap();
    assert_eq!(s.stats().await.unwrap().pending, 0);
    s.insert(&[trig("k", t + secs(2), 3)]).await.unwrap();
    assert_eq!(
        s.claim("w2", 10, 10, LEASE, t + secs(2))
            .await
            .unwrap()
            .len(),
        1,
        "released"
    );
}

pub async fn a_dead_letter_does_not_block_the_events_behind_it(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[trig("k", t, 1), ev(RK, "k", EventAction::Resolve, t, 2)])
        .await
        .unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(
        &c[0].lane,
        vec![
            Outcome::Dead {
                id: ids[0],
                status: Some(400),
                error: "Event object is invalid: 'payload.summary' is missing or blank".into(),
                at: t,
            },
            delivered(ids[1], t),
        ],
        None,
    )])
    .await
    .unwrap();
    let dead = s.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(dead.state, State::Dead);
    assert_eq!(dead.last_status, Some(400));
    assert!(dead.last_error.unwrap().contains("payload.summary"));
    assert_eq!(
        s.get(ids[1]).await.unwrap().unwrap().state,
        State::Delivered
    );
    let st = s.stats().await.unwrap();
    assert_eq!((st.pending, st.dead, st.delivered), (0, 1, 1));
}

pub async fn a_failed_head_stays_first_and_its_lane_waits_until_retry_at(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s.insert(&[trig("k", t, 1), trig("k", t, 2)]).await.unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(
        &c[0].lane,
        vec![Outcome::Failed {
            id: ids[0],
            status: Some(503),
            error: "Service Unavailable".into(),
            at: t,
        }],
        Some(t + secs(10)),
    )])
    .await
    .unwrap();
    let head = s.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (head.state, head.attempts, head.last_status),
        (State::Pending, 1, Some(503))
    );
    assert_eq!(head.last_error.as_deref(), Some("Service Unavailable"));
    assert_eq!(head.next_attempt_at, Some(t + secs(10)));
    assert!(
        s.claim("w1", 10, 10, LEASE, t + secs(9))
            .await
            .unwrap()
            .is_empty(),
        "backing off"
    );
    assert_eq!(s.next_due().await.unwrap(), Some(t + secs(10)));
    let c = s.claim("w1", 10, 10, LEASE, t + secs(10)).await.unwrap();
    assert_eq!(
        c[0].events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids,
        "the failed head is still first"
    );
    assert_eq!(c[0].events[0].attempts, 1);
}

pub async fn new_events_do_not_cut_a_lanes_backoff_short(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s.insert(&[trig("k", t, 1)]).await.unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(
        &c[0].lane,
        vec![Outcome::Failed {
            id: ids[0],
            status: None,
            error: "connection refused".into(),
            at: t,
        }],
        Some(t + secs(30)),
    )])
    .await
    .unwrap();
    s.insert(&[trig("k", t + secs(1), 2), trig("other", t + secs(1), 3)])
        .await
        .unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t + secs(2)).await.unwrap();
    assert_eq!(c.len(), 1, "only the new lane is due");
    assert_eq!(c[0].events[0].dedup_key.as_deref(), Some("other"));
}

pub async fn coalesced_events_name_the_event_that_superseded_them(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[trig("k", t, 1), trig("k", t, 2), trig("k", t, 3)])
        .await
        .unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(
        &c[0].lane,
        vec![
            Outcome::Coalesced {
                id: ids[0],
                into: ids[2],
                at: t,
            },
            Outcome::Coalesced {
                id: ids[1],
                into: ids[2],
                at: t,
            },
            delivered(ids[2], t),
        ],
        None,
    )])
    .await
    .unwrap();
    for id in &ids[..2] {
        let r = s.get(*id).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.coalesced_into, r.attempts),
            (State::Coalesced, Some(ids[2]), 0)
        );
    }
    let st = s.stats().await.unwrap();
    assert_eq!((st.pending, st.coalesced, st.delivered), (0, 2, 1));
}

pub async fn next_due_is_the_earliest_unclaimed_lane(s: Arc<dyn Store>) {
    let t = t0();
    assert_eq!(s.next_due().await.unwrap(), None);
    s.insert(&[trig("a", t, 1)]).await.unwrap();
    s.insert(&[trig("b", t + secs(1), 2)]).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(t));
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    assert_eq!(
        c[0].events[0].dedup_key.as_deref(),
        Some("a"),
        "earliest due first"
    );
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(t + secs(1)),
        "claimed lanes are not due"
    );
}

pub async fn stats_count_states_and_describe_each_routing_key(s: Arc<dyn Store>) {
    let t = t0();
    s.insert(&[
        trig("a", t, 1),
        trig("a", t + secs(1), 2),
        trig("b", t + secs(2), 3),
    ])
    .await
    .unwrap();
    s.insert(&[ev(RK2, "x", EventAction::Trigger, t + secs(3), 4)])
        .await
        .unwrap();
    let st = s.stats().await.unwrap();
    assert_eq!(st.pending, 4);
    assert_eq!(st.oldest_pending_at, Some(t));
    let k1 = st
        .by_routing_key
        .iter()
        .find(|k| k.routing_key == RK)
        .unwrap();
    assert_eq!(
        (k1.pending, k1.lanes, k1.oldest_pending_at),
        (3, 2, Some(t))
    );
    let k2 = st
        .by_routing_key
        .iter()
        .find(|k| k.routing_key == RK2)
        .unwrap();
    assert_eq!(
        (k2.pending, k2.lanes, k2.oldest_pending_at),
        (1, 1, Some(t + secs(3)))
    );
    assert_eq!(st.by_routing_key[0].routing_key, RK, "deepest queue first");
}

pub async fn delivered_since_counts_by_when_pagerduty_accepted(s: Arc<dyn Store>) {
    let t = t0();
    assert_eq!(s.delivered_since(t - secs(3600)).await.unwrap(), 0);
    // Received long ago, accepted at t, t+60 and t+120; one refused, one still pending.
    let old = t - secs(86_400);
    let ids = s
        .insert(&[
            trig("a", old, 1),
            trig("b", old, 2),
            trig("c", old, 3),
            trig("d", old, 4),
            trig("e", old, 5),
        ])
        .await
        .unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    let lane_of = |id: i64| {
        c.iter()
            .find(|c| c.events[0].id == id)
            .unwrap()
            .lane
            .clone()
    };
    let dead = Outcome::Dead {
        id: ids[3],
        status: Some(400),
        error: "invalid".into(),
        at: t + secs(120),
    };
    s.finish(&[
        done(&lane_of(ids[0]), vec![delivered(ids[0], t)], None),
        done(
            &lane_of(ids[1]),
            vec![delivered(ids[1], t + secs(60))],
            None,
        ),
        done(
            &lane_of(ids[2]),
            vec![delivered(ids[2], t + secs(120))],
            None,
        ),
        done(&lane_of(ids[3]), vec![dead], None),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.delivered_since(old).await.unwrap(),
        3,
        "by acceptance, not arrival"
    );
    assert_eq!(s.delivered_since(t).await.unwrap(), 3, "inclusive");
    assert_eq!(s.delivered_since(t + secs(1)).await.unwrap(), 2);
    assert_eq!(s.delivered_since(t + secs(120)).await.unwrap(), 1);
    assert_eq!(s.delivered_since(t + secs(121)).await.unwrap(), 0);
    // A retried dead letter counts once PagerDuty accepts it, at that time.
    assert_eq!(s.retry(&[ids[3]], t + secs(130)).await.unwrap(), 1);
    let c = s.claim("w1", 10, 10, LEASE, t + secs(130)).await.unwrap();
    let lane = c.iter().find(|c| c.events[0].id == ids[3]).unwrap();
    s.finish(&[done(
        &lane.lane,
        vec![delivered(ids[3], t + secs(140))],
        None,
    )])
    .await
    .unwrap();
    assert_eq!(s.delivered_since(t + secs(121)).await.unwrap(), 1);
    assert_eq!(s.delivered_since(t).await.unwrap(), 4);
}

pub async fn list_filters_and_pages_newest_first(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[
            trig("a", t, 1),
            trig("b", t, 2),
            ev(RK2, "a", EventAction::Trigger, t, 3),
            trig("a", t, 4),
        ])
        .await
        .unwrap();
    let all = s
        .list(&ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    let page = s
        .list(&ListQuery {
            limit: 2,
            before_id: Some(ids[3]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let rk = s
        .list(&ListQuery {
            routing_key: Some(RK.into()),
            dedup_key: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rk.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[3], ids[0]]
    );
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    let lane = c
        .iter()
        .find(|c| c.events[0].id == ids[1])
        .unwrap()
        .lane
        .clone();
    s.finish(&[done(
        &lane,
        vec![Outcome::Dead {
            id: ids[1],
            status: Some(400),
            error: "bad".into(),
            at: t,
        }],
        None,
    )])
    .await
    .unwrap();
    let dead = s
        .list(&ListQuery {
            states: vec![State::Dead],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]]);
    let pending = s
        .list(&ListQuery {
            states: vec![State::Pending, State::Delivered],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
}

pub async fn retry_puts_dead_letters_back_in_their_lane(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s.insert(&[trig("k", t, 1)]).await.unwrap();
    let c = s.claim("w1", 1, 10, LEASE, t).await.unwrap();
    s.finish(&[done(
        &c[0].lane,
        vec![Outcome::Dead {
            id: ids[0],
            status: Some(400),
            error: "bad".into(),
            at: t,
        }],
        None,
    )])
    .await
    .unwrap();
    assert_eq!(
        s.retry(&[ids[0], ids[0] + 99], t + secs(5)).await.unwrap(),
        1,
        "unknown ids are skipped"
    );
    let r = s.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.attempts, r.finished_at),
        (State::Pending, 0, None)
    );
    assert_eq!(
        r.last_error.as_deref(),
        Some("bad"),
        "the history stays readable"
    );
    let c = s.claim("w1", 1, 10, LEASE, t + secs(5)).await.unwrap();
    assert_eq!(c[0].events[0].id, ids[0]);
    assert_eq!(
        s.retry(&[ids[0]], t).await.unwrap(),
        0,
        "a pending event is not retried twice"
    );
    assert_eq!(s.stats().await.unwrap().dead, 0);
}

pub async fn dropped_events_leave_the_queue_and_late_outcomes_are_ignored(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[trig("k", t, 1), trig("k", t, 2), trig("j", t, 3)])
        .await
        .unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    // An operator drops an event while its lane is being worked.
    assert_eq!(s.drop_events(&[ids[1], ids[2]], t).await.unwrap(), 2);
    let lane = c
        .iter()
        .find(|c| c.events[0].id == ids[0])
        .unwrap()
        .lane
        .clone();
    s.finish(&[done(
        &lane,
        vec![delivered(ids[0], t), delivered(ids[1], t)],
        None,
    )])
    .await
    .unwrap();
    assert_eq!(
        s.get(ids[1]).await.unwrap().unwrap().state,
        State::Dropped,
        "the operator's decision stands"
    );
    assert_eq!(
        s.get(ids[0]).await.unwrap().unwrap().state,
        State::Delivered
    );
    let st = s.stats().await.unwrap();
    assert_eq!((st.pending, st.dropped, st.delivered), (0, 2, 1));
    assert!(
        s.claim("w2", 10, 10, LEASE, t + secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.drop_events(&[ids[0]], t).await.unwrap(),
        0,
        "delivered events cannot be dropped"
    );
}

pub async fn purge_removes_only_old_finished_records(s: Arc<dyn Store>) {
    let t = t0();
    let ids = s
        .insert(&[
            trig("a", t, 1),
            trig("b", t, 2),
            trig("c", t, 3),
            trig("d", t, 4),
        ])
        .await
        .unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    let lane_of = |id: i64| {
        c.iter()
            .find(|c| c.events[0].id == id)
            .unwrap()
            .lane
            .clone()
    };
    s.finish(&[
        done(&lane_of(ids[0]), vec![delivered(ids[0], t)], None),
        done(
            &lane_of(ids[1]),
            vec![delivered(ids[1], t + secs(100))],
            None,
        ),
        done(
            &lane_of(ids[2]),
            vec![Outcome::Dead {
                id: ids[2],
                status: Some(400),
                error: "x".into(),
                at: t,
            }],
            None,
        ),
    ])
    .await
    .unwrap();
    assert_eq!(s.purge(t + secs(50)).await.unwrap(), 1);
    assert!(
        s.get(ids[0]).await.unwrap().is_none(),
        "old delivered record purged"
    );
    assert!(s.get(ids[1]).await.unwrap().is_some(), "recent one kept");
    assert!(
        s.get(ids[2]).await.unwrap().is_some(),
        "dead letters wait for an operator"
    );
    assert!(
        s.get(ids[3]).await.unwrap().is_some(),
        "pending never purged"
    );
}

pub async fn change_events_have_their_own_lane(s: Arc<dyn Store>) {
    let t = t0();
    let change = NewEvent {
        kind: EventKind::Change,
        routing_key: RK.into(),
        dedup_key: None,
        action: None,
        body: br#"{"routing_key":"x","payload":{"summary":"deploy"}}"#.to_vec(),
        source: "conformance".into(),
        received_at: t,
        origin: None,
    };
    let ids = s
        .insert(&[change.clone(), trig("", t, 1), change])
        .await
        .unwrap();
    let c = s.claim("w1", 10, 10, LEASE, t).await.unwrap();
    assert_eq!(
        c.len(),
        2,
        "change events and alert events do not share a lane"
    );
    let ch = c
        .iter()
        .find(|c| c.events[0].kind == EventKind::Change)
        .unwrap();
    assert_eq!(
        ch.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[2]]
    );
    assert_eq!(ch.events[0].action, None);
}

pub async fn group_commit_stores_concurrent_events_each_once(s: Arc<dyn Store>) {
    let gc = GroupCommit::start(s.clone(), 64);
    let t = t0();
    let tasks: Vec<_> = (0..200u32)
        .map(|n| {
            let gc = gc.clone();
            tokio::spawn(async move { gc.insert(trig(&format!("k{}", n % 7), t, n)).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 200, "every event got its own id");
    let st = s.stats().await.unwrap();
    assert_eq!(st.pending, 200);
    for id in ids.iter().take(20) {
        let r = s.get(*id).await.unwrap().unwrap();
        let n: u32 = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["n"]
            .as_u64()
            .unwrap() as u32;
        assert_eq!(
            r.dedup_key.as_deref(),
            Some(format!("k{}", n % 7).as_str()),
            "the id belongs to its own event"
        );
    }
}

pub async fn group_commit_keeps_a_callers_batch_together_and_in_order(s: Arc<dyn Store>) {
    let gc = GroupCommit::start(s.clone(), 4);
    let t = t0();
    let batch: Vec<NewEvent> = (0..10u32).map(|n| trig(&format!("b{n}"), t, n)).collect();
    let single = gc.clone();
    let other = tokio::spawn(async move { single.insert(trig("alone", t, 99)).await });
    let ids = gc.insert_all(batch).await.unwrap();
    other.await.unwrap().unwrap();
    assert_eq!(
        ids.len(),
        10,
        "a batch larger than max_batch still goes whole"
    );
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "one commit, in order: {ids:?}"
    );
    for (n, id) in ids.iter().enumerate() {
        let r = s.get(*id).await.unwrap().unwrap();
        assert_eq!(r.dedup_key.as_deref(), Some(format!("b{n}").as_str()));
    }
    assert!(gc.insert_all(Vec::new()).await.unwrap().is_empty());
}
