//! Delivers webhook bodies to subscribers the way PagerDuty does: signed, with `X-Webhook-Id`,
//! one at a time per subscription (so per-incident order holds), retrying 429, 5xx, timeouts and
//! connection errors with exponential backoff, dropping other 4xx answers, and pausing a
//! subscription for 24 h after 3 consecutive dropped deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::seed::Settings;
use crate::world::Outgoing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// The receiver answered a 4xx other than 429: PagerDuty does not retry those.
    Dropped,
    /// Still failing after the last attempt.
    GaveUp,
    /// Not sent: the subscription is paused after consecutive dropped deliveries.
    SubscriptionDisabled,
}

/// Consecutive deliveries that ended without success before a subscription is paused.
pub const DISABLE_AFTER_DROPPED: u32 = 3;
/// How long PagerDuty pauses such a subscription.
pub const DISABLED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub webhook_id: String,
    pub subscription: String,
    pub url: String,
    pub event_type: String,
    pub incident: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

pub struct Job {
    pub outgoing: Outgoing,
    pub url: String,
    pub v3: bool,
}

#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    log: Mutex<Vec<DeliveryRecord>>,
    settings: Mutex<Settings>,
    health: Mutex<HashMap<String, Health>>,
}

/// A subscription's run of failed deliveries, and the pause it earned.
#[derive(Default)]
struct Health {
    dropped_in_a_row: u32,
    disabled_until: Option<Instant>,
}

impl Webhooks {
    pub fn new(settings: Settings) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(pagerduty::webhook::USER_AGENT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("static HTTP client configuration");
        Webhooks {
            inner: Arc::new(Inner {
                http,
                queues: Mutex::new(HashMap::new()),
                log: Mutex::new(Vec::new()),
                settings: Mutex::new(settings),
                health: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn set_settings(&self, settings: Settings) {
        *self.inner.settings.lock().expect("settings lock") = settings;
    }

    /// Queues a delivery. Called under the world lock, so the queue order is the order in which
    /// the changes happened.
    pub fn enqueue(&self, job: Job) {
        let record = DeliveryRecord {
            webhook_id: job.outgoing.webhook_id.clone(),
            subscription: job.outgoing.subscription.clone(),
            url: job.url.clone(),
            event_type: job.outgoing.event_type.clone(),
            incident: job.outgoing.incident.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
        };
        self.inner.log.lock().expect("log lock").push(record);
        let mut queues = self.inner.queues.lock().expect("queues lock");
        let sub = job.outgoing.subscription.clone();
        let tx = queues.entry(sub).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(worker(self.inner.clone(), rx));
            tx
        });
        if let Err(mpsc::error::SendError(job)) = tx.send(job) {
            // The worker ended (runtime shutting down); record it rather than lose it silently.
            self.update(&job.outgoing.webhook_id, |r| {
                r.state = DeliveryState::GaveUp;
                r.last_error = Some("delivery worker stopped".into());
            });
        }
    }

    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.log.lock().expect("log lock").clone()
    }

    /// Whether deliveries to this subscription are paused after repeated failures.
    pub fn is_paused(&self, subscription: &str) -> bool {
        self.inner
            .health
            .lock()
            .expect("health lock")
            .get(subscription)
            .and_then(|h| h.disabled_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Forgets finished deliveries and paused subscriptions (an emulator reset).
    pub fn clear_log(&self) {
        self.inner
            .log
            .lock()
            .expect("log lock")
            .retain(|r| r.state == DeliveryState::Pending);
        self.inner.health.lock().expect("health lock").clear();
    }

    fn update(&self, webhook_id: &str, f: impl FnOnce(&mut DeliveryRecord)) {
        update(&self.inner, webhook_id, f)
    }
}

fn update(inner: &Inner, webhook_id: &str, f: impl FnOnce(&mut DeliveryRecord)) {
    let mut log = inner.log.lock().expect("log lock");
    if let Some(r) = log.iter_mut().rev().find(|r| r.webhook_id == webhook_id) {
        f(r);
    }
}

async fn worker(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        let sub = job.outgoing.subscription.clone();
        let paused = inner
            .health
            .lock()
            .expect("health lock")
            .get(&sub)
            .and_then(|h| h.disabled_until)
            .is_some_and(|until| Instant::now() < until);
        if paused {
            update(&inner, &job.outgoing.webhook_id, |r| {
                r.state = DeliveryState::SubscriptionDisabled;
                r.last_error = Some(format!(
                    "subscription temporarily disabled after {DISABLE_AFTER_DROPPED} consecutive dropped deliveries"
                ));
            });
            continue;
        }
        let delivered = deliver(&inner, job).await;
        let mut health = inner.health.lock().expect("health lock");
        let h = health.entry(sub).or_default();
        if delivered {
            h.dropped_in_a_row = 0;
        } else {
            h.dropped_in_a_row += 1;
            if h.dropped_in_a_row >= DISABLE_AFTER_DROPPED {
                h.dropped_in_a_row = 0;
                h.disabled_until = Some(Instant::now() + DISABLED_FOR);
            }
        }
    }
}

/// Tries one delivery until it succeeds, is dropped or is given up; true when delivered.
async fn deliver(inner: &Inner, job: Job) -> bool {
    let id = job.outgoing.webhook_id.clone();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let settings = inner.settings.lock().expect("settings lock").clone();
        let mut req = inner
            .http
            .post(&job.url)
            .timeout(Duration::from_millis(settings.webhook_timeout_ms))
            .header("content-type", "application/json")
            .header(pagerduty::webhook::WEBHOOK_ID_HEADER, &id)
            .header(
                pagerduty::webhook::SUBSCRIPTION_HEADER,
                &job.outgoing.subscription,
            )
            .body(job.outgoing.body.clone());
        if !job.v3 {
            req = req.header("user-agent", "PagerDuty-Webhook/V2.0");
        }
        if let Some(sig) = &job.outgoing.signature {
            req = req.header(pagerduty::webhook::SIGNATURE_HEADER, sig);
        }
        let (status, error) = match req.send().await {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let retry = match status {
            Some(s) if (200..300).contains(&s) => {
                update(inner, &id, |r| {
                    r.state = DeliveryState::Delivered;
                    r.attempts = attempt;
                    r.last_status = status;
                    r.last_error = None;
                });
                return true;
            }
            Some(s) => s == 429 || s >= 500,
            None => true,
        };
        let give_up = !retry || attempt >= settings.webhook_max_attempts.max(1);
        update(inner, &id, |r| {
            r.attempts = attempt;
            r.last_status = status;
            r.last_error = error.clone();
            if give_up {
                r.state = if retry {
                    DeliveryState::GaveUp
                } else {
                    DeliveryState::Dropped
                };
            }
        });
        if give_up {
            tracing::debug!(webhook_id = %id, ?status, ?error, "webhook delivery ended without success");
            return false;
        }
        let base = settings.webhook_retry_base_ms.max(1);
        let backoff = base
            .saturating_mul(1u64 << (attempt - 1).min(16))
            .min(60_000);
        // Jitter keeps many failing subscriptions from retrying in lockstep.
        let jitter = rand::random_range(0..=backoff / 4);
        tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
    }
}
