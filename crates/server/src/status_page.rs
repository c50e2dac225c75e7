//! The status page at `/`: what the outbox holds and does, read from the store and rendered on
//! the server as one HTML document (inline CSS, no JavaScript, a `<meta http-equiv="refresh">`
//! to stay current), and a replay button per dead letter. Described in docs/observability.md.
//!
//! Every text that comes from outside (alert summaries, dedup keys, PagerDuty's errors, monitor
//! names, incident URLs) passes through [`Esc`] on its way into the document; hrefs are built
//! only from `http(s)` URLs. The page also forbids every script with its Content-Security-Policy,
//! so a mistake in escaping would still not run anything.
//!
//! The page needs no token to read (like `/healthz`): routing keys are masked as the metrics
//! mask them. Replaying changes the outbox, so it needs an admin token of `[[api.tokens]]`,
//! checked by the API's own check.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use pagerbridge_config::{ApiScope, Config};
use pagerbridge_store::{
    EventKind, EventRecord, ListQuery, MappedIncident, QueueStats, State as EventState, Store,
    StoreError, SyncStore, WritebackState,
};
use serde_json::Value;

use crate::api::Api;
use crate::dispatch::{Dispatcher, Status};
use crate::leader::{LeaderView, Leadership};
// Routing keys are secrets: shown as /metrics labels them, so the two can be matched.
use crate::metrics::mask_key;

/// Where the replay form posts.
pub const REPLAY_PATH: &str = "/status/replay";

/// Seconds between the page's own reloads.
pub const REFRESH_SECONDS: u32 = 10;

/// The newest events shown with their incidents.
const RECENT_EVENTS: usize = 25;

/// Dead letters shown (the count says how many there are in all).
const DEAD_LETTERS: usize = 50;

/// Write-backs read per state to count them per monitor; past it the page says "at least".
const WRITEBACKS_COUNTED: usize = 1000;

/// Unprocessed PagerDuty changes read to count them.
const INBOX_COUNTED: usize = 100;

/// Alert summaries are cut to this many characters (PagerDuty allows 1024).
const SUMMARY_CHARS: usize = 160;

/// Delivery rates: events PagerDuty accepted in the last this many minutes.
const RATE_WINDOWS: [i64; 3] = [1, 5, 15];

/// Scripts, frames and plugins are all refused; only the inline stylesheet and forms posting
/// back here are allowed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the page reads. Cheap to clone.
#[derive(Clone)]
pub struct StatusPage(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    sync: Arc<dyn SyncStore>,
    /// For its token check only.
    api: Api,
    dispatcher: Dispatcher,
    /// The REST API's base, for a link to an incident whose web address is not known.
    rest_base: String,
    /// The `[[monitors]]` names, listed even when nothing is written back to them.
    monitors: Vec<String>,
    /// The poller's cursor, when it polls.
    poller_cursor: Option<String>,
    webhooks: bool,
    /// Which replica this is, and who leads.
    leadership: Option<Leadership>,
}

impl StatusPage {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        sync: Arc<dyn SyncStore>,
        api: Api,
        dispatcher: Dispatcher,
    ) -> StatusPage {
        StatusPage(Arc::new(Inner {
            store,
            sync,
            api,
            dispatcher,
            rest_base: config
                .pagerduty
                .client_config()
                .rest_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            monitors: config.monitors.iter().map(|m| m.name.clone()).collect(),
            poller_cursor: config
                .sync
                .poller
                .enabled
                .then(|| pagerbridge_sync::poller::DEFAULT_CURSOR.to_owned()),
            webhooks: !config.sync.webhooks.secrets.is_empty()
                || config.sync.webhooks.legacy_secret.is_some(),
            leadership: None,
        }))
    }

    /// Shows this replica's name and the leader. Call before the page is shared.
    pub fn with_leadership(self, leadership: Leadership) -> StatusPage {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.leadership = Some(leadership);
                StatusPage(Arc::new(inner))
            }
            Err(shared) => StatusPage(shared),
        }
    }
}

/// The page's routes, to merge into the daemon's router.
pub fn routes(page: StatusPage) -> Router {
    Router::new()
        .route("/", get(show))
        .route(REPLAY_PATH, post(replay))
        .with_state(page)
}

// ---------------------------------------------------------------- reading

/// Everything one rendering shows, read before any of it is written out.
struct Snapshot {
    now: Timestamp,
    stats: QueueStats,
    /// (minutes, events delivered in them)
    delivered: Vec<(i64, u64)>,
    dispatcher: Status,
    recent: Vec<(EventRecord, Incident)>,
    dead: Vec<EventRecord>,
    monitors: Vec<MonitorSync>,
    /// Unprocessed changes from PagerDuty (at most [`INBOX_COUNTED`]).
    inbox_waiting: usize,
    webhooks: bool,
    /// `Some` when the poller runs: its cursor, once it has one.
    poller_cursor: Option<Option<String>>,
    /// This replica and the leader, when known.
    leader: Option<LeaderView>,
    notice: Option<Notice>,
    refresh: bool,
}

