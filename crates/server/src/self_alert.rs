//! pagerbridge's own incident: raised when the outbox is stuck (its oldest undelivered event is
//! older than `[self_alert] max_age`) or holds dead letters, resolved once it is healthy again.
//!
//! It goes to PagerDuty by a path of its own, one Events API request from this task with its
//! own client and retries, never through the outbox: the outbox is what may be stuck.
//!
//! [`decide`] is the whole policy, a pure function of what was last told to PagerDuty and one
//! look at the outbox. It has hysteresis: the incident is raised at `max_age` but resolved only
//! once the oldest event is younger than half of it (and no dead letter waits) for
//! [`CLEAR_CHECKS`] looks in a row, so a backlog hovering around the threshold pages once.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use pagerbridge_config::Config;
use pagerbridge_store::{ListQuery, State as EventState, Store};
use pagerduty::events::mask_key;
use pagerduty::{Disposition, Event, EventAction, EventsClient, Severity};
use serde_json::json;
use tokio::sync::watch;

use crate::dispatch::limits::backoff;

/// Healthy looks in a row before the incident is resolved.
pub const CLEAR_CHECKS: u32 = 2;

/// Pending events looked at for PagerDuty's last answer (newest first).
const ANSWER_SAMPLE: usize = 500;

/// What makes pagerbridge page about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_age: Duration,
    pub on_dead_letters: bool,
}

/// `[self_alert]` as the task uses it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub routing_key: String,
    pub dedup_key: String,
    /// Named in the summary and as the event's source.
    pub host: String,
    pub limits: Limits,
    pub check_interval: Duration,
    /// First wait after PagerDuty failed the self-alert's own request; doubled, with jitter,
    /// up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

impl Settings {
    /// The settings of `[self_alert]`; `None` when it is off (no routing key).
    pub fn from_config(config: &Config) -> Option<Settings> {
        let s = &config.self_alert;
        let routing_key = s.routing_key.clone()?;
        let host = host_name().unwrap_or_else(|| config.data_dir().display().to_string());
        Some(Settings {
            routing_key,
            dedup_key: s
                .dedup_key
                .clone()
                .unwrap_or_else(|| format!("pagerbridge-self-alert/{host}")),
            host,
            limits: Limits {
                max_age: s.max_age.get(),
                on_dead_letters: s.on_dead_letters,
            },
            check_interval: s.check_interval.get(),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
        })
    }
}

/// This machine's name, from the kernel or `/etc/hostname`.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty())
}

/// One look at the outbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Events not delivered yet.
    pub pending: u64,
    /// How long the oldest of them has waited.
    pub oldest_age: Option<Duration>,
    pub dead: u64,
    /// What PagerDuty last answered an undelivered event: its status, or that it did not answer.
    pub last_answer: Option<Answer>,
    /// The outbox could not be read: that is a reason to page too.
    pub store_error: Option<String>,
}

/// PagerDuty's last answer to a delivery that failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Status { status: u16, error: String },
    NoAnswer { error: String },
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status { status, .. } => write!(f, "PagerDuty answers {status}"),
            Answer::NoAnswer { .. } => f.write_str("no answer from PagerDuty"),
        }
    }
}

/// What PagerDuty was last told (and accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Incident {
    /// Not known since this process started: a previous run may have left one open.
    #[default]
    Unknown,
    Open,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelfState {
    pub incident: Incident,
    /// Healthy looks in a row while the incident is open.
    pub healthy_checks: u32,
}

impl SelfState {
    /// The state once PagerDuty accepted `decision`.
    pub fn accepted(self, decision: &Decision) -> SelfState {
        match decision {
            Decision::Trigger(_) => SelfState {
                incident: Incident::Open,
                healthy_checks: 0,
            },
            Decision::Resolve => SelfState {
                incident: Incident::Resolved,
                healthy_checks: 0,
            },
            Decision::Nothing => self,
        }
    }
}

/// What is wrong, as the incident tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Undelivered events and the age of the oldest, when that is over `max_age`.
    pub backlog: Option<(u64, Duration)>,
    pub last_answer: Option<Answer>,
    /// Dead letters waiting, when `on_dead_letters` and there are some.
    pub dead: u64,
    pub store_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Trigger(Problem),
    Resolve,
    Nothing,
}

