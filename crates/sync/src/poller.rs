//! Polling PagerDuty's log entries (being written).
