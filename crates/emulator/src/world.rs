//! The emulated PagerDuty account: services, alerts, incidents, log entries, notes, maintenance
//! windows and webhook subscriptions, and the rules that change them. No HTTP here: handlers call
//! these methods under one lock, and every change that PagerDuty would announce by webhook is
//! queued in `outgoing` in the order it happened.

use std::collections::{HashMap, VecDeque};

use jiff::{Timestamp, Unit};
use pagerduty::events::{ChangeEvent, Event, EventAction, Severity, V1Context, V1Event};
use pagerduty::rest::{IncidentStatus, Urgency};
use serde_json::{Value, json};

use crate::seed::{
    IntegrationKind, Seed, SeedError, Settings, TokenKind, UrgencyRule, WebhookVersion,
};

/// An error the REST API answers with: `{"error":{"message","code","errors"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RestError {
    pub status: u16,
    pub message: String,
    pub code: i64,
    pub errors: Vec<String>,
}

impl RestError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        RestError {
            status,
            message: message.into(),
            code,
            errors: Vec::new(),
        }
    }

    pub fn invalid(errors: impl IntoIterator<Item = String>) -> Self {
        RestError {
            status: 400,
            message: "Invalid Input Provided".into(),
            code: 2001,
            errors: errors.into_iter().collect(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        let code = match what {
            "Service" => 5002,
            "Incident" | "Log Entry" | "Maintenance Window" => 5001,
            _ => 2100,
        };
        RestError::new(404, code, format!("{what} Not Found"))
    }

    pub fn body(&self) -> Value {
        let mut err = json!({"message": self.message, "code": self.code});
        if !self.errors.is_empty() {
            err["errors"] = json!(self.errors);
        }
        json!({ "error": err })
    }
}

/// Who did something: shown as `agent` in log entries and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    User(usize),
    /// Changes made by events arriving on a service's integration.
    Service(usize),
}

