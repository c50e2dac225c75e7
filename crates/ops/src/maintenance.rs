//! Maintenance windows: list and create.

use futures::{Stream, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use pagerduty::RestClient;
use pagerduty::rest::{MaintenanceWindow, WindowFilter};

use crate::error::OpError;
use crate::services;
use crate::time::{parse_duration, parse_time};

/// `open` (ongoing and future, the default), `ongoing`, `future`, `past` or `all`.
pub fn parse_filter(text: Option<&str>) -> Result<WindowFilter, OpError> {
    Ok(match text.map(str::trim).unwrap_or("open") {
        "open" => WindowFilter::Open,
        "ongoing" => WindowFilter::Ongoing,
        "future" => WindowFilter::Future,
        "past" => WindowFilter::Past,
        "all" => WindowFilter::All,
        other => {
            return Err(OpError::field(
                "filter",
                format!("filter: {other:?} is not one of open, ongoing, future, past, all"),
            ));
        }
    })
}

/// The windows of `services` (ids or names; empty: all) that `filter` keeps.
pub async fn list(
    rest: &RestClient,
    services: &[String],
    filter: WindowFilter,
) -> Result<impl Stream<Item = Result<MaintenanceWindow, OpError>> + Send + 'static + use<>, OpError>
{
    let mut ids = Vec::new();
    for s in services {
        ids.push(services::resolve(rest, s).await?.id);
    }
    Ok(rest
        .maintenance_windows(&ids, filter)
        .map_err(|e| OpError::from_pagerduty("listing maintenance windows", &e)))
}

/// A window to create, as typed: services by id or name, `start` (default now) and either
/// `end` or `duration`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewWindow {
    pub services: Vec<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration: Option<String>,
    pub description: Option<String>,
}

pub async fn create(
    rest: &RestClient,
    w: &NewWindow,
    now: Timestamp,
) -> Result<MaintenanceWindow, OpError> {
    if w.services.is_empty() {
        return Err(OpError::field(
            "services",
            "services: give at least one service (id or name)",
        ));
    }
    let start = match &w.start {
        Some(t) => parse_time("start", t, now)?,
        None => now,
    };
    let end = match (&w.end, &w.duration) {
        (Some(_), Some(_)) => {
            return Err(OpError::field(
                "duration",
                "duration: give either end or duration, not both",
            ));
        }
        (Some(t), None) => parse_time("end", t, now)?,
        (None, Some(d)) => {
            let d = parse_duration("duration", d)?;
            if d <= SignedDuration::ZERO {
                return Err(OpError::field(
                    "duration",
                    "duration: must be longer than 0s",
                ));
            }
            start
                .checked_add(d)
                .map_err(|_| OpError::field("duration", "duration: too long"))?
        }
        (None, None) => {
            return Err(OpError::field(
                "end",
                "end: give when the window ends (end) or how long it lasts (duration)",
            ));
        }
    };
    if end <= start {
        return Err(OpError::field(
            "end",
            format!("end: {end} is not after the start ({start})"),
        ));
    }
    let mut ids = Vec::new();
    for s in &w.services {
        ids.push(services::resolve(rest, s).await?.id);
    }
    let window = MaintenanceWindow::new(start, end, w.description.clone(), &ids);
    rest.create_maintenance_window(&window).await.map_err(|e| {
        crate::incidents::with_from_hint(OpError::from_pagerduty(
            "creating the maintenance window",
            &e,
        ))
    })
}
