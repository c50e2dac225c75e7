//! Shared by the daemon's integration tests: a daemon in a temporary data directory pointed at
//! an in-process emulator, event bodies, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagerbridge_config::Config;
use pagerbridge_server::Running;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{EventRecord, ListQuery, Store};
use pagerduty::rest::IncidentStatus;
use pagerduty_emulator::world::Received;
use pagerduty_emulator::{Emulator, FaultKind, FaultSpec, Scope};
use serde_json::{Value, json};
use tempfile::TempDir;

#[allow(unused_imports)]
pub use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY};

/// The daemon settings a test changes; the defaults keep tests fast (short delays, no rate
/// limit of our own, a circuit that recovers quickly).
#[derive(Debug, Clone)]
pub struct Opts {
    pub timeout: &'static str,
    pub initial_delay: &'static str,
    pub max_delay: &'static str,
    pub events_per_minute: u32,
    pub burst: u32,
    pub coalesce: bool,
    pub max_in_flight: usize,
    pub circuit_failures: u32,
    pub circuit_cooldown: &'static str,
    pub circuit_max_cooldown: &'static str,
    pub retention: &'static str,
    /// More configuration, appended: `[routing]`, `[[rules]]`, `[[sources]]`.
    pub extra: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            timeout: "5s",
            initial_delay: "50ms",
            max_delay: "1s",
            events_per_minute: 0,
            burst: 1,
            coalesce: true,
            max_in_flight: 32,
            circuit_failures: 5,
            circuit_cooldown: "200ms",
            circuit_max_cooldown: "1s",
            retention: "7d",
            extra: String::new(),
        }
    }
}

pub fn config_text(pd_url: &str, data_dir: &str, o: &Opts) -> String {
    format!(
        r#"[server]
data_dir = "{data_dir}"

[pagerduty]
events_url = "{pd_url}"
rest_url = "{pd_url}"
proxy = "none"
timeout = "{timeout}"
connect_timeout = "2s"

[outbox]
retention = "{retention}"
coalesce = {coalesce}
max_in_flight = {max_in_flight}

[outbox.retry]
initial_delay = "{initial_delay}"
max_delay = "{max_delay}"

[outbox.rate_limit]
events_per_minute = {epm}
burst = {burst}

[outbox.circuit]
failures = {failures}
cooldown = "{cooldown}"
max_cooldown = "{max_cooldown}"

{extra}
"#,
        timeout = o.timeout,
        coalesce = o.coalesce,
        max_in_flight = o.max_in_flight,
        initial_delay = o.initial_delay,
        max_delay = o.max_delay,
        epm = o.events_per_minute,
        burst = o.burst,
        failures = o.circuit_failures,
        cooldown = o.circuit_cooldown,
        max_cooldown = o.circuit_max_cooldown,
        retention = o.retention,
        extra = o.extra,
    )
}

pub fn config(pd_url: &str, base: &Path, data_dir: &str, o: &Opts) -> Config {
    Config::from_str(&config_text(pd_url, data_dir, o), "test.toml", base)
        .unwrap_or_else(|e| panic!("test configuration: {e}"))
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

/// A daemon in a temporary data directory.
pub struct Daemon {
    pub running: Option<Running>,
    pub config: Config,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
}

impl Daemon {
    pub async fn start(pd: &Emulator, o: Opts) -> Daemon {
        Daemon::start_at(&pd.url(), tempfile::tempdir().expect("tempdir"), "data", o).await
    }

    pub async fn start_at(pd_url: &str, dir: TempDir, data_dir: &str, o: Opts) -> Daemon {
        let config = config(pd_url, dir.path(), data_dir, &o);
        Daemon::start_config(config, dir).await
    }

    /// A daemon whose `env` secrets (`{ env = "NAME" }`) come from `env`, not the process's.
    pub async fn start_env(pd: &Emulator, o: Opts, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_text(&pd.url(), "data", &o);
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let config = Config::from_str_with_env(&text, "test.toml", dir.path(), &lookup)
            .unwrap_or_else(|e| panic!("test configuration: {e}"));
        Daemon::start_config(config, dir).await
    }

    pub async fn start_config(config: Config, dir: TempDir) -> Daemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Daemon::start_on(config, dir, listener).await
    }

    /// On a listener bound beforehand, for tests that must know the daemon's address before
    /// writing its configuration (a webhook subscription's URL, and its secret in the file).
    pub async fn start_on(
        config: Config,
        dir: TempDir,
        listener: tokio::net::TcpListener,
    ) -> Daemon {
        let running = match pagerbridge_server::start(&config, Some(listener)).await {
            Ok(r) => r,
            Err(e) => panic!("the daemon starts: {e}"),
        };
        Daemon {
            base: format!("http://{}", running.addr()),
            running: Some(running),
            config,
            http: http(),
            dir,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.running().store()
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.store_path()
    }

    /// Stops the daemon, and checks it closed its store (the log checkpointed into the
    /// database), which it only does once nothing else holds the store.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let started = Instant::now();
            r.stop().await.expect("the daemon stops cleanly");
            let wal = self.db_path().with_extension("db-wal");
            let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            assert_eq!(
                wal_len,
                0,
                "the stop closed the store ({:?})",
                started.elapsed()
            );
        }
    }

    /// Sends v2 events concurrently, each insisting on a 202.
    pub async fn send_all(&self, evs: &[Value]) -> Vec<Answer> {
        futures::future::join_all(evs.iter().map(|ev| self.send(ev))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        answer(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// Sends a v2 event and insists on PagerDuty's 202.
    pub async fn send(&self, ev: &Value) -> Answer {
        let a = self.post("/v2/enqueue", ev).await;
        assert_eq!(a.status, 202, "the relay accepts {ev}: {}", a.body);
        a
    }
}

/// An HTTP answer with its body parsed as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("the daemon answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("the body arrives");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A v2 event for `key`; `seq` goes into `client` (kept for every action) so a test can tell
/// events apart in what the emulator received.
pub fn event(routing_key: &str, key: &str, action: &str, seq: u64) -> Value {
    let mut ev = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": key,
        "client": format!("seq-{seq}"),
    });
    if action == "trigger" {
        ev["payload"] = json!({
            "summary": format!("Problem {key} #{seq}"),
            "source": "test-host",
            "severity": "critical",
            "custom_details": {"seq": seq},
        });
    }
    ev
}

