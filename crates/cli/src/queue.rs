//! `pagerbridge queue status|list|show|retry|drop`: the outbox as an operator sees it, read and
//! changed in the daemon's database directly, whether the daemon runs or not.
//!
//! Tables for people, `--json` for scripts. Retry and drop change one state transition each in
//! the store's own transactions, so they are safe while the daemon delivers.

use std::process::ExitCode;

use jiff::Timestamp;
use pagerbridge_store::change::{self, Change};
use pagerbridge_store::{
    EventKind, EventRecord, ListQuery, QueueStats, State, StoreError, WritebackState,
};
use serde_json::{Value, json};

use crate::store_args::{Create, OutboxStore, StoreArgs};
use crate::table::{cut, fields, render, right_align, table};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done (retry/drop: every id changed)
  1  retry/drop: some ids were not eligible (wrong state) or do not exist; the others changed
  2  bad usage, or an invalid configuration file
  3  the outbox cannot be read or written (missing, unavailable, disk full)
  4  show: no event with that id";

#[derive(clap::Args, Debug)]
#[command(after_long_help = EXIT_CODES)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,

    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum WritebackStateArg {
    Pending,
    Done,
    Failed,
}

impl From<WritebackStateArg> for WritebackState {
    fn from(s: WritebackStateArg) -> WritebackState {
        match s {
            WritebackStateArg::Pending => WritebackState::Pending,
            WritebackStateArg::Done => WritebackState::Done,
            WritebackStateArg::Failed => WritebackState::Failed,
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Events by state, the oldest pending one, and the backlog of each routing key.
    #[command(after_long_help = EXIT_CODES)]
    Status,
    /// Stored events, newest first.
    #[command(after_long_help = EXIT_CODES)]
    List(ListArgs),
    /// Everything about one event: body, PagerDuty's answer, last error.
    #[command(after_long_help = EXIT_CODES)]
    Show {
        /// The event's id (first column of `queue list`).
        id: i64,
    },
    /// Send dead letters (or dropped events) again: they become pending, due now, in their
    /// lane's order.
    #[command(after_long_help = EXIT_CODES)]
    Retry(RetryArgs),
    /// Write-backs to the monitors (PagerDuty's changes carried into them), newest first:
    /// what is waiting, what was done, what failed and why.
    #[command(after_long_help = EXIT_CODES)]
    Writebacks {
        /// Only write-backs in this state.
        #[arg(long, value_enum)]
        state: Option<WritebackStateArg>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Stop pending events or dead letters from being delivered (state `dropped`; `retry`
    /// brings them back until they are purged).
    #[command(after_long_help = EXIT_CODES)]
    Drop {
        /// Event ids.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<i64>,
    },
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Only events in these states (repeatable, or comma-separated).
    #[arg(long = "state", value_enum, value_delimiter = ',')]
    states: Vec<StateArg>,
    /// Only events for this routing key.
    #[arg(long, value_name = "KEY")]
    routing_key: Option<String>,
    /// Only events with this dedup key.
    #[arg(long, value_name = "KEY")]
    dedup_key: Option<String>,
    /// At most this many events.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
    /// Only events older than this id (the next page: the last id shown).
    #[arg(long, value_name = "ID")]
    before: Option<i64>,
}

#[derive(clap::Args, Debug)]
struct RetryArgs {
    /// Event ids.
    #[arg(
        value_name = "ID",
        required_unless_present = "all_dead",
        conflicts_with = "all_dead"
    )]
    ids: Vec<i64>,
    /// Retry every dead letter.
    #[arg(long)]
    all_dead: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum StateArg {
    Pending,
    Dead,
    Delivered,
    Coalesced,
    Dropped,
}

impl From<StateArg> for State {
    fn from(s: StateArg) -> State {
        match s {
            StateArg::Pending => State::Pending,
            StateArg::Dead => State::Dead,
            StateArg::Delivered => State::Delivered,
            StateArg::Coalesced => State::Coalesced,
            StateArg::Dropped => State::Dropped,
        }
    }
}

/// A command's end: its exit code and, for failures, what to say on stderr.
struct Failure {
    code: u8,
    message: String,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure {
            code: 3,
            message: e.to_string(),
        }
    }
}

pub fn main(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pagerbridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("pagerbridge: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(args: Args) -> Result<u8, Failure> {
    let outbox = args.store.open(Create::No).await.map_err(|e| Failure {
        code: e.exit_code(),
        message: e.to_string(),
    })?;
    let store = outbox.store();
    let now = Timestamp::now();
    let json = args.json;
    match args.command {
        Command::Status => status(store, now, json).await,
        Command::List(a) => list(store, &a, now, json).await,
        Command::Show { id } => show(store, id, now, json).await,
        Command::Retry(a) => {
            let ids = if a.all_dead {
                all_dead(store).await?
            } else {
                a.ids
            };
            change(store, Change::Retry, ids, now, json, a.all_dead).await
        }
        Command::Drop { ids } => change(store, Change::Drop, ids, now, json, false).await,
        Command::Writebacks { state, limit } => {
            writebacks(store, state.map(Into::into), limit, now, json).await
        }
    }
}

async fn status(store: &dyn OutboxStore, now: Timestamp, json: bool) -> Result<u8, Failure> {
    let stats = store.stats().await?;
    if json {
        println!("{}", status_json(&stats, now));
        return Ok(0);
    }
    let mut totals = table(&["STATE", "EVENTS", "OLDEST"]);
    right_align(&mut totals, &[1]);
    let oldest = stats.oldest_pending_at.map(|t| age(t, now));
    totals.add_row(vec![
        "pending".to_owned(),
        stats.pending.to_string(),
        oldest.unwrap_or_default(),
    ]);
    for (state, n) in [
        ("dead", stats.dead),
        ("delivered", stats.delivered),
        ("coalesced", stats.coalesced),
        ("dropped", stats.dropped),
    ] {
        totals.add_row(vec![state.to_owned(), n.to_string(), String::new()]);
    }
    println!("{}", render(&totals));
    println!();
    if stats.by_routing_key.is_empty() {
        println!("Nothing pending.");
    } else {
        let mut keys = table(&[
            "ROUTING KEY",
            "PENDING",
            "LANES",
            "OLDEST PENDING",
            "NEXT ATTEMPT",
        ]);
        right_align(&mut keys, &[1, 2]);
        for k in &stats.by_routing_key {
            keys.add_row(vec![
                k.routing_key.clone(),
                k.pending.to_string(),
                k.lanes.to_string(),
                k.oldest_pending_at.map(|t| age(t, now)).unwrap_or_default(),
                next_attempt(k.next_attempt_at, now),
            ]);
        }
        println!("{}", render(&keys));
    }
    let waiting = store
        .list_writebacks(Some(WritebackState::Pending), 10_000)
        .await?
        .len();
    let failed = store
        .list_writebacks(Some(WritebackState::Failed), 10_000)
        .await?
        .len();
    if waiting + failed > 0 {
        println!();
        println!(
            "Write-backs to the monitors: {waiting} waiting, {failed} failed (`pagerbridge queue writebacks`)."
        );
    }
    if stats.dead > 0 {
        println!();
        println!(
            "{} dead letter(s): see `pagerbridge queue list --state dead`, then `queue retry` or `queue drop`.",
            stats.dead
        );
    }
    Ok(0)
}

async fn writebacks(
    store: &dyn OutboxStore,
    state: Option<WritebackState>,
    limit: usize,
    now: Timestamp,
    json: bool,
) -> Result<u8, Failure> {
    let rows = store.list_writebacks(state, limit).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("records serialise")
        );
        return Ok(0);
    }
    if rows.is_empty() {
        println!(
            "No write-backs{}.",
            state
                .map(|s| format!(" {}", s.as_str()))
                .unwrap_or_default()
        );
        return Ok(0);
    }
    let mut t = table(&[
        "ID",
        "MONITOR",
        "ACTION",
        "DEDUP KEY",
        "STATE",
        "TRIES",
        "WHEN",
        "LAST ERROR / RESULT",
    ]);
    right_align(&mut t, &[0, 5]);
    for w in &rows {
        let when = match w.state {
            WritebackState::Pending => next_attempt(Some(w.next_attempt_at), now),
            _ => w.finished_at.map(|t| age(t, now)).unwrap_or_default(),
        };
        let last = match w.state {
            WritebackState::Done => w.detail.clone().unwrap_or_default(),
            _ => w.last_error.clone().unwrap_or_default(),
        };
        t.add_row(vec![
            w.id.to_string(),
            w.monitor.clone(),
            w.change["change"]["action"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            shorten_middle(&w.dedup_key, 32),
            w.state.as_str().to_owned(),
            w.attempts.to_string(),
            when,
            cut(&last, 70),
        ]);
    }
    println!("{}", render(&t));
    Ok(0)
}

/// The store's figures as they are, plus the ages the table shows, in seconds.
fn status_json(stats: &QueueStats, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(stats).expect("stats serialise");
    v["now"] = json!(now);
    v["oldest_pending_age_seconds"] = json!(stats.oldest_pending_at.map(|t| secs_between(t, now)));
    if let Some(keys) = v["by_routing_key"].as_array_mut() {
        for (k, stat) in keys.iter_mut().zip(&stats.by_routing_key) {
            k["oldest_pending_age_seconds"] =
                json!(stat.oldest_pending_at.map(|t| secs_between(t, now)));
            k["next_attempt_in_seconds"] =
                json!(stat.next_attempt_at.map(|t| secs_between(now, t).max(0)));
        }
    }
    v
}

async fn list(
    store: &dyn OutboxStore,
    a: &ListArgs,
    now: Timestamp,
    json: bool,
) -> Result<u8, Failure> {
    let query = ListQuery {
        states: a.states.iter().map(|s| State::from(*s)).collect(),
        routing_key: a.routing_key.clone(),
        dedup_key: a.dedup_key.clone(),
        before_id: a.before,
        limit: a.limit as usize,
    };
    let records = store.list(&query).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&records).expect("records serialise")
        );
        return Ok(0);
    }
    if records.is_empty() {
        println!("No events.");
        return Ok(0);
    }
    let mut t = table(&[
        "ID",
        "STATE",
        "ACTION",
        "ROUTING KEY",
        "DEDUP KEY",
        "RECEIVED",
        "ATTEMPTS",
        "LAST STATUS/ERROR",
    ]);
    right_align(&mut t, &[0, 6]);
    for r in &records {
        t.add_row(vec![
            r.id.to_string(),
            r.state.to_string(),
            action(r).to_owned(),
            shorten_middle(&r.routing_key, 16),
            r.dedup_key
                .as_deref()
                .map(|k| shorten_middle(k, 40))
                .unwrap_or_default(),
            format!("{} ago", age(r.received_at, now)),
            r.attempts.to_string(),
            cut(&last_outcome(r), 60),
        ]);
    }
    println!("{}", render(&t));
    if records.len() == a.limit as usize
        && let Some(last) = records.last()
    {
        println!(
            "\nShowing the newest {}; older ones: --before {}",
            records.len(),
            last.id
        );
    }
    Ok(0)
}