#[derive(Debug, Clone)]
pub struct UserRec {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct TokenRec {
    pub kind: TokenKind,
    pub user: Option<usize>,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct IntegrationRec {
    pub id: String,
    pub name: String,
    pub kind: IntegrationKind,
    pub service: usize,
}

#[derive(Debug, Clone)]
pub struct ServiceRec {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub disabled: bool,
    pub urgency: UrgencyRule,
    pub assignee: Option<usize>,
    pub created_at: Timestamp,
    pub last_incident_at: Option<Timestamp>,
    pub integrations: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IncidentRec {
    pub id: String,
    pub number: u64,
    pub title: String,
    pub service: usize,
    pub status: IncidentStatus,
    pub urgency: Urgency,
    pub incident_key: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_status_change_at: Timestamp,
    pub last_status_change_by: Agent,
    pub resolved_at: Option<Timestamp>,
    pub acknowledgements: Vec<(Timestamp, Agent)>,
    pub assignee: Option<(Timestamp, usize)>,
    pub alerts: Vec<usize>,
    pub body_details: Option<String>,
    pub first_log: usize,
    /// The incident this one was merged into (`PUT /incidents/{target}/merge`): its
    /// `resolve_reason` is then a `merge_resolve_reason` naming that incident.
    pub merged_into: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct AlertRec {
    pub id: String,
    pub incident: usize,
    pub service: usize,
    pub integration: String,
    pub routing_key: String,
    pub dedup_key: String,
    pub resolved: bool,
    pub severity: Severity,
    pub summary: String,
    pub created_at: Timestamp,
    pub details: Value,
    pub contexts: Vec<Value>,
    pub first_log: usize,
    /// Triggers merged into this alert by dedup, the first included.
    pub trigger_count: u64,
}

#[derive(Debug, Clone)]
pub struct LogRec {
    pub id: String,
    pub kind: &'static str,
    pub incident: usize,
    pub created_at: Timestamp,
    pub agent: Agent,
    pub channel: Value,
    pub summary: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NoteRec {
    pub id: String,
    pub incident: usize,
    pub user: usize,
    pub content: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct WindowRec {
    pub id: String,
    pub sequence_number: u64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub description: Option<String>,
    pub services: Vec<usize>,
    pub created_by: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct SubscriptionRec {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub service: Option<usize>,
    pub version: WebhookVersion,
    pub description: Option<String>,
    pub active: bool,
}

/// What an event did, for the admin log and for tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// A new alert and incident.
    Created {
        incident: String,
    },
    /// Added to the open alert with the same dedup key.
    Deduplicated {
        incident: String,
    },
    Acknowledged {
        incident: String,
    },
    Resolved {
        incident: String,
    },
    /// Accepted (202) but changed nothing, as PagerDuty does; `reason` says why.
    Dropped {
        reason: String,
    },
    /// A change event, stored on the service.
    Change,
}

/// One webhook body, ready to send, in the order the change happened.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subscription: String,
    pub webhook_id: String,
    pub event_type: String,
    pub incident: Option<String>,
    pub body: Vec<u8>,
    pub signature: Option<String>,
}

/// One request to an events endpoint, kept for `GET /_emulator/events`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Received {
    pub seq: u64,
    pub received_at: Timestamp,
    pub api: &'static str,
    pub status: u16,
    /// The body as JSON when it was JSON, else as text.
    pub body: Value,
    pub routing_key: Option<String>,
    pub dedup_key: Option<String>,
    pub errors: Vec<String>,
    #[serde(flatten)]
    pub effect: Option<Effect>,
}

pub struct World {
    pub base_url: String,
    pub settings: Settings,
    seed: Seed,
    pub users: Vec<UserRec>,
    pub tokens: HashMap<String, TokenRec>,
    pub services: Vec<ServiceRec>,
    pub integrations: HashMap<String, IntegrationRec>,
    pub incidents: Vec<IncidentRec>,
    incident_ids: HashMap<String, usize>,
    pub alerts: Vec<AlertRec>,
    /// (service, dedup key) -> open alert.
    open_alerts: HashMap<(usize, String), usize>,
    pub logs: Vec<LogRec>,
    pub notes: Vec<NoteRec>,
    pub windows: Vec<WindowRec>,
    pub subscriptions: Vec<SubscriptionRec>,
    pub change_events: Vec<(Timestamp, usize, ChangeEvent)>,
    pub received: VecDeque<Received>,
    received_seq: u64,
    next_number: u64,
    next_window_seq: u64,
    pub outgoing: Vec<Outgoing>,
}

/// PagerDuty refuses a merge that would leave the target with more alerts than this.
pub const MAX_ALERTS_PER_INCIDENT: usize = 1000;

/// PagerDuty ids: an uppercase letter then alphanumerics (`PT4KHLK`, log entries `Q02JTSNZWHSEKV`).
pub fn new_id(prefix: char, len: usize) -> String {
    use rand::RngExt;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(len);
    s.push(prefix);
    for _ in 1..len {
        s.push(CHARS[rng.random_range(0..CHARS.len())] as char);
    }
    s
}

/// REST timestamps are whole seconds, as PagerDuty writes them. Cut, not rounded: the filters
/// (`since`, `until`) compare the precise time, and an incident shown at 12:00:05 must be found
/// by `since=12:00:05` (rounding up 12:00:04.6 would hide it from a walk restarting there).
pub fn rest_time(t: Timestamp) -> String {
    t.round(
        jiff::TimestampRound::new()
            .smallest(Unit::Second)
            .mode(jiff::RoundMode::Trunc),
    )
    .map(|t| t.to_string())
    .unwrap_or_else(|_| t.to_string())
}

impl World {
    pub fn new(seed: Seed, base_url: String) -> Result<World, SeedError> {
        seed.validate()?;
        let now = Timestamp::now();
        let mut w = World {
            base_url,
            settings: seed.settings.clone(),
            seed: seed.clone(),
            users: Vec::new(),
            tokens: HashMap::new(),
            services: Vec::new(),
            integrations: HashMap::new(),
            incidents: Vec::new(),
            incident_ids: HashMap::new(),
            alerts: Vec::new(),
            open_alerts: HashMap::new(),
            logs: Vec::new(),
            notes: Vec::new(),
            windows: Vec::new(),
            subscriptions: Vec::new(),
            change_events: Vec::new(),
            received: VecDeque::new(),
            received_seq: 0,
            next_number: 1,
            next_window_seq: 1,
            outgoing: Vec::new(),
        };
        for u in &seed.users {
            w.users.push(UserRec {
                id: u.id.clone().unwrap_or_else(|| new_id('P', 7)),
                name: u.name.clone(),
                email: u.email.clone(),
                role: u.role.clone(),
            });
        }
        for t in &seed.tokens {
            let user = t.user.as_ref().and_then(|e| w.user_by_email(e));
            w.tokens.insert(
                t.token.clone(),
                TokenRec {
                    kind: t.kind,
                    user,
                    read_only: t.read_only,
                },
            );
        }
        for s in &seed.services {
            let idx = w.services.len();
            let mut integrations = Vec::new();
            for i in &s.integrations {
                integrations.push(i.key.clone());
                w.integrations.insert(
                    i.key.clone(),
                    IntegrationRec {
                        id: new_id('P', 7),
                        name: i.name.clone().unwrap_or_else(|| match i.kind {
                            IntegrationKind::EventsApiV2 => "Events API V2".into(),
                            IntegrationKind::GenericEventsApi => "Generic API".into(),
                        }),
                        kind: i.kind,
                        service: idx,
                    },
                );
            }
            let assignee = match &s.assignee {
                Some(e) => w.user_by_email(e),
                None => (!w.users.is_empty()).then_some(0),
            };
            w.services.push(ServiceRec {
                id: s.id.clone().unwrap_or_else(|| new_id('P', 7)),
                name: s.name.clone(),
                description: s.description.clone(),
                disabled: s.disabled,
                urgency: s.urgency,
                assignee,
                created_at: now,
                last_incident_at: None,
                integrations,
            });
        }
        for win in &seed.maintenance_windows {
            let services = win
                .services
                .iter()
                .filter_map(|n| w.service_by_name_or_id(n))
                .collect();
            let seq = w.next_window_seq;
            w.next_window_seq += 1;
            w.windows.push(WindowRec {
                id: new_id('P', 7),
                sequence_number: seq,
                start: win.start.parse().expect("validated"),
                end: win.end.parse().expect("validated"),
                description: win.description.clone(),
                services,
                created_by: None,
            });
        }
        for s in &seed.webhook_subscriptions {
            let service = s.service.as_ref().and_then(|n| w.service_by_name_or_id(n));
            w.subscriptions.push(SubscriptionRec {
                id: new_id('P', 7),
                url: s.url.clone(),
                secret: s.secret.clone().unwrap_or_else(new_secret),
                events: s.events.clone(),
                service,
                version: s.version,
                description: s.description.clone(),
                active: true,
            });
        }
        Ok(w)
    }

    /// Back to the seeded state; settings changed at run time are kept.
    pub fn reset(&mut self) {
        let mut fresh =
            World::new(self.seed.clone(), self.base_url.clone()).expect("seed was valid");
        fresh.settings = self.settings.clone();
        // Subscriptions keep their ids and secrets, and seeded users, services and integrations
        // the ids generated at start: receivers and clients were configured with them. The
        // seeded lists cannot grow or shrink at run time, so positions match.
        fresh.subscriptions = std::mem::take(&mut self.subscriptions);
        for (new, old) in fresh.users.iter_mut().zip(&self.users) {
            new.id.clone_from(&old.id);
        }
        for (new, old) in fresh.services.iter_mut().zip(&self.services) {
            new.id.clone_from(&old.id);
        }
        for (key, integ) in fresh.integrations.iter_mut() {
            if let Some(old) = self.integrations.get(key) {
                integ.id.clone_from(&old.id);
            }
        }
        *self = fresh;
    }

    pub fn user_by_email(&self, email: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub fn user_by_id(&self, id: &str) -> Option<usize> {
        self.users.iter().position(|u| u.id == id)
    }

    pub fn service_by_id(&self, id: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id == id)
    }

    fn service_by_name_or_id(&self, n: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id == n || s.name == n)
    }

    pub fn incident_by_id(&self, id: &str) -> Option<usize> {
        self.incident_ids.get(id).copied()
    }

    pub fn window_by_id(&self, id: &str) -> Option<usize> {
        self.windows.iter().position(|w| w.id == id)
    }

    pub fn in_maintenance(&self, service: usize, now: Timestamp) -> Option<&WindowRec> {
        self.windows
            .iter()
            .find(|w| w.services.contains(&service) && w.start <= now && now < w.end)
    }

    /// PagerDuty's service status: disabled and maintenance first, then the worst open incident.
    /// The REST reference defines it by incident status alone, whatever the urgency: any
    /// triggered incident makes the service critical, else any acknowledged one a warning.
    pub fn service_status(&self, service: usize, now: Timestamp) -> &'static str {
        let s = &self.services[service];
        if s.disabled {
            return "disabled";
        }
        if self.in_maintenance(service, now).is_some() {
            return "maintenance";
        }
        let mut status = "active";
        for inc in self.incidents.iter().filter(|i| i.service == service) {
            match inc.status {
                IncidentStatus::Triggered => return "critical",
                IncidentStatus::Acknowledged => status = "warning",
                IncidentStatus::Resolved => {}
            }
        }
        status
    }

