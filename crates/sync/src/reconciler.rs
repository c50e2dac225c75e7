//! The reconciler: on an interval, for every incident of the map that is not settled on both
//! sides, asks PagerDuty how it stands and repairs what the fast paths missed.
//!
//! - **A lost resolve** (the monitor recovered, the incident is still open in PagerDuty, and no
//!   resolve is waiting in the outbox): a resolve event is queued again.
//! - **A change PagerDuty made that never reached us** (a webhook lost, polling off): the
//!   incident's status and its acknowledgements are fed to the inbox as a change, where the
//!   usual rules apply: an acknowledgement made by a person that the monitor does not show is
//!   written back; one the map already recorded is recognised and not written twice.
//! - **An incident not yet known by id**: found by its incident key, and the map completed.
//!
//! Every repair is logged and counted in the [`Report`].

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::{
    EventKind, ListQuery, MappedIncident, MonitorState, NewEvent, Received, State, Store, SyncStore,
};
use pagerduty::RestClient;
use pagerduty::events::EventAction;
use pagerduty::rest::{Incident, IncidentQuery, IncidentStatus};
use serde_json::json;

use crate::metrics::SyncMetrics;

/// The origin of the changes the reconciler feeds to the inbox (parsed like the poller's).
pub const ORIGIN: &str = "reconciler";

/// Rows checked per pass, so one pass stays within PagerDuty's REST rate limit (960 a minute).
const MAX_PER_PASS: usize = 300;

/// A recovery younger than this is left to the outbox: its resolve may simply not be
/// delivered yet.
const SETTLE: Duration = Duration::from_secs(120);

/// What one pass found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checked: usize,
    /// Resolves queued again.
    pub resolves_resent: usize,
    /// Changes fed to the inbox (PagerDuty's side, as it stands now).
    pub changes_fed: usize,
    /// Incidents found by key and recorded in the map.
    pub ids_learned: usize,
    /// Rows PagerDuty could not answer for (they are tried at the next pass).
    pub errors: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checked {}, resolves re-sent {}, changes fed {}, incidents found {}, errors {}",
            self.checked, self.resolves_resent, self.changes_fed, self.ids_learned, self.errors
        )
    }
}

pub struct Reconciler {
    rest: RestClient,
    settle: Duration,
    metrics: Option<Arc<SyncMetrics>>,
}

impl Reconciler {
    pub fn new(rest: RestClient) -> Reconciler {
        Reconciler {
            rest,
            settle: SETTLE,
            metrics: None,
        }
    }

    /// Counts each pass and its repairs into `metrics` (shared with the daemon).
    pub fn with_metrics(mut self, metrics: Arc<SyncMetrics>) -> Reconciler {
        metrics.reconciler_enabled();
        self.metrics = Some(metrics);
        self
    }

    /// How long a recovery is left to the outbox before its resolve counts as lost.
    pub fn with_settle(mut self, settle: Duration) -> Reconciler {
        self.settle = settle;
        self
    }

    /// One pass over the unsettled rows of the map.
    pub async fn reconcile_once(
        &self,
        outbox: &dyn Store,
        store: &dyn SyncStore,
        now: Timestamp,
    ) -> Result<Report, pagerbridge_store::StoreError> {
        let result = self.pass(outbox, store, now).await;
        if let Some(m) = &self.metrics {
            m.reconciler_pass(result.as_ref().map_err(|_| ()));
        }
        result
    }

