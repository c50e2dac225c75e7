//! The two stores side by side: durable ingest (PagerDuty unreachable, so ingest alone) and
//! the drain rate to the emulator, first with the SQLite file, then with a PostgreSQL
//! database. Each measurement gets a fresh store: a new data directory, or a new database
//! (`pagerbridge_bench`, created on the server `--postgres-url` names, dropped at the end).
//! Progress on stderr, a markdown summary on stdout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

use crate::drain::{self, DrainOptions, DrainResult};
use crate::load::{self, IngestOptions, IngestResult};
use crate::outbox::Reader;
use crate::procs::{self, DaemonSetup};
use crate::stats::{ms, wait_quiet};

/// The database each PostgreSQL measurement creates afresh.
const DATABASE: &str = "pagerbridge_bench";
const GRACE: Duration = Duration::from_secs(20);

#[derive(clap::Args)]
pub struct Args {
    /// A PostgreSQL server, as a user that may create databases, e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres`. The database `pagerbridge_bench` is
    /// created (dropped first if it exists) for each measurement and dropped at the end.
    #[arg(long, value_name = "URL")]
    postgres_url: String,
    /// The pagerbridge binary (default: next to this one).
    #[arg(long)]
    pagerbridge: Option<PathBuf>,
    /// Scratch directory for SQLite data directories and logs; on the disk to measure.
    #[arg(long, default_value = "target/bench-work")]
    work: PathBuf,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured seconds per ingest run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Ingest runs per store (best and median are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    #[arg(long, default_value_t = 100_000)]
    drain_events: usize,
    #[arg(long, default_value_t = 10_000)]
    drain_keys: usize,
    /// Before each measurement, wait until the machine is this % idle over 3 s...
    #[arg(long, default_value_t = 80.0)]
    min_idle: f64,
    /// ...but no longer than this.
    #[arg(long, default_value_t = 300)]
    max_wait_secs: u64,
    /// Parts to leave out: ingest, drain.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

fn note(s: &str) {
    eprintln!("[bench] {s}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh `pagerbridge_bench` database on the server `admin_url` names; returns its URL.
async fn fresh_database(admin_url: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .context("connecting to --postgres-url")?;
    drop_database(&mut admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
        .execute(&mut admin)
        .await
        .context("creating the benchmark database")?;
    let _ = admin.close().await;
    let mut url = url::Url::parse(admin_url).context("--postgres-url is not a URL")?;
    url.set_path(&format!("/{DATABASE}"));
    Ok(url.to_string())
}

async fn drop_database(admin: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .context("dropping the benchmark database")?;
    Ok(())
}

/// Everything a store's measurements produced.
struct Measured {
    backend: Backend,
    ingest: Vec<IngestResult>,
    drain: Option<DrainResult>,
}

impl Measured {
    fn sorted(&self) -> Vec<&IngestResult> {
        let mut v: Vec<&IngestResult> = self.ingest.iter().collect();
        v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        v
    }
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let pb = a
        .pagerbridge
        .clone()
        .unwrap_or_else(procs::default_pagerbridge);
    if !pb.is_file() {
        bail!(
            "{} not found: run `cargo build --release -p pagerbridge -p pagerbridge-bench` first",
            pb.display()
        );
    }
    std::fs::create_dir_all(&a.work)?;
    let work = std::fs::canonicalize(&a.work)?;
    let skip = |s: &str| a.skip.iter().any(|x| x == s);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut all = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut m = Measured {
            backend,
            ingest: Vec::new(),
            drain: None,
        };
        if !skip("ingest") {
            for i in 0..a.runs.max(1) {
                let r = ingest_run(&a, &pb, &work, backend).await?;
                note(&format!(
                    "{} ingest run {}: {}",
                    backend.name(),
                    i + 1,
                    r.line()
                ));
                m.ingest.push(r);
            }
        }
        if !skip("drain") {
            let r = drain_run(&a, &pb, &work, backend).await?;
            note(&r.line());
            m.drain = Some(r);
        }
        all.push(m);
    }
    if let Ok(mut admin) = PgConnection::connect(&a.postgres_url).await {
        let _ = drop_database(&mut admin).await;
    }
    println!("{}", markdown(&a, &all, load_before.trim()));
    Ok(())
}

async fn quiet(a: &Args, what: &str) {
    let idle = wait_quiet(a.min_idle, Duration::from_secs(a.max_wait_secs)).await;
    note(&format!("{what}: machine {idle:.0}% idle before"));
}

/// One ingest run on a fresh store, PagerDuty on a closed port (the dispatcher's circuit opens
/// after a few refused connections, and it stays idle).
async fn ingest_run(
    a: &Args,
    pb: &Path,
    work: &Path,
    backend: Backend,
) -> anyhow::Result<IngestResult> {
    let dir = work.join("backends-ingest");
    let _ = std::fs::remove_dir_all(&dir);
    let store_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_database(&a.postgres_url).await?),
    };
    quiet(a, &format!("{} ingest", backend.name())).await;
    let d = procs::daemon(
        pb,
        &dir,
        &DaemonSetup {
            pagerduty_url: format!("http://{}", procs::closed_port()?),
            coalesce: true,
            max_in_flight: 32,
            store_url: store_url.clone(),
        },
    )
    .await?;
    let opts = IngestOptions {
        url: d.url.clone(),
        path: "/v2/enqueue".into(),
        clients: a.clients,
        seconds: a.seconds,
        warmup: a.warmup,
        keys: a.keys,
        watch: vec![("daemon".to_owned(), d.pid)],
    };
    let r = load::ingest(&opts).await;
    d.stop(GRACE).await?;
    let r = r?;
    // Every answered event must be in the outbox.
    let reader = match &store_url {
        Some(url) => Reader::open_postgres(url).await?,
        None => Reader::open(&procs::database(&dir)).await?,
    };
    let stored: u64 = reader.states().await?.iter().map(|x| x.1).sum();
    reader.close().await;
    if stored < r.ok {
        bail!(
            "{}: {} events answered but only {stored} stored",
            backend.name(),
            r.ok
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

/// The drain: the store filled beforehand, then a daemon delivering to the emulator with every
/// limit off and coalescing off (every event sent).
async fn drain_run(
    a: &Args,
    pb: &Path,
    work: &Path,
    backend: Backend,
) -> anyhow::Result<DrainResult> {
    let store_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_database(&a.postgres_url).await?),
    };
    let emu = procs::emulator(pb, work).await?;
    let r = drain::run(
        pb,
        &work.join("backends-drain"),
        &emu.url,
        emu.pid,
        &DrainOptions {
            events: a.drain_events,
            keys: a.drain_keys,
            coalesce: false,
            max_in_flight: 32,
            timeout: Duration::from_secs(900),
            quiet: Some((a.min_idle, Duration::from_secs(a.max_wait_secs))),
            store_url,
        },
    )
    .await;
    emu.stop(GRACE).await?;
    let _ = std::fs::remove_dir_all(work.join("backends-drain"));
    r
}

fn cpu(r: &IngestResult, name: &str) -> String {
    r.cpu
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| format!("{p:.0}%"))
        .unwrap_or_else(|| "-".into())
}

fn markdown(a: &Args, all: &[Measured], load_before: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "\n## The stores side by side\n\n{} cores; load average before: {load_before}; \
         {} clients, {} × {} s ingest runs over {} keys; drain of {} events over {} keys, \
         coalescing off.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        a.clients,
        a.runs,
        a.seconds,
        a.keys,
        a.drain_events,
        a.drain_keys,
    );
    let _ = writeln!(
        m,
        "| store | ingest best events/s | ingest median events/s | p50 | p99 | CPU daemon | CPU others (the database server among them) |\n|---|---|---|---|---|---|---|"
    );
    for x in all.iter().filter(|x| !x.ingest.is_empty()) {
        let v = x.sorted();
        let median = v[(v.len() - 1) / 2];
        let best = v.last().expect("runs");
        let _ = writeln!(
            m,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} |",
            x.backend.name(),
            best.rate(),
            median.rate(),
            ms(median.latency.p50),
            ms(median.latency.p99),
            cpu(median, "daemon"),
            cpu(median, "others"),
        );
    }
    let _ = writeln!(
        m,
        "\n| store | drain seconds | deliveries/s | filling took | CPU daemon | CPU emulator | CPU others |\n|---|---|---|---|---|---|---|"
    );
    for x in all {
        if let Some(d) = &x.drain {
            let _ = writeln!(
                m,
                "| {} | {:.2} | {:.0} | {:.1} s | {:.0}% | {:.0}% | {:.0}% |",
                x.backend.name(),
                d.seconds,
                d.delivery_rate(),
                d.fill.as_secs_f64(),
                d.cpu_daemon,
                d.cpu_emulator,
                d.cpu_others,
            );
        }
    }
    m
}
