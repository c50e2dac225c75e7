//! `pagerbridge send` and `pagerbridge route test` as monitors and operators run them: the real
//! binary, fed the notification command lines captured from Nagios 4 and Icinga 2 (see
//! crates/ingest/tests/fixtures/), on temporary data directories, with and without a daemon.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pagerbridge_store::EventRecord;
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;
use serde_json::{Value, json};
use support::*;
use tempfile::TempDir;

/// The routing key the captured notifications carry (the contact's pager in the test setup).
const CAPTURED_KEY: &str = "0123456789abcdef0123456789abcdef";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/fixtures")
}

fn fixture(dir: &str, name: &str) -> Value {
    let path = fixtures().join(dir).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The command line a monitor ran (`send --source K ...`), with `--data-dir` (or `--config`)
/// added and the captured routing key replaced by `key`.
fn captured_argv(dir: &str, name: &str, store: &[&str], key: &str) -> Vec<String> {
    let v = fixture(dir, name);
    let argv: Vec<String> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace(CAPTURED_KEY, key))
        .collect();
    assert_eq!(argv[0], "send");
    let mut out = vec!["send".to_owned()];
    out.extend(store.iter().map(|s| s.to_string()));
    out.extend_from_slice(&argv[1..]);
    out
}

fn run(argv: &[String]) -> Out {
    pb(&argv.iter().map(String::as_str).collect::<Vec<_>>())
}

fn send_captured(dir: &str, name: &str, store: &[&str], key: &str) -> Out {
    run(&captured_argv(dir, name, store, key))
}

/// The stored records, oldest first.
async fn stored(db: &Path) -> Vec<EventRecord> {
    let mut v = records(db).await;
    v.reverse();
    v
}

