//! `pagerbridge-bench`: benchmarks of the pagerbridge daemon (see BENCHMARKS.md). The product
//! runs as separate processes (`pagerbridge serve`, `pagerbridge emulator`); this binary is
//! the load generator, the measuring side, and the baseline server.

mod all;
mod backends;
mod baseline;
mod drain;
mod fsync;
mod latency;
mod load;
mod memory;
mod outbox;
mod procs;
mod sendcmd;
mod stats;
mod storebench;
mod webhookbench;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pagerbridge-bench",
    about = "Benchmarks of the pagerbridge daemon"
)]
struct Cli {
    /// Worker threads of this process's runtime (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a relay (or the baseline) with concurrent clients posting Events v2 triggers.
    Ingest {
        /// Base URL of the daemon or baseline, http://IP:PORT.
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Length of the measured window.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Sending before the window, not counted.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Distinct dedup keys, cycled over.
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        #[arg(long, default_value = "/v2/enqueue")]
        path: String,
        /// Processes whose CPU use to report over the window (the server), repeatable.
        #[arg(long = "watch-pid")]
        watch_pid: Vec<u32>,
        /// Repeat the measurement.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// The physical limit: a server answering 202 without storing.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Also validate and re-serialise each event, as the relay does before storing.
        #[arg(long)]
        validate: bool,
    },
    /// Idle latency from sending to the relay to the emulator's receipt.
    Latency {
        /// The daemon's base URL.
        #[arg(long)]
        daemon: String,
        /// The emulator's base URL (the daemon must deliver to it).
        #[arg(long)]
        emulator: String,
        #[arg(long, default_value_t = 500)]
        samples: usize,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Drain rate: fill an outbox, start an emulator and a daemon, time until it is empty.
    Drain {
        #[arg(long)]
        pagerbridge: Option<PathBuf>,
        /// Scratch directory (on the disk to measure).
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Let the dispatcher coalesce runs of identical triggers (the product's default).
        #[arg(long)]
        coalesce: bool,
        #[arg(long, default_value_t = 32)]
        max_in_flight: usize,
        /// A PostgreSQL database to use instead of a SQLite file (empty: its tables are created
        /// and filled; it is left as the run ends).
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
    },
    /// Resident memory of the daemon with a deep queue it cannot deliver.
    Memory {
        #[arg(long)]
        pagerbridge: Option<PathBuf>,
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        #[arg(long, default_value_t = 10)]
        settle_secs: u64,
    },
    /// The disk's 4 KiB write + fdatasync latency.
    Fsync {
        #[arg(long, default_value = "target/bench-work")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// The outbox alone, in-process (for the analysis): commit cost by size, and group commit
    /// with N concurrent producers.
    Store {
        #[arg(long, default_value = "target/bench-work/store")]
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,8,16,32,64,128,512")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,8,16,32,64,128")]
        producers: Vec<usize>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1000)]
        keys: usize,
    },
    /// Wall time per `pagerbridge send` call (a Nagios notification), with the daemon down
    /// and while it delivers, and `event trigger` for comparison.
    Send {
        #[arg(long)]
        pagerbridge: Option<PathBuf>,
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
        #[arg(long, default_value_t = 300)]
        calls: usize,
    },
    /// PagerDuty's Webhooks v3 into the daemon: time to verify, store and answer a delivery,
    /// one at a time and with concurrent senders.
    Webhooks {
        #[arg(long)]
        pagerbridge: Option<PathBuf>,
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
        /// Deliveries sent one after another.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Concurrent senders afterwards.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Everything, against the release binaries, with a markdown summary on stdout.
    All(all::Args),
    /// Ingest and drain rates with the SQLite store and with a PostgreSQL one, side by side,
    /// with a markdown summary on stdout.
    Backends(backends::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pagerbridge-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagerbridge-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ingest {
            url,
            clients,
            seconds,
            warmup,
            keys,
            path,
            watch_pid,
            runs,
        } => {
            let opts = load::IngestOptions {
                url,
                path,
                clients,
                seconds,
                warmup,
                keys,
                watch: watch_pid
                    .into_iter()
                    .map(|p| (format!("pid {p}"), p))
                    .collect(),
            };
            for _ in 0..runs.max(1) {
                println!("{}", load::ingest(&opts).await?.line());
            }
        }
        Command::Baseline { listen, validate } => baseline::serve(listen, validate).await?,
        Command::Latency {
            daemon,
            emulator,
            samples,
            interval_ms,
        } => {
            let r = latency::measure(
                &daemon,
                &emulator,
                samples,
                Duration::from_millis(interval_ms),
            )
            .await?;
            println!("{}", r.lines());
        }
        Command::Drain {
            pagerbridge,
            work,
            events,
            keys,
            coalesce,
            max_in_flight,
            store_url,
        } => {
            let pb = pagerbridge.unwrap_or_else(procs::default_pagerbridge);
            std::fs::create_dir_all(&work)?;
            let emu = procs::emulator(&pb, &work).await?;
            let r = drain::run(
                &pb,
                &work.join("drain"),
                &emu.url,
                emu.pid,
                &drain::DrainOptions {
                    events,
                    keys,
                    coalesce,
                    max_in_flight,
                    timeout: Duration::from_secs(900),
                    quiet: None,
                    store_url,
                },
            )
            .await;
            emu.stop(Duration::from_secs(10)).await?;
            println!("{}", r?.line());
        }
        Command::Memory {
            pagerbridge,
            work,
            events,
            keys,
            settle_secs,
        } => {
            let pb = pagerbridge.unwrap_or_else(procs::default_pagerbridge);
            let r = memory::run(
                &pb,
                &work.join("memory"),
                &memory::MemoryOptions {
                    events,
                    keys,
                    settle: Duration::from_secs(settle_secs),
                },
            )
            .await?;
            println!("{}", r.line());
        }
        Command::Send {
            pagerbridge,
            work,
            calls,
        } => {
            let pb = pagerbridge.unwrap_or_else(procs::default_pagerbridge);
            std::fs::create_dir_all(&work)?;
            let work = std::fs::canonicalize(&work)?;
            let emu = procs::emulator(&pb, &work).await?;
            let r = sendcmd::run(&pb, &work, calls, &emu.url).await;
            emu.stop(Duration::from_secs(10)).await?;
            for line in r? {
                println!("{}", line.line());
            }
        }
        Command::Fsync { dir, count } => {
            let r = fsync::measure(&dir, count)?;
            println!(
                "4 KiB write + sync, {count} each: append + fdatasync p50 {} p99 {}; overwrite + fdatasync p50 {} p99 {}; overwrite + fsync p50 {} p99 {}",
                stats::ms(r.append.p50),
                stats::ms(r.append.p99),
                stats::ms(r.overwrite.p50),
                stats::ms(r.overwrite.p99),
                stats::ms(r.overwrite_fsync.p50),
                stats::ms(r.overwrite_fsync.p99)
            );
        }
        Command::Store {
            dir,
            sizes,
            rounds,
            producers,
            seconds,
            keys,
        } => {
            if !sizes.is_empty() {
                println!(
                    "{}",
                    storebench::commit_cost(&dir, &sizes, rounds, keys).await?
                );
            }
            if !producers.is_empty() {
                println!(
                    "{}",
                    storebench::group_commit(&dir, &producers, seconds, keys).await?
                );
            }
        }
        Command::Webhooks {
            pagerbridge,
            work,
            count,
            clients,
            seconds,
        } => {
            let pb = pagerbridge.unwrap_or_else(procs::default_pagerbridge);
            std::fs::create_dir_all(&work)?;
            let work = std::fs::canonicalize(&work)?;
            let r = webhookbench::run(&pb, &work, count, clients, seconds).await?;
            println!("{}", r.lines());
        }
        Command::All(args) => all::run(args).await?,
        Command::Backends(args) => backends::run(args).await?,
    }
    Ok(())
}
