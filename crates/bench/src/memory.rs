//! Resident memory of the daemon with a deep queue: an outbox filled beforehand, a daemon
//! whose PagerDuty is unreachable (a closed port), so nothing drains while it runs its claim
//! loop, and its `VmRSS` / `VmHWM` from `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::outbox::{Reader, database_bytes, prefill};
use crate::procs::{self, DaemonSetup};
use crate::stats::{CpuWatch, memory_kib};

#[derive(Debug, Clone)]
pub struct MemoryOptions {
    pub events: usize,
    pub keys: usize,
    pub settle: Duration,
}

#[derive(Debug, Clone)]
pub struct MemoryResult {
    pub opts: MemoryOptions,
    pub fill: Duration,
    pub database_bytes: u64,
    /// KiB, just after the daemon printed its banner.
    pub rss_start: u64,
    /// KiB, after `settle`.
    pub rss_end: u64,
    /// KiB, the largest sampled (once a second) and the kernel's high-water mark.
    pub rss_max_sampled: u64,
    pub hwm: u64,
    pub pending_before: u64,
    pub pending_after: u64,
    pub cpu_daemon: f64,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl MemoryResult {
    pub fn line(&self) -> String {
        format!(
            "{} events queued over {} keys (database {:.0} MiB, filled in {:.1} s): VmRSS {} at start, {} after {:?}, VmHWM {}; \
             pending {} -> {}; daemon CPU {:.0}%",
            self.opts.events,
            self.opts.keys,
            self.database_bytes as f64 / 1048576.0,
            self.fill.as_secs_f64(),
            mib(self.rss_start),
            mib(self.rss_end),
            self.opts.settle,
            mib(self.hwm),
            self.pending_before,
            self.pending_after,
            self.cpu_daemon
        )
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm as f64 / 1024.0
    }
}

/// Runs in `dir` (emptied first). With `events == 0`, measures the daemon with an empty queue.
pub async fn run(
    pagerbridge: &Path,
    dir: &Path,
    opts: &MemoryOptions,
) -> anyhow::Result<MemoryResult> {
    let _ = std::fs::remove_dir_all(dir);
    let db = procs::database(dir);
    let fill = prefill(&db, opts.events, opts.keys, 10_000).await?;
    let database_bytes = database_bytes(&db);
    let reader = Reader::open(&db).await?;
    let pending_before = reader.pending().await?;
    let nowhere = procs::closed_port()?;
    let daemon = procs::daemon(
        pagerbridge,
        dir,
        &DaemonSetup {
            pagerduty_url: format!("http://{nowhere}"),
            // Off, so that the queue keeps its depth: with it on, every claim of a lane of
            // identical triggers collapses them (even while PagerDuty is unreachable).
            coalesce: false,
            max_in_flight: 32,
            store_url: None,
        },
    )
    .await?;
    let cpu = CpuWatch::start(daemon.pid);
    let (rss_start, _) = memory_kib(daemon.pid).unwrap_or_default();
    let mut rss_max_sampled = rss_start;
    let until = Instant::now() + opts.settle;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some((rss, _)) = memory_kib(daemon.pid) {
            rss_max_sampled = rss_max_sampled.max(rss);
        }
    }
    let (rss_end, hwm) = memory_kib(daemon.pid).unwrap_or_default();
    let cpu_daemon = cpu.percent().unwrap_or(0.0);
    let pending_after = reader.pending().await?;
    reader.close().await;
    daemon.stop(Duration::from_secs(20)).await?;
    Ok(MemoryResult {
        opts: opts.clone(),
        fill,
        database_bytes,
        rss_start,
        rss_end,
        rss_max_sampled,
        hwm,
        pending_before,
        pending_after,
        cpu_daemon,
    })
}