/// The incident an event became, as the incident map knows it.
#[derive(Debug, Clone, PartialEq)]
enum Incident {
    /// No map row: a relayed event, or a change event (no monitor problem behind it).
    NotMapped,
    /// Mapped, but PagerDuty has not named the incident yet.
    NotKnownYet,
    Known {
        id: String,
        href: String,
        status: Option<String>,
    },
}

#[derive(Debug, Default, Clone, PartialEq)]
struct MonitorSync {
    name: String,
    pending: usize,
    failed: usize,
    /// The counts are lower bounds: more write-backs were pending (failed) than were read.
    pending_more: bool,
    failed_more: bool,
    /// The newest failure: when, and why.
    last_failure: Option<(Timestamp, String)>,
}

/// What the page says above everything else, after a replay.
#[derive(Debug, Clone, PartialEq)]
struct Notice {
    id: i64,
    /// The event's state now (none if it was meanwhile purged).
    state: Option<EventState>,
}

/// The query string of `/`.
#[derive(Debug, Default, serde::Deserialize)]
struct PageQuery {
    replayed: Option<String>,
    refresh: Option<String>,
}

async fn show(State(page): State<StatusPage>, uri: Uri) -> Response {
    let q: PageQuery = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let refresh = q.refresh.as_deref() != Some("off");
    let replayed = q.replayed.as_deref().and_then(|s| s.parse::<i64>().ok());
    match snapshot(&page, Timestamp::now(), replayed, refresh).await {
        Ok(s) => html(StatusCode::OK, render(&s, &page.0.rest_base)),
        Err(e) => {
            tracing::warn!(error = %e, "status page: cannot read the store");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The outbox cannot be read",
                &format!("The store answered: {e}. The page tries again in {REFRESH_SECONDS} s."),
                true,
            )
        }
    }
}

async fn snapshot(
    page: &StatusPage,
    now: Timestamp,
    replayed: Option<i64>,
    refresh: bool,
) -> Result<Snapshot, StoreError> {
    let p = &page.0;
    let store = p.store.as_ref();
    let stats = store.stats().await?;
    let mut delivered = Vec::new();
    for minutes in RATE_WINDOWS {
        let since = now - SignedDuration::from_mins(minutes);
        delivered.push((minutes, store.delivered_since(since).await?));
    }
    let newest = store
        .list(&ListQuery {
            limit: RECENT_EVENTS,
            ..ListQuery::default()
        })
        .await?;
    let mut recent = Vec::with_capacity(newest.len());
    for r in newest {
        let incident = incident_of(p, &r).await?;
        recent.push((r, incident));
    }
    let dead = store
        .list(&ListQuery {
            states: vec![EventState::Dead],
            limit: DEAD_LETTERS,
            ..ListQuery::default()
        })
        .await?;
    let notice = match replayed {
        Some(id) => Some(Notice {
            id,
            state: store.get(id).await?.map(|r| r.state),
        }),
        None => None,
    };
    let poller_cursor = match &p.poller_cursor {
        Some(name) => Some(p.sync.cursor(name).await?),
        None => None,
    };
    Ok(Snapshot {
        now,
        stats,
        delivered,
        dispatcher: p.dispatcher.status(),
        recent,
        dead,
        monitors: monitor_sync(p).await?,
        inbox_waiting: p.sync.inbox_pending(INBOX_COUNTED).await?.len(),
        webhooks: p.webhooks,
        poller_cursor,
        leader: match &p.leadership {
            Some(l) => Some(l.view().await),
            None => None,
        },
        notice,
        refresh,
    })
}

/// The map row of the event's alert (same routing key and dedup key), if any.
async fn incident_of(p: &Inner, r: &EventRecord) -> Result<Incident, StoreError> {
    let Some(dedup_key) = r
        .dedup_key
        .as_deref()
        .filter(|_| r.kind != EventKind::Change)
    else {
        return Ok(Incident::NotMapped);
    };
    let rows = p.sync.incidents_by_dedup_key(dedup_key).await?;
    let Some(row) = rows.iter().find(|m| m.routing_key == r.routing_key) else {
        return Ok(Incident::NotMapped);
    };
    Ok(incident_link(row, &p.rest_base))
}

/// A link to the incident: its web page when PagerDuty told us one, else its REST resource.
fn incident_link(row: &MappedIncident, rest_base: &str) -> Incident {
    let Some(id) = row.incident_id.clone() else {
        return Incident::NotKnownYet;
    };
    let href = match row.incident_url.as_deref().filter(|u| is_web_url(u)) {
        Some(url) => url.to_owned(),
        None => format!("{rest_base}/incidents/{}", path_segment(&id)),
    };
    Incident::Known {
        id,
        href,
        status: row.pd_status.clone(),
    }
}

