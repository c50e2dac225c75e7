//! `pagerbridge event ...` and `pagerbridge queue ...` as monitors and operators run them: the
//! real binary on temporary data directories, with and without a daemon.

mod support;

use std::path::Path;

use pagerbridge_store::State;
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use serde_json::{Value, json};
use support::*;
use tempfile::TempDir;
/// Well-formed, but no service of the emulator has it: PagerDuty answers 400.
const UNKNOWN_KEY: &str = "0123456789abcdef0123456789abcdef";

/// `event trigger` with the required flags and `extra`, into `data`.
fn trigger(data: &Path, key: &str, summary: &str, extra: &[&str]) -> Out {
    let data = dir_arg(data);
    let mut args = vec![
        "event",
        "trigger",
        "--data-dir",
        &data,
        "--routing-key",
        key,
        "--summary",
        summary,
        "--source",
        "db1",
        "--severity",
        "critical",
    ];
    args.extend_from_slice(extra);
    pb(&args)
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn trigger_stores_every_flag_in_the_exact_body_and_prints_the_key() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let out = trigger(
        &data,
        DEMO_ROUTING_KEY,
        "Disk full on db1",
        &[
            "--dedup-key",
            "disk/db1",
            "--component",
            "/var",
            "--group",
            "prod-db",
            "--class",
            "disk",
            "--timestamp",
            "2026-11-20T08:42:58.315+0000",
            "--details",
            r#"{"free":"1%","mounts":["/var"],"level":2}"#,
            "--detail",
            "level=3",
            "--detail",
            "host=db1.example",
            "--link",
            "https://runbooks.example/disk",
            "--link",
            "https://grafana.example/d/1|Disk graph",
            "--image",
            "https://grafana.example/render/1.png",
            "--image",
            "https://i.example/a.png|https://i.example/|Usage",
            "--client",
            "Icinga 2",
            "--client-url",
            "https://icinga.example/",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "disk/db1\n", "only the dedup key, on one line");
    assert_eq!(out.stderr, "");

    let expected = json!({
        "routing_key": DEMO_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "disk/db1",
        "payload": {
            "summary": "Disk full on db1",
            "source": "db1",
            "severity": "critical",
            "timestamp": "2026-11-20T08:42:58.315+0000",
            "component": "/var",
            "group": "prod-db",
            "class": "disk",
            "custom_details": {"free": "1%", "mounts": ["/var"], "level": "3", "host": "db1.example"},
        },
        "client": "Icinga 2",
        "client_url": "https://icinga.example/",
        "links": [
            {"href": "https://runbooks.example/disk"},
            {"href": "https://grafana.example/d/1", "text": "Disk graph"},
        ],
        "images": [
            {"src": "https://grafana.example/render/1.png"},
            {"src": "https://i.example/a.png", "href": "https://i.example/", "alt": "Usage"},
        ],
    });
    let stored = records(&data.join("pagerbridge.db")).await;
    assert_eq!(stored.len(), 1);
    let r = &stored[0];
    assert_eq!(r.state, State::Pending);
    assert_eq!(r.source, "cli");
    assert_eq!(r.routing_key, DEMO_ROUTING_KEY);
    assert_eq!(r.dedup_key.as_deref(), Some("disk/db1"));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        expected,
        "the body is exactly what PagerDuty will receive"
    );

    let show = pb(&[
        "queue",
        "show",
        "1",
        "--json",
        "--data-dir",
        &dir_arg(&data),
    ]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let shown = show.json();
    assert_eq!(shown["body"], expected);
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["id"], 1);

    // Without --dedup-key: a fresh 32-hex key, printed and stored.
    let out = trigger(&data, DEMO_ROUTING_KEY, "CPU high", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let key = out.stdout.trim_end_matches('\n');
    assert!(is_hex32(key), "generated key: {key:?}");
    assert_eq!(out.stdout.lines().count(), 1);
    let stored = records(&data.join("pagerbridge.db")).await;
    let body: Value = serde_json::from_slice(&stored[0].body).unwrap();
    assert_eq!(body["dedup_key"], key);
    assert_eq!(stored[0].dedup_key.as_deref(), Some(key));
}

#[tokio::test]
async fn acknowledge_resolve_and_change_events_and_json_answers() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let d = dir_arg(&data);
    let ack = pb(&[
        "event",
        "acknowledge",
        "--data-dir",
        &d,
        "--routing-key",
        DEMO_ROUTING_KEY,
        "--dedup-key",
        "disk/db1",
    ]);
    assert_eq!((ack.code, ack.stdout.as_str()), (0, "disk/db1\n"));
    // The routing key from the environment, as a notification command's wrapper sets it.
    let resolve = pb_env(
        &[
            "event",
            "resolve",
            "--json",
            "--data-dir",
            &d,
            "--dedup-key",
            "disk/db1",
        ],
        &[("PAGERBRIDGE_ROUTING_KEY", DEMO_ROUTING_KEY)],
    );
    assert_eq!(resolve.code, 0, "{}", resolve.stderr);
    assert_eq!(
        resolve.json(),
        json!({"status": "success", "message": "Event processed", "dedup_key": "disk/db1", "id": 2})
    );
    let change = pb(&[
        "event",
        "change",
        "--data-dir",
        &d,
        "--routing-key",
        DEMO_ROUTING_KEY,
        "--summary",
        "Deployed v1.2",
        "--source",
        "ci",
        "--timestamp",
        "2026-11-20T08:00:00Z",
        "--details",
        r#"{"version":"1.2"}"#,
        "--detail",
        "by=ada",
        "--link",
        "https://ci.example/1|Build 1",
    ]);
    assert_eq!(
        (change.code, change.stdout.as_str()),
        (0, ""),
        "{}",
        change.stderr
    );
    let change_json = pb(&[
        "event",
        "change",
        "--json",
        "--data-dir",
        &d,
        "--routing-key",
        DEMO_ROUTING_KEY,
        "--summary",
        "Deployed v1.3",
    ]);
    assert_eq!(
        change_json.json(),
        json!({"status": "success", "message": "Change event processed", "id": 4})
    );

    let stored = records(&data.join("pagerbridge.db")).await;
    let body = |id: i64| -> Value {
        let r = stored.iter().find(|r| r.id == id).unwrap();
        serde_json::from_slice(&r.body).unwrap()
    };
    assert_eq!(
        body(1),
        json!({"routing_key": DEMO_ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "disk/db1"})
    );
    assert_eq!(body(2)["event_action"], "resolve");
    assert_eq!(
        body(3),
        json!({"routing_key": DEMO_ROUTING_KEY, "payload": {"summary": "Deployed v1.2",
            "timestamp": "2026-11-20T08:00:00Z", "source": "ci",
            "custom_details": {"version": "1.2", "by": "ada"}},
            "links": [{"href": "https://ci.example/1", "text": "Build 1"}]})
    );
    let change = stored.iter().find(|r| r.id == 3).unwrap();
    assert_eq!(change.dedup_key, None);
    assert_eq!(change.lane, format!("c:{DEMO_ROUTING_KEY}"));
}

