//! The way back, running: inbox items become planned effects, write-backs are carried out with
//! retries. One task in the daemon runs [`Sync::run`]; the webhook routes wake it after they
//! store a delivery.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_model::MonitorRef;
use pagerbridge_store::{
    MappedIncident, StoreError, SyncEffects, SyncStore, WritebackOutcome, WritebackRecord,
};
use pagerduty::RestClient;
use tokio::sync::{Notify, watch};

use crate::metrics::{SyncMetrics, WritebackResult};
use crate::plan::{self, MonitorRoute};
use crate::writeback::{Adapter, Change, Request};

/// How failed write-backs are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A write-back still failing this long after it was created is given up.
    pub give_up_after: Duration,
}

impl Backoff {
    /// The wait after `attempts` failures: doubling from `initial`, capped at `max`, with up to
    /// 20% of jitter so that many write-backs to a monitor that comes back do not return at once.
    pub fn delay(&self, attempts: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempts.min(20)))
            .min(self.max);
        let jitter = rand::random::<f64>() * 0.2;
        base.mul_f64(1.0 - jitter)
    }
}

/// A configured monitor: where its write-backs go and what it does with each change.
pub struct MonitorTarget {
    pub route: MonitorRoute,
    pub adapter: Arc<dyn Adapter>,
}

pub struct Sync {
    store: Arc<dyn SyncStore>,
    monitors: Vec<MonitorRoute>,
    adapters: HashMap<String, Arc<dyn Adapter>>,
    /// `[[sources]]` name -> kind, so a monitor listing a kind takes named sources of it.
    source_kinds: HashMap<String, String>,
    backoff: Backoff,
    wake: Notify,
    /// Monitors with a write-back task running: one at a time each, so a monitor's write-backs
    /// keep their order, and a slow monitor holds up nobody else.
    busy: std::sync::Mutex<HashSet<String>>,
    /// PagerDuty's REST API, when `pagerduty.api_token` is set: to find the problems of an
    /// incident by its alerts.
    rest: Option<RestClient>,
    /// Incidents whose alerts were read already (once each; bounded).
    looked_up: std::sync::Mutex<BoundedSet>,
    metrics: Arc<SyncMetrics>,
    /// This replica's name on its write-back claims: with several daemons on one shared store,
    /// each write-back is carried out by the one that claimed it.
    owner: String,
}

/// A set that forgets its oldest members past a size, for "done once" marks that must not
/// grow without end.
#[derive(Default)]
struct BoundedSet {
    members: HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl BoundedSet {
    const MAX: usize = 10_000;

    /// Whether `key` is new (and now a member).
    fn insert(&mut self, key: String) -> bool {
        if !self.members.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.members.remove(&old);
        }
        true
    }

    fn remove(&mut self, key: &str) {
        self.members.remove(key);
        self.order.retain(|k| k != key);
    }
}

const BATCH: usize = 100;
/// Longest a write-back call may take, whatever the adapter's own timeouts.
const CALL_LIMIT: Duration = Duration::from_secs(60);
/// How long claimed write-backs stay this replica's: another replica takes them over this
/// long after this one died. A task starts no call it could not finish within its claim.
const CLAIM_LEASE: Duration = Duration::from_secs(300);

