//! REST API v2 types for the subset pagerbridge uses: incidents, notes, log entries, alerts,
//! services, maintenance windows, users and webhook subscriptions.
//!
//! Every resource keeps the fields PagerDuty sent that are not modelled here in `extra`, so a
//! `--json` output or a round trip loses nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{id, type, summary, self, html_url}`: how PagerDuty points at another resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
}

impl Reference {
    /// A bare reference, as used in request bodies (`{"id":..., "type":"service_reference"}`).
    pub fn to(kind: &str, id: impl Into<String>) -> Reference {
        Reference {
            id: id.into(),
            kind: kind.into(),
            summary: None,
            self_url: None,
            html_url: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Triggered => "triggered",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "triggered" => Some(IncidentStatus::Triggered),
            "acknowledged" => Some(IncidentStatus::Acknowledged),
            "resolved" => Some(IncidentStatus::Resolved),
            _ => None,
        }
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    High,
    Low,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "high" => Some(Urgency::High),
            "low" => Some(Urgency::Low),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    Active,
    Warning,
    Critical,
    Maintenance,
    Disabled,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "active",
            ServiceStatus::Warning => "warning",
            ServiceStatus::Critical => "critical",
            ServiceStatus::Maintenance => "maintenance",
            ServiceStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub at: Timestamp,
    pub acknowledger: Reference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub at: Timestamp,
    pub assignee: Reference,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounts {
    pub all: u64,
    pub triggered: u64,
    pub resolved: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_number: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    pub status: IncidentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Reference>,
    #[serde(default)]
    pub assignments: Vec<Assignment>,
    #[serde(default)]
    pub acknowledgements: Vec<Acknowledgement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status_change_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status_change_by: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_counts: Option<AlertCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<Reference>,
    #[serde(default)]
    pub teams: Vec<Reference>,
    /// Why a resolved incident was resolved, when PagerDuty knows a reason: the only one is
    /// `{"type": "merge_resolve_reason", "incident": <the incident it was merged into>}`.
    /// `None` when absent or `null`. See [`Incident::merged_into`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_reason: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Incident {
    /// The id of the incident this one was merged into (`resolve_reason` of type
    /// `merge_resolve_reason`), if it was resolved by a merge.
    pub fn merged_into(&self) -> Option<&str> {
        let r = self.resolve_reason.as_ref()?;
        if r.get("type")?.as_str()? != "merge_resolve_reason" {
            return None;
        }
        r.get("incident")?.get("id")?.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Reference>,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: String,
    /// `trigger_log_entry`, `acknowledge_log_entry`, `resolve_log_entry`, `annotate_log_entry`, ...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Reference>,
    /// `{"type":"api"|"website"|"nagios"|"timeout"|...}` plus type-specific fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LogEntry {
    /// `channel.type`, e.g. `api` or `website`.
    pub fn channel_type(&self) -> Option<&str> {
        self.channel.as_ref()?.get("type")?.as_str()
    }
}

/// An alert of an incident (`GET /incidents/{id}/alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// `triggered` or `resolved`.
    pub status: String,
    /// The dedup key of the events that feed this alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<crate::events::Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: ServiceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_incident_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<Reference>,
    #[serde(default)]
    pub teams: Vec<Reference>,
    /// References, or full objects with `include[]=integrations` (see
    /// [`RestClient::services_with_integrations`](crate::RestClient::services_with_integrations)).
    #[serde(default)]
    pub integrations: Vec<Integration>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A service's integration: a reference, or the full object `include[]=integrations` gives,
/// whose `integration_key` is the routing key events are sent with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    /// `events_api_v2_inbound_integration` (a full object) or `..._reference`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only in full objects, and only for integrations that take events (Events API v2, the
    /// generic Events API and their kin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_key: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Reference>,
    pub services: Vec<Reference>,
    #[serde(default)]
    pub teams: Vec<Reference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MaintenanceWindow {
    /// A window to create: `POST /maintenance_windows`.
    pub fn new(
        start_time: Timestamp,
        end_time: Timestamp,
        description: Option<String>,
        service_ids: &[String],
    ) -> Self {
        MaintenanceWindow {
            id: None,
            kind: "maintenance_window".into(),
            summary: None,
            self_url: None,
            html_url: None,
            sequence_number: None,
            start_time,
            end_time,
            description,
            created_by: None,
            services: service_ids
                .iter()
                .map(|id| Reference::to("service_reference", id.clone()))
                .collect(),
            teams: Vec::new(),
            extra: Map::new(),
        }
    }

    pub fn is_ongoing_at(&self, at: Timestamp) -> bool {
        self.start_time <= at && at < self.end_time
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_true")]
    pub active: bool,
    pub delivery_method: DeliveryMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub events: Vec<String>,
    pub filter: SubscriptionFilter,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryMethod {
    /// `http_delivery_method`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    /// Only returned when the subscription is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporarily_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_headers: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionFilter {
    /// `account_reference`, `service_reference` or `team_reference`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub limit: u64,
    pub offset: u64,
    pub more: bool,
    /// Only when `total=true` was asked for.
    pub total: Option<u64>,
}

/// Sort orders `GET /incidents` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentSort {
    IncidentNumber,
    CreatedAt,
    ResolvedAt,
    Urgency,
}

/// Filters of `GET /incidents`. Empty lists mean "no filter"; PagerDuty's own default for
/// `statuses[]` is all statuses within its default time window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    pub statuses: Vec<IncidentStatus>,
    pub service_ids: Vec<String>,
    pub team_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub urgencies: Vec<Urgency>,
    pub incident_key: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// `date_range=all`: ignore `since`/`until` and PagerDuty's default window.
    pub all_dates: bool,
    /// e.g. `(IncidentSort::CreatedAt, true)` for `created_at:desc`.
    pub sort_by: Option<(IncidentSort, bool)>,
    pub include: Vec<String>,
    pub time_zone: Option<String>,
}

impl IncidentQuery {
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        for s in &self.statuses {
            q.push(("statuses[]".into(), s.as_str().into()));
        }
        for id in &self.service_ids {
            q.push(("service_ids[]".into(), id.clone()));
        }
        for id in &self.team_ids {
            q.push(("team_ids[]".into(), id.clone()));
        }
        for id in &self.user_ids {
            q.push(("user_ids[]".into(), id.clone()));
        }
        for u in &self.urgencies {
            q.push(("urgencies[]".into(), u.as_str().into()));
        }
        if let Some(k) = &self.incident_key {
            q.push(("incident_key".into(), k.clone()));
        }
        if self.all_dates {
            q.push(("date_range".into(), "all".into()));
        }
        if let Some(t) = self.since {
            q.push(("since".into(), t.to_string()));
        }
        if let Some(t) = self.until {
            q.push(("until".into(), t.to_string()));
        }
        if let Some((field, desc)) = self.sort_by {
            let f = match field {
                IncidentSort::IncidentNumber => "incident_number",
                IncidentSort::CreatedAt => "created_at",
                IncidentSort::ResolvedAt => "resolved_at",
                IncidentSort::Urgency => "urgency",
            };
            q.push((
                "sort_by".into(),
                format!("{f}:{}", if desc { "desc" } else { "asc" }),
            ));
        }
        for i in &self.include {
            q.push(("include[]".into(), i.clone()));
        }
        if let Some(tz) = &self.time_zone {
            q.push(("time_zone".into(), tz.clone()));
        }
        q
    }
}

/// Filters of `GET /log_entries` and `GET /incidents/{id}/log_entries`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogEntryQuery {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub is_overview: Option<bool>,
    pub include: Vec<String>,
    pub team_ids: Vec<String>,
    pub time_zone: Option<String>,
}

impl LogEntryQuery {
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(t) = self.since {
            q.push(("since".into(), t.to_string()));
        }
        if let Some(t) = self.until {
            q.push(("until".into(), t.to_string()));
        }
        if let Some(o) = self.is_overview {
            q.push(("is_overview".into(), o.to_string()));
        }
        for i in &self.include {
            q.push(("include[]".into(), i.clone()));
        }
        for id in &self.team_ids {
            q.push(("team_ids[]".into(), id.clone()));
        }
        if let Some(tz) = &self.time_zone {
            q.push(("time_zone".into(), tz.clone()));
        }
        q
    }
}

