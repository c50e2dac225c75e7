//! The way back into Icinga 2 (Debian's `icinga2`): what a responder does in PagerDuty shows
//! in Icinga, through its REST API, as docs/integrations/icinga2.md's "Write-back" section
//! sets it up (`icinga2-writeback.toml`, the ApiUser with the permissions the page lists,
//! Icinga's CA next to the configuration).
//!
//! The problem reaches PagerDuty the way `real_icinga2.rs` checks (`icinga2.conf`'s
//! notification commands calling `pagerbridge send`); then, in PagerDuty, as its demo user:
//! - an acknowledgement acknowledges the service, by the responder, with the incident's link;
//!   Icinga's ACKNOWLEDGEMENT notification (the snippet's `notify` turned on) goes back to
//!   PagerDuty and ends there: one acknowledgement in Icinga, one write-back;
//! - a note becomes a comment;
//! - a resolve becomes a comment saying who resolved it; the service stays CRITICAL.
//!
//! Once through the emulator's Webhooks v3 subscription, once (the acknowledgement) through
//! the daemon polling PagerDuty's log entries.
//!
//! And the daemon's own repairs, with the REST API token: a recovery's resolve PagerDuty
//! refused is sent again by the reconciler; a problem on a service in maintenance (no
//! incident) is acknowledged until the window ends.

mod real;

use pagerbridge_testkit::monitors::icinga2::Icinga2;
use real::nagios_family;
use real::way_back::{Comment, Db, MAINTENANCE, Monitor, RECONCILER, Scenario, Way, WayBack};
use real::{Bridge, MONITOR_USER};

const HOST: &str = "db1";
const SERVICE: &str = "disk";
/// The docs' ApiUser, with the docs' permissions.
const API_USER: &str = "pagerbridge";
const API_PASSWORD: &str = "writeback-e2e-password";

/// The monitored objects (passive: the test feeds their results), the ApiUser of
/// docs/integrations/icinga2.md, and the notification snippet, as it would sit in conf.d.
fn objects() -> String {
    format!(
        r#"object Host "{HOST}" {{
  address = "127.0.0.1"
  check_command = "dummy"
  enable_active_checks = false
  max_check_attempts = 1
}}

object Service "{SERVICE}" {{
  host_name = "{HOST}"
  check_command = "dummy"
  enable_active_checks = false
  max_check_attempts = 1
}}

object ApiUser "{API_USER}" {{
  password = "{API_PASSWORD}"
  permissions = [
    "actions/acknowledge-problem",
    "actions/remove-acknowledgement",
    "actions/add-comment",
    "objects/query/Host",
    "objects/query/Service"
  ]
}}

include "pagerbridge.conf"
"#
    )
}

/// The test's view of the running Icinga 2.
struct Icinga(Icinga2);

impl Monitor for Icinga {
    async fn fail(&self) {
        self.0
            .check_result(
                HOST,
                Some(SERVICE),
                2,
                "DISK CRITICAL - free space: / 50 MB (5% inode=80%)",
            )
            .await;
    }

    async fn recover(&self) {
        self.0
            .check_result(
                HOST,
                Some(SERVICE),
                0,
                "DISK OK - free space: / 600 MB (60% inode=90%)",
            )
            .await;
    }

    async fn acknowledged(&self) -> bool {
        let attrs = self.0.service_attrs(HOST, SERVICE).await;
        attrs["acknowledgement"].as_f64().unwrap_or(0.0) > 0.0
    }

    const EXPIRING_ACKS: bool = true;

    async fn acknowledgement_expiry(&self) -> Option<jiff::Timestamp> {
        let attrs = self.0.service_attrs(HOST, SERVICE).await;
        // Seconds since the epoch; 0 when it does not expire.
        let expiry = attrs["acknowledgement_expiry"].as_f64().unwrap_or(0.0);
        (expiry > 0.0).then(|| {
            jiff::Timestamp::from_nanosecond((expiry * 1e9).round() as i128)
                .expect("a time Icinga keeps")
        })
    }

    async fn critical(&self) -> bool {
        let attrs = self.0.service_attrs(HOST, SERVICE).await;
        attrs["state"].as_f64() == Some(2.0)
    }

