//! The scenario Icinga 2 and Nagios both play: their notification commands run
//! `pagerbridge send`, and what reaches PagerDuty must be one incident per problem, from the
//! first notification to the recovery.

use std::path::{Path, PathBuf};

use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;

use super::{Bridge, Incident};

/// What a Nagios-family test starts from: the emulator, a directory the monitor's user can
/// use, the daemon, and a copy of the binary that user can run.
pub struct Setup {
    pub pd: TestPd,
    pub tmp: tempfile::TempDir,
    pub bridge: Bridge,
    pub bin: PathBuf,
}

impl Setup {
    pub async fn start() -> Setup {
        let pd = TestPd::start().await;
        let tmp = super::monitor_dir();
        let bridge = Bridge::start(
            tmp.path(),
            &super::bridge_config(&pd.url()),
            Some(super::MONITOR_USER),
            &[],
        )
        .await;
        let bin = super::binary_for_monitor_user(tmp.path());
        Setup {
            pd,
            tmp,
            bridge,
            bin,
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// The snippet `name` running the binary under test with the test's configuration, and
/// sending to the emulator's routing key.
pub fn snippet(name: &str, bin: &Path, config: &Path) -> String {
    let text = super::snippet(name);
    let text = super::substitute(
        &text,
        "/usr/local/bin/pagerbridge",
        &bin.display().to_string(),
    );
    let text = super::substitute(
        &text,
        "/etc/pagerbridge/pagerbridge.toml",
        &config.display().to_string(),
    );
    super::substitute(&text, "0123456789abcdef0123456789abcdef", DEMO_ROUTING_KEY)
}

/// How the test drives a monitor of the family.
pub trait Monitor {
    /// The service's check now says `code` (0 OK, 2 CRITICAL) and `output` (perfdata after
    /// `|`, as plugins print it).
    async fn service_state(&self, code: u8, output: &str);
    async fn host_state(&self, up: bool, output: &str);
    /// An operator acknowledges the service's problem, asking to notify.
    async fn acknowledge_service(&self, author: &str, comment: &str);
    /// The monitor's logs and state, for failure messages.
    fn report(&self) -> String;
}

/// The service fails (and keeps failing long enough for a reminder), is acknowledged and
/// recovers; then the host goes down and comes back. Checks each step in the emulator.
pub async fn problem_to_recovery(
    pd: &TestPd,
    bridge: &Bridge,
    monitor: &impl Monitor,
    host: &str,
    service: &str,
) {
    let report = || {
        format!(
            "{}\n{}\n{}",
            super::emulator_report(pd),
            monitor.report(),
            bridge.proc.log_tail(40)
        )
    };

    let output = "DISK CRITICAL - free space: / 50 MB (5% inode=80%)";
    monitor
        .service_state(2, &format!("{output}|/=950MB;800;900;0;1000"))
        .await;
    let opened = super::wait_for("the service problem to open an incident", report, || {
        super::incidents(pd).into_iter().next()
    })
    .await;
    let key = opened.key.clone();
    // docs/integrations/nagios.md: the dedup key is host/service, the summary
    // `STATE: host/service - first line of output`.
    assert_eq!(key, format!("{host}/{service}"), "dedup key\n{}", report());
    assert_eq!(
        opened.title,
        format!("CRITICAL: {host}/{service} - {output}"),
        "summary\n{}",
        report()
    );
    assert_eq!(opened.status, IncidentStatus::Triggered, "{}", report());

    // Reminders while the problem lasts: still one incident.
    super::wait_for(
        "a reminder (a second PROBLEM notification) to reach PagerDuty",
        report,
        || {
            let triggers = super::actions_for(pd, &key)
                .iter()
                .filter(|a| *a == "trigger")
                .count();
            (triggers >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(
        super::incidents(pd),
        vec![opened.clone()],
        "reminders stay on the one triggered incident\n{}",
        report()
    );

    monitor
        .acknowledge_service("alice", "Looking into it")
        .await;
    super::wait_for(
        "the acknowledgement in the monitor to acknowledge the incident",
        report,
        || only_status(pd, &key).filter(|s| *s == IncidentStatus::Acknowledged),
    )
    .await;

    monitor
        .service_state(
            0,
            "DISK OK - free space: / 600 MB (60% inode=90%)|/=400MB;800;900;0;1000",
        )
        .await;
    super::wait_for("the recovery to resolve the incident", report, || {
        only_status(pd, &key).filter(|s| *s == IncidentStatus::Resolved)
    })
    .await;
    assert_eq!(
        super::incidents(pd),
        vec![Incident {
            status: IncidentStatus::Resolved,
            ..opened.clone()
        }],
        "one incident from problem to recovery\n{}",
        report()
    );
    let actions = super::actions_for(pd, &key);
    let triggers = actions.iter().take_while(|a| *a == "trigger").count();
    assert!(
        triggers >= 2 && actions[triggers..] == ["acknowledge", "resolve"],
        "problem and reminders, then the acknowledgement, then the recovery: {actions:?}\n{}",
        report()
    );

    // The host goes down: an incident of its own, resolved when it comes back.
    monitor
        .host_state(false, "CRITICAL - Host Unreachable (127.0.0.1)")
        .await;
    let down = super::wait_for("the host problem to open an incident", report, || {
        super::incidents(pd).into_iter().find(|i| i.key != key)
    })
    .await;
    assert_eq!(
        down.key,
        host,
        "a host's dedup key is its name\n{}",
        report()
    );
    assert_eq!(
        down.title,
        format!("DOWN: {host} - CRITICAL - Host Unreachable (127.0.0.1)"),
        "summary\n{}",
        report()
    );
    assert_eq!(down.status, IncidentStatus::Triggered, "{}", report());
    monitor
        .host_state(true, "PING OK - Packet loss = 0%, RTA = 0.05 ms")
        .await;
    super::wait_for("the host recovery to resolve its incident", report, || {
        only_status(pd, host).filter(|s| *s == IncidentStatus::Resolved)
    })
    .await;
    assert_eq!(
        super::incidents(pd).len(),
        2,
        "the service's incident and the host's, nothing else\n{}",
        report()
    );
}

/// The status of the only incident with `key`; None while there is none, a failure when there
/// are several.
fn only_status(pd: &TestPd, key: &str) -> Option<IncidentStatus> {
    let found = super::incidents_with_key(pd, key);
    assert!(
        found.len() <= 1,
        "one incident per problem, got {found:?}\n{}",
        super::emulator_report(pd)
    );
    found.first().map(|i| i.status)
}
