//! `pagerbridge incident ...` as an operator runs it: the real binary against the in-process
//! PagerDuty emulator (every response it serves checked against PagerDuty's OpenAPI files).

mod support;

use std::collections::HashSet;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::{IncidentQuery, IncidentStatus};
use pagerduty::{Event, EventAction, Severity};
use pagerduty_emulator::world::Effect;
use pagerduty_emulator::{FaultKind, FaultSpec, Scope};
use serde_json::{Value, json};
use support::{Out, PdRun, pb_pd};

const TOKEN: &str = support::PD_TOKEN;
const FROM: &str = support::PD_FROM;

/// Runs the binary against `pd` with a clean environment.
async fn pb(pd: &TestPd, args: &[&str]) -> Out {
    pb_pd(pd, args, PdRun::default()).await
}

/// Opens an incident straight in the emulator's world (no HTTP), as if an event arrived at `at`.
fn trigger_at(pd: &TestPd, routing_key: &str, dedup_key: &str, at: Timestamp) -> String {
    let ev = Event::trigger(
        routing_key,
        format!("{dedup_key} is down"),
        "web-01",
        Severity::Critical,
    )
    .with_dedup_key(dedup_key);
    match pd.world().apply_event(&ev, at).expect("known routing key") {
        (_, Effect::Created { incident }) => incident,
        (_, other) => panic!("{dedup_key} did not open an incident: {other:?}"),
    }
}

/// `n` incidents on the demo service, a second apart, the first `minutes` ago.
fn seed(pd: &TestPd, prefix: &str, n: i64, minutes: i64) -> Vec<String> {
    let base = Timestamp::now() - SignedDuration::from_mins(minutes);
    (0..n)
        .map(|i| {
            trigger_at(
                pd,
                DEMO_ROUTING_KEY,
                &format!("{prefix}-{i}"),
                base + SignedDuration::from_secs(i),
            )
        })
        .collect()
}

