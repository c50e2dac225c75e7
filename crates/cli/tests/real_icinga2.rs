//! Icinga 2 (Debian's `icinga2`) running docs/integrations/snippets/icinga2.conf, its
//! notification commands calling `pagerbridge send` (the binary under test) as the `nagios`
//! user, with the daemon delivering to the emulator:
//! - a failing service opens one incident, and Icinga's reminders keep it one incident;
//! - acknowledging the problem through Icinga's API acknowledges the incident;
//! - the service's recovery resolves it;
//! - a host going down opens an incident of its own, which its recovery resolves.
//!
//! Host and service are passive; the test feeds their check results through the REST API
//! (`process-check-result`), as a check forwarder would. Every file Icinga writes (state,
//! certificates, logs) is redirected into a temporary directory, so the system's Icinga is left
//! alone, and the instance is killed at the end.

mod real;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use real::Proc;
use real::nagios_family::{self, Monitor, Setup};
use serde_json::{Value, json};

const HOST: &str = "db1";
const SERVICE: &str = "disk";
/// Icinga's node (and certificate) name, whatever the machine's host name.
const NODE: &str = "pagerbridge-e2e";
const API_USER: &str = "pagerbridge-e2e";
const API_PASSWORD: &str = "e2e-password";

/// The monitored objects, and the API the test drives them through. The snippet is included
/// last, as it would sit in conf.d.
fn icinga2_conf(api_port: u16) -> String {
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

object Host "{HOST}" {{
  address = "127.0.0.1"
  display_name = "Database server 1"
  check_command = "dummy"
  enable_active_checks = false
  max_check_attempts = 1
}}

object Service "{SERVICE}" {{
  host_name = "{HOST}"
  display_name = "Disk /"
  check_command = "dummy"
  enable_active_checks = false
  max_check_attempts = 1
}}

include "pagerbridge.conf"
"#
    )
}

/// Where Icinga keeps its state, certificates, logs and pid file: all in `dir`, so neither the
/// system's instance nor an earlier run's state file gets in the way.
fn icinga2_defines(dir: &Path) -> Vec<String> {
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
            dir.join("icinga2").join(sub).display()
        ));
    }
    defines
}

struct Icinga {
    proc: Proc,
    api: String,
    http: reqwest::Client,
}

impl Icinga {
    /// Validates the configuration (a failure fails the test: the snippet is wrong) and starts
    /// Icinga 2 on it. Err, a reason to skip, when it cannot start.
    async fn start(program: &Path, dir: &Path, snippet: &str) -> Result<Icinga, String> {
        let root = dir.join("icinga2");
        let certs = root.join("data/certs");
        for sub in ["cache", "log", "spool", "run"] {
            std::fs::create_dir_all(root.join(sub)).expect("create an Icinga directory");
        }
        std::fs::create_dir_all(&certs).expect("create the certificates directory");
        let port = real::free_port();
        let conf = root.join("icinga2.conf");
        std::fs::write(&conf, icinga2_conf(port)).expect("write icinga2.conf");
        std::fs::write(root.join("pagerbridge.conf"), snippet).expect("write pagerbridge.conf");
        real::chown_to_monitor_user(dir);

        // The API needs a certificate; a self-signed one is its own CA.
        let (key, cert) = (
            certs.join(format!("{NODE}.key")),
            certs.join(format!("{NODE}.crt")),
        );
        real::run_ok(
            Command::new(program)
                .args(["pki", "new-cert", "--cn", NODE, "--key"])
                .arg(&key)
                .arg("--cert")
                .arg(&cert),
        );
        std::fs::copy(&cert, certs.join("ca.crt")).expect("copy the CA certificate");
        real::chown_to_monitor_user(&certs);

        let defines = icinga2_defines(dir);
        real::run_ok(
            Command::new(program)
                .args(["daemon", "-C", "-c"])
                .arg(&conf)
                .args(&defines),
        );
        let mut cmd = Command::new(program);
        cmd.args(["daemon", "-c"]).arg(&conf).args(&defines);
        let proc = Proc::spawn("icinga2", cmd, &root.join("icinga2.out"))
            .map_err(|e| format!("cannot start icinga2: {e}"))?;
        let icinga = Icinga {
            proc,
            api: format!("https://127.0.0.1:{port}/v1"),
            http: reqwest::Client::builder()
                .no_proxy()
                // Its certificate is the self-signed one made above.
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client builds"),
        };
        real::wait_ready(&icinga.proc, async || {
            icinga
                .request(reqwest::Method::GET, "/status")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;
        Ok(icinga)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .basic_auth(API_USER, Some(API_PASSWORD))
            // Without it Icinga answers 400 with an HTML page.
            .header("Accept", "application/json")
    }

    /// POSTs to the API and insists on 200.
    async fn post(&self, path: &str, body: Value) {
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
    }

    /// A check result for the host (`service` None) or the service, as a passive check
    /// sends it.
    async fn check_result(&self, service: Option<&str>, exit_status: u8, output: &str) {
        let (kind, filter) = object(service);
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
}

impl Monitor for Icinga {
    async fn service_state(&self, code: u8, output: &str) {
        self.check_result(Some(SERVICE), code, output).await;
    }

    async fn host_state(&self, up: bool, output: &str) {
        self.check_result(None, if up { 0 } else { 1 }, output)
            .await;
    }

    async fn acknowledge_service(&self, author: &str, comment: &str) {
        let (kind, filter) = object(Some(SERVICE));
        self.post(
            "/actions/acknowledge-problem",
            json!({
                "type": kind,
                "filter": filter,
                "author": author,
                "comment": comment,
                "notify": true,
                "sticky": false,
            }),
        )
        .await;
    }

    fn report(&self) -> String {
        self.proc.log_tail(60)
    }
}

/// The API's object type and filter for the host (`service` None) or the service.
fn object(service: Option<&str>) -> (&'static str, String) {
    match service {
        Some(s) => (
            "Service",
            format!(r#"host.name=="{HOST}" && service.name=="{s}""#),
        ),
        None => ("Host", format!(r#"host.name=="{HOST}""#)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga2_problem_reminders_acknowledgement_and_recovery_make_one_incident() {
    if let Err(why) = real::require_root() {
        return real::skipped(&why);
    }
    let Some(program) = real::installed_or_skip("icinga2", &["icinga2"]) else {
        return;
    };
    let Setup {
        pd,
        tmp,
        bridge,
        bin,
    } = Setup::start().await;
    let dir = tmp.path();
    let snippet = nagios_family::snippet("icinga2.conf", &bin, &bridge.config);
    let icinga = match Icinga::start(&program, dir, &snippet).await {
        Ok(i) => i,
        Err(why) => return real::skipped(&why),
    };

    icinga
        .host_state(true, "PING OK - Packet loss = 0%, RTA = 0.05 ms")
        .await;
    // The operator's reminder interval, short for the test (the snippet keeps Icinga's 30m).
    icinga
        .post(
            &format!("/objects/notifications/{HOST}!{SERVICE}!pagerduty"),
            json!({"attrs": {"interval": 2}}),
        )
        .await;

    nagios_family::problem_to_recovery(&pd, &bridge, &icinga, HOST, SERVICE).await;
}