/// The policy. `state` is what PagerDuty was last told; the returned state counts healthy
/// looks, and becomes `Open` or `Resolved` only through [`SelfState::accepted`], once
/// PagerDuty took the event: a failed send is decided, and so tried, again at the next look.
pub fn decide(state: SelfState, obs: &Observation, limits: &Limits) -> (SelfState, Decision) {
    let dead = if limits.on_dead_letters { obs.dead } else { 0 };
    let age = obs.oldest_age.unwrap_or_default();
    let over = |threshold: Duration| obs.pending > 0 && age >= threshold;
    let raise = over(limits.max_age) || dead > 0 || obs.store_error.is_some();
    let still = over(limits.max_age / 2) || dead > 0 || obs.store_error.is_some();
    let problem = || Problem {
        backlog: over(limits.max_age).then_some((obs.pending, age)),
        last_answer: obs.last_answer.clone(),
        dead,
        store_error: obs.store_error.clone(),
    };
    match state.incident {
        Incident::Open if still => (
            SelfState {
                healthy_checks: 0,
                ..state
            },
            Decision::Nothing,
        ),
        Incident::Open => {
            let healthy_checks = state.healthy_checks + 1;
            let decision = if healthy_checks >= CLEAR_CHECKS {
                Decision::Resolve
            } else {
                Decision::Nothing
            };
            (
                SelfState {
                    healthy_checks,
                    ..state
                },
                decision,
            )
        }
        Incident::Resolved | Incident::Unknown if raise => (state, Decision::Trigger(problem())),
        Incident::Resolved => (state, Decision::Nothing),
        // A resolve of an alert PagerDuty does not have is accepted and changes nothing; one
        // a previous run left open is closed.
        Incident::Unknown if still => (state, Decision::Nothing),
        Incident::Unknown => (state, Decision::Resolve),
    }
}

/// The incident's title: "pagerbridge on db1: 42 events undelivered, oldest 7 min (PagerDuty
/// answers 503); 3 dead letters".
pub fn summary(host: &str, problem: &Problem) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &problem.store_error {
        parts.push(format!("cannot read its outbox ({})", cut(e, 200)));
    }
    if let Some((pending, age)) = problem.backlog {
        let mut p = format!(
            "{pending} {} undelivered, oldest {}",
            plural(pending, "event", "events"),
            human(age)
        );
        if let Some(answer) = &problem.last_answer {
            p.push_str(&format!(" ({answer})"));
        }
        parts.push(p);
    }
    if problem.dead > 0 {
        parts.push(format!(
            "{} {}",
            problem.dead,
            plural(problem.dead, "dead letter", "dead letters")
        ));
    }
    format!("pagerbridge on {host}: {}", parts.join("; "))
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `45 s`, `7 min`, `2 h 5 min`, `3 d 4 h`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 if s % 3600 < 60 => format!("{} h", s / 3600),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The event for a decision (`None` for nothing to send).
pub fn event(settings: &Settings, decision: &Decision, now: Timestamp) -> Option<Event> {
    match decision {
        Decision::Nothing => None,
        Decision::Resolve => Some(Event::update(
            settings.routing_key.clone(),
            EventAction::Resolve,
            settings.dedup_key.clone(),
        )),
        Decision::Trigger(p) => {
            let severity = if p.backlog.is_some() || p.store_error.is_some() {
                Severity::Critical
            } else {
                Severity::Error
            };
            let mut e = Event::trigger(
                settings.routing_key.clone(),
                summary(&settings.host, p),
                settings.host.clone(),
                severity,
            )
            .with_dedup_key(settings.dedup_key.clone());
            e.client = Some("pagerbridge".into());
            if let Some(payload) = e.payload.as_mut() {
                payload.timestamp = Some(now.to_string());
                payload.component = Some("pagerbridge".into());
                payload.group = Some("outbox".into());
                payload.class = Some(
                    match (p.backlog.is_some(), p.dead > 0) {
                        (true, true) => "undelivered events and dead letters",
                        (true, false) => "undelivered events",
                        (false, true) => "dead letters",
                        (false, false) => "outbox unreadable",
                    }
                    .into(),
                );
                payload.custom_details = Some(details(settings, p));
            }
            Some(e)
        }
    }
}

