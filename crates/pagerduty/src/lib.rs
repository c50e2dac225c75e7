//! PagerDuty for pagerbridge: typed Events API v2/v1 and REST API v2 clients, PagerDuty's own
//! event validation rules, error classification, and Webhooks v3 signatures.
//!
//! No existing Rust crate covers what a relay needs: every outcome classified the way PagerDuty
//! documents (success / final / retry-after), error bodies kept in full, and the validation rules
//! shared with the emulator so both answer alike.

pub mod client;
pub mod error;
pub mod events;
pub mod rest;
pub mod retry;
pub mod webhook;

pub use client::{Accepted, ClientConfig, EventsClient, ProxyConfig, RestClient};
pub use error::{Api, Disposition, Error, ErrorBody, RateLimit};
pub use events::{ChangeEvent, Event, EventAction, EventResponse, Payload, Severity, V1Event};
pub use retry::{RetryPolicy, Wait, WaitReason};
