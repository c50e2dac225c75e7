//! `pagerbridge send`: a monitor's notification, as its notification command gives it, into the
//! outbox. Icinga 2, Nagios, Naemon, Centreon Engine and openITCOCKPIT pass their macros as
//! flags (or in the environment); Zenoss passes event fields; any source can give its payload
//! in a file.
//!
//! The alert goes through the same decoder and rules as the daemon's routes, and its events
//! are written straight into the daemon's database in one commit: durable whether the daemon
//! runs or not. It runs once per notification, so it does only that (no network, a
//! current-thread runtime, validation before the store is opened).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;
use pagerbridge_config::StoreLocation;
use pagerbridge_ingest::{Alert, DecodeError, Decoder, nagios, zenoss};
use pagerbridge_model::SourceKind;
use pagerbridge_server::sources::route_all;
use pagerbridge_store::NewEvent;
use serde_json::{Value, json};

use crate::source_arg;
use crate::store_args::{Create, OpenError, StoreArgs, open_at};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  stored in the outbox (the daemon delivers it, now or when it next runs), or nothing to
     send (a notification type PagerDuty has no event for, or a `drop` rule): said on stderr
  2  bad input: a flag, a macro, the payload, the configuration, or an alert no rule can route;
     the message names the field; nothing stored
  3  the outbox cannot be written (unavailable, read-only, disk full); nothing stored, try again

Examples:
  pagerbridge send --config /etc/pagerbridge/pagerbridge.toml --source nagios \\
      --type PROBLEM --host db1 --service 'Disk /' --state CRITICAL \\
      --output 'DISK CRITICAL - 5% free' --routing-key 0123456789abcdef0123456789abcdef
  pagerbridge send --source icinga2 --env                 # ICINGA_*/NAGIOS_* variables
  pagerbridge send --source zenoss --field evid=... --field device=db1 --field severity=5
  pagerbridge send --source alertmanager --file alert.json";

/// Where the notification's content comes from.
const INPUT: &str = "Notification (Nagios family: the macro flags, --macro, --env; Zenoss: --field; any source: --file)";

#[derive(clap::Args, Debug)]
#[command(after_long_help = EXIT_CODES)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,

    /// The monitor: `icinga2`, `nagios`, `naemon`, `centreon_engine`, `openitcockpit`,
    /// `zenoss`, any other kind with --file, or the name of a `[[sources]]` entry of the
    /// configuration (its options and mapping apply).
    #[arg(long, value_name = "KIND|NAME")]
    source: String,

    #[command(flatten)]
    macros: MacroFlags,

    /// Any other macro, under its Nagios name (`HOSTALIAS=Database 1`). Repeatable.
    #[arg(long = "macro", value_name = "NAME=VALUE", allow_hyphen_values = true, help_heading = INPUT)]
    extra: Vec<String>,

    /// Also read the macros from the environment (`NAGIOS_*`, `ICINGA_*`, `NAEMON_*`), as
    /// Nagios' `enable_environment_macros` exports them. Flags win over the environment.
    #[arg(long, help_heading = INPUT)]
    env: bool,

    /// A Zenoss event field (`evid=...`, `device=...`, `severity=5`). Repeatable.
    #[arg(long = "field", value_name = "NAME=VALUE", allow_hyphen_values = true, help_heading = INPUT)]
    fields: Vec<String>,

    /// The payload as the monitor would post it to a route (`-`: standard input). For the
    /// Nagios family: a JSON object of macros.
    #[arg(long, value_name = "FILE", help_heading = INPUT, conflicts_with_all = ["extra", "env", "fields"])]
    file: Option<PathBuf>,

    /// Print what was stored as JSON (outbox ids, dedup keys, actions) instead of the bare
    /// dedup keys.
    #[arg(long)]
    json: bool,
}