    // ---------------------------------------------------------------- events

    pub fn record_received(&mut self, mut r: Received) -> u64 {
        self.received_seq += 1;
        r.seq = self.received_seq;
        self.received.push_back(r);
        while self.received.len() > self.settings.max_received_events.max(1) {
            self.received.pop_front();
        }
        self.received_seq
    }

    /// The service behind an integration key, or PagerDuty's 400 for a key nobody issued.
    pub fn integration(&self, routing_key: &str) -> Result<&IntegrationRec, Vec<String>> {
        self.integrations
            .get(routing_key)
            .ok_or_else(|| vec!["Invalid routing key".to_string()])
    }

    /// Applies an Events API v2 event with PagerDuty's alert semantics. Returns the dedup key
    /// PagerDuty answers with and what the event did.
    pub fn apply_event(
        &mut self,
        ev: &Event,
        now: Timestamp,
    ) -> Result<(String, Effect), Vec<String>> {
        let integ = self.integration(&ev.routing_key)?.clone();
        let service = integ.service;
        let dedup_key = ev.dedup_key.clone().unwrap_or_else(uuid_like);
        let open = self.open_alerts.get(&(service, dedup_key.clone())).copied();
        // An alert belongs to the integration whose trigger opened it; other keys cannot touch it.
        if let Some(a) = open
            && self.alerts[a].routing_key != ev.routing_key
        {
            return Ok((
                dedup_key,
                Effect::Dropped {
                    reason: "dedup_key belongs to an alert opened through another routing key"
                        .into(),
                },
            ));
        }
        let effect = match (ev.event_action, open) {
            (EventAction::Trigger, Some(a)) => {
                self.alerts[a].trigger_count += 1;
                let inc = self.alerts[a].incident;
                self.incidents[inc].updated_at = now;
                Effect::Deduplicated {
                    incident: self.incidents[inc].id.clone(),
                }
            }
            (EventAction::Trigger, None) => {
                if self.services[service].disabled {
                    return Ok((
                        dedup_key,
                        Effect::Dropped {
                            reason: "service is disabled".into(),
                        },
                    ));
                }
                if self.in_maintenance(service, now).is_some() {
                    return Ok((
                        dedup_key,
                        Effect::Dropped {
                            reason: "service is in a maintenance window".into(),
                        },
                    ));
                }
                let payload = ev
                    .payload
                    .as_ref()
                    .expect("validated trigger has a payload");
                // Optional fields left out rather than null: PagerDuty's contract types them as
                // strings.
                let context = |pairs: &[(&str, Option<&String>)]| {
                    Value::Object(
                        pairs
                            .iter()
                            .filter_map(|(k, v)| {
                                v.map(|v| ((*k).to_owned(), Value::from(v.as_str())))
                            })
                            .collect(),
                    )
                };
                let link = "link".to_owned();
                let image = "image".to_owned();
                let mut contexts: Vec<Value> = ev
                    .links
                    .iter()
                    .map(|l| {
                        context(&[
                            ("type", Some(&link)),
                            ("href", Some(&l.href)),
                            ("text", l.text.as_ref()),
                        ])
                    })
                    .collect();
                contexts.extend(ev.images.iter().map(|i| {
                    context(&[
                        ("type", Some(&image)),
                        ("src", Some(&i.src)),
                        ("href", i.href.as_ref()),
                        ("alt", i.alt.as_ref()),
                    ])
                }));
                let details = json!({
                    "custom_details": payload.custom_details,
                    "summary": payload.summary,
                    "source": payload.source,
                    "severity": payload.severity,
                    "timestamp": payload.timestamp,
                    "component": payload.component,
                    "group": payload.group,
                    "class": payload.class,
                    "client": ev.client,
                    "client_url": ev.client_url,
                });
                let inc = self.open_incident(
                    service,
                    &integ,
                    &ev.routing_key,
                    &dedup_key,
                    payload.severity,
                    &payload.summary,
                    details,
                    contexts,
                    now,
                );
                Effect::Created {
                    incident: self.incidents[inc].id.clone(),
                }
            }
            (EventAction::Acknowledge | EventAction::Resolve, None) => Effect::Dropped {
                reason: "no open alert with this dedup_key".into(),
            },
            (EventAction::Acknowledge, Some(a)) => {
                let inc = self.alerts[a].incident;
                if self.incidents[inc].status == IncidentStatus::Acknowledged {
                    Effect::Dropped {
                        reason: "incident already acknowledged".into(),
                    }
                } else {
                    self.acknowledge(inc, Agent::Service(service), channel_api(), now);
                    Effect::Acknowledged {
                        incident: self.incidents[inc].id.clone(),
                    }
                }
            }
            (EventAction::Resolve, Some(a)) => {
                let inc = self.alerts[a].incident;
                self.resolve_alert(a, now);
                if self.incidents[inc]
                    .alerts
                    .iter()
                    .all(|&x| self.alerts[x].resolved)
                {
                    self.resolve(inc, Agent::Service(service), channel_api(), None, now);
                }
                Effect::Resolved {
                    incident: self.incidents[inc].id.clone(),
                }
            }
        };
        Ok((dedup_key, effect))
    }

    /// A v1 event is a v2 event with other field names; PagerDuty processes them alike.
    pub fn apply_v1_event(
        &mut self,
        ev: &V1Event,
        now: Timestamp,
    ) -> Result<(String, Effect), Vec<String>> {
        let mut links = Vec::new();
        let mut images = Vec::new();
        for c in &ev.contexts {
            match c {
                V1Context::Link { href, text } => links.push(pagerduty::events::Link {
                    href: href.clone(),
                    text: text.clone(),
                }),
                V1Context::Image { src, href, alt } => images.push(pagerduty::events::Image {
                    src: src.clone(),
                    href: href.clone(),
                    alt: alt.clone(),
                }),
            }
        }
        let v2 = Event {
            routing_key: ev.service_key.clone(),
            event_action: ev.event_type,
            dedup_key: ev.incident_key.clone(),
            payload: ev.description.as_ref().map(|d| pagerduty::events::Payload {
                summary: d.clone(),
                // v1 has no source or severity; PagerDuty shows the client and treats it as critical.
                source: ev.client.clone().unwrap_or_else(|| "Events API v1".into()),
                severity: Severity::Critical,
                timestamp: None,
                component: None,
                group: None,
                class: None,
                custom_details: ev.details.clone(),
            }),
            client: ev.client.clone(),
            client_url: ev.client_url.clone(),
            links,
            images,
        };
        self.apply_event(&v2, now)
    }

