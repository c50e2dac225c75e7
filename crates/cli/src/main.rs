//! `pagerbridge`: one binary, one subcommand per job.

mod config_cmd;
mod docs_cmd;
mod emulator;
mod event;
mod logging;
mod pd;
mod queue;
mod route_cmd;
mod send;
mod serve;
mod signals;
mod source_arg;
mod store_args;
mod table;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pagerbridge",
    version,
    about = "Connects monitoring systems to PagerDuty in both directions, without losing an alert",
    long_about = "pagerbridge turns monitoring problems into PagerDuty incidents. Monitors post to its \
routes or call `pagerbridge send`; rules route their alerts to PagerDuty services; a durable \
outbox delivers the events through PagerDuty outages and rate limits. `serve --demo` runs it \
against a built-in PagerDuty emulator."
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as
    /// `pagerduty_emulator=debug`). Default: `log.level` of `serve`'s configuration, else info.
    #[arg(long, global = true, env = "PAGERBRIDGE_LOG", value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log format: `text` (lines for people) or `json` (one object per line, for log
    /// collectors). Default: `log.format` of `serve`'s configuration, else text.
    #[arg(
        long,
        global = true,
        env = "PAGERBRIDGE_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<pagerbridge_config::LogFormat>,

    /// Append the log to FILE instead of writing it to standard error (relative to the current
    /// directory). Default: `log.file` of `serve`'s configuration. `serve` reopens it on SIGHUP.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: the PagerDuty-compatible relay routes and the delivery of the outbox.
    /// `--demo` runs it against the built-in PagerDuty emulator.
    Serve(serve::Args),
    /// Run a local PagerDuty (Events API v2/v1, change events, REST API, webhooks) for trying
    /// pagerbridge or your own integrations offline.
    Emulator(emulator::Args),
    /// Put an event in the outbox from the shell (for monitors' notification commands): works
    /// whether the daemon runs or not; the daemon delivers it. Prints the dedup key.
    Event(Box<event::Args>),
    /// Send a monitor's notification (Icinga 2, Nagios, Naemon, Centreon Engine,
    /// openITCOCKPIT macros; Zenoss event fields; any source's payload): decoded, routed by the
    /// rules and stored in the outbox, whether the daemon runs or not. Prints the dedup keys.
    Send(Box<send::Args>),
    /// Show what pagerbridge would make of a monitor's payload: the alert, the rule that
    /// matched and the exact events, without sending or storing anything.
    Route(route_cmd::Args),
    /// Inspect the outbox and act on it: status, list, show, retry and drop (dead letters
    /// included).
    Queue(queue::Args),
    /// Check a configuration file without starting anything.
    Config(config_cmd::Args),
    /// PagerDuty incidents: list, show, create, acknowledge and resolve (any number at once),
    /// add notes.
    Incident(pd::incident::Args),
    /// PagerDuty services: list them, show one by id or name.
    Service(pd::service::Args),
    /// PagerDuty maintenance windows: list them, put services in maintenance.
    Maintenance(pd::maintenance::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs_cmd::CompletionsArgs),
    /// Print the manual page, or write one page per subcommand into a directory.
    Man(docs_cmd::ManArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let flags = logging::Flags {
        level: cli.log_level,
        format: cli.log_format,
        file: cli.log_file,
    };
    // `serve` reads its configuration before logging starts: its `[log]` section says how.
    let (command, config) = match cli.command {
        Command::Serve(args) => match serve::load_config(&args) {
            Ok(config) => (Command::Serve(args), Some(config)),
            Err(e) => {
                eprintln!("pagerbridge: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        command => (command, None),
    };
    let log = match logging::init(&flags.settings(config.as_ref().map(|c| (&c.log, c.log_file()))))
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("pagerbridge: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // Short-lived commands: a current-thread runtime of their own, and their own exit codes.
    let command = match command {
        Command::Event(args) => return event::main(*args),
        Command::Queue(args) => return queue::main(args),
        Command::Send(args) => return send::main(*args),
        Command::Route(args) => return route_cmd::main(args),
        Command::Config(args) => return config_cmd::main(args),
        Command::Incident(args) => return pd::incident::main(args),
        Command::Service(args) => return pd::service::main(args),
        Command::Maintenance(args) => return pd::maintenance::main(args),
        Command::Completions(args) => return docs_cmd::completions(args, Cli::command()),
        Command::Man(args) => return docs_cmd::man(args, Cli::command()),
        command => command,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pagerbridge: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve(args) => serve::run(args, config.unwrap_or_default(), log).await,
            Command::Emulator(args) => emulator::run(args).await,
            Command::Event(_)
            | Command::Queue(_)
            | Command::Config(_)
            | Command::Send(_)
            | Command::Route(_)
            | Command::Incident(_)
            | Command::Service(_)
            | Command::Maintenance(_)
            | Command::Completions(_)
            | Command::Man(_) => {
                unreachable!("run above")
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagerbridge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
