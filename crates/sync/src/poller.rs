//! Polling PagerDuty's log entries, for sites PagerDuty's webhooks cannot reach.
//!
//! Each [`Poller::poll_once`] reads `GET /log_entries` from the saved cursor, stores every
//! relevant entry in the inbox (origin [`ORIGIN`], external id `log:<entry id>`, body
//! `{"log_entry": <entry>, "incident": <the incident as GET /incidents/{id} returns it>}`),
//! oldest first, and then moves the cursor. What makes it safe:
//!
//! - **Nothing lost.** The cursor is the `created_at` of the newest entry handled, saved only
//!   after the whole poll succeeded; each poll starts [`DEFAULT_OVERLAP`] before it, because
//!   PagerDuty's log can show an entry some time after its `created_at`. A poll that fails
//!   midway leaves the cursor where it was, so the next one reads the same entries again.
//! - **Nothing twice.** What the overlap (or a failed poll) reads again is absorbed by the
//!   inbox's external id ([`Received::Duplicate`]); entries this poller stored moments ago are
//!   not even sent to the store again (nor their incidents fetched).
//! - **Every page.** `limit=100` pages while `more`; PagerDuty refuses `offset + limit` above
//!   10,000, and lists log entries newest first, so a longer window is continued with `until`
//!   moved to the oldest `created_at` read (one second later, so that an exclusive `until` loses
//!   none of that second's entries; those already read are recognised by id).
//! - **Within the rate limit.** A 429 is waited out for as long as PagerDuty says
//!   (`Retry-After`, else `ratelimit-reset`; bounded by [`Poller::with_retries`]), and so are
//!   5xx answers and dropped connections, with a growing delay when none is given; never
//!   without waiting, never without bound.
//!
//! The incident is fetched with `GET /incidents/{id}`, once per incident per poll. PagerDuty's
//! `include[]=incidents` on `/log_entries` would save those requests, but the published contract
//! does not say what it puts in the entries (the emulator ignores it), and the poller must not
//! depend on a shape nobody has pinned down. An incident that no longer exists (404) is stored
//! as `"incident": null` so one deleted service cannot stop the poller.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::{Received, StoreError, SyncStore};
use pagerduty::client::{MAX_LIMIT, MAX_OFFSET};
use pagerduty::rest::{LogEntry, LogEntryQuery};
use pagerduty::{Disposition, Error as PdError, RestClient};
use serde_json::{Value, json};

use crate::metrics::SyncMetrics;

/// The inbox origin of what the poller stores.
pub const ORIGIN: &str = "poller";

/// The cursor's name in the store unless [`Poller::with_cursor_name`] says otherwise.
pub const DEFAULT_CURSOR: &str = "pagerduty.log_entries";

/// How far before the cursor each poll reads again: PagerDuty's log can show an entry late.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(120);

/// The log entry types the way back acts on; every other type (`notify_log_entry`,
/// `assign_log_entry`, `escalate_log_entry`, `snooze_log_entry`, `urgency_change_log_entry`,
/// ...) is read, counted as skipped, and not stored.
///
/// - `trigger_log_entry`: an incident opened (or an alert added to it);
/// - `reopen_log_entry`: a resolved incident opened again (PagerDuty's webhooks call it
///   `incident.reopened`; the published log entry enum does not list it yet, but when it
///   appears it means the incident is open again, which the monitors must not miss);
/// - `acknowledge_log_entry`, `unacknowledge_log_entry` (also an acknowledgement timing out);
/// - `resolve_log_entry` (including a resolve by merging into another incident);
/// - `annotate_log_entry`: a note.
pub const RELEVANT_TYPES: &[&str] = &[
    "trigger_log_entry",
    "reopen_log_entry",
    "acknowledge_log_entry",
    "unacknowledge_log_entry",
    "resolve_log_entry",
    "annotate_log_entry",
];