    pub fn apply_change_event(
        &mut self,
        ev: &ChangeEvent,
        now: Timestamp,
    ) -> Result<Effect, Vec<String>> {
        let service = self.integration(&ev.routing_key)?.service;
        self.change_events.push((now, service, ev.clone()));
        Ok(Effect::Change)
    }

    #[allow(clippy::too_many_arguments)]
    fn open_incident(
        &mut self,
        service: usize,
        integ: &IntegrationRec,
        routing_key: &str,
        dedup_key: &str,
        severity: Severity,
        summary: &str,
        details: Value,
        contexts: Vec<Value>,
        now: Timestamp,
    ) -> usize {
        let urgency = match self.services[service].urgency {
            UrgencyRule::High => Urgency::High,
            UrgencyRule::Low => Urgency::Low,
            UrgencyRule::SeverityBased => match severity {
                Severity::Critical | Severity::Error => Urgency::High,
                Severity::Warning | Severity::Info => Urgency::Low,
            },
        };
        let inc = self.new_incident(
            service,
            summary.to_owned(),
            urgency,
            dedup_key.to_owned(),
            None,
            Agent::Service(service),
            json!({"type": "api", "summary": summary, "service_key": routing_key, "integration": integ.name}),
            now,
        );
        let alert = self.alerts.len();
        self.alerts.push(AlertRec {
            id: new_id('Q', 14),
            incident: inc,
            service,
            integration: integ.id.clone(),
            routing_key: routing_key.to_owned(),
            dedup_key: dedup_key.to_owned(),
            resolved: false,
            severity,
            summary: summary.to_owned(),
            created_at: now,
            details,
            contexts,
            first_log: self.incidents[inc].first_log,
            trigger_count: 1,
        });
        self.incidents[inc].alerts.push(alert);
        self.open_alerts
            .insert((service, dedup_key.to_owned()), alert);
        inc
    }

    #[allow(clippy::too_many_arguments)]
    fn new_incident(
        &mut self,
        service: usize,
        title: String,
        urgency: Urgency,
        incident_key: String,
        body_details: Option<String>,
        agent: Agent,
        channel: Value,
        now: Timestamp,
    ) -> usize {
        let idx = self.incidents.len();
        // 36^6 ids: among ten thousand incidents two would share one every few dozen runs.
        let id = loop {
            let id = new_id('P', 7);
            if !self.incident_ids.contains_key(&id) {
                break id;
            }
        };
        let number = self.next_number;
        self.next_number += 1;
        let assignee = self.services[service].assignee.map(|u| (now, u));
        self.incidents.push(IncidentRec {
            id: id.clone(),
            number,
            title,
            service,
            status: IncidentStatus::Triggered,
            urgency,
            incident_key,
            created_at: now,
            updated_at: now,
            last_status_change_at: now,
            last_status_change_by: agent,
            resolved_at: None,
            acknowledgements: Vec::new(),
            assignee,
            alerts: Vec::new(),
            body_details,
            first_log: 0,
            merged_into: None,
        });
        self.incident_ids.insert(id, idx);
        self.services[service].last_incident_at = Some(now);
        let log = self.log(idx, "trigger_log_entry", agent, channel, now, None);
        self.incidents[idx].first_log = log;
        self.announce(idx, "incident.triggered", agent, now);
        idx
    }

    fn resolve_alert(&mut self, alert: usize, _now: Timestamp) {
        let a = &mut self.alerts[alert];
        if !a.resolved {
            a.resolved = true;
            self.open_alerts.remove(&(a.service, a.dedup_key.clone()));
        }
    }

    fn log(
        &mut self,
        incident: usize,
        kind: &'static str,
        agent: Agent,
        channel: Value,
        now: Timestamp,
        note: Option<String>,
    ) -> usize {
        let summary = match (kind, agent) {
            ("trigger_log_entry", Agent::Service(_)) => "Triggered through the API".to_string(),
            ("trigger_log_entry", Agent::User(u)) => {
                format!("Triggered through the website by {}", self.users[u].name)
            }
            ("acknowledge_log_entry", a) => format!("Acknowledged by {}", self.agent_name(a)),
            ("unacknowledge_log_entry", a) => format!("Unacknowledged by {}", self.agent_name(a)),
            ("resolve_log_entry", a) => match self.incidents[incident].merged_into {
                Some(t) => format!(
                    "Resolved by {} (merged into #{})",
                    self.agent_name(a),
                    self.incidents[t].number
                ),
                None => format!("Resolved by {}", self.agent_name(a)),
            },
            ("annotate_log_entry", a) => format!("Note added by {}", self.agent_name(a)),
            ("assign_log_entry", _) => "Assigned".to_string(),
            (k, _) => k.to_string(),
        };
        let idx = self.logs.len();
        self.logs.push(LogRec {
            id: new_id('R', 26),
            kind,
            incident,
            created_at: now,
            agent,
            channel,
            summary,
            note,
        });
        idx
    }

    pub fn agent_name(&self, a: Agent) -> &str {
        match a {
            Agent::User(u) => &self.users[u].name,
            Agent::Service(s) => &self.services[s].name,
        }
    }

    fn acknowledge(&mut self, inc: usize, agent: Agent, channel: Value, now: Timestamp) {
        let i = &mut self.incidents[inc];
        i.status = IncidentStatus::Acknowledged;
        i.acknowledgements.push((now, agent));
        i.last_status_change_at = now;
        i.last_status_change_by = agent;
        i.updated_at = now;
        self.log(inc, "acknowledge_log_entry", agent, channel, now, None);
        self.announce(inc, "incident.acknowledged", agent, now);
    }

    fn unacknowledge(&mut self, inc: usize, agent: Agent, channel: Value, now: Timestamp) {
        let i = &mut self.incidents[inc];
        i.status = IncidentStatus::Triggered;
        i.acknowledgements.clear();
        i.last_status_change_at = now;
        i.last_status_change_by = agent;
        i.updated_at = now;
        self.log(inc, "unacknowledge_log_entry", agent, channel, now, None);
        self.announce(inc, "incident.unacknowledged", agent, now);
    }

