//! What one change in PagerDuty means for the monitors: pure functions from an inbox item and
//! the incident map to the effects to store (PagerDuty's side of the map, write-backs to do).
//!
//! The safety rules live here, where they can be tested without any I/O:
//! - no echo loops: a change made by an integration (the events pagerbridge itself sent, or
//!   the monitor's own acknowledgement forwarded by pagerbridge) is recorded, not written back;
//!   nor is an acknowledgement the monitor already shows, or a resolve of a recovered problem;
//! - an acknowledgement is never applied to a newer problem than the one its incident was
//!   opened for: an incident created before the monitor's current problem started is older;
//! - merged incidents are followed: a resolve whose reason is a merge moves the map to the
//!   incident it was merged into instead of resolving anything.

use jiff::Timestamp;
use pagerbridge_store::{IncidentUpdate, MappedIncident, MonitorState, NewWriteback, SyncEffects};
use serde_json::{Value, json};

use crate::writeback::{Action, Change, Policy};

/// How far PagerDuty's clock and pagerbridge's may disagree.
const CLOCK_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// What happened in PagerDuty.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    Triggered,
    Acknowledged,
    Unacknowledged,
    Resolved,
    /// Resolved because it was merged into another incident.
    Merged {
        into_id: String,
        into_url: Option<String>,
    },
    Annotated {
        note: String,
    },
    /// Anything else (reassigned, escalated, priority ...): only PagerDuty's side is recorded.
    Other(String),
}

/// Who made the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// A person (`user_reference`), as opposed to an integration, a service or PagerDuty itself.
    pub is_user: bool,
    pub name: String,
}

/// One change in PagerDuty, whatever way it reached us.
#[derive(Debug, Clone, PartialEq)]
pub struct PdChange {
    pub kind: ChangeKind,
    pub incident_id: String,
    /// The incident key: the dedup key of the events that opened it.
    pub incident_key: Option<String>,
    pub incident_url: Option<String>,
    pub incident_created_at: Option<Timestamp>,
    pub service_id: Option<String>,
    pub agent: Agent,
    pub at: Timestamp,
}

impl PdChange {
    /// The status the incident has after this change, where it says.
    pub fn status(&self) -> Option<&'static str> {
        match self.kind {
            ChangeKind::Triggered | ChangeKind::Unacknowledged => Some("triggered"),
            ChangeKind::Acknowledged => Some("acknowledged"),
            ChangeKind::Resolved | ChangeKind::Merged { .. } => Some("resolved"),
            ChangeKind::Annotated { .. } | ChangeKind::Other(_) => None,
        }
    }
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn agent(v: &Value) -> Agent {
    let kind = v["type"].as_str().unwrap_or("");
    Agent {
        is_user: kind == "user_reference" || kind == "user",
        name: text(&v["summary"])
            .or_else(|| text(&v["name"]))
            .unwrap_or_else(|| "PagerDuty".to_owned()),
    }
}

/// The incident fields shared by the REST shape (`incident_key`, `service.id`) and the v3
/// webhook shape.
fn incident_fields(
    inc: &Value,
) -> (
    Option<String>,
    Option<String>,
    Option<Timestamp>,
    Option<String>,
) {
    (
        text(&inc["incident_key"]),
        text(&inc["html_url"]),
        time(&inc["created_at"]),
        text(&inc["service"]["id"]),
    )
}

fn merged_into(reason: &Value) -> Option<ChangeKind> {
    if reason["type"].as_str()? != "merge_resolve_reason" {
        return None;
    }
    Some(ChangeKind::Merged {
        into_id: text(&reason["incident"]["id"])?,
        into_url: text(&reason["incident"]["html_url"]),
    })
}

