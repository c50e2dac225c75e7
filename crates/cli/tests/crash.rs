//! The core promise under abuse: sustained ingest over HTTP and the CLI while PagerDuty fails
//! intermittently and the daemon is killed with SIGKILL and restarted, several times. At the end:
//! - every event that got a 2xx reached PagerDuty, or was coalesced into a later event of its
//!   key that did (the store says which);
//! - per key, PagerDuty received the events in the order they were accepted (a retry may repeat
//!   an event, never put an older one after a newer one);
//! - every key's incident is in the state its last event implies.
//!
//! Each event carries a marker link (`https://crash.test/seq/N`) so the emulator's log says
//! which event it processed.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{ListQuery, State, Store};
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use serde_json::{Value, json};

mod support;
use support::BIN;
use support::alert_life::{Action, Chaos, Model, apply, script};

const KEYS: usize = 16;
const EVENTS_PER_KEY: usize = 40;
const KILLS: usize = 5;

/// The daemon as a child process on a fixed port, so that senders find it again after a
/// restart.
struct Daemon {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
}

impl Daemon {
    fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("PAGERBRIDGE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the daemon starts");
        // The first line says it listens: from then on its 2xx answers count.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("pagerbridge listening on"),
            "unexpected: {line:?}"
        );
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, pd_url: &str) -> PathBuf {
    let path = dir.join("pagerbridge.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
data_dir = "data"

[pagerduty]
events_url = "{pd_url}"
rest_url = "{pd_url}"
proxy = "none"
timeout = "300ms"
connect_timeout = "300ms"

[outbox.rate_limit]
events_per_minute = 0

[outbox.retry]
initial_delay = "20ms"
max_delay = "300ms"

[outbox.circuit]
failures = 8
cooldown = "100ms"
max_cooldown = "400ms"
"#
        ),
    )
    .unwrap();
    path
}

#[derive(Debug, Clone)]
struct Accepted {
    seq: u64,
    key: usize,
    action: Action,
}

/// How a key's events enter pagerbridge.
#[derive(Clone)]
enum Via {
    /// The relay route; retried until the daemon answers 2xx (it is down while being
    /// restarted: connection refused, which PagerDuty's clients also retry).
    Http { port: u16 },
    /// `pagerbridge event ...` writing into the store, daemon up or not; accepted on exit 0.
    Cli { config: PathBuf },
}

/// Sends one key's events in order, each until it is accepted.
async fn sender(key: usize, via: Via, seq: Arc<AtomicU64>, log: Arc<Mutex<Vec<Accepted>>>) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let dedup = format!("crash-{key}");
    for action in script(key as u64 + 1, EVENTS_PER_KEY) {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let link = format!("https://crash.test/seq/{n}");
        loop {
            let accepted = match &via {
                Via::Http { port } => {
                    let mut ev = json!({
                        "routing_key": DEMO_ROUTING_KEY,
                        "event_action": action.as_str(),
                        "dedup_key": dedup,
                        "links": [{"href": link}],
                    });
                    if action == Action::Trigger {
                        ev["payload"] = json!({"summary": format!("key {key} event {n}"), "source": "crash", "severity": "error"});
                    }
                    match http
                        .post(format!("http://127.0.0.1:{port}/v2/enqueue"))
                        .json(&ev)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => true,
                        Ok(r) => panic!("the relay refused a valid event: {}", r.status()),
                        Err(_) => false,
                    }
                }
                Via::Cli { config } => {
                    let mut cmd = tokio::process::Command::new(BIN);
                    cmd.args(["event", action.as_str(), "--config"])
                        .arg(config)
                        .args([
                            "--routing-key",
                            DEMO_ROUTING_KEY,
                            "--dedup-key",
                            &dedup,
                            "--link",
                            &link,
                        ]);
                    if action == Action::Trigger {
                        cmd.args([
                            "--summary",
                            &format!("key {key} event {n}"),
                            "--source",
                            "crash",
                            "--severity",
                            "error",
                        ]);
                    }
                    let out = cmd.output().await.expect("the CLI runs");
                    match out.status.code() {
                        Some(0) => true,
                        Some(3) => false,
                        other => panic!(
                            "the CLI refused a valid event ({other:?}): {}",
                            String::from_utf8_lossy(&out.stderr)
                        ),
                    }
                }
            };
            if accepted {
                log.lock().unwrap().push(Accepted {
                    seq: n,
                    key,
                    action,
                });
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(5 + (n % 7) * 3)).await;
    }
}