    async fn pass(
        &self,
        outbox: &dyn Store,
        store: &dyn SyncStore,
        now: Timestamp,
    ) -> Result<Report, pagerbridge_store::StoreError> {
        let mut report = Report::default();
        for row in store.list_incidents(true, MAX_PER_PASS).await? {
            report.checked += 1;
            match self.incident_of(&row).await {
                Ok(Some(inc)) => {
                    self.repair(&row, &inc, outbox, store, now, &mut report)
                        .await?
                }
                Ok(None) => {}
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(routing_key = %pagerduty::events::mask_key(&row.routing_key),
                        dedup_key = %row.dedup_key, incident = row.incident_id.as_deref().unwrap_or(""),
                        status = e.status(), response = e.body().map(ToString::to_string), error = %e,
                        "reconciler: cannot read the incident from PagerDuty");
                }
            }
        }
        Ok(report)
    }

    /// The incident of a row: by id once known, else the newest with its incident key.
    async fn incident_of(
        &self,
        row: &MappedIncident,
    ) -> Result<Option<Incident>, pagerduty::Error> {
        if let Some(id) = &row.incident_id {
            return match self.rest.get_incident(id).await {
                Ok(i) => Ok(Some(i)),
                Err(pagerduty::Error::Api { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        use futures::StreamExt;
        let query = IncidentQuery {
            incident_key: Some(row.dedup_key.clone()),
            all_dates: true,
            ..IncidentQuery::default()
        };
        let mut newest: Option<Incident> = None;
        let mut walk = std::pin::pin!(self.rest.incidents(query));
        while let Some(inc) = walk.next().await {
            let inc = inc?;
            // Only an incident opened for the current problem (see plan: clocks may differ).
            let opened = inc.created_at.unwrap_or(Timestamp::UNIX_EPOCH);
            if opened >= row.problem_seen_at - SignedDuration::from_secs(60)
                && row
                    .service_id
                    .as_ref()
                    .is_none_or(|s| inc.service.as_ref().is_some_and(|r| &r.id == s))
            {
                newest = Some(inc);
            }
        }
        Ok(newest)
    }

    async fn repair(
        &self,
        row: &MappedIncident,
        inc: &Incident,
        outbox: &dyn Store,
        store: &dyn SyncStore,
        now: Timestamp,
        report: &mut Report,
    ) -> Result<(), pagerbridge_store::StoreError> {
        if row.incident_id.is_none() {
            store
                .update_incidents(&[pagerbridge_store::IncidentUpdate {
                    routing_key: row.routing_key.clone(),
                    dedup_key: row.dedup_key.clone(),
                    incident_id: inc.id.clone(),
                    incident_url: inc.html_url.clone(),
                    service_id: inc.service.as_ref().map(|s| s.id.clone()),
                    pd_status: None,
                    at: now,
                }])
                .await?;
            report.ids_learned += 1;
            tracing::info!(dedup_key = %row.dedup_key, incident = %inc.id,
                "reconciler: found the incident of a problem");
        }
        let open = inc.status != IncidentStatus::Resolved;
        let settled = now.duration_since(row.monitor_changed_at)
            >= SignedDuration::try_from(self.settle).unwrap_or(SignedDuration::MAX);
        if row.monitor_state == MonitorState::Recovered && open && settled {
            let queued = outbox
                .list(&ListQuery {
                    states: vec![State::Pending],
                    routing_key: Some(row.routing_key.clone()),
                    dedup_key: Some(row.dedup_key.clone()),
                    before_id: None,
                    limit: 1,
                })
                .await?;
            if queued.is_empty() {
                let body = json!({
                    "routing_key": row.routing_key,
                    "event_action": "resolve",
                    "dedup_key": row.dedup_key,
                });
                outbox
                    .insert(&[NewEvent {
                        kind: EventKind::EventsV2,
                        routing_key: row.routing_key.clone(),
                        dedup_key: Some(row.dedup_key.clone()),
                        action: Some(EventAction::Resolve),
                        body: serde_json::to_vec(&body).expect("JSON values serialise"),
                        source: "reconciler".into(),
                        received_at: now,
                        origin: None,
                    }])
                    .await?;
                report.resolves_resent += 1;
                tracing::info!(dedup_key = %row.dedup_key, incident = %inc.id,
                    "reconciler: the problem recovered but the incident is open; resolve sent again");
            }
        }
        // PagerDuty's side as it stands, as a change: the inbox's rules decide what it means
        // (already known, an echo, or something the monitor missed).
        let status = match inc.status {
            IncidentStatus::Acknowledged => "acknowledge_log_entry",
            IncidentStatus::Resolved => "resolve_log_entry",
            _ => return Ok(()),
        };
        if row.pd_status.as_deref() == Some(status_word(inc.status)) {
            return Ok(());
        }
        let (at, agent) = match inc.status {
            IncidentStatus::Acknowledged => match inc.acknowledgements.last() {
                Some(a) => (
                    a.at,
                    serde_json::to_value(&a.acknowledger).unwrap_or_default(),
                ),
                None => return Ok(()),
            },
            _ => (
                inc.last_status_change_at.or(inc.resolved_at).unwrap_or(now),
                inc.last_status_change_by
                    .as_ref()
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
                    .unwrap_or_default(),
            ),
        };
        let body = json!({
            "log_entry": {
                "id": format!("reconciled-{}-{status}-{}", inc.id, at.as_millisecond()),
                "type": status,
                "created_at": at.to_string(),
                "agent": agent,
                "incident": {"id": inc.id, "html_url": inc.html_url},
            },
            "incident": inc,
        });
        let id = format!("reconcile:{}:{status}:{}", inc.id, at.as_millisecond());
        let bytes = serde_json::to_vec(&body).expect("JSON values serialise");
        if let Received::New(_) = store.receive(ORIGIN, &id, &bytes, now).await? {
            report.changes_fed += 1;
            tracing::info!(dedup_key = %row.dedup_key, incident = %inc.id, status,
                "reconciler: PagerDuty's change had not reached pagerbridge; processing it");
        }
        Ok(())
    }
}

fn status_word(s: IncidentStatus) -> &'static str {
    match s {
        IncidentStatus::Triggered => "triggered",
        IncidentStatus::Acknowledged => "acknowledged",
        IncidentStatus::Resolved => "resolved",
    }
}
