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
//! What Nagios shows is read from its status.dat (updated every second here).

mod real;

use std::path::Path;

use pagerbridge_testkit::monitors::nagios::{self as testkit_nagios, write_state};
use real::nagios_family;
use real::way_back::{Comment, Db, Monitor, Scenario, Way, WayBack};
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

/// `HOST` and `SERVICE` checked every second by the state script, notifying the snippet's
/// contact group; reminders hourly, out of the way.
fn objects_cfg(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "define host {{
    host_name               {HOST}
    alias                   Database server 1
    address                 127.0.0.1
    check_command           check-state-file!{d}/host.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   3600
    notification_options    d,u,r
    contact_groups          pagerduty
}}

define service {{
    host_name               {HOST}
    service_description     {SERVICE}
    check_command           check-state-file!{d}/service.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   3600
    notification_options    w,u,c,r
    contact_groups          pagerduty
}}
"
    )
}

/// Dropped in this order: the daemon and Nagios stop before their directory goes.
struct Run {
    db: Db,
    bridge: Bridge,
    nagios: Nagios,
    wb: WayBack,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_shows_pagerduty_acknowledgement_note_and_resolve_without_echo() {
    if let Err(why) = real::require_root() {
        return real::skipped(&why);
    }
    let Some(program) = real::installed_or_skip("nagios4", &["nagios4-core"]) else {
        return;
    };
    let wb = WayBack::start(real::monitor_dir(), Way::Webhooks).await;
    let dir = wb.dir();
    let bin = real::binary_for_monitor_user(dir);
    let notifications = nagios_family::snippet("nagios.conf", &bin, &wb.config_path());
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
            ("pagerbridge.cfg", notifications.as_str()),
            ("objects.cfg", objects_cfg(dir).as_str()),
        ],
    )
    .await;
    let nagios = match started {
        Ok(n) => Nagios(n),
        Err(why) => return real::skipped(&why),
    };
    let ready = real::wait_ready(&nagios.0.proc, async || {
        nagios.0.checked_and(HOST, None, "0") && nagios.0.checked_and(HOST, Some(SERVICE), "0")
    })
    .await;
    if let Err(why) = ready {
        return real::skipped(&format!("{why}\n{}", nagios.report()));
    }

    let snippet = wb.writeback_snippet("nagios-writeback.toml");
    let snippet = real::substitute(
        &snippet,
        "command_file = \"/var/lib/nagios4/rw/nagios.cmd\"",
        &format!("command_file = \"{}\"", nagios.0.command_file().display()),
    );
    // Nagios notifies its acknowledgements, so the echo they would be is tested too.
    let snippet = real::substitute(&snippet, "notify = false", "notify = true");
    let (name, secret) = wb.webhook_env();
    let bridge = wb
        .start_bridge(&wb.config(&snippet), Some(MONITOR_USER), &[(name, &secret)])
        .await;
    let db = Db::open(dir).await;
    let run = Run {
        db,
        bridge,
        nagios,
        wb,
    };

    let s = Scenario {
        pd: &run.wb.pd,
        bridge: &run.bridge,
        db: &run.db,
        monitor: &run.nagios,
        key: KEY,
        way: Way::Webhooks,
    };
    let inc = s.open().await;
    s.acknowledge(&inc).await;
    s.annotate(&inc).await;
    s.resolve(&inc).await;
}
