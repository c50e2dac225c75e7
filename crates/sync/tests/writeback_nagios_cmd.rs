//! The external_command write-back adapter:
//! - against a real Nagios 4 (Debian's `nagios4-core`) on its command pipe, read back through
//!   status.dat: acknowledgement, its removal and comments arrive, a hostile comment does not
//!   inject a second command, and a stopped Nagios gives a quick "not running" retry;
//! - without Nagios: a pipe with many concurrent writers gets whole lines, a regular file is
//!   appended to, and a missing file is a retry naming the path.
//!
//! The Nagios test needs root and the package; it prints SKIPPED and passes without them.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/changes.rs"]
mod changes;

use changes::{apply, change_now as change};
use jiff::Timestamp;
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{self, Action, Adapter, Kind, Settings};
use pagerbridge_testkit::debian;
use pagerbridge_testkit::monitors::nagios::{Nagios, write_state};
use pagerbridge_testkit::monitors::{monitor_dir, wait_for};
use serde_json::{Value, json};

const HOST: &str = "db1";
const SERVICE: &str = "Disk /";
const OTHER: &str = "Other";

fn objects_cfg(dir: &Path) -> String {
    let d = dir.display();
    let service = |name: &str, state: &str| {
        format!(
            "define service {{
    host_name               {HOST}
    service_description     {name}
    check_command           check-state-file!{d}/{state}
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            always
    notification_period     always
    notifications_enabled   0
    contacts                nobody
}}
"
        )
    };
    format!(
        "define timeperiod {{
    timeperiod_name always
    alias           Always
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
    sunday          00:00-24:00
}}

define command {{
    command_name    notify-nobody
    command_line    /bin/true
}}

define contact {{
    contact_name                  nobody
    host_notifications_enabled    0
    service_notifications_enabled 0
    host_notification_period      always
    service_notification_period   always
    host_notification_options     n
    service_notification_options  n
    host_notification_commands    notify-nobody
    service_notification_commands notify-nobody
}}

define host {{
    host_name               {HOST}
    alias                   Database server 1
    address                 127.0.0.1
    check_command           check-state-file!{d}/host.state
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            always
    notification_period     always
    notifications_enabled   0
    contacts                nobody
}}

{}{}",
        service(SERVICE, "service.state"),
        service(OTHER, "other.state")
    )
}

fn target(service: &str) -> MonitorRef {
    changes::object(HOST, Some(service))
}

fn adapter(path: &Path) -> std::sync::Arc<dyn Adapter> {
    writeback::build(
        Kind::ExternalCommand,
        &Settings {
            command_file: Some(path.to_owned()),
            options: Value::Null,
            ..Settings::default()
        },
    )
    .expect("settings are valid")
}

fn comments_of(nagios: &Nagios, service: &str) -> Vec<BTreeMap<String, String>> {
    nagios
        .status_blocks("servicecomment")
        .into_iter()
        .filter(|c| {
            c.get("host_name").map(String::as_str) == Some(HOST)
                && c.get("service_description").map(String::as_str) == Some(service)
        })
        .collect()
}

