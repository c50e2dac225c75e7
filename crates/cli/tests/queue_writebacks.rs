//! `pagerbridge queue writebacks` and the write-back line of `queue status`: what the way back
//! is doing, from the operator's shell.

mod support;

use jiff::Timestamp;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{NewWriteback, SyncStore, WritebackOutcome};
use serde_json::{Value, json};
use support::*;

async fn three_writebacks(db: &std::path::Path) {
    let store = SqliteStore::open(db).await.unwrap();
    let wb = |monitor: &str, key: &str, action: &str| NewWriteback {
        monitor: monitor.into(),
        routing_key: "R".into(),
        dedup_key: key.into(),
        change: json!({"change": {"action": action}, "target": {"kind": "none"}}),
        due: Timestamp::now(),
    };
    let ids = store
        .enqueue_writebacks(&[
            wb("icinga", "db1/Disk /", "acknowledge"),
            wb("nagios", "web1/HTTP", "comment"),
            wb("am", "HighLoad", "resolve"),
        ])
        .await
        .unwrap();
    store
        .finish_writeback(
            ids[1],
            &WritebackOutcome::Failed {
                error: "HTTP 401: credentials refused".into(),
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    store
        .finish_writeback(
            ids[2],
            &WritebackOutcome::Done {
                detail: "silence 1234 expired".into(),
                memo: None,
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn write_backs_are_listed_with_their_state_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    three_writebacks(&data.join("pagerbridge.db")).await;
    let d = data.to_str().unwrap();

    let out = pb_async(&["queue", "writebacks", "--data-dir", d]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", out.stdout);
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[1].contains("am") && lines[1].contains("done"),
        "newest first: {}",
        out.stdout
    );
    assert!(lines[1].contains("silence 1234 expired"));
    assert!(lines[2].contains("failed") && lines[2].contains("credentials refused"));
    assert!(lines[3].contains("icinga") && lines[3].contains("pending"));
    assert!(lines[3].contains("acknowledge") && lines[3].contains("now"));

    let out = pb_async(&[
        "queue",
        "writebacks",
        "--data-dir",
        d,
        "--state",
        "failed",
        "--json",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["monitor"], "nagios");
    assert_eq!(rows[0]["state"], "failed");
    assert_eq!(rows[0]["last_error"], "HTTP 401: credentials refused");
    assert_eq!(rows[0]["attempts"], 1);

    let out = pb_async(&["queue", "status", "--data-dir", d]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Write-backs to the monitors: 1 waiting, 1 failed"),
        "{}",
        out.stdout
    );

    let out = pb_async(&["queue", "writebacks", "--data-dir", d, "--state", "bogus"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("pending, done, failed"),
        "{}",
        out.stderr
    );
}
