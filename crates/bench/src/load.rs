//! The load generator: clients on keep-alive HTTP/1.1 connections, one connection per client,
//! each sending its next request when the previous one is answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pagerduty_emulator::seed::DEMO_ROUTING_KEY;
use tokio::net::TcpStream;

use crate::stats::{CpuWatch, Latency, SystemCpu, ms, thread_cpu, thread_percent};

/// The address of an `http://HOST:PORT` URL (loopback only: no name resolution).
pub fn addr_of(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport
        .parse()
        .with_context(|| format!("{url}: expected http://IP:PORT"))
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// What came back.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn request(
        &mut self,
        method: http::Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Answer> {
        self.request_with(method, path, body, &[]).await
    }

    /// A request with extra headers (a webhook's signature and id).
    pub async fn request_with(
        &mut self,
        method: http::Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    pub async fn post(&mut self, path: &str, body: Bytes) -> anyhow::Result<Answer> {
        self.request(http::Method::POST, path, Some(body)).await
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.request(http::Method::GET, path, None).await
    }
}

/// A realistic Events API v2 trigger (about 400 bytes), for the emulator's demo routing key.
pub fn trigger(dedup_key: &str) -> Bytes {
    let host = dedup_key.rsplit('-').next().unwrap_or(dedup_key);
    Bytes::from(
        serde_json::json!({
            "routing_key": DEMO_ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": "pagerbridge-bench",
            "payload": {
                "summary": format!("CPU load is CRITICAL on web-{host}: load1 12.50 > 8.00"),
                "source": format!("web-{host}.example.net"),
                "severity": "critical",
                "component": "cpu",
                "group": "web",
                "class": "load",
                "custom_details": {"load1": 12.5, "load5": 9.8, "threshold": 8, "check": "check_load"}
            }
        })
        .to_string(),
    )
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub url: String,
    pub path: String,
    pub clients: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub keys: usize,
    /// Processes whose CPU use to report (the server under load, say).
    pub watch: Vec<(String, u32)>,
}

#[derive(Debug, Clone)]
pub struct IngestResult {
    pub ok: u64,
    pub non_2xx: u64,
    pub transport_errors: u64,
    pub seconds: f64,
    pub latency: Latency,
    /// CPU use over the measured window, percent of one core: the generator itself first.
    pub cpu: Vec<(String, f64)>,
    /// The same for the threads of the first watched process, by thread name.
    pub threads: Vec<(String, f64)>,
}

impl IngestResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    pub fn line(&self) -> String {
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .map(|(n, p)| format!("{n} {p:.0}%"))
            .collect();
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|(n, p)| format!("{n} {p:.0}%"))
            .collect();
        format!(
            "{:.0} events/s ({} ok in {:.1} s), latency p50 {} p90 {} p99 {} max {}, {} non-2xx, {} transport errors; CPU: {}; server threads: {}",
            self.rate(),
            self.ok,
            self.seconds,
            ms(self.latency.p50),
            ms(self.latency.p90),
            ms(self.latency.p99),
            ms(self.latency.max),
            self.non_2xx,
            self.transport_errors,
            cpu.join(", "),
            threads.join(", ")
        )
    }
}

struct ClientTally {
    ok: u64,
    non_2xx: u64,
    transport_errors: u64,
    micros: Vec<u64>,
}

/// Runs the load: every client connects, then all send for `warmup` (not counted) and
/// `seconds` (counted). A request counts when it was sent and answered inside the window.
pub async fn ingest(opts: &IngestOptions) -> anyhow::Result<IngestResult> {
    let addr = addr_of(&opts.url)?;
    let keys = opts.keys.max(1);
    // Bodies are built before the clock starts: the generator should spend its CPU on HTTP.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..keys)
            .map(|k| trigger(&format!("bench-{k:06}")))
            .collect(),
    );
    let mut conns = Vec::with_capacity(opts.clients);
    for _ in 0..opts.clients {
        conns.push(Conn::open(addr).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let from = start + Duration::from_secs_f64(opts.warmup);
    let until = from + Duration::from_secs_f64(opts.seconds);
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let bodies = bodies.clone();
        let path = opts.path.clone();
        let clients = opts.clients;
        tasks.push(tokio::spawn(async move {
            let mut t = ClientTally {
                ok: 0,
                non_2xx: 0,
                transport_errors: 0,
                micros: Vec::with_capacity(1 << 16),
            };
            tokio::time::sleep_until(start.into()).await;
            let mut n = i;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let body = bodies[n % bodies.len()].clone();
                n += clients;
                let r = conn.post(&path, body).await;
                let done = Instant::now();
                let counted = sent >= from && done <= until;
                match r {
                    Ok(a) if a.status.is_success() => {
                        if counted {
                            t.ok += 1;
                            t.micros.push((done - sent).as_micros() as u64);
                        }
                    }
                    Ok(_) => t.non_2xx += counted as u64,
                    Err(_) => {
                        t.transport_errors += 1;
                        // A broken connection: open a new one rather than stop this client.
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            t
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let system = SystemCpu::start();
    let threads_before = opts.watch.first().map(|w| thread_cpu(w.1));
    let mut all = vec![("generator".to_owned(), CpuWatch::start(std::process::id()))];
    all.extend(
        opts.watch
            .iter()
            .map(|(n, pid)| (n.clone(), CpuWatch::start(*pid))),
    );
    tokio::time::sleep_until(until.into()).await;
    let mut cpu: Vec<(String, f64)> = all
        .iter()
        .filter_map(|(n, w)| w.percent().map(|p| (n.clone(), p)))
        .collect();
    let threads = match (threads_before, opts.watch.first()) {
        (Some(before), Some(w)) => thread_percent(
            &before,
            &thread_cpu(w.1),
            Duration::from_secs_f64(opts.seconds),
        ),
        _ => Vec::new(),
    };
    // Whatever else ran on the machine meanwhile (the measured processes subtracted).
    if let Some(busy) = system.busy_percent() {
        let ours: f64 = cpu.iter().map(|x| x.1).sum();
        cpu.push(("others".to_owned(), (busy - ours).max(0.0)));
    }
    let mut ok = 0;
    let mut non_2xx = 0;
    let mut transport_errors = 0;
    let mut micros = Vec::new();
    for t in tasks {
        let t = t.await?;
        ok += t.ok;
        non_2xx += t.non_2xx;
        transport_errors += t.transport_errors;
        micros.extend(t.micros);
    }
    if ok == 0 {
        bail!(
            "no request to {} succeeded ({non_2xx} non-2xx, {transport_errors} transport errors)",
            opts.url
        );
    }
    Ok(IngestResult {
        ok,
        non_2xx,
        transport_errors,
        seconds: opts.seconds,
        latency: Latency::of(micros),
        cpu,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_is_a_valid_event() {
        let body = trigger("bench-000042");
        let ev = pagerduty::events::validate_event(&body).expect("valid");
        assert_eq!(ev.dedup_key.as_deref(), Some("bench-000042"));
        assert!(body.len() > 300 && body.len() < 600, "{}", body.len());
    }

    #[test]
    fn parses_loopback_urls() {
        assert_eq!(
            addr_of("http://127.0.0.1:8080/x").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(addr_of("https://127.0.0.1:1").is_err());
    }
}
