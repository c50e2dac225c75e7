//! Debian packages for the tests that use real programs (monitors, interpreters): installed
//! when missing (CI runs as root on a fresh Debian), or a loud SKIPPED when that cannot be done.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Says loudly that a test did not run, and why.
pub fn skipped(why: &str) {
    eprintln!("\n==================== SKIPPED ====================");
    eprintln!("SKIPPED: {why}");
    eprintln!("=================================================\n");
}

/// The effective user id of this process, from /proc (no libc needed for one number).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub fn require_root() -> Result<(), String> {
    match euid() {
        Some(0) => Ok(()),
        Some(uid) => Err(format!(
            "needs root to install and run the monitor (running as uid {uid})"
        )),
        None => Err("cannot tell whether this runs as root (no /proc/self/status)".into()),
    }
}

/// The program's path if it is installed. cargo's PATH may lack the sbin directories where
/// Debian puts daemons, so those are searched too.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Installs `packages` with apt unless `program` is already there, and returns the program's
/// path. Err (a reason to skip) when it cannot be installed.
pub fn ensure_installed(program: &str, packages: &[&str]) -> Result<PathBuf, String> {
    if let Some(p) = which(program) {
        return Ok(p);
    }
    apt_install(packages, || which(program).is_some())?;
    which(program).ok_or_else(|| {
        format!(
            "{} installed, but there is still no `{program}`",
            packages.join(" ")
        )
    })
}

/// Installs `packages` with apt unless `present()` says they are there once the apt lock is
/// ours (another test process may have installed them meanwhile). Err (a reason to skip) when
/// they cannot be installed: not root, no apt, no package lists.
pub fn apt_install(packages: &[&str], present: impl Fn() -> bool) -> Result<(), String> {
    require_root()?;
    // nextest runs test binaries in parallel, and apt takes its own lock without waiting.
    let lock = File::create("/tmp/pagerbridge-test-apt.lock")
        .map_err(|e| format!("cannot create the apt lock file: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot take the apt lock: {e}"))?;
    if present() {
        return Ok(());
    }
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`apt-get {}` failed ({}): {}",
                args.join(" "),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 10)
            ))
        }
    };
    let install: Vec<&str> = [
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=120",
    ]
    .into_iter()
    .chain(packages.iter().copied())
    .collect();
    eprintln!("installing {}", packages.join(" "));
    if apt(&install).is_err() {
        // The package lists may be missing or stale (a fresh container).
        apt(&["update", "-o", "DPkg::Lock::Timeout=120"])?;
        apt(&install)?;
    }
    Ok(())
}

/// `ensure_installed`, printing SKIPPED when it fails.
pub fn installed_or_skip(program: &str, packages: &[&str]) -> Option<PathBuf> {
    ensure_installed(program, packages)
        .map_err(|why| skipped(&format!("{program} is not available: {why}")))
        .ok()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
