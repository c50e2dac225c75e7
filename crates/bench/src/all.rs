//! The whole set, in a fixed order, against `target/release/pagerbridge`; progress on stderr,
//! a markdown summary on stdout. Builds nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::drain::{self, DrainOptions, DrainResult};
use crate::fsync::{self, FsyncResult};
use crate::latency::{self, LatencyResult};
use crate::load::{self, IngestOptions, IngestResult};
use crate::memory::{self, MemoryOptions, MemoryResult};
use crate::outbox::Reader;
use crate::procs::{self, DaemonSetup, Server};
use crate::sendcmd;
use crate::stats::{ms, wait_quiet};

#[derive(clap::Args)]
pub struct Args {
    /// The pagerbridge binary (default: next to this one).
    #[arg(long)]
    pagerbridge: Option<PathBuf>,
    /// Scratch directory for data directories and logs; on the disk to measure (not tmpfs).
    #[arg(long, default_value = "target/bench-work")]
    work: PathBuf,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured seconds per ingest run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs per ingest configuration (best and median are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    #[arg(long, default_value_t = 500)]
    latency_samples: usize,
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    #[arg(long, default_value_t = 100_000)]
    drain_events: usize,
    #[arg(long, default_value_t = 10_000)]
    drain_keys: usize,
    #[arg(long, default_value_t = 1_000_000)]
    memory_events: usize,
    #[arg(long, default_value_t = 10_000)]
    memory_keys: usize,
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Before each measurement, wait until the machine is this % idle over 3 s (it is shared
    /// with other people's builds and tests)...
    #[arg(long, default_value_t = 80.0)]
    min_idle: f64,
    /// ...but no longer than this.
    #[arg(long, default_value_t = 300)]
    max_wait_secs: u64,
    /// Calls of `pagerbridge send` (and of `event trigger`) per case.
    #[arg(long, default_value_t = 300)]
    send_calls: usize,
    /// Parts to leave out: fsync, ingest, latency, drain, memory, send (repeatable or
    /// comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

const GRACE: Duration = Duration::from_secs(20);

/// Waiting for the shared machine to calm down before a measurement.
#[derive(Clone, Copy)]
struct Quiet {
    min_idle: f64,
    max_wait: Duration,
}

impl Quiet {
    async fn wait(&self, what: &str) {
        let idle = wait_quiet(self.min_idle, self.max_wait).await;
        note(&format!("{what}: machine {idle:.0}% idle before"));
    }
}

fn note(s: &str) {
    eprintln!("[bench] {s}");
}

/// Best and median of several runs, by events/s; the median run carries latency and CPU.
struct Series {
    name: String,
    runs: Vec<IngestResult>,
}

impl Series {
    fn sorted(&self) -> Vec<&IngestResult> {
        let mut v: Vec<&IngestResult> = self.runs.iter().collect();
        v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        v
    }
    fn best(&self) -> f64 {
        self.sorted().last().map(|r| r.rate()).unwrap_or(0.0)
    }
    fn median_run(&self) -> &IngestResult {
        let v = self.sorted();
        v[(v.len() - 1) / 2]
    }
}

async fn ingest_series(
    name: &str,
    opts: &IngestOptions,
    runs: usize,
    watch: Vec<(String, u32)>,
    quiet: Quiet,
) -> anyhow::Result<Series> {
    let mut out = Vec::new();
    for i in 0..runs.max(1) {
        quiet.wait(&format!("{name} run {}", i + 1)).await;
        let mut o = opts.clone();
        o.watch = watch.clone();
        let r = load::ingest(&o).await?;
        note(&format!("{name} run {}: {}", i + 1, r.line()));
        out.push(r);
    }
    Ok(Series {
        name: name.to_owned(),
        runs: out,
    })
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
    let quiet = Quiet {
        min_idle: a.min_idle,
        max_wait: Duration::from_secs(a.max_wait_secs),
    };
    let mut report = String::new();
    let _ = writeln!(
        report,
        "date {}; {} cores; load average before: {}; pagerbridge {} (tree {})",
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        pb.display(),
        std::process::Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    );

    let mut fsync_r: Option<FsyncResult> = None;
    if !skip("fsync") {
        quiet.wait("fsync").await;
        note("fsync: 200 x (4 KiB write + sync), three ways");
        fsync_r = Some(fsync::measure(&work, 200)?);
    }

    let opts = IngestOptions {
        url: String::new(),
        path: "/v2/enqueue".into(),
        clients: a.clients,
        seconds: a.seconds,
        warmup: a.warmup,
        keys: a.keys,
        watch: Vec::new(),
    };
    let mut series: Vec<Series> = Vec::new();
    let mut stored_check = String::new();
    if !skip("ingest") {
        for validate in [false, true] {
            let b = procs::baseline(&work, validate).await?;
            let o = IngestOptions {
                url: b.url.clone(),
                ..opts.clone()
            };
            let (name, pid) = (b.name.clone(), b.pid);
            let s =
                ingest_series(&name, &o, a.runs, vec![("server".to_owned(), pid)], quiet).await?;
            b.stop(GRACE).await?;
            series.push(s);
        }

        // The daemon with PagerDuty unreachable: ingest alone (the dispatcher's circuit opens
        // after a few refused connections and it stays idle).
        let nowhere = format!("http://{}", procs::closed_port()?);
        let s = daemon_series(
            &pb,
            &work,
            "daemon (ingest only)",
            &opts,
            a.runs,
            &nowhere,
            None,
            &mut stored_check,
            quiet,
        )
        .await?;
        series.push(s);

        // The daemon delivering to the emulator while it ingests: the whole product busy.
        let emu = procs::emulator(&pb, &work).await?;
        let s = daemon_series(
            &pb,
            &work,
            "daemon + delivery to emulator",
            &opts,
            a.runs,
            &emu.url.clone(),
            Some(emu.pid),
            &mut stored_check,
            quiet,
        )
        .await;
        emu.stop(GRACE).await?;
        series.push(s?);
    }

    let mut lat: Option<LatencyResult> = None;
    if !skip("latency") {
        note("latency: fresh emulator and daemon");
        let emu = procs::emulator(&pb, &work).await?;
        let dir = work.join("latency");
        let _ = std::fs::remove_dir_all(&dir);
        let d = procs::daemon(
            &pb,
            &dir,
            &DaemonSetup {
                pagerduty_url: emu.url.clone(),
                coalesce: true,
                max_in_flight: 32,
                store_url: None,
            },
        )
        .await?;
        quiet.wait("latency").await;
        let r = latency::measure(
            &d.url,
            &emu.url,
            a.latency_samples,
            Duration::from_millis(a.interval_ms),
        )
        .await;
        d.stop(GRACE).await?;
        emu.stop(GRACE).await?;
        let r = r?;
        note(&r.lines());
        lat = Some(r);
    }

    let mut drains: Vec<DrainResult> = Vec::new();
    if !skip("drain") {
        for coalesce in [false, true] {
            note(&format!(
                "drain: {} events over {} keys, coalesce {coalesce}",
                a.drain_events, a.drain_keys
            ));
            let emu = procs::emulator(&pb, &work).await?;
            let r = drain::run(
                &pb,
                &work.join("drain"),
                &emu.url,
                emu.pid,
                &DrainOptions {
                    events: a.drain_events,
                    keys: a.drain_keys,
                    coalesce,
                    max_in_flight: 32,
                    timeout: Duration::from_secs(900),
                    quiet: Some((quiet.min_idle, quiet.max_wait)),
                    store_url: None,
                },
            )
            .await;
            emu.stop(GRACE).await?;
            let r = r?;
            note(&r.line());
            drains.push(r);
        }
    }

    let mut mems: Vec<MemoryResult> = Vec::new();
    if !skip("memory") {
        for events in [0, a.memory_events] {
            note(&format!(
                "memory: {events} events queued, PagerDuty unreachable"
            ));
            quiet.wait("memory").await;
            let r = memory::run(
                &pb,
                &work.join("memory"),
                &MemoryOptions {
                    events,
                    keys: a.memory_keys,
                    settle: Duration::from_secs(a.settle_secs),
                },
            )
            .await?;
            note(&r.line());
            mems.push(r);
        }
        let _ = std::fs::remove_dir_all(work.join("memory"));
    }

    let mut sends = Vec::new();
    if !skip("send") {
        note(&format!("send: {} calls per case", a.send_calls));
        let emu = procs::emulator(&pb, &work).await?;
        quiet.wait("send").await;
        let r = sendcmd::run(&pb, &work, a.send_calls, &emu.url).await;
        emu.stop(GRACE).await?;
        sends = r?;
    }

    print!(
        "{}",
        markdown(
            &report,
            &a,
            fsync_r,
            &series,
            &stored_check,
            lat.as_ref(),
            &drains,
            &mems
        )
    );
    if !sends.is_empty() {
        println!(
            "\n`pagerbridge send` per call (a Nagios service notification, 19 flags, 3 rules), wall time from spawn to exit:\n"
        );
        println!("| case | calls | median | p90 | p99 | max |\n|---|---|---|---|---|---|");
        for r in &sends {
            let l = &r.latency;
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.name,
                l.count,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            );
        }
    }
    Ok(())
}

/// Runs of the daemon, each on a fresh data directory, delivering to `pagerduty_url`.
#[allow(clippy::too_many_arguments)]
async fn daemon_series(
    pb: &Path,
    work: &Path,
    name: &str,
    opts: &IngestOptions,
    runs: usize,
    pagerduty_url: &str,
    emulator_pid: Option<u32>,
    checks: &mut String,
    quiet: Quiet,
) -> anyhow::Result<Series> {
    let mut out = Vec::new();
    for i in 0..runs.max(1) {
        quiet.wait(&format!("{name} run {}", i + 1)).await;
        let dir = work.join("ingest");
        let _ = std::fs::remove_dir_all(&dir);
        let d: Server = procs::daemon(
            pb,
            &dir,
            &DaemonSetup {
                pagerduty_url: pagerduty_url.to_owned(),
                coalesce: true,
                max_in_flight: 32,
                store_url: None,
            },
        )
        .await?;
        let mut o = opts.clone();
        o.url = d.url.clone();
        o.watch = vec![("daemon".to_owned(), d.pid)];
        if let Some(p) = emulator_pid {
            o.watch.push(("emulator".to_owned(), p));
        }
        let r = load::ingest(&o).await;
        d.stop(GRACE).await?;
        let r = r?;
        // Every answered event must be in the outbox.
        let reader = Reader::open(&procs::database(&dir))
            .await
            .context("reading the outbox after the run")?;
        let states = reader.states().await?;
        reader.close().await;
        let stored: u64 = states.iter().map(|x| x.1).sum();
        let _ = writeln!(
            checks,
            "{name} run {}: {} answered 2xx in the window, {stored} in the outbox after the run (window + warm-up + tail) {states:?}",
            i + 1,
            r.ok
        );
        if stored < r.ok {
            bail!("{name}: {} events answered but only {stored} stored", r.ok);
        }
        note(&format!("{name} run {}: {}", i + 1, r.line()));
        out.push(r);
    }
    let _ = std::fs::remove_dir_all(work.join("ingest"));
    Ok(Series {
        name: name.to_owned(),
        runs: out,
    })
}

#[allow(clippy::too_many_arguments)]
fn markdown(
    head: &str,
    a: &Args,
    fsync_r: Option<FsyncResult>,
    series: &[Series],
    checks: &str,
    lat: Option<&LatencyResult>,
    drains: &[DrainResult],
    mems: &[MemoryResult],
) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "\n## Results\n\n{head}\n");
    if let Some(f) = fsync_r {
        let _ = writeln!(
            m,
            "### Disk: 4 KiB write + sync (200 each)\n\n| kind | p50 | p90 | p99 | max |\n|---|---|---|---|---|"
        );
        for (k, l) in [
            ("append + fdatasync", f.append),
            ("overwrite + fdatasync", f.overwrite),
            ("overwrite + fsync", f.overwrite_fsync),
        ] {
            let _ = writeln!(
                m,
                "| {k} | {} | {} | {} | {} |",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            );
        }
        m.push('\n');
    }
    if !series.is_empty() {
        let _ = writeln!(
            m,
            "### Ingest: {} clients, {} s measured (+{} s warm-up), {} runs, {} dedup keys\n\n\
             | server | best events/s | median events/s | ratio to baseline (median) | p50 | p99 | CPU server | CPU emulator | CPU generator | CPU others |\n\
             |---|---|---|---|---|---|---|---|---|---|",
            a.clients, a.seconds, a.warmup, a.runs, a.keys
        );
        let base = series[0].median_run().rate();
        for s in series {
            let r = s.median_run();
            let cpu = |n: &str| {
                r.cpu
                    .iter()
                    .find(|(x, _)| x == n)
                    .map(|(_, p)| format!("{p:.0}%"))
                    .unwrap_or_else(|| "-".into())
            };
            let server = if s.name.starts_with("daemon") {
                cpu("daemon")
            } else {
                cpu("server")
            };
            let _ = writeln!(
                m,
                "| {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.best(),
                r.rate(),
                r.rate() / base,
                ms(r.latency.p50),
                ms(r.latency.p99),
                server,
                cpu("emulator"),
                cpu("generator"),
                cpu("others")
            );
        }
        let errors: u64 = series
            .iter()
            .flat_map(|s| &s.runs)
            .map(|r| r.non_2xx + r.transport_errors)
            .sum();
        let _ = writeln!(
            m,
            "\nnon-2xx answers and transport errors, all runs: {errors}\n"
        );
        if !checks.is_empty() {
            let _ = writeln!(m, "```\n{checks}```\n");
        }
    }
    if let Some(l) = lat {
        let _ = writeln!(
            m,
            "### Idle latency: {} samples, one every {} ms\n\n| from send to | p50 | p90 | p99 | max |\n|---|---|---|---|---|",
            a.latency_samples, a.interval_ms
        );
        for (k, x) in [
            ("the relay's 2xx (stored)", l.relay),
            ("the emulator's receipt", l.end_to_end),
        ] {
            let _ = writeln!(
                m,
                "| {k} | {} | {} | {} | {} |",
                ms(x.p50),
                ms(x.p90),
                ms(x.p99),
                ms(x.max)
            );
        }
        let _ = writeln!(
            m,
            "\nsamples lost: {}; machine CPU while sampling: {:.0}% of one core\n",
            l.missing, l.cpu_machine
        );
    }
    if !drains.is_empty() {
        let _ = writeln!(
            m,
            "### Drain to the emulator, limits off\n\n| queued | keys | coalesce | seconds | deliveries/s | events cleared/s | delivered | coalesced | emulator received | CPU daemon | CPU emulator | CPU others |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for d in drains {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {:.0}% | {:.0}% | {:.0}% |",
                d.opts.events,
                d.opts.keys,
                d.opts.coalesce,
                d.seconds,
                d.delivery_rate(),
                d.cleared_rate(),
                d.count("delivered"),
                d.count("coalesced"),
                d.emulator_received,
                d.cpu_daemon,
                d.cpu_emulator,
                d.cpu_others
            );
        }
        m.push('\n');
    }
    if !mems.is_empty() {
        let _ = writeln!(
            m,
            "### Resident memory, PagerDuty unreachable, after {} s\n\n| queued | database | fill time | VmRSS at start | VmRSS after | max sampled | VmHWM | pending before / after |\n|---|---|---|---|---|---|---|---|",
            a.settle_secs
        );
        for r in mems {
            let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
            let _ = writeln!(
                m,
                "| {} | {:.0} MiB | {:.1} s | {} | {} | {} | {} | {} / {} |",
                r.opts.events,
                r.database_bytes as f64 / 1048576.0,
                r.fill.as_secs_f64(),
                mib(r.rss_start),
                mib(r.rss_end),
                mib(r.rss_max_sampled),
                mib(r.hwm),
                r.pending_before,
                r.pending_after
            );
        }
        let _ = r_goal(&mut m, mems);
    }
    m
}

fn r_goal(m: &mut String, mems: &[MemoryResult]) -> std::fmt::Result {
    if let Some(r) = mems.last() {
        writeln!(
            m,
            "\nVmHWM with {} queued: {:.1} MiB (goal: under 100 MB)",
            r.opts.events,
            r.hwm_mib()
        )?;
    }
    Ok(())
}
