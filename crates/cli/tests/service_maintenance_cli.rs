//! `pagerbridge service ...` and `pagerbridge maintenance ...` as an operator runs them: the real
//! binary against the in-process PagerDuty emulator.

mod support;

use jiff::{SignedDuration, Timestamp};
use pagerbridge_testkit::TestPd;
use pagerduty::rest::WindowFilter;
use serde_json::Value;
use support::{Out, PdRun, pb_pd};

async fn pb_unset(pd: &TestPd, args: &[&str], unset: &[&str]) -> Out {
    let run = PdRun {
        unset: unset.to_vec(),
        ..PdRun::default()
    };
    pb_pd(pd, args, run).await
}

async fn pb(pd: &TestPd, args: &[&str]) -> Out {
    pb_unset(pd, args, &[]).await
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- services

#[tokio::test]
async fn service_list_and_show_by_id_or_name() {
    let pd = TestPd::start().await;

    let out = pb(&pd, &["service", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("NAME"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("PDEMO01  Demo Service  active"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PDEMO02  Database"), "{}", out.stdout);
    assert_eq!(lines.last(), Some(&"2 services"));

    let out = pb(&pd, &["service", "list", "--json"]).await;
    assert_eq!(names(&out.json(), "name"), ["Demo Service", "Database"]);
    let out = pb(&pd, &["service", "list", "--query", "data", "--json"]).await;
    assert_eq!(names(&out.json(), "id"), ["PDEMO02"]);
    let out = pb(&pd, &["service", "list", "--query", "nothing-like-it"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "No services.\n"));

    // By name (exact, then ignoring case), by id.
    for wanted in ["Database", "database", "PDEMO02"] {
        let out = pb(&pd, &["service", "show", wanted, "--json"]).await;
        assert_eq!(out.code, 0, "{wanted}: {}", out.stderr);
        let s = out.json();
        assert_eq!(
            (s["id"].as_str(), s["name"].as_str()),
            (Some("PDEMO02"), Some("Database"))
        );
    }
    let out = pb(&pd, &["service", "show", "demo service"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for expected in [
        "PDEMO01",
        "Demo Service",
        "active",
        "Integrations (",
        "escalation policy",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }

    let out = pb(&pd, &["service", "show", "No Such Service"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("service: no service with the id or name \"No Such Service\""),
        "{}",
        out.stderr
    );
    let out = pb(&pd, &["service", "list", "--api-token", "wrong"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
}

// ---------------------------------------------------------------- maintenance

#[tokio::test]
async fn maintenance_create_with_a_duration_and_list_shows_it() {
    let pd = TestPd::start().await;
    let before = Timestamp::now();
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Database",
            "--duration",
            "2h",
            "--description",
            "DB upgrade",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = out.json();
    let id = w["id"].as_str().unwrap().to_owned();
    let start: Timestamp = w["start_time"].as_str().unwrap().parse().unwrap();
    let end: Timestamp = w["end_time"].as_str().unwrap().parse().unwrap();
    assert!(
        start >= before - SignedDuration::from_secs(1),
        "{start} vs {before}"
    );
    assert_eq!(end.duration_since(start), SignedDuration::from_hours(2));
    assert_eq!(w["services"][0]["id"], "PDEMO02");

    // PagerDuty has it, and the service is in maintenance.
    let stored: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        pd.rest().maintenance_windows(&[], WindowFilter::Ongoing),
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].description.as_deref(), Some("DB upgrade"));
    let out = pb(&pd, &["service", "show", "Database", "--json"]).await;
    assert_eq!(out.json()["status"], "maintenance");

    let out = pb(&pd, &["maintenance", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("START"),
        "{}",
        out.stdout
    );
    assert!(lines[1].starts_with(&id), "{}", out.stdout);
    for expected in ["Database", "DB upgrade", " h)", "(in ", "(just now)"] {
        assert!(lines[1].contains(expected), "{expected:?} in {}", lines[1]);
    }
    assert_eq!(lines.last(), Some(&"1 maintenance window"));

    let out = pb(
        &pd,
        &["maintenance", "list", "--json", "--filter", "ongoing"],
    )
    .await;
    assert_eq!(names(&out.json(), "id"), [id.as_str()]);
    let out = pb(
        &pd,
        &["maintenance", "list", "--json", "--service", "database"],
    )
    .await;
    assert_eq!(names(&out.json(), "id"), [id.as_str()]);
    let out = pb(
        &pd,
        &["maintenance", "list", "--json", "--service", "Demo Service"],
    )
    .await;
    assert_eq!(out.json(), serde_json::json!([]));
    let out = pb(&pd, &["maintenance", "list", "--filter", "past"]).await;
    assert_eq!(out.stdout, "No past maintenance windows.\n");

    // A later window on both services, by start and end.
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "PDEMO01",
            "--service",
            "Database",
            "--start",
            "2099-01-01T22:00:00Z",
            "--end",
            "2099-01-02T02:00:00Z",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Created maintenance window ")
            && out
                .stdout
                .contains("on Demo Service, Database: from 2099-01-01 22:00 UTC"),
        "{}",
        out.stdout
    );
    let out = pb(
        &pd,
        &["maintenance", "list", "--filter", "future", "--json"],
    )
    .await;
    assert_eq!(out.json().as_array().unwrap().len(), 1);
    let out = pb(&pd, &["maintenance", "list", "--filter", "all", "--json"]).await;
    assert_eq!(out.json().as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn maintenance_create_refuses_what_is_wrong_naming_it() {
    let pd = TestPd::start().await;
    // Neither --duration nor --end, or both: clap says so.
    let out = pb(&pd, &["maintenance", "create", "--service", "Database"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--duration") && out.stderr.contains("--end"),
        "{}",
        out.stderr
    );
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Database",
            "--duration",
            "1h",
            "--end",
            "2099-01-01",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Database",
            "--duration",
            "2 parsecs",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("pagerbridge: duration: \"2 parsecs\""),
        "{}",
        out.stderr
    );
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Database",
            "--end",
            "2020-01-01",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("pagerbridge: end: "),
        "{}",
        out.stderr
    );
    let out = pb(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Nowhere",
            "--duration",
            "1h",
        ],
    )
    .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let out = pb(&pd, &["maintenance", "list", "--filter", "soon"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // A write without From: exit 2, naming the flag.
    let out = pb_unset(
        &pd,
        &[
            "maintenance",
            "create",
            "--service",
            "Database",
            "--duration",
            "1h",
        ],
        &["PAGERDUTY_FROM"],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--from"), "{}", out.stderr);

    let out = pb(&pd, &["maintenance", "list", "--filter", "all", "--json"]).await;
    assert_eq!(out.json(), serde_json::json!([]), "nothing was created");
}