/// Reads an inbox item. `Ok(None)`: a valid delivery with nothing to do (`pagey.ping`, a
/// service event). `Err`: a body that is not what its origin sends, with the reason.
pub fn parse(origin: &str, body: &[u8]) -> Result<Option<PdChange>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match origin {
        "webhook_v3" => parse_v3(&v),
        "webhook_v2" => parse_v2(&v),
        "poller" | "reconciler" => parse_log_entry(&v),
        other => Err(format!("unknown origin {other:?}")),
    }
}

fn parse_v3(v: &Value) -> Result<Option<PdChange>, String> {
    let ev = &v["event"];
    let event_type = ev["event_type"]
        .as_str()
        .ok_or("event.event_type missing")?;
    if ev["resource_type"].as_str() != Some("incident") {
        return Ok(None);
    }
    let data = &ev["data"];
    let at = time(&ev["occurred_at"]).ok_or("event.occurred_at missing or not a time")?;
    let agent = agent(&ev["agent"]);
    if data["type"] == "incident_note" {
        let inc = &data["incident"];
        return Ok(Some(PdChange {
            kind: ChangeKind::Annotated {
                note: data["content"].as_str().unwrap_or_default().to_owned(),
            },
            incident_id: text(&inc["id"]).ok_or("event.data.incident.id missing")?,
            incident_key: None,
            incident_url: text(&inc["html_url"]),
            incident_created_at: None,
            service_id: None,
            agent,
            at,
        }));
    }
    let kind = match event_type {
        "incident.triggered" | "incident.reopened" => ChangeKind::Triggered,
        "incident.acknowledged" => ChangeKind::Acknowledged,
        "incident.unacknowledged" => ChangeKind::Unacknowledged,
        "incident.resolved" => merged_into(&data["resolve_reason"]).unwrap_or(ChangeKind::Resolved),
        "incident.annotated" => ChangeKind::Annotated {
            note: data["content"].as_str().unwrap_or_default().to_owned(),
        },
        other => ChangeKind::Other(other.to_owned()),
    };
    let (incident_key, incident_url, created, service_id) = incident_fields(data);
    Ok(Some(PdChange {
        kind,
        incident_id: text(&data["id"]).ok_or("event.data.id missing")?,
        incident_key,
        incident_url,
        incident_created_at: created,
        service_id,
        agent,
        at,
    }))
}

fn parse_v2(v: &Value) -> Result<Option<PdChange>, String> {
    let event = v["event"].as_str().ok_or("event missing")?;
    let inc = &v["incident"];
    let log = &v["log_entries"][0];
    let kind = match event {
        "incident.trigger" => ChangeKind::Triggered,
        "incident.acknowledge" => ChangeKind::Acknowledged,
        "incident.unacknowledge" => ChangeKind::Unacknowledged,
        "incident.resolve" => merged_into(&inc["resolve_reason"]).unwrap_or(ChangeKind::Resolved),
        "incident.annotate" => ChangeKind::Annotated {
            note: text(&log["note"])
                .or_else(|| text(&log["channel"]["summary"]))
                .unwrap_or_default(),
        },
        other => ChangeKind::Other(other.to_owned()),
    };
    let (incident_key, incident_url, created, service_id) = incident_fields(inc);
    // V2 names the person in the log entry; its incident's last change otherwise.
    let who = if log.is_object() {
        &log["agent"]
    } else {
        &inc["last_status_change_by"]
    };
    Ok(Some(PdChange {
        kind,
        incident_id: text(&inc["id"]).ok_or("incident.id missing")?,
        incident_key,
        incident_url,
        incident_created_at: created,
        service_id,
        agent: agent(who),
        at: time(&v["created_on"])
            .or_else(|| time(&log["created_at"]))
            .ok_or("created_on missing or not a time")?,
    }))
}