fn details(settings: &Settings, p: &Problem) -> serde_json::Value {
    let (pending, age) = p.backlog.unwrap_or_default();
    let (status, error) = match &p.last_answer {
        Some(Answer::Status { status, error }) => (Some(*status), Some(error.as_str())),
        Some(Answer::NoAnswer { error }) => (None, Some(error.as_str())),
        None => (None, None),
    };
    json!({
        "host": settings.host,
        "undelivered": pending,
        "oldest_undelivered_age_seconds": age.as_secs(),
        "max_age_seconds": settings.limits.max_age.as_secs(),
        "pagerduty_last_status": status,
        "pagerduty_last_error": error.map(|e| cut(e, 1000)),
        "dead_letters": p.dead,
        "outbox_error": p.store_error,
        "what_to_do": "pagerbridge queue status / queue list --state dead (same --config as the \
                       daemon); see docs/outbox.md and docs/observability.md",
    })
}

/// Looks at the outbox.
pub async fn observe(store: &dyn Store, now: Timestamp) -> Observation {
    let stats = match store.stats().await {
        Ok(s) => s,
        Err(e) => {
            return Observation {
                store_error: Some(e.to_string()),
                ..Observation::default()
            };
        }
    };
    let oldest_age = stats
        .oldest_pending_at
        .map(|at| Duration::try_from(now.duration_since(at)).unwrap_or_default());
    let last_answer = if stats.pending > 0 {
        last_answer(store).await
    } else {
        None
    };
    Observation {
        pending: stats.pending,
        oldest_age,
        dead: stats.dead,
        last_answer,
        store_error: None,
    }
}

/// PagerDuty's answer to the most recently tried undelivered event among the newest ones.
async fn last_answer(store: &dyn Store) -> Option<Answer> {
    let pending = store
        .list(&ListQuery {
            states: vec![EventState::Pending],
            limit: ANSWER_SAMPLE,
            ..ListQuery::default()
        })
        .await
        .ok()?;
    let tried = pending
        .into_iter()
        .filter(|e| e.last_error.is_some() || e.last_status.is_some())
        .max_by_key(|e| e.last_attempt_at)?;
    let error = tried.last_error.unwrap_or_default();
    Some(match tried.last_status {
        Some(status) => Answer::Status { status, error },
        None => Answer::NoAnswer { error },
    })
}