#[tokio::test]
async fn invalid_events_exit_2_with_pagerdutys_messages_and_store_nothing() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let d = dir_arg(&data);

    let out = pb(&["event", "trigger", "--data-dir", &d, "--summary", "  "]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "'routing_key' is missing or blank",
            "'payload.summary' is missing or blank",
            "'payload.source' is missing or blank",
            "'payload.severity' is missing or blank",
        ],
        "every problem, one per line, in PagerDuty's words"
    );

    let out = trigger(&data, "short", "s", &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("Length of 'routing_key' is incorrect (should be 32 characters)"),
        "{}",
        out.stderr
    );

    let out = pb(&[
        "event",
        "resolve",
        "--json",
        "--data-dir",
        &d,
        "--routing-key",
        DEMO_ROUTING_KEY,
    ]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "'dedup_key' is missing or blank\n");
    assert_eq!(
        out.json(),
        json!({"status": "invalid event", "message": "Event object is invalid",
            "errors": ["'dedup_key' is missing or blank"]})
    );

    let long = "x".repeat(1025);
    let out = trigger(&data, DEMO_ROUTING_KEY, &long, &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("'payload.summary'"), "{}", out.stderr);

    // Flags that make no body: the error names the flag.
    let out = trigger(&data, DEMO_ROUTING_KEY, "s", &["--details", "{not json"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--details"), "{}", out.stderr);
    let out = trigger(
        &data,
        DEMO_ROUTING_KEY,
        "s",
        &["--details", "[1]", "--detail", "a=b"],
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--details"), "{}", out.stderr);
    let out = trigger(&data, DEMO_ROUTING_KEY, "s", &["--detail", "novalue"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--detail"), "{}", out.stderr);
    let out = trigger(&data, DEMO_ROUTING_KEY, "s", &["--severity", "fatal"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--severity"), "{}", out.stderr);

    assert!(
        !data.exists(),
        "refused input creates nothing, not even the data directory"
    );
}

#[test]
fn an_unwritable_store_exits_3_and_says_nothing_was_stored() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = trigger(&file.join("data"), DEMO_ROUTING_KEY, "s", &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("NOT stored"), "{}", out.stderr);
    assert!(
        out.stderr.contains("plain-file"),
        "names the path: {}",
        out.stderr
    );

    // The database path itself is a directory: SQLite cannot open it.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("pagerbridge.db")).unwrap();
    let out = trigger(&data, DEMO_ROUTING_KEY, "s", &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("NOT stored"), "{}", out.stderr);

    // queue on a data directory nobody used: exit 3, and no empty outbox created.
    let empty = tmp.path().join("empty");
    let out = pb(&["queue", "status", "--data-dir", &dir_arg(&empty)]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("no outbox"), "{}", out.stderr);
    assert!(!empty.exists());
}

#[test]
fn the_store_is_found_through_config_data_dir_or_their_environment_variables() {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("pagerbridge.toml");
    std::fs::write(&config, "[server]\ndata_dir = \"var/pb\"\n").unwrap();
    let c = config.to_str().unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "event",
            "trigger",
            "--routing-key",
            DEMO_ROUTING_KEY,
            "--summary",
            "s",
            "--source",
            "h",
            "--severity",
            "info",
        ];
        a.extend_from_slice(extra);
        a
    };
    let out = pb(&[args(&["--config"]), vec![c]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let db = tmp.path().join("var/pb/pagerbridge.db");
    assert!(
        db.exists(),
        "relative to the configuration file's directory"
    );

    let out = pb_env(&args(&[]), &[("PAGERBRIDGE_CONFIG", c)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = pb_env(
        &["queue", "status", "--json"],
        &[(
            "PAGERBRIDGE_DATA_DIR",
            tmp.path().join("var/pb").to_str().unwrap(),
        )],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["pending"], 2);

    let out = pb(&[
        "queue",
        "status",
        "--config",
        c,
        "--data-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "--config and --data-dir conflict");

    // A flag wins over the other option's variable; both variables at once are ambiguous.
    let elsewhere = tmp.path().join("elsewhere");
    let out = pb_env(
        &[args(&["--data-dir"]), vec![elsewhere.to_str().unwrap()]].concat(),
        &[("PAGERBRIDGE_CONFIG", c)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(elsewhere.join("pagerbridge.db").exists());
    let out = pb_env(
        &["queue", "status"],
        &[
            ("PAGERBRIDGE_CONFIG", c),
            ("PAGERBRIDGE_DATA_DIR", elsewhere.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("both PAGERBRIDGE_CONFIG and PAGERBRIDGE_DATA_DIR"),
        "{}",
        out.stderr
    );

    std::fs::write(&config, "[server]\nbogus = 1\n").unwrap();
    let out = pb(&[args(&["--config"]), vec![c]].concat());
    assert_eq!(out.code, 2, "an invalid configuration is bad input");
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
}

#[test]
fn help_documents_the_exit_codes() {
    for args in [
        &["event", "--help"][..],
        &["event", "trigger", "--help"],
        &["event", "resolve", "--help"],
    ] {
        let out = pb(args);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("Exit codes:"), "{args:?}");
        assert!(out.stdout.contains("3  the outbox cannot be written"));
    }
    let out = pb(&["event", "trigger", "--help"]);
    for flag in [
        "--routing-key",
        "--summary",
        "--source",
        "--severity",
        "--dedup-key",
        "--component",
        "--group",
        "--class",
        "--timestamp",
        "--details",
        "--detail",
        "--link",
        "--image",
        "--client",
        "--client-url",
        "--config",
        "--data-dir",
        "--json",
        "PAGERBRIDGE_ROUTING_KEY",
        "PAGERBRIDGE_CONFIG",
        "PAGERBRIDGE_DATA_DIR",
    ] {
        assert!(out.stdout.contains(flag), "trigger --help lists {flag}");
    }
    for sub in ["status", "list", "show", "retry", "drop"] {
        let out = pb(&["queue", sub, "--help"]);
        assert_eq!(out.code, 0);
        assert!(
            out.stdout.contains("4  show: no event with that id"),
            "{sub}"
        );
    }
}

fn status_of(out: &Out) -> (u64, u64, u64) {
    let s = out.json();
    (
        s["pending"].as_u64().unwrap(),
        s["dead"].as_u64().unwrap(),
        s["delivered"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_without_a_daemon_delivered_by_the_next_one_then_managed_with_queue() {
    let pd = TestPd::start().await;
    let tmp = TempDir::new().unwrap();
    let config = write_config(tmp.path(), &pd);
    let c = config.to_str().unwrap().to_owned();
    let event = |key: &str, summary: &str| {
        pb(&[
            "event",
            "trigger",
            "--config",
            &c,
            "--routing-key",
            key,
            "--summary",
            summary,
            "--source",
            "db1",
            "--severity",
            "error",
        ])
    };

    // No daemon: both are stored; one is for a key PagerDuty does not know.
    let ok = event(DEMO_ROUTING_KEY, "Queued while the daemon was down");
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let refused = event(UNKNOWN_KEY, "For nobody");
    assert_eq!(refused.code, 0, "{}", refused.stderr);
    let status = pb(&["queue", "status", "--json", "--config", &c]);
    assert_eq!(status_of(&status), (2, 0, 0));

    {
        let _daemon = start_daemon(&config);
        wait_until("the incident exists in PagerDuty", || async {
            incident_titles(&pd)
                .await
                .contains(&"Queued while the daemon was down".to_owned())
        })
        .await;
        // `queue` reads the store while the daemon writes it.
        wait_until("the refused event is a dead letter", || async {
            status_of(&pb_async(&["queue", "status", "--json", "--config", &c]).await) == (0, 1, 1)
        })
        .await;
    }

    // Daemon stopped: one more event stays pending.
    let pending = event(DEMO_ROUTING_KEY, "Waiting");
    assert_eq!(pending.code, 0);
    let pending_key = pending.stdout.trim().to_owned();

    // status: the table and the JSON say the same.
    let s = pb(&["queue", "status", "--json", "--config", &c]);
    assert_eq!(s.code, 0);
    let sj = s.json();
    assert_eq!(
        (
            &sj["pending"],
            &sj["dead"],
            &sj["delivered"],
            &sj["coalesced"],
            &sj["dropped"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0), &json!(0))
    );
    assert!(sj["oldest_pending_age_seconds"].as_i64().unwrap() >= 0);
    let key = &sj["by_routing_key"][0];
    assert_eq!(key["routing_key"], DEMO_ROUTING_KEY);
    assert_eq!((&key["pending"], &key["lanes"]), (&json!(1), &json!(1)));
    assert_eq!(key["next_attempt_in_seconds"], 0);
    let table = pb(&["queue", "status", "--config", &c]);
    assert_eq!(table.code, 0);
    let row = |t: &str, first: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no {first} row in:\n{t}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row(&table.stdout, "pending")[1], "1");
    assert_eq!(row(&table.stdout, "dead"), ["dead", "1"]);
    assert_eq!(row(&table.stdout, "delivered"), ["delivered", "1"]);
    let key_row = row(&table.stdout, DEMO_ROUTING_KEY);
    assert_eq!(key_row[1..3], ["1", "1"]);
    assert_eq!(key_row.last().unwrap(), "now");
    assert!(
        table.stdout.contains("1 dead letter(s)"),
        "{}",
        table.stdout
    );

    // list: newest first; filters; JSON has the full records.
    let list = pb(&["queue", "list", "--json", "--config", &c]);
    assert_eq!(list.code, 0);
    let lj = list.json();
    let states: Vec<&str> = lj
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "dead", "delivered"]);
    assert_eq!(lj[0]["dedup_key"], pending_key.as_str());
    assert_eq!(lj[0]["body"]["payload"]["summary"], "Waiting");
    assert_eq!(
        lj[2]["response"].as_str().map(|r| r.contains("success")),
        Some(true)
    );
    let dead_id = lj[1]["id"].as_i64().unwrap();
    let delivered_id = lj[2]["id"].as_i64().unwrap();
    let pending_id = lj[0]["id"].as_i64().unwrap();

    let table = pb(&["queue", "list", "--config", &c]);
    assert_eq!(table.code, 0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", table.stdout);
    let dead_row: Vec<&str> = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(&dead_id.to_string()))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(dead_row[1..3], ["dead", "trigger"]);
    assert_eq!(
        dead_row[3], "0123456789…bcdef",
        "routing key shortened in the middle"
    );
    assert!(
        table
            .stdout
            .contains("400 Event object is invalid: Invalid routing key"),
        "{}",
        table.stdout
    );

    let only_dead = pb(&["queue", "list", "--json", "--state", "dead", "--config", &c]).json();
    assert_eq!(only_dead.as_array().unwrap().len(), 1);
    let two_states = pb(&[
        "queue",
        "list",
        "--json",
        "--state",
        "dead,delivered",
        "--config",
        &c,
    ])
    .json();
    assert_eq!(two_states.as_array().unwrap().len(), 2);
    let by_key = pb(&[
        "queue",
        "list",
        "--json",
        "--routing-key",
        UNKNOWN_KEY,
        "--config",
        &c,
    ])
    .json();
    assert_eq!(by_key[0]["id"], dead_id);
    let by_dedup = pb(&[
        "queue",
        "list",
        "--json",
        "--dedup-key",
        &pending_key,
        "--config",
        &c,
    ])
    .json();
    assert_eq!(by_dedup[0]["id"], pending_id);
    let page = pb(&["queue", "list", "--limit", "1", "--config", &c]);
    assert!(
        page.stdout.contains(&format!("--before {pending_id}")),
        "{}",
        page.stdout
    );
    let next = pb(&[
        "queue",
        "list",
        "--json",
        "--limit",
        "1",
        "--before",
        &pending_id.to_string(),
        "--config",
        &c,
    ])
    .json();
    assert_eq!(next[0]["id"], dead_id);

    // show: PagerDuty's reason for the dead letter; its answer for the delivered event.
    let show = pb(&["queue", "show", &dead_id.to_string(), "--config", &c]);
    assert_eq!(show.code, 0);
    assert!(
        show.stdout.contains("Invalid routing key"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("\"summary\": \"For nobody\""),
        "{}",
        show.stdout
    );
    let shown = pb(&[
        "queue",
        "show",
        &dead_id.to_string(),
        "--json",
        "--config",
        &c,
    ])
    .json();
    assert_eq!(shown["last_status"], 400);
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap()
            .contains("Invalid routing key")
    );
    let delivered = pb(&["queue", "show", &delivered_id.to_string(), "--config", &c]);
    assert!(
        delivered.stdout.contains("PagerDuty's answer:"),
        "{}",
        delivered.stdout
    );
    let missing = pb(&["queue", "show", "999", "--config", &c]);
    assert_eq!(missing.code, 4);
    assert!(missing.stderr.contains("no event with id 999"));

    // retry: dead -> pending; a delivered or unknown id is reported and exits 1.
    let retry = pb(&[
        "queue",
        "retry",
        &dead_id.to_string(),
        &delivered_id.to_string(),
        "999",
        "--json",
        "--config",
        &c,
    ]);
    assert_eq!(retry.code, 1);
    assert_eq!(
        retry.json(),
        json!({"action": "retry", "changed": 1, "ids": [dead_id],
            "not_eligible": [{"id": delivered_id, "state": "delivered"}],
            "unknown": [999], "changed_meanwhile": 0})
    );
    let s = pb(&["queue", "status", "--json", "--config", &c]);
    assert_eq!(status_of(&s), (2, 0, 1));

    // drop: pending -> dropped, in table form.
    let drop = pb(&[
        "queue",
        "drop",
        &dead_id.to_string(),
        &pending_id.to_string(),
        "--config",
        &c,
    ]);
    assert_eq!(drop.code, 0, "{}", drop.stderr);
    assert!(
        drop.stdout
            .starts_with(&format!("Dropped 2 event(s): {dead_id}, {pending_id}")),
        "{}",
        drop.stdout
    );
    let drop_again = pb(&["queue", "drop", &pending_id.to_string(), "--config", &c]);
    assert_eq!(drop_again.code, 1);
    assert!(
        drop_again.stderr.contains("(dropped)"),
        "{}",
        drop_again.stderr
    );
    let s = pb(&["queue", "status", "--json", "--config", &c]).json();
    assert_eq!((&s["pending"], &s["dropped"]), (&json!(0), &json!(2)));

    // A dropped event can be retried; --all-dead retries every dead letter.
    let back = pb(&["queue", "retry", &pending_id.to_string(), "--config", &c]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    let none = pb(&["queue", "retry", "--all-dead", "--config", &c]);
    assert_eq!(none.code, 0);
    assert!(none.stdout.contains("No dead letters"), "{}", none.stdout);

    // Make two dead letters again with the daemon, then retry them all at once.
    let again = event(UNKNOWN_KEY, "For nobody, again");
    assert_eq!(again.code, 0);
    let dropped_back = pb(&["queue", "retry", &dead_id.to_string(), "--config", &c]);
    assert_eq!(dropped_back.code, 0, "{}", dropped_back.stderr);
    {
        let _daemon = start_daemon(&config);
        wait_until("everything is delivered or dead", || async {
            status_of(&pb_async(&["queue", "status", "--json", "--config", &c]).await) == (0, 2, 2)
        })
        .await;
        // Beside a running daemon: stored in its database, picked up at its next poll.
        let live = pb_async(&[
            "event",
            "trigger",
            "--config",
            &c,
            "--routing-key",
            DEMO_ROUTING_KEY,
            "--summary",
            "While the daemon runs",
            "--source",
            "db1",
            "--severity",
            "warning",
        ])
        .await;
        assert_eq!(live.code, 0, "{}", live.stderr);
        wait_until(
            "the daemon delivers an event it did not receive",
            || async {
                incident_titles(&pd)
                    .await
                    .contains(&"While the daemon runs".to_owned())
            },
        )
        .await;
    }
    let all = pb(&["queue", "retry", "--all-dead", "--json", "--config", &c]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let aj = all.json();
    assert_eq!(aj["changed"], 2);
    assert_eq!(aj["ids"].as_array().unwrap().len(), 2);
    assert!(
        incident_titles(&pd).await.contains(&"Waiting".to_owned()),
        "the dropped-then-retried event was delivered"
    );
}
