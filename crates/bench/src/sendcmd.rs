//! `pagerbridge send` per call, as a monitor runs it: one process per notification, the
//! Nagios snippet's full set of flags, a configuration with rules, wall time from spawn to exit.
//! `pagerbridge event trigger` is measured beside it for comparison.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::outbox::Reader;
use crate::procs::{self, DaemonSetup};
use crate::stats::{Latency, ms};

/// Calls before the measured ones (page cache, the database's first creation).
const WARMUP: usize = 10;
/// Distinct services notified, cycled over.
const SERVICES: usize = 50;
const ROUTING_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

pub struct SendResult {
    pub name: String,
    pub latency: Latency,
}

impl SendResult {
    pub fn line(&self) -> String {
        let l = &self.latency;
        format!(
            "{}: {} calls, median {}, p90 {}, p99 {}, max {}",
            self.name,
            l.count,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max)
        )
    }
}

/// Rules of the kind an operator writes: a team by host name, a severity override, a drop.
const RULES: &str = r#"
[routing]
default_routing_key = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

[[rules]]
name = "databases"
routing_key = "0123456789abcdef0123456789abcdef"
match = { field = "host", glob = "db*" }

[[rules]]
name = "disks-are-urgent"
severity = "critical"
summary = "[{{ host }}] {{ summary }}"
match = { all = [{ field = "service", regex = "^Disk" }, { field = "status", one_of = ["CRITICAL", "WARNING"] }] }

[[rules]]
name = "no-test-hosts"
drop = true
match = { field = "host", glob = "test-*" }
"#;

/// The arguments of one Nagios service notification, as `docs/integrations/snippets/nagios.conf`
/// passes them.
fn nagios_args(config: &str, i: usize) -> Vec<String> {
    let problem = (i / SERVICES).is_multiple_of(2);
    let (kind, state) = if problem {
        ("PROBLEM", "CRITICAL")
    } else {
        ("RECOVERY", "OK")
    };
    let host = format!("web{}", i % SERVICES);
    let flags: [(&str, String); 19] = [
        ("--config", config.to_owned()),
        ("--source", "nagios".into()),
        ("--type", kind.into()),
        ("--host", host),
        ("--host-address", "10.0.0.5".into()),
        ("--service", "Disk /".into()),
        ("--state", state.into()),
        (
            "--output",
            format!("DISK {state} - free space: / 100 MB (5% inode=80%)"),
        ),
        ("--long-output", String::new()),
        ("--perfdata", "/=900MB;800;900;0;1000".into()),
        ("--author", String::new()),
        ("--comment", String::new()),
        ("--problem-id", (i / SERVICES + 1).to_string()),
        ("--last-problem-id", (i / SERVICES).to_string()),
        ("--routing-key", ROUTING_KEY.into()),
        ("--macro", "HOSTALIAS=Web server".into()),
        ("--macro", "HOSTSTATE=UP".into()),
        ("--macro", "SERVICEDISPLAYNAME=Root disk".into()),
        ("--macro", "TIMET=1795248861".into()),
    ];
    let mut args = vec!["send".to_owned()];
    for (f, v) in flags {
        args.push(f.to_owned());
        args.push(v);
    }
    args
}

fn event_args(config: &str, i: usize) -> Vec<String> {
    [
        "event",
        "trigger",
        "--config",
        config,
        "--routing-key",
        ROUTING_KEY,
        "--summary",
        "Disk / CRITICAL - free space: / 100 MB",
        "--source",
        "web1",
        "--severity",
        "critical",
        "--dedup-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("web{}/Disk /", i % SERVICES)])
    .collect()
}

/// Times `calls` sequential runs of `pagerbridge ARGS`, after a warm-up; every call must exit 0.
fn time_calls(
    pb: &Path,
    calls: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<u64>> {
    let mut micros = Vec::with_capacity(calls);
    for i in 0..WARMUP + calls {
        let a = args(i);
        let started = Instant::now();
        let out = Command::new(pb)
            .args(&a)
            .env("PAGERBRIDGE_LOG", "warn")
            .output()
            .with_context(|| format!("running {}", pb.display()))?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "pagerbridge {} exited {}: {}",
                a.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if i >= WARMUP {
            micros.push(took.as_micros() as u64);
        }
    }
    Ok(micros)
}

/// Checks that every call's event is in the outbox.
async fn check_stored(db: &Path, at_least: u64) -> anyhow::Result<()> {
    let reader = Reader::open(db).await?;
    let stored: u64 = reader.states().await?.iter().map(|s| s.1).sum();
    reader.close().await;
    if stored < at_least {
        bail!("{at_least} calls succeeded but {stored} events are in the outbox");
    }
    Ok(())
}

async fn case(
    pb: &Path,
    dir: &Path,
    name: &str,
    calls: usize,
    args: fn(&str, usize) -> Vec<String>,
) -> anyhow::Result<SendResult> {
    let config = dir.join("pagerbridge.toml");
    let c = config.to_str().context("non-UTF-8 path")?.to_owned();
    let pb2: PathBuf = pb.to_owned();
    let micros =
        tokio::task::spawn_blocking(move || time_calls(&pb2, calls, |i| args(&c, i))).await??;
    check_stored(&procs::database(dir), calls as u64).await?;
    Ok(SendResult {
        name: name.to_owned(),
        latency: Latency::of(micros),
    })
}

/// `send` with the daemon down, `send` while the daemon runs and delivers to `emulator`, and
/// `event trigger` with the daemon down.
pub async fn run(
    pb: &Path,
    work: &Path,
    calls: usize,
    emulator: &str,
) -> anyhow::Result<Vec<SendResult>> {
    let mut out = Vec::new();
    let fresh = |name: &str, url: &str| -> anyhow::Result<PathBuf> {
        let dir = work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let setup = DaemonSetup {
            pagerduty_url: url.to_owned(),
            coalesce: true,
            max_in_flight: 32,
            store_url: None,
        };
        let config = procs::write_config(&dir, &setup)?;
        let mut text = std::fs::read_to_string(&config)?;
        text.push_str(RULES);
        std::fs::write(&config, text)?;
        Ok(dir)
    };

    let dir = fresh("send-down", emulator)?;
    out.push(case(pb, &dir, "send, daemon down", calls, nagios_args).await?);

    let dir = fresh("send-up", emulator)?;
    let setup = DaemonSetup {
        pagerduty_url: emulator.to_owned(),
        coalesce: true,
        max_in_flight: 32,
        store_url: None,
    };
    // `procs::daemon` rewrites the configuration: add the rules back before the calls.
    let daemon = procs::daemon(pb, &dir, &setup).await?;
    let config = dir.join("pagerbridge.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(RULES);
    std::fs::write(&config, text)?;
    let r = case(pb, &dir, "send, daemon delivering", calls, nagios_args).await;
    daemon.stop(std::time::Duration::from_secs(20)).await?;
    out.push(r?);

    let dir = fresh("event-down", emulator)?;
    out.push(case(pb, &dir, "event trigger, daemon down", calls, event_args).await?);
    for name in ["send-down", "send-up", "event-down"] {
        let _ = std::fs::remove_dir_all(work.join(name));
    }
    Ok(out)
}