async fn ids_with_status(pd: &TestPd, status: IncidentStatus) -> HashSet<String> {
    pd.rest()
        .incidents(IncidentQuery {
            statuses: vec![status],
            all_dates: true,
            ..IncidentQuery::default()
        })
        .map_ok(|i| i.id)
        .try_collect()
        .await
        .unwrap()
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn rate_limit(pd: &TestPd, count: u32) {
    pd.inject(FaultSpec {
        kind: FaultKind::RateLimit,
        status: None,
        retry_after: Some(1),
        delay_ms: None,
        count: Some(count),
        seconds: None,
        scope: Scope::Rest,
    })
    .unwrap();
}

// ---------------------------------------------------------------- list

#[tokio::test]
async fn list_pages_past_100_and_shows_open_incidents_of_all_dates_by_default() {
    let pd = TestPd::start().await;
    // Older than PagerDuty's default 30-day window: open incidents of every date are listed.
    let old = trigger_at(
        &pd,
        DEMO_DB_ROUTING_KEY,
        "ancient",
        Timestamp::now() - SignedDuration::from_hours(24 * 90 + 1),
    );
    let open = seed(&pd, "open", 150, 120);
    for i in 0..5 {
        pd.world()
            .apply_event(
                &Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, format!("open-{i}")),
                Timestamp::now(),
            )
            .unwrap();
    }

    let out = pb(&pd, &["incident", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let ids = ids_of(&out.json());
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        146,
        "145 open of the 150, and the 90-day-old one"
    );
    assert_eq!(unique.len(), ids.len(), "an incident came twice");
    assert_eq!(ids[0], old, "oldest first");
    assert!(!ids.contains(&open[0]), "resolved ones are not open");

    // People get a table and the count.
    let out = pb(&pd, &["incident", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", lines[0]);
    for column in ["STATUS", "URGENCY", "SERVICE", "CREATED", "TITLE"] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    assert_eq!(lines.last(), Some(&"146 incidents"));
    assert_eq!(out.stdout.matches(" triggered ").count(), 146);
    assert!(out.stdout.contains(" h ago"), "relative times");
    assert!(out.stdout.contains("90 d ago"), "relative times");

    let out = pb(&pd, &["incident", "list", "--status", "all", "--json"]).await;
    assert_eq!(ids_of(&out.json()).len(), 151);
    let out = pb(&pd, &["incident", "list", "--status", "resolved", "--json"]).await;
    assert_eq!(ids_of(&out.json()), open[..5]);
    let out = pb(
        &pd,
        &[
            "incident",
            "list",
            "--status",
            "triggered,resolved",
            "--json",
        ],
    )
    .await;
    assert_eq!(ids_of(&out.json()).len(), 151);

    // A service by name; since/until; limit.
    let out = pb(
        &pd,
        &["incident", "list", "--service", "database", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ids_of(&out.json()), [old.as_str()]);
    let out = pb(&pd, &["incident", "list", "--since", "7d", "--json"]).await;
    assert_eq!(ids_of(&out.json()).len(), 145);
    let out = pb(&pd, &["incident", "list", "--until", "30d", "--json"]).await;
    assert_eq!(ids_of(&out.json()), [old.as_str()]);
    let out = pb(&pd, &["incident", "list", "--limit", "3", "--json"]).await;
    assert_eq!(ids_of(&out.json()), [old, open[5].clone(), open[6].clone()]);
    let out = pb(&pd, &["incident", "list", "--urgency", "low", "--json"]).await;
    assert_eq!(out.json(), json!([]));
    let out = pb(&pd, &["incident", "list", "--urgency", "low"]).await;
    assert_eq!(out.stdout, "No incidents.\n");

    // Mistakes name what is wrong.
    let out = pb(&pd, &["incident", "list", "--since", "yesterday"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("pagerbridge: since: \"yesterday\""),
        "{}",
        out.stderr
    );
    let out = pb(&pd, &["incident", "list", "--service", "Nope"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("service: no service"), "{}", out.stderr);
    let out = pb(&pd, &["incident", "list", "--status", "closed"]).await;
    assert_eq!(out.code, 2, "clap refuses it: {}", out.stderr);
    assert!(out.stderr.contains("closed"), "{}", out.stderr);
}

/// PagerDuty refuses offsets past 10,000; the list goes on by creation time and misses or
/// repeats nothing.
#[tokio::test]
async fn list_goes_past_the_10000_offset_ceiling_exactly() {
    let pd = TestPd::start().await;
    let created: HashSet<String> = seed(&pd, "w", 10_250, 3 * 24 * 60).into_iter().collect();

    let out = pb(&pd, &["incident", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "no progress bar off a terminal");
    let ids = ids_of(&out.json());
    assert_eq!(ids.len(), 10_250);
    let seen: HashSet<String> = ids.into_iter().collect();
    assert_eq!(seen.len(), 10_250, "an incident came twice");
    assert_eq!(seen, created);

    let out = pb(&pd, &["incident", "list", "-q"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
}

// ---------------------------------------------------------------- show and note

#[tokio::test]
async fn show_prints_the_incident_with_its_alerts_log_entries_and_notes() {
    let pd = TestPd::start().await;
    let id = trigger_at(
        &pd,
        DEMO_DB_ROUTING_KEY,
        "disk/db1",
        Timestamp::now() - SignedDuration::from_secs(10 * 60 + 30),
    );

    let out = pb(
        &pd,
        &["incident", "note", &id, "Looking at it: the disk is full"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("Added a note to incident {id}\n"));
    let out = pb_pd(
        &pd,
        &["incident", "note", &id, "-", "--json"],
        PdRun {
            stdin: Some("from a pipe\n".into()),
            ..PdRun::default()
        },
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["content"], "from a pipe");

    let out = pb(&pd, &["incident", "show", &id, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["incident", "alerts", "log_entries", "notes"]);
    assert_eq!(v["incident"]["id"], id.as_str());
    assert_eq!(v["incident"]["service"]["id"], "PDEMO02");
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(v["alerts"][0]["alert_key"], "disk/db1");
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["content"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["Looking at it: the disk is full", "from a pipe"]);
    let kinds: Vec<&str> = v["log_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"trigger_log_entry"), "{kinds:?}");
    assert!(kinds.contains(&"annotate_log_entry"), "{kinds:?}");

    let out = pb(&pd, &["incident", "show", &id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for expected in [
        "disk/db1 is down",
        "Database (PDEMO02)",
        "triggered",
        "10 min ago",
        "Alerts (1):",
        "Log, newest first",
        "Notes (2):",
        "Looking at it: the disk is full",
        "Ada Operator",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn an_unknown_incident_exits_4_and_a_malformed_id_exits_2() {
    let pd = TestPd::start().await;
    let out = pb(&pd, &["incident", "show", "PNOSUCH1"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(out.stderr, "pagerbridge: no incident PNOSUCH1\n");
    assert_eq!(out.stdout, "");
    let out = pb(&pd, &["incident", "show", "PNOSUCH1", "--json"]).await;
    assert_eq!(out.code, 4);
    assert_eq!(out.stdout, "", "stdout stays parseable: nothing");
    assert!(out.stderr.contains("no incident PNOSUCH1"));
    let out = pb(&pd, &["incident", "show", "PNOSUCH1", "-q"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (4, "", "")
    );

    let out = pb(&pd, &["incident", "note", "PNOSUCH1", "hello"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let out = pb(
        &pd,
        &["incident", "show", "https://x.pagerduty.com/incidents/Q1"],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a PagerDuty incident id"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- create

#[tokio::test]
async fn create_from_flags_finds_the_service_by_name() {
    let pd = TestPd::start().await;
    let out = pb(
        &pd,
        &[
            "incident",
            "create",
            "--title",
            "Disk full on db1",
            "--service",
            "Database",
            "--urgency",
            "low",
            "--body",
            "1% free on /var",
            "--incident-key",
            "disk/db1",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let created = out.json();
    let id = created["id"].as_str().unwrap();
    let stored = pd.rest().get_incident(id).await.unwrap();
    assert_eq!(stored.title.as_deref(), Some("Disk full on db1"));
    assert_eq!(stored.service.unwrap().id, "PDEMO02");
    assert_eq!(stored.urgency.map(|u| u.as_str()), Some("low"));
    assert_eq!(stored.incident_key.as_deref(), Some("disk/db1"));

    // Again with the same key: PagerDuty refuses it, and says why.
    let out = pb(
        &pd,
        &[
            "incident",
            "create",
            "--title",
            "Disk full again",
            "--service",
            "PDEMO02",
            "--incident-key",
            "disk/db1",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("pagerbridge: creating the incident"),
        "{}",
        out.stderr
    );

    let out = pb(
        &pd,
        &[
            "incident",
            "create",
            "--title",
            "Web down",
            "--service",
            "demo service",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Created incident #2 ")
            && out.stdout.contains("on Demo Service: Web down"),
        "{}",
        out.stdout
    );

    // What clap and the flags' own checks refuse.
    let out = pb(&pd, &["incident", "create", "--title", "x"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--service"), "{}", out.stderr);
    let out = pb(
        &pd,
        &[
            "incident",
            "create",
            "--title",
            " ",
            "--service",
            "Database",
        ],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("title: must not be blank"),
        "{}",
        out.stderr
    );
    let out = pb(
        &pd,
        &["incident", "create", "--title", "x", "--service", "Nope"],
    )
    .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
}

#[tokio::test]
async fn create_from_a_json_file_checks_it_against_pagerdutys_schema() {
    let pd = TestPd::start().await;
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("incident.json");
    let body = json!({"incident": {
        "type": "incident",
        "title": "From a file",
        "service": {"id": "PDEMO01", "type": "service_reference"},
        "urgency": "high",
        "body": {"type": "incident_body", "details": "written by a script"},
    }});
    std::fs::write(&file, body.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let out = pb(&pd, &["incident", "create", "--file", path, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pd.rest().get_incident(&id).await.unwrap().title.as_deref(),
        Some("From a file")
    );

    // The incident object alone, on standard input.
    let out = pb_pd(
        &pd,
        &["incident", "create", "--file", "-", "--json"],
        PdRun {
            stdin: Some(
                body["incident"]
                    .to_string()
                    .replace("From a file", "From stdin"),
            ),
            ..PdRun::default()
        },
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["title"], "From stdin");

    // Invalid: refused before anything is sent, naming the field.
    let sent_before = pd.exchanges().len();
    let mut bad = body.clone();
    bad["incident"].as_object_mut().unwrap().remove("service");
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = pb(&pd, &["incident", "create", "--file", path]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("incident.service: is required"),
        "{}",
        out.stderr
    );
    let mut bad = body.clone();
    bad["incident"]["urgency"] = json!("urgent");
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = pb(&pd, &["incident", "create", "--file", path]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("incident.urgency"), "{}", out.stderr);
    std::fs::write(&file, "{\"incident\": ").unwrap();
    let out = pb(&pd, &["incident", "create", "--file", path]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not JSON"), "{}", out.stderr);
    let out = pb(
        &pd,
        &["incident", "create", "--file", "/nonexistent/x.json"],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("file: cannot read /nonexistent/x.json"),
        "{}",
        out.stderr
    );
    assert_eq!(pd.exchanges().len(), sent_before, "nothing sent");

    let out = pb(&pd, &["incident", "create", "--file", path, "--title", "x"]).await;
    assert_eq!(
        out.code, 2,
        "flags and a file exclude each other: {}",
        out.stderr
    );
}

// ---------------------------------------------------------------- acknowledge and resolve

#[tokio::test]
async fn bulk_ack_and_resolve_of_260_go_in_chunks_of_at_most_250() {
    let pd = TestPd::start().await;
    let created: HashSet<String> = seed(&pd, "bulk", 260, 60).into_iter().collect();

    // The pipeline of the help text: list, jq, ack from standard input.
    let out = pb(&pd, &["incident", "list", "--json"]).await;
    let ids: String = ids_of(&out.json()).join("\n") + "\n";
    let out = pb_pd(
        &pd,
        &["incident", "ack", "-"],
        PdRun {
            stdin: Some(ids),
            ..PdRun::default()
        },
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Acknowledged 260 incidents: ")
            && out.stdout.ends_with(" and 240 more\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        ids_with_status(&pd, IncidentStatus::Acknowledged).await,
        created
    );

    let puts = |pd: &TestPd| -> Vec<usize> {
        pd.exchanges()
            .iter()
            .filter(|x| x.method == "PUT" && x.path == "/incidents")
            .map(|x| {
                let v: Value = serde_json::from_slice(&x.body).unwrap();
                v["incidents"].as_array().unwrap().len()
            })
            .collect()
    };
    assert_eq!(puts(&pd), [250, 10]);

    // Resolve them all, as arguments this time, with a resolution.
    let mut args = vec![
        "incident",
        "resolve",
        "--resolution",
        "cleaned up",
        "--json",
    ];
    let list: Vec<String> = created.iter().cloned().collect();
    args.extend(list.iter().map(String::as_str));
    let out = pb(&pd, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["updated"].as_array().unwrap().len(), 260);
    assert_eq!(report["failed"], json!([]));
    assert!(
        report["updated"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "resolved")
    );
    assert_eq!(
        ids_with_status(&pd, IncidentStatus::Resolved).await,
        created
    );
    assert_eq!(puts(&pd), [250, 10, 250, 10]);
}

#[tokio::test]
async fn ack_with_an_unknown_id_changes_the_others_and_names_it() {
    let pd = TestPd::start().await;
    let good = seed(&pd, "mixed", 3, 10);
    let out = pb(
        &pd,
        &["incident", "ack", &good[0], "PNOSUCH9", &good[1], &good[2]],
    )
    .await;
    assert_eq!(out.code, 1, "partly done: {}", out.stderr);
    assert!(
        out.stdout.starts_with("Acknowledged 3 incidents: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("pagerbridge: no incident PNOSUCH9\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 of 4 not changed"), "{}", out.stderr);
    assert_eq!(
        ids_with_status(&pd, IncidentStatus::Acknowledged).await,
        good.iter().cloned().collect()
    );

    // --json: the report names it too; stderr still does.
    let out = pb(
        &pd,
        &["incident", "resolve", &good[0], "PNOSUCH9", "--json"],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["updated"][0]["id"], good[0].as_str());
    assert_eq!(report["failed"][0]["id"], "PNOSUCH9");
    assert_eq!(report["failed"][0]["kind"], "not_found");
    assert!(
        out.stderr.contains("no incident PNOSUCH9"),
        "{}",
        out.stderr
    );

    // Only unknown ids: nothing changed, and the kind decides the exit code.
    let out = pb(&pd, &["incident", "ack", "PNOSUCH8", "PNOSUCH9"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    // A resolved incident cannot be acknowledged: PagerDuty's 400, named.
    let out = pb(&pd, &["incident", "ack", &good[0]]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(&good[0]), "{}", out.stderr);
    // Nothing on standard input.
    let out = pb_pd(
        &pd,
        &["incident", "ack", "-"],
        PdRun {
            stdin: Some("\n".into()),
            ..PdRun::default()
        },
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no incident id on standard input"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- credentials

#[tokio::test]
async fn a_missing_from_exits_2_and_names_the_flag() {
    let pd = TestPd::start().await;
    let ids = seed(&pd, "from", 2, 10);
    let no_from = || PdRun {
        unset: vec!["PAGERDUTY_FROM"],
        ..PdRun::default()
    };
    for args in [
        vec!["incident", "ack", &ids[0], &ids[1]],
        vec!["incident", "resolve", &ids[0]],
        vec!["incident", "note", &ids[0], "hello"],
        vec![
            "incident",
            "create",
            "--title",
            "x",
            "--service",
            "Database",
        ],
    ] {
        let out = pb_pd(&pd, &args, no_from()).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("--from"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("PAGERDUTY_FROM"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        ids_with_status(&pd, IncidentStatus::Triggered).await,
        ids.iter().cloned().collect(),
        "nothing changed"
    );
    // One bulk request was tried, not one per incident.
    let puts = pd.exchanges().iter().filter(|x| x.method == "PUT").count();
    assert_eq!(puts, 2);

    // Reads need no From.
    let out = pb_pd(&pd, &["incident", "list", "--json"], no_from()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The flag gives it.
    let out = pb_pd(
        &pd,
        &["incident", "ack", &ids[0], "--from", FROM],
        no_from(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test]
async fn a_wrong_or_missing_token_exits_5() {
    let pd = TestPd::start().await;
    let out = pb(&pd, &["incident", "list", "--api-token", "not-a-token"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("refused the API token (HTTP 401)"),
        "{}",
        out.stderr
    );

    let out = pb_pd(
        &pd,
        &["incident", "list"],
        PdRun {
            unset: vec!["PAGERDUTY_API_TOKEN"],
            ..PdRun::default()
        },
    )
    .await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    for way in ["--api-token", "PAGERDUTY_API_TOKEN", "pagerduty.api_token"] {
        assert!(out.stderr.contains(way), "{way} in {}", out.stderr);
    }
    assert!(pd.exchanges().len() == 1, "nothing sent without a token");
}

#[tokio::test]
async fn token_from_and_url_come_from_the_configuration_file() {
    let pd = TestPd::start().await;
    let ids = seed(&pd, "cfg", 2, 10);
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let config = dir.path().join("pagerbridge.toml");
    let write = |token: &str| {
        std::fs::write(
            &config,
            format!(
                "[pagerduty]\nrest_url = \"{}\"\nproxy = \"none\"\nfrom = \"{FROM}\"\napi_token = {token}\n",
                pd.url()
            ),
        )
        .unwrap();
    };
    let only_config = || PdRun {
        unset: vec![
            "PAGERDUTY_API_TOKEN",
            "PAGERDUTY_FROM",
            "PAGERDUTY_REST_URL",
        ],
        env: vec![("MY_PD_TOKEN", TOKEN.to_owned())],
        ..PdRun::default()
    };
    let path = config.to_str().unwrap();

    // The token from a file beside the configuration.
    write("{ file = \"token\" }");
    let out = pb_pd(
        &pd,
        &["incident", "ack", &ids[0], "--config", path],
        only_config(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // From the environment, the file named by PAGERBRIDGE_CONFIG.
    write("{ env = \"MY_PD_TOKEN\" }");
    let mut run = only_config();
    run.env.push(("PAGERBRIDGE_CONFIG", path.to_owned()));
    let out = pb_pd(&pd, &["incident", "ack", &ids[1]], run).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ids_with_status(&pd, IncidentStatus::Acknowledged).await,
        ids.iter().cloned().collect()
    );
    // The variable the file names is not set: said so, exit 5.
    let mut run = only_config();
    run.env.clear();
    let out = pb_pd(&pd, &["incident", "list", "-c", path], run).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pagerduty.api_token: the environment variable MY_PD_TOKEN"),
        "{}",
        out.stderr
    );
    // A flag wins over the file.
    let out = pb_pd(
        &pd,
        &["incident", "list", "-c", path, "--api-token", "wrong"],
        only_config(),
    )
    .await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    // A broken file: exit 2, naming it.
    std::fs::write(&config, "[pagerduty]\nrest_url = 3\n").unwrap();
    let out = pb_pd(&pd, &["incident", "list", "-c", path], only_config()).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("pagerduty.rest_url"), "{}", out.stderr);
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn rate_limits_are_waited_out_visibly_within_max_wait() {
    let pd = TestPd::start().await;
    seed(&pd, "rl", 3, 10);

    rate_limit(&pd, 2);
    let out = pb(&pd, &["incident", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ids_of(&out.json()).len(), 3);
    assert_eq!(
        out.stderr
            .matches("pagerbridge: waiting 1 s for the rate limit (GET /incidents")
            .count(),
        2,
        "{}",
        out.stderr
    );

    rate_limit(&pd, 1);
    let out = pb(&pd, &["incident", "list", "--quiet"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );

    rate_limit(&pd, 1);
    let out = pb(&pd, &["incident", "list", "--max-wait", "0"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("still rate limited by PagerDuty"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("waiting"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}
