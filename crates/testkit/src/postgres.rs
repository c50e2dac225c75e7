//! A PostgreSQL database for a test: a fresh, empty one per call, so tests stay independent.
//!
//! The server is the one `PAGERBRIDGE_TEST_POSTGRES_URL` names (a URL whose user may create
//! databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), or else a throwaway cluster
//! this process starts once: Debian's `postgresql` package (installed when missing, as root),
//! `initdb` into a temporary directory, `postgres` listening on 127.0.0.1 on a free port with its
//! socket in that directory. As root, both run as the `postgres` user (initdb refuses root).
//!
//! The throwaway cluster never outlives the test process: it is stopped (fast shutdown) and its
//! directory removed when the process exits (an `atexit` handler: libtest and nextest both end
//! with `exit`), and should the process die without exiting (killed), the kernel sends the
//! postmaster SIGQUIT (its parent-death signal, so it shuts down at once); a directory left by
//! such a death is removed by the next process that starts a cluster. It runs without `fsync`:
//! a test cluster need not survive a power loss, and tests should not wait on the disk.
//!
//! When PostgreSQL cannot be had (not root and not installed, no apt), the caller is told why:
//! [`fresh_database_or_skip`] prints `SKIPPED: <why>` and returns `None`, unless
//! `PAGERBRIDGE_TEST_POSTGRES_REQUIRED=1`, which turns that into a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

use crate::debian::{self, tail};
use crate::monitors::{as_user, free_port};

/// A server to create the test databases on, instead of a throwaway cluster.
pub const URL_VAR: &str = "PAGERBRIDGE_TEST_POSTGRES_URL";
/// Set to `1`: no PostgreSQL is a failure, not a skip.
pub const REQUIRED_VAR: &str = "PAGERBRIDGE_TEST_POSTGRES_REQUIRED";

/// The OS user Debian's PostgreSQL runs as.
const PG_USER: &str = "postgres";
/// Test databases are named `pagerbridge_test_<unix seconds>_<pid>_<n>`.
const DB_PREFIX: &str = "pagerbridge_test_";
/// Throwaway clusters live in temporary directories named so.
const DIR_PREFIX: &str = "pagerbridge-pg-";
const START_LIMIT: Duration = Duration::from_secs(60);

/// The server this process uses, started (or found) once.
struct Server {
    /// A URL to its maintenance database, as a user that may create databases.
    admin_url: String,
    /// Whether it is ours (then its databases vanish with it) or the developer's.
    throwaway: bool,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
/// The cluster to stop at exit: postmaster pid and directory.
static CLUSTER: OnceLock<(u32, PathBuf)> = OnceLock::new();

fn server() -> Result<&'static Server, String> {
    SERVER
        .get_or_init(|| match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Ok(Server {
                admin_url: url.trim().to_owned(),
                throwaway: false,
            }),
            _ => start_cluster(),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The URL of a new, empty database. Err: why there is no PostgreSQL here (a reason to skip).
/// A server that is there but refuses to create a database fails the test.
pub async fn fresh_database() -> Result<String, String> {
    let server = tokio::task::spawn_blocking(server)
        .await
        .map_err(|e| format!("starting PostgreSQL panicked: {e}"))??;
    // A new cluster's `postgres` database is empty: the first test takes it, which spares the
    // usual case under nextest (one test, one process, one cluster) a CREATE DATABASE.
    static FIRST_TAKEN: AtomicBool = AtomicBool::new(false);
    if server.throwaway && !FIRST_TAKEN.swap(true, Ordering::Relaxed) {
        return Ok(server.admin_url.clone());
    }
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let name = format!(
        "{DB_PREFIX}{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(&server.admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    if !server.throwaway {
        drop_stale_databases(&mut admin, now).await;
    }
    // The name is ours: letters, digits and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    let _ = admin.close().await;
    let mut url = url::Url::parse(&server.admin_url)
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a URL: {e}"));
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// [`fresh_database`], printing `SKIPPED: <why>` and returning `None` when there is no
/// PostgreSQL (or failing, with `PAGERBRIDGE_TEST_POSTGRES_REQUIRED=1`).
pub async fn fresh_database_or_skip() -> Option<String> {
    match fresh_database().await {
        Ok(url) => Some(url),
        Err(why) => {
            let why = format!("PostgreSQL is not available: {why}");
            if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1") {
                panic!("{why} (and {REQUIRED_VAR}=1)");
            }
            debian::skipped(&why);
            None
        }
    }
}

/// On a developer's server, the databases of test runs that ended over an hour ago: a test
/// process has no hook to drop its own once its stores are gone.
async fn drop_stale_databases(admin: &mut PgConnection, now: u64) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'pagerbridge_test_')",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let safe = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if safe && created.is_some_and(|t| t + 3600 < now) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

/// The newest installed server's programs (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    debian::require_root().is_ok()
}

/// `program` run as the `postgres` user when we are root (PostgreSQL refuses to run as root),
/// as ourselves otherwise; with `pdeathsig`, the program gets that signal when the thread that
/// started it ends.
fn command(program: &Path, pdeathsig: Option<&str>) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args(as_user(PG_USER).iter().take(3));
    }
    if let Some(signal) = pdeathsig {
        cmd.arg(format!("--pdeathsig={signal}"));
    }
    cmd.arg("--").arg(program);
    cmd
}

