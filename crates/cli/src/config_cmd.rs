//! `pagerbridge config check`: the whole configuration file validated, every problem with its
//! line, without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use pagerbridge_config::{Config, ConfigError};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  the file is valid
  2  the file has problems (each printed with file:line:column and the field)
  3  the file cannot be read";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Validate a configuration file: syntax, every field, rules (regexes, templates, routing
    /// keys), secrets it reads from the environment or files. Prints each problem with its line.
    #[command(after_long_help = EXIT_CODES)]
    Check {
        /// The file to check.
        #[arg(
            long,
            short,
            value_name = "FILE",
            env = "PAGERBRIDGE_CONFIG",
            default_value = "pagerbridge.toml"
        )]
        config: PathBuf,
    },
}

pub fn main(args: Args) -> ExitCode {
    let Command::Check { config } = args.command;
    match Config::load(&config) {
        Ok(c) => {
            let key = if c.routing.default_routing_key.is_some() {
                "a default routing key"
            } else {
                "no default routing key (alerts need a rule or a payload that names one)"
            };
            let sources = if c.sources.is_empty() {
                "no sources".to_owned()
            } else {
                let routes: Vec<String> = c
                    .sources
                    .iter()
                    .map(|s| format!("{} {} at {}", s.kind, s.name, s.route()))
                    .collect();
                format!("sources: {}", routes.join(", "))
            };
            println!(
                "{}: valid: {} rule{}, {key}; {sources}; data in {}; PagerDuty events at {}",
                config.display(),
                c.rules.len(),
                if c.rules.len() == 1 { "" } else { "s" },
                c.data_dir().display(),
                c.pagerduty.client_config().events_url,
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Read { .. }) => {
            eprintln!("pagerbridge: cannot read {}", config.display());
            ExitCode::from(3)
        }
        Err(e) => {
            // One problem per line, already naming file, line, column and field.
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