/// The flags of [`nagios::SEND_FLAGS`], one field each so that `--help` lists them. A value
/// may start with `-` (plugin output can).
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = INPUT)]
pub struct MacroFlags {
    /// $NOTIFICATIONTYPE$: PROBLEM, RECOVERY, ACKNOWLEDGEMENT, FLAPPINGSTART, DOWNTIMESTART...
    #[arg(long = "type", value_name = "TYPE", allow_hyphen_values = true)]
    notification_type: Option<String>,
    /// $HOSTNAME$
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    host: Option<String>,
    /// $HOSTADDRESS$
    #[arg(long, value_name = "ADDRESS", allow_hyphen_values = true)]
    host_address: Option<String>,
    /// $SERVICEDESC$; empty or absent for a host notification.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    service: Option<String>,
    /// $SERVICESTATE$ or $HOSTSTATE$
    #[arg(long, value_name = "STATE", allow_hyphen_values = true)]
    state: Option<String>,
    /// $SERVICEOUTPUT$ or $HOSTOUTPUT$
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    output: Option<String>,
    /// $LONGSERVICEOUTPUT$ or $LONGHOSTOUTPUT$
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    long_output: Option<String>,
    /// $SERVICEPERFDATA$ or $HOSTPERFDATA$ (parsed into numbers)
    #[arg(long, value_name = "PERFDATA", allow_hyphen_values = true)]
    perfdata: Option<String>,
    /// $NOTIFICATIONAUTHOR$ (acknowledgements, downtimes, custom notifications)
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    author: Option<String>,
    /// $NOTIFICATIONCOMMENT$
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    comment: Option<String>,
    /// $SERVICEPROBLEMID$ or $HOSTPROBLEMID$ (keeps one dedup key per problem)
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    problem_id: Option<String>,
    /// $LASTSERVICEPROBLEMID$ or $LASTHOSTPROBLEMID$ (the problem a recovery ends)
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    last_problem_id: Option<String>,
    /// $CONTACTPAGER$: the PagerDuty integration key, when the rules give none
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    routing_key: Option<String>,
}

impl MacroFlags {
    /// The given flags as `(flag, value)` pairs, in [`nagios::SEND_FLAGS`]' spelling.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("--type", &self.notification_type),
            ("--host", &self.host),
            ("--host-address", &self.host_address),
            ("--service", &self.service),
            ("--state", &self.state),
            ("--output", &self.output),
            ("--long-output", &self.long_output),
            ("--perfdata", &self.perfdata),
            ("--author", &self.author),
            ("--comment", &self.comment),
            ("--problem-id", &self.problem_id),
            ("--last-problem-id", &self.last_problem_id),
            ("--routing-key", &self.routing_key),
        ];
        all.into_iter()
            .filter_map(|(flag, v)| v.as_deref().map(|v| (flag, v)))
            .collect()
    }
}

/// Why nothing was stored, with the exit code it gets.
enum Failure {
    Input(String),
    Store(String),
}

