//! Idle latency from the moment a client sends an event to the relay to the moment the
//! emulator (PagerDuty) receives it, read from the emulator's log of received events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jiff::Timestamp;
use serde_json::Value;

use crate::load::{Conn, addr_of, trigger};
use crate::stats::{Latency, SystemCpu, ms};

#[derive(Debug, Clone)]
pub struct LatencyResult {
    /// Send to the relay's 2xx (durably stored).
    pub relay: Latency,
    /// Send to the emulator's `received_at`.
    pub end_to_end: Latency,
    /// Samples the emulator never received (within the wait).
    pub missing: usize,
    /// CPU use of the whole machine while sampling, % of one core.
    pub cpu_machine: f64,
}

impl LatencyResult {
    pub fn lines(&self) -> String {
        let l = |x: &Latency| {
            format!(
                "p50 {} p90 {} p99 {} max {} ({} samples)",
                ms(x.p50),
                ms(x.p90),
                ms(x.p99),
                ms(x.max),
                x.count
            )
        };
        format!(
            "relay 2xx:          {}\nemulator received:  {}\nmachine CPU while sampling: {:.0}%{}",
            l(&self.relay),
            l(&self.end_to_end),
            self.cpu_machine,
            if self.missing > 0 {
                format!("\n{} samples never reached the emulator", self.missing)
            } else {
                String::new()
            }
        )
    }
}

/// The emulator's received events after `since_seq`: (seq, dedup key, received_at).
async fn received(emu: &mut Conn, since_seq: u64) -> anyhow::Result<Vec<(u64, String, Timestamp)>> {
    let a = emu
        .get(&format!("/_emulator/events?since_seq={since_seq}"))
        .await?;
    if !a.status.is_success() {
        bail!("GET /_emulator/events answered {}", a.status);
    }
    let v: Value = serde_json::from_slice(&a.body)?;
    let mut out = Vec::new();
    for e in v["events"].as_array().context("no events list")? {
        let seq = e["seq"].as_u64().context("seq")?;
        let key = e["dedup_key"].as_str().unwrap_or_default().to_owned();
        let at: Timestamp = e["received_at"]
            .as_str()
            .context("received_at")?
            .parse()
            .context("received_at is not a timestamp")?;
        out.push((seq, key, at));
    }
    Ok(out)
}

/// The last sequence number of the emulator's log (`at_least` if nothing came after it), found
/// with requests of one event each, so that a long log is never transferred.
pub async fn last_seq(emu: &mut Conn, at_least: u64) -> anyhow::Result<u64> {
    async fn after(emu: &mut Conn, x: u64) -> anyhow::Result<bool> {
        let a = emu
            .get(&format!("/_emulator/events?since_seq={x}&limit=1"))
            .await?;
        if !a.status.is_success() {
            bail!("GET /_emulator/events answered {}", a.status);
        }
        let v: Value = serde_json::from_slice(&a.body)?;
        Ok(v["events"].as_array().is_some_and(|e| !e.is_empty()))
    }
    if !after(emu, at_least).await? {
        return Ok(at_least);
    }
    let mut step = 1;
    while after(emu, at_least + step).await? {
        step *= 2;
    }
    // Events exist after `lo`, none after `hi`.
    let (mut lo, mut hi) = (at_least + step / 2, at_least + step);
    if step == 1 {
        lo = at_least;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if after(emu, mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Sends `warmup` events and waits until the emulator has the last of them; returns the
/// emulator's sequence number then.
async fn settle(
    daemon: &mut Conn,
    emu: &mut Conn,
    run: &str,
    warmup: usize,
) -> anyhow::Result<u64> {
    let base = last_seq(emu, 0).await?;
    let mut last = String::new();
    for i in 0..warmup.max(1) {
        last = format!("lat-{run}-warmup-{i}");
        let a = daemon.post("/v2/enqueue", trigger(&last)).await?;
        if !a.status.is_success() {
            bail!("the daemon answered {} to a warm-up event", a.status);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received(emu, base).await?;
        if let Some(e) = got.iter().find(|e| e.1 == last) {
            return Ok(got.last().map(|x| x.0).unwrap_or(e.0));
        }
        if Instant::now() > deadline {
            bail!(
                "warm-up events did not reach the emulator within 30 s: is the daemon delivering to it?"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn measure(
    daemon_url: &str,
    emulator_url: &str,
    samples: usize,
    interval: Duration,
) -> anyhow::Result<LatencyResult> {
    let mut daemon = Conn::open(addr_of(daemon_url)?).await?;
    let mut emu = Conn::open(addr_of(emulator_url)?).await?;
    let run = Timestamp::now().as_millisecond().to_string();
    let since = settle(&mut daemon, &mut emu, &run, 20).await?;
    // Built beforehand so that serialising is not timed.
    let bodies: Vec<(String, bytes::Bytes)> = (0..samples)
        .map(|i| {
            let k = format!("lat-{run}-{i:05}");
            let b = trigger(&k);
            (k, b)
        })
        .collect();
    let mut sent: HashMap<String, Timestamp> = HashMap::with_capacity(samples);
    let mut relay = Vec::with_capacity(samples);
    let mut next = Instant::now();
    let system = SystemCpu::start();
    for (key, body) in bodies {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let wall = Timestamp::now();
        let t = Instant::now();
        let a = daemon.post("/v2/enqueue", body).await?;
        relay.push(t.elapsed().as_micros() as u64);
        if !a.status.is_success() {
            bail!("the daemon answered {} to a sample", a.status);
        }
        sent.insert(key, wall);
    }
    let cpu_machine = system.busy_percent().unwrap_or(0.0);
    // Wait for the stragglers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got;
    loop {
        got = received(&mut emu, since).await?;
        let seen = got.iter().filter(|e| sent.contains_key(&e.1)).count();
        if seen >= samples || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut e2e = Vec::with_capacity(samples);
    let mut first_seen: HashMap<&str, Timestamp> = HashMap::new();
    for (_, key, at) in &got {
        first_seen.entry(key.as_str()).or_insert(*at);
    }
    for (key, at_send) in &sent {
        if let Some(at) = first_seen.get(key.as_str()) {
            let d = at.duration_since(*at_send).as_micros().max(0);
            e2e.push(d as u64);
        }
    }
    Ok(LatencyResult {
        relay: Latency::of(relay),
        missing: samples - e2e.len(),
        end_to_end: Latency::of(e2e),
        cpu_machine,
    })
}