    fn resolve(
        &mut self,
        inc: usize,
        agent: Agent,
        channel: Value,
        resolution: Option<String>,
        now: Timestamp,
    ) {
        for a in self.incidents[inc].alerts.clone() {
            self.resolve_alert(a, now);
        }
        let i = &mut self.incidents[inc];
        i.status = IncidentStatus::Resolved;
        i.resolved_at = Some(now);
        i.acknowledgements.clear();
        i.assignee = None;
        i.last_status_change_at = now;
        i.last_status_change_by = agent;
        i.updated_at = now;
        self.log(inc, "resolve_log_entry", agent, channel, now, resolution);
        self.announce(inc, "incident.resolved", agent, now);
    }

    // ---------------------------------------------------------------- REST writes

    /// Changes one incident's status/title/urgency (`PUT /incidents/{id}`, bulk elements).
    pub fn check_update(&self, inc: usize, update: &IncidentPatch) -> Result<(), RestError> {
        let i = &self.incidents[inc];
        if i.status == IncidentStatus::Resolved && update.status.is_some() {
            return Err(RestError {
                status: 400,
                message: "Incident Already Resolved".into(),
                code: 1001,
                errors: vec![format!("Incident {} is already resolved", i.id)],
            });
        }
        if update.resolution.is_some() && update.status != Some(IncidentStatus::Resolved) {
            return Err(RestError::invalid([
                "resolution can only be given with status resolved".to_string(),
            ]));
        }
        Ok(())
    }

    pub fn apply_update(
        &mut self,
        inc: usize,
        update: &IncidentPatch,
        user: usize,
        now: Timestamp,
    ) {
        let agent = Agent::User(user);
        let channel = json!({"type": "website"});
        if let Some(title) = &update.title {
            self.incidents[inc].title = title.clone();
            self.incidents[inc].updated_at = now;
        }
        if let Some(u) = update.urgency {
            self.incidents[inc].urgency = u;
            self.incidents[inc].updated_at = now;
        }
        match (self.incidents[inc].status, update.status) {
            (_, None) => {}
            (IncidentStatus::Triggered, Some(IncidentStatus::Acknowledged))
            | (IncidentStatus::Acknowledged, Some(IncidentStatus::Acknowledged)) => {
                // A second acknowledgement restarts the acknowledgement timeout in PagerDuty.
                self.acknowledge(inc, agent, channel, now)
            }
            (IncidentStatus::Acknowledged, Some(IncidentStatus::Triggered)) => {
                self.unacknowledge(inc, agent, channel, now)
            }
            (IncidentStatus::Triggered, Some(IncidentStatus::Triggered)) => {}
            (_, Some(IncidentStatus::Resolved)) => {
                if let Some(r) = &update.resolution {
                    self.add_note(inc, user, r.clone(), now);
                }
                self.resolve(inc, agent, channel, update.resolution.clone(), now)
            }
            (IncidentStatus::Resolved, Some(_)) => {}
        }
    }

    pub fn create_incident(
        &mut self,
        new: NewIncidentReq,
        user: usize,
        now: Timestamp,
    ) -> Result<usize, RestError> {
        let service = self
            .service_by_id(&new.service_id)
            .ok_or_else(|| RestError::invalid([format!("Service {} not found", new.service_id)]))?;
        if let Some(key) = &new.incident_key
            && self.incidents.iter().any(|i| {
                i.service == service
                    && &i.incident_key == key
                    && i.status != IncidentStatus::Resolved
            })
        {
            return Err(RestError::invalid([format!(
                "Open incident with key '{key}' already exists on this service"
            )]));
        }
        let urgency = new.urgency.unwrap_or(match self.services[service].urgency {
            UrgencyRule::Low => Urgency::Low,
            _ => Urgency::High,
        });
        let key = new.incident_key.unwrap_or_else(uuid_like);
        let inc = self.new_incident(
            service,
            new.title,
            urgency,
            key,
            new.body_details,
            Agent::User(user),
            json!({"type": "web_trigger", "summary": "Created through the API"}),
            now,
        );
        Ok(inc)
    }

    /// Why `PUT /incidents/{target}/merge` would refuse to merge `sources` (in request order)
    /// into `target`; checked before anything changes, so a refused merge changes nothing.
    pub fn check_merge(&self, target: usize, sources: &[usize]) -> Result<(), RestError> {
        let t = &self.incidents[target];
        if t.status == IncidentStatus::Resolved {
            // The REST reference: "Open incidents cannot be merged into a resolved incident. The
            // target incident must be open." It documents no message; this is the emulator's.
            return Err(RestError {
                status: 400,
                message: "Incident Already Resolved".into(),
                code: 1001,
                errors: vec![format!(
                    "Incident {} is resolved: the target of a merge must be open",
                    t.id
                )],
            });
        }
        let mut alerts = t.alerts.len();
        for (n, &s) in sources.iter().enumerate() {
            let src = &self.incidents[s];
            if s == target {
                return Err(RestError::invalid([format!(
                    "source_incidents[{n}]: incident {} cannot be merged into itself",
                    src.id
                )]));
            }
            if sources[..n].contains(&s) {
                return Err(RestError::invalid([format!(
                    "source_incidents[{n}]: incident {} is listed more than once",
                    src.id
                )]));
            }
            if let Some(into) = src.merged_into {
                return Err(RestError::invalid([format!(
                    "source_incidents[{n}]: incident {} was already merged into {}; it has no alerts left to merge",
                    src.id, self.incidents[into].id
                )]));
            }
            alerts += src.alerts.len();
        }
        if alerts > MAX_ALERTS_PER_INCIDENT {
            return Err(RestError::invalid([format!(
                "An incident cannot have more than {MAX_ALERTS_PER_INCIDENT} alerts; the merge would give {} {alerts}",
                t.id
            )]));
        }
        Ok(())
    }

    /// Merges `sources` into `target` as PagerDuty does: their alerts move to the target with
    /// their dedup keys (so later events with those keys act on the target), and each source
    /// is resolved by `user` with a `merge_resolve_reason` naming the target (a
    /// `resolve_log_entry` and an `incident.resolved` webhook). A source that was already
    /// resolved gives up its (resolved) alerts and gains the reason, without a second resolve.
    pub fn apply_merge(&mut self, target: usize, sources: &[usize], user: usize, now: Timestamp) {
        for &s in sources {
            let moved = std::mem::take(&mut self.incidents[s].alerts);
            for &a in &moved {
                self.alerts[a].incident = target;
            }
            self.incidents[target].alerts.extend(moved);
            self.incidents[s].merged_into = Some(target);
            self.incidents[s].updated_at = now;
            if self.incidents[s].status != IncidentStatus::Resolved {
                self.resolve(s, Agent::User(user), json!({"type": "website"}), None, now);
            }
        }
        self.incidents[target].updated_at = now;
    }