pub fn main(args: Args) -> ExitCode {
    let (config, location) = match args.store.resolve() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("pagerbridge: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let now = Timestamp::now();
    let prepared =
        source_arg::decoder(&config, &args.source).and_then(|(decoder, label, origin)| {
            let alerts = alerts(&args, &decoder).map_err(|e| e.to_string())?;
            let rules = config.compiled_rules();
            let (events, results) = route_all(&rules, &alerts, &label, &origin, now)
                .map_err(|(i, message)| alert_error(alerts.len(), i, &message))?;
            Ok((alerts, events, results))
        });
    let (alerts, events, results) = match prepared {
        Ok(x) => x,
        Err(message) => {
            eprintln!("pagerbridge: {message}; nothing was stored");
            return ExitCode::from(2);
        }
    };
    if events.is_empty() {
        explain_nothing(&alerts, &results);
        if args.json {
            println!("{}", json!({"stored": [], "results": results}));
        }
        return ExitCode::SUCCESS;
    }
    match store(location, &events) {
        Ok(ids) => {
            print_stored(&events, &ids, &results, args.json);
            ExitCode::SUCCESS
        }
        Err(Failure::Input(message)) => {
            eprintln!("pagerbridge: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Store(message)) => {
            eprintln!("pagerbridge: the alert was NOT stored: {message}");
            ExitCode::from(3)
        }
    }
}

fn alert_error(count: usize, i: usize, message: &str) -> String {
    if count == 1 {
        message.to_owned()
    } else {
        format!("alert {} of {count}: {message}", i + 1)
    }
}

/// The alerts of the notification, from whichever input the flags give.
fn alerts(args: &Args, decoder: &Decoder) -> Result<Vec<Alert>, DecodeError> {
    let kind = decoder.kind();
    if let Some(file) = &args.file {
        if !args.macros.pairs().is_empty() {
            return Err(DecodeError::new(
                "--file",
                "give the notification either in --file or as macro flags, not both",
            ));
        }
        return decoder.decode(&read_input(file)?);
    }
    if kind.is_nagios_family() {
        return nagios_alert(args, kind).map(|a| vec![a]);
    }
    if kind == SourceKind::Zenoss {
        if args.fields.is_empty() {
            return Err(DecodeError::new(
                "--field",
                "a Zenoss event needs its fields (--field evid=... --field device=...) or --file",
            ));
        }
        let mut fields = BTreeMap::new();
        for f in &args.fields {
            let Some((name, value)) = f.split_once('=') else {
                return Err(DecodeError::new(
                    "--field",
                    format!("expected NAME=VALUE, got {f:?}"),
                ));
            };
            fields.insert(name.trim().to_owned(), value.to_owned());
        }
        return zenoss::decode_fields(&fields).map(|a| vec![a]);
    }
    Err(DecodeError::new(
        "--file",
        format!(
            "{kind} notifications are JSON payloads: give one with --file (or point the monitor at a [[sources]] route)"
        ),
    ))
}

fn nagios_alert(args: &Args, kind: SourceKind) -> Result<Alert, DecodeError> {
    if !args.fields.is_empty() {
        return Err(DecodeError::new(
            "--field",
            format!("--field is for Zenoss; {kind} passes macros (--type, --host, --macro...)"),
        ));
    }
    let mut pairs = args.macros.pairs();
    pairs.extend(args.extra.iter().map(|m| ("--macro", m.as_str())));
    if pairs.is_empty() && !args.env {
        return Err(DecodeError::new(
            "--type",
            "no macros given: pass the notification's macros as flags (--type, --host, --state...) or --env",
        ));
    }
    let flags = nagios::macros_from_flags(pairs)?;
    let mut macros = if args.env {
        nagios::macros_from_env(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    } else {
        Default::default()
    };
    // A flag wins over the environment, unless the monitor passed it empty.
    for (name, value) in flags {
        if !value.trim().is_empty() || !macros.contains_key(&name) {
            macros.insert(name, value);
        }
    }
    nagios::decode_macros(kind, &macros)
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>, DecodeError> {
    let read = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    };
    read.map_err(|e| DecodeError::new("--file", format!("cannot read {}: {e}", file.display())))
}

fn store(location: StoreLocation, events: &[NewEvent]) -> Result<Vec<i64>, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Store(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let store = open_at(location, Create::IfMissing)
            .await
            .map_err(|e| match e {
                e @ (OpenError::Config(_) | OpenError::Ambiguous) => Failure::Input(e.to_string()),
                e => Failure::Store(e.to_string()),
            })?;
        // One call, one commit: the events of a notification are stored whole or not at all.
        store
            .insert(events)
            .await
            .map_err(|e| Failure::Store(format!("{e} ({})", store.location())))
    })
}

fn explain_nothing(alerts: &[Alert], results: &[Value]) {
    if alerts.is_empty() {
        eprintln!(
            "pagerbridge: the payload holds no alert to send (filtered by the source's options); nothing stored"
        );
        return;
    }
    for r in results {
        let reason = r["dropped"].as_str().unwrap_or("no event");
        eprintln!("pagerbridge: nothing to send: {reason}");
    }
}

fn print_stored(events: &[NewEvent], ids: &[i64], results: &[Value], as_json: bool) {
    if as_json {
        let stored: Vec<Value> = events
            .iter()
            .zip(ids)
            .map(|(e, id)| {
                json!({
                    "id": id,
                    "dedup_key": e.dedup_key,
                    "event_action": e.action.map(|a| a.as_str()),
                })
            })
            .collect();
        println!("{}", json!({"stored": stored, "results": results}));
        return;
    }
    for e in events {
        if let Some(key) = &e.dedup_key {
            println!("{key}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        let mut full = vec!["send"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .args
    }

    #[test]
    fn every_send_flag_of_the_decoder_is_a_flag_here() {
        for (flag, _, _) in nagios::SEND_FLAGS {
            let args = parse(&["--source", "nagios", flag, "-value-"]);
            assert_eq!(args.macros.pairs(), vec![(flag, "-value-")], "{flag}");
        }
        assert_eq!(
            MacroFlags::default().pairs().len(),
            0,
            "absent flags are absent"
        );
    }

    #[test]
    fn empty_values_are_kept_as_monitors_pass_them() {
        let args = parse(&["--source", "nagios", "--author", "", "--macro", "X="]);
        assert_eq!(args.macros.pairs(), vec![("--author", "")]);
        assert_eq!(args.extra, vec!["X="]);
    }

    #[test]
    fn file_excludes_the_other_inputs() {
        let mut full = vec![
            "send", "--source", "zenoss", "--file", "x", "--field", "a=b",
        ];
        assert!(Cli::try_parse_from(&full).is_err());
        full.truncate(5);
        assert!(Cli::try_parse_from(&full).is_ok());
    }
}