async fn show(store: &dyn OutboxStore, id: i64, now: Timestamp, json: bool) -> Result<u8, Failure> {
    let Some(r) = store.get(id).await? else {
        return Err(Failure {
            code: 4,
            message: format!("no event with id {id}"),
        });
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("records serialise")
        );
        return Ok(0);
    }
    let when = |t: Timestamp| format!("{t} ({})", relative(t, now));
    let mut rows: Vec<(&str, String)> = vec![
        ("id", r.id.to_string()),
        ("state", r.state.to_string()),
        ("kind", r.kind.as_str().to_owned()),
        ("action", action(&r).to_owned()),
        ("routing key", r.routing_key.clone()),
        (
            "dedup key",
            r.dedup_key.clone().unwrap_or_else(|| "-".into()),
        ),
        ("lane", r.lane.clone()),
        ("source", r.source.clone()),
        ("received", when(r.received_at)),
        ("attempts", r.attempts.to_string()),
    ];
    if r.state == State::Pending {
        rows.push(("next attempt", next_attempt(r.next_attempt_at, now)));
    }
    if let Some(t) = r.last_attempt_at {
        rows.push(("last attempt", when(t)));
    }
    if let Some(s) = r.last_status {
        rows.push(("last status", s.to_string()));
    }
    if let Some(e) = &r.last_error {
        rows.push(("last error", e.clone()));
    }
    if let Some(t) = r.finished_at {
        rows.push(("finished", when(t)));
    }
    if let Some(into) = r.coalesced_into {
        rows.push(("coalesced into", into.to_string()));
    }
    println!("{}", render(&fields(rows)));
    println!("\nbody:\n{}", pretty(&String::from_utf8_lossy(&r.body)));
    if let Some(resp) = &r.response {
        println!("\nPagerDuty's answer:\n{}", pretty(resp));
    }
    Ok(0)
}