fn parse_log_entry(v: &Value) -> Result<Option<PdChange>, String> {
    let log = &v["log_entry"];
    let inc = &v["incident"];
    let kind = match log["type"].as_str().ok_or("log_entry.type missing")? {
        "trigger_log_entry" | "reopen_log_entry" => ChangeKind::Triggered,
        "acknowledge_log_entry" => ChangeKind::Acknowledged,
        "unacknowledge_log_entry" => ChangeKind::Unacknowledged,
        "resolve_log_entry" => merged_into(&inc["resolve_reason"]).unwrap_or(ChangeKind::Resolved),
        "annotate_log_entry" => ChangeKind::Annotated {
            note: text(&log["note"])
                .or_else(|| text(&log["channel"]["summary"]))
                .unwrap_or_default(),
        },
        other => ChangeKind::Other(other.to_owned()),
    };
    let (incident_key, incident_url, created, service_id) = incident_fields(inc);
    Ok(Some(PdChange {
        kind,
        incident_id: text(&inc["id"])
            .or_else(|| text(&log["incident"]["id"]))
            .ok_or("log_entry.incident.id missing")?,
        incident_key,
        incident_url: incident_url.or_else(|| text(&log["incident"]["html_url"])),
        incident_created_at: created,
        service_id: service_id.or_else(|| text(&log["service"]["id"])),
        agent: agent(&log["agent"]),
        at: time(&log["created_at"]).ok_or("log_entry.created_at missing or not a time")?,
    }))
}

/// A `[[monitors]]` entry as planning sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRoute {
    pub name: String,
    pub policy: Policy,
    /// `[[sources]]` names and source kinds whose problems this monitor holds.
    pub sources: Vec<String>,
}

/// Which monitors hold the problems of `source` (a `[[sources]]` name or a source kind);
/// `source_kind` is the kind of a named source.
pub fn monitors_for<'a>(
    monitors: &'a [MonitorRoute],
    source: &str,
    source_kind: Option<&str>,
) -> Vec<&'a MonitorRoute> {
    monitors
        .iter()
        .filter(|m| {
            m.sources
                .iter()
                .any(|s| s == source || Some(s.as_str()) == source_kind)
        })
        .collect()
}

/// The map row of a change's incident among the rows of one dedup key: one that does not know
/// its incident yet or knows this one (on the change's service when several routing keys share
/// the key).
pub fn find_row<'a>(change: &PdChange, by_key: &'a [MappedIncident]) -> Option<&'a MappedIncident> {
    let candidates: Vec<&MappedIncident> = by_key
        .iter()
        .filter(|r| {
            r.incident_id.is_none() || r.incident_id.as_deref() == Some(&change.incident_id)
        })
        .collect();
    match candidates.as_slice() {
        [] => None,
        [one] => Some(one),
        many => many
            .iter()
            .find(|r| r.service_id.is_some() && r.service_id == change.service_id)
            .or(many.first())
            .copied(),
    }
}

