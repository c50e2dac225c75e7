//! `pagerbridge incident list|show|create|ack|resolve|note`.

use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;

use futures::StreamExt;
use pagerbridge_ops::OpError;
use pagerbridge_ops::incidents::{self, BulkReport, Detail, ListFilter, NewFromFlags};
use pagerduty::rest::{Incident, IncidentStatus, Reference};
use serde_json::Value;

use super::{
    Ctx, EXIT_CODES, PdArgs, count, cut, expand_stdin, fields, render, right_align, table, when,
};

const LIST_EXAMPLES: &str = "\
Examples:
  pagerbridge incident list                                  # open incidents, all dates
  pagerbridge incident list --status all --since 24h --service Database
  pagerbridge incident list --urgency high --json | jq -r '.[].id'";

const ACK_EXAMPLES: &str = "\
Examples:
  pagerbridge incident ack Q1ABC2DEF3GHI4 Q5JKL6MNO7PQR8
  pagerbridge incident list --service Database --json | jq -r '.[].id' | pagerbridge incident ack -";

const RESOLVE_EXAMPLES: &str = "\
Examples:
  pagerbridge incident resolve Q1ABC2DEF3GHI4 --resolution 'disk cleaned up'
  pagerbridge incident list --status acknowledged --until 7d --json | jq -r '.[].id' \\
      | pagerbridge incident resolve - --resolution 'stale'";

const CREATE_EXAMPLES: &str = "\
Examples:
  pagerbridge incident create --title 'Disk full on db1' --service Database --urgency high \\
      --body 'df shows 1% free on /var'
  pagerbridge incident create --file incident.json     # a PagerDuty POST /incidents body
  echo '{\"incident\": {...}}' | pagerbridge incident create --file -";

#[derive(clap::Args, Debug)]
#[command(after_long_help = EXIT_CODES)]
pub struct Args {
    #[command(flatten)]
    pd: PdArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Incidents, oldest first: by default the open ones (triggered and acknowledged) of all
    /// dates, every one of them (past PagerDuty's 10,000 paging limit).
    #[command(after_help = LIST_EXAMPLES, after_long_help = format!("{LIST_EXAMPLES}\n\n{EXIT_CODES}"))]
    List(ListArgs),
    /// One incident with its alerts, log entries and notes.
    #[command(after_long_help = EXIT_CODES)]
    Show {
        /// The incident's id (first column of `incident list`).
        id: String,
    },
    /// Open an incident, from flags or from a PagerDuty `POST /incidents` body (checked against
    /// PagerDuty's published schema first; errors name the field). Prints the new incident.
    #[command(after_help = CREATE_EXAMPLES, after_long_help = format!("{CREATE_EXAMPLES}\n\n{EXIT_CODES}"))]
    Create(CreateArgs),
    /// Acknowledge incidents, any number, in bulk requests of at most 250. An id PagerDuty
    /// refuses is named; the others still change (exit 1).
    #[command(visible_alias = "acknowledge",
              after_help = ACK_EXAMPLES, after_long_help = format!("{ACK_EXAMPLES}\n\n{EXIT_CODES}"))]
    Ack(AckArgs),
    /// Resolve incidents, any number, in bulk requests of at most 250. An id PagerDuty refuses
    /// is named; the others still change (exit 1).
    #[command(after_help = RESOLVE_EXAMPLES, after_long_help = format!("{RESOLVE_EXAMPLES}\n\n{EXIT_CODES}"))]
    Resolve(ResolveArgs),
    /// Add a note to an incident, as the From user.
    #[command(after_long_help = EXIT_CODES)]
    Note {
        /// The incident's id.
        id: String,
        /// The note; `-` reads it from standard input.
        text: String,
    },
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Only incidents in these states (repeatable or comma-separated); `open` is triggered and
    /// acknowledged (the default), `all` includes resolved ones.
    #[arg(long = "status", value_name = "STATUS", value_delimiter = ',',
          value_parser = ["triggered", "acknowledged", "resolved", "open", "all"])]
    statuses: Vec<String>,
    /// Only incidents of this service, by id or name (repeatable).
    #[arg(long = "service", value_name = "ID_OR_NAME")]
    services: Vec<String>,
    /// Only incidents created at or after this time: a duration ago (`2h`, `7d`), a date
    /// (`2026-11-20`) or an RFC 3339 timestamp. Default: all dates.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only incidents created before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only incidents of this urgency.
    #[arg(long, value_parser = ["high", "low"])]
    urgency: Option<String>,
    /// At most this many incidents (the oldest).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("flags").multiple(true).conflicts_with("file"))]