fn body(r: &EventRecord) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn captured_nagios_and_icinga_notifications_become_the_right_events() {
    // (fixture, the action stored, or None: PagerDuty has no event for it, nothing stored)
    let cases = [
        ("service_problem.json", Some("trigger")),
        ("service_problem_repeat.json", Some("trigger")),
        ("service_acknowledgement.json", Some("acknowledge")),
        ("service_recovery.json", Some("resolve")),
        ("service_flapping_start.json", Some("trigger")),
        ("service_custom.json", None),
        ("service_downtime_start.json", None),
        ("host_problem.json", Some("trigger")),
        ("host_acknowledgement.json", Some("acknowledge")),
        ("host_recovery.json", Some("resolve")),
    ];
    for dir in ["nagios", "icinga2"] {
        let tmp = TempDir::new().unwrap();
        let data = tmp.path().join("data");
        let d = data.to_str().unwrap();
        let mut expected = Vec::new();
        for (name, action) in cases {
            let out = send_captured(dir, name, &["--data-dir", d], CAPTURED_KEY);
            assert_eq!(out.code, 0, "{dir}/{name}: {}", out.stderr);
            match action {
                Some(action) => {
                    let key = out.stdout.trim().to_owned();
                    assert!(!key.is_empty(), "{dir}/{name} prints the dedup key");
                    assert!(out.stderr.is_empty(), "{dir}/{name}: {}", out.stderr);
                    expected.push((name, action, key));
                }
                None => {
                    assert_eq!(out.stdout, "", "{dir}/{name}");
                    assert!(
                        out.stderr.contains("nothing to send"),
                        "{dir}/{name} says why nothing was stored: {}",
                        out.stderr
                    );
                }
            }
        }
        let records = stored(&data.join("pagerbridge.db")).await;
        let got: Vec<(String, String)> = records
            .iter()
            .map(|r| {
                (
                    r.action.map(|a| a.as_str().to_owned()).unwrap_or_default(),
                    r.dedup_key.clone().unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(_, a, k)| (a.to_string(), k.clone()))
            .collect();
        assert_eq!(got, want, "{dir}: the stored events, in order");
        // One problem keeps one key from problem to recovery; the host has its own.
        let key = |name: &str| &expected.iter().find(|(n, _, _)| *n == name).unwrap().2;
        for name in [
            "service_problem_repeat.json",
            "service_acknowledgement.json",
            "service_recovery.json",
        ] {
            assert_eq!(key(name), key("service_problem.json"), "{dir}/{name}");
        }
        assert_ne!(key("host_problem.json"), key("service_problem.json"));
        assert_eq!(key("host_recovery.json"), key("host_problem.json"));

        let problem = body(&records[0]);
        assert_eq!(
            problem["routing_key"], CAPTURED_KEY,
            "{dir}: from --routing-key"
        );
        assert_eq!(problem["payload"]["source"], "db1", "{dir}");
        assert_eq!(
            problem["client"],
            if dir == "nagios" {
                "Nagios"
            } else {
                "Icinga 2"
            }
        );
        assert!(
            records.iter().all(|r| r.source == format!("send {dir}")),
            "{dir}: the outbox says where the events came from"
        );
    }
}

#[tokio::test]
async fn nagios_perfdata_arrives_as_numbers_and_the_severity_follows_the_state() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path().join("data");
    let out = send_captured(
        "nagios",
        "service_problem.json",
        &["--data-dir", d.to_str().unwrap()],
        CAPTURED_KEY,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = body(&stored(&d.join("pagerbridge.db")).await[0]);
    let payload = &ev["payload"];
    assert_eq!(
        payload["severity"], "critical",
        "CRITICAL pages as critical"
    );
    assert_eq!(
        payload["summary"],
        "CRITICAL: db1/Disk / - DISK CRITICAL - free space: / 100 MB (5% inode=80%)"
    );
    let perf = &payload["custom_details"]["perfdata"]["/"];
    assert_eq!(perf["value"], json!(900.0), "{ev}");
    assert_eq!(perf["unit"], "MB");
    assert_eq!(perf["crit"], json!(900.0));
}

/// The way back starts here: the monitor's object and problem id are kept with the event, so
/// an acknowledgement in PagerDuty can find the problem in Nagios again.
#[tokio::test]
async fn a_notification_records_its_problem_in_the_incident_map() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path().join("data");
    let out = send_captured(
        "nagios",
        "service_problem.json",
        &["--data-dir", d.to_str().unwrap()],
        CAPTURED_KEY,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = body(&stored(&d.join("pagerbridge.db")).await[0]);
    let key = ev["dedup_key"].as_str().unwrap().to_owned();
    let store = pagerbridge_store::sqlite::SqliteStore::open(&d.join("pagerbridge.db"))
        .await
        .unwrap();
    let rows = pagerbridge_store::SyncStore::incidents_by_dedup_key(&store, &key)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.source, "nagios", "no [[sources]] entry: the kind");
    assert_eq!(row.routing_key, CAPTURED_KEY);
    assert_eq!(row.monitor_ref["kind"], "object");
    assert_eq!(row.monitor_ref["host"], "db1");
    assert_eq!(row.monitor_ref["service"], "Disk /");
    let problem = row.monitor_ref["problem_id"]
        .as_str()
        .expect("a problem id");
    assert_eq!(row.problem_id.as_deref(), Some(problem));
    assert_eq!(row.monitor_state, pagerbridge_store::MonitorState::Problem);
}

#[tokio::test]
async fn environment_macros_give_the_same_event_as_the_flags() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let v = fixture("nagios", "service_problem.json");
    let env: Vec<(String, String)> = v["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let by_env = pb_env(
        &["send", "--data-dir", d, "--source", "nagios", "--env"],
        &env_ref,
    );
    assert_eq!(by_env.code, 0, "{}", by_env.stderr);
    let by_flags = send_captured(
        "nagios",
        "service_problem.json",
        &["--data-dir", d],
        CAPTURED_KEY,
    );
    assert_eq!(by_flags.code, 0, "{}", by_flags.stderr);
    assert_eq!(by_env.stdout, by_flags.stdout, "the same dedup key");

    let records = stored(&data.join("pagerbridge.db")).await;
    let (a, b) = (body(&records[0]), body(&records[1]));
    for field in ["routing_key", "dedup_key", "event_action"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    for field in ["summary", "source", "severity", "component"] {
        assert_eq!(a["payload"][field], b["payload"][field], "payload.{field}");
    }

    // A flag wins over the environment.
    let out = pb_env(
        &[
            "send",
            "--data-dir",
            d,
            "--source",
            "nagios",
            "--env",
            "--host",
            "db9",
        ],
        &env_ref,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "db9/Disk /");
}

#[tokio::test]
async fn zenoss_fields_and_any_source_from_a_file() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();

    // Zenoss' event command: --field NAME=VALUE, with the routing key its transform set.
    let fields = fixture("zenoss", "command-fields.json");
    let mut argv = vec![
        "send".to_owned(),
        "--data-dir".into(),
        d.into(),
        "--source".into(),
        "zenoss".into(),
    ];
    for (k, v) in fields.as_object().unwrap() {
        argv.push("--field".into());
        argv.push(format!("{k}={}", v.as_str().unwrap()));
    }
    let out = run(&argv);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Alertmanager's webhook payload from a file, and from standard input via `-`.
    let am = fixtures().join("alertmanager/webhook-v4-firing.json");
    let out = pb(&[
        "send",
        "--data-dir",
        d,
        "--source",
        "alertmanager",
        "--file",
        am.to_str().unwrap(),
    ]);
    assert_eq!(
        out.code, 2,
        "no routing key anywhere: refused, {}",
        out.stderr
    );
    assert!(out.stderr.contains("no routing key"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was stored"), "{}", out.stderr);

    let config = tmp.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = \"data\"\n\n[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n"),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = pb(&[
        "send",
        "--config",
        c,
        "--source",
        "alertmanager",
        "--file",
        am.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        "ab906f89a7cb9bdc",
        "the alert's fingerprint"
    );

    let records = stored(&data.join("pagerbridge.db")).await;
    assert_eq!(records.len(), 2, "the refused one stored nothing");
    let zenoss = body(&records[0]);
    assert_eq!(
        zenoss["routing_key"], "ZENOSSDBTEAMKEY00000000000000001",
        "{zenoss}"
    );
    assert_eq!(zenoss["payload"]["source"], "db1.example.com");
    assert_eq!(zenoss["payload"]["severity"], "critical");
    let am_event = body(&records[1]);
    assert_eq!(
        am_event["routing_key"], DEMO_ROUTING_KEY,
        "[routing] default"
    );
    assert_eq!(
        am_event["payload"]["custom_details"]["labels"]["alertname"],
        "HighCPU"
    );
}

#[test]
fn bad_input_exits_2_naming_the_field_and_stores_nothing() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["--source", "nagios"], "no macros given"),
        (&["--source", "nagios", "--type", "PROBLEM"], "HOSTNAME"),
        (
            &[
                "--source", "nagios", "--type", "EXPLODED", "--host", "h", "--state", "DOWN",
            ],
            "NOTIFICATIONTYPE",
        ),
        (
            &[
                "--source", "nagios", "--type", "PROBLEM", "--macro", "NOEQUALS",
            ],
            "--macro",
        ),
        (&["--source", "zenoss"], "--field"),
        (&["--source", "zenoss", "--field", "nonsense"], "--field"),
        (&["--source", "grafana"], "--file"),
        (&["--source", "sonar"], "unknown source \"sonar\""),
    ];
    for (args, needle) in cases {
        let mut argv = vec!["send", "--data-dir", d];
        argv.extend_from_slice(args);
        let out = pb(&argv);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{args:?} names {needle}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("nothing was stored"), "{}", out.stderr);
        assert_eq!(out.stdout, "");
    }
    // Validation comes before the store: nothing was even created.
    assert!(!data.exists(), "bad input created {data:?}");

    // A generic source needs its mapping: a kind alone is not enough.
    let out = pb(&[
        "send",
        "--data-dir",
        d,
        "--source",
        "generic",
        "--file",
        "/dev/null",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("[[sources]]"), "{}", out.stderr);
    // A broken configuration is the caller's to fix (2) and names the line.
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "[routing]\ndefault_routing_key = 42\n").unwrap();
    let out = pb(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--source",
        "nagios",
        "--type",
        "PROBLEM",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("bad.toml:2"), "{}", out.stderr);
}