/// The effects of `change` on `row` (its map row, if pagerbridge opened the incident) for the
/// monitors that hold its problem.
pub fn plan(
    change: &PdChange,
    row: Option<&MappedIncident>,
    monitors: &[&MonitorRoute],
) -> SyncEffects {
    let mut fx = SyncEffects::default();
    let Some(row) = row else {
        fx.outcome = format!(
            "incident {} is not one pagerbridge opened (no map entry{}): nothing to write back",
            change.incident_id,
            change
                .incident_key
                .as_deref()
                .map(|k| format!(" for incident key {k:?}"))
                .unwrap_or_default()
        );
        return fx;
    };
    let known = row.incident_id.as_deref() == Some(change.incident_id.as_str());
    // A different incident than the one known for this problem, opened before pagerbridge
    // saw the problem start: it belongs to an earlier occurrence (whose resolve was lost), and
    // its changes must not touch this one. Both times are PagerDuty's and pagerbridge's
    // clocks, not the monitor's; the margin absorbs their skew.
    if !known
        && let Some(opened) = change.incident_created_at
        && opened < row.problem_seen_at - CLOCK_MARGIN
    {
        fx.outcome = format!(
            "incident {} was opened at {opened}, before the monitor's current problem began \
             ({}): not applied to it",
            change.incident_id, row.problem_seen_at
        );
        return fx;
    }
    // The same change arriving a second way (a webhook and the poller both on): PagerDuty's
    // side already shows it, at the same moment.
    if known
        && let Some(status) = change.status()
        && row.pd_status.as_deref() == Some(status)
        && row.pd_changed_at.is_some_and(|t| {
            t.duration_since(change.at).abs() <= jiff::SignedDuration::from_secs(1)
        })
    {
        fx.outcome = format!(
            "{}: seen already (it arrived another way)",
            describe(change)
        );
        return fx;
    }
    let (incident_id, incident_url) = match &change.kind {
        ChangeKind::Merged { into_id, into_url } => (into_id.clone(), into_url.clone()),
        _ => (change.incident_id.clone(), change.incident_url.clone()),
    };
    fx.updates.push(IncidentUpdate {
        routing_key: row.routing_key.clone(),
        dedup_key: row.dedup_key.clone(),
        incident_id,
        incident_url,
        service_id: change.service_id.clone(),
        pd_status: match change.kind {
            // The incident it was merged into carries on; its status comes with its own events.
            ChangeKind::Merged { .. } => None,
            _ => change.status().map(str::to_owned),
        },
        at: change.at,
    });
    let wanted = |p: &Policy| match &change.kind {
        ChangeKind::Acknowledged => p.on_acknowledge,
        ChangeKind::Unacknowledged => p.on_unacknowledge,
        ChangeKind::Resolved => p.on_resolve,
        ChangeKind::Annotated { .. } => p.on_annotate,
        ChangeKind::Triggered | ChangeKind::Merged { .. } | ChangeKind::Other(_) => None,
    };
    if let Some(why) = echo(change, row) {
        fx.outcome = format!("{}: {why}", describe(change));
        return fx;
    }
    let mut done = Vec::new();
    for m in monitors {
        let Some(action) = wanted(&m.policy) else {
            continue;
        };
        let wb = Change {
            action,
            author: change.agent.name.clone(),
            comment: comment(change, action),
            incident_id: change.incident_id.clone(),
            incident_url: change.incident_url.clone(),
            expires_at: None,
            at: change.at,
        };
        fx.writebacks.push(NewWriteback {
            monitor: m.name.clone(),
            routing_key: row.routing_key.clone(),
            dedup_key: row.dedup_key.clone(),
            change: json!({"change": wb, "target": row.monitor_ref}),
            due: change.at,
        });
        done.push(format!("{} in {}", action.as_str(), m.name));
    }
    fx.outcome = if done.is_empty() {
        format!("{}: no monitor is set to act on it", describe(change))
    } else {
        format!("{}: {}", describe(change), done.join(", "))
    };
    fx
}

/// Why a change must not be written back, if it must not.
fn echo(change: &PdChange, row: &MappedIncident) -> Option<&'static str> {
    let acts = matches!(
        change.kind,
        ChangeKind::Acknowledged
            | ChangeKind::Unacknowledged
            | ChangeKind::Resolved
            | ChangeKind::Annotated { .. }
    );
    if !acts {
        return Some("recorded");
    }
    if !change.agent.is_user {
        // Events change incidents through the integration: those are ours (the monitor's
        // own acknowledgement or recovery, forwarded), or PagerDuty's automation.
        return Some("made by an integration, not a person: recorded, not written back");
    }
    match (&change.kind, row.monitor_state) {
        (ChangeKind::Acknowledged, MonitorState::Acknowledged) => {
            Some("the monitor shows it acknowledged already")
        }
        (ChangeKind::Acknowledged | ChangeKind::Unacknowledged, MonitorState::Recovered) => {
            Some("the problem has recovered in the monitor")
        }
        (ChangeKind::Resolved, MonitorState::Recovered) => {
            Some("the problem has recovered in the monitor already")
        }
        _ => None,
    }
}

