//! The README's first command, as a new user meets it: `pagerbridge serve --demo` prints
//! commands to try; each of them, run exactly as printed, must work, and the incidents they
//! describe must appear in the built-in emulator.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::BIN;

/// The commands of the banner: a line starting with `curl` or `pagerbridge`, with its
/// continuation lines (ending in `\`) joined.
fn commands(banner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in banner.lines() {
        let t = line.trim();
        if let Some(cmd) = current.as_mut() {
            cmd.push(' ');
            cmd.push_str(t.trim_end_matches('\\').trim_end());
            if !t.ends_with('\\') {
                out.push(current.take().unwrap());
            }
            continue;
        }
        // `See the incidents: URL   (or: curl ...)` and `Queue:   pagerbridge ...` too.
        let t = match (t.split_once("(or: "), t.strip_prefix("Queue:")) {
            (Some((_, rest)), _) => rest.trim_end_matches(')'),
            (None, Some(rest)) => rest.trim(),
            (None, None) => t,
        };
        let is_command = t.starts_with("curl ")
            || (t.starts_with("pagerbridge ") && !t.starts_with("pagerbridge demo:"));
        if is_command {
            let first = t.trim_end_matches('\\').trim_end();
            if t.ends_with('\\') {
                current = Some(first.to_owned());
            } else {
                out.push(first.to_owned());
            }
        }
    }
    out
}

fn run(cmd: &str, cwd: &std::path::Path) -> String {
    // The banner says `pagerbridge`; the user has it on PATH, the test has it in target/.
    let cmd = match cmd.strip_prefix("pagerbridge ") {
        Some(rest) => format!("'{BIN}' {rest}"),
        None => cmd.to_owned(),
    };
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(cwd)
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("PAGERBRIDGE_CONFIG")
        .env_remove("PAGERBRIDGE_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd}\nexit {}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn incidents(banner: &str, cwd: &std::path::Path) -> Vec<(String, String)> {
    let list_cmd = commands(banner)
        .into_iter()
        .find(|c| c.contains("/incidents"))
        .expect("the banner shows how to list incidents");
    let v: Value = serde_json::from_str(&run(&list_cmd, cwd)).unwrap();
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_command_the_demo_prints_works() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--emulator-listen",
            "127.0.0.1:0",
        ])
        .current_dir(tmp.path())
        .env_remove("PAGERBRIDGE_CONFIG")
        .env("PAGERBRIDGE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut buf = [0u8; 4096];
    while !banner.contains("Press Ctrl-C to stop.") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the demo exited early: {banner}");
        banner.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let guard = KillOnDrop(child);

    let cmds = commands(&banner);
    let trigger = cmds.iter().find(|c| c.contains("\"trigger\"")).unwrap();
    let resolve = cmds.iter().find(|c| c.contains("\"resolve\"")).unwrap();
    let alertmanager = cmds
        .iter()
        .find(|c| c.contains("/ingest/alertmanager"))
        .unwrap();
    let send = cmds
        .iter()
        .find(|c| c.starts_with("pagerbridge send"))
        .unwrap();
    let queue = cmds
        .iter()
        .find(|c| c.starts_with("pagerbridge queue"))
        .unwrap();
    for c in [trigger, alertmanager, send] {
        run(c, tmp.path());
    }
    let want = |list: &[(String, String)]| {
        let has =
            |title: &str, status: &str| list.iter().any(|(t, s)| t.contains(title) && s == status);
        has("Disk full on db1", "triggered")
            && has("Load above 8 on web1", "triggered")
            && has("db2/Disk /", "triggered")
    };
    wait(&banner, tmp.path(), "the three incidents", want);
    run(resolve, tmp.path());
    wait(&banner, tmp.path(), "the resolved disk/db1", |list| {
        list.iter()
            .any(|(t, s)| t == "Disk full on db1" && s == "resolved")
    });
    let q = run(queue, tmp.path());
    assert!(q.contains("delivered"), "{q}");
    // The incident commands and pagerbridge's own API see the same incidents.
    let list = cmds
        .iter()
        .find(|c| c.starts_with("pagerbridge incident list"))
        .unwrap();
    let table = run(list, tmp.path());
    assert!(
        table
            .lines()
            .any(|l| l.contains("resolved") && l.contains("Disk full on db1")),
        "{table}"
    );
    let ready = cmds.iter().find(|c| c.contains("/readyz")).unwrap();
    let answer: Value = serde_json::from_str(&run(ready, tmp.path())).unwrap();
    assert_eq!(answer["status"], "ready", "{answer}");
    let api = cmds
        .iter()
        .find(|c| c.contains("/api/v1/incidents"))
        .unwrap();
    let answer: Value = serde_json::from_str(&run(api, tmp.path())).unwrap();
    assert_eq!(answer["count"], 3, "{answer}");
    let outage = cmds
        .iter()
        .find(|c| c.contains("/_emulator/faults"))
        .unwrap();
    let answer = run(outage, tmp.path());
    assert!(
        answer.contains("\"id\""),
        "the emulator takes the fault: {answer}"
    );
    drop(guard);
}

fn wait(banner: &str, cwd: &std::path::Path, what: &str, ok: impl Fn(&[(String, String)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = incidents(banner, cwd);
        if ok(&list) {
            return;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
