//! Icinga 2 (Debian's `icinga2`) with its REST API on 127.0.0.1, every file it writes (state,
//! certificates, logs) in a temporary directory, so the system's instance and earlier runs'
//! state are left alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Proc, chown_to_monitor_user, free_port, run_ok, wait_ready};

/// Icinga's node (and certificate) name, whatever the machine's host name: `localhost`, so
/// that a client can check its certificate against [`Icinga2::ca_file`] at
/// [`Icinga2::url`].
pub const NODE: &str = "localhost";
pub const API_USER: &str = "pagerbridge-e2e";
pub const API_PASSWORD: &str = "e2e-password";

/// The top-level configuration: node, zone, checker, notifications, the API on `api_port`
/// with a user allowed everything, then the test's `objects`.
fn icinga2_conf(api_port: u16, objects: &str) -> String {
    format!(
        r#"include <itl>

object Endpoint NodeName {{}}
object Zone NodeName {{ endpoints = [ NodeName ] }}
object CheckerComponent "checker" {{}}
object NotificationComponent "notification" {{}}
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {api_port}
}}
object ApiUser "{API_USER}" {{
  password = "{API_PASSWORD}"
  permissions = [ "*" ]
}}

{objects}
"#
    )
}

/// Where Icinga keeps its state, certificates, logs and pid file: all in `root`.
fn icinga2_defines(root: &Path) -> Vec<String> {
    let mut defines = vec![format!("-DNodeName={NODE}")];
    for (constant, sub) in [
        ("DataDir", "data"),
        ("CacheDir", "cache"),
        ("LogDir", "log"),
        ("SpoolDir", "spool"),
        ("InitRunDir", "run"),
    ] {
        defines.push(format!(
            "-DConfiguration.{constant}={}",
            root.join(sub).display()
        ));
    }
    defines
}

/// A running Icinga 2 and a client for its API (which accepts its certificate).
pub struct Icinga2 {
    pub proc: Proc,
    /// `https://localhost:PORT`
    pub url: String,
    /// `https://localhost:PORT/v1`
    pub api: String,
    pub port: u16,
    /// The CA that signed (is) the API's certificate.
    pub ca_file: PathBuf,
    pub root: PathBuf,
    http: reqwest::Client,
}

