//! Prometheus Alertmanager (Debian's `prometheus-alertmanager`) notifying the pagerbridge
//! daemon both ways docs/integrations/alertmanager.md describes, each configured with the
//! snippet the page shows:
//! - `pagerduty_configs` pointed at the relay route (`alertmanager-pagerduty.yml`);
//! - `webhook_configs` pointed at an `alertmanager` source (`alertmanager-webhook.yml` and
//!   `alertmanager-pagerbridge.toml`), bearer token included.
//!
//! Alerts are posted to Alertmanager's API as Prometheus would; an alert that fires opens one
//! incident in the emulator, and the same alert resolved resolves it.

mod real;

use pagerbridge_testkit::monitors::alertmanager::Alertmanager;
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;
use real::{Bridge, Incident};
use serde_json::{Value, json};

/// Short enough for a test, and what the docs' `30s`/`5m` become here.
const GROUP_WAIT: &str = "1s";
const GROUP_INTERVAL: &str = "2s";

/// An alert as Prometheus sends it; `ends_at` in the past resolves it.
fn alert(instance: &str, starts_at: jiff::Timestamp, ends_at: Option<jiff::Timestamp>) -> Value {
    let mut a = json!({
        "labels": {
            "alertname": "DiskFull",
            "instance": instance,
            "job": "node",
            "severity": "critical",
        },
        "annotations": {
            "summary": format!("Disk almost full on {instance}"),
            "runbook_url": "https://runbooks.example.com/disk-full",
        },
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=disk",
        "startsAt": starts_at.to_string(),
    });
    if let Some(end) = ends_at {
        a["endsAt"] = json!(end.to_string());
    }
    a
}