struct CreateArgs {
    /// The incident's title. Required unless --file.
    #[arg(
        long,
        value_name = "TEXT",
        group = "flags",
        required_unless_present = "file"
    )]
    title: Option<String>,
    /// The service, by id or name. Required unless --file.
    #[arg(
        long,
        value_name = "ID_OR_NAME",
        group = "flags",
        required_unless_present = "file"
    )]
    service: Option<String>,
    /// `high` or `low`; default: the service's.
    #[arg(long, group = "flags", value_parser = ["high", "low"])]
    urgency: Option<String>,
    /// Details shown on the incident (`body.details`).
    #[arg(long, value_name = "TEXT", group = "flags")]
    body: Option<String>,
    /// Deduplication key: PagerDuty refuses a second open incident with it on the service.
    #[arg(long, value_name = "KEY", group = "flags")]
    incident_key: Option<String>,
    /// Escalation policy id, instead of the service's.
    #[arg(long, value_name = "ID", group = "flags")]
    escalation_policy: Option<String>,
    /// Priority id.
    #[arg(long, value_name = "ID", group = "flags")]
    priority: Option<String>,
    /// A JSON file with PagerDuty's `POST /incidents` body (`{"incident": {...}}`, or the
    /// incident object alone); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct AckArgs {
    /// Incident ids; `-` reads them from standard input (one per line, or separated by spaces).
    #[arg(value_name = "ID", required = true)]
    ids: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ResolveArgs {
    /// Incident ids; `-` reads them from standard input (one per line, or separated by spaces).
    #[arg(value_name = "ID", required = true)]
    ids: Vec<String>,
    /// Why they were resolved (PagerDuty adds it as a note).
    #[arg(long, value_name = "TEXT")]
    resolution: Option<String>,
}

pub fn main(args: Args) -> ExitCode {
    let Args { pd, command } = args;
    super::main(pd, |ctx| async move {
        match command {
            Command::List(a) => list(&ctx, a).await,
            Command::Show { id } => show(&ctx, &id).await,
            Command::Create(a) => create(&ctx, a).await,
            Command::Ack(a) => set_status(&ctx, &a.ids, IncidentStatus::Acknowledged, None).await,
            Command::Resolve(a) => {
                set_status(
                    &ctx,
                    &a.ids,
                    IncidentStatus::Resolved,
                    a.resolution.as_deref(),
                )
                .await
            }
            Command::Note { id, text } => note(&ctx, &id, &text).await,
        }
    })
}

async fn list(ctx: &Ctx, a: ListArgs) -> Result<u8, OpError> {
    let urgencies: Vec<String> = a.urgency.into_iter().collect();
    let mut filter = ListFilter::parse(
        &a.statuses,
        &a.services,
        a.since.as_deref(),
        a.until.as_deref(),
        &urgencies,
        ctx.now,
    )?;
    filter.limit = a.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let rest = ctx.client()?;
    let query = filter.query(&rest).await?;
    // One request more, only for a bar someone watches.
    let total = if ctx.ui.draws_progress() {
        incidents::count(&rest, &query)
            .await
            .map(|n| a.limit.map_or(n, |l| n.min(l)))
    } else {
        None
    };
    let bar = ctx.ui.progress(total, "listing incidents");
    let mut stream = pin!(incidents::list(&rest, query, filter.limit));
    let mut found = Vec::new();
    while let Some(incident) = stream.next().await {
        found.push(incident?);
        bar.inc(1);
    }
    ctx.ui.finish_progress();
    if ctx.ui.json {
        ctx.ui.print_json(&found, false);
        return Ok(0);
    }
    if found.is_empty() {
        ctx.ui.out("No incidents.");
        return Ok(0);
    }
    let mut t = table(&[
        "ID", "#", "STATUS", "URGENCY", "SERVICE", "CREATED", "TITLE",
    ]);
    right_align(&mut t, &[1]);
    for i in &found {
        t.add_row(vec![
            i.id.clone(),
            i.incident_number.map(|n| n.to_string()).unwrap_or_default(),
            i.status.as_str().to_owned(),
            i.urgency.map(|u| u.as_str()).unwrap_or("-").to_owned(),
            cut(&reference_name(i.service.as_ref()), 30),
            i.created_at
                .map(|t| pagerbridge_ops::time::relative(t, ctx.now))
                .unwrap_or_default(),
            cut(title(i), 70),
        ]);
    }
    ctx.ui.out(&render(&t));
    let mut summary = count(found.len(), "incident", "incidents");
    if a.limit.is_some_and(|l| found.len() as u64 == l) {
        summary.push_str(" (--limit reached; there may be more)");
    }
    ctx.ui.out(&format!("\n{summary}"));
    Ok(0)
}

