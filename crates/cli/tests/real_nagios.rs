//! Nagios 4 (Debian's `nagios4-core`) running docs/integrations/snippets/nagios.conf, its
//! notification commands calling `pagerbridge send` (the binary under test) as the `nagios`
//! user, with the daemon delivering to the emulator:
//! - a failing service opens one incident, and Nagios' reminders keep it one incident;
//! - acknowledging the problem in Nagios acknowledges the incident;
//! - the service's recovery resolves it;
//! - a host going down opens an incident of its own, which its recovery resolves.
//!
//! The checks are real active checks: a small script reports what the test wrote in a state
//! file. Everything (configuration, status, command pipe, logs, the daemon's database) lives
//! in a temporary directory; Nagios runs in the foreground and is killed at the end.

mod real;

use pagerbridge_testkit::monitors::nagios::{self as testkit_nagios, write_state};
use real::nagios_family::{self, Monitor, Setup};

const HOST: &str = "db1";
const SERVICE: &str = "Disk /";

/// The test's view of the running Nagios.
struct Nagios(testkit_nagios::Nagios);

impl Monitor for Nagios {
    async fn service_state(&self, code: u8, output: &str) {
        write_state(&self.0.dir.join("service.state"), code, output);
    }

    async fn host_state(&self, up: bool, output: &str) {
        write_state(
            &self.0.dir.join("host.state"),
            if up { 0 } else { 2 },
            output,
        );
    }

    async fn acknowledge_service(&self, author: &str, comment: &str) {
        // Sticky (2) until OK, notify (1), persistent comment (1).
        self.0.command(&format!(
            "ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};2;1;1;{author};{comment}"
        ));
    }

    fn report(&self) -> String {
        self.0.report(HOST, Some(SERVICE))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_problem_reminders_acknowledgement_and_recovery_make_one_incident() {
    if let Err(why) = real::require_root() {
        return real::skipped(&why);
    }
    let Some(program) = real::installed_or_skip("nagios4", &["nagios4-core"]) else {
        return;
    };
    let Setup {
        pd,
        tmp,
        bridge,
        bin,
    } = Setup::start().await;
    let dir = tmp.path();

    let snippet = nagios_family::snippet("nagios.conf", &bin, &bridge.config);
    write_state(
        &dir.join("host.state"),
        0,
        "PING OK - Packet loss = 0%, RTA = 0.05 ms",
    );
    write_state(
        &dir.join("service.state"),
        0,
        "DISK OK - free space: / 600 MB (60% inode=90%)|/=400MB;800;900;0;1000",
    );
    let started = testkit_nagios::Nagios::start(
        &program,
        dir,
        &[
            ("pagerbridge.cfg", snippet.as_str()),
            (
                "objects.cfg",
                testkit_nagios::state_file_objects(dir, HOST, SERVICE, 2).as_str(),
            ),
        ],
    )
    .await;
    let nagios = match started {
        Ok(n) => Nagios(n),
        Err(why) => return real::skipped(&why),
    };
    // Up and checking: both objects' first checks said OK.
    let ready = real::wait_ready(&nagios.0.proc, async || {
        nagios.0.checked_and(HOST, None, "0") && nagios.0.checked_and(HOST, Some(SERVICE), "0")
    })
    .await;
    if let Err(why) = ready {
        return real::skipped(&format!("{why}\n{}", nagios.report()));
    }

    nagios_family::problem_to_recovery(&pd, &bridge, &nagios, HOST, SERVICE).await;
}
