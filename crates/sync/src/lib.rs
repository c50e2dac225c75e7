//! The way back from PagerDuty to the monitors: what responders do in PagerDuty
//! (acknowledge, annotate, resolve) carried into the monitor the problem came from.
//!
//! PagerDuty's changes reach the store's inbox three ways, each item stored before it is
//! processed, with an external id that makes a repeated delivery a no-op:
//!
//! | origin | external id | body |
//! |---|---|---|
//! | `webhook_v3` | `X-Webhook-Id` (else the event id) | the delivery's body, `{"event": {...}}` |
//! | `webhook_v2` | `v2:<message id>` | one message of a Generic V2 delivery, `{"id", "event", "created_on", "incident", "log_entries"}` |
//! | `poller` | `log:<log entry id>` | `{"log_entry": <REST log entry>, "incident": <REST incident>}` |
//! | `maintenance` | `maint:...`, `disabled:...` | what [`maintenance`] found about a problem's service |
//!
//! [`writeback`] holds one adapter per monitor; each turns a [`writeback::Change`] into the
//! monitor's own API call and says whether a failure is worth retrying. [`poller`] fills the
//! inbox from PagerDuty's REST API for sites PagerDuty cannot reach. [`metrics`] counts what
//! they all do, for the daemon to expose.

pub mod maintenance;
pub mod metrics;
pub mod plan;
pub mod poller;
pub mod reconciler;
pub mod worker;
pub mod writeback;
