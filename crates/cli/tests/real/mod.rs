//! Shared by the end-to-end tests that run real monitors (Prometheus Alertmanager, Icinga 2,
//! Nagios 4) from Debian's packages on 127.0.0.1 together with the pagerbridge binary and an
//! in-process PagerDuty emulator.
//!
//! These tests need root and the packages. Where they cannot have them (not root, no network
//! for apt, the monitor does not start), they print `SKIPPED: <why>` to stderr and pass, so
//! that the rest of the suite still runs on a developer's machine.
//!
//! Every process is started in a process group of its own and the whole group is killed when
//! its guard drops (panics included), so that neither the monitor nor the notification
//! commands it spawned outlive the test.

#![allow(dead_code)]

pub mod nagios_family;

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// Not every test uses every one.
use pagerbridge_testkit::TestPd;
#[allow(unused_imports)]
pub use pagerbridge_testkit::debian::{
    ensure_installed, installed_or_skip, require_root, skipped, tail, which,
};
use pagerduty::rest::IncidentStatus;

pub const BIN: &str = env!("CARGO_BIN_EXE_pagerbridge");

/// The longest any single wait may take: monitors react in seconds, so a minute means broken.
pub const WAIT: Duration = Duration::from_secs(60);

/// The user Debian's Icinga 2 and Nagios run their notification commands as.
pub const MONITOR_USER: &str = "nagios";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A temporary directory the monitor's user can read and write: Icinga 2 and Nagios drop to
/// it, and so do the notification commands and the daemon sharing its database with them.
pub fn monitor_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pagerbridge-e2e-")
        .tempdir()
        .expect("a temporary directory");
    chown_to_monitor_user(dir.path());
    dir
}

pub fn chown_to_monitor_user(path: &Path) {
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{MONITOR_USER}:{MONITOR_USER}"))
            .arg(path),
    );
}

/// Runs a short command that must succeed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

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

/// `setpriv` arguments that run the rest of the command line as `user`.
pub fn as_user(user: &str) -> [String; 4] {
    [
        format!("--reuid={user}"),
        format!("--regid={user}"),
        "--init-groups".into(),
        "--".into(),
    ]
}

pub fn file_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), n),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A child process in a process group of its own, with its output in a log file; the group is
/// killed on drop.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    // Behind a lock so that checking on it does not need `&mut`, which failure reports
    // borrowing the guard would prevent.
    child: Mutex<Option<Child>>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> std::io::Result<Proc> {
        let out = File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()?;
        Ok(Proc {
            name: name.into(),
            log: log.to_owned(),
            child: Mutex::new(Some(child)),
        })
    }

    /// Err with how it ended, when it has.
    pub fn alive(&self) -> Result<(), String> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = child.as_mut() else {
            return Err(format!("{} was stopped", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited ({status})", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- {} ({}), last {n} lines:\n{}",
            self.name,
            self.log.display(),
            file_tail(&self.log, n)
        )
    }

    /// Stops the whole process group: SIGTERM to the leader first, so that a monitor stops and
    /// reaps its own workers, then SIGKILL to the group for whatever is left.
    pub fn stop(&self) {
        let taken = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut child) = taken else {
            return;
        };
        let pgid = child.id();
        signal("TERM", &pgid.to_string());
        // The leader is not reaped until the end, so its id (the group's) cannot be reused
        // by an unrelated process while we signal it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !exited_unreaped(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("KILL", &format!("-{pgid}"));
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `target` is a pid, or `-pgid` for a process group.
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether the process is a zombie (exited, not reaped yet) or gone.
fn exited_unreaped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The daemon's configuration with everything a test needs and nothing a test checks:
/// listening on a free loopback port, delivering to the emulator with short retry delays and
/// no rate limit of its own; `coalesce = false` so every notification of the monitor reaches
/// the emulator as its own event (the tests count them).
pub fn bridge_config(pd_url: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
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

/// Polls `check` until it gives a value, failing after [`WAIT`] with `what` and `report()`.
pub async fn wait_for<T>(
    what: &str,
    report: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {WAIT:?} waiting for {what}\n{}", report());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the monitor `proc` runs is `ready`. Err, a reason to skip, when it exits first
/// (it could not start here); a failure when it runs but is not ready within [`WAIT`].
pub async fn wait_ready(proc: &Proc, mut ready: impl AsyncFnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while !ready().await {
        if let Err(e) = proc.alive() {
            return Err(format!(
                "{} did not start: {e}\n{}",
                proc.name,
                proc.log_tail(30)
            ));
        }
        assert!(
            Instant::now() < deadline,
            "{} runs but was not ready within {WAIT:?}\n{}",
            proc.name,
            proc.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An HTTP client for loopback that ignores any proxy of the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}
