//! `pagerbridge event trigger|acknowledge|resolve|change`: puts one event in the outbox from
//! the shell, for monitors' notification commands and scripts.
//!
//! The event goes through the relay's own [`prepare`] (PagerDuty's validation, generated dedup
//! keys), so it is stored exactly as if it had been posted to the daemon's `/v2/enqueue`. It is
//! written straight into the daemon's database: it is safe whether the daemon runs or not, and
//! the daemon picks it up at its next poll of the store.
//!
//! This runs once per alert notification, so it does no more than it must: no config beyond
//! finding the database, a current-thread runtime, validation before the store is opened, and
//! no closing checkpoint (a committed event is already durable in the write-ahead log).

use std::process::ExitCode;

use jiff::Timestamp;
use pagerbridge_server::relay::{Prepared, prepare};
use pagerbridge_store::EventKind;
use pagerduty::events::{Rejection, Severity};
use serde_json::{Map, Value};

use crate::store_args::{Create, OpenError, StoreArgs};

/// What the outbox records as the event's origin.
const SOURCE: &str = "cli";

pub const EXIT_CODES: &str = "\
Exit codes:
  0  stored in the outbox (the daemon delivers it, now or when it next runs)
  2  bad input: a flag, or an event PagerDuty would refuse (its messages on stderr, one per line);
     nothing stored
  3  the outbox cannot be written (unavailable, read-only, disk full); nothing stored, try again";

#[derive(clap::Args, Debug)]
#[command(after_long_help = EXIT_CODES)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,

    /// Print PagerDuty's answer object with the event's outbox id (`"id"`) instead of the
    /// bare dedup key.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Open an alert, or add to the open alert with the same dedup key. Prints the dedup key
    /// (generated, 32 hex characters, when --dedup-key is not given).
    #[command(after_long_help = EXIT_CODES)]
    Trigger(TriggerArgs),
    /// Acknowledge the alert with this dedup key. Prints the dedup key.
    #[command(after_long_help = EXIT_CODES)]
    Acknowledge(UpdateArgs),
    /// Resolve the alert with this dedup key. Prints the dedup key.
    #[command(after_long_help = EXIT_CODES)]
    Resolve(UpdateArgs),
    /// Record a change event (a deploy, a configuration change): never opens an incident.
    /// Prints nothing unless --json.
    #[command(after_long_help = EXIT_CODES)]
    Change(ChangeArgs),
}

/// PagerDuty's rules decide what is missing (exit 2 with its own messages), so that the CLI
/// refuses exactly what the relay routes refuse; the flags PagerDuty requires are therefore
/// optional to clap and marked "Required" in their help.
#[derive(clap::Args, Debug)]
struct RoutingKey {
    /// Integration key of the PagerDuty service (32 characters). Required.
    #[arg(
        long,
        value_name = "KEY",
        env = "PAGERBRIDGE_ROUTING_KEY",
        hide_env_values = true
    )]
    routing_key: Option<String>,
}

#[derive(clap::Args, Debug)]
struct TriggerArgs {
    #[command(flatten)]
    routing_key: RoutingKey,
    /// What is wrong, as the incident's title (at most 1024 characters). Required.
    #[arg(long, value_name = "TEXT")]
    summary: Option<String>,
    /// The affected system: host name, FQDN, service. Required.
    #[arg(long, value_name = "TEXT")]
    source: Option<String>,
    /// How bad it is. Required.
    #[arg(long, value_enum)]
    severity: Option<SeverityArg>,
    /// Identifies the alert across trigger, acknowledge and resolve (at most 255 characters).
    /// Default: a new random key, printed.
    #[arg(long, value_name = "KEY")]
    dedup_key: Option<String>,
    /// The part of the source that is affected (`payload.component`).
    #[arg(long, value_name = "TEXT")]
    component: Option<String>,
    /// A logical grouping of sources, e.g. a cluster (`payload.group`).
    #[arg(long, value_name = "TEXT")]
    group: Option<String>,
    /// The kind of problem, e.g. `disk` (`payload.class`).
    #[arg(long, value_name = "TEXT")]
    class: Option<String>,
    /// When the problem was detected, ISO 8601 (`payload.timestamp`); sent as written.
    #[arg(long, value_name = "TIME")]
    timestamp: Option<String>,
    #[command(flatten)]
    details: Details,
    #[command(flatten)]
    links: Links,
    /// An image to show on the alert: `SRC`, `SRC|HREF` or `SRC|HREF|ALT`. Repeatable.
    #[arg(long = "image", value_name = "URL", value_parser = parse_image)]
    images: Vec<Value>,
    /// Name of the monitoring client sending the event (`client`).
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Link back to the monitoring client (`client_url`).
    #[arg(long, value_name = "URL")]
    client_url: Option<String>,
}

#[derive(clap::Args, Debug)]
struct UpdateArgs {
    #[command(flatten)]
    routing_key: RoutingKey,
    /// The dedup key of the alert, as the trigger printed or was given. Required.
    #[arg(long, value_name = "KEY")]
    dedup_key: Option<String>,
    #[command(flatten)]
    links: Links,
}

