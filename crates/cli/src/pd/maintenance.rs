//! `pagerbridge maintenance list|create`.

use std::pin::pin;
use std::process::ExitCode;

use futures::StreamExt;
use pagerbridge_ops::OpError;
use pagerbridge_ops::maintenance::{self, NewWindow};
use pagerduty::rest::MaintenanceWindow;

use super::incident::reference_name;
use super::{Ctx, EXIT_CODES, PdArgs, count, cut, render, table, when};

const LIST_EXAMPLES: &str = "\
Examples:
  pagerbridge maintenance list                       # ongoing and future windows
  pagerbridge maintenance list --filter past --service Database";

const CREATE_EXAMPLES: &str = "\
Examples:
  pagerbridge maintenance create --service Database --duration 2h --description 'DB upgrade'
  pagerbridge maintenance create --service PDEMO01 --service Database \\
      --start 2026-11-21T22:00:00Z --end 2026-11-22T02:00:00Z";

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
    /// Maintenance windows, with their services: while one is ongoing, PagerDuty opens no
    /// incident on its services.
    #[command(after_help = LIST_EXAMPLES, after_long_help = format!("{LIST_EXAMPLES}\n\n{EXIT_CODES}"))]
    List {
        /// Which windows: `open` (ongoing and future, the default), `ongoing`, `future`,
        /// `past` or `all`.
        #[arg(long, value_parser = ["open", "ongoing", "future", "past", "all"])]
        filter: Option<String>,
        /// Only windows of this service, by id or name (repeatable).
        #[arg(long = "service", value_name = "ID_OR_NAME")]
        services: Vec<String>,
    },
    /// Put services in maintenance, from now (or --start) for a --duration or until an --end.
    /// Prints the new window.
    #[command(after_help = CREATE_EXAMPLES, after_long_help = format!("{CREATE_EXAMPLES}\n\n{EXIT_CODES}"))]
    Create(CreateArgs),
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("length").required(true).args(["duration", "end"]))]
struct CreateArgs {
    /// A service to put in maintenance, by id or name (repeatable).
    #[arg(long = "service", value_name = "ID_OR_NAME", required = true)]
    services: Vec<String>,
    /// How long the window lasts: `90m`, `2h`, `1d`...
    #[arg(long, value_name = "LENGTH")]
    duration: Option<String>,
    /// When it ends: a date (`2026-11-22`) or an RFC 3339 timestamp.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// When it starts (default: now): `now`, a date or an RFC 3339 timestamp.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Why: shown on the window and in PagerDuty.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
}

pub fn main(args: Args) -> ExitCode {
    let Args { pd, command } = args;
    super::main(pd, |ctx| async move {
        match command {
            Command::List { filter, services } => list(&ctx, filter.as_deref(), &services).await,
            Command::Create(a) => create(&ctx, a).await,
        }
    })
}

async fn list(ctx: &Ctx, filter: Option<&str>, services: &[String]) -> Result<u8, OpError> {
    let filter = maintenance::parse_filter(filter)?;
    let rest = ctx.client()?;
    let mut stream = pin!(maintenance::list(&rest, services, filter).await?);
    let mut found = Vec::new();
    while let Some(w) = stream.next().await {
        found.push(w?);
    }
    if ctx.ui.json {
        ctx.ui.print_json(&found, false);
        return Ok(0);
    }
    if found.is_empty() {
        ctx.ui
            .out(&format!("No {} maintenance windows.", filter.as_str()));
        return Ok(0);
    }
    let mut t = table(&["ID", "START", "END", "SERVICES", "DESCRIPTION"]);
    for w in &found {
        t.add_row(vec![
            w.id.clone().unwrap_or_else(|| "-".into()),
            when(w.start_time, ctx.now),
            when(w.end_time, ctx.now),
            cut(&services_of(w), 50),
            cut(w.description.as_deref().unwrap_or(""), 50),
        ]);
    }
    ctx.ui.out(&render(&t));
    ctx.ui.out(&format!(
        "\n{}",
        count(found.len(), "maintenance window", "maintenance windows")
    ));
    Ok(0)
}

async fn create(ctx: &Ctx, a: CreateArgs) -> Result<u8, OpError> {
    let rest = ctx.client()?;
    let window = NewWindow {
        services: a.services,
        start: a.start,
        end: a.end,
        duration: a.duration,
        description: a.description,
    };
    let w = maintenance::create(&rest, &window, ctx.now).await?;
    if ctx.ui.json {
        ctx.ui.print_json(&w, true);
        return Ok(0);
    }
    ctx.ui.out(&format!(
        "Created maintenance window {} on {}: from {} until {}",
        w.id.as_deref().unwrap_or("-"),
        services_of(&w),
        when(w.start_time, ctx.now),
        when(w.end_time, ctx.now),
    ));
    Ok(0)
}

fn services_of(w: &MaintenanceWindow) -> String {
    w.services
        .iter()
        .map(|s| reference_name(Some(s)))
        .collect::<Vec<_>>()
        .join(", ")
}
