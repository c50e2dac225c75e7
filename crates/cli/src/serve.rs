//! `pagerbridge serve`: the daemon, from a configuration file or in demo mode.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use pagerbridge_config::{Config, StoreLocation};
use pagerduty_emulator::seed::{DEMO_API_TOKEN, DEMO_ROUTING_KEY, DEMO_USER_EMAIL};
use pagerduty_emulator::{Emulator, Seed};

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (see docs/configuration.md). Without it, every setting has its
    /// default: listen on 127.0.0.1:8080, data in ./pagerbridge-data, PagerDuty's US hosts.
    #[arg(long, short, value_name = "FILE", env = "PAGERBRIDGE_CONFIG")]
    config: Option<PathBuf>,

    /// Try pagerbridge without PagerDuty: start the built-in PagerDuty emulator and deliver to
    /// it. Data goes to ./pagerbridge-demo unless the configuration says otherwise.
    #[arg(long)]
    demo: bool,

    /// Where the demo's emulator listens.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8787",
        requires = "demo"
    )]
    emulator_listen: SocketAddr,

    /// Listen here instead of `server.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

/// The configuration `serve` runs with: read before logging starts, as its `[log]` section
/// says how to log.
pub fn load_config(args: &Args) -> anyhow::Result<Config> {
    Ok(match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

pub async fn run(
    args: Args,
    mut config: Config,
    log: crate::logging::Handle,
) -> anyhow::Result<()> {
    tokio::spawn(crate::logging::reopen_on_hangup(log));
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let emulator = if args.demo {
        let emulator = pagerduty_emulator::Emulator::start(pagerduty_emulator::Config {
            listen: args.emulator_listen,
            seed: Seed::demo(),
            ..Default::default()
        })
        .await
        .context("starting the demo's PagerDuty emulator")?;
        config = demo_config(config, &emulator, args.config.is_none())?;
        Some(emulator)
    } else {
        None
    };
    let running = pagerbridge_server::start(&config, None)
        .await
        .context("starting the daemon")?;
    let banner = match &emulator {
        Some(emu) => demo_banner(running.addr(), emu, args.config.is_none()),
        None => format!(
            "pagerbridge listening on http://{}\n  relay: POST /v2/enqueue, /v2/change/enqueue, /generic/2010-04-15/create_event.json\n{}  data:  {}\n{}",
            running.addr(),
            config
                .sources
                .iter()
                .map(|s| format!("  source {}: POST {}\n", s.name, s.route()))
                .collect::<String>(),
            config.data_dir().display(),
            match config.store_location() {
                // The URL holds no password (store.password is kept apart).
                StoreLocation::Postgres(pg) => format!(
                    "  store: {} (shared: replica {}, leadership in /readyz)\n",
                    pg.url(),
                    running.leadership().replica()
                ),
                StoreLocation::Sqlite(_) => String::new(),
            }
        ),
    };
    // A closed stdout must not take the daemon down (see the emulator's banner).
    let _ = std::io::stdout().write_all(banner.as_bytes());
    let _ = std::io::stdout().flush();
    crate::signals::shutdown().await;
    tracing::info!("stopping: finishing requests and deliveries in flight");
    running.stop().await?;
    if let Some(emu) = emulator {
        emu.stop().await;
    }
    Ok(())
}

/// The demo's admin token for `/api/v1`: fixed, so that the banner's commands can be pasted;
/// the demo listens on loopback only.
const DEMO_ADMIN_TOKEN: &str = "demo-admin-token-change-me";

/// The demo delivers to the emulator; its data lives apart from a real installation's.
fn demo_config(mut config: Config, emulator: &Emulator, no_file: bool) -> anyhow::Result<Config> {
    let url = emulator.url();
    // The emulator's account token and user: the way back, the reconciler and the API's
    // incident routes work in the demo as they would with a real account.
    let mut text = format!(
        "[pagerduty]\nevents_url = \"{url}\"\nrest_url = \"{url}\"\nproxy = \"none\"\n\
         api_token = \"{DEMO_API_TOKEN}\"\nfrom = \"{DEMO_USER_EMAIL}\"\n"
    );
    if no_file {
        text.push_str(&format!(
            "[server]\ndata_dir = \"pagerbridge-demo\"\n\
             [routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\
             [[sources]]\nname = \"alertmanager\"\nkind = \"alertmanager\"\n\
             [[sources]]\nname = \"grafana\"\nkind = \"grafana\"\n\
             [[api.tokens]]\nname = \"demo\"\ntoken = \"{DEMO_ADMIN_TOKEN}\"\nscope = \"admin\"\n"
        ));
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let demo = Config::from_str(&text, "demo settings", &cwd)?;
    config.pagerduty = demo.pagerduty;
    if no_file {
        let listen = config.server.listen;
        config.server = demo.server;
        config.server.listen = listen;
        // Sources to try without writing a file: everything goes to the demo service.
        config.routing = demo.routing;
        config.sources = demo.sources;
        config.api = demo.api;
    }
    Ok(config)
}

fn demo_banner(addr: SocketAddr, emulator: &Emulator, sources: bool) -> String {
    let emu = emulator.url();
    let mut b = format!(
        "pagerbridge demo: listening on http://{addr}, delivering to the PagerDuty emulator at {emu}\n\
         \n\
         Trigger an incident through pagerbridge:\n\
         \x20 curl -sS -X POST http://{addr}/v2/enqueue -H 'Content-Type: application/json' \\\n\
         \x20   -d '{{\"routing_key\":\"{DEMO_ROUTING_KEY}\",\"event_action\":\"trigger\",\"dedup_key\":\"disk/db1\",\"payload\":{{\"summary\":\"Disk full on db1\",\"source\":\"db1\",\"severity\":\"critical\"}}}}'\n\
         Resolve it:\n\
         \x20 curl -sS -X POST http://{addr}/v2/enqueue -H 'Content-Type: application/json' \\\n\
         \x20   -d '{{\"routing_key\":\"{DEMO_ROUTING_KEY}\",\"event_action\":\"resolve\",\"dedup_key\":\"disk/db1\"}}'\n"
    );
    if sources {
        b.push_str(&format!(
            "\n\
             Post an Alertmanager webhook (sources in this demo: /ingest/alertmanager, /ingest/grafana):\n\
             \x20 curl -sS -X POST http://{addr}/ingest/alertmanager -H 'Content-Type: application/json' \\\n\
             \x20   -d '{{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"demo\",\"alerts\":[{{\"status\":\"firing\",\"labels\":{{\"alertname\":\"HighLoad\",\"instance\":\"web1:9100\",\"severity\":\"warning\"}},\"annotations\":{{\"summary\":\"Load above 8 on web1\"}},\"startsAt\":\"2026-01-01T00:00:00Z\"}}]}}'\n\
             Send a Nagios notification as its notification command would (works with the daemon down too):\n\
             \x20 pagerbridge send --data-dir pagerbridge-demo --source nagios --routing-key {DEMO_ROUTING_KEY} \\\n\
             \x20   --type PROBLEM --host db2 --service 'Disk /' --state CRITICAL --output 'DISK CRITICAL - 3% free'\n"
        ));
    }
    if sources {
        b.push_str(&format!(
            "\n\
             pagerbridge's own API (docs/api.md), with the demo's admin token:\n\
             \x20 curl -sS 'http://{addr}/api/v1/incidents?status=all' -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}'\n"
        ));
    }
    b.push_str(&format!(
        "\n\
         See the incidents: {emu}/   (or: curl -sS '{emu}/incidents' -H 'Authorization: Token token={DEMO_API_TOKEN}')\n\
         Queue:             pagerbridge queue status --data-dir pagerbridge-demo\n\
         Status page:       http://{addr}/   (Prometheus metrics: http://{addr}/metrics)\n\
         Ready for traffic? (store writable, dispatcher running, PagerDuty reachable or in backoff):\n\
         \x20 curl -sS http://{addr}/readyz\n\
         Incidents from the shell (PagerDuty's REST API, here the emulator's):\n\
         \x20 pagerbridge incident list --status all --rest-url {emu} --api-token {DEMO_API_TOKEN}\n\
         Simulate an outage (next 5 deliveries fail with 503):\n\
         \x20 curl -sS -X POST {emu}/_emulator/faults -d '{{\"kind\":\"status\",\"status\":503,\"count\":5}}'\n\
         \n\
         Press Ctrl-C to stop.\n"
    ));
    b
}