/// Whether the poller stores log entries of this `type`.
pub fn is_relevant(kind: &str) -> bool {
    RELEVANT_TYPES.contains(&kind)
}

const DEFAULT_ATTEMPTS: u32 = 5;
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// The shortest wait before asking again: a `Retry-After: 0` must not become a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(500);

/// Reads PagerDuty's log entries into the inbox. Cheap to share: `poll_once` takes `&self`.
pub struct Poller {
    client: RestClient,
    cursor_name: String,
    lookback: Duration,
    overlap: Duration,
    attempts: u32,
    max_wait: Duration,
    page_limit: u64,
    max_offset: u64,
    /// Entries this poller already handed to the store (id -> created_at), so that re-reading
    /// the overlap costs neither a store write nor an incident request. Only a shortcut: the
    /// store's external id is what guarantees "once".
    recent: Mutex<HashMap<String, Timestamp>>,
    metrics: Option<Arc<SyncMetrics>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("client", &self.client)
            .field("cursor_name", &self.cursor_name)
            .field("lookback", &self.lookback)
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller reading with `client` (the `pagerduty.api_token`; reads need no `From`). The
    /// first poll, with no cursor saved yet, reads `lookback` into the past.
    pub fn new(client: RestClient, lookback: Duration) -> Poller {
        Poller {
            client,
            cursor_name: DEFAULT_CURSOR.to_owned(),
            lookback,
            overlap: DEFAULT_OVERLAP,
            attempts: DEFAULT_ATTEMPTS,
            max_wait: DEFAULT_MAX_WAIT,
            page_limit: MAX_LIMIT,
            max_offset: MAX_OFFSET,
            recent: Mutex::new(HashMap::new()),
            metrics: None,
        }
    }

    /// Counts each poll, what it stored and when the last one succeeded into `metrics`
    /// (shared with the daemon).
    pub fn with_metrics(mut self, metrics: Arc<SyncMetrics>) -> Poller {
        metrics.poller_enabled();
        self.metrics = Some(metrics);
        self
    }

    /// Another cursor name: one per PagerDuty account polled into the same store.
    pub fn with_cursor_name(mut self, name: impl Into<String>) -> Poller {
        self.cursor_name = name.into();
        self
    }

    /// How far before the cursor each poll starts (default [`DEFAULT_OVERLAP`]).
    pub fn with_overlap(mut self, overlap: Duration) -> Poller {
        self.overlap = overlap;
        self
    }

    /// How often one request is tried when PagerDuty throttles it (429), fails (5xx) or
    /// cannot be reached (at least once), and the longest single wait between two tries,
    /// whatever PagerDuty asks for. Defaults: 5 tries, 60 s (PagerDuty's limit is per minute).
    pub fn with_retries(mut self, attempts: u32, max_wait: Duration) -> Poller {
        self.attempts = attempts.max(1);
        self.max_wait = max_wait;
        self
    }

    /// Smaller pages and a lower offset ceiling than PagerDuty's 100 and 10,000, so tests can
    /// walk past the ceiling without creating ten thousand log entries.
    #[doc(hidden)]
    pub fn with_page_bounds(mut self, page_limit: u64, max_offset: u64) -> Poller {
        self.page_limit = page_limit.clamp(1, MAX_LIMIT);
        self.max_offset = max_offset.clamp(self.page_limit, MAX_OFFSET);
        self
    }

    pub fn cursor_name(&self) -> &str {
        &self.cursor_name
    }

    /// The saved cursor: the `created_at` of the newest log entry handled so far.
    pub async fn cursor(&self, store: &dyn SyncStore) -> Result<Option<Timestamp>, PollError> {
        match store.cursor(&self.cursor_name).await? {
            None => Ok(None),
            Some(value) => match value.parse::<Timestamp>() {
                Ok(t) => Ok(Some(t)),
                Err(_) => Err(PollError::BadCursor {
                    name: self.cursor_name.clone(),
                    value,
                }),
            },
        }
    }

