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

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use real::Proc;
use real::nagios_family::{self, Monitor, Setup};

const HOST: &str = "db1";
const SERVICE: &str = "Disk /";

/// Linux's O_NONBLOCK: opening Nagios' command pipe without it blocks forever when Nagios is
/// not reading (ENXIO instead).
const O_NONBLOCK: i32 = 0o4000;

/// Reports the exit code on the first line of the state file given as its argument, and the
/// rest as its output.
const CHECK_SCRIPT: &str = "#!/bin/sh\n{ read -r code; cat; } < \"$1\"\nexit \"$code\"\n";

struct Nagios {
    proc: Proc,
    dir: PathBuf,
}

impl Monitor for Nagios {
    async fn service_state(&self, code: u8, output: &str) {
        write_state(&self.dir.join("service.state"), code, output);
    }

    async fn host_state(&self, up: bool, output: &str) {
        write_state(&self.dir.join("host.state"), if up { 0 } else { 2 }, output);
    }

    async fn acknowledge_service(&self, author: &str, comment: &str) {
        // Sticky (2) until OK, notify (1), persistent comment (1).
        self.command(&format!(
            "ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};2;1;1;{author};{comment}"
        ));
    }

    fn report(&self) -> String {
        format!(
            "{}\n--- nagios.log:\n{}\n--- status.dat, {HOST}: {}\n--- status.dat, {SERVICE}: {}",
            self.proc.log_tail(20),
            real::file_tail(&self.dir.join("nagios.log"), 60),
            self.status_summary(None),
            self.status_summary(Some(SERVICE)),
        )
    }
}

impl Nagios {
    fn command_file(&self) -> PathBuf {
        self.dir.join("rw/nagios.cmd")
    }

    /// Sends an external command, as the web interface or an operator would.
    fn command(&self, line: &str) {
        let now = jiff::Timestamp::now().as_second();
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(self.command_file())
            .unwrap_or_else(|e| {
                panic!(
                    "cannot open Nagios' command pipe (is it running?): {e}\n{}",
                    self.proc.log_tail(30)
                )
            });
        pipe.write_all(format!("[{now}] {line}\n").as_bytes())
            .expect("write to Nagios' command pipe");
    }

