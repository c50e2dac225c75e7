//! Bad storage under a running daemon: a full disk, a data directory that cannot be used, and
//! two daemons on one data directory. (Crash and power-loss durability are tested elsewhere.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use pagerbridge_store::State;
use pagerbridge_testkit::TestPd;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, options: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .expect("mount runs");
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a test failed with files open): detach it now, freed once closed.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn big_trigger(key: &str, bytes: usize) -> serde_json::Value {
    let mut ev = trigger(DEMO_ROUTING_KEY, key, 0);
    ev["payload"]["custom_details"] = json!({"filler": "x".repeat(bytes)});
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_events_with_503_and_recovers() {
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "size=2m") {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("SKIPPED full-disk test: {reason}");
            return;
        }
    };
    // Most of the space goes to a file the test deletes later to free it.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 1200 * 1024]).unwrap();
    let mut d = Daemon::start_at(&pd.url(), dir, "mnt/data", Opts::default()).await;

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for i in 0..200 {
        let key = format!("full/{i}");
        let a = d.post("/v2/enqueue", &big_trigger(&key, 40 * 1024)).await;
        match a.status {
            202 => accepted.push(key),
            503 => {
                assert_eq!(a.body["status"], "unavailable", "{}", a.body);
                let msg = a.body["message"].as_str().unwrap_or("");
                assert!(
                    msg.contains("could not store") && msg.contains("not accepted"),
                    "{msg}"
                );
                assert!(a.body["errors"].is_array(), "{}", a.body);
                assert!(a.header("retry-after").is_some(), "503 without Retry-After");
                assert!(
                    a.header("content-type")
                        .unwrap()
                        .starts_with("application/json")
                );
                refused.push(key);
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("{key}: unexpected {other}: {}", a.body),
        }
    }
    eprintln!(
        "disk full after {} accepted events; refused {refused:?}",
        accepted.len()
    );
    assert!(!refused.is_empty(), "the disk never filled");
    assert!(!accepted.is_empty());

    // Every answered event is whole in the store; none of the refused ones is.
    let store = d.store();
    for key in &accepted {
        let r = records(&store, key).await;
        assert_eq!(r.len(), 1, "{key} got a 202 but is not stored");
        let body: serde_json::Value = serde_json::from_slice(&r[0].body).unwrap();
        assert_eq!(
            body["payload"]["custom_details"]["filler"]
                .as_str()
                .unwrap()
                .len(),
            40 * 1024
        );
    }
    for key in &refused {
        assert!(
            records(&store, key).await.is_empty(),
            "{key} got a 503 but was stored"
        );
    }

    // Still serving.
    let health = answer(d.http.get(format!("{}/healthz", d.base))).await;
    assert_eq!(health.status, 200);
    let get = answer(d.http.get(format!("{}/v2/enqueue", d.base))).await;
    assert_eq!(get.status, 405);
    let invalid = d.post("/v2/enqueue", &trigger("short", "k", 1)).await;
    assert_eq!(
        invalid.status, 400,
        "validation still answers: {}",
        invalid.body
    );

    // Space again: accepted again, and everything is delivered.
    std::fs::remove_file(&filler).unwrap();
    let a = d
        .post("/v2/enqueue", &trigger(DEMO_ROUTING_KEY, "after-full", 1))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    accepted.push("after-full".into());
    wait_drained(&store, WAIT).await;
    for key in &accepted {
        assert_eq!(
            records(&store, key).await[0].state,
            State::Delivered,
            "{key}"
        );
        assert_eq!(incident(&pd, key).1, 1, "{key} reached PagerDuty once");
    }
    for key in &refused {
        assert_eq!(incident(&pd, key).1, 0, "{key} was never accepted");
    }
    drop(store);
    d.stop().await;
}

