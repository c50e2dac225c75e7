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

use pagerbridge_testkit::monitors::icinga2::{Icinga2, object_filter};
use real::nagios_family::{self, Monitor, Setup};
use serde_json::json;

const HOST: &str = "db1";
const SERVICE: &str = "disk";

/// The monitored objects. The snippet is included last, as it would sit in conf.d.
fn objects() -> String {
    format!(
        r#"object Host "{HOST}" {{
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

/// The test's view of the running Icinga 2.
struct Icinga(Icinga2);

impl Monitor for Icinga {
    async fn service_state(&self, code: u8, output: &str) {
        self.0.check_result(HOST, Some(SERVICE), code, output).await;
    }

    async fn host_state(&self, up: bool, output: &str) {
        self.0
            .check_result(HOST, None, if up { 0 } else { 1 }, output)
            .await;
    }

    async fn acknowledge_service(&self, author: &str, comment: &str) {
        let (kind, filter) = object_filter(HOST, Some(SERVICE));
        self.0
            .post(
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
        self.0.proc.log_tail(60)
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
    let icinga = match Icinga2::start(
        &program,
        dir,
        &objects(),
        &[("pagerbridge.conf", snippet.as_str())],
    )
    .await
    {
        Ok(i) => Icinga(i),
        Err(why) => return real::skipped(&why),
    };

    icinga
        .host_state(true, "PING OK - Packet loss = 0%, RTA = 0.05 ms")
        .await;
    // The operator's reminder interval, short for the test (the snippet keeps Icinga's 30m).
    icinga
        .0
        .post(
            &format!("/objects/notifications/{HOST}!{SERVICE}!pagerduty"),
            json!({"attrs": {"interval": 2}}),
        )
        .await;

    nagios_family::problem_to_recovery(&pd, &bridge, &icinga, HOST, SERVICE).await;
}