fn describe(change: &PdChange) -> String {
    let what = match &change.kind {
        ChangeKind::Triggered => "triggered".to_owned(),
        ChangeKind::Acknowledged => "acknowledged".to_owned(),
        ChangeKind::Unacknowledged => "unacknowledged".to_owned(),
        ChangeKind::Resolved => "resolved".to_owned(),
        ChangeKind::Merged { into_id, .. } => format!("merged into {into_id}"),
        ChangeKind::Annotated { .. } => "annotated".to_owned(),
        ChangeKind::Other(t) => t.clone(),
    };
    format!(
        "incident {} {what} by {}",
        change.incident_id, change.agent.name
    )
}

/// The text the monitor shows: what happened, by whom, and where to see the incident.
fn comment(change: &PdChange, action: Action) -> String {
    let link = change
        .incident_url
        .as_deref()
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    let by = &change.agent.name;
    match (&change.kind, action) {
        (ChangeKind::Annotated { note }, _) => format!("PagerDuty note by {by}: {note}{link}"),
        (ChangeKind::Acknowledged, _) => format!("Acknowledged in PagerDuty by {by}{link}"),
        (ChangeKind::Unacknowledged, _) => {
            format!("Acknowledgement taken back in PagerDuty{link}")
        }
        (ChangeKind::Resolved, _) => format!("Resolved in PagerDuty by {by}{link}"),
        _ => format!("Changed in PagerDuty by {by}{link}"),
    }
}

/// What the maintenance watch found about a problem's PagerDuty service (an inbox item of
/// origin [`crate::maintenance::ORIGIN`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceNotice {
    pub kind: NoticeKind,
    pub routing_key: String,
    pub dedup_key: String,
    /// The occurrence of the problem the watch saw (the map row's `problem_seen_at`).
    pub problem_seen_at: Option<Timestamp>,
    pub service_id: String,
    pub service_name: String,
    /// When the watch noticed.
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NoticeKind {
    /// The service is in the maintenance window `window_id` until `end_time`.
    Maintenance {
        window_id: String,
        description: String,
        end_time: Timestamp,
    },
    /// The service is disabled.
    Disabled,
}

/// Reads a maintenance inbox item.
pub fn parse_maintenance(body: &[u8]) -> Result<MaintenanceNotice, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let kind = match v["kind"].as_str().ok_or("kind missing")? {
        "maintenance" => {
            let w = &v["window"];
            NoticeKind::Maintenance {
                window_id: text(&w["id"]).ok_or("window.id missing")?,
                description: w["description"].as_str().unwrap_or_default().to_owned(),
                end_time: time(&w["end_time"]).ok_or("window.end_time missing or not a time")?,
            }
        }
        "disabled" => NoticeKind::Disabled,
        other => return Err(format!("unknown kind {other:?}")),
    };
    let service_id = text(&v["service"]["id"]).ok_or("service.id missing")?;
    Ok(MaintenanceNotice {
        kind,
        routing_key: text(&v["routing_key"]).ok_or("routing_key missing")?,
        dedup_key: text(&v["dedup_key"]).ok_or("dedup_key missing")?,
        problem_seen_at: time(&v["problem_seen_at"]),
        service_name: text(&v["service"]["name"]).unwrap_or_else(|| service_id.clone()),
        service_id,
        at: time(&v["at"]).ok_or("at missing or not a time")?,
    })
}