/// Every dead letter's id, paging through the list so any number fits.
async fn all_dead(store: &dyn OutboxStore) -> Result<Vec<i64>, Failure> {
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&ListQuery {
                states: vec![State::Dead],
                before_id: before,
                limit: 1000,
                ..ListQuery::default()
            })
            .await?;
        ids.extend(page.iter().map(|r| r.id));
        match page.last() {
            Some(last) if page.len() == 1000 => before = Some(last.id),
            _ => break,
        }
    }
    // Oldest first, so that each lane gets its events back in the order they came.
    ids.reverse();
    Ok(ids)
}

async fn change(
    store: &dyn OutboxStore,
    op: Change,
    ids: Vec<i64>,
    now: Timestamp,
    json: bool,
    all_dead: bool,
) -> Result<u8, Failure> {
    let report = change::apply(store, op, ids, now).await?;
    if json {
        println!("{}", json!(report));
    } else {
        if all_dead && report.ids.is_empty() {
            println!("No dead letters to retry.");
        } else {
            println!(
                "{} {} event(s){}",
                capitalise(op.verb()),
                report.changed,
                id_list(&report.ids)
            );
        }
        if report.changed_meanwhile > 0 {
            eprintln!(
                "{} of them changed state meanwhile (delivered by the daemon, or changed by \
                 another operator) and were left as they were",
                report.changed_meanwhile
            );
        }
        if !report.not_eligible.is_empty() {
            let list: Vec<String> = report
                .not_eligible
                .iter()
                .map(|n| format!("{} ({})", n.id, n.state))
                .collect();
            eprintln!("Not {}: {} ({})", op.verb(), list.join(", "), op.allowed());
        }
        if !report.unknown.is_empty() {
            let list: Vec<String> = report.unknown.iter().map(i64::to_string).collect();
            eprintln!("No such event: {}", list.join(", "));
        }
    }
    Ok(if report.all_changed() { 0 } else { 1 })
}

