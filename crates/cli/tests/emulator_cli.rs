//! The `pagerbridge emulator` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_pagerbridge");

/// Kills the child when the test ends, even on a failed assertion.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the emulator on a free port and returns it with the URL it printed.
fn start(extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("PagerDuty emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_owned();
    (Running(child), url)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn starts_and_serves_the_demo_account() {
    let (_emu, url) = start(&[]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let resp = http()
        .post(format!("{url}/v2/enqueue"))
        .json(&serde_json::json!({
            "routing_key": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "event_action": "trigger",
            "dedup_key": "disk/db1",
            "payload": {"summary": "Disk full on db1", "source": "db1", "severity": "critical"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["dedup_key"], "disk/db1");

    let list: serde_json::Value = http()
        .get(format!("{url}/incidents?statuses[]=triggered"))
        .header("Authorization", "Token token=emulator-account-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["incidents"][0]["title"], "Disk full on db1");
    let page = http().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Disk full on db1"),
        "the HTML page lists the incident"
    );
}

#[tokio::test]
async fn printed_seed_loads_back_and_rate_limit_flags_apply() {
    let out = Command::new(BIN)
        .args(["emulator", "--print-seed"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("a1b2c3d4e5f60718293a4b5c6d7e8f90"));
    let dir = std::env::temp_dir().join(format!("pb-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.toml");
    // Change one thing so the test sees the file was used, not the built-in demo.
    std::fs::write(&path, text.replace("Demo Service", "Seeded From File")).unwrap();

    let (_emu, url) = start(&["--seed", path.to_str().unwrap(), "--events-per-minute", "1"]);
    let services: serde_json::Value = http()
        .get(format!("{url}/services"))
        .header("Authorization", "Token token=emulator-account-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["services"][0]["name"], "Seeded From File");
    let ev = serde_json::json!({"routing_key": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "info"}});
    let first = http()
        .post(format!("{url}/v2/enqueue"))
        .json(&ev)
        .send()
        .await
        .unwrap();
    let second = http()
        .post(format!("{url}/v2/enqueue"))
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (202, 429)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_broken_seed_file_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("pb-badseed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.toml");
    std::fs::write(&path, "[[services]]\nname = \"x\"\nurgncy = \"high\"\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seed.toml"), "{err}");
    assert!(err.contains("line 3"), "names the line: {err}");
    assert!(err.contains("urgncy"), "names the field: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_describes_the_emulator() {
    let out = Command::new(BIN)
        .args(["emulator", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--seed",
        "--print-seed",
        "--no-rate-limit",
        "--events-per-minute",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("pagerbridge ")
    );
}

#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_server() {
    // Pick a free port, then start with stdout already closed: the banner write fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let _guard = Running(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = http()
            .get(format!("http://127.0.0.1:{port}/services"))
            .header("Authorization", "Token token=emulator-account-token")
            .send()
            .await;
        if let Ok(r) = answer {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator died or never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still alive a moment later (the banner was written, and failed, before listening ended).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = http()
        .get(format!("http://127.0.0.1:{port}/services"))
        .header("Authorization", "Token token=emulator-account-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