    /// One poll: the log entries since the saved cursor (less the overlap), or since
    /// `now - lookback` on the first poll, each relevant one stored in the inbox oldest first;
    /// then the cursor moves to the newest entry read. On an error the cursor stays where it
    /// was; what was stored before the error stays stored.
    pub async fn poll_once(
        &self,
        store: &dyn SyncStore,
        now: Timestamp,
    ) -> Result<PollReport, PollError> {
        let result = self.poll(store, now).await;
        if let Some(m) = &self.metrics {
            m.poll(now, result.as_ref().ok().map(|r| r.stored));
        }
        result
    }

    async fn poll(&self, store: &dyn SyncStore, now: Timestamp) -> Result<PollReport, PollError> {
        let saved = self.cursor(store).await?;
        let since = match saved {
            Some(c) => c - signed(self.overlap),
            None => now - signed(self.lookback),
        };
        // Whole seconds: PagerDuty's own timestamps have no fraction, and a fraction in `since`
        // buys nothing but a chance of being refused.
        let since = Timestamp::from_second(since.as_second()).unwrap_or(since);
        let mut report = PollReport {
            since,
            ..PollReport::default()
        };

        let entries = self.read_window(since, &mut report).await?;
        report.entries = entries.len();

        let mut incidents: HashMap<String, Value> = HashMap::new();
        let mut newest: Option<Timestamp> = None;
        for entry in entries {
            let at = entry.created_at;
            if !is_relevant(&entry.kind) {
                report.skipped += 1;
            } else if self.already_stored(&entry.id) {
                report.duplicates += 1;
            } else {
                let incident = match &entry.incident {
                    Some(r) => self.incident(&r.id, &mut incidents, &mut report).await?,
                    None => Value::Null,
                };
                let bytes = serde_json::to_value(&entry)
                    .and_then(|log_entry| {
                        serde_json::to_vec(&json!({ "log_entry": log_entry, "incident": incident }))
                    })
                    .map_err(|e| {
                        PollError::Store(StoreError::Invalid(format!(
                            "log entry {} cannot be serialised: {e}",
                            entry.id
                        )))
                    })?;
                match store
                    .receive(ORIGIN, &format!("log:{}", entry.id), &bytes, now)
                    .await?
                {
                    Received::New(_) => report.stored += 1,
                    Received::Duplicate => report.duplicates += 1,
                }
                self.remember(&entry.id, at);
            }
            newest = newest.max(Some(at));
        }

        // Never backwards (an overlap that read nothing new), and pinned on a first poll that
        // read nothing, so that the next one does not start later than this one did.
        let cursor = match (saved, newest) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (Some(c), None) => Some(c),
            (None, Some(n)) => Some(n),
            (None, None) => Some(since),
        };
        if let Some(c) = cursor
            && Some(c) != saved
        {
            store
                .set_cursor(&self.cursor_name, &c.to_string(), now)
                .await?;
        }
        report.cursor = cursor;
        self.forget_before(cursor.map(|c| c - signed(self.overlap)));
        Ok(report)
    }

    /// Every log entry created at or after `since`, oldest first, each once.
    async fn read_window(
        &self,
        since: Timestamp,
        report: &mut PollReport,
    ) -> Result<Vec<LogEntry>, PollError> {
        let mut query = LogEntryQuery {
            since: Some(since),
            // `true` would leave out acknowledgements and notes PagerDuty deems minor.
            is_overview: Some(false),
            ..LogEntryQuery::default()
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut oldest: Option<Timestamp> = None;
        let mut offset = 0u64;
        loop {
            if offset + self.page_limit > self.max_offset {
                // Newest first: what is left is older than what was read.
                let Some(oldest) = oldest else { break };
                let until = oldest + SignedDuration::from_secs(1);
                if query.until.is_some_and(|u| until >= u) {
                    return Err(PollError::TooDense {
                        at: oldest,
                        max: self.max_offset,
                    });
                }
                query.until = Some(until);
                offset = 0;
            }
            let page = self
                .call(report, || {
                    self.client
                        .list_log_entries(&query, offset, self.page_limit)
                })
                .await
                .map_err(|e| classify(e, "reading GET /log_entries"))?;
            report.pages += 1;
            let n = page.items.len() as u64;
            for entry in page.items {
                let at = entry.created_at;
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
                // Entries logged while paging push the older ones to later offsets: read twice.
                if seen.insert(entry.id.clone()) {
                    entries.push(entry);
                }
            }
            offset += n;
            if !page.more || n == 0 {
                break;
            }
        }
        // PagerDuty lists newest first; the inbox must get them in the order they happened.
        // Reversing keeps the order of entries of the same second; the sort (stable) puts
        // those of a continued walk in place.
        entries.reverse();
        entries.sort_by_key(|e| e.created_at);
        Ok(entries)
    }

    /// The incident as `GET /incidents/{id}` returns it, once per poll; `null` once deleted.
    async fn incident(
        &self,
        id: &str,
        cache: &mut HashMap<String, Value>,
        report: &mut PollReport,
    ) -> Result<Value, PollError> {
        if let Some(v) = cache.get(id) {
            return Ok(v.clone());
        }
        let v = match self.call(report, || self.client.get_incident(id)).await {
            Ok(incident) => {
                report.incidents_fetched += 1;
                serde_json::to_value(incident).unwrap_or(Value::Null)
            }
            Err(e) if e.status() == Some(404) => {
                tracing::info!(
                    incident = id,
                    "incident no longer exists; stored without it"
                );
                report.incidents_missing += 1;
                Value::Null
            }
            Err(e) => return Err(classify(e, &format!("reading GET /incidents/{id}"))),
        };
        cache.insert(id.to_owned(), v.clone());
        Ok(v)
    }

    /// One request, tried again after what PagerDuty asks for when it throttles or fails.
    async fn call<T, F, Fut>(&self, report: &mut PollReport, mut send: F) -> Result<T, PdError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PdError>>,
    {
        let mut attempt = 1u32;
        loop {
            report.requests += 1;
            let err = match send().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Disposition::Retry { after } = err.disposition() else {
                return Err(err);
            };
            if attempt >= self.attempts {
                return Err(err);
            }
            // Without a delay from PagerDuty: 1 s, 2 s, 4 s, ...
            let backoff = Duration::from_secs(1u64 << (attempt - 1).min(6));
            let wait = after.unwrap_or(backoff).clamp(MIN_WAIT, self.max_wait);
            tracing::warn!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                status = err.status(),
                response = err.body().map(ToString::to_string),
                error = %err,
                "PagerDuty REST call failed; waiting before trying again"
            );
            report.retries += 1;
            report.waited += wait;
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn already_stored(&self, id: &str) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn remember(&self, id: &str, at: Timestamp) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), at);
    }

    /// Entries older than the next poll's window can never be read again.
    fn forget_before(&self, start: Option<Timestamp>) {
        if let Some(start) = start {
            self.recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, at| *at >= start);
        }
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// What one poll did, for the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollReport {
    /// The start of the window read.
    pub since: Timestamp,
    /// Distinct log entries read.
    pub entries: usize,
    /// Relevant entries new to the inbox.
    pub stored: usize,
    /// Relevant entries the inbox already had (the overlap, a retried poll).
    pub duplicates: usize,
    /// Entries of types the way back does not act on (see [`RELEVANT_TYPES`]).
    pub skipped: usize,
    /// Pages of `GET /log_entries` read.
    pub pages: u32,
    /// `GET /incidents/{id}` answered.
    pub incidents_fetched: usize,
    /// Incidents that no longer exist (404), stored as `null`.
    pub incidents_missing: usize,
    /// HTTP requests made, tries included.
    pub requests: u32,
    /// Requests tried again after a 429, a 5xx or no answer.
    pub retries: u32,
    /// Time spent waiting before those tries.
    pub waited: Duration,
    /// The cursor after the poll.
    pub cursor: Option<Timestamp>,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} log entries since {}: {} stored, {} already stored, {} skipped; {} requests",
            self.entries, self.since, self.stored, self.duplicates, self.skipped, self.requests
        )?;
        if self.retries > 0 {
            write!(
                f,
                " ({} retried, {:.1} s waited)",
                self.retries,
                self.waited.as_secs_f64()
            )?;
        }
        if self.incidents_missing > 0 {
            write!(f, "; {} incidents no longer exist", self.incidents_missing)?;
        }
        Ok(())
    }
}

