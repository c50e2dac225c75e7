//! `pagerbridge service list|show`.

use std::pin::pin;
use std::process::ExitCode;

use futures::StreamExt;
use pagerbridge_ops::OpError;
use pagerbridge_ops::services;
use pagerbridge_ops::time::relative;

use super::incident::reference_with_id;
use super::{Ctx, EXIT_CODES, PdArgs, count, cut, fields, render, table, when};

const EXAMPLES: &str = "\
Examples:
  pagerbridge service list --query data
  pagerbridge service show Database          # by name, or by id: pagerbridge service show PDEMO02";

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
    /// Services, with their status (active, warning, critical, maintenance, disabled) and
    /// their last incident.
    #[command(after_help = EXAMPLES, after_long_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"))]
    List {
        /// Only services whose name contains this text.
        #[arg(long, value_name = "TEXT")]
        query: Option<String>,
    },
    /// One service, by id or by name, with its integrations.
    #[command(after_help = EXAMPLES, after_long_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"))]
    Show {
        /// The service's id, or its name (exact, else ignoring case).
        id_or_name: String,
    },
}

pub fn main(args: Args) -> ExitCode {
    let Args { pd, command } = args;
    super::main(pd, |ctx| async move {
        match command {
            Command::List { query } => list(&ctx, query.as_deref()).await,
            Command::Show { id_or_name } => show(&ctx, &id_or_name).await,
        }
    })
}

async fn list(ctx: &Ctx, query: Option<&str>) -> Result<u8, OpError> {
    let rest = ctx.client()?;
    let mut stream = pin!(services::list(&rest, query));
    let mut found = Vec::new();
    while let Some(s) = stream.next().await {
        found.push(s?);
    }
    if ctx.ui.json {
        ctx.ui.print_json(&found, false);
        return Ok(0);
    }
    if found.is_empty() {
        ctx.ui.out("No services.");
        return Ok(0);
    }
    let mut t = table(&["ID", "NAME", "STATUS", "LAST INCIDENT", "ESCALATION POLICY"]);
    for s in &found {
        t.add_row(vec![
            s.id.clone(),
            cut(&s.name, 40),
            s.status.as_str().to_owned(),
            s.last_incident_timestamp
                .map(|t| relative(t, ctx.now))
                .unwrap_or_else(|| "-".into()),
            cut(&reference_with_id(s.escalation_policy.as_ref()), 40),
        ]);
    }
    ctx.ui.out(&render(&t));
    ctx.ui
        .out(&format!("\n{}", count(found.len(), "service", "services")));
    Ok(0)
}

async fn show(ctx: &Ctx, id_or_name: &str) -> Result<u8, OpError> {
    let rest = ctx.client()?;
    let s = services::resolve(&rest, id_or_name).await?;
    if ctx.ui.json {
        ctx.ui.print_json(&s, true);
        return Ok(0);
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("id", s.id.clone()),
        ("name", s.name.clone()),
        ("status", s.status.as_str().to_owned()),
    ];
    if let Some(d) = s.description.as_deref().filter(|d| !d.is_empty()) {
        rows.push(("description", d.to_owned()));
    }
    if let Some(p) = &s.escalation_policy {
        rows.push(("escalation policy", reference_with_id(Some(p))));
    }
    if let Some(t) = s.created_at {
        rows.push(("created", when(t, ctx.now)));
    }
    rows.push((
        "last incident",
        s.last_incident_timestamp
            .map(|t| when(t, ctx.now))
            .unwrap_or_else(|| "-".into()),
    ));
    if !s.teams.is_empty() {
        let teams: Vec<String> = s.teams.iter().map(|t| reference_with_id(Some(t))).collect();
        rows.push(("teams", teams.join(", ")));
    }
    if let Some(url) = &s.html_url {
        rows.push(("url", url.clone()));
    }
    ctx.ui.out(&render(&fields(rows)));
    ctx.ui
        .out(&format!("\nIntegrations ({}):", s.integrations.len()));
    if !s.integrations.is_empty() {
        let mut t = table(&["ID", "NAME", "TYPE", "INTEGRATION KEY"]);
        for i in &s.integrations {
            t.add_row(vec![
                i.id.clone(),
                i.name.clone().or(i.summary.clone()).unwrap_or_default(),
                i.kind.clone(),
                i.integration_key.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        ctx.ui.out(&render(&t));
    }
    Ok(0)
}
