//! PagerDuty's webhooks into the daemon: how fast a signed Webhooks v3 delivery is verified,
//! stored (durably, before the answer) and answered. PagerDuty gives up on a delivery after 5 s
//! and disables a subscription that keeps failing, so the answer time is what matters. Each
//! delivery is an `incident.acknowledged` for an incident pagerbridge did not open, so the
//! processing after the answer stays cheap and does not compete with what is measured.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::json;

use crate::load::{Conn, addr_of};
use crate::procs::{self, DaemonSetup};
use crate::stats::{Latency, ms};

const SECRET: &str = "bench-webhook-secret";

pub struct WebhookResult {
    pub sequential: Latency,
    pub clients: usize,
    pub per_second: f64,
    pub concurrent: Latency,
}

impl WebhookResult {
    pub fn lines(&self) -> String {
        let s = &self.sequential;
        let c = &self.concurrent;
        format!(
            "webhook v3, one at a time: {} deliveries, p50 {}, p90 {}, p99 {}, max {}\n\
             webhook v3, {} clients: {:.0} deliveries/s, p50 {}, p99 {}, max {}",
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            self.clients,
            self.per_second,
            ms(c.p50),
            ms(c.p99),
            ms(c.max)
        )
    }
}

fn delivery(n: u64) -> (Bytes, String, String) {
    let body = json!({"event": {
        "id": format!("01BENCH{n:019}"),
        "event_type": "incident.acknowledged",
        "resource_type": "incident",
        "occurred_at": "2026-11-21T10:00:00.000Z",
        "agent": {"id": "PUSER01", "type": "user_reference", "summary": "Ada Operator"},
        "client": null,
        "data": {"id": format!("PB{n:06}"), "type": "incident", "status": "acknowledged",
                 "incident_key": format!("bench/{n}"), "title": "Disk full",
                 "html_url": format!("https://acme.pagerduty.com/incidents/PB{n:06}"),
                 "service": {"id": "PSVC001", "type": "service_reference"}},
    }})
    .to_string();
    let signature = pagerduty::webhook::sign(SECRET.as_bytes(), body.as_bytes());
    (Bytes::from(body), signature, format!("bench-{n}"))
}

async fn post(conn: &mut Conn, n: u64) -> anyhow::Result<u64> {
    let (body, sig, id) = delivery(n);
    let started = Instant::now();
    let a = conn
        .request_with(
            http::Method::POST,
            "/webhooks/pagerduty",
            Some(body),
            &[("x-pagerduty-signature", &sig), ("x-webhook-id", &id)],
        )
        .await?;
    let took = started.elapsed().as_micros() as u64;
    if a.status.as_u16() != 202 {
        bail!(
            "delivery {n} answered {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    Ok(took)
}

/// `count` deliveries one after another, then `clients` concurrent senders for `seconds`.
pub async fn run(
    pb: &Path,
    work: &Path,
    count: usize,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<WebhookResult> {
    let dir = work.join("webhooks");
    let _ = std::fs::remove_dir_all(&dir);
    let setup = DaemonSetup {
        // Nothing is delivered to PagerDuty in this measurement.
        pagerduty_url: "http://127.0.0.1:9".into(),
        coalesce: true,
        max_in_flight: 32,
        store_url: None,
    };
    procs::write_config(&dir, &setup)?;
    let config = dir.join("pagerbridge.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!("\n[sync.webhooks]\nsecrets = [\"{SECRET}\"]\n"));
    std::fs::write(&config, &text)?;
    let daemon = procs::daemon_with_config(pb, &dir).await?;
    let addr = addr_of(&daemon.url)?;

    let mut conn = Conn::open(addr).await?;
    for n in 0..20 {
        post(&mut conn, 1_000_000 + n).await?;
    }
    let mut sequential = Vec::with_capacity(count);
    for n in 0..count as u64 {
        sequential.push(post(&mut conn, n).await?);
    }

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients as u64 {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut out = Vec::new();
            let mut n = 10_000_000 * (c + 1);
            while Instant::now() < deadline {
                out.push(post(&mut conn, n).await?);
                n += 1;
            }
            anyhow::Ok(out)
        }));
    }
    let started = Instant::now();
    let mut concurrent = Vec::new();
    for t in tasks {
        concurrent.extend(t.await.context("a client task")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    daemon.stop(Duration::from_secs(20)).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(WebhookResult {
        per_second: concurrent.len() as f64 / elapsed,
        sequential: Latency::of(sequential),
        clients,
        concurrent: Latency::of(concurrent),
    })
}