#[derive(clap::Args, Debug)]
struct ChangeArgs {
    #[command(flatten)]
    routing_key: RoutingKey,
    /// What changed (at most 1024 characters). Required.
    #[arg(long, value_name = "TEXT")]
    summary: Option<String>,
    /// Where it changed.
    #[arg(long, value_name = "TEXT")]
    source: Option<String>,
    /// When it changed, ISO 8601; sent as written.
    #[arg(long, value_name = "TIME")]
    timestamp: Option<String>,
    #[command(flatten)]
    details: Details,
    #[command(flatten)]
    links: Links,
}

#[derive(clap::Args, Debug)]
struct Details {
    /// Custom details (`payload.custom_details`): any JSON, usually an object.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    details: Option<Value>,
    /// One custom detail as a string, added to --details (which must then be an object).
    /// Repeatable.
    #[arg(long = "detail", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    detail: Vec<(String, String)>,
}

#[derive(clap::Args, Debug)]
struct Links {
    /// A link to show on the alert: `URL` or `URL|TEXT`. Repeatable.
    #[arg(long = "link", value_name = "URL", value_parser = parse_link)]
    links: Vec<Value>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum SeverityArg {
    Critical,
    Error,
    Warning,
    Info,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Severity {
        match s {
            SeverityArg::Critical => Severity::Critical,
            SeverityArg::Error => Severity::Error,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Info => Severity::Info,
        }
    }
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

fn parse_link(s: &str) -> Result<Value, String> {
    let (href, text) = match s.split_once('|') {
        Some((href, text)) => (href, Some(text)),
        None => (s, None),
    };
    let mut link = Map::new();
    link.insert("href".into(), href.into());
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        link.insert("text".into(), text.into());
    }
    Ok(Value::Object(link))
}

fn parse_image(s: &str) -> Result<Value, String> {
    let mut parts = s.splitn(3, '|');
    let mut image = Map::new();
    for name in ["src", "href", "alt"] {
        if let Some(v) = parts.next().filter(|v| !v.is_empty() || name == "src") {
            image.insert(name.into(), v.into());
        }
    }
    Ok(Value::Object(image))
}

/// Sets `key` when the flag was given (blank included: PagerDuty's rules judge blanks).
fn put(obj: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), Value::String(v.clone()));
    }
}

impl Details {
    fn custom_details(&self) -> Result<Option<Value>, String> {
        if self.detail.is_empty() {
            return Ok(self.details.clone());
        }
        let mut merged = match &self.details {
            None => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(
                    "--detail adds to the --details object, but --details is not a JSON object"
                        .to_owned(),
                );
            }
        };
        for (k, v) in &self.detail {
            merged.insert(k.clone(), Value::String(v.clone()));
        }
        Ok(Some(Value::Object(merged)))
    }
}

impl Action {
    /// The PagerDuty request body the flags describe; `Err` for flag combinations that make
    /// no body at all.
    fn body(&self) -> Result<(EventKind, Value), String> {
        let mut obj = Map::new();
        match self {
            Action::Trigger(a) => {
                put(&mut obj, "routing_key", &a.routing_key.routing_key);
                obj.insert("event_action".into(), "trigger".into());
                put(&mut obj, "dedup_key", &a.dedup_key);
                let mut payload = Map::new();
                put(&mut payload, "summary", &a.summary);
                put(&mut payload, "source", &a.source);
                if let Some(s) = a.severity {
                    payload.insert("severity".into(), Severity::from(s).as_str().into());
                }
                put(&mut payload, "timestamp", &a.timestamp);
                put(&mut payload, "component", &a.component);
                put(&mut payload, "group", &a.group);
                put(&mut payload, "class", &a.class);
                if let Some(d) = a.details.custom_details()? {
                    payload.insert("custom_details".into(), d);
                }
                obj.insert("payload".into(), Value::Object(payload));
                put(&mut obj, "client", &a.client);
                put(&mut obj, "client_url", &a.client_url);
                if !a.links.links.is_empty() {
                    obj.insert("links".into(), Value::Array(a.links.links.clone()));
                }
                if !a.images.is_empty() {
                    obj.insert("images".into(), Value::Array(a.images.clone()));
                }
                Ok((EventKind::EventsV2, Value::Object(obj)))
            }
            Action::Acknowledge(a) | Action::Resolve(a) => {
                let action = if matches!(self, Action::Acknowledge(_)) {
                    "acknowledge"
                } else {
                    "resolve"
                };
                put(&mut obj, "routing_key", &a.routing_key.routing_key);
                obj.insert("event_action".into(), action.into());
                put(&mut obj, "dedup_key", &a.dedup_key);
                if !a.links.links.is_empty() {
                    obj.insert("links".into(), Value::Array(a.links.links.clone()));
                }
                Ok((EventKind::EventsV2, Value::Object(obj)))
            }
            Action::Change(a) => {
                put(&mut obj, "routing_key", &a.routing_key.routing_key);
                let mut payload = Map::new();
                put(&mut payload, "summary", &a.summary);
                put(&mut payload, "source", &a.source);
                put(&mut payload, "timestamp", &a.timestamp);
                if let Some(d) = a.details.custom_details()? {
                    payload.insert("custom_details".into(), d);
                }
                obj.insert("payload".into(), Value::Object(payload));
                if !a.links.links.is_empty() {
                    obj.insert("links".into(), Value::Array(a.links.links.clone()));
                }
                Ok((EventKind::Change, Value::Object(obj)))
            }
        }
    }
}

