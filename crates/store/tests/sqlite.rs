//! The conformance suite on the SQLite store, plus what only SQLite has: the data directory
//! lock and a full database.

use std::sync::Arc;

use pagerbridge_store::sqlite::{DataDirLock, SqliteStore};
use pagerbridge_store::{Store, StoreError};

async fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(&dir.join("outbox.db")).await.unwrap())
}

pagerbridge_store::conformance_tests!(fresh());

#[test]
fn a_data_directory_is_used_by_one_daemon_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = DataDirLock::acquire(&data).expect("the first daemon gets the lock");
    let err = DataDirLock::acquire(&data)
        .err()
        .expect("the second does not");
    let msg = err.to_string();
    assert!(
        msg.contains("in use by another pagerbridge daemon"),
        "{msg}"
    );
    assert!(
        msg.contains(&std::process::id().to_string()),
        "names the holder: {msg}"
    );
    drop(first);
    DataDirLock::acquire(&data).expect("free again once the first is gone");
}

#[test]
fn an_unusable_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = DataDirLock::acquire(&file.join("data")).err().unwrap();
    assert!(matches!(err, StoreError::Unavailable(_)));
    assert!(
        err.to_string().contains("cannot create data directory"),
        "{err}"
    );
}

#[tokio::test]
async fn the_schema_survives_reopening_and_so_does_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let s = SqliteStore::open(&path).await.unwrap();
    let ev = pagerbridge_store::NewEvent {
        kind: pagerbridge_store::EventKind::EventsV2,
        routing_key: "r".into(),
        dedup_key: Some("k".into()),
        action: Some(pagerduty::events::EventAction::Trigger),
        body: b"{}".to_vec(),
        source: "test".into(),
        received_at: jiff::Timestamp::now(),
        origin: None,
    };
    let ids = s.insert(&[ev]).await.unwrap();
    s.close().await;
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(s.stats().await.unwrap().pending, 1);
    assert!(s.get(ids[0]).await.unwrap().is_some());
}

/// `pagerbridge send` opens the store once per notification. SQLite replays the whole
/// write-ahead log when a process opens a database nobody else has open, so a brief open
/// checkpoints early and keeps the log short; the daemon's default (1,000 pages) would let
/// 150 notifications grow it past 2 MB.
#[tokio::test]
async fn brief_opens_keep_the_write_ahead_log_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    // A second connection stays open, as the daemon's would: closing the last connection
    // checkpoints and deletes the log, which would hide its growth.
    let daemon = SqliteStore::open(&path).await.unwrap();
    for i in 0..150 {
        let s = SqliteStore::open_brief(&path).await.unwrap();
        let ev = pagerbridge_store::NewEvent {
            kind: pagerbridge_store::EventKind::EventsV2,
            routing_key: "r".into(),
            dedup_key: Some(format!("k{i}")),
            action: Some(pagerduty::events::EventAction::Trigger),
            body: br#"{"payload":{"summary":"disk full"}}"#.to_vec(),
            source: "test".into(),
            received_at: jiff::Timestamp::now(),
            origin: None,
        };
        s.insert(&[ev]).await.unwrap();
        drop(s);
    }
    let wal = std::fs::metadata(dir.path().join("outbox.db-wal"))
        .unwrap()
        .len();
    assert!(wal < 1 << 20, "the log grew to {wal} bytes");
    assert_eq!(daemon.stats().await.unwrap().pending, 150, "every row kept");
}

async fn fresh_sqlite() -> Arc<SqliteStore> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(&dir.join("outbox.db")).await.unwrap())
}

mod sync {
    pagerbridge_store::sync_conformance_tests!(super::fresh_sqlite());
}
