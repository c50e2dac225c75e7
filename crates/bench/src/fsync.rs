//! The disk's durable-write latency: what one group commit cannot go below.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use crate::stats::Latency;

#[derive(Debug, Clone, Copy)]
pub struct FsyncResult {
    /// Appending 4 KiB and `fdatasync` (the file grows, as a write-ahead log does).
    pub append: Latency,
    /// Rewriting one 4 KiB block in place and `fdatasync` (as a reset write-ahead log does).
    pub overwrite: Latency,
    /// The same with `fsync`, which SQLite calls on Linux unless built with `HAVE_FDATASYNC`:
    /// the file's new modification time must then be made durable as well.
    pub overwrite_fsync: Latency,
}

/// `count` writes of each kind in a scratch file inside `dir` (which should be on the disk
/// the outbox lives on), removed afterwards.
pub fn measure(dir: &Path, count: usize) -> anyhow::Result<FsyncResult> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fsync-probe.bin");
    let block = [0x5au8; 4096];
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    f.sync_all()?;
    let mut append = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        append.push(t.elapsed().as_micros() as u64);
    }
    let mut overwrite = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&block)?;
        f.sync_data()?;
        overwrite.push(t.elapsed().as_micros() as u64);
    }
    let mut overwrite_fsync = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&block)?;
        f.sync_all()?;
        overwrite_fsync.push(t.elapsed().as_micros() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(FsyncResult {
        append: Latency::of(append),
        overwrite: Latency::of(overwrite),
        overwrite_fsync: Latency::of(overwrite_fsync),
    })
}