async fn start_error(config: &pagerbridge_config::Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    match pagerbridge_server::start(config, Some(listener)).await {
        Ok(r) => {
            let _ = r.stop().await;
            panic!("the daemon started on an unusable data directory")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unusable_data_directory_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let url = "http://127.0.0.1:9";

    // Under a regular file.
    let c = config(url, dir.path(), "a-file/data", &Opts::default());
    let e = start_error(&c).await;
    eprintln!("under a file: {e}");
    assert!(e.contains(&file.join("data").display().to_string()), "{e}");
    assert!(e.contains("data directory"), "{e}");

    // A regular file itself.
    let c = config(url, dir.path(), "a-file", &Opts::default());
    let e = start_error(&c).await;
    eprintln!("a file: {e}");
    assert!(e.contains(&file.display().to_string()), "{e}");

    // The database's place taken by a directory.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("pagerbridge.db")).unwrap();
    let c = config(url, dir.path(), "data", &Opts::default());
    let e = start_error(&c).await;
    eprintln!("database path is a directory: {e}");
    assert!(
        e.contains(&data.join("pagerbridge.db").display().to_string()),
        "{e}"
    );

    // Read-only (as root, permissions do not stop us; a read-only file system does).
    let mnt = dir.path().join("ro");
    match Tmpfs::mount(&mnt, "size=1m") {
        Err(reason) => eprintln!("SKIPPED read-only data directory: {reason}"),
        Ok(fs) => {
            std::fs::create_dir(mnt.join("data")).unwrap();
            fs.remount("ro");
            let c = config(url, dir.path(), "ro/data", &Opts::default());
            let e = start_error(&c).await;
            eprintln!("read-only: {e}");
            assert!(e.contains(&mnt.join("data").display().to_string()), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_daemon_on_the_same_data_directory_is_refused() {
    let pd = TestPd::start().await;
    let mut first = Daemon::start(&pd, Opts::default()).await;
    let e = start_error(&first.config).await;
    eprintln!("second daemon: {e}");
    assert!(e.contains("in use by another pagerbridge daemon"), "{e}");
    assert!(
        e.contains(&first.config.data_dir().display().to_string()),
        "{e}"
    );
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");

    // The first one is untouched.
    first
        .send(&trigger(DEMO_ROUTING_KEY, "still-mine", 1))
        .await;
    wait_drained(&first.store(), WAIT).await;
    assert_eq!(incident(&pd, "still-mine").1, 1);

    // Once it stops, the directory is free.
    let config = first.config.clone();
    first.stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let again = match pagerbridge_server::start(&config, Some(listener)).await {
        Ok(r) => r,
        Err(e) => panic!("the data directory is free after a stop: {e}"),
    };
    let rec = all_records(again.store().as_ref()).await;
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].state, State::Delivered);
    again.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivered_records_are_purged_after_the_retention_and_dead_letters_kept() {
    let pd = TestPd::start().await;
    let opts = || Opts {
        retention: "1s",
        ..Opts::default()
    };
    let rk = pagerbridge_testkit::DEMO_ROUTING_KEY;
    let mut d = Daemon::start(&pd, opts()).await;
    d.send(&trigger(rk, "kept-then-purged", 1)).await;
    wait_drained(&d.store(), WAIT).await;
    inject(&pd, status_fault(400, 1));
    d.send(&trigger(rk, "refused", 2)).await;
    wait_drained(&d.store(), WAIT).await;
    let delivered = records(&d.store(), "kept-then-purged").await;
    assert_eq!(delivered[0].state, State::Delivered);
    d.stop().await;
    // Past the retention, the daemon purges when it starts (and then periodically).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d = Daemon::start_at(&pd.url(), dir, "data", opts()).await;
    eventually("the delivered record to be purged", WAIT, || async {
        records(&d.store(), "kept-then-purged")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let dead = records(&d.store(), "refused").await;
    assert_eq!(dead.len(), 1, "a dead letter waits for an operator");
    assert_eq!(dead[0].state, State::Dead);
}
