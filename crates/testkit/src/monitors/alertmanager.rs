//! Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 with its
//! configuration and storage in a temporary directory and no cluster listener.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{Proc, free_port, http, wait_ready};
use crate::debian::which;

/// A running Alertmanager and a client for its API.
pub struct Alertmanager {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub http: reqwest::Client,
}

impl Alertmanager {
    /// Checks `config` with amtool when there is one (a failure fails the test), then starts
    /// Alertmanager on it. Err, a reason to skip, when it cannot start.
    pub async fn start(program: &Path, dir: &Path, config: &str) -> Result<Alertmanager, String> {
        let file = dir.join("alertmanager.yml");
        std::fs::write(&file, config).expect("write alertmanager.yml");
        if let Some(amtool) = which("amtool") {
            let out = Command::new(amtool)
                .arg("check-config")
                .arg(&file)
                .output()
                .expect("amtool runs");
            assert!(
                out.status.success(),
                "amtool check-config refuses the configuration:\n{}{}\n{config}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let storage = dir.join("alertmanager-data");
        let mut cmd = Command::new(program);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url={url}"))
            // Empty: no gossip listener on 0.0.0.0:9094.
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug");
        let proc = Proc::spawn("alertmanager", cmd, &dir.join("alertmanager.log"))
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let http = http();
        wait_ready(&proc, async || {
            http.get(format!("{url}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;
        Ok(Alertmanager { proc, url, http })
    }

    /// Posts alerts as Prometheus does (`POST /api/v2/alerts`).
    pub async fn post_alerts(&self, alerts: &[Value]) {
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await
            .expect("Alertmanager answers");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST /api/v2/alerts: {status} {body}");
    }

    /// `GET /api/v2/{path}` as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v2/{path}", self.url))
            .send()
            .await
            .expect("Alertmanager answers");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET /api/v2/{path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// Every silence Alertmanager knows, expired ones included.
    pub async fn silences(&self) -> Vec<Value> {
        match self.get("silences").await {
            Value::Array(v) => v,
            other => panic!("silences: not a list: {other}"),
        }
    }

    /// The fingerprint Alertmanager gave the alert whose label `name` is `value`.
    pub async fn fingerprint(&self, name: &str, value: &str) -> String {
        let alerts = self.get("alerts").await;
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"][name] == value)
            .and_then(|a| a["fingerprint"].as_str())
            .unwrap_or_else(|| panic!("no alert with {name}={value} in {alerts}"))
            .to_owned()
    }
}
