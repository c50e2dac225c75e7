//! The pagerbridge daemon: PagerDuty-compatible relay routes that store events durably, and the
//! dispatcher that delivers them.

pub mod api;
pub mod auth;
pub mod backend;
pub mod daemon;
pub mod dispatch;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod relay;
pub mod self_alert;
pub mod sources;
pub mod status_page;
pub mod webhooks;

pub use daemon::{DaemonError, Running, start};
