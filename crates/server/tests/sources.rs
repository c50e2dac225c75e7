//! The ingest routes of `[[sources]]`, over HTTP: captured monitor payloads become incidents in
//! the emulator and recoveries resolve them; authentication per route; every refusal is a JSON
//! body naming the problem; and nothing answered 2xx is missing from the outbox.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pagerbridge_server::auth::hmac_signature;
use pagerbridge_testkit::TestPd;
use pagerduty::rest::IncidentStatus;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(path: &str) -> Vec<u8> {
    read(&format!("crates/ingest/tests/fixtures/{path}"))
}

fn snippet(name: &str) -> String {
    String::from_utf8(read(&format!("docs/integrations/snippets/{name}"))).unwrap()
}

fn routing_default() -> String {
    format!("[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\n")
}

async fn post(d: &Daemon, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut req = d
        .http
        .post(format!("{}{path}", d.base))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req).await
}

/// Posts and insists on `202`; returns the dedup keys of the stored events.
async fn accepted(d: &Daemon, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Vec<String> {
    let a = post(d, path, body, headers).await;
    assert_eq!(a.status, 202, "{path}: {}", a.body);
    assert_eq!(a.body["status"], "accepted", "{}", a.body);
    a.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["dedup_keys"].as_array().cloned().unwrap_or_default())
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

async fn wait_incident(pd: &TestPd, key: &str, status: IncidentStatus) {
    eventually(&format!("incident {key} {status:?}"), WAIT, || async {
        let (s, n) = incident(pd, key);
        (s == Some(status)).then_some(n)
    })
    .await;
    let (_, count) = incident(pd, key);
    assert_eq!(count, 1, "{key}: one problem, one incident");
}

fn assert_refused(a: &Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(
        a.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "a JSON body: {:?}",
        a.headers
    );
    let text = a.body.to_string();
    assert!(text.contains(needle), "{status} names {needle:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alertmanager_webhooks_open_and_resolve_through_the_documented_source() {
    let pd = TestPd::start().await;
    let opts = Opts {
        extra: routing_default() + &snippet("alertmanager-pagerbridge.toml"),
        ..Opts::default()
    };
    let mut d = Daemon::start_env(&pd, opts, &[("AM_WEBHOOK_TOKEN", "am-token")]).await;
    let firing = fixture("alertmanager/webhook-v4-firing.json");

    let a = post(&d, "/ingest/alertmanager", firing.clone(), &[]).await;
    assert_refused(&a, 401, "Authorization");
    let a = post(
        &d,
        "/ingest/alertmanager",
        firing.clone(),
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_refused(&a, 401, "token");
    assert_eq!(
        d.store().stats().await.unwrap().pending,
        0,
        "refused, not stored"
    );

    let auth = [("authorization", "Bearer am-token")];
    let keys = accepted(&d, "/ingest/alertmanager", firing.clone(), &auth).await;
    assert_eq!(
        keys,
        ["ab906f89a7cb9bdc"],
        "one incident per alert: its fingerprint"
    );
    wait_incident(&pd, &keys[0], IncidentStatus::Triggered).await;
    // Alertmanager repeats a firing group every repeat_interval: still one incident.
    accepted(&d, "/ingest/alertmanager", firing, &auth).await;
    let keys2 = accepted(
        &d,
        "/ingest/alertmanager",
        fixture("alertmanager/webhook-v4-resolved.json"),
        &auth,
    )
    .await;
    assert_eq!(keys2, keys);
    wait_incident(&pd, &keys[0], IncidentStatus::Resolved).await;

    let title = {
        let w = pd.world();
        let inc = w.incidents.iter().find(|i| i.incident_key == keys[0]);
        inc.map(|i| i.title.clone())
    };
    assert_eq!(
        title.as_deref(),
        Some("CPU above 90% on web-1"),
        "the annotation's summary"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generic_route_maps_its_json_with_the_documented_mapping() {
    let pd = TestPd::start().await;
    let opts = Opts {
        extra: routing_default() + &snippet("generic-json-pagerbridge.toml"),
        ..Opts::default()
    };
    let mut d = Daemon::start_env(&pd, opts, &[("UPTIME_WEBHOOK_TOKEN", "u-token")]).await;
    let auth = [("authorization", "Bearer u-token")];
    let keys = accepted(
        &d,
        "/ingest/uptime",
        fixture("generic/uptime-down.json"),
        &auth,
    )
    .await;
    assert_eq!(keys.len(), 1);
    wait_incident(&pd, &keys[0], IncidentStatus::Triggered).await;
    let up = accepted(
        &d,
        "/ingest/uptime",
        fixture("generic/uptime-up.json"),
        &auth,
    )
    .await;
    assert_eq!(up, keys, "the recovery has the problem's key");
    wait_incident(&pd, &keys[0], IncidentStatus::Resolved).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_hmac_route_takes_only_bodies_signed_with_its_secret() {
    let pd = TestPd::start().await;
    let opts = Opts {
        extra: routing_default()
            + r#"[[sources]]
name = "grafana"
kind = "grafana"
auth = { hmac = { secret = "grafana-secret", header = "X-Grafana-Alerting-Signature", prefix = "sha256=" } }
"#,
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    let body = fixture("grafana/webhook-firing.json");
    let header = "x-grafana-alerting-signature";
    let good = hmac_signature("grafana-secret", "sha256=", &body);
    let wrong_key = hmac_signature("other", "sha256=", &body);

    assert_refused(
        &post(&d, "/ingest/grafana", body.clone(), &[]).await,
        401,
        "X-Grafana-Alerting-Signature",
    );
    assert_refused(
        &post(&d, "/ingest/grafana", body.clone(), &[(header, &wrong_key)]).await,
        401,
        "HMAC",
    );
    // A signature is for one body: changed content fails with the original's signature.
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'F').unwrap();
    tampered[pos] = b'f';
    assert_refused(
        &post(&d, "/ingest/grafana", tampered, &[(header, &good)]).await,
        401,
        "HMAC",
    );
    assert_eq!(d.store().stats().await.unwrap().pending, 0);

    let keys = accepted(&d, "/ingest/grafana", body, &[(header, &good)]).await;
    assert_eq!(keys.len(), 2, "the fixture holds two firing alerts");
    for k in &keys {
        wait_incident(&pd, k, IncidentStatus::Triggered).await;
    }
    // One of them resolves; the other stays open.
    let resolved = fixture("grafana/webhook-resolved.json");
    let sig = hmac_signature("grafana-secret", "sha256=", &resolved);
    let rkeys = accepted(&d, "/ingest/grafana", resolved, &[(header, &sig)]).await;
    assert_eq!(rkeys, keys[..1]);
    wait_incident(&pd, &keys[0], IncidentStatus::Resolved).await;
    assert_eq!(
        incident(&pd, &keys[1]),
        (Some(IncidentStatus::Triggered), 1)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_payload_source_reaches_pagerduty_and_recovers() {
    let pd = TestPd::start().await;
    // Fixtures carry routing keys of their own (Zenoss' transform sets one): a rule sends
    // everything to the emulator's service instead.
    let extra = format!(
        r#"[[rules]]
name = "all-to-demo"
routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "guance"
kind = "guance"

[[sources]]
name = "zabbix"
kind = "zabbix"

[[sources]]
name = "zenoss"
kind = "zenoss"

[[sources]]
name = "centreon"
kind = "centreon_broker"
path = "/centreon/events"

[[sources]]
name = "icinga-json"
kind = "icinga2"
"#
    );
    let mut d = Daemon::start(
        &pd,
        Opts {
            extra,
            ..Opts::default()
        },
    )
    .await;

    // (route, problem fixture, recovery fixture)
    let cases = [
        (
            "/ingest/guance",
            "guance/monitor-webhook-critical.json",
            Some("guance/monitor-webhook-ok.json"),
        ),
        (
            "/ingest/zabbix",
            "zabbix/problem.json",
            Some("zabbix/recovery.json"),
        ),
        (
            "/ingest/zenoss",
            "zenoss/event-critical.json",
            Some("zenoss/event-cleared.json"),
        ),
        ("/centreon/events", "centreon_broker/batch-1.json", None),
    ];
    for (route, problem, recovery) in cases {
        let keys = accepted(&d, route, fixture(problem), &[]).await;
        assert!(!keys.is_empty(), "{problem} makes at least one event");
        for k in &keys {
            wait_incident(&pd, k, IncidentStatus::Triggered).await;
        }
        if let Some(recovery) = recovery {
            let rkeys = accepted(&d, route, fixture(recovery), &[]).await;
            assert_eq!(rkeys, keys, "{recovery} ends {problem}'s incident");
            for k in &keys {
                wait_incident(&pd, k, IncidentStatus::Resolved).await;
            }
        }
    }

    // A Nagios-family route takes a JSON object of macros.
    let macros = json!({
        "NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "db1", "SERVICEDESC": "disk",
        "SERVICESTATE": "CRITICAL", "SERVICEOUTPUT": "DISK CRITICAL - 3% free"
    });
    let keys = accepted(
        &d,
        "/ingest/icinga-json",
        macros.to_string().into_bytes(),
        &[],
    )
    .await;
    assert_eq!(keys, ["db1/disk"]);
    wait_incident(&pd, "db1/disk", IncidentStatus::Triggered).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_json_errors_naming_the_problem_and_store_nothing() {
    let pd = TestPd::start().await;
    // No default routing key: an alert naming none is refused, not dropped.
    let opts = Opts {
        extra: "[[sources]]\nname = \"am\"\nkind = \"alertmanager\"\n".into(),
        ..Opts::default()
    };
    let mut d = Daemon::start(&pd, opts).await;
    let url = format!("{}/ingest/am", d.base);
    let firing = fixture("alertmanager/webhook-v4-firing.json");

    let a = answer(d.http.get(&url)).await;
    assert_refused(&a, 405, "send POST");
    let a = answer(d.http.put(&url).body(firing.clone())).await;
    assert_refused(&a, 405, "PUT");

    let a = answer(
        d.http
            .post(&url)
            .header("content-type", "text/plain")
            .body(firing.clone()),
    )
    .await;
    assert_refused(&a, 415, "Content-Type");

    let huge = vec![b' '; pagerbridge_server::sources::MAX_BODY + 1];
    let a = post(&d, "/ingest/am", huge, &[]).await;
    assert_refused(&a, 413, "bytes");

    let a = post(
        &d,
        "/ingest/am",
        b"{\"version\": \"4\", \"alerts\": [".to_vec(),
        &[],
    )
    .await;
    assert_refused(&a, 400, "JSON");
    let a = post(&d, "/ingest/am", b"\xff\xfe not utf-8".to_vec(), &[]).await;
    assert_eq!(a.status, 400, "{}", a.body);

    let mut v: Value = serde_json::from_slice(&firing).unwrap();
    v.as_object_mut().unwrap().remove("alerts");
    let a = post(&d, "/ingest/am", v.to_string().into_bytes(), &[]).await;
    assert_refused(&a, 400, "alerts");
    assert_eq!(a.body["field"], "alerts", "{}", a.body);

    let mut v: Value = serde_json::from_slice(&firing).unwrap();
    v["alerts"][0]["status"] = json!(17);
    let a = post(&d, "/ingest/am", v.to_string().into_bytes(), &[]).await;
    assert_refused(&a, 400, "alerts[0].status");

    // Decodes, but nothing says where it goes.
    let a = post(&d, "/ingest/am", firing, &[]).await;
    assert_refused(&a, 400, "no routing key");
    assert_eq!(a.body["field"], "alerts[0]");

    let a = post(&d, "/ingest/nope", b"{}".to_vec(), &[]).await;
    assert_refused(&a, 404, "/ingest/nope");

    let stats = d.store().stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.dead),
        (0, 0),
        "nothing refused was stored"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_alert_is_in_the_outbox_even_while_pagerduty_is_down() {
    let opts = Opts {
        extra: routing_default() + "[[sources]]\nname = \"am\"\nkind = \"alertmanager\"\n",
        ..Opts::default()
    };
    // PagerDuty unreachable: accepted events can only be in the outbox.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut d = Daemon::start_at(&closed, tempfile::tempdir().unwrap(), "data", opts).await;
    let base: Value =
        serde_json::from_slice(&fixture("alertmanager/webhook-v4-group.json")).unwrap();
    let n_alerts = base["alerts"].as_array().unwrap().len();
    let posts = 40;
    let bodies: Vec<Vec<u8>> = (0..posts)
        .map(|i| {
            let mut v = base.clone();
            for a in v["alerts"].as_array_mut().unwrap() {
                let fp = a["fingerprint"].as_str().unwrap().to_owned();
                a["fingerprint"] = json!(format!("{fp}-{i}"));
            }
            serde_json::to_vec(&v).unwrap()
        })
        .collect();
    let answers =
        futures::future::join_all(bodies.into_iter().map(|b| post(&d, "/ingest/am", b, &[]))).await;
    let mut keys = std::collections::BTreeSet::new();
    for a in &answers {
        assert_eq!(a.status, 202, "{}", a.body);
        for r in a.body["results"].as_array().unwrap() {
            for k in r["dedup_keys"].as_array().unwrap() {
                keys.insert(k.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(
        keys.len(),
        posts * n_alerts,
        "one event per alert, each its own key"
    );
    let stored = all_records(d.store().as_ref()).await;
    let stored_keys: std::collections::BTreeSet<String> =
        stored.iter().filter_map(|r| r.dedup_key.clone()).collect();
    assert_eq!(stored_keys, keys, "every answered alert is in the outbox");
    assert!(stored.iter().all(|r| r.source == "source am"));
    d.stop().await;
}

/// A small deterministic generator: the same mangled bodies on every run, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Damages a body: flips, deletes or duplicates a few bytes, or cuts it short.
fn mangle(body: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut b = body.to_vec();
    for _ in 0..=rng.below(4) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(4) {
            0 => b[i] = rng.next() as u8,
            1 => {
                b.remove(i);
            }
            2 => {
                let chunk: Vec<u8> = b[i..(i + 8).min(b.len())].to_vec();
                b.splice(i..i, chunk);
            }
            _ => b.truncate(i),
        }
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_payloads_get_an_answer_never_a_server_error() {
    let opts = Opts {
        extra: routing_default()
            + "[[sources]]\nname = \"am\"\nkind = \"alertmanager\"\n\
               [[sources]]\nname = \"grafana\"\nkind = \"grafana\"\n\
               [[sources]]\nname = \"guance\"\nkind = \"guance\"\n\
               [[sources]]\nname = \"zabbix\"\nkind = \"zabbix\"\n\
               [[sources]]\nname = \"zenoss\"\nkind = \"zenoss\"\n\
               [[sources]]\nname = \"centreon\"\nkind = \"centreon_broker\"\n",
        ..Opts::default()
    };
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut d = Daemon::start_at(&closed, tempfile::tempdir().unwrap(), "data", opts).await;
    let cases = [
        ("/ingest/am", "alertmanager/webhook-v4-group.json"),
        ("/ingest/grafana", "grafana/webhook-firing.json"),
        ("/ingest/guance", "guance/monitor-webhook-critical.json"),
        ("/ingest/zabbix", "zabbix/problem.json"),
        ("/ingest/zenoss", "zenoss/event-critical.json"),
        ("/ingest/centreon", "centreon_broker/batch-1.json"),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted_events = 0u64;
    let mut statuses = std::collections::BTreeMap::new();
    for (route, file) in cases {
        let body = fixture(file);
        for _ in 0..150 {
            let damaged = mangle(&body, &mut rng);
            let a = post(&d, route, damaged.clone(), &[]).await;
            *statuses.entry(a.status).or_insert(0) += 1;
            match a.status {
                202 => accepted_events += a.body["events"].as_u64().unwrap(),
                400 => assert!(
                    a.body["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{route}: a 400 says why: {}",
                    a.body
                ),
                other => panic!(
                    "{route} answered {other} to {:?}: {}",
                    String::from_utf8_lossy(&damaged),
                    a.body
                ),
            }
        }
    }
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    // What was accepted is all there: PagerDuty is unreachable, so nothing left the outbox.
    let stored = all_records(d.store().as_ref()).await.len() as u64;
    assert_eq!(stored, accepted_events, "{statuses:?}");
    d.stop().await;
}