pub fn main(args: Args) -> ExitCode {
    let (kind, body) = match args.action.body() {
        Ok(b) => b,
        Err(message) => {
            eprintln!("pagerbridge: {message}");
            return ExitCode::from(2);
        }
    };
    let body = serde_json::to_vec(&body).expect("JSON values serialise");
    // Validate before touching the store: bad input never creates or locks anything.
    let prepared = match prepare(kind, &body, SOURCE, Timestamp::now()) {
        Ok(p) => p,
        Err(rejection) => return refused(&rejection, args.json),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pagerbridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stored = runtime.block_on(store(&args.store, &prepared));
    match stored {
        Ok(id) => {
            print_stored(&prepared, id, args.json);
            ExitCode::SUCCESS
        }
        Err(NotStored::Open(e @ OpenError::Config(_))) => {
            eprintln!("pagerbridge: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(NotStored::Open(e)) => {
            eprintln!("pagerbridge: the event was NOT stored: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(NotStored::Insert(e)) => {
            eprintln!("pagerbridge: the event was NOT stored: {e}");
            ExitCode::from(3)
        }
    }
}

enum NotStored {
    Open(OpenError),
    Insert(String),
}

async fn store(args: &StoreArgs, prepared: &Prepared) -> Result<i64, NotStored> {
    let store = args
        .open(Create::IfMissing)
        .await
        .map_err(NotStored::Open)?;
    let ids = store
        .insert(std::slice::from_ref(&prepared.event))
        .await
        .map_err(|e| NotStored::Insert(format!("{e} ({})", store.location())))?;
    ids.first()
        .copied()
        .ok_or_else(|| NotStored::Insert("the store returned no id".to_owned()))
}

fn refused(rejection: &Rejection, json: bool) -> ExitCode {
    if json {
        let answer = serde_json::to_string(&rejection.to_response()).expect("serialises");
        println!("{answer}");
    }
    for message in rejection.messages() {
        eprintln!("{message}");
    }
    ExitCode::from(2)
}

fn print_stored(prepared: &Prepared, id: i64, json: bool) {
    if json {
        let mut answer = prepared.answer.clone();
        if let Value::Object(o) = &mut answer {
            o.insert("id".into(), id.into());
        }
        println!("{answer}");
    } else if let Some(key) = &prepared.event.dedup_key {
        println!("{key}");
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

    fn body(argv: &[&str]) -> Result<Value, String> {
        let cli = Cli::try_parse_from(std::iter::once("event").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.action.body().map(|(_, b)| b)
    }

    #[test]
    fn details_merge_into_the_object_and_need_one() {
        let b = body(&[
            "trigger",
            "--details",
            r#"{"a":1,"b":"x"}"#,
            "--detail",
            "b=y",
            "--detail",
            "c=d=e",
        ])
        .unwrap();
        assert_eq!(
            b["payload"]["custom_details"],
            serde_json::json!({"a": 1, "b": "y", "c": "d=e"})
        );
        let err = body(&["trigger", "--details", "[1]", "--detail", "a=b"]).unwrap_err();
        assert!(err.contains("--details"), "{err}");
        let err = body(&["trigger", "--details", "{nope"]).unwrap_err();
        assert!(err.contains("--details"), "{err}");
        let err = body(&["trigger", "--detail", "novalue"]).unwrap_err();
        assert!(err.contains("--detail"), "{err}");
    }

    #[test]
    fn links_and_images_split_on_bars() {
        let b = body(&[
            "trigger",
            "--link",
            "https://a.example/x",
            "--link",
            "https://b.example|Runbook | disks",
            "--image",
            "https://i.example/g.png|https://i.example/|Graph",
            "--image",
            "https://i.example/h.png",
        ])
        .unwrap();
        assert_eq!(
            b["links"],
            serde_json::json!([{"href": "https://a.example/x"},
                {"href": "https://b.example", "text": "Runbook | disks"}])
        );
        assert_eq!(
            b["images"],
            serde_json::json!([{"src": "https://i.example/g.png", "href": "https://i.example/", "alt": "Graph"},
                {"src": "https://i.example/h.png"}])
        );
    }

    #[test]
    fn absent_flags_are_absent_and_blank_ones_are_kept_for_pagerduty_to_judge() {
        let b = body(&["resolve", "--routing-key", ""]).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"routing_key": "", "event_action": "resolve"})
        );
    }
}
