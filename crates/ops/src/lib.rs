//! What an operator does with incidents, services and maintenance windows, shared by the
//! `pagerbridge incident|service|maintenance` commands and the daemon's `/api/v1` routes, so
//! that both validate alike, page alike (past PagerDuty's 10,000-offset ceiling), chunk bulk
//! updates alike (at most 250) and fail with the same messages.
//!
//! Everything here takes a [`pagerduty::RestClient`]; the caller decides the token, the `From`
//! user and whether 429s are waited out (see [`pagerduty::RetryPolicy`]).

pub mod error;
pub mod incidents;
pub mod maintenance;
pub mod services;
pub mod time;

pub use error::{Kind, OpError};