async fn show(ctx: &Ctx, id: &str) -> Result<u8, OpError> {
    let rest = ctx.client()?;
    let detail = incidents::show(&rest, id).await?;
    if ctx.ui.json {
        ctx.ui.print_json(&detail, true);
        return Ok(0);
    }
    let Detail {
        incident: i,
        alerts,
        log_entries,
        notes,
    } = &detail;
    ctx.ui.out(&render(&incident_fields(i, ctx)));

    ctx.ui.out(&format!("\nAlerts ({}):", alerts.len()));
    if !alerts.is_empty() {
        let mut t = table(&["ID", "STATUS", "SEVERITY", "KEY", "CREATED", "SUMMARY"]);
        for a in alerts {
            t.add_row(vec![
                a.id.clone(),
                a.status.clone(),
                a.severity.map(|s| s.as_str()).unwrap_or("-").to_owned(),
                cut(a.alert_key.as_deref().unwrap_or("-"), 40),
                a.created_at
                    .map(|t| pagerbridge_ops::time::relative(t, ctx.now))
                    .unwrap_or_default(),
                cut(a.summary.as_deref().unwrap_or(""), 60),
            ]);
        }
        ctx.ui.out(&render(&t));
    }

    ctx.ui
        .out(&format!("\nLog, newest first ({}):", log_entries.len()));
    if !log_entries.is_empty() {
        let mut t = table(&["WHEN", "WHAT", "BY", "CHANNEL", "SUMMARY"]);
        for e in log_entries {
            t.add_row(vec![
                pagerbridge_ops::time::relative(e.created_at, ctx.now),
                e.kind.trim_end_matches("_log_entry").to_owned(),
                cut(&reference_name(e.agent.as_ref()), 30),
                e.channel_type().unwrap_or("-").to_owned(),
                cut(e.summary.as_deref().unwrap_or(""), 70),
            ]);
        }
        ctx.ui.out(&render(&t));
    }

    ctx.ui.out(&format!("\nNotes ({}):", notes.len()));
    for n in notes {
        let at = n
            .created_at
            .map(|t| when(t, ctx.now))
            .unwrap_or_else(|| "-".into());
        ctx.ui
            .out(&format!("  {at}, {}:", reference_name(n.user.as_ref())));
        for line in n.content.lines() {
            ctx.ui.out(&format!("    {line}"));
        }
    }
    Ok(0)
}

fn incident_fields(i: &Incident, ctx: &Ctx) -> comfy_table::Table {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", i.id.clone()),
        (
            "number",
            i.incident_number
                .map(|n| format!("#{n}"))
                .unwrap_or_else(|| "-".into()),
        ),
        ("title", title(i).to_owned()),
        ("status", i.status.as_str().to_owned()),
        (
            "urgency",
            i.urgency.map(|u| u.as_str()).unwrap_or("-").to_owned(),
        ),
        ("service", reference_with_id(i.service.as_ref())),
    ];
    if let Some(t) = i.created_at {
        rows.push(("created", when(t, ctx.now)));
    }
    if let Some(k) = &i.incident_key {
        rows.push(("incident key", k.clone()));
    }
    if let Some(p) = &i.priority {
        rows.push(("priority", reference_with_id(Some(p))));
    }
    if let Some(p) = &i.escalation_policy {
        rows.push(("escalation policy", reference_with_id(Some(p))));
    }
    if !i.assignments.is_empty() {
        let who: Vec<String> = i
            .assignments
            .iter()
            .map(|a| reference_name(Some(&a.assignee)))
            .collect();
        rows.push(("assigned to", who.join(", ")));
    }
    for a in &i.acknowledgements {
        rows.push((
            "acknowledged",
            format!(
                "{} by {}",
                when(a.at, ctx.now),
                reference_name(Some(&a.acknowledger))
            ),
        ));
    }
    if let Some(t) = i.resolved_at {
        rows.push(("resolved", when(t, ctx.now)));
    }
    if let Some(into) = i.merged_into() {
        rows.push(("merged into", into.to_owned()));
    }
    if let Some(c) = &i.alert_counts {
        rows.push((
            "alerts",
            format!(
                "{} ({} triggered, {} resolved)",
                c.all, c.triggered, c.resolved
            ),
        ));
    }
    if let Some(url) = &i.html_url {
        rows.push(("url", url.clone()));
    }
    fields(rows)
}