/// `filter` of `GET /maintenance_windows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFilter {
    Past,
    Future,
    Ongoing,
    Open,
    All,
}

impl WindowFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowFilter::Past => "past",
            WindowFilter::Future => "future",
            WindowFilter::Ongoing => "ongoing",
            WindowFilter::Open => "open",
            WindowFilter::All => "all",
        }
    }
}

/// A status change of one incident: `PUT /incidents/{id}` or one element of the bulk `PUT /incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "incident_reference")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IncidentStatus>,
    /// Shown in the resolve log entry; only with `status: resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_level: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<Value>>,
}

fn incident_reference() -> String {
    "incident_reference".into()
}

// Written out because a derived Default would leave `type` empty, which PagerDuty refuses.
impl Default for IncidentUpdate {
    fn default() -> Self {
        IncidentUpdate {
            id: None,
            kind: incident_reference(),
            status: None,
            resolution: None,
            title: None,
            urgency: None,
            escalation_level: None,
            assignments: None,
        }
    }
}

impl IncidentUpdate {
    pub fn status(status: IncidentStatus) -> Self {
        IncidentUpdate {
            status: Some(status),
            ..Default::default()
        }
    }
}

/// `POST /incidents` body (inside `{"incident": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewIncident {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub service: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<IncidentBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<Value>>,
}