fn acknowledged(nagios: &Nagios, service: &str) -> Option<String> {
    nagios
        .status_of(HOST, Some(service))?
        .get("problem_has_been_acknowledged")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_a_real_nagios_and_cannot_be_injected() {
    if let Err(why) = debian::require_root() {
        return debian::skipped(&why);
    }
    let Some(program) = debian::installed_or_skip("nagios4", &["nagios4-core"]) else {
        return;
    };
    let tmp = monitor_dir();
    let dir = tmp.path();
    write_state(&dir.join("host.state"), 0, "PING OK");
    write_state(&dir.join("service.state"), 2, "DISK CRITICAL - 5% free");
    write_state(&dir.join("other.state"), 2, "OTHER CRITICAL");
    let nagios = match Nagios::start(&program, dir, &[("objects.cfg", &objects_cfg(dir))]).await {
        Ok(n) => n,
        Err(why) => return debian::skipped(&why),
    };
    let report = || nagios.report(HOST, Some(SERVICE));
    wait_for("both services to be checked CRITICAL", report, || {
        (nagios.checked_and(HOST, Some(SERVICE), "2") && nagios.checked_and(HOST, Some(OTHER), "2"))
            .then_some(())
    })
    .await;
    let adapter = adapter(&nagios.command_file());

    let ack = change(
        Action::Acknowledge,
        "Alice Example",
        "Acknowledged in PagerDuty: https://example.pagerduty.com/incidents/Q1TEST",
    );
    let applied = apply(&*adapter, &target(SERVICE), &ack)
        .await
        .unwrap_or_else(|e| panic!("acknowledge: {e}\n{}", report()));
    assert!(
        applied.detail.contains("ACKNOWLEDGE_SVC_PROBLEM"),
        "{}",
        applied.detail
    );
    wait_for("the service to be acknowledged", report, || {
        (acknowledged(&nagios, SERVICE).as_deref() == Some("1")).then_some(())
    })
    .await;
    let ack_comment = wait_for("the acknowledgement's comment", report, || {
        comments_of(&nagios, SERVICE)
            .into_iter()
            .find(|c| c.get("entry_type").map(String::as_str) == Some("4"))
    })
    .await;
    assert_eq!(ack_comment["author"], ack.author);
    assert_eq!(ack_comment["comment_data"], ack.comment);

    // A comment that tries to smuggle in an acknowledgement of the other service.
    let hostile = format!(
        "fine; really\n[{}] ACKNOWLEDGE_SVC_PROBLEM;{HOST};{OTHER};1;0;1;mallory;pwned",
        Timestamp::now().as_second()
    );
    apply(
        &*adapter,
        &target(SERVICE),
        &change(Action::Comment, "Carol;\nx", &hostile),
    )
    .await
    .unwrap_or_else(|e| panic!("comment: {e}\n{}", report()));
    let user_comment = wait_for("the comment", report, || {
        comments_of(&nagios, SERVICE)
            .into_iter()
            .find(|c| c.get("entry_type").map(String::as_str) == Some("1"))
    })
    .await;
    assert_eq!(user_comment["author"], "Carol, x");
    assert!(
        user_comment["comment_data"].starts_with("fine, really [")
            && user_comment["comment_data"].ends_with("mallory,pwned"),
        "the whole text, defused, is one comment: {user_comment:?}"
    );
    // Nagios handles commands in order: the comment is there, so an injected command would
    // have been handled too. Another status update to be sure.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        acknowledged(&nagios, OTHER).as_deref(),
        Some("0"),
        "nothing acknowledged the other service\n{}",
        report()
    );
    assert!(comments_of(&nagios, OTHER).is_empty(), "{}", report());

    apply(
        &*adapter,
        &target(SERVICE),
        &change(Action::Unacknowledge, "Bob", ""),
    )
    .await
    .unwrap_or_else(|e| panic!("unacknowledge: {e}\n{}", report()));
    wait_for("the acknowledgement to be removed", report, || {
        (acknowledged(&nagios, SERVICE).as_deref() == Some("0")).then_some(())
    })
    .await;

    // Nagios stopped: a quick, retryable error, whether it left its pipe behind or not.
    nagios.proc.stop();
    let pipe = nagios.command_file();
    let started = Instant::now();
    let e = apply(&*adapter, &target(SERVICE), &ack)
        .await
        .expect_err("Nagios is down");
    assert!(e.retry, "{e:?}");
    if !pipe.exists() {
        assert!(e.message.contains(&pipe.display().to_string()), "{e:?}");
        let out = Command::new("mkfifo")
            .arg(&pipe)
            .output()
            .expect("mkfifo runs");
        assert!(out.status.success(), "{out:?}");
    }
    let e = apply(&*adapter, &target(SERVICE), &ack)
        .await
        .expect_err("nothing reads the pipe");
    assert!(e.retry, "{e:?}");
    assert!(e.message.contains("not running"), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hang: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_to_a_pipe_never_interleave() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipe = tmp.path().join("nagios.cmd");
    let out = Command::new("mkfifo")
        .arg(&pipe)
        .output()
        .expect("mkfifo runs");
    assert!(out.status.success(), "{out:?}");
    // Read and write: opening never blocks, and the pipe stays open between writers.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pipe)
        .expect("open the pipe");
    const WRITERS: usize = 40;
    let lines = std::thread::spawn(move || {
        BufReader::new(reader)
            .lines()
            .take(WRITERS)
            .map(|l| l.expect("a line"))
            .collect::<Vec<_>>()
    });

    let adapter = adapter(&pipe);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let adapter = adapter.clone();
            tokio::spawn(async move {
                // Long enough that two would not fit in one pipe write: each is cut.
                let comment = format!(
                    "{i:02}:{}",
                    char::from(b'a' + i as u8 % 26).to_string().repeat(6000)
                );
                apply(
                    &*adapter,
                    &target(SERVICE),
                    &change(Action::Comment, "w", &comment),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("write");
    }
    let lines = lines.join().expect("reader");
    let mut seen: Vec<usize> = Vec::new();
    for line in &lines {
        assert!(line.len() < 4000, "{}", line.len());
        let (head, comment) = line
            .rsplit_once(";w;")
            .expect("a whole ADD_SVC_COMMENT line");
        assert!(
            head.ends_with(&format!("ADD_SVC_COMMENT;{HOST};{SERVICE};1")),
            "{head}"
        );
        let (n, body) = comment.split_once(':').expect("numbered");
        let n: usize = n.parse().expect("a number");
        let c = char::from(b'a' + n as u8 % 26);
        let body = body.strip_suffix('…').expect("cut, with an ellipsis");
        assert!(
            body.chars().all(|x| x == c),
            "line {n} holds only its own text"
        );
        seen.push(n);
    }
    seen.sort();
    assert_eq!(seen, (0..WRITERS).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_regular_file_is_appended_and_a_missing_one_is_retried() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("spool.cmd");
    std::fs::write(&file, "earlier\n").expect("write");
    let spool = adapter(&file);
    apply(
        &*spool,
        &target(SERVICE),
        &change(Action::Acknowledge, "a", "one"),
    )
    .await
    .expect("append");
    apply(
        &*spool,
        &target(SERVICE),
        &change(Action::Unacknowledge, "a", ""),
    )
    .await
    .expect("append");
    let text = std::fs::read_to_string(&file).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "earlier");
    assert!(
        lines[1].ends_with(&format!(
            "] ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};1;0;1;a;one"
        )),
        "{text}"
    );
    assert!(
        lines[2].ends_with(&format!("] REMOVE_SVC_ACKNOWLEDGEMENT;{HOST};{SERVICE}")),
        "{text}"
    );

    let missing = tmp.path().join("rw/nagios.cmd");
    let e = apply(
        &*adapter(&missing),
        &target(SERVICE),
        &change(Action::Comment, "a", "b"),
    )
    .await
    .expect_err("no file");
    assert!(e.retry, "{e:?}");
    assert!(e.message.contains(&missing.display().to_string()), "{e:?}");
    assert!(!missing.exists(), "the adapter does not create it");

    let e = apply(
        &*spool,
        &target(SERVICE),
        &change(Action::Resolve, "a", "b"),
    )
    .await
    .expect_err("no resolve");
    assert!(!e.retry, "{e:?}");

    let e = changes::refused(
        Kind::ExternalCommand,
        &Settings {
            command_file: Some(file.clone()),
            options: json!({"sticky": "2"}),
            ..Settings::default()
        },
    );
    assert_eq!(e.field, "options.sticky");
}

/// A monitor that stopped reading its command pipe (hanging, not stopped): the write-back waits
/// a bounded time for room, then gives a retry error instead of blocking a thread forever.
#[tokio::test]
async fn a_pipe_that_stays_full_is_a_retry_after_a_bounded_wait() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipe = tmp.path().join("nagios.cmd");
    let out = Command::new("mkfifo")
        .arg(&pipe)
        .output()
        .expect("mkfifo runs");
    assert!(out.status.success(), "{out:?}");
    // A reader that never reads (it also writes, to fill the pipe first).
    let mut hog = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&pipe)
        .expect("open the pipe");
    let chunk = [b'x'; 4096];
    while hog.write(&chunk).is_ok() {}

    let started = Instant::now();
    let err = apply(
        &*adapter(&pipe),
        &target(SERVICE),
        &change(Action::Comment, "w", "hello"),
    )
    .await
    .expect_err("nothing fits");
    let waited = started.elapsed();
    assert!(err.retry, "{err:?}");
    assert!(err.message.contains("stayed full"), "{}", err.message);
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "waited {waited:?}"
    );
    drop(hog);
}
