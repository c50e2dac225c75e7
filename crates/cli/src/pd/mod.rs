//! `pagerbridge incident|service|maintenance`: PagerDuty's incidents, services and maintenance
//! windows for an operator at a shell, through PagerDuty's REST API.
//!
//! What the commands do with PagerDuty is `pagerbridge_ops`, shared with the daemon's API, so
//! both validate, page and chunk alike. This module finds the credentials, waits out rate
//! limits visibly, draws progress and prints tables, JSON or nothing.

pub mod incident;
pub mod maintenance;
pub mod service;

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use pagerbridge_config::{Config, HttpUrl, Purpose, SecretSource};
use pagerbridge_ops::{Kind, OpError};
use pagerduty::{RestClient, RetryPolicy};
use serde::Serialize;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  partly done: some ids failed (each named on stderr, the others changed); or another failure
  2  bad input: a flag, a field (named), a missing From, or PagerDuty refused the request (400)
  3  PagerDuty unavailable: no answer, HTTP 5xx, or still rate limited after --max-wait
  4  not found: no such incident, service or maintenance window
  5  authentication: no API token given, or PagerDuty refused it";

const ACCESS: &str = "PagerDuty access";
const OUTPUT: &str = "Output";

/// How to reach PagerDuty and how to print, shared by `incident`, `service` and `maintenance`.
/// A flag (or its variable) wins over the configuration file's `[pagerduty]` section.
#[derive(clap::Args, Debug, Clone)]
pub struct PdArgs {
    /// Configuration file whose `[pagerduty]` section gives the API token, the From user, the
    /// REST URL (or region), timeouts and proxy. Without it: PagerDuty's US region and the
    /// flags below.
    #[arg(
        long,
        short,
        global = true,
        value_name = "FILE",
        env = "PAGERBRIDGE_CONFIG",
        help_heading = ACCESS
    )]
    pub config: Option<PathBuf>,

    /// PagerDuty REST API token (overrides `pagerduty.api_token`).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "PAGERDUTY_API_TOKEN",
        hide_env_values = true,
        help_heading = ACCESS
    )]
    pub api_token: Option<String>,

    /// Email of the PagerDuty user that changes act as (the `From` header; account-level
    /// tokens need it). Overrides `pagerduty.from`.
    #[arg(
        long,
        global = true,
        value_name = "EMAIL",
        env = "PAGERDUTY_FROM",
        help_heading = ACCESS
    )]
    pub from: Option<String>,

    /// Base URL of the REST API (overrides `pagerduty.rest_url` and the region), e.g. the
    /// emulator's `http://127.0.0.1:8787`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "PAGERDUTY_REST_URL",
        help_heading = ACCESS
    )]
    pub rest_url: Option<String>,

    /// Wait at most this many seconds in all, per request, for PagerDuty's rate limit or
    /// outage to pass (each wait is printed on stderr); 0 fails at the first 429.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 120,
        help_heading = ACCESS
    )]
    pub max_wait: u64,

    /// Print JSON for scripts instead of tables (errors still go to stderr as text).
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub json: bool,

    /// Print nothing, not even errors: only the exit status tells.
    #[arg(long, short, global = true, help_heading = OUTPUT)]
    pub quiet: bool,
}

/// What a command has to work with.
pub struct Ctx {
    pub args: PdArgs,
    pub ui: Ui,
    pub now: Timestamp,
}

/// Runs one command on a current-thread runtime and turns its outcome into the documented exit
/// code, printing the error (unless `--quiet`).
pub fn main<F, Fut>(args: PdArgs, command: F) -> ExitCode
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<u8, OpError>>,
{
    let ui = Ui::new(args.json, args.quiet);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            ui.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        args,
        ui: ui.clone(),
        now: Timestamp::now(),
    };
    let result = runtime.block_on(command(ctx));
    ui.finish_progress();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            ui.error(&e.message);
            ExitCode::from(e.exit_code())
        }
    }
}

impl Ctx {
    /// The REST client the flags and the configuration file describe. Reads need only the
    /// token; writes also need a From user, which PagerDuty asks for when it is missing (a user
    /// token acts as its user without one).
    pub fn client(&self) -> Result<RestClient, OpError> {
        let a = &self.args;
        let config = match &a.config {
            Some(path) => Config::load_for(path, Purpose::Enqueue)
                .map_err(|e| OpError::field("config", format!("configuration file: {e}")))?,
            None => Config::default(),
        };
        let pd = &config.pagerduty;
        let token = match a.api_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => t.to_owned(),
            None => configured_token(&config)?,
        };
        let mut client_config = pd.client_config();
        if let Some(url) = a.rest_url.as_deref().filter(|u| !u.is_empty()) {
            let url: HttpUrl = url
                .parse()
                .map_err(|e| OpError::field("rest-url", format!("--rest-url: {e}")))?;
            client_config.rest_url = url.as_url().clone();
        }
        let from = match a.from.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => Some(f.to_owned()),
            None => pd.from.as_ref().map(|e| e.as_str().to_owned()),
        };
        let ui = self.ui.clone();
        let retry = RetryPolicy {
            max_total_wait: Duration::from_secs(a.max_wait),
            ..RetryPolicy::default()
        }
        .on_wait(move |w| ui.note(&w.to_string()));
        let mut client = RestClient::new(&client_config, token)
            .map_err(|e| OpError::new(Kind::BadInput, format!("PagerDuty client: {e}")))?
            .with_retry(retry);
        if let Some(from) = from {
            client = client.with_from(from);
        }
        Ok(client)
    }
}

