//! Drain rate: an outbox filled beforehand, a daemon started against the emulator with every
//! limit off, and the time until nothing is pending.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::latency::last_seq;
use crate::load::{Conn, addr_of};
use crate::outbox::{Reader, prefill, prefill_postgres};
use crate::procs::{self, DaemonSetup};
use crate::stats::{CpuWatch, SystemCpu, wait_quiet};

#[derive(Debug, Clone)]
pub struct DrainOptions {
    pub events: usize,
    pub keys: usize,
    pub coalesce: bool,
    pub max_in_flight: usize,
    pub timeout: Duration,
    /// After filling, wait until the machine is this % idle (for at most the duration).
    pub quiet: Option<(f64, Duration)>,
    /// A PostgreSQL database (empty) instead of a SQLite file in the directory.
    pub store_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DrainResult {
    pub opts: DrainOptions,
    pub fill: Duration,
    /// From starting the daemon to an empty queue.
    pub seconds: f64,
    /// Final states in the outbox.
    pub states: Vec<(String, u64)>,
    /// Event requests the emulator received.
    pub emulator_received: u64,
    pub cpu_daemon: f64,
    pub cpu_emulator: f64,
    /// Everything else on the machine (this process's polling included), % of one core.
    pub cpu_others: f64,
}

impl DrainResult {
    /// Events that left the queue per second (delivered or coalesced).
    pub fn cleared_rate(&self) -> f64 {
        self.opts.events as f64 / self.seconds
    }

    pub fn count(&self, state: &str) -> u64 {
        self.states
            .iter()
            .find(|(s, _)| s == state)
            .map(|x| x.1)
            .unwrap_or(0)
    }

    /// Deliveries (requests PagerDuty accepted) per second.
    pub fn delivery_rate(&self) -> f64 {
        self.count("delivered") as f64 / self.seconds
    }

    pub fn line(&self) -> String {
        format!(
            "{}{} events over {} keys (coalesce {}): queue empty after {:.2} s: {:.0} deliveries/s, {:.0} events cleared/s; \
             outbox {:?}; emulator received {}; CPU daemon {:.0}%, emulator {:.0}%, others {:.0}%; filling took {:.1} s",
            if self.opts.store_url.is_some() {
                "PostgreSQL: "
            } else {
                "SQLite: "
            },
            self.opts.events,
            self.opts.keys,
            self.opts.coalesce,
            self.seconds,
            self.delivery_rate(),
            self.cleared_rate(),
            self.states,
            self.emulator_received,
            self.cpu_daemon,
            self.cpu_emulator,
            self.cpu_others,
            self.fill.as_secs_f64()
        )
    }
}

/// Runs in `dir` (emptied first) against the emulator at `emulator_url`.
pub async fn run(
    pagerbridge: &Path,
    dir: &Path,
    emulator_url: &str,
    emulator_pid: u32,
    opts: &DrainOptions,
) -> anyhow::Result<DrainResult> {
    let _ = std::fs::remove_dir_all(dir);
    let db = procs::database(dir);
    let fill = match &opts.store_url {
        Some(url) => prefill_postgres(url, opts.events, opts.keys, 10_000).await?,
        None => prefill(&db, opts.events, opts.keys, 10_000).await?,
    };
    let mut emu = Conn::open(addr_of(emulator_url)?).await?;
    let seq_before = last_seq(&mut emu, 0).await?;
    let reader = match &opts.store_url {
        Some(url) => Reader::open_postgres(url).await?,
        None => Reader::open(&db).await?,
    };
    if let Some((min_idle, max_wait)) = opts.quiet {
        let idle = wait_quiet(min_idle, max_wait).await;
        eprintln!("[bench] drain: machine {idle:.0}% idle before");
    }
    let start = Instant::now();
    let cpu_emu = CpuWatch::start(emulator_pid);
    let system = SystemCpu::start();
    let daemon = procs::daemon(
        pagerbridge,
        dir,
        &DaemonSetup {
            pagerduty_url: emulator_url.to_owned(),
            coalesce: opts.coalesce,
            max_in_flight: opts.max_in_flight,
            store_url: opts.store_url.clone(),
        },
    )
    .await?;
    let cpu_daemon = CpuWatch::start(daemon.pid);
    loop {
        if reader.pending().await? == 0 {
            break;
        }
        if start.elapsed() > opts.timeout {
            let left = reader.pending().await?;
            daemon.stop(Duration::from_secs(20)).await?;
            bail!("{left} events still pending after {:?}", opts.timeout);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (cpu_daemon, cpu_emulator) = (
        cpu_daemon.percent().unwrap_or(0.0),
        cpu_emu.percent().unwrap_or(0.0),
    );
    let cpu_others = (system.busy_percent().unwrap_or(0.0) - cpu_daemon - cpu_emulator).max(0.0);
    daemon.stop(Duration::from_secs(20)).await?;
    let states = reader.states().await?;
    reader.close().await;
    let seq_after = last_seq(&mut emu, seq_before).await?;
    Ok(DrainResult {
        opts: opts.clone(),
        fill,
        seconds,
        states,
        emulator_received: seq_after - seq_before,
        cpu_daemon,
        cpu_emulator,
        cpu_others,
    })
}
