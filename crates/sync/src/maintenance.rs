//! Maintenance windows and disabled services: PagerDuty takes the events of a service in
//! maintenance or disabled but opens no incident, so without this the monitor's problem would
//! sit unacknowledged with nobody paged.
//!
//! [`MaintenanceWatch::check_once`] looks at the open problems of the incident map that
//! PagerDuty has not opened an incident for (and those whose incident is still open, so that a
//! window starting later counts too), finds each one's PagerDuty service by its routing key and
//! stores in the inbox what the service's status means:
//!
//! | origin | external id | body |
//! |---|---|---|
//! | `maintenance` | `maint:<window id>:<routing key>:<dedup key>:<problem seen, ms>` | `{"kind": "maintenance", "routing_key", "dedup_key", "problem_seen_at", "service": {"id", "name"}, "window": {"id", "description", "end_time"}, "at"}` |
//! | `maintenance` | `disabled:<service id>:<routing key>:<dedup key>:<problem seen, ms>` | `{"kind": "disabled", "routing_key", "dedup_key", "problem_seen_at", "service": {"id", "name"}, "at"}` |
//!
//! The external id makes each window acknowledge each occurrence of a problem once (a new
//! window, or the problem coming back, is new). [`crate::plan::plan_maintenance`] turns an item
//! into write-backs.
//!
//! The services' status (from `GET /services?include[]=integrations`, whose integrations carry
//! their `integration_key`) and the ongoing windows of the services in maintenance are kept for
//! `refresh` (a minute by default): one or two REST requests per refresh, whatever the number
//! of problems, and none while no problem waits.

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::{MappedIncident, MonitorState, Received, StoreError, SyncStore};
use pagerduty::RestClient;
use pagerduty::rest::{MaintenanceWindow, ServiceStatus, WindowFilter};
use serde_json::json;
use tokio::sync::Mutex;

/// The origin of the items the watch stores in the inbox.
pub const ORIGIN: &str = "maintenance";

/// How long the services' status is kept by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// Map rows looked at per check.
const MAX_ROWS: usize = 1000;

/// A PagerDuty service as the watch knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    pub status: ServiceStatus,
}

/// The cached view of PagerDuty: routing key -> service, and the ongoing windows of the
/// services in maintenance.
struct Table {
    fetched_at: Timestamp,
    by_key: HashMap<String, ServiceInfo>,
    /// Service id -> its ongoing windows.
    windows: HashMap<String, Vec<MaintenanceWindow>>,
}

/// What one check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Open problems without a resolved incident looked at.
    pub checked: usize,
    /// Whether PagerDuty was asked this time (else the cache answered).
    pub refreshed: bool,
    /// Problems on a service in maintenance / disabled.
    pub in_maintenance: usize,
    pub disabled: usize,
    /// New inbox items (the others were stored by an earlier check).
    pub stored: usize,
    /// Problems whose routing key is no integration of any service PagerDuty listed.
    pub unknown_keys: usize,
    /// PagerDuty could not be asked (the cache, if any, was used).
    pub errors: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checked {}, in maintenance {}, disabled {}, stored {}, unknown routing keys {}, \
             errors {}{}",
            self.checked,
            self.in_maintenance,
            self.disabled,
            self.stored,
            self.unknown_keys,
            self.errors,
            if self.refreshed { " (refreshed)" } else { "" }
        )
    }
}

pub struct MaintenanceWatch {
    rest: RestClient,
    refresh: Duration,
    table: Mutex<Option<Table>>,
}

impl MaintenanceWatch {
    pub fn new(rest: RestClient) -> MaintenanceWatch {
        MaintenanceWatch {
            rest,
            refresh: DEFAULT_REFRESH,
            table: Mutex::new(None),
        }
    }