fn report(pd: &TestPd, am: &Alertmanager, bridge: &Bridge) -> String {
    format!(
        "{}\n{}\n{}",
        real::emulator_report(pd),
        am.proc.log_tail(40),
        bridge.proc.log_tail(40)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_configs_through_the_relay_open_and_resolve_one_incident() {
    let Some(program) =
        real::installed_or_skip("prometheus-alertmanager", &["prometheus-alertmanager"])
    else {
        return;
    };
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bridge = Bridge::start(dir.path(), &real::bridge_config(&pd.url()), None, &[]).await;

    // The snippet gives the receiver; the route is the operator's, with test timings.
    let receivers = real::snippet("alertmanager-pagerduty.yml");
    let receivers = real::substitute(
        &receivers,
        "R0UTINGKEY0123456789012345678901",
        DEMO_ROUTING_KEY,
    );
    let receivers = real::substitute(
        &receivers,
        "http://pagerbridge.example.com:8080/v2/enqueue",
        &format!("{}/v2/enqueue", bridge.url),
    );
    let config = format!(
        "route:\n  receiver: pagerduty\n  group_by: [alertname]\n  group_wait: {GROUP_WAIT}\n  group_interval: {GROUP_INTERVAL}\n  repeat_interval: 1h\n\n{receivers}"
    );
    let am = match Alertmanager::start(&program, dir.path(), &config).await {
        Ok(am) => am,
        Err(why) => return real::skipped(&why),
    };
    let report = || report(&pd, &am, &bridge);

    let started = jiff::Timestamp::now();
    am.post_alerts(&[alert("db1:9100", started, None)]).await;
    let opened = real::wait_for("Alertmanager's trigger to open an incident", report, || {
        real::incidents(&pd).into_iter().next()
    })
    .await;
    assert_eq!(
        opened.status,
        IncidentStatus::Triggered,
        "the incident is open\n{}",
        report()
    );
    // Alertmanager's PagerDuty integration keys its events by the SHA-256 hex of the group
    // key; the relay must pass it through unchanged.
    assert!(
        opened.key.len() == 64 && opened.key.bytes().all(|b| b.is_ascii_hexdigit()),
        "dedup key {:?} is Alertmanager's own (SHA-256 hex)\n{}",
        opened.key,
        report()
    );

    am.post_alerts(&[alert("db1:9100", started, Some(jiff::Timestamp::now()))])
        .await;
    real::wait_for("the resolved alert to resolve the incident", report, || {
        (real::incidents(&pd).first()?.status == IncidentStatus::Resolved).then_some(())
    })
    .await;
    assert_eq!(
        real::incidents(&pd),
        vec![Incident {
            status: IncidentStatus::Resolved,
            ..opened.clone()
        }],
        "one incident, opened and resolved\n{}",
        report()
    );
    let actions = real::actions_for(&pd, &opened.key);
    assert_eq!(
        actions.last().map(String::as_str),
        Some("resolve"),
        "{actions:?}\n{}",
        report()
    );
    assert!(
        actions[..actions.len() - 1].iter().all(|a| a == "trigger"),
        "only triggers before the resolve: {actions:?}\n{}",
        report()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_configs_to_the_alertmanager_source_open_and_resolve_one_incident_per_alert() {
    let Some(program) =
        real::installed_or_skip("prometheus-alertmanager", &["prometheus-alertmanager"])
    else {
        return;
    };
    let pd = TestPd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("am-token-{}", real::free_port());

    let config = format!(
        "{}\n[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\n{}",
        real::bridge_config(&pd.url()),
        real::snippet("alertmanager-pagerbridge.toml")
    );
    let bridge = Bridge::start(
        dir.path(),
        &config,
        None,
        &[("AM_WEBHOOK_TOKEN", token.as_str())],
    )
    .await;

    let token_file = dir.path().join("pagerbridge.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write the token file");
    let am_config = real::snippet("alertmanager-webhook.yml");
    let am_config = real::substitute(
        &am_config,
        "http://pagerbridge.example.com:8080/ingest/alertmanager",
        &format!("{}/ingest/alertmanager", bridge.url),
    );
    let am_config = real::substitute(
        &am_config,
        "/etc/alertmanager/pagerbridge.token",
        &token_file.display().to_string(),
    );
    let am_config = real::substitute(
        &am_config,
        "group_wait: 30s",
        &format!("group_wait: {GROUP_WAIT}"),
    );
    let am_config = real::substitute(
        &am_config,
        "group_interval: 5m",
        &format!("group_interval: {GROUP_INTERVAL}"),
    );
    let am = match Alertmanager::start(&program, dir.path(), &am_config).await {
        Ok(am) => am,
        Err(why) => return real::skipped(&why),
    };
    let report = || report(&pd, &am, &bridge);

    // Two alerts of one group: `incident_per = "alert"` (the snippet's) gives each its own
    // incident, keyed by Alertmanager's fingerprint.
    let started = jiff::Timestamp::now();
    am.post_alerts(&[
        alert("db1:9100", started, None),
        alert("db2:9100", started, None),
    ])
    .await;
    let (db1, db2) = (
        am.fingerprint("instance", "db1:9100").await,
        am.fingerprint("instance", "db2:9100").await,
    );
    real::wait_for("two incidents, one per alert", report, || {
        (real::incidents(&pd).len() >= 2).then_some(())
    })
    .await;
    let mut keys: Vec<String> = real::incidents(&pd).into_iter().map(|i| i.key).collect();
    keys.sort();
    let mut expected = vec![db1.clone(), db2.clone()];
    expected.sort();
    assert_eq!(
        keys,
        expected,
        "one incident per alert, keyed by its fingerprint\n{}",
        report()
    );
    for key in [&db1, &db2] {
        let found = real::incidents_with_key(&pd, key);
        assert_eq!(found[0].status, IncidentStatus::Triggered, "{}", report());
        assert!(
            found[0].title.contains("Disk almost full on db"),
            "the summary annotation is the title: {:?}",
            found[0].title
        );
    }

    // db1 recovers: its incident resolves, db2's stays open.
    am.post_alerts(&[alert("db1:9100", started, Some(jiff::Timestamp::now()))])
        .await;
    real::wait_for(
        "db1's resolved alert to resolve its incident",
        report,
        || {
            (real::incidents_with_key(&pd, &db1)[0].status == IncidentStatus::Resolved)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        real::incidents_with_key(&pd, &db2)[0].status,
        IncidentStatus::Triggered,
        "db2 still fires\n{}",
        report()
    );

    am.post_alerts(&[alert("db2:9100", started, Some(jiff::Timestamp::now()))])
        .await;
    real::wait_for(
        "db2's resolved alert to resolve its incident",
        report,
        || {
            (real::incidents_with_key(&pd, &db2)[0].status == IncidentStatus::Resolved)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        real::incidents(&pd).len(),
        2,
        "no incident besides the two alerts'\n{}",
        report()
    );
    // The notification that reported db1 resolved repeated db2 firing: that repeat stayed on
    // db2's incident.
    let actions = real::actions_for(&pd, &db2);
    let triggers = actions.iter().take_while(|a| *a == "trigger").count();
    assert!(
        triggers >= 2 && actions[triggers..] == ["resolve"],
        "db2: the first notification, its repeat, then the resolve: {actions:?}\n{}",
        report()
    );
}