fn id_list(ids: &[i64]) -> String {
    const SHOWN: usize = 20;
    if ids.is_empty() {
        return String::new();
    }
    let mut s: Vec<String> = ids.iter().take(SHOWN).map(i64::to_string).collect();
    if ids.len() > SHOWN {
        s.push(format!("and {} more", ids.len() - SHOWN));
    }
    format!(": {}", s.join(", "))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn action(r: &EventRecord) -> &'static str {
    match (r.kind, r.action) {
        (EventKind::Change, _) => "change",
        (_, Some(a)) => a.as_str(),
        (_, None) => "-",
    }
}

/// The last thing that happened to an event, in one line.
fn last_outcome(r: &EventRecord) -> String {
    let error = r.last_error.as_deref().map(|e| {
        // The status has its own place in the line: keep PagerDuty's words after it.
        let e = match r.last_status {
            Some(s) => e
                .split_once(&format!("answered HTTP {s}: "))
                .map_or(e, |(_, rest)| rest),
            None => e,
        };
        e.split_whitespace().collect::<Vec<_>>().join(" ")
    });
    match (r.last_status, error, r.coalesced_into) {
        (_, _, Some(into)) => format!("coalesced into {into}"),
        (Some(s), Some(e), _) => format!("{s} {e}"),
        (Some(s), None, _) => s.to_string(),
        (None, Some(e), _) => e,
        (None, None, _) => String::new(),
    }
}

/// `s` cut to `max` characters by replacing its middle, where keys differ least.
fn shorten_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let tail = (max - 1) / 3;
    let head = max - 1 - tail;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

fn secs_between(from: Timestamp, to: Timestamp) -> i64 {
    to.duration_since(from).as_secs()
}

/// A length of time the way people read it: `45s`, `3m 12s`, `2h 5m`, `3d 4h`.
fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// How long ago `t` was.
fn age(t: Timestamp, now: Timestamp) -> String {
    human(secs_between(t, now))
}

fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = secs_between(t, now);
    if secs >= 0 {
        format!("{} ago", human(secs))
    } else {
        format!("in {}", human(-secs))
    }
}

/// When a lane will be tried: `now` when due, `in 45s` while backing off.
fn next_attempt(at: Option<Timestamp>, now: Timestamp) -> String {
    match at {
        None => "-".to_owned(),
        Some(t) if t <= now => "now".to_owned(),
        Some(t) => format!("in {}", human(secs_between(now, t).max(1))),
    }
}

fn pretty(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => serde_json::to_string_pretty(&v).expect("JSON values serialise"),
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_people_say_them() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(192), "3m 12s");
        assert_eq!(human(2 * 3600 + 5 * 60 + 7), "2h 5m");
        assert_eq!(human(3 * 86400 + 4 * 3600), "3d 4h");
        let now = Timestamp::from_second(1_000_000).unwrap();
        let later = Timestamp::from_second(1_000_045).unwrap();
        assert_eq!(next_attempt(Some(later), now), "in 45s");
        assert_eq!(next_attempt(Some(now), now), "now");
        assert_eq!(next_attempt(None, now), "-");
        assert_eq!(relative(later, now), "in 45s");
        assert_eq!(relative(now, later), "45s ago");
    }

    #[test]
    fn long_keys_keep_both_ends() {
        assert_eq!(
            shorten_middle("a1b2c3d4e5f60718293a4b5c6d7e8f90", 16),
            "a1b2c3d4e5…e8f90"
        );
        assert_eq!(shorten_middle("short", 16), "short");
    }
}