async fn create(ctx: &Ctx, a: CreateArgs) -> Result<u8, OpError> {
    // A file is checked before anything is sent, and before credentials are looked for: its
    // mistakes are the first to fix.
    let from_file = match &a.file {
        Some(path) => Some(incidents::validate_new(&read_json(path)?)?),
        None => None,
    };
    let rest = ctx.client()?;
    let body = match from_file {
        Some(body) => body,
        None => {
            let flags = NewFromFlags {
                title: a.title.unwrap_or_default(),
                service: a.service.unwrap_or_default(),
                urgency: a.urgency,
                body: a.body,
                incident_key: a.incident_key,
                escalation_policy: a.escalation_policy,
                priority: a.priority,
            };
            incidents::body_from_flags(&rest, &flags).await?
        }
    };
    let incident = incidents::create(&rest, &body).await?;
    if ctx.ui.json {
        ctx.ui.print_json(&incident, true);
        return Ok(0);
    }
    ctx.ui.out(&format!(
        "Created incident {}{} on {}: {}",
        incident
            .incident_number
            .map(|n| format!("#{n} "))
            .unwrap_or_default(),
        incident.id,
        reference_name(incident.service.as_ref()),
        title(&incident)
    ));
    if let Some(url) = &incident.html_url {
        ctx.ui.out(url);
    }
    Ok(0)
}

/// A JSON document from `path` (`-`: standard input); errors name the file and the line.
fn read_json(path: &PathBuf) -> Result<Value, OpError> {
    let (name, text) = if path.as_os_str() == "-" {
        let text = std::io::read_to_string(std::io::stdin()).map_err(|e| {
            OpError::field("file", format!("file: cannot read standard input: {e}"))
        })?;
        ("standard input".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            OpError::field("file", format!("file: cannot read {}: {e}", path.display()))
        })?;
        (path.display().to_string(), text)
    };
    serde_json::from_str(&text)
        .map_err(|e| OpError::field("file", format!("file: {name} is not JSON: {e}")))
}

async fn set_status(
    ctx: &Ctx,
    ids: &[String],
    status: IncidentStatus,
    resolution: Option<&str>,
) -> Result<u8, OpError> {
    let ids = expand_stdin(ids)?;
    let rest = ctx.client()?;
    let bar = ctx.ui.progress(
        Some(ids.len() as u64),
        match status {
            IncidentStatus::Resolved => "resolving",
            _ => "acknowledging",
        },
    );
    let mut progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let report = incidents::set_status(&rest, &ids, status, resolution, &mut progress).await?;
    ctx.ui.finish_progress();
    print_report(ctx, &report, status);
    Ok(report.exit_code())
}

fn print_report(ctx: &Ctx, report: &BulkReport, status: IncidentStatus) {
    if ctx.ui.json {
        ctx.ui.print_json(report, true);
    } else if !report.updated.is_empty() || report.failed.is_empty() {
        let verb = match status {
            IncidentStatus::Resolved => "Resolved",
            _ => "Acknowledged",
        };
        let n = report.updated.len();
        const SHOWN: usize = 20;
        let mut ids: Vec<&str> = report
            .updated
            .iter()
            .take(SHOWN)
            .map(|i| i.id.as_str())
            .collect();
        let more = n.saturating_sub(SHOWN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        if ids.is_empty() {
            ids.push("none");
        }
        ctx.ui.out(&format!(
            "{verb} {}: {}{more}",
            count(n, "incident", "incidents"),
            ids.join(", ")
        ));
    }
    // Each failure on stderr, also with --json, so that a person running a script sees them.
    for f in &report.failed {
        let message = if f.error.message.contains(&f.id) {
            f.error.message.clone()
        } else {
            format!("{}: {}", f.id, f.error.message)
        };
        ctx.ui.note(&message);
    }
    if !report.failed.is_empty() && !report.updated.is_empty() {
        ctx.ui.note(&format!(
            "{} of {} not changed",
            report.failed.len(),
            report.failed.len() + report.updated.len()
        ));
    }
}

async fn note(ctx: &Ctx, id: &str, text: &str) -> Result<u8, OpError> {
    let text = if text == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| {
            OpError::field(
                "content",
                format!("content: cannot read standard input: {e}"),
            )
        })?
    } else {
        text.to_owned()
    };
    let rest = ctx.client()?;
    let note = incidents::add_note(&rest, id, text.trim_end()).await?;
    if ctx.ui.json {
        ctx.ui.print_json(&note, true);
    } else {
        ctx.ui.out(&format!("Added a note to incident {id}"));
    }
    Ok(0)
}

fn title(i: &Incident) -> &str {
    i.title
        .as_deref()
        .or(i.summary.as_deref())
        .unwrap_or_default()
}

/// A reference as people read it: its summary (the name), else its id.
pub fn reference_name(r: Option<&Reference>) -> String {
    match r {
        Some(r) => r.summary.clone().unwrap_or_else(|| r.id.clone()),
        None => "-".to_owned(),
    }
}

/// `Database (PDEMO02)`.
pub fn reference_with_id(r: Option<&Reference>) -> String {
    match r {
        Some(Reference {
            summary: Some(s),
            id,
            ..
        }) => format!("{s} ({id})"),
        Some(r) => r.id.clone(),
        None => "-".to_owned(),
    }
}
