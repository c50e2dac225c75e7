//! The pagerbridge daemon: PagerDuty-compatible relay routes that store events durably, and the
//! dispatcher that delivers them.

pub mod api;
pub mod auth;
pub mod daemon;
pub mod dispatch;
pub mod relay;
pub mod sources;
pub mod webhooks;

pub use daemon::{DaemonError, Running, start};