/// Why a poll failed. The cursor is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(
        "PagerDuty refused the REST API token (HTTP 401) while {what}: check pagerduty.api_token ({detail})"
    )]
    Unauthorized { what: String, detail: String },
    #[error(
        "PagerDuty denied access (HTTP 403) while {what}: the token in pagerduty.api_token cannot read log entries and incidents ({detail})"
    )]
    Forbidden { what: String, detail: String },
    /// No answer (connection refused, timeout, DNS), even after the retries.
    #[error("PagerDuty's REST API cannot be reached while {what}: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: PdError,
    },
    /// Still throttled (429) or failing (5xx) after the retries.
    #[error("PagerDuty's REST API kept refusing while {what}: {source}")]
    Unavailable {
        what: String,
        #[source]
        source: PdError,
    },
    /// Any other answer a retry cannot change.
    #[error("PagerDuty's REST API failed while {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: PdError,
    },
    #[error(
        "more than {max} log entries share created_at {at}: PagerDuty's API cannot page through them"
    )]
    TooDense { at: Timestamp, max: u64 },
    #[error(
        "the saved poller cursor {name:?} is {value:?}, not a timestamp; delete it to poll from the lookback again"
    )]
    BadCursor { name: String, value: String },
    #[error("the inbox: {0}")]
    Store(#[from] StoreError),
}

