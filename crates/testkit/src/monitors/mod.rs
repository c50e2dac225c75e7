//! Real monitors (Prometheus Alertmanager, Icinga 2, Nagios 4) from Debian's packages, started
//! on 127.0.0.1 with their own configuration in a temporary directory, for the tests that
//! check pagerbridge against the real programs.
//!
//! Every process is started in a process group of its own and the whole group is killed when
//! its guard ([`Proc`]) drops, panics included, so that neither the monitor nor the commands
//! it spawned outlive the test. Starting returns Err, a reason to skip, when the program cannot
//! run here; a configuration the program refuses fails the test.

pub mod alertmanager;
pub mod icinga2;
pub mod nagios;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::debian::tail;

/// The longest any single wait may take: monitors react in seconds, so a minute means broken.
pub const WAIT: Duration = Duration::from_secs(60);

/// The user Debian's Icinga 2 and Nagios run as (and run their commands as).
pub const MONITOR_USER: &str = "nagios";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A temporary directory the monitor's user can read and write: Icinga 2 and Nagios drop to
/// it, and so do their notification commands.
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

/// Runs a short command that must succeed, and returns its output.
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

/// An HTTP client for loopback that ignores any proxy of the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
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

/// [`wait_for`] with a check that awaits (an API call, a database query).
pub async fn wait_until<T>(
    what: &str,
    report: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {WAIT:?} waiting for {what}\n{}", report());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
