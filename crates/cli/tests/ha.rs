//! Two `pagerbridge serve` replicas on one PostgreSQL database, PagerDuty failing intermittently
//! all along, sustained ingest spread over both, and the leader killed with SIGKILL mid-run.
//! At the end:
//! - every event that got a 2xx (from either replica, or from `pagerbridge event` writing into
//!   the database) reached PagerDuty, or was coalesced into a later event of its key that did;
//! - per key, PagerDuty received the events in the order they were accepted, although a key's
//!   events went in through both replicas in turn and its lane moved to the survivor;
//! - no write-back was done twice: the monitor (a webhook recorder) got each change PagerDuty
//!   reported once, those the first leader carried out were not redone by the second;
//! - leadership moved: the survivor's `/readyz`, its status page and `pagerbridge_leader` say it
//!   leads.
//!
//! A write-back under way at the very moment its leader dies is carried out again by the next
//! one (at least once, as a delivery in flight is); the test kills the leader while PagerDuty's
//! relayed events are in flight, not while a write-back is.
//!
//! Skipped (saying so) when no PostgreSQL can be had; see `pagerbridge_testkit::postgres`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pagerbridge_store::postgres::PgStore;
use pagerbridge_store::{ListQuery, State, Store, SyncStore, WritebackState};
use pagerbridge_testkit::{Canned, DEMO_ROUTING_KEY, Recorder, TestPd};
use pagerduty::rest::{IncidentStatus, IncidentUpdate};
use serde_json::{Value, json};

mod support;
use support::BIN;
use support::alert_life::{Action, Chaos, Model, apply, script};

/// Keys of relayed events; every fourth goes in through `pagerbridge event` instead.
const KEYS: usize = 10;
const EVENTS_PER_KEY: usize = 30;
/// Alertmanager alerts whose incidents a responder acknowledges and resolves in PagerDuty:
/// the way back, written to the `webhook` monitor.
const ALERTS: usize = 6;
const WAIT: Duration = Duration::from_secs(30);