impl Icinga2 {
    /// Writes the configuration into `dir/icinga2` with `objects` at its end and `files`
    /// (name, text) beside it, validates it (a failure fails the test) and starts Icinga 2 on
    /// it. Err, a reason to skip, when it cannot start.
    pub async fn start(
        program: &Path,
        dir: &Path,
        objects: &str,
        files: &[(&str, &str)],
    ) -> Result<Icinga2, String> {
        let root = dir.join("icinga2");
        let certs = root.join("data/certs");
        for sub in ["cache", "log", "spool", "run"] {
            std::fs::create_dir_all(root.join(sub)).expect("create an Icinga directory");
        }
        std::fs::create_dir_all(&certs).expect("create the certificates directory");
        let port = free_port();
        let conf = root.join("icinga2.conf");
        std::fs::write(&conf, icinga2_conf(port, objects)).expect("write icinga2.conf");
        for (name, text) in files {
            std::fs::write(root.join(name), text).expect("write a configuration file");
        }
        chown_to_monitor_user(dir);

        // The API needs a certificate; a self-signed one is its own CA.
        let (key, cert) = (
            certs.join(format!("{NODE}.key")),
            certs.join(format!("{NODE}.crt")),
        );
        run_ok(
            Command::new(program)
                .args(["pki", "new-cert", "--cn", NODE, "--key"])
                .arg(&key)
                .arg("--cert")
                .arg(&cert),
        );
        let ca_file = certs.join("ca.crt");
        std::fs::copy(&cert, &ca_file).expect("copy the CA certificate");
        chown_to_monitor_user(&certs);

        let defines = icinga2_defines(&root);
        run_ok(
            Command::new(program)
                .args(["daemon", "-C", "-c"])
                .arg(&conf)
                .args(&defines),
        );
        let mut cmd = Command::new(program);
        cmd.args(["daemon", "-c"]).arg(&conf).args(&defines);
        let proc = Proc::spawn("icinga2", cmd, &root.join("icinga2.out"))
            .map_err(|e| format!("cannot start icinga2: {e}"))?;
        let url = format!("https://{NODE}:{port}");
        let icinga = Icinga2 {
            proc,
            api: format!("{url}/v1"),
            url,
            port,
            ca_file,
            root,
            http: reqwest::Client::builder()
                .no_proxy()
                // Its certificate is the self-signed one made above.
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client builds"),
        };
        wait_ready(&icinga.proc, async || {
            icinga
                .request(reqwest::Method::GET, "/status")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;
        Ok(icinga)
    }

    /// A request to `api` + `path`, authenticated as the test's ApiUser.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .basic_auth(API_USER, Some(API_PASSWORD))
            // Without it Icinga answers 400 with an HTML page.
            .header("Accept", "application/json")
    }

    /// POSTs to the API and insists on 200.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Icinga's API answers {path}: {e}"));
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            200,
            "POST {path} {body}: {answer}\n{}",
            self.proc.log_tail(30)
        );
        answer
    }

    /// GETs from the API and insists on 200.
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Icinga's API answers {path}: {e}"));
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            200,
            "GET {path}: {answer}\n{}",
            self.proc.log_tail(30)
        );
        answer
    }

    /// A check result for the host (`service` None) or the service, as a passive check
    /// sends it; perfdata after `|`.
    pub async fn check_result(
        &self,
        host: &str,
        service: Option<&str>,
        exit_status: u8,
        output: &str,
    ) {
        let (kind, filter) = object_filter(host, service);
        let (output, perfdata) = output.split_once('|').unwrap_or((output, ""));
        self.post(
            "/actions/process-check-result",
            json!({
                "type": kind,
                "filter": filter,
                "exit_status": exit_status,
                "plugin_output": output,
                "performance_data": perfdata.split_whitespace().collect::<Vec<_>>(),
            }),
        )
        .await;
    }

    /// The API's attributes of service `host!service`.
    pub async fn service_attrs(&self, host: &str, service: &str) -> Value {
        let answer = self
            .get(&format!(
                "/objects/services/{}",
                url_segment(&format!("{host}!{service}"))
            ))
            .await;
        answer["results"][0]["attrs"].clone()
    }

    /// The attributes of every comment Icinga has.
    pub async fn comments(&self) -> Vec<Value> {
        let answer = self.get("/objects/comments").await;
        answer["results"]
            .as_array()
            .map(|rs| rs.iter().map(|r| r["attrs"].clone()).collect())
            .unwrap_or_default()
    }

    /// The comments of the host (`service` None) or the service, oldest first: `entry_type`
    /// 1 is a user's comment, 4 an acknowledgement's; `author`, `text`.
    pub async fn comments_of(&self, host: &str, service: Option<&str>) -> Vec<Value> {
        let mut comments: Vec<Value> = self
            .comments()
            .await
            .into_iter()
            .filter(|c| {
                c["host_name"] == host
                    && match service {
                        Some(s) => c["service_name"] == s,
                        None => c["service_name"].as_str().is_none_or(str::is_empty),
                    }
            })
            .collect();
        comments.sort_by(|a, b| {
            let t = |c: &Value| c["entry_time"].as_f64().unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        });
        comments
    }
}

/// The API's object type and filter for the host (`service` None) or the service; for names
/// the test chose, without quotes in them.
pub fn object_filter(host: &str, service: Option<&str>) -> (&'static str, String) {
    match service {
        Some(s) => (
            "Service",
            format!(r#"host.name=="{host}" && service.name=="{s}""#),
        ),
        None => ("Host", format!(r#"host.name=="{host}""#)),
    }
}

/// Percent-encodes everything but unreserved characters, for one path segment.
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