/// Only these become links: a `javascript:` or `data:` URL in a webhook must stay text.
fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// `s` percent-encoded for one path segment (PagerDuty's ids are letters and digits anyway).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Write-backs pending and failed per monitor: every configured monitor, plus any other name
/// the store still holds write-backs for (a monitor since removed from the configuration).
async fn monitor_sync(p: &Inner) -> Result<Vec<MonitorSync>, StoreError> {
    let mut by_name: BTreeMap<String, MonitorSync> = BTreeMap::new();
    fn slot<'a>(by_name: &'a mut BTreeMap<String, MonitorSync>, name: &str) -> &'a mut MonitorSync {
        by_name
            .entry(name.to_owned())
            .or_insert_with(|| MonitorSync {
                name: name.to_owned(),
                ..MonitorSync::default()
            })
    }
    for name in &p.monitors {
        slot(&mut by_name, name);
    }
    let pending = p
        .sync
        .list_writebacks(Some(WritebackState::Pending), WRITEBACKS_COUNTED)
        .await?;
    let pending_more = pending.len() >= WRITEBACKS_COUNTED;
    for w in pending {
        slot(&mut by_name, &w.monitor).pending += 1;
    }
    let failed = p
        .sync
        .list_writebacks(Some(WritebackState::Failed), WRITEBACKS_COUNTED)
        .await?;
    let failed_more = failed.len() >= WRITEBACKS_COUNTED;
    // Newest first: the first failure seen per monitor is its latest.
    for w in failed {
        let m = slot(&mut by_name, &w.monitor);
        m.failed += 1;
        if m.last_failure.is_none() {
            let when = w.finished_at.unwrap_or(w.created_at);
            m.last_failure = Some((when, w.last_error.unwrap_or_default()));
        }
    }
    Ok(by_name
        .into_values()
        .map(|m| MonitorSync {
            pending_more,
            failed_more,
            ..m
        })
        .collect())
}

// ---------------------------------------------------------------- replaying

/// The replay form's fields.
#[derive(Debug, Default, serde::Deserialize)]
struct ReplayForm {
    id: Option<String>,
    token: Option<String>,
}

/// Puts a dead letter back in its lane, for a caller with an admin token.
///
/// CSRF: the page sets no cookie and the daemon keeps no session; the admin token typed into
/// the form is the credential itself, checked on every post. A form on another site can post
/// here, but without the token it is refused like any other caller without one.
async fn replay(State(page): State<StatusPage>, body: Bytes) -> Response {
    let form: ReplayForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let p = &page.0;
    if !p.api.has_tokens() {
        return message_page(
            StatusCode::FORBIDDEN,
            "Replaying needs an admin token",
            "Replaying a dead letter needs a token of [[api.tokens]] with scope admin, and the \
             configuration lists none. Add one, or run `pagerbridge queue retry ID` on the \
             daemon's host.",
            false,
        );
    }
    let token = form.token.as_deref().map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return unauthorized(
            "No token was given. Type a token of [[api.tokens]] with scope admin.",
        );
    }
    let caller = match p.api.check_token(token) {
        Some((name, scope)) => (name.to_owned(), scope),
        None => {
            return unauthorized(
                "That token is not one of [[api.tokens]]. Type a token with scope admin.",
            );
        }
    };
    if caller.1 < ApiScope::Admin {
        return message_page(
            StatusCode::FORBIDDEN,
            "This token may not replay",
            &format!(
                "The token {:?} has scope {}; replaying a dead letter needs a token of scope admin.",
                caller.0,
                caller.1.as_str()
            ),
            false,
        );
    }
    let Some(id) = form
        .id
        .as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
    else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Which event?",
            "The form did not name an event id (a whole number).",
            false,
        );
    };
    let not_now = |e: StoreError| {
        tracing::warn!(error = %e, event = id, "status page: cannot replay");
        message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The outbox cannot be changed now",
            &format!("The store answered: {e}. Nothing was changed; try again."),
            false,
        )
    };
    let state = match p.store.get(id).await {
        Ok(Some(r)) => r.state,
        Ok(None) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such event",
                &format!("The outbox holds no event with id {id}."),
                false,
            );
        }
        Err(e) => return not_now(e),
    };
    if state != EventState::Dead {
        return message_page(
            StatusCode::CONFLICT,
            "Nothing to replay",
            &format!("Event {id} is {state}, not a dead letter: nothing was changed."),
            false,
        );
    }
    match p.store.retry(&[id], Timestamp::now()).await {
        Ok(0) => message_page(
            StatusCode::CONFLICT,
            "Nothing to replay",
            &format!("Event {id} changed meanwhile (another operator?): nothing was changed."),
            false,
        ),
        Ok(_) => {
            tracing::info!(event = id, token = %caller.0, "status page: dead letter replayed");
            p.dispatcher.wake();
            let mut resp = StatusCode::SEE_OTHER.into_response();
            resp.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("/?replayed={id}")).expect("digits"),
            );
            resp
        }
        Err(e) => not_now(e),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = message_page(
        StatusCode::UNAUTHORIZED,
        "An admin token is needed",
        message,
        false,
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"pagerbridge\""),
    );
    resp
}

