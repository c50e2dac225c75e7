//! The product under benchmark, as child processes: `pagerbridge emulator`, `pagerbridge serve`
//! and the baseline server, each started on a free loopback port that it prints on stdout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdout, Command};

/// A child process serving HTTP. Killed if dropped without [`Server::stop`].
pub struct Server {
    pub name: String,
    pub pid: u32,
    pub url: String,
    child: tokio::process::Child,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `program args...` with stderr going to `log`, and waits for the first URL it
    /// prints on stdout (its banner).
    pub async fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> anyhow::Result<Server> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id().context("the child has no pid")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            let mut line = String::new();
            loop {
                line.clear();
                if stdout.read_line(&mut line).await? == 0 {
                    bail!(
                        "{name} exited before printing its address; see {}",
                        log.display()
                    );
                }
                if let Some(url) = first_url(&line) {
                    return Ok(url);
                }
            }
        })
        .await
        .with_context(|| format!("{name} did not print its address within 30 s"))??;
        Ok(Server {
            name: name.to_owned(),
            pid,
            url,
            child,
            _stdout: stdout,
        })
    }

    /// Asks the process to stop (SIGTERM), as an operator would, and waits for it; kills it
    /// after `grace`.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        // SAFETY: kill(2) with a pid we own and a valid signal.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    eprintln!("note: {} exited with {status}", self.name);
                }
            }
            Err(_) => {
                eprintln!(
                    "note: {} did not stop within {grace:?}; killing it",
                    self.name
                );
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

fn first_url(line: &str) -> Option<String> {
    let start = line.find("http://")?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    Some(url)
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// What the daemon under benchmark is set up with.
#[derive(Debug, Clone)]
pub struct DaemonSetup {
    /// Where PagerDuty is (the emulator, or a closed port).
    pub pagerduty_url: String,
    pub coalesce: bool,
    pub max_in_flight: usize,
    /// A `postgres://` database instead of the SQLite file in the data directory.
    pub store_url: Option<String>,
}

/// Writes `dir/pagerbridge.toml` with data in `dir/data`; returns the file's path. Limits off:
/// the daemon's own rate limit (`events_per_minute = 0`); the emulator's are off by
/// `--no-rate-limit`.
pub fn write_config(dir: &Path, setup: &DaemonSetup) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("pagerbridge.toml");
    std::fs::write(&path, config_text(setup))?;
    Ok(path)
}

pub fn config_text(setup: &DaemonSetup) -> String {
    let store = match &setup.store_url {
        Some(url) => format!("\n[store]\nurl = \"{url}\"\n"),
        None => String::new(),
    };
    let text = format!(
        "# Written by pagerbridge-bench.\n\
         [server]\n\
         data_dir = \"data\"\n\
         \n\
         [pagerduty]\n\
         events_url = \"{url}\"\n\
         rest_url = \"{url}\"\n\
         proxy = \"none\"\n\
         timeout = \"10s\"\n\
         connect_timeout = \"2s\"\n\
         \n\
         [outbox]\n\
         coalesce = {coalesce}\n\
         max_in_flight = {mif}\n\
         \n\
         [outbox.rate_limit]\n\
         events_per_minute = 0\n",
        url = setup.pagerduty_url,
        coalesce = setup.coalesce,
        mif = setup.max_in_flight,
    );
    text + &store
}

/// The outbox database of a configuration written by [`write_config`].
pub fn database(dir: &Path) -> PathBuf {
    dir.join("data").join("pagerbridge.db")
}

/// The `pagerbridge` binary next to this one (both come from `cargo build --release`).
pub fn default_pagerbridge() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("pagerbridge")))
        .unwrap_or_else(|| PathBuf::from("target/release/pagerbridge"))
}

/// Starts `pagerbridge emulator` with its rate limits off.
pub async fn emulator(pagerbridge: &Path, work: &Path) -> anyhow::Result<Server> {
    Server::spawn(
        "emulator",
        pagerbridge,
        &[
            "--log-level",
            "warn",
            "emulator",
            "--no-rate-limit",
            "--listen",
            "127.0.0.1:0",
        ],
        &work.join("emulator.log"),
    )
    .await
}

/// Starts `pagerbridge serve` with a configuration written into `dir`.
pub async fn daemon(pagerbridge: &Path, dir: &Path, setup: &DaemonSetup) -> anyhow::Result<Server> {
    write_config(dir, setup)?;
    daemon_with_config(pagerbridge, dir).await
}

/// Starts `pagerbridge serve` with the configuration already in `dir/pagerbridge.toml`.
pub async fn daemon_with_config(pagerbridge: &Path, dir: &Path) -> anyhow::Result<Server> {
    let config = dir.join("pagerbridge.toml");
    let config = config.to_str().context("non-UTF-8 path")?;
    Server::spawn(
        "daemon",
        pagerbridge,
        &[
            "--log-level",
            "warn",
            "serve",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
        ],
        &dir.join("daemon.log"),
    )
    .await
}

/// Starts this binary's `baseline` subcommand.
pub async fn baseline(work: &Path, validate: bool) -> anyhow::Result<Server> {
    let me = std::env::current_exe()?;
    let mut args = vec!["baseline", "--listen", "127.0.0.1:0"];
    if validate {
        args.push("--validate");
    }
    Server::spawn(
        if validate {
            "baseline+validate"
        } else {
            "baseline"
        },
        &me,
        &args,
        &work.join("baseline.log"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_url_in_banners() {
        assert_eq!(
            first_url("pagerbridge listening on http://127.0.0.1:4242\n").as_deref(),
            Some("http://127.0.0.1:4242")
        );
        assert_eq!(
            first_url("PagerDuty emulator listening on http://127.0.0.1:1, more").as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(first_url("nothing here"), None);
    }

    #[test]
    fn the_generated_configuration_is_valid() {
        let text = config_text(&DaemonSetup {
            pagerduty_url: "http://127.0.0.1:9".into(),
            coalesce: false,
            max_in_flight: 32,
            store_url: None,
        });
        let c = pagerbridge_config::Config::from_str(&text, "bench", Path::new("/tmp/x"))
            .expect("valid configuration");
        assert_eq!(c.outbox.rate_limit.events_per_minute, 0);
        assert!(!c.outbox.coalesce);
        assert_eq!(c.store_path(), database(Path::new("/tmp/x")));
    }
}
