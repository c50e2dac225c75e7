//! Shared by the CLI's integration tests: the binary run with a clean environment, a daemon as a
//! child process, and the emulator's incidents.

#![allow(dead_code)]

pub mod alert_life;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{ListQuery, Store};
use pagerbridge_testkit::TestPd;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_pagerbridge");

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

/// Runs the binary with a clean pagerbridge environment plus `env`.
pub fn pb_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    for var in [
        "PAGERBRIDGE_CONFIG",
        "PAGERBRIDGE_DATA_DIR",
        "PAGERBRIDGE_ROUTING_KEY",
        "PAGERBRIDGE_LOG",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn pb(args: &[&str]) -> Out {
    pb_env(args, &[])
}

/// `pb` off the async runtime, so the in-process emulator keeps answering meanwhile.
pub async fn pb_async(args: &[&str]) -> Out {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || pb(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

pub fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_owned()
}

pub async fn records(db: &Path) -> Vec<pagerbridge_store::EventRecord> {
    let store = SqliteStore::open(db).await.unwrap();
    let list = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    store.close().await;
    list
}

/// A daemon as a child process, killed when the test ends.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_daemon(config: &Path) -> Daemon {
    start_daemon_env(config, &[]).0
}

/// `start_daemon` with `env` added to the daemon's environment (the secrets its configuration
/// reads from there); also returns the address it listens on (`http://127.0.0.1:PORT`).
pub fn start_daemon_env(config: &Path, env: &[(&str, &str)]) -> (Daemon, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("PAGERBRIDGE_DATA_DIR")
        .env("PAGERBRIDGE_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed if it does not say where it listens.
    let daemon = Daemon(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let Some(url) = first.trim().strip_prefix("pagerbridge listening on ") else {
        panic!("unexpected first line: {first:?}");
    };
    assert!(
        url.starts_with("http://"),
        "unexpected first line: {first:?}"
    );
    let url = url.to_owned();
    (daemon, url)
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn incident_titles(pd: &TestPd) -> Vec<String> {
    let list: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/incidents", pd.url()))
        .header("Authorization", "Token token=emulator-account-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect()
}

pub fn write_config(dir: &Path, pd: &TestPd) -> PathBuf {
    let url = pd.url();
    let config = dir.join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"data\"\n\n[pagerduty]\nevents_url = \"{url}\"\nrest_url = \"{url}\"\nproxy = \"none\"\n"
        ),
    )
    .unwrap();
    config
}

pub const PD_TOKEN: &str = "emulator-account-token";
pub const PD_FROM: &str = "ada@example.com";

/// How one run differs from the usual: the emulator's URL, the demo token and Ada as From, all
/// from the environment.
#[derive(Default)]
pub struct PdRun<'a> {
    pub env: Vec<(&'a str, String)>,
    pub unset: Vec<&'a str>,
    pub stdin: Option<String>,
}

/// Runs an `incident`, `service` or `maintenance` command against `pd` with a clean
/// environment: the emulator's URL, its demo token and Ada as From, from the environment.
pub async fn pb_pd(pd: &TestPd, args: &[&str], run: PdRun<'_>) -> Out {
    let mut cmd = tokio::process::Command::new(BIN);
    for var in [
        "PAGERBRIDGE_CONFIG",
        "PAGERBRIDGE_DATA_DIR",
        "PAGERBRIDGE_LOG",
        "PAGERDUTY_API_TOKEN",
        "PAGERDUTY_FROM",
        "PAGERDUTY_REST_URL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PAGERDUTY_REST_URL", pd.url())
        .env("PAGERDUTY_API_TOKEN", PD_TOKEN)
        .env("PAGERDUTY_FROM", PD_FROM);
    for var in &run.unset {
        cmd.env_remove(var);
    }
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(if run.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = run.stdin {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
    }
    let out = child.wait_with_output().await.unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
