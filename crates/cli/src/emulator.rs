//! `pagerbridge emulator`: the PagerDuty emulator as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;

use anyhow::Context;
use pagerduty_emulator::seed::{DEMO_API_TOKEN, DEMO_ROUTING_KEY, DEMO_USER_EMAIL};
use pagerduty_emulator::{Config, Emulator, Seed};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on. Loopback by default: the emulator has no authentication on its
    /// admin API and is not meant to be exposed.
    #[arg(
        long,
        default_value = "127.0.0.1:8787",
        env = "PAGERBRIDGE_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,

    /// Seed file (TOML or JSON) with services, integration keys, users, API tokens, maintenance
    /// windows and webhook subscriptions. Without it, a demo account is used; see --print-seed.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,

    /// Print the demo seed as TOML (a starting point for your own) and exit.
    #[arg(long)]
    print_seed: bool,

    /// Base URL written into `self` and `html_url` links, when clients reach the emulator
    /// through another address than --listen.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,

    /// Events accepted per integration key per minute before 429 (PagerDuty: about 120).
    /// Overrides the seed file.
    #[arg(long, value_name = "N", conflicts_with = "no_rate_limit")]
    events_per_minute: Option<u32>,

    /// Turn off the Events and REST rate limits (for benchmarks).
    #[arg(long)]
    no_rate_limit: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut seed = match &args.seed {
        Some(path) => Seed::load(path)?,
        None => Seed::demo(),
    };
    if args.print_seed {
        print!(
            "{}",
            toml::to_string_pretty(&seed).context("cannot print the seed as TOML")?
        );
        return Ok(());
    }
    if let Some(n) = args.events_per_minute {
        seed.settings.events_per_minute = n;
    }
    if args.no_rate_limit {
        seed.settings.events_per_minute = 0;
        seed.settings.rest_requests_per_minute = 0;
    }
    let demo = args.seed.is_none();
    let emulator = Emulator::start(Config {
        listen: args.listen,
        seed,
        public_url: args.public_url.clone(),
        record_exchanges: false,
    })
    .await?;
    let url = args.public_url.unwrap_or_else(|| emulator.url());
    // One write, whose failure is ignored: a closed stdout (`| head -1`, a supervisor that stopped
    // reading) must not take the server down, as `println!` would by panicking.
    let _ = std::io::stdout().write_all(banner(&url, demo).as_bytes());
    let _ = std::io::stdout().flush();
    crate::signals::shutdown().await;
    emulator.stop().await;
    Ok(())
}

fn banner(url: &str, demo: bool) -> String {
    let mut b = format!(
        "PagerDuty emulator listening on {url}\n\
         \x20 Events API v2:  POST {url}/v2/enqueue   (change events: {url}/v2/change/enqueue)\n\
         \x20 Events API v1:  POST {url}/generic/2010-04-15/create_event.json\n\
         \x20 REST API:       {url}/incidents, /services, /log_entries, ...\n\
         \x20 Web page:       {url}/\n\
         \x20 Admin API:      {url}/_emulator/state, /_emulator/events, /_emulator/faults\n"
    );
    if demo {
        b.push_str(&format!(
            "\nDemo account: routing key {DEMO_ROUTING_KEY}, API token {DEMO_API_TOKEN}, From {DEMO_USER_EMAIL}\n\
             Trigger an incident:\n\
             \x20 curl -sS -X POST {url}/v2/enqueue -H 'Content-Type: application/json' \\\n\
             \x20   -d '{{\"routing_key\":\"{DEMO_ROUTING_KEY}\",\"event_action\":\"trigger\",\"dedup_key\":\"disk/db1\",\"payload\":{{\"summary\":\"Disk full on db1\",\"source\":\"db1\",\"severity\":\"critical\"}}}}'\n\
             List it:\n\
             \x20 curl -sS '{url}/incidents?statuses[]=triggered' -H 'Authorization: Token token={DEMO_API_TOKEN}'\n"
        ));
    }
    b.push_str("\nPress Ctrl-C to stop.\n");
    b
}
