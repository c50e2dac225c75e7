//! The way back into Nagios 4 (Debian's `nagios4-core`): what a responder does in PagerDuty
//! shows in Nagios, through its external command file, as docs/integrations/nagios.md's
//! "Write-back" section sets it up (`nagios-writeback.toml`).
//!
//! The problem reaches PagerDuty the way `real_nagios.rs` checks (`nagios.conf`'s
//! notification commands calling `pagerbridge send`); then, in PagerDuty, as its demo user:
//! - an acknowledgement acknowledges the service, by the responder, with the incident's link;
//!   Nagios' ACKNOWLEDGEMENT notification (the snippet's `notify` turned on) goes back to
//!   PagerDuty and ends there: one acknowledgement in Nagios, one write-back;
//! - a note becomes a comment;
//! - a resolve becomes a comment saying who resolved it; the service stays CRITICAL.
//!
//! Once through the emulator's Webhooks v3 subscription, once (the acknowledgement) through
//! the daemon polling PagerDuty's log entries.
//!
//! And the daemon's own repairs, with the REST API token: a recovery's resolve PagerDuty
//! refused is sent again by the reconciler; a problem on a service in maintenance (no
//! incident) is acknowledged with the window's description.
//!
//! What Nagios shows is read from its status.dat (updated every second here).

mod real;

use std::path::Path;

use pagerbridge_testkit::monitors::nagios::{self as testkit_nagios, write_state};
use real::nagios_family;
use real::way_back::{Comment, Db, MAINTENANCE, Monitor, RECONCILER, Scenario, Way, WayBack};
use real::{Bridge, MONITOR_USER};

const HOST: &str = "db1";
const SERVICE: &str = "Disk /";
const KEY: &str = "db1/Disk /";

/// The test's view of the running Nagios.
struct Nagios(testkit_nagios::Nagios);

impl Nagios {
    fn service_field(&self, field: &str) -> Option<String> {
        self.0
            .status_of(HOST, Some(SERVICE))
            .and_then(|f| f.get(field).cloned())
    }
}

impl Monitor for Nagios {
    async fn fail(&self) {
        write_state(
            &self.0.dir.join("service.state"),
            2,
            "DISK CRITICAL - free space: / 50 MB (5% inode=80%)|/=950MB;800;900;0;1000",
        );
    }

    async fn recover(&self) {
        service_ok(&self.0.dir);
    }

    async fn acknowledged(&self) -> bool {
        self.service_field("problem_has_been_acknowledged")
            .as_deref()
            == Some("1")
    }

    async fn critical(&self) -> bool {
        self.service_field("current_state").as_deref() == Some("2")
    }

    async fn comments(&self) -> Vec<Comment> {
        self.0
            .comments_of(HOST, Some(SERVICE))
            .into_iter()
            .map(|c| Comment {
                ack: c.get("entry_type").map(String::as_str) == Some("4"),
                author: c.get("author").cloned().unwrap_or_default(),
                text: c.get("comment_data").cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn report(&self) -> String {
        self.0.report(HOST, Some(SERVICE))
    }
}

/// What the state script of `SERVICE` in `dir` reports next: OK.
fn service_ok(dir: &Path) {
    write_state(
        &dir.join("service.state"),
        0,
        "DISK OK - free space: / 600 MB (60% inode=90%)|/=400MB;800;900;0;1000",
    );
}

/// Dropped in this order: the daemon and Nagios stop before their directory goes.
struct Run {
    db: Db,
    bridge: Bridge,
    nagios: Nagios,
    wb: WayBack,
}

impl Run {
    fn scenario(&self) -> Scenario<'_, Nagios> {
        Scenario {
            pd: &self.wb.pd,
            bridge: &self.bridge,
            db: &self.db,
            monitor: &self.nagios,
            key: KEY,
            way: self.wb.way,
        }
    }
}

/// The emulator (subscribed to the daemon when `way` is webhooks), Nagios with the
/// notification snippet, `HOST` and `SERVICE` OK, and the daemon with the write-back snippet
/// and `repairs` (see [`WayBack::config_with`]). None when skipped.
async fn start(way: Way, repairs: &str) -> Option<Run> {
    if let Err(why) = real::require_root() {
        real::skipped(&why);
        return None;
    }
    let program = real::installed_or_skip("nagios4", &["nagios4-core"])?;
    let wb = WayBack::start(real::monitor_dir(), way).await;
    let dir = wb.dir();
    let bin = real::binary_for_monitor_user(dir);
    let notifications = nagios_family::snippet("nagios.conf", &bin, &wb.config_path());
    write_state(
        &dir.join("host.state"),
        0,
        "PING OK - Packet loss = 0%, RTA = 0.05 ms",
    );
    service_ok(dir);
    let started = testkit_nagios::Nagios::start(
        &program,
        dir,
        &[
            ("pagerbridge.cfg", notifications.as_str()),
            (
                "objects.cfg",
                testkit_nagios::state_file_objects(dir, HOST, SERVICE, 3600).as_str(),
            ),
        ],
    )
    .await;
    let nagios = match started {
        Ok(n) => Nagios(n),
        Err(why) => {
            real::skipped(&why);
            return None;
        }
    };
    let ready = real::wait_ready(&nagios.0.proc, async || {
        nagios.0.checked_and(HOST, None, "0") && nagios.0.checked_and(HOST, Some(SERVICE), "0")
    })
    .await;
    if let Err(why) = ready {
        real::skipped(&format!("{why}\n{}", nagios.report()));
        return None;
    }

    let snippet = wb.writeback_snippet("nagios-writeback.toml");
    let snippet = real::substitute(
        &snippet,
        "command_file = \"/var/lib/nagios4/rw/nagios.cmd\"",
        &format!("command_file = \"{}\"", nagios.0.command_file().display()),
    );
    // Nagios notifies its acknowledgements, so the echo they would be is tested too.
    let snippet = real::substitute(&snippet, "notify = false", "notify = true");
    let bridge = wb
        .start_bridge(&wb.config_with(repairs, &snippet), Some(MONITOR_USER), &[])
        .await;
    let db = Db::open(dir).await;
    Some(Run {
        db,
        bridge,
        nagios,
        wb,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_shows_pagerduty_acknowledgement_note_and_resolve_without_echo() {
    if let Some(run) = start(Way::Webhooks, "").await {
        run.scenario().responder_changes().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_shows_an_acknowledgement_the_poller_found() {
    if let Some(run) = start(Way::Poller, "").await {
        run.scenario().acknowledgement().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_recovery_refused_by_pagerduty_is_resolved_by_the_reconciler() {
    if let Some(run) = start(Way::Webhooks, RECONCILER).await {
        run.scenario().lost_resolve().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_problem_on_a_service_in_maintenance_is_acknowledged_with_the_window() {
    if let Some(run) = start(Way::Webhooks, MAINTENANCE).await {
        run.scenario()
            .in_maintenance("Disk replacement on db1, call Ada for anything urgent")
            .await;
    }
}