fn marker(body: &Value) -> Option<u64> {
    body["links"][0]["href"]
        .as_str()?
        .strip_prefix("https://crash.test/seq/")?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_event_survives_sigkill_and_an_unreliable_pagerduty_in_order() {
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon {
        child: None,
        config: config(dir.path(), &pd.url()),
        port: free_port(),
    };
    daemon.spawn();

    // PagerDuty misbehaving all along: 503s, dropped connections before and after processing,
    // answers slower than the client's timeout.
    let chaos = Chaos::start(&pd, 500);

    let seq = Arc::new(AtomicU64::new(1));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    // Every fourth key comes through the CLI, which writes into the store while the daemon
    // runs, dies and restarts.
    let senders: Vec<_> = (0..KEYS)
        .map(|k| {
            let via = if k % 4 == 3 {
                Via::Cli {
                    config: daemon.config.clone(),
                }
            } else {
                Via::Http { port: daemon.port }
            };
            tokio::spawn(sender(k, via, seq.clone(), accepted.clone()))
        })
        .collect();

    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(900)).await;
        daemon.kill();
        tokio::time::sleep(Duration::from_millis(250)).await;
        daemon.spawn();
    }
    for s in senders {
        s.await.unwrap();
    }
    chaos.stop().await;
    pd.shared().faults.clear();

    // Drain: the daemon delivers the rest once PagerDuty behaves.
    let store = SqliteStore::open(&dir.path().join("data/pagerbridge.db"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = store.stats().await.unwrap();
        if st.pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not drained: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.kill();

    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), KEYS * EVENTS_PER_KEY);

    // What PagerDuty processed, per marker, in processing order.
    let processed: Vec<u64> = pd
        .world()
        .received
        .iter()
        .filter(|r| r.status == 202)
        .filter_map(|r| marker(&r.body))
        .collect();
    let reached: std::collections::HashSet<u64> = processed.iter().copied().collect();

    // Coalesced events and what superseded them, from the store's records.
    let records = store
        .list(&ListQuery {
            states: vec![State::Coalesced, State::Dead],
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        records.iter().all(|r| r.state != State::Dead),
        "PagerDuty refused nothing here: {records:?}"
    );
    let marker_of = |body: &[u8]| marker(&serde_json::from_slice::<Value>(body).unwrap());
    let mut superseded_by: HashMap<u64, u64> = HashMap::new();
    for r in &records {
        let into = store.get(r.coalesced_into.unwrap()).await.unwrap().unwrap();
        superseded_by.insert(marker_of(&r.body).unwrap(), marker_of(&into.body).unwrap());
    }

    // 1. Nothing accepted is lost.
    let mut coalesced = 0;
    for a in &accepted {
        if reached.contains(&a.seq) {
            continue;
        }
        let mut s = a.seq;
        while let Some(next) = superseded_by.get(&s) {
            s = *next;
        }
        assert!(
            s != a.seq && reached.contains(&s),
            "event {} ({:?} of key {}) never reached PagerDuty",
            a.seq,
            a.action,
            a.key
        );
        coalesced += 1;
    }

    // 2. Per key, never an older event after a newer one.
    let key_of: HashMap<u64, usize> = accepted.iter().map(|a| (a.seq, a.key)).collect();
    let mut per_key: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for s in &processed {
        per_key.entry(key_of[s]).or_default().push(*s);
    }
    for (key, seqs) in &per_key {
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "key {key} out of order: {seqs:?}"
        );
    }

    // 3. Each key ends in the state of its last event.
    for key in 0..KEYS {
        let expected = accepted
            .iter()
            .filter(|a| a.key == key)
            .fold(Model::None, |m, a| apply(m, a.action));
        let w = pd.world();
        let last = w
            .incidents
            .iter()
            .filter(|i| i.incident_key == format!("crash-{key}"))
            .max_by_key(|i| i.number);
        let got = match last.map(|i| i.status) {
            None => Model::None,
            Some(pagerduty::rest::IncidentStatus::Triggered) => Model::Triggered,
            Some(pagerduty::rest::IncidentStatus::Acknowledged) => Model::Acknowledged,
            Some(pagerduty::rest::IncidentStatus::Resolved) => Model::Resolved,
        };
        assert_eq!(got, expected, "key {key}");
    }
    let duplicates = processed.len() - reached.len();
    eprintln!(
        "crash test: {} events accepted ({} through the CLI) over {KILLS} SIGKILLs; {} reached PagerDuty, {coalesced} coalesced, {duplicates} delivered twice",
        accepted.len(),
        accepted.iter().filter(|a| a.key % 4 == 3).count(),
        reached.len()
    );
    store.close().await;
}