fn classify(e: PdError, what: &str) -> PollError {
    let what = what.to_owned();
    let detail = || e.body().map(ToString::to_string).unwrap_or_default();
    match e.status() {
        Some(401) => PollError::Unauthorized {
            what,
            detail: detail(),
        },
        Some(403) => PollError::Forbidden {
            what,
            detail: detail(),
        },
        _ => match (&e, e.disposition()) {
            (PdError::Transport { .. }, _) => PollError::Unreachable { what, source: e },
            (_, Disposition::Retry { .. }) => PollError::Unavailable { what, source: e },
            _ => PollError::Api { what, source: e },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relevant_types_are_the_ones_the_way_back_acts_on() {
        for t in [
            "acknowledge_log_entry",
            "unacknowledge_log_entry",
            "resolve_log_entry",
            "annotate_log_entry",
            "trigger_log_entry",
            "reopen_log_entry",
        ] {
            assert!(is_relevant(t), "{t}");
        }
        for t in [
            "notify_log_entry",
            "assign_log_entry",
            "escalate_log_entry",
            "snooze_log_entry",
            "urgency_change_log_entry",
        ] {
            assert!(!is_relevant(t), "{t}");
        }
    }

    #[test]
    fn an_auth_failure_names_the_setting() {
        let e = PdError::Api {
            api: pagerduty::Api::Rest,
            status: 401,
            body: Box::new(pagerduty::ErrorBody::parse(
                br#"{"error":{"message":"Unauthorized","code":2006}}"#,
            )),
            retry_after: None,
            rate_limit: Default::default(),
        };
        let msg = classify(e, "reading GET /log_entries").to_string();
        assert!(msg.contains("pagerduty.api_token"), "{msg}");
        assert!(msg.contains("401"), "{msg}");
    }
}
