//! Shared by the end-to-end tests that run real monitors (Prometheus Alertmanager, Icinga 2,
//! Nagios 4) from Debian's packages on 127.0.0.1 together with the pagerbridge binary and an
//! in-process PagerDuty emulator.
//!
//! These tests need root and the packages. Where they cannot have them (not root, no network
//! for apt, the monitor does not start), they print `SKIPPED: <why>` to stderr and pass, so
//! that the rest of the suite still runs on a developer's machine.
//!
//! Starting the monitors themselves is `pagerbridge_testkit::monitors`' job, shared with the
//! write-back tests; this adds the daemon, the emulator and the docs' snippets.
//! [`way_back`] holds what the write-back tests (`real_writeback_*.rs`) share.

#![allow(dead_code)]

pub mod nagios_family;
pub mod way_back;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Not every test uses every one.
use pagerbridge_testkit::TestPd;
#[allow(unused_imports)]
pub use pagerbridge_testkit::debian::{
    ensure_installed, installed_or_skip, require_root, skipped, tail, which,
};
#[allow(unused_imports)]
pub use pagerbridge_testkit::monitors::{
    MONITOR_USER, Proc, WAIT, as_user, chown_to_monitor_user, file_tail, free_port, http,
    monitor_dir, run_ok, wait_for, wait_ready, wait_until,
};
use pagerduty::rest::IncidentStatus;

pub const BIN: &str = env!("CARGO_BIN_EXE_pagerbridge");

/// The binary under test, or a copy of it in `dir` when the monitor's user cannot run it
/// where cargo built it (a target directory under a private home, say).
pub fn binary_for_monitor_user(dir: &Path) -> PathBuf {
    let runs = Command::new("setpriv")
        .args(as_user(MONITOR_USER))
        .args([BIN, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return PathBuf::from(BIN);
    }
    let copy = dir.join("bin/pagerbridge");
    std::fs::create_dir_all(copy.parent().unwrap()).expect("bin directory");
    std::fs::copy(BIN, &copy).expect("copy the binary");
    chown_to_monitor_user(&copy);
    copy
}

/// The daemon's configuration with everything a test needs and nothing a test checks:
/// listening on a free loopback port, delivering to the emulator with short retry delays and
/// no rate limit of its own; `coalesce = false` so every notification of the monitor reaches
/// the emulator as its own event (the tests count them).
pub fn bridge_config(pd_url: &str) -> String {
    bridge_config_on(pd_url, 0)
}

/// [`bridge_config`] listening on `port` of 127.0.0.1 (0: a free one the daemon picks), for a
/// test that must know the daemon's URL before it starts (a webhook subscription to it).
pub fn bridge_config_on(pd_url: &str, port: u16) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
data_dir = "data"

[pagerduty]
events_url = "{pd_url}"
rest_url = "{pd_url}"
proxy = "none"
timeout = "5s"
connect_timeout = "2s"

[outbox]
coalesce = false

[outbox.rate_limit]
events_per_minute = 0

[outbox.retry]
initial_delay = "100ms"
max_delay = "1s"

[outbox.circuit]
failures = 5
cooldown = "200ms"
max_cooldown = "1s"
"#
    )
}

/// `pagerbridge serve` as a child process.
pub struct Bridge {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub config: PathBuf,
}

impl Bridge {
    /// Writes `config` to `dir/pagerbridge.toml`, starts the daemon on it (as `user` when
    /// given) and waits until it says where it listens.
    pub async fn start(
        dir: &Path,
        config: &str,
        user: Option<&str>,
        env: &[(&str, &str)],
    ) -> Bridge {
        let path = dir.join("pagerbridge.toml");
        std::fs::write(&path, config).expect("write the daemon's configuration");
        let mut cmd = match user {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.args(as_user(user)).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .env("PAGERBRIDGE_LOG", "info")
            .envs(env.iter().copied());
        let proc = Proc::spawn("pagerbridge serve", cmd, &dir.join("pagerbridge.log"))
            .expect("the daemon starts");
        let deadline = Instant::now() + WAIT;
        let url = loop {
            let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
            if let Some(url) = log.lines().find_map(|l| {
                l.strip_prefix("pagerbridge listening on ")
                    .map(|u| u.trim().to_owned())
            }) {
                break url;
            }
            if let Err(e) = proc.alive() {
                panic!("the daemon did not start: {e}\n{}", proc.log_tail(30));
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not say where it listens within {WAIT:?}\n{}",
                proc.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Bridge {
            proc,
            url,
            config: path,
        }
    }
}

/// A file of `docs/integrations/snippets/`, which the docs show and the tests run.
pub fn snippet(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/integrations/snippets")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the snippet {}: {e}", path.display()))
}

/// Replaces every `from` in a snippet by `to`; a snippet that no longer contains `from` fails
/// the test, as the test would otherwise run something other than what it claims to.
pub fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the snippet no longer contains {from:?}: update the test to the snippet\n{text}"
    );
    text.replace(from, to)
}

/// One incident of the emulator, reduced to what the tests check.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub key: String,
    pub status: IncidentStatus,
    pub title: String,
}

pub fn incidents(pd: &TestPd) -> Vec<Incident> {
    pd.world()
        .incidents
        .iter()
        .map(|i| Incident {
            key: i.incident_key.clone(),
            status: i.status,
            title: i.title.clone(),
        })
        .collect()
}

pub fn incidents_with_key(pd: &TestPd, key: &str) -> Vec<Incident> {
    incidents(pd).into_iter().filter(|i| i.key == key).collect()
}

/// The `event_action` of every event the emulator accepted for `key`, in order.
pub fn actions_for(pd: &TestPd, key: &str) -> Vec<String> {
    pd.world()
        .received
        .iter()
        .filter(|r| r.status == 202 && r.dedup_key.as_deref() == Some(key))
        .map(|r| r.body["event_action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// What the emulator has seen, for failure messages.
pub fn emulator_report(pd: &TestPd) -> String {
    let w = pd.world();
    let mut out = String::from("--- emulator incidents:\n");
    for i in &w.incidents {
        let _ = writeln!(
            out,
            "#{} {:?} key={:?} title={:?}",
            i.number, i.status, i.incident_key, i.title
        );
    }
    out.push_str("--- emulator events received:\n");
    for r in &w.received {
        let _ = writeln!(
            out,
            "{} {} {} key={:?} action={} errors={:?}",
            r.received_at, r.api, r.status, r.dedup_key, r.body["event_action"], r.errors
        );
    }
    out
}
