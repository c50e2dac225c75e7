//! The dispatcher: takes lanes from the outbox, sends their events to PagerDuty in order, and
//! records what PagerDuty answered.
//!
//! Outcomes follow PagerDuty's documentation: a 2xx is delivered; a 400 (or any final answer) is
//! a dead letter, kept with PagerDuty's reason, and the lane moves on; 429, 5xx, timeouts and
//! connection errors leave the event at the head of its lane to be tried again after a backoff
//! that honours `Retry-After`. Lanes are independent: one failing key does not hold the others.

pub mod coalesce;
pub mod limits;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use pagerbridge_store::{Claim, EventKind, EventRecord, LaneResult, Outcome, Store};
use pagerduty::events::V1Event;
use pagerduty::{Disposition, Error as PdError, EventsClient};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};

use self::coalesce::Step;
use self::limits::{Buckets, Circuit, Gate, backoff};
use crate::metrics::{Attempt, Metrics, Wait};

/// How the dispatcher behaves; see `docs/configuration.md` (`[outbox]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_in_flight: usize,
    /// Pending events of one lane taken per claim (coalescing looks at these).
    pub per_lane: usize,
    /// How long a claim is ours. With a shared store (PostgreSQL) it is how long a dead
    /// replica's lanes wait before another replica takes them over.
    pub lease: Duration,
    /// The longest one send and the record of its outcome may take: no send of a claim starts
    /// later than this before the claim's lease ends (the lane is released instead, and
    /// claimed again), so a lane another replica takes over is never sent to by two at once.
    pub send_budget: Duration,
    pub coalesce: bool,
    pub events_per_minute: u32,
    pub burst: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub circuit_failures: u32,
    pub circuit_cooldown: Duration,
    pub circuit_max_cooldown: Duration,
    /// How often to look for work nobody told us about (events written by the CLI).
    pub idle_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_in_flight: 32,
            per_lane: 100,
            lease: Duration::from_secs(300),
            send_budget: Duration::from_secs(15),
            coalesce: true,
            events_per_minute: 100,
            burst: 10,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            circuit_failures: 5,
            circuit_cooldown: Duration::from_secs(5),
            circuit_max_cooldown: Duration::from_secs(120),
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// What the dispatcher is doing, for health checks and the status page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub running: bool,
    pub delivered: u64,
    pub dead: u64,
    pub failed_attempts: u64,
    pub coalesced: u64,
    pub last_delivery_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Set while the circuit is open: PagerDuty is failing and nothing is sent until then.
    pub circuit_open_until: Option<Timestamp>,
    /// Since when PagerDuty's answers have been failures worth retrying (5xx, no answer), if
    /// its last answer was one; cleared by any answer PagerDuty gives an event (2xx, 4xx).
    pub pagerduty_failing_since: Option<Timestamp>,
}

struct Shared {
    store: Arc<dyn Store>,
    client: EventsClient,
    settings: Settings,
    owner: String,
    buckets: Mutex<Buckets>,
    circuit: Mutex<Circuit>,
    status: Mutex<Status>,
    metrics: Arc<Metrics>,
}

