//! Nagios 4 (Debian's `nagios4-core`) in the foreground with everything (configuration,
//! status, command pipe, logs) in a temporary directory and every interval in seconds.
//!
//! Checks are real active checks: the command `check-state-file!FILE` reports the exit code
//! on the first line of FILE and the rest as its output; [`write_state`] sets it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Proc, chown_to_monitor_user, file_tail, run_ok, wait_ready};

/// Linux's O_NONBLOCK: opening Nagios' command pipe without it blocks forever when Nagios is
/// not reading (ENXIO instead).
const O_NONBLOCK: i32 = 0o4000;

/// Reports the exit code on the first line of the state file given as its argument, and the
/// rest as its output.
const CHECK_SCRIPT: &str = "#!/bin/sh\n{ read -r code; cat; } < \"$1\"\nexit \"$code\"\n";

/// The command the objects' checks use.
fn commands_cfg(dir: &Path) -> String {
    format!(
        "define command {{
    command_name    check-state-file
    command_line    /bin/sh {}/check_state.sh $ARG1$
}}
",
        dir.display()
    )
}

/// nagios.cfg with every path in `dir`, every interval in seconds, and `cfg_files` (in `dir`).
fn nagios_cfg(dir: &Path, cfg_files: &[&str]) -> String {
    let d = dir.display();
    let cfg_files: String = cfg_files
        .iter()
        .map(|f| format!("cfg_file={d}/{f}\n"))
        .collect();
    format!(
        "log_file={d}/nagios.log
{cfg_files}cfg_file={d}/commands.cfg
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
# As the stock nagios.cfg: single quotes in notification commands rely on it.
illegal_macro_output_chars=`~$&|'\"<>
"
    )
}

/// A host and one of its services, checked every second by `check-state-file` (their states in
/// `dir/host.state` and `dir/service.state`), notifying the `pagerduty` contact group with a
/// reminder every `reminder` minutes while a problem lasts.
pub fn state_file_objects(dir: &Path, host: &str, service: &str, reminder: u32) -> String {
    let d = dir.display();
    format!(
        "define host {{
    host_name               {host}
    alias                   Database server 1
    address                 127.0.0.1
    check_command           check-state-file!{d}/host.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   {reminder}
    notification_options    d,u,r
    contact_groups          pagerduty
}}

define service {{
    host_name               {host}
    service_description     {service}
    display_name            Root disk
    check_command           check-state-file!{d}/service.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            pagerbridge-24x7
    notification_period     pagerbridge-24x7
    notification_interval   {reminder}
    notification_options    w,u,c,r
    contact_groups          pagerduty
}}
"
    )
}

/// Sets what `check-state-file!path` reports next.
pub fn write_state(path: &Path, code: u8, output: &str) {
    // Written whole in a new file, then renamed: the check never reads half a state.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{code}\n{output}\n")).expect("write the check state");
    std::fs::rename(&tmp, path).expect("rename the check state");
}

/// A running Nagios 4.
pub struct Nagios {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Nagios {
    /// Writes `cfg_files` (name, text) into `dir` with nagios.cfg naming them, checks the
    /// configuration with `nagios4 -v` (a failure fails the test) and starts Nagios on it,
    /// returning once its command pipe and status file exist. Err, a reason to skip, when it
    /// cannot start.
    pub async fn start(
        program: &Path,
        dir: &Path,
        cfg_files: &[(&str, &str)],
    ) -> Result<Nagios, String> {
        for (name, text) in cfg_files {
            std::fs::write(dir.join(name), text).expect("write a Nagios configuration file");
        }
        let names: Vec<&str> = cfg_files.iter().map(|(n, _)| *n).collect();
        std::fs::write(dir.join("commands.cfg"), commands_cfg(dir)).expect("write commands.cfg");
        std::fs::write(dir.join("nagios.cfg"), nagios_cfg(dir, &names)).expect("write nagios.cfg");
        std::fs::write(dir.join("check_state.sh"), CHECK_SCRIPT).expect("write the check");
        for sub in ["rw", "checkresults"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create a Nagios directory");
        }
        chown_to_monitor_user(dir);

        let cfg = dir.join("nagios.cfg");
        run_ok(Command::new(program).arg("-v").arg(&cfg));
        let mut cmd = Command::new(program);
        cmd.arg(&cfg);
        let proc = Proc::spawn("nagios4", cmd, &dir.join("nagios.out"))
            .map_err(|e| format!("cannot start nagios4: {e}"))?;
        let nagios = Nagios {
            proc,
            dir: dir.to_owned(),
        };
        wait_ready(&nagios.proc, async || {
            nagios.command_file().exists() && nagios.dir.join("status.dat").exists()
        })
        .await?;
        Ok(nagios)
    }

    pub fn command_file(&self) -> PathBuf {
        self.dir.join("rw/nagios.cmd")
    }

    /// Sends an external command, as the web interface or an operator would.
    pub fn command(&self, line: &str) {
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

    /// The blocks of `kind` (`servicestatus`, `servicecomment`...) in status.dat, as fields.
    pub fn status_blocks(&self, kind: &str) -> Vec<BTreeMap<String, String>> {
        let Ok(status) = std::fs::read_to_string(self.dir.join("status.dat")) else {
            return Vec::new();
        };
        status
            .split(&format!("{kind} {{"))
            .skip(1)
            .filter_map(|block| {
                Some(
                    block
                        .split("\n\t}")
                        .next()?
                        .lines()
                        .filter_map(|l| l.trim().split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    /// The fields of the object's block in status.dat (the host's when `service` is None).
    pub fn status_of(&self, host: &str, service: Option<&str>) -> Option<BTreeMap<String, String>> {
        let kind = match service {
            Some(_) => "servicestatus",
            None => "hoststatus",
        };
        self.status_blocks(kind).into_iter().find(|fields| {
            let is = |k: &str, v: Option<&str>| fields.get(k).map(String::as_str) == v;
            is("host_name", Some(host)) && is("service_description", service)
        })
    }

    /// The object's comments in status.dat (`servicecomment` / `hostcomment` blocks), oldest
    /// first: `entry_type` 1 is a user's comment, 4 an acknowledgement's; `author`,
    /// `comment_data`.
    pub fn comments_of(&self, host: &str, service: Option<&str>) -> Vec<BTreeMap<String, String>> {
        let kind = match service {
            Some(_) => "servicecomment",
            None => "hostcomment",
        };
        let mut comments: Vec<_> = self
            .status_blocks(kind)
            .into_iter()
            .filter(|fields| {
                let is = |k: &str, v: Option<&str>| fields.get(k).map(String::as_str) == v;
                is("host_name", Some(host)) && is("service_description", service)
            })
            .collect();
        comments.sort_by_key(|c| {
            c.get("comment_id")
                .and_then(|id| id.parse::<u64>().ok())
                .unwrap_or(0)
        });
        comments
    }

    /// Whether the object has been checked and is in `state` (0 OK or UP).
    pub fn checked_and(&self, host: &str, service: Option<&str>, state: &str) -> bool {
        self.status_of(host, service).is_some_and(|f| {
            f.get("has_been_checked").map(String::as_str) == Some("1")
                && f.get("current_state").map(String::as_str) == Some(state)
        })
    }

    /// What status.dat says of the object's checks and notifications.
    pub fn status_summary(&self, host: &str, service: Option<&str>) -> String {
        let Some(f) = self.status_of(host, service) else {
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

    /// Nagios' output and log and the object's status, for failure messages.
    pub fn report(&self, host: &str, service: Option<&str>) -> String {
        format!(
            "{}\n--- nagios.log:\n{}\n--- status.dat, {host}: {}\n--- status.dat, {service:?}: {}",
            self.proc.log_tail(20),
            file_tail(&self.dir.join("nagios.log"), 60),
            self.status_summary(host, None),
            service
                .map(|s| self.status_summary(host, Some(s)))
                .unwrap_or_default(),
        )
    }
}