    /// How long the services' status is kept before PagerDuty is asked again.
    pub fn with_refresh(mut self, refresh: Duration) -> MaintenanceWatch {
        self.refresh = refresh;
        self
    }

    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// One look at the open problems; what their services' status means goes to the inbox.
    pub async fn check_once(
        &self,
        store: &dyn SyncStore,
        now: Timestamp,
    ) -> Result<Report, StoreError> {
        let mut report = Report::default();
        let rows: Vec<MappedIncident> = store
            .list_incidents(true, MAX_ROWS)
            .await?
            .into_iter()
            .filter(watched)
            .collect();
        report.checked = rows.len();
        if rows.is_empty() {
            // Nothing waits: PagerDuty is not asked.
            return Ok(report);
        }
        let mut cache = self.table.lock().await;
        let stale = cache.as_ref().is_none_or(|t| {
            now.duration_since(t.fetched_at)
                >= SignedDuration::try_from(self.refresh).unwrap_or(SignedDuration::MAX)
                || now < t.fetched_at
        });
        if stale {
            match self.fetch(now).await {
                Ok(t) => {
                    *cache = Some(t);
                    report.refreshed = true;
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(status = e.status(), response = e.body().map(ToString::to_string),
                        error = %e,
                        "cannot read PagerDuty's services (maintenance, disabled); trying again");
                }
            }
        }
        let Some(table) = cache.as_ref() else {
            return Ok(report);
        };
        for row in &rows {
            let Some(service) = table.by_key.get(&row.routing_key) else {
                report.unknown_keys += 1;
                tracing::debug!(routing_key = %row.routing_key, dedup_key = %row.dedup_key,
                    "maintenance: the routing key is no integration PagerDuty listed");
                continue;
            };
            let seen = row.problem_seen_at.as_millisecond();
            let svc = json!({"id": service.id, "name": service.name});
            let (external_id, body) = match service.status {
                ServiceStatus::Maintenance => {
                    // The window that keeps the service in maintenance longest.
                    let Some(w) = table
                        .windows
                        .get(&service.id)
                        .and_then(|ws| ws.iter().max_by_key(|w| w.end_time))
                    else {
                        continue;
                    };
                    let Some(window_id) = w.id.as_deref() else {
                        continue;
                    };
                    report.in_maintenance += 1;
                    (
                        format!(
                            "maint:{window_id}:{}:{}:{seen}",
                            row.routing_key, row.dedup_key
                        ),
                        json!({
                            "kind": "maintenance",
                            "routing_key": row.routing_key,
                            "dedup_key": row.dedup_key,
                            "problem_seen_at": row.problem_seen_at.to_string(),
                            "service": svc,
                            "window": {
                                "id": window_id,
                                "description": w.description.clone().unwrap_or_default(),
                                "start_time": w.start_time.to_string(),
                                "end_time": w.end_time.to_string(),
                            },
                            "at": now.to_string(),
                        }),
                    )
                }
                ServiceStatus::Disabled => {
                    // An incident PagerDuty opened before the service was disabled stays
                    // open and paged: only problems without one are said to page nobody.
                    if row.incident_id.is_some() {
                        continue;
                    }
                    report.disabled += 1;
                    (
                        format!(
                            "disabled:{}:{}:{}:{seen}",
                            service.id, row.routing_key, row.dedup_key
                        ),
                        json!({
                            "kind": "disabled",
                            "routing_key": row.routing_key,
                            "dedup_key": row.dedup_key,
                            "problem_seen_at": row.problem_seen_at.to_string(),
                            "service": svc,
                            "at": now.to_string(),
                        }),
                    )
                }
                _ => continue,
            };
            let bytes = serde_json::to_vec(&body).expect("JSON values serialise");
            if let Received::New(_) = store.receive(ORIGIN, &external_id, &bytes, now).await? {
                report.stored += 1;
                tracing::info!(dedup_key = %row.dedup_key, service = %service.name,
                    status = service.status.as_str(),
                    "maintenance: the problem's PagerDuty service opens no incident; telling the monitor");
            }
        }
        Ok(report)
    }

    /// Reads the services with their integrations, then the ongoing windows of those in
    /// maintenance (one request for all of them).
    async fn fetch(&self, now: Timestamp) -> Result<Table, pagerduty::Error> {
        let services: Vec<pagerduty::rest::Service> =
            self.rest.services_with_integrations().try_collect().await?;
        let mut by_key = HashMap::new();
        let mut in_maintenance = Vec::new();
        for s in &services {
            let info = ServiceInfo {
                id: s.id.clone(),
                name: if s.name.is_empty() {
                    s.summary.clone().unwrap_or_else(|| s.id.clone())
                } else {
                    s.name.clone()
                },
                status: s.status,
            };
            if s.status == ServiceStatus::Maintenance {
                in_maintenance.push(s.id.clone());
            }
            for i in &s.integrations {
                if let Some(key) = &i.integration_key {
                    by_key.insert(key.clone(), info.clone());
                }
            }
        }
        let mut windows: HashMap<String, Vec<MaintenanceWindow>> = HashMap::new();
        if !in_maintenance.is_empty() {
            let found: Vec<MaintenanceWindow> = self
                .rest
                .maintenance_windows(&in_maintenance, WindowFilter::Ongoing)
                .try_collect()
                .await?;
            for w in found {
                for s in &w.services {
                    if in_maintenance.contains(&s.id) {
                        windows.entry(s.id.clone()).or_default().push(w.clone());
                    }
                }
            }
        }
        Ok(Table {
            fetched_at: now,
            by_key,
            windows,
        })
    }
}

/// A problem the monitor still shows, unacknowledged, whose incident (if PagerDuty opened
/// one) is not resolved.
fn watched(row: &MappedIncident) -> bool {
    row.monitor_state == MonitorState::Problem && row.pd_status.as_deref() != Some("resolved")
}