    /// `resolve_reason` of an incident: a `merge_resolve_reason` once it was merged away, the
    /// only reason PagerDuty has; `null` otherwise.
    pub fn resolve_reason(&self, i: usize) -> Value {
        match self.incidents[i].merged_into {
            Some(t) => json!({"type": "merge_resolve_reason", "incident": self.incident_ref(t)}),
            None => Value::Null,
        }
    }

    pub fn add_note(&mut self, inc: usize, user: usize, content: String, now: Timestamp) -> usize {
        let idx = self.notes.len();
        self.notes.push(NoteRec {
            id: new_id('P', 7),
            incident: inc,
            user,
            content: content.clone(),
            created_at: now,
        });
        self.incidents[inc].updated_at = now;
        self.log(
            inc,
            "annotate_log_entry",
            Agent::User(user),
            json!({"type": "note", "summary": content}),
            now,
            Some(content),
        );
        self.announce_note(idx, now);
        idx
    }

    pub fn add_window(
        &mut self,
        start: Timestamp,
        end: Timestamp,
        description: Option<String>,
        services: Vec<usize>,
        created_by: Option<usize>,
    ) -> usize {
        let seq = self.next_window_seq;
        self.next_window_seq += 1;
        self.windows.push(WindowRec {
            id: new_id('P', 7),
            sequence_number: seq,
            start,
            end,
            description,
            services,
            created_by,
        });
        self.windows.len() - 1
    }

    pub fn add_subscription(&mut self, sub: SubscriptionRec) -> usize {
        self.subscriptions.push(sub);
        self.subscriptions.len() - 1
    }

    // ---------------------------------------------------------------- webhooks

    fn subscribers(&self, service: usize, event_type: &str) -> Vec<usize> {
        self.subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active)
            .filter(|(_, s)| s.service.is_none_or(|x| x == service))
            .filter(|(_, s)| s.events.is_empty() || s.events.iter().any(|e| e == event_type))
            .map(|(i, _)| i)
            .collect()
    }

    fn announce(&mut self, inc: usize, event_type: &str, agent: Agent, now: Timestamp) {
        let service = self.incidents[inc].service;
        let subs = self.subscribers(service, event_type);
        if subs.is_empty() {
            return;
        }
        let data = self.webhook_incident(inc);
        for s in subs {
            let body = match self.subscriptions[s].version {
                WebhookVersion::V3 => self.v3_body(event_type, agent, data.clone(), now),
                WebhookVersion::V2 => self.v2_body(inc, event_type, now),
            };
            self.push_outgoing(s, event_type, Some(inc), body);
        }
    }

    fn announce_note(&mut self, note: usize, now: Timestamp) {
        let n = self.notes[note].clone();
        let service = self.incidents[n.incident].service;
        let event_type = "incident.annotated";
        for s in self.subscribers(service, event_type) {
            let body = match self.subscriptions[s].version {
                WebhookVersion::V3 => {
                    let data = json!({
                        "incident": self.incident_ref(n.incident),
                        "id": n.id,
                        "content": n.content,
                        "trimmed": false,
                        "type": "incident_note",
                    });
                    self.v3_body(event_type, Agent::User(n.user), data, now)
                }
                WebhookVersion::V2 => self.v2_body(n.incident, event_type, now),
            };
            self.push_outgoing(s, event_type, Some(n.incident), body);
        }
    }

    /// `pagey.ping` to one subscription (`POST /webhook_subscriptions/{id}/ping`).
    pub fn ping(&mut self, sub: usize, now: Timestamp) {
        let body = json!({"event": {
            "id": new_id('0', 26),
            "event_type": "pagey.ping",
            "resource_type": "pagey",
            "occurred_at": now.to_string(),
            "agent": null,
            "client": null,
            "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
        }});
        self.push_outgoing(sub, "pagey.ping", None, body);
    }

    fn push_outgoing(&mut self, sub: usize, event_type: &str, inc: Option<usize>, body: Value) {
        let s = &self.subscriptions[sub];
        let bytes = serde_json::to_vec(&body).expect("JSON values serialise");
        let signature = match s.version {
            WebhookVersion::V3 => Some(pagerduty::webhook::sign(s.secret.as_bytes(), &bytes)),
            WebhookVersion::V2 => None,
        };
        self.outgoing.push(Outgoing {
            subscription: s.id.clone(),
            webhook_id: uuid_like(),
            event_type: event_type.to_owned(),
            incident: inc.map(|i| self.incidents[i].id.clone()),
            body: bytes,
            signature,
        });
    }

    fn v3_body(&self, event_type: &str, agent: Agent, data: Value, now: Timestamp) -> Value {
        json!({"event": {
            "id": new_id('0', 26),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": now.to_string(),
            "agent": self.agent_ref(agent),
            "client": null,
            "data": data,
        }})
    }

    fn v2_body(&self, inc: usize, event_type: &str, now: Timestamp) -> Value {
        let v2_event = match event_type {
            "incident.triggered" => "incident.trigger",
            "incident.acknowledged" => "incident.acknowledge",
            "incident.unacknowledged" => "incident.unacknowledge",
            "incident.resolved" => "incident.resolve",
            "incident.annotated" => "incident.annotate",
            other => other,
        };
        let last_log = self
            .logs
            .iter()
            .rposition(|l| l.incident == inc)
            .map(|l| vec![self.log_json(l)])
            .unwrap_or_default();
        json!({"messages": [{
            "id": uuid_like(),
            "event": v2_event,
            "created_on": rest_time(now),
            "incident": self.incident_json(inc, &[]),
            "log_entries": last_log,
        }]})
    }

