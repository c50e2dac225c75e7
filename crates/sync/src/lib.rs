//! The way back from PagerDuty to the monitors: what responders do in PagerDuty
//! (acknowledge, annotate, resolve) carried into the monitor the problem came from.
//!
//! [`writeback`] holds one adapter per monitor; each turns a [`writeback::Change`] into the
//! monitor's own API call and says whether a failure is worth retrying.

pub mod writeback;
