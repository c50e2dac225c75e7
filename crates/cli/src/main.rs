//! `pagerbridge`: one binary, one subcommand per job.

mod config_cmd;
mod emulator;
mod event;
mod logging;
mod queue;
mod serve;
mod signals;
mod store_args;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pagerbridge",
    version,
    about = "Connects monitoring systems to PagerDuty in both directions, without losing an alert",
    long_about = "pagerbridge turns monitoring problems into PagerDuty incidents and carries \
acknowledgements and resolutions back to the monitor. This build provides the PagerDuty \
emulator and the daemon's durable outbox; sources, rules and the way back arrive with the next \
milestones."
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as
    /// `pagerduty_emulator=debug`).
    #[arg(long, global = true, env = "PAGERBRIDGE_LOG", default_value = "info")]
    log_level: String,

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
    /// Inspect the outbox and act on it: status, list, show, retry and drop (dead letters
    /// included).
    Queue(queue::Args),
    /// Check a configuration file without starting anything.
    Config(config_cmd::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log_level) {
        eprintln!("pagerbridge: {e:#}");
        return std::process::ExitCode::from(2);
    }
    // Short-lived commands: a current-thread runtime of their own, and their own exit codes.
    let command = match cli.command {
        Command::Event(args) => return event::main(*args),
        Command::Queue(args) => return queue::main(args),
        Command::Config(args) => return config_cmd::main(args),
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
            Command::Serve(args) => serve::run(args).await,
            Command::Emulator(args) => emulator::run(args).await,
            Command::Event(_) | Command::Queue(_) | Command::Config(_) => {
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