// ---------------------------------------------------------------- writing

/// Text made safe for HTML, in element content and in quoted attribute values alike.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// A short page saying what happened, with the way back to the status page.
fn message_page(status: StatusCode, title: &str, message: &str, refresh: bool) -> Response {
    let mut out = String::new();
    head(&mut out, title, refresh);
    let _ = write!(
        out,
        "<main>\n<h1>{title}</h1>\n<p class=\"message\" role=\"alert\">{message}</p>\n\
         <p><a href=\"/\">Back to the status page</a></p>\n</main>\n</body>\n</html>\n",
        title = Esc(title),
        message = Esc(message),
    );
    html(status, out)
}

const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1d2430; --muted: #56606e; --line: #d9dee5; --bg: #f6f7f9;
  --card: #fff; --accent: #0b5cad; --bad: #a4161a; --bad-bg: #fdecec; --ok: #1d6b33;
  --ok-bg: #e8f5ec; --warn: #7a4b00; --warn-bg: #fff4de; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
header { background: #17202e; color: #fff; padding: 14px 24px; display: flex; gap: 16px;
  align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 20px; margin: 0; }
header p { margin: 0; color: #c9d1dc; }
header a { color: #9cc7ff; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px 40px; }
h1 { font-size: 22px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.notice { background: var(--ok-bg); color: var(--ok); border: 1px solid #b7dfc2;
  padding: 10px 14px; border-radius: 6px; }
.warning { background: var(--warn-bg); color: var(--warn); border: 1px solid #f0d49a;
  padding: 10px 14px; border-radius: 6px; }
.message { font-size: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px;
  margin: 16px 0 0; padding: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 14px; margin: 0; }
.card dt { color: var(--muted); font-size: 13px; }
.card dd { margin: 4px 0 0; font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.bad dd { color: var(--bad); }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
caption { text-align: left; color: var(--muted); padding: 0 0 6px; caption-side: top; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { background: #eef1f5; font-size: 13px; color: #333d4b; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .key { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.summary { max-width: 38ch; overflow-wrap: anywhere; }
.error { color: var(--bad); overflow-wrap: anywhere; max-width: 48ch; }
.muted { color: var(--muted); }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; background: #eef1f5; }
.state-delivered { background: var(--ok-bg); color: var(--ok); }
.state-dead { background: var(--bad-bg); color: var(--bad); }
.state-pending { background: var(--warn-bg); color: var(--warn); }
form.replay { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin: 0; }
form.replay label { font-size: 12px; color: var(--muted); }
form.replay input { width: 14em; padding: 4px 6px; border: 1px solid #9aa5b4; border-radius: 4px; }
form.replay button { padding: 4px 12px; border: 1px solid var(--accent); background: var(--accent);
  color: #fff; border-radius: 4px; cursor: pointer; font-weight: 600; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
.empty { color: var(--muted); font-style: italic; }
"#;

/// The document's start, up to and including `<body>`.
fn head(out: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    );
    if refresh {
        // To `/`: a notice in the query string is shown once.
        let _ = writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}; url=/\">"
        );
    }
    let _ = write!(
        out,
        "<title>{} · pagerbridge</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        Esc(title)
    );
}

fn render(s: &Snapshot, rest_base: &str) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, "Status", s.refresh);
    let refresh = if s.refresh {
        format!(
            "Refreshes every {REFRESH_SECONDS} s · <a href=\"/?refresh=off\">pause</a> \
             (before typing a token)"
        )
    } else {
        "Auto-refresh paused · <a href=\"/\">resume</a>".to_owned()
    };
    let _ = write!(
        out,
        "<header>\n<h1>pagerbridge status</h1>\n<p>version {version} · at {now}</p>\n\
         {replica}<p>{refresh}</p>\n</header>\n<main>\n",
        version = Esc(env!("CARGO_PKG_VERSION")),
        now = time(s.now, s.now, false),
        replica = s
            .leader
            .as_ref()
            .map(|l| replica_line(l, s.now))
            .unwrap_or_default(),
    );
    if let Some(n) = &s.notice {
        let now = match n.state {
            Some(state) => format!("it is now {}", Esc(state.as_str())),
            None => "it is no longer in the outbox".to_owned(),
        };
        let _ = writeln!(
            out,
            "<p class=\"notice\" role=\"status\" id=\"notice\">Event {} replayed: {now}.</p>",
            n.id
        );
    }
    overview(&mut out, s);
    queue(&mut out, s);
    recent(&mut out, s);
    dead_letters(&mut out, s);
    way_back(&mut out, s);
    let _ = write!(
        out,
        "<p class=\"muted\">Incidents without a web address link to the REST API at \
         <code>{}</code>. The JSON behind this page: <code>/api/v1/queue</code>, \
         <code>/api/v1/dead_letters</code>, <code>/api/v1/incident_map</code> (with a token).</p>\n\
         </main>\n</body>\n</html>\n",
        Esc(rest_base)
    );
    out
}

/// Which replica served the page, and which one leads.
fn replica_line(l: &LeaderView, now: Timestamp) -> String {
    let me = Esc(&l.replica);
    let leader = match (&l.leader, l.leading) {
        (_, true) if l.shared => "this replica leads".to_owned(),
        (_, true) => "the only daemon on its store, so it leads".to_owned(),
        (Some(r), false) if !r.replica.is_empty() && !r.is_stale(now) => format!(
            "leader: <span id=\"leader-name\">{}</span> (since {})",
            Esc(&r.replica),
            time(r.since, now, true)
        ),
        (Some(r), false) if !r.replica.is_empty() => format!(
            "<span class=\"warning\">no replica leads at the moment</span> ({} last confirmed \
             {})",
            Esc(&r.replica),
            time(r.seen, now, true)
        ),
        _ => "<span class=\"warning\">no replica leads at the moment</span>".to_owned(),
    };
    format!(
        "<p id=\"replica\">Replica <strong id=\"replica-name\">{me}</strong> · \
         <span id=\"leader\">{leader}</span></p>\n"
    )
}

fn overview(out: &mut String, s: &Snapshot) {
    let st = &s.stats;
    let oldest = match st.oldest_pending_at {
        Some(t) => age(t, s.now),
        None => "—".to_owned(),
    };
    let _ = write!(
        out,
        "<section aria-labelledby=\"overview\">\n<h2 id=\"overview\">Overview</h2>\n\
         <dl class=\"cards\">\n\
         <div class=\"card\"><dt>Pending</dt><dd id=\"pending-count\">{pending}</dd></div>\n\
         <div class=\"card\"><dt>Oldest pending</dt><dd id=\"oldest-pending\">{oldest}</dd></div>\n\
         <div class=\"card{dead_class}\"><dt>Dead letters</dt><dd id=\"dead-count\">{dead}</dd></div>\n",
        pending = st.pending,
        dead = st.dead,
        dead_class = if st.dead > 0 { " bad" } else { "" },
    );
    for (minutes, n) in &s.delivered {
        let _ = writeln!(
            out,
            "<div class=\"card\"><dt>Delivered, last {minutes} min</dt>\
             <dd id=\"delivered-{minutes}m\">{n}</dd></div>"
        );
    }
    let _ = writeln!(
        out,
        "<div class=\"card\"><dt>Delivered, on record</dt><dd id=\"delivered-count\">{}</dd></div>\n</dl>",
        st.delivered
    );
    let d = &s.dispatcher;
    if let Some(until) = d.circuit_open_until {
        let _ = writeln!(
            out,
            "<p class=\"warning\" role=\"status\">PagerDuty is failing: nothing is sent until {}.</p>",
            time(until, s.now, true)
        );
    }
    let last = match d.last_delivery_at {
        Some(t) => format!("Last delivery {}.", time(t, s.now, true)),
        None => "No delivery since the daemon started.".to_owned(),
    };
    let error = match (&d.last_error, d.last_error_at) {
        (Some(e), Some(at)) => format!(
            " Last failure {}: <span class=\"error\">{}</span>",
            time(at, s.now, true),
            Esc(&cut(e, 300))
        ),
        _ => String::new(),
    };
    let _ = writeln!(out, "<p class=\"muted\">{last}{error}</p>\n</section>");
}

fn queue(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"queue\">\n<h2 id=\"queue\">Queue by routing key</h2>\n"
    );
    if s.stats.by_routing_key.is_empty() {
        out.push_str(
            "<p class=\"empty\">Nothing is waiting: every event was delivered.</p>\n</section>\n",
        );
        return;
    }
    out.push_str(
        "<table id=\"queue-table\">\n<caption>Events waiting for PagerDuty, per routing key \
         (masked: first and last four characters)</caption>\n<thead><tr>\
         <th scope=\"col\">Routing key</th><th scope=\"col\" class=\"num\">Pending</th>\
         <th scope=\"col\" class=\"num\">Alerts</th><th scope=\"col\">Oldest pending</th>\
         <th scope=\"col\">Next attempt</th></tr></thead>\n<tbody>\n",
    );
    for k in &s.stats.by_routing_key {
        let oldest = k
            .oldest_pending_at
            .map_or_else(|| "—".to_owned(), |t| age(t, s.now));
        let next = match k.next_attempt_at {
            None => "—".to_owned(),
            Some(t) if t <= s.now => "now".to_owned(),
            Some(t) => time(t, s.now, true),
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\" class=\"key\">{}</th><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{oldest}</td><td>{next}</td></tr>",
            Esc(&mask_key(&k.routing_key)),
            k.pending,
            k.lanes,
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn recent(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"recent\">\n<h2 id=\"recent\">Latest events</h2>\n"
    );
    if s.recent.is_empty() {
        out.push_str("<p class=\"empty\">No event yet.</p>\n</section>\n");
        return;
    }
    let _ = write!(
        out,
        "<table id=\"recent-events\">\n<caption>The {RECENT_EVENTS} newest events and the \
         PagerDuty incident each became</caption>\n<thead><tr><th scope=\"col\" class=\"num\">Id</th>\
         <th scope=\"col\">Received</th><th scope=\"col\">Routing key</th>\
         <th scope=\"col\">Dedup key</th><th scope=\"col\">Action</th><th scope=\"col\">Summary</th>\
         <th scope=\"col\">Source</th><th scope=\"col\">State</th><th scope=\"col\">Incident</th>\
         </tr></thead>\n<tbody>\n"
    );
    for (r, incident) in &s.recent {
        let incident = match incident {
            Incident::NotMapped => "<span class=\"muted\">—</span>".to_owned(),
            Incident::NotKnownYet => "<span class=\"muted\">not known yet</span>".to_owned(),
            Incident::Known { id, href, status } => format!(
                "<a href=\"{}\" rel=\"noreferrer\">{}</a>{}",
                Esc(href),
                Esc(id),
                status
                    .as_deref()
                    .map(|st| format!(" <span class=\"muted\">{}</span>", Esc(st)))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(
            out,
            "<tr data-event=\"{id}\"><td class=\"num\">{id}</td><td>{received}</td>\
             <td class=\"key\">{key}</td><td class=\"key\">{dedup}</td><td>{action}</td>\
             <td class=\"summary\">{summary}</td><td>{source}</td><td>{state}</td>\
             <td>{incident}</td></tr>",
            id = r.id,
            received = time(r.received_at, s.now, true),
            key = Esc(&mask_key(&r.routing_key)),
            dedup = Esc(r.dedup_key.as_deref().unwrap_or("—")),
            action = Esc(&action(r)),
            summary = Esc(&summary(r).unwrap_or_default()),
            source = Esc(&r.source),
            state = state_badge(r.state),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn dead_letters(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"dead\">\n<h2 id=\"dead\">Dead letters</h2>\n"
    );
    if s.dead.is_empty() {
        out.push_str("<p class=\"empty\">None: PagerDuty refused nothing.</p>\n</section>\n");
        return;
    }
    let shown = if (s.dead.len() as u64) < s.stats.dead {
        format!("the newest {} of {}", s.dead.len(), s.stats.dead)
    } else {
        "newest first".to_owned()
    };
    let _ = write!(
        out,
        "<p>PagerDuty refused these for good; they wait for an operator and block nothing. \
         Replay one once its cause is fixed: it goes back in its alert's order. Replaying needs \
         a token of <code>[[api.tokens]]</code> with scope admin.</p>\n\
         <table id=\"dead-letters\">\n<caption>Dead letters, {shown}</caption>\n<thead><tr>\
         <th scope=\"col\" class=\"num\">Id</th><th scope=\"col\">Received</th>\
         <th scope=\"col\">Routing key</th><th scope=\"col\">Dedup key</th>\
         <th scope=\"col\">Summary</th><th scope=\"col\">PagerDuty's answer</th>\
         <th scope=\"col\">Replay</th></tr></thead>\n<tbody>\n"
    );
    for r in &s.dead {
        let status = r
            .last_status
            .map(|c| format!("<strong>{c}</strong> "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr data-event=\"{id}\"><td class=\"num\">{id}</td><td>{received}</td>\
             <td class=\"key\">{key}</td><td class=\"key\">{dedup}</td>\
             <td class=\"summary\">{summary}</td><td class=\"error\">{status}{error}</td>\
             <td><form class=\"replay\" method=\"post\" action=\"{REPLAY_PATH}\" data-event=\"{id}\">\
             <input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <label for=\"token-{id}\">Admin token</label>\
             <input type=\"password\" id=\"token-{id}\" name=\"token\" autocomplete=\"off\" required>\
             <button type=\"submit\" aria-label=\"Replay event {id}\">Replay</button>\
             </form></td></tr>",
            id = r.id,
            received = time(r.received_at, s.now, true),
            key = Esc(&mask_key(&r.routing_key)),
            dedup = Esc(r.dedup_key.as_deref().unwrap_or("—")),
            summary = Esc(&summary(r).unwrap_or_default()),
            error = Esc(&cut(r.last_error.as_deref().unwrap_or("no answer"), 500)),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn way_back(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"sync\">\n<h2 id=\"sync\">The way back: write-backs per monitor</h2>\n"
    );
    let mut sources = Vec::new();
    if s.webhooks {
        sources.push("webhooks".to_owned());
    }
    match &s.poller_cursor {
        Some(Some(c)) => sources.push(format!(
            "the poller (log entries read up to <code>{}</code>)",
            Esc(c)
        )),
        Some(None) => sources.push("the poller (no entry read yet)".to_owned()),
        None => {}
    }
    let waiting = if s.inbox_waiting >= INBOX_COUNTED {
        format!("at least {INBOX_COUNTED}")
    } else {
        s.inbox_waiting.to_string()
    };
    let _ = writeln!(
        out,
        "<p>PagerDuty's changes arrive by {}; <span id=\"inbox-waiting\">{waiting}</span> \
         waiting to be processed.</p>",
        if sources.is_empty() {
            "nothing configured (no webhook secret, no poller)".to_owned()
        } else {
            sources.join(" and ")
        }
    );
    if s.monitors.is_empty() {
        out.push_str(
            "<p class=\"empty\">No <code>[[monitors]]</code>: nothing is written back.</p>\n</section>\n",
        );
        return;
    }
    let count = |n: usize, more: bool| {
        if more {
            format!("≥ {n}")
        } else {
            n.to_string()
        }
    };
    out.push_str(
        "<table id=\"writebacks\">\n<caption>Acknowledgements, notes and resolves written back \
         to each monitor</caption>\n<thead><tr><th scope=\"col\">Monitor</th>\
         <th scope=\"col\" class=\"num\">Pending</th><th scope=\"col\" class=\"num\">Failed</th>\
         <th scope=\"col\">Latest failure</th></tr></thead>\n<tbody>\n",
    );
    for m in &s.monitors {
        let last = match &m.last_failure {
            Some((at, e)) => format!(
                "{}: <span class=\"error\">{}</span>",
                time(*at, s.now, true),
                Esc(&cut(e, 300))
            ),
            None => "<span class=\"muted\">—</span>".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{last}</td></tr>",
            Esc(&m.name),
            count(m.pending, m.pending_more),
            count(m.failed, m.failed_more),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn state_badge(state: EventState) -> String {
    format!(
        "<span class=\"state state-{s}\">{s}</span>",
        s = Esc(state.as_str())
    )
}

/// `trigger`, `acknowledge`, `resolve`, or `change` for change events.
fn action(r: &EventRecord) -> String {
    match (r.kind, r.action) {
        (EventKind::Change, _) => "change".to_owned(),
        (_, Some(a)) => a.as_str().to_owned(),
        (_, None) => "—".to_owned(),
    }
}

/// The alert's summary (v2 and change events: `payload.summary`; v1: `description`), cut.
fn summary(r: &EventRecord) -> Option<String> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v.pointer("/payload/summary")
        .or_else(|| v.get("description"))
        .and_then(Value::as_str)
        .map(|s| cut(s, SUMMARY_CHARS))
}

/// `s` cut to `max` characters, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A time as people read it (`3m 12s ago`, `in 45s`), with the exact time for machines and on
/// hover.
fn time(t: Timestamp, now: Timestamp, relative: bool) -> String {
    let exact = t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let shown = if !relative {
        t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    } else {
        let secs = now.as_second() - t.as_second();
        if secs >= 0 {
            format!("{} ago", human(secs))
        } else {
            format!("in {}", human(-secs))
        }
    };
    format!(
        "<time datetime=\"{exact}\" title=\"{exact}\">{}</time>",
        Esc(&shown)
    )
}

fn age(t: Timestamp, now: Timestamp) -> String {
    let exact = t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        "<time datetime=\"{exact}\" title=\"since {exact}\">{}</time>",
        human(now.as_second() - t.as_second())
    )
}

/// `45s`, `3m 12s`, `2h 5m`, `3d 4h` (as `pagerbridge queue status` says it).
fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagerbridge_store::{KeyStats, MonitorState};

    const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&amp;";

    fn record(id: i64, state: EventState, text: &str) -> EventRecord {
        let body = serde_json::json!({
            "routing_key": text,
            "event_action": "trigger",
            "dedup_key": text,
            "payload": {"summary": text, "source": text, "severity": "critical"},
        });
        EventRecord {
            id,
            lane: format!("e:{text}:{text}"),
            kind: EventKind::EventsV2,
            routing_key: format!("{text}{text}"),
            dedup_key: Some(text.to_owned()),
            action: Some(pagerduty::events::EventAction::Trigger),
            body: serde_json::to_vec(&body).unwrap(),
            source: text.to_owned(),
            received_at: Timestamp::from_second(1_800_000_000).unwrap(),
            state,
            attempts: 1,
            next_attempt_at: None,
            last_attempt_at: None,
            last_status: Some(400),
            last_error: Some(text.to_owned()),
            response: None,
            finished_at: None,
            coalesced_into: None,
        }
    }

    fn snapshot_of(text: &str) -> Snapshot {
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        Snapshot {
            now,
            stats: QueueStats {
                pending: 3,
                dead: 1,
                delivered: 7,
                by_routing_key: vec![KeyStats {
                    routing_key: format!("{text}{text}"),
                    pending: 3,
                    lanes: 2,
                    oldest_pending_at: Some(now - SignedDuration::from_secs(192)),
                    next_attempt_at: Some(now + SignedDuration::from_secs(45)),
                }],
                ..QueueStats::default()
            },
            delivered: vec![(1, 2), (5, 4), (15, 7)],
            dispatcher: Status {
                last_error: Some(text.to_owned()),
                last_error_at: Some(now),
                circuit_open_until: Some(now + SignedDuration::from_secs(30)),
                ..Status::default()
            },
            recent: vec![
                (
                    record(2, EventState::Delivered, text),
                    Incident::Known {
                        id: text.to_owned(),
                        href: text.to_owned(),
                        status: Some(text.to_owned()),
                    },
                ),
                (record(1, EventState::Dead, text), Incident::NotKnownYet),
            ],
            dead: vec![record(1, EventState::Dead, text)],
            monitors: vec![MonitorSync {
                name: text.to_owned(),
                pending: 1,
                failed: 2,
                pending_more: false,
                failed_more: true,
                last_failure: Some((now, text.to_owned())),
            }],
            inbox_waiting: 0,
            webhooks: true,
            poller_cursor: Some(Some(text.to_owned())),
            leader: Some(LeaderView {
                replica: text.to_owned(),
                leading: false,
                leader: Some(crate::leader::LeaderRecord {
                    replica: text.to_owned(),
                    pid: 1,
                    since: now,
                    seen: now,
                }),
                shared: true,
            }),
            notice: Some(Notice {
                id: 1,
                state: Some(EventState::Pending),
            }),
            refresh: true,
        }
    }

    #[test]
    fn escaping_covers_every_special_character() {
        assert_eq!(
            Esc(r#"<a href="x" title='y'>&</a>"#).to_string(),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain €").to_string(), "plain €");
    }

    #[test]
    fn nothing_from_outside_becomes_markup() {
        let page = render(&snapshot_of(HOSTILE), "https://api.example.com");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("'x'"), "single quotes escaped too");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        // An escaped `&amp;` in the input shows as typed.
        assert!(page.contains("&amp;amp;"));
        // Every tag on the page is one the renderer wrote.
        let allowed = [
            "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2",
            "p", "a", "main", "section", "dl", "div", "dt", "dd", "span", "table", "caption",
            "thead", "tbody", "tr", "th", "td", "time", "code", "form", "input", "label", "button",
            "strong",
        ];
        for tag in page.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(
                allowed.contains(&name.as_str()),
                "unexpected tag <{tag:.40}"
            );
        }
    }

    #[test]
    fn only_web_urls_become_incident_links() {
        let row = |url: Option<&str>, id: Option<&str>| MappedIncident {
            routing_key: "rk".into(),
            dedup_key: "dk".into(),
            source: "am".into(),
            monitor_ref: Value::Null,
            problem_id: None,
            problem_started_at: None,
            problem_seen_at: Timestamp::UNIX_EPOCH,
            monitor_state: MonitorState::Problem,
            monitor_changed_at: Timestamp::UNIX_EPOCH,
            incident_id: id.map(str::to_owned),
            incident_url: url.map(str::to_owned),
            service_id: None,
            pd_status: Some("triggered".into()),
            pd_changed_at: None,
            memo: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        };
        let base = "https://api.pagerduty.com";
        let href = |i: Incident| match i {
            Incident::Known { href, .. } => href,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            href(incident_link(
                &row(
                    Some("https://acme.pagerduty.com/incidents/PABC"),
                    Some("PABC")
                ),
                base
            )),
            "https://acme.pagerduty.com/incidents/PABC"
        );
        assert_eq!(
            href(incident_link(
                &row(Some("JavaScript:alert(1)"), Some("P/1 2")),
                base
            )),
            "https://api.pagerduty.com/incidents/P%2F1%202"
        );
        assert_eq!(
            href(incident_link(
                &row(None, Some("PX")), /* no URL */
                base
            )),
            "https://api.pagerduty.com/incidents/PX"
        );
        assert_eq!(
            incident_link(&row(Some("https://x"), None), base),
            Incident::NotKnownYet
        );
    }

    #[test]
    fn routing_keys_are_masked_as_the_metrics_mask_them() {
        let page = render(
            &snapshot_of("R0UTINGKEYR0UTINGKEY"),
            "https://api.example.com",
        );
        // The snapshot's routing keys are the text twice; dedup keys and summaries are the text.
        assert!(
            !page.contains("R0UTINGKEYR0UTINGKEYR0UTINGKEYR0UTINGKEY"),
            "never the whole key"
        );
        assert!(page.contains(&*mask_key("R0UTINGKEYR0UTINGKEYR0UTINGKEYR0UTINGKEY")));
    }

    #[test]
    fn the_page_refreshes_unless_paused() {
        let mut s = snapshot_of("x");
        assert!(render(&s, "b").contains("http-equiv=\"refresh\" content=\"10; url=/\""));
        s.refresh = false;
        let page = render(&s, "b");
        assert!(!page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("Auto-refresh paused"));
    }

    #[test]
    fn summaries_are_cut_on_characters() {
        assert_eq!(cut("€€€", 2), "€€…");
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(human(192), "3m 12s");
    }
}