impl Sync {
    pub fn new(
        store: Arc<dyn SyncStore>,
        monitors: Vec<MonitorTarget>,
        source_kinds: HashMap<String, String>,
        backoff: Backoff,
    ) -> Sync {
        let adapters = monitors
            .iter()
            .map(|m| (m.route.name.clone(), m.adapter.clone()))
            .collect();
        Sync {
            store,
            monitors: monitors.into_iter().map(|m| m.route).collect(),
            adapters,
            source_kinds,
            backoff,
            wake: Notify::new(),
            busy: std::sync::Mutex::new(HashSet::new()),
            rest: None,
            looked_up: std::sync::Mutex::new(BoundedSet::default()),
            metrics: Arc::new(SyncMetrics::default()),
            owner: format!(
                "pagerbridge-sync-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }

    /// Names this replica on its write-back claims (unique by default).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Sync {
        self.owner = owner.into();
        self
    }

    /// Counts write-back outcomes per monitor into `metrics` (shared with the daemon).
    pub fn with_metrics(mut self, metrics: Arc<SyncMetrics>) -> Sync {
        for m in &self.monitors {
            metrics.register_monitor(&m.name);
        }
        self.metrics = metrics;
        self
    }

    /// With PagerDuty's REST API: an incident's problems are also found by its alerts.
    pub fn with_rest(mut self, rest: RestClient) -> Sync {
        self.rest = Some(rest);
        self
    }

    /// Something new is in the inbox (a webhook was stored): process it now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Plans every pending inbox item, oldest first, storing each one's effects with it.
    pub async fn process_inbox(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut processed = 0;
        loop {
            let items = self.store.inbox_pending(BATCH).await?;
            if items.is_empty() {
                return Ok(processed);
            }
            for item in &items {
                if item.origin == crate::maintenance::ORIGIN {
                    let effects = self.plan_maintenance(&item.body).await?;
                    tracing::info!(id = item.id, origin = %item.origin,
                        outcome = %effects.outcome, "maintenance notice processed");
                    self.store.inbox_done(item.id, &effects, now).await?;
                    processed += 1;
                    continue;
                }
                let effects = match plan::parse(&item.origin, &item.body) {
                    Ok(Some(change)) => match seen_key(&change) {
                        // A note arriving a second way (webhook and poller both on).
                        Some(key) if self.store.seen(&key).await? => {
                            pagerbridge_store::SyncEffects {
                                outcome: format!(
                                    "the note on incident {} was handled already (it arrived \
                                     another way)",
                                    change.incident_id
                                ),
                                ..Default::default()
                            }
                        }
                        key => {
                            let rows = self.rows_of(&change).await?;
                            let mut fx = if rows.is_empty() {
                                plan::plan(&change, None, &[])
                            } else {
                                combine(rows.iter().map(|row| {
                                    let monitors = plan::monitors_for(
                                        &self.monitors,
                                        &row.source,
                                        self.source_kinds.get(&row.source).map(String::as_str),
                                    );
                                    plan::plan(&change, Some(row), &monitors)
                                }))
                            };
                            fx.seen.extend(key);
                            fx
                        }
                    },
                    Ok(None) => pagerbridge_store::SyncEffects {
                        outcome: "nothing to do (not an incident change)".into(),
                        ..Default::default()
                    },
                    Err(why) => {
                        tracing::warn!(id = item.id, origin = %item.origin, %why,
                            "a stored PagerDuty change cannot be read; set aside");
                        pagerbridge_store::SyncEffects {
                            outcome: format!("unreadable: {why}"),
                            ..Default::default()
                        }
                    }
                };
                tracing::info!(id = item.id, origin = %item.origin, outcome = %effects.outcome,
                    "PagerDuty change processed");
                self.store.inbox_done(item.id, &effects, now).await?;
                processed += 1;
            }
        }
    }

    /// The map rows a change is about: those that know its incident; else, when the REST API
    /// is at hand, those of the dedup keys of the incident's alerts (an incident can hold the
    /// alerts of several problems: PagerDuty grouped them, or a responder merged incidents);
    /// else the one of its incident key.
    async fn rows_of(&self, change: &plan::PdChange) -> Result<Vec<MappedIncident>, StoreError> {
        let by_id = self.store.incidents_by_id(&change.incident_id).await?;
        if !by_id.is_empty() {
            return Ok(by_id);
        }
        let mut keys: Vec<String> = change.incident_key.iter().cloned().collect();
        if let Some(rest) = &self.rest
            && self
                .looked_up
                .lock()
                .expect("not poisoned")
                .insert(change.incident_id.clone())
        {
            match alert_keys(rest, &change.incident_id).await {
                Ok(found) => keys.extend(found),
                Err(e) => {
                    // Tried again with the incident's next change.
                    self.looked_up
                        .lock()
                        .expect("not poisoned")
                        .remove(&change.incident_id);
                    tracing::warn!(incident = %change.incident_id,
                        dedup_key = change.incident_key.as_deref().unwrap_or(""),
                        status = e.status(), response = e.body().map(ToString::to_string), error = %e,
                        "cannot list the incident's alerts; using its incident key only");
                }
            }
        }
        keys.sort();
        keys.dedup();
        let mut rows = Vec::new();
        for key in keys {
            let by_key = self.store.incidents_by_dedup_key(&key).await?;
            if let Some(row) = plan::find_row(change, &by_key) {
                rows.push(row.clone());
            }
        }
        Ok(rows)
    }

    /// Plans a maintenance watch's item: its map row is the one of its routing key and dedup
    /// key (PagerDuty may not have opened any incident).
    async fn plan_maintenance(
        &self,
        body: &[u8],
    ) -> Result<pagerbridge_store::SyncEffects, StoreError> {
        let row = match plan::parse_maintenance(body) {
            Ok(n) => self
                .store
                .incidents_by_dedup_key(&n.dedup_key)
                .await?
                .into_iter()
                .find(|r| r.routing_key == n.routing_key),
            Err(why) => {
                tracing::warn!(%why, "a stored maintenance notice cannot be read; set aside");
                None
            }
        };
        let monitors = row
            .as_ref()
            .map(|r| {
                plan::monitors_for(
                    &self.monitors,
                    &r.source,
                    self.source_kinds.get(&r.source).map(String::as_str),
                )
            })
            .unwrap_or_default();
        Ok(plan::plan_maintenance(body, row.as_ref(), &monitors))
    }

    /// Starts a task per monitor with due write-backs and none running; returns how many
    /// started. Each task wakes the loop when it ends, for the next write-back of its lanes.
    /// What a task carries out is claimed first, so that no other replica on a shared store
    /// carries it out too.
    pub async fn dispatch_writebacks(
        self: &Arc<Self>,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let due = self.store.due_writebacks(now, BATCH).await?;
        let mut taken: HashSet<String> = HashSet::new();
        let mut ids = Vec::new();
        for w in &due {
            if taken.contains(&w.monitor) {
                ids.push(w.id);
            } else if self
                .busy
                .lock()
                .expect("not poisoned")
                .insert(w.monitor.clone())
            {
                taken.insert(w.monitor.clone());
                ids.push(w.id);
            }
        }
        let claimed = match self
            .store
            .claim_writebacks(&self.owner, &ids, now, CLAIM_LEASE)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                self.unbusy(&taken);
                return Err(e);
            }
        };
        let until = now + SignedDuration::try_from(CLAIM_LEASE).unwrap_or(SignedDuration::MAX);
        let mut per_monitor: HashMap<String, Vec<WritebackRecord>> = HashMap::new();
        for w in claimed {
            per_monitor.entry(w.monitor.clone()).or_default().push(w);
        }
        // Another replica claimed all of theirs first.
        self.unbusy(
            &taken
                .iter()
                .filter(|m| !per_monitor.contains_key(*m))
                .cloned()
                .collect(),
        );
        let started = per_monitor.len();
        for (monitor, items) in per_monitor {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.run_monitor(items, now, until).await {
                    tracing::warn!(%monitor, error = %e, "cannot record write-backs; trying again");
                }
                me.busy.lock().expect("not poisoned").remove(&monitor);
                me.wake.notify_one();
            });
        }
        Ok(started)
    }

    fn unbusy(&self, monitors: &HashSet<String>) {
        let mut busy = self.busy.lock().expect("not poisoned");
        for m in monitors {
            busy.remove(m);
        }
    }

    /// Carries out claimed write-backs in order, while the claim (held `until`) lasts: those it
    /// has no time left for are taken again, by whichever replica, once the claim has passed.
    async fn run_monitor(
        &self,
        items: Vec<WritebackRecord>,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        let call = SignedDuration::try_from(CALL_LIMIT).unwrap_or(SignedDuration::MAX);
        for w in items {
            if Timestamp::now() + call >= until {
                tracing::warn!(id = w.id, monitor = %w.monitor,
                    "write-backs took too long; leaving the rest for after the claim lapses");
                break;
            }
            let outcome = self.attempt(&w).await;
            let outcome = match outcome {
                WritebackOutcome::Retry { error, .. }
                    if now.duration_since(w.created_at)
                        >= SignedDuration::try_from(self.backoff.give_up_after)
                            .unwrap_or(SignedDuration::MAX) =>
                {
                    WritebackOutcome::Failed {
                        error: format!("gave up after {} attempts: {error}", w.attempts + 1),
                    }
                }
                WritebackOutcome::Retry { error, .. } => WritebackOutcome::Retry {
                    error,
                    retry_at: now
                        + SignedDuration::try_from(self.backoff.delay(w.attempts))
                            .unwrap_or(SignedDuration::from_secs(60)),
                },
                other => other,
            };
            self.metrics
                .writeback(&w.monitor, WritebackResult::of(&outcome));
            match &outcome {
                WritebackOutcome::Done { detail, .. } => {
                    tracing::info!(id = w.id, monitor = %w.monitor, dedup_key = %w.dedup_key,
                        %detail, "written back");
                }
                WritebackOutcome::Retry { error, retry_at } => {
                    tracing::warn!(id = w.id, monitor = %w.monitor,
                        routing_key = %pagerduty::events::mask_key(&w.routing_key),
                        dedup_key = %w.dedup_key, attempt = w.attempts + 1,
                        %error, %retry_at, "write-back failed; will retry");
                }
                WritebackOutcome::Failed { error } => {
                    tracing::error!(id = w.id, monitor = %w.monitor,
                        routing_key = %pagerduty::events::mask_key(&w.routing_key),
                        dedup_key = %w.dedup_key, attempt = w.attempts + 1,
                        %error, "write-back failed for good");
                }
            }
            self.store
                .finish_writeback(w.id, &outcome, Timestamp::now())
                .await?;
        }
        Ok(())
    }

    async fn attempt(&self, w: &WritebackRecord) -> WritebackOutcome {
        let Some(adapter) = self.adapters.get(&w.monitor) else {
            return WritebackOutcome::Failed {
                error: format!("monitor {:?} is no longer configured", w.monitor),
            };
        };
        let change: Change = match serde_json::from_value(w.change["change"].clone()) {
            Ok(c) => c,
            Err(e) => {
                return WritebackOutcome::Failed {
                    error: format!("the stored change cannot be read: {e}"),
                };
            }
        };
        let target: MonitorRef = match serde_json::from_value(w.change["target"].clone()) {
            Ok(t) => t,
            Err(e) => {
                return WritebackOutcome::Failed {
                    error: format!("the stored monitor reference cannot be read: {e}"),
                };
            }
        };
        let memo = match self.store.incidents_by_dedup_key(&w.dedup_key).await {
            Ok(rows) => rows
                .into_iter()
                .find(|r| r.routing_key == w.routing_key)
                .and_then(|r| r.memo),
            Err(e) => {
                return WritebackOutcome::Retry {
                    error: format!("reading the incident map: {e}"),
                    retry_at: Timestamp::now(),
                };
            }
        };
        let req = Request {
            target: &target,
            change: &change,
            memo: memo.as_ref(),
        };
        match tokio::time::timeout(CALL_LIMIT, adapter.apply(req)).await {
            Ok(Ok(applied)) => WritebackOutcome::Done {
                detail: applied.detail,
                memo: applied.memo,
            },
            Ok(Err(e)) if e.retry => WritebackOutcome::Retry {
                error: e.message,
                retry_at: Timestamp::now(),
            },
            Ok(Err(e)) => WritebackOutcome::Failed { error: e.message },
            Err(_) => WritebackOutcome::Retry {
                error: format!("no answer within {}s", CALL_LIMIT.as_secs()),
                retry_at: Timestamp::now(),
            },
        }
    }

    /// Runs until `stop`: processes the inbox when woken (or every few seconds) and carries
    /// out due write-backs.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let now = Timestamp::now();
            if let Err(e) = self.process_inbox(now).await {
                tracing::warn!(error = %e, "cannot process PagerDuty's changes; trying again");
            }
            if let Err(e) = self.dispatch_writebacks(Timestamp::now()).await {
                tracing::warn!(error = %e, "cannot run write-backs; trying again");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The key a change is recognised by when it arrives a second way. Status changes need none
/// (the map's status and its time recognise them); a note is its incident and its text.
fn seen_key(change: &plan::PdChange) -> Option<String> {
    use sha2::Digest;
    match &change.kind {
        plan::ChangeKind::Annotated { note } => Some(format!(
            "note:{}:{}",
            change.incident_id,
            hex::encode(sha2::Sha256::digest(note.as_bytes()))
        )),
        _ => None,
    }
}

/// The effects of one change on several map rows, as one.
fn combine(parts: impl Iterator<Item = SyncEffects>) -> SyncEffects {
    let mut all = SyncEffects::default();
    let mut outcomes = Vec::new();
    for fx in parts {
        all.updates.extend(fx.updates);
        all.writebacks.extend(fx.writebacks);
        all.seen.extend(fx.seen);
        outcomes.push(fx.outcome);
    }
    all.outcome = outcomes.join("; ");
    all
}

/// How many alerts of one incident are read to find its problems.
const MAX_ALERTS: usize = 500;

/// The dedup keys (`alert_key`) of an incident's alerts.
async fn alert_keys(rest: &RestClient, incident_id: &str) -> Result<Vec<String>, pagerduty::Error> {
    use futures::StreamExt;
    let mut keys = Vec::new();
    let mut alerts = std::pin::pin!(rest.incident_alerts(incident_id).take(MAX_ALERTS));
    while let Some(alert) = alerts.next().await {
        if let Some(key) = alert?.alert_key {
            keys.push(key);
        }
    }
    Ok(keys)
}