/// `pagerduty.api_token` of the configuration. The file is loaded as the one-shot commands
/// load it ([`Purpose::Enqueue`]), which leaves the daemon's secrets unread (the monitors'
/// credentials, webhook secrets...: an operator's shell need not have them); only this one is
/// read here, from where the file says.
fn configured_token(config: &Config) -> Result<String, OpError> {
    let missing = || OpError {
        field: Some("api_token".into()),
        ..OpError::new(
            Kind::Auth,
            "no PagerDuty API token: give --api-token, set PAGERDUTY_API_TOKEN, or set \
                 pagerduty.api_token in the configuration file (--config or PAGERBRIDGE_CONFIG)",
        )
    };
    let Some(secret) = &config.pagerduty.api_token else {
        return Err(missing());
    };
    if let Some(value) = secret.resolved() {
        return Ok(value.to_owned());
    }
    let unreadable = |why: String| OpError {
        field: Some("pagerduty.api_token".into()),
        ..OpError::new(
            Kind::Auth,
            format!("pagerduty.api_token: {why} (or give --api-token / PAGERDUTY_API_TOKEN)"),
        )
    };
    match secret.source() {
        SecretSource::Inline => Err(missing()),
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(unreadable(format!(
                "the environment variable {var} is not set"
            ))),
        },
        SecretSource::File(path) => {
            let full = config.base_dir().join(path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| unreadable(format!("cannot read {}: {e}", full.display())))?;
            let token = text.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                return Err(unreadable(format!("{} is empty", full.display())));
            }
            Ok(token.to_owned())
        }
    }
}

/// Where output goes: stdout for results (a table or JSON), stderr for notes, waits, progress
/// and errors; nothing at all with `--quiet`.
#[derive(Clone)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Ui {
    fn new(json: bool, quiet: bool) -> Ui {
        Ui {
            json,
            quiet,
            bar: Arc::default(),
        }
    }

    /// A result line (or table) on stdout.
    pub fn out(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    /// A value as JSON on stdout, pretty when `pretty`.
    pub fn print_json<T: Serialize + ?Sized>(&self, value: &T, pretty: bool) {
        if self.quiet {
            return;
        }
        let text = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        println!("{}", text.expect("PagerDuty's objects serialise"));
    }

    /// A note on stderr (a wait, an id that failed), above the progress bar if one is drawn.
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        let bar = self.bar.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| eprintln!("pagerbridge: {text}")),
            None => eprintln!("pagerbridge: {text}"),
        }
    }

    pub fn error(&self, message: &str) {
        self.finish_progress();
        self.note(message);
    }

    /// Whether a progress bar is drawn: for a person at a terminal only, never in the way of
    /// `--json` or `--quiet`.
    pub fn draws_progress(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }

    /// A progress bar for `len` items (a spinner with a count when unknown); hidden unless
    /// [`Ui::draws_progress`].
    pub fn progress(&self, len: Option<u64>, what: &str) -> ProgressBar {
        let bar = if !self.draws_progress() {
            ProgressBar::hidden()
        } else if let Some(len) = len {
            ProgressBar::new(len).with_style(
                ProgressStyle::with_template(
                    "{msg} [{wide_bar}] {human_pos}/{human_len} ({eta} left)",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            )
        } else {
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg}: {human_pos}")
                    .expect("a valid template"),
            )
        };
        bar.set_message(what.to_owned());
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        bar
    }

    /// Takes the progress bar off the screen, before the results are printed.
    pub fn finish_progress(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// `-` among the arguments stands for the ids on standard input, one per line or separated by
/// any whitespace (`... --json | jq -r '.[].id' | pagerbridge incident ack -`).
pub fn expand_stdin(args: &[String]) -> Result<Vec<String>, OpError> {
    let mut out = Vec::with_capacity(args.len());
    let mut read = false;
    for a in args {
        if a != "-" {
            out.push(a.clone());
            continue;
        }
        if read {
            continue;
        }
        read = true;
        let text = std::io::read_to_string(std::io::stdin())
            .map_err(|e| OpError::field("ids", format!("ids: cannot read standard input: {e}")))?;
        let before = out.len();
        out.extend(text.split_whitespace().map(str::to_owned));
        if out.len() == before && args.len() == 1 {
            return Err(OpError::field(
                "ids",
                "ids: no incident id on standard input",
            ));
        }
    }
    Ok(out)
}

/// `at` as `2026-11-21 10:00 UTC (5 min ago)`.
pub fn when(at: Timestamp, now: Timestamp) -> String {
    format!(
        "{} ({})",
        at.strftime("%Y-%m-%d %H:%M UTC"),
        pagerbridge_ops::time::relative(at, now)
    )
}

pub use crate::table::{cut, fields, render, right_align, table};

/// "1 incident", "3 incidents".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_the_cut() {
        assert_eq!(count(1, "incident", "incidents"), "1 incident");
        assert_eq!(count(0, "incident", "incidents"), "0 incidents");
    }
}
