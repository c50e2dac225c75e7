//! Logging setup shared by every subcommand.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

pub fn init(level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?} is not a level or tracing filter"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colours only for a person at a terminal: log files and journald get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