pub fn trigger(routing_key: &str, key: &str, seq: u64) -> Value {
    event(routing_key, key, "trigger", seq)
}

/// The `seq` of an event body built by [`event`].
pub fn seq_of(body: &Value) -> u64 {
    body["client"]
        .as_str()
        .and_then(|c| c.strip_prefix("seq-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seq in {body}"))
}

/// Polls `f` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until nothing is pending in the outbox.
pub async fn wait_drained(store: &Arc<dyn Store>, timeout: Duration) {
    eventually("the outbox to drain", timeout, || async {
        let s = store.stats().await.expect("stats");
        (s.pending == 0).then_some(())
    })
    .await
}

/// The records of one dedup key, oldest first.
pub async fn records(store: &Arc<dyn Store>, key: &str) -> Vec<EventRecord> {
    let mut v = store
        .list(&ListQuery {
            dedup_key: Some(key.into()),
            limit: 10_000,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    v.reverse();
    v
}

pub async fn all_records(store: &dyn Store) -> Vec<EventRecord> {
    let mut v = store
        .list(&ListQuery {
            limit: 1_000_000,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    v.reverse();
    v
}

/// Opens a second handle on a daemon's database, as the CLI would.
pub async fn open_store(path: &Path) -> SqliteStore {
    SqliteStore::open(path).await.expect("the database opens")
}

/// The event requests the emulator processed for `key`, in the order it received them.
/// Requests answered by an injected fault never reach the events handler and are not listed.
pub fn received(pd: &Emulator, key: &str) -> Vec<Received> {
    pd.world()
        .received
        .iter()
        .filter(|r| r.dedup_key.as_deref() == Some(key))
        .cloned()
        .collect()
}

pub fn all_received(pd: &Emulator) -> Vec<Received> {
    pd.world().received.iter().cloned().collect()
}

/// The status of the newest incident for `key`, and how many incidents it has had.
pub fn incident(pd: &Emulator, key: &str) -> (Option<IncidentStatus>, usize) {
    let w = pd.world();
    let all: Vec<_> = w
        .incidents
        .iter()
        .filter(|i| i.incident_key == key)
        .collect();
    (all.last().map(|i| i.status), all.len())
}

/// How many event requests (`/v2/enqueue` and friends) the emulator answered with `status`,
/// faults included. Dropped connections are not answered and not counted.
pub fn answered(pd: &Emulator, status: u16) -> usize {
    pd.exchanges()
        .iter()
        .filter(|x| x.path.starts_with("/v2/") || x.path.starts_with("/generic/"))
        .filter(|x| x.status == status)
        .count()
}

pub fn fault(kind: FaultKind) -> FaultSpec {
    FaultSpec {
        kind,
        status: None,
        retry_after: None,
        delay_ms: None,
        count: None,
        seconds: None,
        scope: Scope::Events,
    }
}

pub fn status_fault(status: u16, count: u32) -> FaultSpec {
    FaultSpec {
        status: Some(status),
        count: Some(count),
        ..fault(FaultKind::Status)
    }
}

pub fn inject(pd: &Emulator, f: FaultSpec) {
    pd.inject(f).expect("the emulator takes the fault");
}

/// Waits until every injected count-based fault was used.
pub async fn faults_used(pd: &Emulator) {
    eventually(
        "the injected faults to be used",
        Duration::from_secs(10),
        || async {
            pd.shared()
                .faults
                .list()
                .iter()
                .all(|f| f.remaining.is_none())
                .then_some(())
        },
    )
    .await
}

pub fn secs(a: jiff::Timestamp, b: jiff::Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}