    /// The fields of the object's block in status.dat (the host's when `service` is None).
    fn status_of(&self, service: Option<&str>) -> Option<BTreeMap<String, String>> {
        let status = std::fs::read_to_string(self.dir.join("status.dat")).ok()?;
        let kind = match service {
            Some(_) => "servicestatus {",
            None => "hoststatus {",
        };
        status.split(kind).skip(1).find_map(|block| {
            let fields: BTreeMap<String, String> = block
                .split('}')
                .next()?
                .lines()
                .filter_map(|l| l.trim().split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let is = |k: &str, v: Option<&str>| fields.get(k).map(String::as_str) == v;
            (is("host_name", Some(HOST)) && is("service_description", service)).then_some(fields)
        })
    }

    /// Whether the object has been checked and is in `state` (0 OK or UP).
    fn checked_and(&self, service: Option<&str>, state: &str) -> bool {
        self.status_of(service).is_some_and(|f| {
            f.get("has_been_checked").map(String::as_str) == Some("1")
                && f.get("current_state").map(String::as_str) == Some(state)
        })
    }

    /// What status.dat says of the object's checks and notifications.
    fn status_summary(&self, service: Option<&str>) -> String {
        let Some(f) = self.status_of(service) else {
            return "(not in status.dat)".into();
        };
        [
            "current_state",
            "state_type",
            "last_check",
            "next_check",
            "plugin_output",
            "problem_has_been_acknowledged",
            "current_notification_number",
            "last_notification",
            "next_notification",
        ]
        .iter()
        .map(|k| format!("{k}={}", f.get(*k).map(String::as_str).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

fn write_state(path: &Path, code: u8, output: &str) {
    // Written whole in a new file, then renamed: the check never reads half a state.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{code}\n{output}\n")).expect("write the check state");
    std::fs::rename(&tmp, path).expect("rename the check state");
}

/// nagios.cfg with every path in `dir` and every interval in seconds.
fn nagios_cfg(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "log_file={d}/nagios.log
cfg_file={d}/pagerbridge.cfg
cfg_file={d}/objects.cfg
object_cache_file={d}/objects.cache
precached_object_file={d}/objects.precache
status_file={d}/status.dat
status_update_interval=1
nagios_user=nagios
nagios_group=nagios
check_external_commands=1
command_file={d}/rw/nagios.cmd
query_socket={d}/rw/nagios.qh
lock_file={d}/nagios.lock
temp_file={d}/nagios.tmp
temp_path={d}
check_result_path={d}/checkresults
retain_state_information=0
state_retention_file={d}/retention.dat
use_retained_program_state=0
use_retained_scheduling_info=0
use_syslog=0
log_notifications=1
log_external_commands=1
log_passive_checks=1
log_initial_states=1
interval_length=1
service_inter_check_delay_method=n
host_inter_check_delay_method=n
max_service_check_spread=1
max_host_check_spread=1
check_result_reaper_frequency=1
# Else Nagios 4.4 keeps skipping the scheduled checks of a host it checked at start, as
# \"last checked within its cache horizon\", and never sees it go down.
cached_host_check_horizon=0
cached_service_check_horizon=0
enable_notifications=1
execute_service_checks=1
execute_host_checks=1
enable_flap_detection=0
enable_environment_macros=0
check_for_updates=0
check_for_orphaned_services=0
check_for_orphaned_hosts=0
date_format=iso8601
illegal_object_name_chars=`~!$%^&*|'\"<>?,()=
# As the stock nagios.cfg: the snippet's single quotes rely on it.
illegal_macro_output_chars=`~$&|'\"<>
"
    )
}

/// The monitored objects: `HOST` and `SERVICE` checked every second by the state script,
/// reminding every 2 seconds, notifying the snippet's contact group.
fn objects_cfg(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "define command {{
    command_name    check-state-file
    command_line    /bin/sh {d}/check_state.sh $ARG1$
}}

define host {{
    host_name               {HOST}
    alias                   Database server 1
    address                 127.0.0.1
    check_command           check-state-file!{d}/host.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   2
    notification_options    d,u,r
    contact_groups          pagerduty
}}

define service {{
    host_name               {HOST}
    service_description     {SERVICE}
    display_name            Root disk
    check_command           check-state-file!{d}/service.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   2
    notification_options    w,u,c,r
    contact_groups          pagerduty
}}
"
    )
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
    std::fs::write(dir.join("pagerbridge.cfg"), snippet).expect("write pagerbridge.cfg");
    std::fs::write(dir.join("objects.cfg"), objects_cfg(dir)).expect("write objects.cfg");
    std::fs::write(dir.join("nagios.cfg"), nagios_cfg(dir)).expect("write nagios.cfg");
    std::fs::write(dir.join("check_state.sh"), CHECK_SCRIPT).expect("write the check");
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
    for sub in ["rw", "checkresults"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create a Nagios directory");
    }
    real::chown_to_monitor_user(dir);

    let cfg = dir.join("nagios.cfg");
    real::run_ok(Command::new(&program).arg("-v").arg(&cfg));
    let mut cmd = Command::new(&program);
    cmd.arg(&cfg);
    let proc = match Proc::spawn("nagios4", cmd, &dir.join("nagios.out")) {
        Ok(p) => p,
        Err(e) => return real::skipped(&format!("cannot start nagios4: {e}")),
    };
    let nagios = Nagios {
        proc,
        dir: dir.to_owned(),
    };
    // Up and checking: both objects' first checks said OK.
    let ready = real::wait_ready(&nagios.proc, async || {
        nagios.command_file().exists()
            && nagios.checked_and(None, "0")
            && nagios.checked_and(Some(SERVICE), "0")
    })
    .await;
    if let Err(why) = ready {
        return real::skipped(&format!("{why}\n{}", nagios.report()));
    }

    nagios_family::problem_to_recovery(&pd, &bridge, &nagios, HOST, SERVICE).await;
}