    // ---------------------------------------------------------------- rendering

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), path)
    }

    pub fn user_ref(&self, u: usize) -> Value {
        let user = &self.users[u];
        json!({
            "id": user.id, "type": "user_reference", "summary": user.name,
            "self": self.url(&format!("/users/{}", user.id)),
            "html_url": self.url(&format!("/#user-{}", user.id)),
        })
    }

    pub fn service_ref(&self, s: usize) -> Value {
        let svc = &self.services[s];
        json!({
            "id": svc.id, "type": "service_reference", "summary": svc.name,
            "self": self.url(&format!("/services/{}", svc.id)),
            "html_url": self.url(&format!("/#service-{}", svc.id)),
        })
    }

    pub fn agent_ref(&self, a: Agent) -> Value {
        match a {
            Agent::User(u) => self.user_ref(u),
            Agent::Service(s) => self.service_ref(s),
        }
    }

    pub fn incident_ref(&self, i: usize) -> Value {
        let inc = &self.incidents[i];
        json!({
            "id": inc.id, "type": "incident_reference",
            "summary": format!("[#{}] {}", inc.number, inc.title),
            "self": self.url(&format!("/incidents/{}", inc.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", inc.id)),
        })
    }

    fn escalation_policy_ref(&self, s: usize) -> Value {
        let id = format!("PE{}", &self.services[s].id[1..]);
        json!({
            "id": id, "type": "escalation_policy_reference", "summary": "Default",
            "self": self.url(&format!("/escalation_policies/{id}")),
            "html_url": self.url("/"),
        })
    }

    fn log_ref(&self, l: usize) -> Value {
        let log = &self.logs[l];
        json!({
            "id": log.id, "type": format!("{}_reference", log.kind), "summary": log.summary,
            "self": self.url(&format!("/log_entries/{}", log.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", self.incidents[log.incident].id)),
        })
    }

    fn integration_ref(&self, key: &str) -> Value {
        let integ = &self.integrations[key];
        let kind = match integ.kind {
            IntegrationKind::EventsApiV2 => "events_api_v2_inbound_integration_reference",
            IntegrationKind::GenericEventsApi => "generic_events_api_inbound_integration_reference",
        };
        let service = &self.services[integ.service];
        json!({
            "id": integ.id, "type": kind, "summary": integ.name,
            "self": self.url(&format!("/services/{}/integrations/{}", service.id, integ.id)),
            "html_url": self.url(&format!("/#service-{}", service.id)),
        })
    }

    /// An integration as `include[]=integrations` expands it: the reference's fields plus the
    /// integration's name, service, creation time and `integration_key` (the routing key),
    /// typed as the full object (`events_api_v2_inbound_integration`, no `_reference`), as
    /// PagerDuty sends it.
    fn integration_json(&self, key: &str) -> Value {
        let integ = &self.integrations[key];
        let service = &self.services[integ.service];
        let mut v = self.integration_ref(key);
        let kind = v["type"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches("_reference")
            .to_owned();
        v["type"] = json!(kind);
        v["name"] = json!(integ.name);
        v["service"] = self.service_ref(integ.service);
        v["created_at"] = json!(rest_time(service.created_at));
        v["integration_key"] = json!(key);
        v
    }

    /// The REST incident. `include` honours `body` (the rest of PagerDuty's includes would
    /// expand references, which no client of ours asks for).
    pub fn incident_json(&self, i: usize, include: &[String]) -> Value {
        let inc = &self.incidents[i];
        let counts = inc.alerts.iter().fold((0u64, 0u64), |(t, r), &a| {
            if self.alerts[a].resolved {
                (t, r + 1)
            } else {
                (t + 1, r)
            }
        });
        let mut v = json!({
            "id": inc.id,
            "type": "incident",
            "summary": format!("[#{}] {}", inc.number, inc.title),
            "self": self.url(&format!("/incidents/{}", inc.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", inc.id)),
            "incident_number": inc.number,
            "title": inc.title,
            "created_at": rest_time(inc.created_at),
            "updated_at": rest_time(inc.updated_at),
            "status": inc.status.as_str(),
            "incident_key": inc.incident_key,
            "service": self.service_ref(inc.service),
            "assignments": inc.assignee.iter().map(|(at, u)| json!({
                "at": rest_time(*at), "assignee": self.user_ref(*u)
            })).collect::<Vec<_>>(),
            "assigned_via": "escalation_policy",
            "last_status_change_at": rest_time(inc.last_status_change_at),
            "last_status_change_by": self.agent_ref(inc.last_status_change_by),
            "first_trigger_log_entry": self.log_ref(inc.first_log),
            "alert_counts": {"all": counts.0 + counts.1, "triggered": counts.0, "resolved": counts.1},
            // Only incidents with alerts, or created by hand, can be merged: one merged away has
            // given up its alerts.
            "is_mergeable": inc.merged_into.is_none(),
            "incident_type": {"name": "incident_default"},
            "escalation_policy": self.escalation_policy_ref(inc.service),
            "teams": [],
            "pending_actions": [],
            "acknowledgements": inc.acknowledgements.iter().map(|(at, a)| json!({
                "at": rest_time(*at), "acknowledger": self.agent_ref(*a)
            })).collect::<Vec<_>>(),
            "incidents_responders": [],
            "responder_requests": [],
            "urgency": inc.urgency.as_str(),
        });
        // PagerDuty sends `"resolved_at": null` while open (its own examples do), although the
        // published schema forgets `nullable`; the contract crate lists that defect. A client
        // must meet the null here before it meets it in production.
        v["resolved_at"] = inc
            .resolved_at
            .map(|r| json!(rest_time(r)))
            .unwrap_or(Value::Null);
        v["resolve_reason"] = self.resolve_reason(i);
        if include.iter().any(|x| x == "body") {
            v["body"] = json!({"type": "incident_body", "details": inc.body_details.clone().unwrap_or_default()});
        }
        v
    }

    /// The incident inside a v3 webhook: `number` instead of `incident_number`, `assignees`.
    pub fn webhook_incident(&self, i: usize) -> Value {
        let inc = &self.incidents[i];
        json!({
            "id": inc.id,
            "type": "incident",
            "self": self.url(&format!("/incidents/{}", inc.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", inc.id)),
            "number": inc.number,
            "status": inc.status.as_str(),
            "incident_key": inc.incident_key,
            "created_at": rest_time(inc.created_at),
            "title": inc.title,
            "service": self.service_ref(inc.service),
            "assignees": inc.assignee.iter().map(|(_, u)| self.user_ref(*u)).collect::<Vec<_>>(),
            "escalation_policy": self.escalation_policy_ref(inc.service),
            "teams": [],
            "priority": null,
            "urgency": inc.urgency.as_str(),
            "conference_bridge": null,
            "resolve_reason": self.resolve_reason(i),
        })
    }

    pub fn log_json(&self, l: usize) -> Value {
        let log = &self.logs[l];
        let inc = &self.incidents[log.incident];
        let mut v = json!({
            "id": log.id,
            "type": log.kind,
            "summary": log.summary,
            "self": self.url(&format!("/log_entries/{}", log.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", inc.id)),
            "created_at": rest_time(log.created_at),
            "agent": self.agent_ref(log.agent),
            "channel": log.channel,
            "service": self.service_ref(inc.service),
            "incident": self.incident_ref(log.incident),
            "teams": [],
            "contexts": [],
        });
        if let Some(n) = &log.note {
            v["note"] = json!(n);
        }
        if log.kind == "trigger_log_entry" {
            v["event_details"] = json!({"description": inc.title});
        }
        v
    }

    pub fn alert_json(&self, a: usize) -> Value {
        let al = &self.alerts[a];
        json!({
            "id": al.id,
            "type": "alert",
            "summary": al.summary,
            "self": self.url(&format!("/alerts/{}", al.id)),
            "html_url": self.url(&format!("/ui/incidents/{}", self.incidents[al.incident].id)),
            "created_at": rest_time(al.created_at),
            "status": if al.resolved { "resolved" } else { "triggered" },
            "alert_key": al.dedup_key,
            "service": self.service_ref(al.service),
            "first_trigger_log_entry": self.log_ref(al.first_log),
            "incident": self.incident_ref(al.incident),
            "suppressed": false,
            "severity": al.severity.as_str(),
            "integration": self.integration_ref(&al.routing_key),
            "body": {
                "type": "alert_body",
                "contexts": al.contexts,
                // `details` is an object in the contract: an event without custom_details
                // gives an empty one, never `null`.
                "details": al.details.get("custom_details").filter(|d| !d.is_null()).cloned().unwrap_or_else(|| json!({})),
                "cef_details": al.details,
            },
        })
    }

    pub fn note_json(&self, n: usize) -> Value {
        let note = &self.notes[n];
        json!({
            "id": note.id,
            "user": self.user_ref(note.user),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": note.content,
            "created_at": rest_time(note.created_at),
        })
    }

    pub fn service_json(&self, s: usize, now: Timestamp) -> Value {
        self.service_json_including(s, now, &[])
    }

    /// The REST service; `include` honours `integrations` (full integration objects, with
    /// their `integration_key`, instead of references). PagerDuty's other includes expand
    /// escalation policies and teams, which no client of ours asks for.
    pub fn service_json_including(&self, s: usize, now: Timestamp, include: &[&str]) -> Value {
        let svc = &self.services[s];
        let full = include.contains(&"integrations");
        let mut v = json!({
            "id": svc.id,
            "type": "service",
            "summary": svc.name,
            "self": self.url(&format!("/services/{}", svc.id)),
            "html_url": self.url(&format!("/#service-{}", svc.id)),
            "name": svc.name,
            "description": svc.description.clone().unwrap_or_default(),
            "auto_resolve_timeout": 14400,
            "acknowledgement_timeout": 1800,
            "created_at": rest_time(svc.created_at),
            "status": self.service_status(s, now),
            "escalation_policy": self.escalation_policy_ref(s),
            "teams": [],
            "integrations": svc.integrations.iter().map(|k| if full {
                self.integration_json(k)
            } else {
                self.integration_ref(k)
            }).collect::<Vec<_>>(),
            "incident_urgency_rule": {"type": "constant", "urgency": match svc.urgency {
                UrgencyRule::High => "high", UrgencyRule::Low => "low", UrgencyRule::SeverityBased => "severity_based",
            }},
            "scheduled_actions": [],
            "addons": [],
            "alert_creation": "create_alerts_and_incidents",
        });
        if let Some(t) = svc.last_incident_at {
            v["last_incident_timestamp"] = json!(rest_time(t));
        }
        v
    }

    pub fn window_json(&self, w: usize) -> Value {
        let win = &self.windows[w];
        let mut v = json!({
            "id": win.id,
            "type": "maintenance_window",
            "summary": win.description.clone().unwrap_or_default(),
            "self": self.url(&format!("/maintenance_windows/{}", win.id)),
            "html_url": self.url("/"),
            "sequence_number": win.sequence_number,
            "start_time": rest_time(win.start),
            "end_time": rest_time(win.end),
            "description": win.description.clone().unwrap_or_default(),
            "services": win.services.iter().map(|s| self.service_ref(*s)).collect::<Vec<_>>(),
            "teams": [],
        });
        if let Some(u) = win.created_by {
            v["created_by"] = self.user_ref(u);
        }
        v
    }

    pub fn user_json(&self, u: usize) -> Value {
        let user = &self.users[u];
        json!({
            "id": user.id,
            "type": "user",
            "summary": user.name,
            "self": self.url(&format!("/users/{}", user.id)),
            "html_url": self.url(&format!("/#user-{}", user.id)),
            "name": user.name,
            "email": user.email,
            "time_zone": "Etc/UTC",
            "color": "purple",
            "role": user.role,
            "avatar_url": self.url("/avatar.png"),
            "invitation_sent": false,
            "job_title": "",
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        })
    }

    /// `with_secret` only when the subscription is created, as PagerDuty does.
    pub fn subscription_json(&self, s: usize, with_secret: bool) -> Value {
        let sub = &self.subscriptions[s];
        let mut delivery = json!({
            "type": "http_delivery_method",
            "url": sub.url,
            "temporarily_disabled": false,
            "custom_headers": [],
        });
        if with_secret {
            delivery["secret"] = json!(sub.secret);
        }
        let filter = match sub.service {
            Some(svc) => json!({"type": "service_reference", "id": self.services[svc].id}),
            None => json!({"type": "account_reference"}),
        };
        json!({
            "id": sub.id,
            "type": "webhook_subscription",
            "active": sub.active,
            "delivery_method": delivery,
            "description": sub.description.clone().unwrap_or_default(),
            "events": if sub.events.is_empty() { all_incident_events() } else { sub.events.clone() },
            "filter": filter,
        })
    }
}

/// The event types a subscription without a filter receives.
pub fn all_incident_events() -> Vec<String> {
    [
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.annotated",
    ]
    .map(String::from)
    .to_vec()
}

fn channel_api() -> Value {
    json!({"type": "api"})
}

/// PagerDuty's generated dedup keys and webhook ids are 32 hex characters.
pub fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The fields of a REST status change the emulator acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentPatch {
    pub status: Option<IncidentStatus>,
    pub resolution: Option<String>,
    pub title: Option<String>,
    pub urgency: Option<Urgency>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewIncidentReq {
    pub title: String,
    pub service_id: String,
    pub urgency: Option<Urgency>,
    pub incident_key: Option<String>,
    pub body_details: Option<String>,
}