    async fn comments(&self) -> Vec<Comment> {
        self.0
            .comments_of(HOST, Some(SERVICE))
            .await
            .into_iter()
            .map(|c| Comment {
                ack: c["entry_type"].as_f64() == Some(4.0),
                author: c["author"].as_str().unwrap_or_default().to_owned(),
                text: c["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    fn report(&self) -> String {
        format!("--- icinga2:\n{}", self.0.proc.log_tail(40))
    }
}

/// Everything one test runs, dropped in this order: the daemon and Icinga stop before their
/// directory goes.
struct Run {
    db: Db,
    bridge: Bridge,
    icinga: Icinga,
    wb: WayBack,
}

impl Run {
    fn scenario(&self) -> Scenario<'_, Icinga> {
        Scenario {
            pd: &self.wb.pd,
            bridge: &self.bridge,
            db: &self.db,
            monitor: &self.icinga,
            key: KEY,
            way: self.wb.way,
        }
    }
}

const KEY: &str = "db1/disk";

/// The emulator (subscribed to the daemon when `way` is webhooks), Icinga 2 with the
/// notification snippet, and the daemon with the write-back snippet and `repairs` (see
/// [`WayBack::config_with`]). None when skipped.
async fn start(way: Way, repairs: &str) -> Option<Run> {
    if let Err(why) = real::require_root() {
        real::skipped(&why);
        return None;
    }
    let program = real::installed_or_skip("icinga2", &["icinga2"])?;
    let wb = WayBack::start(real::monitor_dir(), way).await;
    let dir = wb.dir();
    let bin = real::binary_for_monitor_user(dir);
    let notifications = nagios_family::snippet("icinga2.conf", &bin, &wb.config_path());
    let icinga = match Icinga2::start(
        &program,
        dir,
        &objects(),
        &[("pagerbridge.conf", notifications.as_str())],
    )
    .await
    {
        Ok(i) => Icinga(i),
        Err(why) => {
            real::skipped(&why);
            return None;
        }
    };
    icinga
        .0
        .check_result(HOST, None, 0, "PING OK - Packet loss = 0%, RTA = 0.05 ms")
        .await;

    // The docs: Icinga's CA copied next to pagerbridge's configuration, readable by its user.
    std::fs::copy(&icinga.0.ca_file, dir.join("icinga2-ca.crt")).expect("copy Icinga's CA");
    real::chown_to_monitor_user(&dir.join("icinga2-ca.crt"));
    let snippet = wb.writeback_snippet("icinga2-writeback.toml");
    let snippet = real::substitute(
        &snippet,
        "url = \"https://icinga.example.com:5665\"",
        &format!("url = \"{}\"", icinga.0.url),
    );
    // The password comes from the daemon's environment, as the snippet says; the monitor's
    // notification commands run without it.
    assert!(snippet.contains("password = { env = \"ICINGA2_API_PASSWORD\" }"));
    // Icinga notifies its acknowledgements, so the echo they would be is tested too.
    let snippet = real::substitute(&snippet, "notify = false", "notify = true");
    let bridge = wb
        .start_bridge(
            &wb.config_with(repairs, &snippet),
            Some(MONITOR_USER),
            &[("ICINGA2_API_PASSWORD", API_PASSWORD)],
        )
        .await;
    let db = Db::open(dir).await;
    Some(Run {
        db,
        bridge,
        icinga,
        wb,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga2_shows_pagerduty_acknowledgement_note_and_resolve_without_echo() {
    if let Some(run) = start(Way::Webhooks, "").await {
        run.scenario().responder_changes().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga2_shows_an_acknowledgement_the_poller_found() {
    if let Some(run) = start(Way::Poller, "").await {
        run.scenario().acknowledgement().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga2_recovery_refused_by_pagerduty_is_resolved_by_the_reconciler() {
    if let Some(run) = start(Way::Webhooks, RECONCILER).await {
        run.scenario().lost_resolve().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga2_problem_on_a_service_in_maintenance_is_acknowledged_until_the_window_ends() {
    if let Some(run) = start(Way::Webhooks, MAINTENANCE).await {
        run.scenario()
            .in_maintenance("Disk replacement on db1, call Ada for anything urgent")
            .await;
    }
}
