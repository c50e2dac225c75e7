//! The daemon's log, read as an operator and a log collector would: a real `pagerbridge serve`
//! at debug level, JSON lines appended to a file, through deliveries, refusals, retries, bad
//! signatures and wrong tokens. No configured secret may appear in the log (or on stderr) at
//! any level; every line must parse; a failure must carry the routing key (masked), the dedup
//! key, the attempt and PagerDuty's answer.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagerbridge_testkit::{Canned, DEMO_ROUTING_KEY, Recorder, TestPd};
use pagerduty::rest::{IncidentStatus, IncidentUpdate};
use pagerduty_emulator::{FaultKind, FaultSpec, Scope};
use serde_json::{Value, json};
use support::*;

/// Every secret the configuration holds, inline or from the environment or a file. Distinct
/// and unusual, so that a match can only be a leak.
const BEARER: &str = "am-bearer-Secret-7f3a9c41";
const HMAC_SECRET: &str = "grafana-hmac-Secret-4b8e1d";
const OLD_WEBHOOK_SECRET: &str = "old-webhook-Secret-c2d9e5";
const LEGACY_SECRET: &str = "LegacySecret0123456789abcdef";
const MONITOR_TOKEN: &str = "hook-monitor-Token-91ab7c";
const ICINGA_PASSWORD: &str = "icinga-Password-5e6f70";
const API_ADMIN_TOKEN: &str = "api-admin-Token-0123456789abcdef";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `pagerbridge serve` with the flags of a production log, on `port`.
fn serve(config: &Path, port: u16, log: &Path, stderr: &Path) -> (Daemon, String) {
    let mut cmd = Command::new(BIN);
    for var in [
        "PAGERBRIDGE_CONFIG",
        "PAGERBRIDGE_DATA_DIR",
        "PAGERBRIDGE_LOG",
        "PAGERBRIDGE_LOG_FORMAT",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-level", "debug", "--log-format", "json", "--log-file"])
        .arg(log)
        .env("AM_BEARER", BEARER)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let daemon = Daemon(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("pagerbridge listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {first:?}; stderr: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
        .to_owned();
    (daemon, url)
}

fn signal(daemon: &Daemon, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::StatusCode {
    let mut req = http().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status()
}

/// Waits until every stored event is out of `pending`.
async fn outbox_settled(db: &Path) {
    wait_until("the outbox settles", || async {
        records(db)
            .await
            .iter()
            .all(|r| r.state != pagerbridge_store::State::Pending)
    })
    .await;
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_log_keeps_secrets_out_and_says_what_failed() {
    let pd = TestPd::start().await;
    let hook = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    // PagerDuty's webhooks need the daemon's address before it starts, and give the signing
    // secret only when subscribed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let webhook_secret = pd
        .subscribe_webhooks(&format!("http://127.0.0.1:{port}/webhooks/pagerduty"))
        .await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/grafana"),
        format!("{HMAC_SECRET}\n"),
    )
    .unwrap();
    let url = pd.url();
    let config = dir.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"# The flags win over this section: none of it applies.
[log]
level = "error"
format = "text"
file = "from-config.log"

[server]
data_dir = "data"

[pagerduty]
events_url = "{url}"
rest_url = "{url}"
proxy = "none"
api_token = "{PD_TOKEN}"
from = "{PD_FROM}"

[outbox.retry]
initial_delay = "50ms"
max_delay = "200ms"

[outbox.rate_limit]
events_per_minute = 0

[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"
auth = {{ bearer = {{ env = "AM_BEARER" }} }}

[[sources]]
name = "graf"
kind = "grafana"
auth = {{ hmac = {{ secret = {{ file = "secrets/grafana" }}, header = "X-Grafana-Alerting-Signature" }} }}

[sync.webhooks]
secrets = ["{webhook_secret}", "{OLD_WEBHOOK_SECRET}"]
legacy_secret = "{LEGACY_SECRET}"

[sync.writeback]
initial_backoff = "100ms"
max_backoff = "1s"

[[monitors]]
name = "hook"
kind = "webhook"
url = "{hook}"
token = "{MONITOR_TOKEN}"
sources = ["am"]

[[monitors]]
name = "icinga"
kind = "icinga2"
url = "https://127.0.0.1:9"
username = "pagerbridge"
password = "{ICINGA_PASSWORD}"

[[api.tokens]]
name = "ops"
token = "{API_ADMIN_TOKEN}"
scope = "admin"
"#,
            hook = hook.url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("pagerbridge.log");
    let stderr = dir.path().join("stderr.txt");
    let (daemon, base) = serve(&config, port, &log, &stderr);
    let db = dir.path().join("data/pagerbridge.db");

    // Delivered: an Alertmanager alert with the source's token, a Grafana one signed.
    let am = json!({"version": "4", "status": "firing", "receiver": "pagerbridge",
        "alerts": [{"status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk full on db1"},
            "startsAt": "2026-11-21T10:00:00Z", "fingerprint": "d1a2b3c4"}]});
    let bearer = format!("Bearer {BEARER}");
    let ingest_am = format!("{base}/ingest/am");
    assert_eq!(
        post(&ingest_am, &am, &[("authorization", &bearer)]).await,
        202
    );
    assert_eq!(
        post(
            &ingest_am,
            &am,
            &[("authorization", "Bearer not-the-token")]
        )
        .await,
        401
    );
    let grafana: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../ingest/tests/fixtures/grafana/webhook-firing.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let body = serde_json::to_vec(&grafana).unwrap();
    let signature = pagerbridge_server::auth::hmac_signature(HMAC_SECRET, "", &body);
    let ingest_graf = format!("{base}/ingest/graf");
    for (sig, expected) in [(signature.as_str(), 202), ("00ff", 401)] {
        let status = http()
            .post(&ingest_graf)
            .header("content-type", "application/json")
            .header("X-Grafana-Alerting-Signature", sig)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected);
    }
    wait_until("the incidents open", || async {
        incident_titles(&pd).await.len() >= 2
    })
    .await;
    outbox_settled(&db).await;

    // Refused by PagerDuty (a dead letter), then failing twice before it is taken.
    let relay = format!("{base}/v2/enqueue");
    let event = |dedup: &str| {
        json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "trigger", "dedup_key": dedup,
            "payload": {"summary": "Queue stuck on mq1", "source": "mq1", "severity": "error"}})
    };
    pd.refuse_next_events(400, 1);
    assert_eq!(post(&relay, &event("refused/1"), &[]).await, 202);
    outbox_settled(&db).await;
    pd.inject(FaultSpec {
        kind: FaultKind::Status,
        status: Some(503),
        retry_after: None,
        delay_ms: None,
        count: Some(2),
        seconds: None,
        scope: Scope::Events,
    })
    .unwrap();
    assert_eq!(post(&relay, &event("retried/1"), &[]).await, 202);
    outbox_settled(&db).await;

    // The way back: PagerDuty's signed webhook, written back with the monitor's token.
    let id = pd
        .world()
        .incidents
        .iter()
        .find(|i| i.title.contains("Disk full on db1"))
        .expect("the Alertmanager alert's incident")
        .id
        .clone();
    pd.rest()
        .update_incident(&id, &IncidentUpdate::status(IncidentStatus::Acknowledged))
        .await
        .unwrap();
    let written = hook.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        written[0].header("authorization"),
        Some(format!("Bearer {MONITOR_TOKEN}").as_str()),
        "the monitor's token is used (and so within reach of a careless log line)"
    );
    let forged = br#"{"event":{"id":"E1","event_type":"incident.acknowledged","resource_type":"incident","occurred_at":"2026-11-21T10:00:00Z","agent":null,"client":null,"data":{"id":"PX","type":"incident","status":"acknowledged"}}}"#;
    let status = http()
        .post(format!("{base}/webhooks/pagerduty"))
        .header("content-type", "application/json")
        .header("x-pagerduty-signature", "v1=0123456789abcdef")
        .body(forged.to_vec())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let v2 = json!({"messages": [{"id": "m-1", "event": "incident.acknowledge",
        "created_on": "2026-11-21T10:00:00Z", "incident": {"id": "PX"}, "log_entries": []}]});
    let legacy = format!("{base}/webhooks/pagerduty-v2/");
    assert_eq!(
        post(&format!("{legacy}wrongwrongwrong000000"), &v2, &[]).await,
        401
    );
    assert_eq!(
        post(&format!("{legacy}{LEGACY_SECRET}"), &v2, &[]).await,
        202
    );

    // The API: a wrong token, then reads and a write with the right one (the write reaches
    // PagerDuty's REST API with pagerduty.api_token).
    let api = format!("{base}/api/v1");
    let admin = format!("Bearer {API_ADMIN_TOKEN}");
    let get = |path: &str, auth: &str| {
        http()
            .get(format!("{api}{path}"))
            .header("authorization", auth)
            .send()
    };
    assert_eq!(
        get("/incidents", "Bearer wrong-token-0123456789")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(get("/incidents", &admin).await.unwrap().status(), 200);
    assert_eq!(get("/dead_letters", &admin).await.unwrap().status(), 200);
    let note = http()
        .post(format!("{api}/incidents/{id}/notes"))
        .header("authorization", &admin)
        .json(&json!({"content": "looking"}))
        .send()
        .await
        .unwrap();
    assert!(note.status().is_success(), "{}", note.status());

    // logrotate: the file is moved away, SIGHUP, and the daemon writes a new one.
    let rotated = dir.path().join("pagerbridge.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&daemon, "HUP");
    wait_until("the log file is reopened", || async {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("reopened the log file"))
    })
    .await;

    signal(&daemon, "TERM");
    let mut daemon = daemon;
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the daemon does not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nothing secret, anywhere, at debug level.
    let files: Vec<PathBuf> = vec![rotated.clone(), log.clone(), stderr.clone()];
    let mut secrets = vec![
        BEARER,
        HMAC_SECRET,
        webhook_secret.as_str(),
        OLD_WEBHOOK_SECRET,
        LEGACY_SECRET,
        MONITOR_TOKEN,
        ICINGA_PASSWORD,
        API_ADMIN_TOKEN,
        PD_TOKEN,
    ];
    // Integration keys open incidents: logs show them masked.
    secrets.push(DEMO_ROUTING_KEY);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for secret in &secrets {
            if let Some(line) = text.lines().find(|l| l.contains(secret)) {
                panic!("{} holds the secret {secret:?}:\n{line}", file.display());
            }
        }
    }
    assert!(
        !dir.path().join("from-config.log").exists(),
        "--log-file wins over log.file"
    );

    // Every line is JSON, with its time, level and origin as keys of their own.
    let mut all = lines(&rotated);
    all.extend(lines(&log));
    assert!(all.len() > 20, "only {} lines", all.len());
    for l in &all {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string(),
            "{l}"
        );
    }
    assert!(
        all.iter().any(|l| l["level"] == "DEBUG"),
        "--log-level debug wins over log.level"
    );
    let masked = pagerduty::events::mask_key(DEMO_ROUTING_KEY);
    let find = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        all.iter()
            .find(|l| pred(l))
            .cloned()
            .unwrap_or_else(|| panic!("no log line {what} among:\n{all:#?}"))
    };

    // The dead letter: an error with what PagerDuty said, for which key and which attempt.
    let dead = find("for the dead letter", &|l| {
        l["level"] == "ERROR" && l["dedup_key"] == "refused/1"
    });
    assert_eq!(dead["routing_key"], masked.as_str(), "{dead}");
    assert_eq!(dead["attempt"], 1, "{dead}");
    assert_eq!(dead["status"], 400, "{dead}");
    assert!(
        dead["response"].as_str().is_some_and(|r| !r.is_empty()),
        "{dead}"
    );
    assert!(
        dead["message"].as_str().unwrap().contains("dead letter"),
        "{dead}"
    );

    // The retries: warnings, attempts 1 and 2, PagerDuty's 503.
    for attempt in [1, 2] {
        let retry = find("for a failed attempt", &|l| {
            l["level"] == "WARN" && l["dedup_key"] == "retried/1" && l["attempt"] == attempt
        });
        assert_eq!(retry["status"], 503, "{retry}");
        assert_eq!(retry["routing_key"], masked.as_str(), "{retry}");
    }

    // Refusals name what was wrong, without the secret.
    find("for the wrong bearer token", &|l| {
        l["level"] == "WARN" && l["source"] == "am"
    });
    find("for the bad HMAC", &|l| {
        l["level"] == "WARN" && l["source"] == "graf"
    });
    find("for the bad webhook signature", &|l| {
        l["level"] == "WARN" && l["message"].as_str().unwrap().contains("bad signature")
    });
    find("for the wrong legacy secret", &|l| {
        l["level"] == "WARN" && l["message"].as_str().unwrap().contains("legacy")
    });
}