impl NewIncident {
    pub fn new(title: impl Into<String>, service_id: impl Into<String>) -> Self {
        NewIncident {
            kind: "incident".into(),
            title: title.into(),
            service: Reference::to("service_reference", service_id),
            urgency: None,
            incident_key: None,
            body: None,
            priority: None,
            escalation_policy: None,
            assignments: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentBody {
    /// `incident_body`.
    #[serde(rename = "type")]
    pub kind: String,
    pub details: String,
}

impl IncidentBody {
    pub fn new(details: impl Into<String>) -> Self {
        IncidentBody {
            kind: "incident_body".into(),
            details: details.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_keeps_unmodelled_fields() {
        let v = serde_json::json!({
            "id": "PT4KHLK", "type": "incident", "status": "resolved",
            "created_at": "2015-10-06T21:30:42Z", "is_mergeable": true,
            "alert_counts": {"all": 2, "triggered": 0, "resolved": 2},
            "acknowledgements": [{"at": "2015-10-06T21:31:00Z",
                "acknowledger": {"id": "PXPGF42", "type": "user_reference"}}]
        });
        let inc: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(
            inc.extra.get("is_mergeable"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(inc.acknowledgements[0].acknowledger.id, "PXPGF42");
        let back = serde_json::to_value(&inc).unwrap();
        assert_eq!(back["is_mergeable"], true);
    }

    #[test]
    fn a_default_update_is_a_valid_incident_reference() {
        let v = serde_json::to_value(IncidentUpdate {
            title: Some("t".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "incident_reference", "title": "t"})
        );
    }

    #[test]
    fn array_filters_repeat_with_brackets() {
        let q = IncidentQuery {
            statuses: vec![IncidentStatus::Triggered, IncidentStatus::Acknowledged],
            service_ids: vec!["PSVC".into()],
            sort_by: Some((IncidentSort::CreatedAt, true)),
            all_dates: true,
            ..Default::default()
        };
        let enc = serde_urlencoded::to_string(q.to_pairs()).unwrap();
        assert_eq!(
            enc,
            "statuses%5B%5D=triggered&statuses%5B%5D=acknowledged&service_ids%5B%5D=PSVC&date_range=all&sort_by=created_at%3Adesc"
        );
    }
}