/// The effects of a maintenance item on `row` (the map row of its routing key and dedup key)
/// for the monitors that hold its problem. Nothing in the map changes.
///
/// - **In maintenance**: each monitor acknowledges the problem as its `on_acknowledge` says
///   (`acknowledge`, or only a `comment`; nothing when unset), by "PagerDuty", with the
///   window's description and end, the acknowledgement lapsing at the window's end.
/// - **Disabled**: a comment, in the monitors that write PagerDuty's notes as comments
///   (`on_annotate = "comment"`); never an acknowledgement: nobody is paged, so the problem
///   must stay visible as unhandled.
///
/// Not written: a problem that recovered, one the monitor already shows acknowledged (for a
/// window), or a newer occurrence than the one the watch saw.
pub fn plan_maintenance(
    body: &[u8],
    row: Option<&MappedIncident>,
    monitors: &[&MonitorRoute],
) -> SyncEffects {
    let mut fx = SyncEffects::default();
    let notice = match parse_maintenance(body) {
        Ok(n) => n,
        Err(why) => {
            fx.outcome = format!("unreadable: {why}");
            return fx;
        }
    };
    let what = match &notice.kind {
        NoticeKind::Maintenance { window_id, .. } => format!(
            "PagerDuty service {} in maintenance (window {window_id})",
            notice.service_name
        ),
        NoticeKind::Disabled => format!("PagerDuty service {} disabled", notice.service_name),
    };
    let Some(row) = row else {
        fx.outcome = format!(
            "{what}: no map entry for dedup key {:?} on that routing key: nothing to write back",
            notice.dedup_key
        );
        return fx;
    };
    if notice
        .problem_seen_at
        .is_some_and(|seen| seen != row.problem_seen_at)
    {
        fx.outcome = format!(
            "{what}: seen for an earlier occurrence of the problem ({}), not the current one \
             ({}): not applied",
            notice
                .problem_seen_at
                .map(|t| t.to_string())
                .unwrap_or_default(),
            row.problem_seen_at
        );
        return fx;
    }
    match (&notice.kind, row.monitor_state) {
        (_, MonitorState::Recovered) => {
            fx.outcome = format!("{what}: the problem has recovered in the monitor");
            return fx;
        }
        (NoticeKind::Maintenance { .. }, MonitorState::Acknowledged) => {
            fx.outcome = format!("{what}: the monitor shows it acknowledged already");
            return fx;
        }
        _ => {}
    }
    let (comment, expires_at) = match &notice.kind {
        NoticeKind::Maintenance {
            description,
            end_time,
            ..
        } => {
            let about = if description.is_empty() {
                String::new()
            } else {
                format!(": {description}")
            };
            (
                format!(
                    "PagerDuty service {} is in maintenance until {end_time}{about}",
                    notice.service_name
                ),
                Some(*end_time),
            )
        }
        NoticeKind::Disabled => (
            format!(
                "PagerDuty service {} is disabled: no incident is opened, nobody is paged",
                notice.service_name
            ),
            None,
        ),
    };
    let mut done = Vec::new();
    for m in monitors {
        let action = match &notice.kind {
            NoticeKind::Maintenance { .. } => match m.policy.on_acknowledge {
                Some(Action::Acknowledge) => Action::Acknowledge,
                Some(Action::Comment) => Action::Comment,
                _ => continue,
            },
            NoticeKind::Disabled => match m.policy.on_annotate {
                Some(Action::Comment) => Action::Comment,
                _ => continue,
            },
        };
        let wb = Change {
            action,
            author: "PagerDuty".into(),
            comment: comment.clone(),
            incident_id: row.incident_id.clone().unwrap_or_default(),
            incident_url: row.incident_url.clone(),
            expires_at: if action == Action::Acknowledge {
                expires_at
            } else {
                None
            },
            at: notice.at,
        };
        fx.writebacks.push(NewWriteback {
            monitor: m.name.clone(),
            routing_key: row.routing_key.clone(),
            dedup_key: row.dedup_key.clone(),
            change: json!({"change": wb, "target": row.monitor_ref}),
            due: notice.at,
        });
        done.push(format!("{} in {}", action.as_str(), m.name));
    }
    fx.outcome = if done.is_empty() {
        format!("{what}: no monitor is set to act on it")
    } else {
        format!("{what}: {}", done.join(", "))
    };
    fx
}