#[test]
fn an_unwritable_store_exits_3_and_says_the_alert_was_not_stored() {
    let tmp = TempDir::new().unwrap();
    // The data directory is a file: the outbox cannot be created.
    let blocker = tmp.path().join("data");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = send_captured(
        "nagios",
        "service_problem.json",
        &["--data-dir", blocker.to_str().unwrap()],
        CAPTURED_KEY,
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("NOT stored"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_while_the_daemon_is_down_and_delivered_when_it_starts() {
    let pd = TestPd::start().await;
    let tmp = TempDir::new().unwrap();
    let config = write_config(tmp.path(), &pd);
    let c = config.to_str().unwrap().to_owned();
    let send = |name: &str| {
        let out = send_captured("icinga2", name, &["--config", &c], DEMO_ROUTING_KEY);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        out.stdout.trim().to_owned()
    };
    // Problem, reminder and acknowledgement with no daemon running: all stored.
    let key = send("service_problem.json");
    assert_eq!(send("service_problem_repeat.json"), key);
    assert_eq!(send("service_acknowledgement.json"), key);

    let daemon = start_daemon(&config);
    let incident = |pd: &TestPd| {
        let w = pd.world();
        let all: Vec<_> = w
            .incidents
            .iter()
            .filter(|i| i.incident_key == key)
            .collect();
        (all.len(), all.last().map(|i| i.status))
    };
    wait_until("the acknowledged incident", || async {
        incident(&pd) == (1, Some(IncidentStatus::Acknowledged))
    })
    .await;
    // Recovery while it runs: the same incident resolves.
    assert_eq!(send("service_recovery.json"), key);
    wait_until("the resolved incident", || async {
        incident(&pd) == (1, Some(IncidentStatus::Resolved))
    })
    .await;
    drop(daemon);

    let titles = incident_titles(&pd).await;
    assert_eq!(titles.len(), 1, "one problem, one incident: {titles:?}");
    assert!(titles[0].contains("db1/disk-root"), "{titles:?}");
}

#[test]
fn route_test_shows_the_alert_the_rule_and_the_exact_event() {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[rules]]
name = "cpu-to-infra"
routing_key = "{CAPTURED_KEY}"
severity = "warning"
summary = "[infra] {{{{ summary }}}}"
match = {{ field = "labels.alertname", equals = "HighCPU" }}
"#
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let am = fixtures().join("alertmanager/webhook-v4-firing.json");
    let am = am.to_str().unwrap();

    let out = pb(&[
        "route",
        "test",
        "--config",
        c,
        "--source",
        "alertmanager",
        am,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Alert 1 of 1 (alertmanager)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("rule \"cpu-to-infra\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\"summary\": \"[infra] CPU above 90% on web-1\""),
        "{}",
        out.stdout
    );

    let out = pb(&[
        "route",
        "test",
        "--config",
        c,
        "--source",
        "alertmanager",
        "--json",
        am,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let alert = &v["alerts"][0];
    assert_eq!(alert["alert"]["entity"]["labels"]["instance"], "web-1:9100");
    assert_eq!(alert["decision"]["outcome"], "send");
    let routed = &alert["decision"]["events"][0];
    assert_eq!(routed["rule"], "cpu-to-infra");
    let shown = &routed["event"];
    assert_eq!(shown["routing_key"], CAPTURED_KEY);
    assert_eq!(shown["payload"]["severity"], "warning");

    // What route test shows is exactly what send stores: the same decoder, rules and limits.
    let out = pb(&[
        "send",
        "--config",
        c,
        "--source",
        "alertmanager",
        "--file",
        am,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let db = tmp.path().join("data/pagerbridge.db");
    let records = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(stored(&db));
    assert_eq!(&body(&records[0]), shown);

    // Nothing stored by route test itself, and errors are exit 2 with the reason.
    assert_eq!(records.len(), 1);
    let out = pb(&["route", "test", "--source", "alertmanager", am]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no routing key"), "{}", out.stderr);
    let garbage = tmp.path().join("garbage.json");
    std::fs::write(&garbage, "{\"version\": \"4\", \"alerts\": 7}").unwrap();
    let out = pb(&[
        "route",
        "test",
        "--source",
        "alertmanager",
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("alerts"),
        "names the field: {}",
        out.stderr
    );
}

#[test]
fn help_lists_the_macro_flags_and_the_exit_codes() {
    let out = pb(&["send", "--help"]);
    assert_eq!(out.code, 0);
    let mut missing = BTreeMap::new();
    for (flag, service, _) in pagerbridge_ingest::nagios::SEND_FLAGS {
        if !out.stdout.contains(flag) {
            missing.insert(flag, service);
        }
    }
    assert!(missing.is_empty(), "--help misses {missing:?}");
    for needle in [
        "--macro",
        "--env",
        "--field",
        "--file",
        "Exit codes:",
        "  3  ",
    ] {
        assert!(out.stdout.contains(needle), "--help shows {needle}");
    }
    let out = pb(&["route", "test", "--help"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Exit codes:"));
}

/// A Nagios notification command runs as the monitor's user in the monitor's environment: the
/// daemon's secrets (here from variables the monitor does not have) must not stop it.
#[tokio::test]
async fn send_needs_none_of_the_daemons_secrets() {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[pagerduty]
api_token = {{ env = "PAGERBRIDGE_TEST_NOT_IN_NAGIOS_ENV" }}

[sync.webhooks]
secrets = [{{ env = "PAGERBRIDGE_TEST_NOT_IN_NAGIOS_ENV" }}]

[[monitors]]
name = "nagios"
kind = "external_command"
command_file = "/var/lib/nagios4/rw/nagios.cmd"

[routing]
default_routing_key = "{CAPTURED_KEY}"
"#
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = send_captured(
        "nagios",
        "service_problem.json",
        &["--config", c],
        CAPTURED_KEY,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        stored(&tmp.path().join("data/pagerbridge.db")).await.len(),
        1
    );

    let check = pb(&["config", "check", "--config", c]);
    assert_ne!(
        check.code, 0,
        "the daemon would need them: {}",
        check.stdout
    );
    assert!(
        format!("{}{}", check.stdout, check.stderr).contains("PAGERBRIDGE_TEST_NOT_IN_NAGIOS_ENV"),
        "{} {}",
        check.stdout,
        check.stderr
    );
}