fn start_cluster() -> Result<Server, String> {
    let bin = match bin_dir() {
        Some(bin) => bin,
        None => {
            install()?;
            bin_dir().ok_or("postgresql installed, but no server under /usr/lib/postgresql")?
        }
    };
    if which_setpriv().is_none() {
        return Err("no `setpriv` (util-linux) to run the server with".into());
    }
    remove_abandoned_clusters();
    let template = template(&bin)?;
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?
        .keep();
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string())
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    give_to_pg_user(&dir)?;
    // `cp -a` keeps the owner and the modes (PostgreSQL wants its directory private).
    let out = Command::new("cp")
        .arg("-a")
        .arg(template.join("data"))
        .arg(dir.join("data"))
        .output()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "cannot copy the cluster template: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // A free port may be taken between our look and the server's bind: try a few.
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        match start_postgres(&bin, &dir, port) {
            Ok(()) => {
                return Ok(Server {
                    admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    throwaway: true,
                });
            }
            Err(e) => last = e,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(last)
}

/// Makes `dir` the PostgreSQL user's when we are root (the server runs as that user).
fn give_to_pg_user(dir: &Path) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{PG_USER}:{PG_USER}"))
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot give {} to the {PG_USER} user: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An initialised, never started cluster to copy: `initdb` takes the better part of a second
/// or two, copying its result a twentieth of one, and nextest starts a process (and so a
/// cluster) per test. Made once per server version and user, kept in the temporary directory
/// (files only: nothing of it runs), and remade when it is missing or half-made.
fn template(bin: &Path) -> Result<PathBuf, String> {
    let version = bin
        .parent()
        .and_then(|v| v.file_name())
        .and_then(|v| v.to_str())
        .unwrap_or("unknown");
    let user = if is_root() {
        PG_USER.to_owned()
    } else {
        whoami()
    };
    let path = std::env::temp_dir().join(format!("pagerbridge-pgtemplate-{version}-{user}"));
    let ready = path.join("ready");
    if ready.is_file() {
        return Ok(path);
    }
    // Test processes start together: one makes it, the others wait for it.
    let lock = std::fs::File::create(path.with_extension("lock"))
        .map_err(|e| format!("cannot create the template lock: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot take the template lock: {e}"))?;
    if ready.is_file() {
        return Ok(path);
    }
    let _ = std::fs::remove_dir_all(&path);
    let building = path.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)
        .map_err(|e| format!("cannot create {}: {e}", building.display()))?;
    give_to_pg_user(&building)?;
    let out = command(&bin.join("initdb"), None)
        .arg("-D")
        .arg(building.join("data"))
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&building);
        return Err(format!(
            "initdb failed ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 10)
        ));
    }
    std::fs::write(building.join("ready"), "")
        .and_then(|()| std::fs::rename(&building, &path))
        .map_err(|e| format!("cannot keep the cluster template: {e}"))?;
    Ok(path)
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

fn which_setpriv() -> Option<PathBuf> {
    debian::which("setpriv")
}

/// Installs Debian's server without the cluster its package would create and start (on port
/// 5432, outliving the tests).
fn install() -> Result<(), String> {
    debian::require_root().map_err(|_| {
        "no server under /usr/lib/postgresql, and only root may install Debian's postgresql \
         package"
            .to_string()
    })?;
    let _ = std::fs::create_dir_all("/etc/postgresql-common/createcluster.d");
    let _ = std::fs::write(
        "/etc/postgresql-common/createcluster.d/pagerbridge-tests.conf",
        "# pagerbridge's tests start clusters of their own.\ncreate_main_cluster = false\n",
    );
    debian::apt_install(&["postgresql"], || bin_dir().is_some())
}

/// Starts the postmaster from a thread that never ends, so that its parent-death signal fires
/// only when this process dies, and waits until it accepts connections.
fn start_postgres(bin: &Path, dir: &Path, port: u16) -> Result<(), String> {
    let log = dir.join("postgres.log");
    let out = std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = command(&bin.join("postgres"), Some("SIGQUIT"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=64MB",
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-postgres".into())
        .spawn(move || {
            let spawned = cmd.spawn();
            let _ = tx.send(spawned.map(|child| child.id()));
            // The child is reaped by nobody until exit; its parent-death signal is tied to
            // this thread, which therefore lives as long as the process.
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let pid = rx
        .recv()
        .map_err(|_| "the starting thread died".to_string())?
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if gone(pid) {
            reap(pid);
            return Err(format!(
                "postgres exited at start:\n{}",
                crate::monitors::file_tail(&log, 20)
            ));
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            stop(pid, dir);
            return Err(format!(
                "postgres did not accept connections within {START_LIMIT:?}:\n{}",
                crate::monitors::file_tail(&log, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if CLUSTER.set((pid, dir.to_owned())).is_ok() {
        // SAFETY: registers a plain `extern "C" fn` without arguments, as atexit requires.
        unsafe {
            libc::atexit(stop_at_exit);
        }
    }
    Ok(())
}

extern "C" fn stop_at_exit() {
    if let Some((pid, dir)) = CLUSTER.get() {
        stop(*pid, dir);
    }
}

/// Fast shutdown (SIGINT: sessions are ended, nothing is waited for), SIGKILL after 10 s, then
/// the directory goes.
fn stop(pid: u32, dir: &Path) {
    let pid_t = pid as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which stays a zombie (not reused) until reaped.
    unsafe {
        libc::kill(pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !gone(pid) {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid_t, libc::SIGKILL);
        }
    }
    reap(pid);
    let _ = std::fs::remove_dir_all(dir);
}

/// Collects our exited child: left a zombie, it would go to an init that may never reap it.
fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child, with a valid pointer to an int.
    unsafe {
        libc::waitpid(pid as libc::pid_t, &mut status, 0);
    }
}

/// Whether the process has exited (a zombie, or no longer there).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Directories of clusters whose test process was killed: their postmaster got SIGQUIT then,
/// but nobody removed the files.
fn remove_abandoned_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let ours = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !ours {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let postmaster = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|p| p.lines().next()?.trim().parse::<u32>().ok());
        if owner.is_some_and(gone) && postmaster.is_none_or(gone) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