/// One replica as a child process on a fixed port (the emulator's webhook subscription and the
/// senders need its address before it starts).
struct Replica {
    name: &'static str,
    child: Option<Child>,
    config: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Replica {
    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env_remove("PAGERBRIDGE_DATA_DIR")
            .env("PAGERBRIDGE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the replica starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.child = Some(child);
        assert!(
            line.starts_with("pagerbridge listening on"),
            "replica {} did not start: {line:?}\n{}",
            self.name,
            self.log_tail()
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Replica {
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

/// One replica's configuration: the shared database, a delivery timeout short enough that a
/// dead replica's lanes are taken over within seconds (the claim lease is twice the timeout
/// plus 10 s), the webhook subscription's secret, and a `webhook` monitor holding the
/// Alertmanager source's problems.
fn config(dir: &Path, name: &str, db: &str, pd: &TestPd, secret: &str, monitor: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let pd_url = pd.url();
    std::fs::write(
        &path,
        format!(
            r#"
[server]
data_dir = "data-{name}"
replica_name = "{name}"

[store]
url = "{db}"

[pagerduty]
events_url = "{pd_url}"
rest_url = "{pd_url}"
proxy = "none"
timeout = "500ms"
connect_timeout = "500ms"
api_token = "{token}"
from = "ada@example.com"

[outbox.rate_limit]
events_per_minute = 0

[outbox.retry]
initial_delay = "20ms"
max_delay = "300ms"

[outbox.circuit]
failures = 8
cooldown = "100ms"
max_cooldown = "400ms"

[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"

[sync.webhooks]
secrets = ["{secret}"]

[sync.writeback]
initial_backoff = "100ms"
max_backoff = "1s"

[[monitors]]
name = "hook"
kind = "webhook"
url = "{monitor}"
sources = ["am"]
"#,
            token = pagerduty_emulator::seed::DEMO_API_TOKEN,
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

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Sends one key's events in order, each until accepted: through the relay of each replica in
/// turn (a refused connection, the replica being dead, moves to the other), or through
/// `pagerbridge event` writing into the database.
async fn sender(
    key: usize,
    ports: [u16; 2],
    cli_config: Option<PathBuf>,
    seq: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Accepted>>>,
) {
    let http = http();
    let dedup = format!("ha-{key}");
    for (i, action) in script(key as u64 + 7, EVENTS_PER_KEY)
        .into_iter()
        .enumerate()
    {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let link = format!("https://ha.test/seq/{n}");
        let mut attempt = 0;
        loop {
            let accepted = match &cli_config {
                Some(config) => {
                    let mut cmd = tokio::process::Command::new(BIN);
                    cmd.env_remove("PAGERBRIDGE_DATA_DIR")
                        .args(["event", action.as_str(), "--config"])
                        .arg(config)
                        .args([
                            "--routing-key",
                            DEMO_ROUTING_KEY,
                            "--dedup-key",
                            &dedup,
                            "--link",
                            &format!("{link}|event {n}"),
                        ]);
                    if action == Action::Trigger {
                        cmd.args([
                            "--summary",
                            &format!("key {key} event {n}"),
                            "--source",
                            "ha",
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
                None => {
                    let port = ports[(i + attempt) % 2];
                    let mut ev = json!({
                        "routing_key": DEMO_ROUTING_KEY,
                        "event_action": action.as_str(),
                        "dedup_key": dedup,
                        "links": [{"href": link, "text": format!("event {n}")}],
                    });
                    if action == Action::Trigger {
                        ev["payload"] = json!({"summary": format!("key {key} event {n}"),
                            "source": "ha", "severity": "error"});
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
            };
            if accepted {
                log.lock().unwrap().push(Accepted {
                    seq: n,
                    key,
                    action,
                });
                break;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // About 8 s of ingest per key, all keys at once.
        tokio::time::sleep(Duration::from_millis(200 + (n % 7) * 20)).await;
    }
}

fn marker(body: &Value) -> Option<u64> {
    body["links"][0]["href"]
        .as_str()?
        .strip_prefix("https://ha.test/seq/")?
        .parse()
        .ok()
}

fn alertmanager(i: usize) -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HaDiskFull", "instance": format!("db{i}:9100"),
                       "severity": "critical"},
            "annotations": {"summary": format!("HA disk full on db{i}")},
            "startsAt": "2026-11-21T10:00:00Z",
            "fingerprint": format!("ha{i:04}"),
        }],
    })
}

async fn readyz(url: &str) -> Value {
    http()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The incidents of the Alertmanager alerts, by alert number, once all are open.
fn alert_incidents(pd: &TestPd) -> Option<Vec<String>> {
    let w = pd.world();
    (0..ALERTS)
        .map(|i| {
            w.incidents
                .iter()
                .find(|inc| inc.title == format!("HA disk full on db{i}"))
                .map(|inc| inc.id.clone())
        })
        .collect()
}

/// What a responder does in PagerDuty (as Ada, a person): each becomes one write-back.
async fn respond(pd: &TestPd, incidents: &[String], status: IncidentStatus) {
    for id in incidents {
        pd.rest()
            .update_incident(id, &IncidentUpdate::status(status))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_survive_the_leaders_sigkill_without_losing_reordering_or_repeating() {
    let Some(db) = pagerbridge_testkit::postgres::fresh_database_or_skip().await else {
        return;
    };
    let started = Instant::now();
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    // PagerDuty posts its changes to replica b, the one that survives, which stores them in the
    // shared inbox for whichever replica leads.
    let secret = pd
        .subscribe_webhooks(&format!("http://127.0.0.1:{}/webhooks/pagerduty", ports[1]))
        .await;
    let replica = |name: &'static str, port: u16| Replica {
        name,
        child: None,
        config: config(dir.path(), name, &db, &pd, &secret, &monitor.url()),
        port,
        log: dir.path().join(format!("{name}.log")),
    };
    let mut a = replica("a", ports[0]);
    let mut b = replica("b", ports[1]);

    // a starts first and leads; b joins and does not.
    a.spawn();
    eventually("replica a leads", || async {
        readyz(&a.url()).await["leading"] == true
    })
    .await;
    b.spawn();
    eventually("replica b knows a leads", || async {
        let r = readyz(&b.url()).await;
        r["leading"] == false && r["leader"] == "a" && r["checks"]["leader"]["status"] == "pass"
    })
    .await;

    // PagerDuty misbehaving all along: 503s, dropped connections, slow answers, throttling.
    let chaos = Chaos::start(&pd, 700);

    // Sustained ingest over both replicas.
    let ingest_started = Instant::now();
    let seq = Arc::new(AtomicU64::new(1));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..KEYS)
        .map(|k| {
            let cli = (k % 4 == 3).then(|| a.config.clone());
            tokio::spawn(sender(k, ports, cli, seq.clone(), accepted.clone()))
        })
        .collect();

    // Monitor problems, half through each replica; a responder acknowledges three of their
    // incidents while a leads, and a carries those write-backs out.
    for i in 0..ALERTS {
        let r = http()
            .post(format!("http://127.0.0.1:{}/ingest/am", ports[i % 2]))
            .json(&alertmanager(i))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let mut incidents = Vec::new();
    eventually("the alerts' incidents open", || {
        let found = alert_incidents(&pd);
        let done = found.is_some();
        if let Some(f) = found {
            incidents = f;
        }
        async move { done }
    })
    .await;
    respond(&pd, &incidents[..3], IncidentStatus::Acknowledged).await;
    monitor.wait_for(3, WAIT).await;
    // Recorded as done: the kill below hits deliveries in flight, not these write-backs.
    let store = PgStore::connect(&db).await.unwrap();
    eventually("the first write-backs are recorded", || async {
        let done = store
            .list_writebacks(Some(WritebackState::Done), 10)
            .await
            .unwrap();
        done.len() == 3
    })
    .await;

    // The leader dies mid-run, halfway through the ingest.
    tokio::time::sleep_until((ingest_started + Duration::from_secs(4)).into()).await;
    let killed_at = Instant::now();
    a.kill();
    eventually("replica b takes the lead", || async {
        readyz(&b.url()).await["leading"] == true
    })
    .await;
    let takeover = killed_at.elapsed();

    // The rest of the way back, now b's to do.
    respond(&pd, &incidents[3..], IncidentStatus::Acknowledged).await;
    respond(&pd, &incidents, IncidentStatus::Resolved).await;

    for s in senders {
        s.await.unwrap();
    }
    chaos.stop().await;
    pd.shared().faults.clear();

    // Drain: lanes a held are b's once their lease passes.
    let deadline = Instant::now() + WAIT;
    loop {
        let st = store.stats().await.unwrap();
        let writebacks = store
            .list_writebacks(Some(WritebackState::Pending), 10)
            .await
            .unwrap();
        if st.pending == 0 && writebacks.is_empty() && monitor.requests().len() >= 2 * ALERTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {st:?}, write-backs pending: {writebacks:?}, monitor got {}\n\
             replica b's log:\n{}",
            monitor.requests().len(),
            b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = killed_at.elapsed();
    // Time for a write-back done twice to show.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), KEYS * EVENTS_PER_KEY);

    // 1. Nothing accepted is lost.
    let processed: Vec<u64> = pd
        .world()
        .received
        .iter()
        .filter(|r| r.status == 202)
        .filter_map(|r| marker(&r.body))
        .collect();
    let reached: HashSet<u64> = processed.iter().copied().collect();
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
        if let (Some(from), Some(to)) = (marker_of(&r.body), marker_of(&into.body)) {
            superseded_by.insert(from, to);
        }
    }
    for ev in &accepted {
        let mut s = ev.seq;
        while !reached.contains(&s) {
            match superseded_by.get(&s) {
                Some(next) => s = *next,
                None => panic!(
                    "event {} ({:?} of key {}) never reached PagerDuty",
                    ev.seq, ev.action, ev.key
                ),
            }
        }
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
    for key in 0..KEYS {
        let expected = accepted
            .iter()
            .filter(|a| a.key == key)
            .fold(Model::None, |m, a| apply(m, a.action));
        let w = pd.world();
        let got = match w
            .incidents
            .iter()
            .filter(|i| i.incident_key == format!("ha-{key}"))
            .max_by_key(|i| i.number)
            .map(|i| i.status)
        {
            None => Model::None,
            Some(IncidentStatus::Triggered) => Model::Triggered,
            Some(IncidentStatus::Acknowledged) => Model::Acknowledged,
            Some(IncidentStatus::Resolved) => Model::Resolved,
        };
        assert_eq!(got, expected, "key {key}");
    }

    // 3. Each change written back once: 6 acknowledgements and 6 resolves (commented), by
    // the Idempotency-Key the webhook monitor gets (action, incident, time of the change).
    let requests = monitor.requests();
    let mut changes: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        let key = r.header("idempotency-key").unwrap().to_owned();
        *changes.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = changes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written back twice: {twice:?}");
    let mut per_incident: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &requests {
        let body = r.json();
        per_incident
            .entry(body["incident"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["action"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        per_incident.keys().cloned().collect::<HashSet<_>>(),
        incidents.iter().cloned().collect::<HashSet<_>>(),
        "{per_incident:?}"
    );
    for (id, actions) in &per_incident {
        assert_eq!(actions.len(), 2, "incident {id}: {actions:?}");
        assert_eq!(actions[0], "acknowledge", "incident {id}: {actions:?}");
    }

    // 4. Leadership moved, and every view of b says so.
    let r = readyz(&b.url()).await;
    assert_eq!(
        (r["replica"].as_str(), r["leader"].as_str()),
        (Some("b"), Some("b")),
        "{r}"
    );
    assert_eq!(r["checks"]["leader"]["status"], "pass", "{r}");
    let metrics = http()
        .get(format!("{}/metrics", b.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pagerbridge_leader{replica=\"b\"} 1"),
        "{metrics}"
    );
    let page = http()
        .get(b.url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<strong id=\"replica-name\">b</strong>")
            && page.contains("this replica leads"),
        "{page}"
    );

    // The CLI reads the same database.
    let out = tokio::process::Command::new(BIN)
        .env_remove("PAGERBRIDGE_DATA_DIR")
        .args(["queue", "status", "--json", "--config"])
        .arg(&b.config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pending"], 0, "{status}");

    let duplicates = processed.len() - reached.len();
    eprintln!(
        "ha test: {} events accepted over 2 replicas ({} through the CLI), {} reached \
         PagerDuty, {duplicates} delivered twice; leader a killed, b led {:.1} s later, all \
         delivered {:.1} s after the kill; {} write-backs, none twice; {:.1} s in all",
        accepted.len(),
        accepted.iter().filter(|a| a.key % 4 == 3).count(),
        reached.len(),
        takeover.as_secs_f64(),
        drained.as_secs_f64(),
        requests.len(),
        started.elapsed().as_secs_f64()
    );
    b.kill();
    store.close().await;
}
