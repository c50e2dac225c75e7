//! Every delivery outcome, produced by the emulator's fault injection against a running daemon:
//! what PagerDuty receives, in which order and when, and what the outbox records.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use pagerbridge_store::{EventRecord, State};
use pagerbridge_testkit::TestPd;
use pagerduty::rest::IncidentStatus;
use pagerduty_emulator::world::Effect;
use pagerduty_emulator::{FaultKind, FaultSpec};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// Polls one record until it leaves the pending state, noting every attempt seen on the way
/// (attempts, last status, last attempt time) so a test can measure the gaps between attempts.
async fn follow(store: &std::sync::Arc<dyn pagerbridge_store::Store>, id: i64) -> Trail {
    let deadline = Instant::now() + WAIT;
    let mut seen: Vec<EventRecord> = Vec::new();
    loop {
        let r = store
            .get(id)
            .await
            .expect("get")
            .expect("the record exists");
        if seen.last().is_none_or(|l| l.attempts != r.attempts) {
            seen.push(r.clone());
        }
        if r.state != State::Pending {
            return Trail { seen, last: r };
        }
        assert!(
            Instant::now() < deadline,
            "record {id} still pending: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

struct Trail {
    /// One record per attempt count observed, in order.
    seen: Vec<EventRecord>,
    last: EventRecord,
}

impl Trail {
    /// The record as it was after attempt `n` (1-based), if it was seen pending then.
    fn after(&self, n: u32) -> &EventRecord {
        self.seen
            .iter()
            .find(|r| r.attempts == n)
            .unwrap_or_else(|| panic!("attempt {n} was not observed: {:?}", self.seen))
    }
}

async fn only_record(d: &Daemon, key: &str) -> EventRecord {
    let r = records(&d.store(), key).await;
    assert_eq!(r.len(), 1, "one record for {key}: {r:?}");
    r.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_2xx_is_delivered_with_pagerdutys_answer_kept() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    d.send(&trigger(DEMO_ROUTING_KEY, "ok/1", 1)).await;
    let rec = only_record(&d, "ok/1").await;
    let done = follow(&d.store(), rec.id).await.last;
    assert_eq!(done.state, State::Delivered);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_status, Some(202));
    assert_eq!(done.last_error, None);
    let answer: Value = serde_json::from_str(done.response.as_deref().unwrap()).unwrap();
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["dedup_key"], "ok/1");
    assert!(done.finished_at.is_some());
    assert_eq!(incident(&pd, "ok/1"), (Some(IncidentStatus::Triggered), 1));
    assert_eq!(d.running().dispatcher().status().delivered, 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    inject(
        &pd,
        FaultSpec {
            retry_after: Some(2),
            count: Some(1),
            ..fault(FaultKind::RateLimit)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "throttled", 1)).await;
    let rec = only_record(&d, "throttled").await;
    let trail = follow(&d.store(), rec.id).await;

    let first = trail.after(1);
    assert_eq!(first.state, State::Pending);
    assert_eq!(first.last_status, Some(429));
    assert!(
        first.last_error.as_deref().unwrap_or("").contains("429"),
        "{first:?}"
    );
    let done = &trail.last;
    assert_eq!(done.state, State::Delivered);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.last_status, Some(202));
    assert_eq!(answered(&pd, 429), 1);

    // The 429 is not in the emulator's event log (the fault answers before the events handler);
    // its time is the daemon's record of the failed attempt, taken when the answer arrived.
    let got = received(&pd, "throttled");
    assert_eq!(got.len(), 1, "one processed request");
    let gap = secs(first.last_attempt_at.unwrap(), got[0].received_at);
    eprintln!("429 with Retry-After: 2 -> retried after {gap:.3} s");
    assert!(gap >= 1.99, "retried {gap:.3} s after a 429 asking for 2 s");
    assert!(gap < 3.5, "but not much later: {gap:.3} s");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_retried_with_growing_backoff() {
    let pd = TestPd::start().await;
    let opts = Opts {
        initial_delay: "100ms",
        max_delay: "2s",
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    for s in [500, 502, 503] {
        inject(&pd, status_fault(s, 1));
    }
    d.send(&trigger(DEMO_ROUTING_KEY, "flaky", 1)).await;
    let rec = only_record(&d, "flaky").await;
    let trail = follow(&d.store(), rec.id).await;
    let done = &trail.last;
    assert_eq!(done.state, State::Delivered, "{done:?}");
    assert_eq!(done.attempts, 4);
    let statuses: Vec<_> = (1..=3).map(|n| trail.after(n).last_status).collect();
    assert_eq!(statuses, [Some(500), Some(502), Some(503)]);
    let at: Vec<_> = (1..=3)
        .map(|n| trail.after(n).last_attempt_at.unwrap())
        .chain([done.last_attempt_at.unwrap()])
        .collect();
    let gaps: Vec<f64> = at.windows(2).map(|w| secs(w[0], w[1])).collect();
    eprintln!("5xx retry gaps (initial 100 ms): {gaps:.3?}");
    // Attempt n waits between half and all of 100 ms * 2^(n-1).
    for (i, g) in gaps.iter().enumerate() {
        let floor = 0.1 * 2f64.powi(i as i32) / 2.0 - 0.005;
        assert!(*g >= floor, "gap {} is {g:.3} s, below {floor:.3} s", i + 1);
    }
    assert!(gaps[2] > gaps[0], "the backoff grows: {gaps:?}");
    assert_eq!(received(&pd, "flaky").len(), 1);
    assert_eq!(incident(&pd, "flaky"), (Some(IncidentStatus::Triggered), 1));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timeout_is_retried_and_the_incident_exists_once() {
    let pd = TestPd::start().await;
    let opts = Opts {
        timeout: "300ms",
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    inject(
        &pd,
        FaultSpec {
            delay_ms: Some(900),
            count: Some(1),
            ..fault(FaultKind::Delay)
        },
    );
    let injected = Instant::now();
    d.send(&trigger(DEMO_ROUTING_KEY, "slow", 1)).await;
    let rec = only_record(&d, "slow").await;
    let trail = follow(&d.store(), rec.id).await;
    let first = trail.after(1);
    assert_eq!(first.last_status, None);
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("Timeout"),
        "{first:?}"
    );
    assert_eq!(trail.last.state, State::Delivered);
    assert_eq!(trail.last.attempts, 2);
    // Whether the emulator goes on to process the request that timed out (PagerDuty may well
    // have), the alert is deduplicated: one incident.
    let settle = Duration::from_millis(1200).saturating_sub(injected.elapsed());
    tokio::time::sleep(settle).await;
    assert_eq!(incident(&pd, "slow").1, 1);
    eprintln!(
        "timeout: the emulator processed {} request(s) for the key",
        received(&pd, "slow").len()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_connection_is_retried() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    inject(
        &pd,
        FaultSpec {
            count: Some(1),
            ..fault(FaultKind::Drop)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "dropped", 1)).await;
    let rec = only_record(&d, "dropped").await;
    let trail = follow(&d.store(), rec.id).await;
    let first = trail.after(1);
    assert_eq!(first.last_status, None);
    assert!(first.last_error.is_some());
    assert_eq!(trail.last.state, State::Delivered);
    assert_eq!(trail.last.attempts, 2);
    assert_eq!(
        received(&pd, "dropped").len(),
        1,
        "the dropped one was not processed"
    );
    assert_eq!(
        incident(&pd, "dropped"),
        (Some(IncidentStatus::Triggered), 1)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_answer_means_sending_again_and_pagerduty_deduplicates() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    inject(
        &pd,
        FaultSpec {
            count: Some(1),
            ..fault(FaultKind::DropAfter)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "lost-answer", 1)).await;
    let rec = only_record(&d, "lost-answer").await;
    let trail = follow(&d.store(), rec.id).await;
    assert_eq!(trail.last.state, State::Delivered);
    assert_eq!(trail.last.attempts, 2);
    let got = received(&pd, "lost-answer");
    let effects: Vec<_> = got.iter().map(|r| r.effect.clone()).collect();
    assert_eq!(
        got.len(),
        2,
        "processed, answer lost, sent again: {effects:?}"
    );
    assert!(matches!(effects[0], Some(Effect::Created { .. })));
    assert!(matches!(effects[1], Some(Effect::Deduplicated { .. })));
    assert_eq!(
        incident(&pd, "lost-answer"),
        (Some(IncidentStatus::Triggered), 1)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_400_mid_sequence_is_a_dead_letter_and_the_lane_moves_on() {
    // Only a fault gives a 400 inside one lane: the relay already refuses everything else
    // PagerDuty would.
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    let key = "mid-400";
    d.send(&trigger(DEMO_ROUTING_KEY, key, 1)).await;
    eventually("the trigger to be delivered", WAIT, || async {
        (incident(&pd, key).0 == Some(IncidentStatus::Triggered)).then_some(())
    })
    .await;
    inject(&pd, status_fault(400, 1));
    d.send(&event(DEMO_ROUTING_KEY, key, "acknowledge", 2))
        .await;
    d.send(&event(DEMO_ROUTING_KEY, key, "resolve", 3)).await;
    wait_drained(&d.store(), WAIT).await;

    let recs = records(&d.store(), key).await;
    let states: Vec<_> = recs.iter().map(|r| r.state).collect();
    assert_eq!(states, [State::Delivered, State::Dead, State::Delivered]);
    let dead = &recs[1];
    assert_eq!(dead.last_status, Some(400));
    assert_eq!(dead.attempts, 1, "a 400 is never retried");
    let err = dead.last_error.as_deref().unwrap_or("");
    assert!(
        err.contains("400") && err.contains("Event object is invalid"),
        "PagerDuty's own words are kept: {err}"
    );
    assert_eq!(answered(&pd, 400), 1);
    let got: Vec<_> = received(&pd, key).iter().map(|r| seq_of(&r.body)).collect();
    assert_eq!(
        got,
        [1, 3],
        "the refused one reached PagerDuty only as the 400"
    );
    let (status, n) = incident(&pd, key);
    assert_eq!((status, n), (Some(IncidentStatus::Resolved), 1));
    let st = d.running().dispatcher().status();
    assert_eq!((st.dead, st.delivered), (1, 2));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pagerdutys_own_400_is_kept_with_its_reason() {
    // A routing key of the right shape that PagerDuty never issued: the relay cannot know, so it
    // accepts the event; PagerDuty refuses it with its own error text.
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    let unknown = "ffffffffffffffffffffffffffffffff";
    d.send(&trigger(unknown, "nobody", 1)).await;
    wait_drained(&d.store(), WAIT).await;
    let rec = only_record(&d, "nobody").await;
    assert_eq!(rec.state, State::Dead);
    assert_eq!(rec.last_status, Some(400));
    let err = rec.last_error.as_deref().unwrap_or("");
    assert!(err.contains("Invalid routing key"), "{err}");
    d.stop().await;
}

/// What PagerDuty ends with after a sequence of actions on one dedup key.
fn expected_state(actions: &[&str]) -> Option<IncidentStatus> {
    let mut s = None;
    for a in actions {
        let open = matches!(
            s,
            Some(IncidentStatus::Triggered | IncidentStatus::Acknowledged)
        );
        s = match (*a, open) {
            ("trigger", false) => Some(IncidentStatus::Triggered),
            ("acknowledge", true) => Some(IncidentStatus::Acknowledged),
            ("resolve", true) => Some(IncidentStatus::Resolved),
            _ => s,
        };
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_key_keeps_its_order_through_failures() {
    let pd = TestPd::start().await;
    // Without a circuit (tested on its own below), which would otherwise stop each lane at its
    // first failure: here a failed head with events behind it must still hold them back.
    let opts = Opts {
        circuit_failures: 100_000,
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    let patterns: [&[&str]; 4] = [
        &[
            "trigger",
            "acknowledge",
            "resolve",
            "trigger",
            "trigger",
            "acknowledge",
        ],
        &[
            "trigger",
            "resolve",
            "trigger",
            "acknowledge",
            "resolve",
            "trigger",
        ],
        &[
            "trigger",
            "trigger",
            "acknowledge",
            "acknowledge",
            "resolve",
            "trigger",
            "resolve",
        ],
        &[
            "trigger",
            "acknowledge",
            "trigger",
            "resolve",
            "trigger",
            "acknowledge",
            "resolve",
            "trigger",
        ],
    ];
    let keys: Vec<String> = (0..8).map(|i| format!("order/{i}")).collect();
    let plan = |i: usize| patterns[i % patterns.len()];
    let rounds = patterns.iter().map(|p| p.len()).max().unwrap();
    let mut seq = 0;
    let mut sent: HashMap<String, Vec<u64>> = HashMap::new();
    for round in 0..rounds {
        match round {
            // An outage while backlogs build, then single failures of every kind, which hit
            // lane heads with events queued behind them.
            1 => {
                inject(
                    &pd,
                    FaultSpec {
                        status: Some(503),
                        seconds: Some(1.0),
                        ..fault(FaultKind::Status)
                    },
                );
                inject(&pd, status_fault(500, 3));
                for kind in [FaultKind::Drop, FaultKind::DropAfter] {
                    inject(
                        &pd,
                        FaultSpec {
                            count: Some(3),
                            ..fault(kind)
                        },
                    );
                }
                inject(&pd, status_fault(502, 3));
            }
            5 => inject(
                &pd,
                FaultSpec {
                    count: Some(4),
                    ..fault(FaultKind::Drop)
                },
            ),
            _ => {}
        }
        // One event per key per round, the keys' requests concurrently.
        let mut batch = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(action) = plan(i).get(round) {
                seq += 1;
                sent.entry(key.clone()).or_default().push(seq);
                batch.push(event(DEMO_ROUTING_KEY, key, action, seq));
            }
        }
        d.send_all(&batch).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let sent_all = Instant::now();
    wait_drained(&d.store(), Duration::from_secs(20)).await;
    eprintln!(
        "drained {:?} after the last event; {} 503s",
        sent_all.elapsed(),
        answered(&pd, 503)
    );
    assert!(answered(&pd, 503) > 0, "the outage was felt");

    for (i, key) in keys.iter().enumerate() {
        let got: Vec<u64> = received(&pd, key).iter().map(|r| seq_of(&r.body)).collect();
        // Retries may repeat an event; nothing may overtake an earlier one.
        for w in got.windows(2) {
            assert!(
                w[0] <= w[1],
                "{key}: PagerDuty received {got:?} (sent {:?})",
                sent[key]
            );
        }
        assert_eq!(
            got.last(),
            sent[key].last(),
            "{key}: the last event arrived last"
        );
        let recs = records(&d.store(), key).await;
        assert!(
            recs.iter()
                .all(|r| matches!(r.state, State::Delivered | State::Coalesced)),
            "{key}: {recs:?}"
        );
        assert_eq!(
            incident(&pd, key).0,
            expected_state(plan(i)),
            "{key}: PagerDuty ends in the state of the sequence"
        );
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_lane_does_not_hold_other_keys() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    // The first request hangs for 2.5 s (inside the 5 s timeout): its lane is busy meanwhile.
    inject(
        &pd,
        FaultSpec {
            delay_ms: Some(2500),
            count: Some(1),
            ..fault(FaultKind::Delay)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "stuck", 0)).await;
    faults_used(&pd).await;
    let t0 = Instant::now();
    for i in 1..=5 {
        d.send(&trigger(DEMO_ROUTING_KEY, &format!("free/{i}"), i))
            .await;
    }
    eventually("the other keys to be delivered", WAIT, || async {
        (1..=5)
            .all(|i| incident(&pd, &format!("free/{i}")).1 == 1)
            .then_some(())
    })
    .await;
    let others = t0.elapsed();
    assert_eq!(
        incident(&pd, "stuck").1,
        0,
        "the slow one is still in flight"
    );
    eprintln!("other keys delivered {others:?} after the slow one was sent");
    assert!(others < Duration::from_secs(2));
    wait_drained(&d.store(), WAIT).await;
    assert_eq!(incident(&pd, "stuck").1, 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_routing_key_does_not_hold_another() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    inject(
        &pd,
        FaultSpec {
            retry_after: Some(3),
            count: Some(1),
            ..fault(FaultKind::RateLimit)
        },
    );
    d.send(&trigger(DEMO_ROUTING_KEY, "throttled-key", 0)).await;
    faults_used(&pd).await;
    let t0 = Instant::now();
    for i in 1..=5 {
        d.send(&trigger(DEMO_DB_ROUTING_KEY, &format!("other-key/{i}"), i))
            .await;
    }
    eventually("the other routing key to be delivered", WAIT, || async {
        (1..=5)
            .all(|i| incident(&pd, &format!("other-key/{i}")).1 == 1)
            .then_some(())
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        incident(&pd, "throttled-key").1,
        0,
        "still waiting for Retry-After"
    );
    wait_drained(&d.store(), WAIT).await;
    assert_eq!(incident(&pd, "throttled-key").1, 1);
    d.stop().await;
}

async fn coalescing_run(coalesce: bool) -> (TestPd, Daemon) {
    let pd = TestPd::start().await;
    let d = Daemon::start(
        &pd,
        Opts {
            coalesce,
            ..Opts::default()
        },
    )
    .await;
    inject(
        &pd,
        FaultSpec {
            status: Some(503),
            seconds: Some(2.0),
            ..fault(FaultKind::Status)
        },
    );
    let actions = [
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "acknowledge",
        "acknowledge",
        "resolve",
    ];
    for (i, a) in actions.iter().enumerate() {
        d.send(&event(DEMO_ROUTING_KEY, "backlog", a, i as u64 + 1))
            .await;
    }
    wait_drained(&d.store(), WAIT).await;
    assert!(answered(&pd, 503) > 0);
    (pd, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_is_coalesced_into_each_actions_last_event() {
    let (pd, mut d) = coalescing_run(true).await;
    let got: Vec<(String, u64)> = received(&pd, "backlog")
        .iter()
        .map(|r| {
            (
                r.body["event_action"].as_str().unwrap().to_owned(),
                seq_of(&r.body),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("trigger".to_owned(), 5),
            ("acknowledge".to_owned(), 7),
            ("resolve".to_owned(), 8)
        ],
        "PagerDuty received one event per transition, each the newest"
    );
    let recs = records(&d.store(), "backlog").await;
    let seqs: HashMap<i64, usize> = (recs.iter().enumerate())
        .map(|(i, r)| (r.id, i + 1))
        .collect();
    for (i, r) in recs.iter().enumerate() {
        let seq = i + 1;
        assert_eq!(
            seq_of(&serde_json::from_slice(&r.body).unwrap()) as usize,
            seq
        );
        // A retry that came while the backlog was still arriving may coalesce into an event
        // that is itself coalesced later: the chain must end at the run's last event.
        let mut end = seq;
        let mut hops = 0;
        while let Some(into) = recs[end - 1].coalesced_into {
            let next = seqs[&into];
            assert!(next > end && recs[next - 1].action == r.action, "{r:?}");
            end = next;
            hops += 1;
        }
        let (state, last) = match seq {
            1..=4 => (State::Coalesced, 5),
            6 => (State::Coalesced, 7),
            _ => (State::Delivered, seq),
        };
        assert_eq!((r.state, end), (state, last), "event {seq}: {r:?}");
        assert!(hops <= 4);
    }
    assert_eq!(d.running().dispatcher().status().coalesced, 5);
    let (status, n) = incident(&pd, "backlog");
    assert_eq!((status, n), (Some(IncidentStatus::Resolved), 1));
    let log: Vec<&str> = (pd.world().logs.iter())
        .map(|l| l.kind)
        .filter(|k| {
            k.starts_with("trigger") || k.contains("acknowledge") || k.starts_with("resolve")
        })
        .collect();
    assert_eq!(
        log,
        [
            "trigger_log_entry",
            "acknowledge_log_entry",
            "resolve_log_entry"
        ],
        "every transition happened, once"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_coalescing_every_event_is_sent_in_order() {
    let (pd, mut d) = coalescing_run(false).await;
    let got: Vec<u64> = received(&pd, "backlog")
        .iter()
        .map(|r| seq_of(&r.body))
        .collect();
    assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8]);
    let recs = records(&d.store(), "backlog").await;
    assert!(recs.iter().all(|r| r.state == State::Delivered), "{recs:?}");
    assert_eq!(
        incident(&pd, "backlog"),
        (Some(IncidentStatus::Resolved), 1)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_bucket_paces_one_routing_key_only() {
    let pd = TestPd::start().await;
    let opts = Opts {
        events_per_minute: 60,
        burst: 2,
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    for i in 1..=6 {
        d.send(&trigger(DEMO_ROUTING_KEY, &format!("paced/{i}"), i))
            .await;
    }
    let sent_other = jiff::Timestamp::now();
    for i in 1..=2 {
        d.send(&trigger(DEMO_DB_ROUTING_KEY, &format!("unpaced/{i}"), i))
            .await;
    }
    eventually("the other routing key's events", WAIT, || async {
        let n = all_received(&pd)
            .iter()
            .filter(|r| r.routing_key.as_deref() == Some(DEMO_DB_ROUTING_KEY))
            .count();
        (n == 2).then_some(())
    })
    .await;
    wait_drained(&d.store(), WAIT).await;
    let log = all_received(&pd);
    let times = |rk: &str| -> Vec<jiff::Timestamp> {
        log.iter()
            .filter(|r| r.routing_key.as_deref() == Some(rk))
            .map(|r| r.received_at)
            .collect()
    };
    let paced = times(DEMO_ROUTING_KEY);
    let other = times(DEMO_DB_ROUTING_KEY);
    assert_eq!(paced.len(), 6);
    let span = secs(paced[0], paced[5]);
    let other_wait = secs(sent_other, *other.last().unwrap());
    eprintln!(
        "6 events at 60/min burst 2 took {span:.3} s; the other key waited {other_wait:.3} s"
    );
    // Two at once, then one a second.
    assert!(span >= 3.9, "{span:.3} s");
    assert!(span < 6.0, "{span:.3} s");
    assert!(
        other_wait < 0.5,
        "the other routing key was slowed: {other_wait:.3} s"
    );
    d.stop().await;
}

async fn outage_requests(circuit_failures: u32) -> (usize, bool) {
    let pd = TestPd::start().await;
    let opts = Opts {
        circuit_failures,
        circuit_cooldown: "500ms",
        circuit_max_cooldown: "2s",
        initial_delay: "50ms",
        max_delay: "1s",
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    inject(
        &pd,
        FaultSpec {
            status: Some(503),
            seconds: Some(2.0),
            ..fault(FaultKind::Status)
        },
    );
    let outage = Instant::now();
    let keys: Vec<String> = (0..50).map(|i| format!("storm/{i}")).collect();
    let evs: Vec<_> = (keys.iter().enumerate())
        .map(|(i, k)| trigger(DEMO_ROUTING_KEY, k, i as u64))
        .collect();
    d.send_all(&evs).await;
    let mut saw_open = false;
    while outage.elapsed() < Duration::from_millis(1900) {
        saw_open |= d
            .running()
            .dispatcher()
            .status()
            .circuit_open_until
            .is_some();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = answered(&pd, 503);
    wait_drained(&d.store(), Duration::from_secs(20)).await;
    for k in &keys {
        assert_eq!(incident(&pd, k).1, 1, "{k} delivered after the outage");
    }
    d.stop().await;
    (during, saw_open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_circuit_keeps_an_outage_from_becoming_a_retry_storm() {
    let (with_circuit, saw_open) = outage_requests(3).await;
    let (storm, _) = outage_requests(100_000).await;
    eprintln!(
        "503s during a 2 s outage with 50 keys: {with_circuit} with the circuit, {storm} without"
    );
    assert!(
        saw_open,
        "status().circuit_open_until was set during the outage"
    );
    assert!(
        storm >= 150,
        "without a circuit every lane retries: {storm} requests"
    );
    assert!(
        with_circuit * 4 <= storm,
        "{with_circuit} requests with the circuit vs {storm} without"
    );
    assert!(with_circuit <= 60, "{with_circuit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_loses_nothing_it_accepted() {
    let pd = TestPd::start().await;
    let mut d = Daemon::start(&pd, Opts::default()).await;
    // PagerDuty slow: deliveries are in flight when the stop comes.
    inject(
        &pd,
        FaultSpec {
            delay_ms: Some(300),
            seconds: Some(5.0),
            ..fault(FaultKind::Delay)
        },
    );
    let keys: Vec<String> = (0..60).map(|i| format!("stop/{i}")).collect();
    let evs: Vec<_> = (keys.iter().enumerate())
        .map(|(i, k)| trigger(DEMO_ROUTING_KEY, k, i as u64))
        .collect();
    d.send_all(&evs).await;
    let db = d.db_path();
    let stop_started = Instant::now();
    d.stop().await;
    eprintln!("stop took {:?}", stop_started.elapsed());

    let wal = db.with_extension("db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let store = open_store(&db).await;
    let recs = all_records(&store).await;
    let mut delivered = 0;
    for k in &keys {
        let r: Vec<_> = recs
            .iter()
            .filter(|r| r.dedup_key.as_deref() == Some(k))
            .collect();
        assert_eq!(r.len(), 1, "{k} is in the outbox after the stop");
        let processed = !received(&pd, k).is_empty();
        match r[0].state {
            State::Delivered => {
                assert!(
                    processed,
                    "{k} recorded delivered but PagerDuty never saw it"
                );
                delivered += 1;
            }
            State::Pending => assert!(
                !processed,
                "{k} reached PagerDuty but is still pending: it would be sent again"
            ),
            other => panic!("{k} is {other}"),
        }
    }
    eprintln!(
        "after stop: {delivered} delivered, {} pending",
        keys.len() - delivered
    );
    assert!(
        delivered > 0 && delivered < keys.len(),
        "the stop came mid-delivery"
    );
    assert_eq!(
        wal_len, 0,
        "the store was closed (log checkpointed) by the stop"
    );
    store.close().await;
}