/// The task: looks at the outbox every `check_interval` and tells PagerDuty what [`decide`]
/// says, until `stop` turns true.
pub async fn run(
    settings: Settings,
    store: Arc<dyn Store>,
    client: EventsClient,
    mut stop: watch::Receiver<bool>,
) {
    let key = mask_key(&settings.routing_key);
    tracing::info!(routing_key = %key, dedup_key = %settings.dedup_key,
        max_age_s = settings.limits.max_age.as_secs(), on_dead_letters = settings.limits.on_dead_letters,
        "self-alerting is on");
    let mut state = SelfState::default();
    // Failed sends in a row, for the backoff and the logs.
    let mut failures: u32 = 0;
    loop {
        let now = Timestamp::now();
        let obs = observe(store.as_ref(), now).await;
        let (next, decision) = decide(state, &obs, &settings.limits);
        state = next;
        let wait = match event(&settings, &decision, now) {
            None => {
                failures = 0;
                settings.check_interval
            }
            Some(ev) => {
                let attempt = failures + 1;
                let action = ev.event_action;
                match client.send(&ev).await {
                    Ok(_) => {
                        failures = 0;
                        state = state.accepted(&decision);
                        match &decision {
                            Decision::Trigger(p) => tracing::warn!(
                                routing_key = %key, dedup_key = %settings.dedup_key, attempt,
                                summary = %summary(&settings.host, p),
                                "self-alert: raised pagerbridge's own incident"),
                            _ => tracing::info!(
                                routing_key = %key, dedup_key = %settings.dedup_key, attempt,
                                "self-alert: resolved pagerbridge's own incident (or confirmed none is open)"),
                        }
                        settings.check_interval
                    }
                    Err(e) => {
                        failures += 1;
                        let status = e.status();
                        let response = e.body().map(ToString::to_string);
                        match e.disposition() {
                            Disposition::Retry { after } => {
                                let delay = backoff(
                                    failures,
                                    settings.retry_delay,
                                    settings.max_retry_delay,
                                    after,
                                );
                                tracing::warn!(
                                    routing_key = %key, dedup_key = %settings.dedup_key, attempt,
                                    action = %action, status, response, error = %e,
                                    retry_in_ms = delay.as_millis() as u64,
                                    "self-alert: PagerDuty did not take pagerbridge's own event; will retry");
                                delay
                            }
                            _ => {
                                tracing::error!(
                                    routing_key = %key, dedup_key = %settings.dedup_key, attempt,
                                    action = %action, status, response, error = %e,
                                    "self-alert: PagerDuty refused pagerbridge's own event; check [self_alert] routing_key");
                                settings.check_interval
                            }
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_age: Duration::from_secs(300),
        on_dead_letters: true,
    };

    fn backlog(pending: u64, age_s: u64) -> Observation {
        Observation {
            pending,
            oldest_age: Some(Duration::from_secs(age_s)),
            last_answer: Some(Answer::Status {
                status: 503,
                error: "PagerDuty's Events API v2 answered HTTP 503".into(),
            }),
            ..Observation::default()
        }
    }

    fn healthy() -> Observation {
        Observation::default()
    }

    /// Runs looks through `decide`, PagerDuty accepting everything; returns the decisions.
    fn run(state: SelfState, looks: &[Observation]) -> (SelfState, Vec<Decision>) {
        let mut state = state;
        let mut out = Vec::new();
        for obs in looks {
            let (next, d) = decide(state, obs, &LIMITS);
            state = next.accepted(&d);
            out.push(d);
        }
        (state, out)
    }

    fn kinds(ds: &[Decision]) -> Vec<&'static str> {
        ds.iter()
            .map(|d| match d {
                Decision::Trigger(_) => "trigger",
                Decision::Resolve => "resolve",
                Decision::Nothing => "-",
            })
            .collect()
    }

    #[test]
    fn a_stuck_outbox_pages_once_and_resolves_after_two_healthy_looks() {
        let (state, ds) = run(
            SelfState::default(),
            &[
                backlog(3, 10),
                backlog(3, 299),
                backlog(42, 420),
                backlog(42, 480),
                healthy(),
                backlog(1, 5),
                healthy(),
                healthy(),
            ],
        );
        // The first healthy look closes what a previous run may have left open.
        assert_eq!(
            kinds(&ds),
            ["resolve", "-", "trigger", "-", "-", "resolve", "-", "-"]
        );
        assert_eq!(state.incident, Incident::Resolved);
        let Decision::Trigger(p) = &ds[2] else {
            unreachable!()
        };
        assert_eq!(
            summary("db1", p),
            "pagerbridge on db1: 42 events undelivered, oldest 7 min (PagerDuty answers 503)"
        );
    }

    #[test]
    fn hysteresis_a_backlog_hovering_around_the_threshold_does_not_flap() {
        // Over max_age, then between half of it and max_age, over again: one incident.
        let looks: Vec<_> = [310, 290, 200, 305, 151, 320, 160]
            .iter()
            .map(|&a| backlog(5, a))
            .collect();
        let (state, ds) = run(
            SelfState {
                incident: Incident::Resolved,
                healthy_checks: 0,
            },
            &looks,
        );
        assert_eq!(kinds(&ds), ["trigger", "-", "-", "-", "-", "-", "-"]);
        assert_eq!(state.incident, Incident::Open);
        // Under half of max_age once, then over it again: the count starts over.
        let (_, ds) = run(state, &[backlog(5, 100), backlog(5, 200), backlog(5, 100)]);
        assert_eq!(kinds(&ds), ["-", "-", "-"]);
        let (state, ds) = run(state, &[backlog(5, 100), backlog(5, 149)]);
        assert_eq!(kinds(&ds), ["-", "resolve"]);
        assert_eq!(state.incident, Incident::Resolved);
    }

    #[test]
    fn dead_letters_page_until_an_operator_clears_them() {
        let dead = Observation {
            dead: 3,
            ..Observation::default()
        };
        let (state, ds) = run(SelfState::default(), &[dead.clone(), dead.clone(), dead]);
        assert_eq!(kinds(&ds), ["trigger", "-", "-"]);
        let Decision::Trigger(p) = &ds[0] else {
            unreachable!()
        };
        assert_eq!(summary("h", p), "pagerbridge on h: 3 dead letters");
        let (_, ds) = run(state, &[healthy(), healthy()]);
        assert_eq!(kinds(&ds), ["-", "resolve"]);

        // Not when told not to.
        let off = Limits {
            on_dead_letters: false,
            ..LIMITS
        };
        let obs = Observation {
            dead: 3,
            ..Observation::default()
        };
        let (_, d) = decide(
            SelfState {
                incident: Incident::Resolved,
                healthy_checks: 0,
            },
            &obs,
            &off,
        );
        assert_eq!(d, Decision::Nothing);
    }

    #[test]
    fn a_send_pagerduty_did_not_take_is_decided_again() {
        let resolved = SelfState {
            incident: Incident::Resolved,
            healthy_checks: 0,
        };
        let (s, d) = decide(resolved, &backlog(1, 600), &LIMITS);
        assert!(matches!(d, Decision::Trigger(_)));
        // Not accepted: the next look triggers again, with the numbers of then.
        let (_, d) = decide(s, &backlog(2, 660), &LIMITS);
        let Decision::Trigger(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(p.backlog, Some((2, Duration::from_secs(660))));
    }

    #[test]
    fn both_problems_and_an_unreadable_outbox_in_the_summary() {
        let obs = Observation {
            dead: 1,
            last_answer: Some(Answer::NoAnswer {
                error: "timeout".into(),
            }),
            ..backlog(1, 3 * 3600 + 120)
        };
        let (_, d) = decide(SelfState::default(), &obs, &LIMITS);
        let Decision::Trigger(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            summary("h", &p),
            "pagerbridge on h: 1 event undelivered, oldest 3 h 2 min (no answer from PagerDuty); \
             1 dead letter"
        );
        let obs = Observation {
            store_error: Some("database is locked".into()),
            ..Observation::default()
        };
        let (_, d) = decide(SelfState::default(), &obs, &LIMITS);
        let Decision::Trigger(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            summary("h", &p),
            "pagerbridge on h: cannot read its outbox (database is locked)"
        );
    }

    #[test]
    fn the_events_sent() {
        let settings = Settings {
            routing_key: "5f4e3d2c1b0a49382716a5b4c3d2e1f0".into(),
            dedup_key: "pagerbridge-self-alert/h".into(),
            host: "h".into(),
            limits: LIMITS,
            check_interval: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
        };
        let now = Timestamp::now();
        let (_, d) = decide(SelfState::default(), &backlog(42, 420), &LIMITS);
        let e = event(&settings, &d, now).unwrap();
        assert_eq!(e.event_action, EventAction::Trigger);
        assert_eq!(e.dedup_key.as_deref(), Some("pagerbridge-self-alert/h"));
        let p = e.payload.unwrap();
        assert_eq!(p.severity, Severity::Critical);
        let details = p.custom_details.unwrap();
        assert_eq!(details["undelivered"], 42);
        assert_eq!(details["oldest_undelivered_age_seconds"], 420);
        assert_eq!(details["pagerduty_last_status"], 503);
        let e = event(&settings, &Decision::Resolve, now).unwrap();
        assert_eq!(e.event_action, EventAction::Resolve);
        assert_eq!(e.dedup_key.as_deref(), Some("pagerbridge-self-alert/h"));
        assert!(event(&settings, &Decision::Nothing, now).is_none());
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(420)), "7 min");
        assert_eq!(human(Duration::from_secs(7200)), "2 h");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human(Duration::from_secs(3 * 86400 + 4 * 3600)), "3 d 4 h");
    }
}