/// A handle to a running dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        client: EventsClient,
        settings: Settings,
        owner: String,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        let buckets = Buckets::new(settings.events_per_minute, settings.burst);
        let circuit = Circuit::new(
            settings.circuit_failures,
            settings.circuit_cooldown,
            settings.circuit_max_cooldown,
        );
        Dispatcher {
            shared: Arc::new(Shared {
                store,
                client,
                settings,
                owner,
                buckets: Mutex::new(buckets),
                circuit: Mutex::new(circuit),
                status: Mutex::new(Status::default()),
                metrics,
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the dispatcher new events are in the store (saves it waiting for its next poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> Status {
        let mut s = self.shared.status.lock().expect("status lock").clone();
        let now = Instant::now();
        s.circuit_open_until = self
            .shared
            .circuit
            .lock()
            .expect("circuit lock")
            .open_until(now)
            .map(|u| {
                Timestamp::now() + jiff::SignedDuration::try_from(u - now).unwrap_or_default()
            });
        s
    }

    /// The daemon's metrics, which the dispatcher counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Runs until `stop` turns true, then lets the lanes in flight finish and records them.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let sh = self.shared.clone();
        sh.status.lock().expect("status lock").running = true;
        // Not running any more however this ends, a panic included: `/readyz` must say so.
        let _running = NotRunningOnDrop(sh.clone());
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Record>();
        let finisher = tokio::spawn(finisher(
            sh.store.clone(),
            done_rx,
            self.wake.clone(),
            sh.metrics.clone(),
        ));
        let slots = Arc::new(Semaphore::new(sh.settings.max_in_flight.max(1)));
        loop {
            if *stop.borrow() {
                break;
            }
            let open = sh
                .circuit
                .lock()
                .expect("circuit lock")
                .open_until(Instant::now());
            if let Some(until) = open {
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    p = slots.acquire() => drop(p),
                    _ = stop.changed() => {}
                }
                continue;
            }
            let now = Timestamp::now();
            let claims = match sh
                .store
                .claim(
                    &sh.owner,
                    free,
                    sh.settings.per_lane,
                    sh.settings.lease,
                    now,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; trying again in 1 s");
                    note_error(&sh, format!("outbox: {e}"));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            if claims.is_empty() {
                let next = sh.store.next_due().await.ok().flatten();
                let mut wait = sh.settings.idle_poll;
                if let Some(due) = next {
                    let until_due = Duration::try_from(due.duration_since(Timestamp::now()))
                        .unwrap_or_default();
                    wait = wait.min(until_due.max(Duration::from_millis(1)));
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for claim in claims {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (sh, done) = (sh.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let result = work_lane(&sh, claim, &done).await;
                    let _ = done.send(Record {
                        result,
                        committed: None,
                    });
                    drop(permit);
                });
            }
        }
        // Let lanes in flight finish: their outcomes must be recorded, or they would be sent
        // again after the restart.
        let _ = tokio::time::timeout(
            Duration::from_secs(15),
            slots.acquire_many(sh.settings.max_in_flight.max(1) as u32),
        )
        .await;
        drop(done_tx);
        let _ = finisher.await;
    }
}

struct NotRunningOnDrop(Arc<Shared>);

impl Drop for NotRunningOnDrop {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.status.lock() {
            s.running = false;
        }
    }
}

fn note_error(sh: &Shared, msg: String) {
    let mut s = sh.status.lock().expect("status lock");
    s.last_error = Some(msg);
    s.last_error_at = Some(Timestamp::now());
}

/// A lane's progress on its way to the store; `committed` hears when it is durable.
struct Record {
    result: LaneResult,
    committed: Option<oneshot::Sender<()>>,
}

/// Records lanes' progress, many lanes per commit. A failed commit is retried: dropping a
/// result would leave its lane claimed until the lease expires and its delivered events sent
/// twice.
async fn finisher(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Record>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Record> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let results: Vec<LaneResult> = batch.iter().map(|r| r.result.clone()).collect();
        let mut delay = Duration::from_millis(100);
        loop {
            match store.finish(&results).await {
                Ok(()) => {
                    metrics.write_ok();
                    break;
                }
                Err(e) => {
                    metrics.write_failed(&e);
                    tracing::error!(error = %e, lanes = results.len(), "cannot record deliveries; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        let released = results.iter().any(|r| r.release);
        for r in batch.drain(..) {
            if let Some(c) = r.committed {
                let _ = c.send(());
            }
        }
        if released {
            // Released lanes may hold more events.
            wake.notify_one();
        }
    }
}

/// Records `outcomes` of a lane that stays claimed, and waits until that is durable: the next
/// event of the lane must not leave before the previous one's delivery is on disk.
async fn checkpoint(
    done: &mpsc::UnboundedSender<Record>,
    claim: &Claim,
    outcomes: &mut Vec<Outcome>,
) {
    if outcomes.is_empty() {
        return;
    }
    let (tx, rx) = oneshot::channel();
    let record = Record {
        result: LaneResult {
            lane: claim.lane.clone(),
            owner: claim.owner.clone(),
            outcomes: std::mem::take(outcomes),
            retry_at: None,
            release: false,
        },
        committed: Some(tx),
    };
    if done.send(record).is_ok() {
        let _ = rx.await;
    }
}

/// Sends a claimed lane's events in order until they are all done or one must wait.
async fn work_lane(sh: &Shared, claim: Claim, done: &mpsc::UnboundedSender<Record>) -> LaneResult {
    let s = &sh.settings;
    let mut outcomes = Vec::with_capacity(claim.events.len());
    let mut retry_at = None;
    let mut sent_before = false;
    for step in coalesce::plan(&claim.events, s.coalesce) {
        let idx = match step {
            Step::Coalesce(a, b) => {
                outcomes.push(Outcome::Coalesced {
                    id: claim.events[a].id,
                    into: claim.events[b].id,
                    at: Timestamp::now(),
                });
                sh.status.lock().expect("status lock").coalesced += 1;
                sh.metrics.dispatch().coalesced();
                continue;
            }
            Step::Send(i) => i,
        };
        let ev = &claim.events[idx];
        if sent_before {
            checkpoint(done, &claim, &mut outcomes).await;
        }
        let budget = jiff::SignedDuration::try_from(s.send_budget).unwrap_or_default();
        if Timestamp::now() + budget >= claim.expires {
            // The lease would end mid-send: release the lane; it is claimed again at once.
            break;
        }
        sent_before = true;
        let now = Instant::now();
        // The circuit first: a request it holds back must not use up the key's rate.
        let gate = sh.circuit.lock().expect("circuit lock").gate(now);
        if let Gate::Open { until } = gate {
            retry_at = Some(later(until));
            break;
        }
        if let Err(until) = sh
            .buckets
            .lock()
            .expect("buckets lock")
            .take(&claim.routing_key, now)
        {
            if gate == Gate::Probe {
                sh.circuit.lock().expect("circuit lock").probe_abandoned();
            }
            sh.metrics
                .dispatch()
                .waited(Wait::TokenBucket, until.saturating_duration_since(now));
            retry_at = Some(later(until));
            break;
        }
        let started = Instant::now();
        let result = send(&sh.client, ev).await;
        let took = started.elapsed();
        let at = Timestamp::now();
        let m = sh.metrics.dispatch();
        match result {
            Ok((status, response)) => {
                sh.circuit.lock().expect("circuit lock").success();
                m.attempt(Attempt::Delivered, took);
                m.delivered(since(ev.received_at, at));
                outcomes.push(Outcome::Delivered {
                    id: ev.id,
                    status,
                    response,
                    at,
                });
                let mut st = sh.status.lock().expect("status lock");
                st.delivered += 1;
                st.last_delivery_at = Some(at);
                st.pagerduty_failing_since = None;
            }
            // PagerDuty took it (2xx) but its answer was not what the API documents: sending it
            // again could duplicate it, so it counts as delivered, with the answer kept.
            Err(PdError::Decode {
                status,
                body,
                detail,
            }) if (200..300).contains(&status) => {
                sh.circuit.lock().expect("circuit lock").success();
                m.attempt(Attempt::Delivered, took);
                m.delivered(since(ev.received_at, at));
                tracing::warn!(id = ev.id, routing_key = %pagerduty::events::mask_key(&claim.routing_key),
                    dedup_key = ev.dedup_key.as_deref().unwrap_or(""), attempt = ev.attempts + 1,
                    status, response = %body, %detail, "PagerDuty accepted an event with an unexpected answer");
                outcomes.push(Outcome::Delivered {
                    id: ev.id,
                    status,
                    response: body,
                    at,
                });
                let mut st = sh.status.lock().expect("status lock");
                st.delivered += 1;
                st.last_delivery_at = Some(at);
                st.pagerduty_failing_since = None;
            }
            Err(e) => match e.disposition() {
                Disposition::Success | Disposition::Final => {
                    sh.circuit.lock().expect("circuit lock").success();
                    m.attempt(Attempt::Rejected, took);
                    m.dead_letter(e.status());
                    tracing::error!(
                        id = ev.id, routing_key = %pagerduty::events::mask_key(&claim.routing_key),
                        dedup_key = ev.dedup_key.as_deref().unwrap_or(""), attempt = ev.attempts + 1,
                        status = e.status(), response = e.body().map(ToString::to_string),
                        error = %e, "PagerDuty refused an event; kept as a dead letter"
                    );
                    outcomes.push(Outcome::Dead {
                        id: ev.id,
                        status: e.status(),
                        error: e.to_string(),
                        at,
                    });
                    let mut st = sh.status.lock().expect("status lock");
                    st.dead += 1;
                    st.last_error = Some(e.to_string());
                    st.last_error_at = Some(at);
                    st.pagerduty_failing_since = None;
                }
                Disposition::Retry { after } => {
                    let attempt = ev.attempts + 1;
                    let delay = backoff(attempt, s.initial_delay, s.max_delay, after);
                    let throttled = e.status() == Some(429)
                        || (e.status() == Some(403) && ev.kind.api() == pagerduty::Api::EventsV1);
                    if throttled {
                        // Throttled: the whole routing key waits, not only this lane.
                        sh.buckets
                            .lock()
                            .expect("buckets lock")
                            .pause(&claim.routing_key, Instant::now() + delay);
                        if gate == Gate::Probe {
                            sh.circuit.lock().expect("circuit lock").probe_abandoned();
                        }
                        m.attempt(Attempt::Throttled, took);
                        m.waited(Wait::PagerDuty, delay);
                    } else {
                        let opened = sh
                            .circuit
                            .lock()
                            .expect("circuit lock")
                            .failure(Instant::now(), gate == Gate::Probe);
                        if opened {
                            m.circuit_opened();
                        }
                        m.attempt(
                            match e.status() {
                                Some(500..=599) => Attempt::ServerError,
                                Some(_) => Attempt::OtherError,
                                None => Attempt::TransportError,
                            },
                            took,
                        );
                    }
                    // A warning, throttling included: pagerbridge's own rate limit is meant to
                    // keep PagerDuty's the exception.
                    tracing::warn!(
                        id = ev.id, routing_key = %pagerduty::events::mask_key(&claim.routing_key),
                        dedup_key = ev.dedup_key.as_deref().unwrap_or(""), attempt,
                        status = e.status(), response = e.body().map(ToString::to_string),
                        retry_in_ms = delay.as_millis() as u64, error = %e, "delivery failed; will retry"
                    );
                    outcomes.push(Outcome::Failed {
                        id: ev.id,
                        status: e.status(),
                        error: e.to_string(),
                        at,
                    });
                    retry_at = Some(at + jiff::SignedDuration::try_from(delay).unwrap_or_default());
                    let mut st = sh.status.lock().expect("status lock");
                    st.failed_attempts += 1;
                    st.last_error = Some(e.to_string());
                    st.last_error_at = Some(at);
                    if throttled {
                        // PagerDuty answered: it is there, only busy with this key.
                        st.pagerduty_failing_since = None;
                    } else {
                        st.pagerduty_failing_since.get_or_insert(at);
                    }
                    break;
                }
            },
        }
    }
    LaneResult {
        lane: claim.lane,
        owner: claim.owner,
        outcomes,
        retry_at,
        release: true,
    }
}

/// Sends a stored event; returns PagerDuty's status and its answer as JSON text.
async fn send(client: &EventsClient, ev: &EventRecord) -> Result<(u16, String), PdError> {
    // v1 answers with `incident_key`, which the v2 answer type would drop from the record. The
    // stored body is a serialised `V1Event`, so this sends the same bytes.
    if ev.kind == EventKind::EventsV1
        && let Ok(v1) = serde_json::from_slice::<V1Event>(&ev.body)
    {
        let a = client.send_v1(&v1).await?;
        return Ok((a.status, serde_json::to_string(&a.body).unwrap_or_default()));
    }
    let a = client
        .send_raw(ev.kind.api(), Bytes::from(ev.body.clone()))
        .await?;
    Ok((a.status, serde_json::to_string(&a.body).unwrap_or_default()))
}

/// The time from `from` to `to` (zero if the clock went back).
fn since(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// An `Instant` in the future as a wall-clock time for the store.
fn later(until: Instant) -> Timestamp {
    let wait = until.saturating_duration_since(Instant::now());
    Timestamp::now() + jiff::SignedDuration::try_from(wait).unwrap_or_default()
}
