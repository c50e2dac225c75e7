//! `pagerbridge route test`: what the daemon would make of a payload, shown before a monitor is
//! pointed at it. Same decoder, same rules, same limits; nothing is stored or sent.

use std::path::PathBuf;
use std::process::ExitCode;

use pagerbridge_config::{Config, Purpose};
use pagerbridge_rules::Decision;
use serde_json::{Value, json};

use crate::source_arg;
use crate::store_args::CONFIG_ENV;

const EXIT_CODES: &str = "\
Exit codes:
  0  every alert routes (to events, or on purpose to nothing)
  2  the payload, the configuration or the routing of an alert is wrong: the message says which

Examples:
  pagerbridge route test --config pagerbridge.toml --source alertmanager alert.json
  pagerbridge route test --source nagios macros.json     # {\"NOTIFICATIONTYPE\": \"PROBLEM\", ...}
  curl -s ... | pagerbridge route test --source grafana -";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Decode FILE as SOURCE would receive it and route it through the rules: prints each
    /// alert, the rule that matched and the exact events that would be sent.
    #[command(after_long_help = EXIT_CODES)]
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
struct TestArgs {
    /// The configuration whose `[routing]`, `[[rules]]` and `[[sources]]` apply. Without it
    /// (nor PAGERBRIDGE_CONFIG): no rules, the payload's own routing key. [env:
    /// PAGERBRIDGE_CONFIG]
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The monitor kind (`alertmanager`, `nagios`, `zenoss`...) or the name of a
    /// `[[sources]]` entry of the configuration.
    #[arg(long, value_name = "KIND|NAME")]
    source: String,

    /// The payload, as the monitor posts it (`-`: standard input). For the Nagios family, a
    /// JSON object of macros (`{"NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "db1", ...}`).
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Print one JSON document (`{"alerts": [{"alert": ..., "decision": ...}]}`).
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> ExitCode {
    let Action::Test(args) = args.action;
    match test(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("pagerbridge: {message}");
            ExitCode::from(2)
        }
    }
}

fn test(args: &TestArgs) -> Result<String, String> {
    let config_path = args.config.clone().or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let config = match &config_path {
        Some(path) => Config::load_for(path, Purpose::Enqueue).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let (decoder, _, _) = source_arg::decoder(&config, &args.source)?;
    let body = if args.file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(&args.file)
            .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let alerts = decoder.decode(&body).map_err(|e| format!("{e}"))?;
    let rules = config.compiled_rules();
    let mut decisions = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.iter().enumerate() {
        let decision = rules.route(alert).map_err(|e| {
            format!(
                "alert {} of {} cannot be routed: {e}\n{}",
                i + 1,
                alerts.len(),
                pretty(&json!(alert))
            )
        })?;
        decisions.push(decision);
    }
    if args.json {
        let items: Vec<Value> = alerts
            .iter()
            .zip(&decisions)
            .map(|(a, d)| json!({"alert": a, "decision": d}))
            .collect();
        return Ok(format!("{}\n", pretty(&json!({"alerts": items}))));
    }
    let mut out = String::new();
    if alerts.is_empty() {
        out.push_str("The payload holds no alert to send (the source's options filtered it).\n");
    }
    for (i, (alert, decision)) in alerts.iter().zip(&decisions).enumerate() {
        out.push_str(&format!(
            "Alert {} of {} ({}):\n{}\n",
            i + 1,
            alerts.len(),
            alert.source.as_str(),
            indent(&pretty(&json!(alert)))
        ));
        match decision {
            Decision::Dropped { rule, reason } => {
                let by = rule
                    .as_ref()
                    .map(|r| format!(" by rule {r:?}"))
                    .unwrap_or_default();
                out.push_str(&format!("  Nothing sent{by}: {reason}\n"));
            }
            Decision::Send { events } => {
                for routed in events {
                    let rule = match &routed.rule {
                        Some(r) => format!("rule {r:?}"),
                        None => "no rule matched: the [routing] defaults".to_owned(),
                    };
                    out.push_str(&format!(
                        "  Event ({rule}), as it would be posted to /v2/enqueue:\n{}\n",
                        indent(&indent(&pretty(&json!(routed.event))))
                    ));
                    for note in &routed.notes {
                        out.push_str(&format!("    note: {note}\n"));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON values serialise")
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
