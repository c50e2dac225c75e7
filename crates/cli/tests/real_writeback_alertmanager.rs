//! The way back into Prometheus Alertmanager (Debian's `prometheus-alertmanager`): an
//! acknowledgement in PagerDuty silences the alert, a resolve expires the silence, as
//! docs/integrations/alertmanager.md's "Write-back" section sets it up
//! (`alertmanager-writeback.toml`, secret from the environment as the snippet says).
//!
//! The alert reaches PagerDuty through `webhook_configs` to the daemon's `alertmanager` source
//! (`alertmanager-webhook.yml`, `alertmanager-pagerbridge.toml`), the one way that tells
//! pagerbridge the alert's labels, which the silence needs. Then, in PagerDuty, as its demo
//! user:
//! - an acknowledgement makes one active silence, created by the responder, matching exactly
//!   the alert's labels, its comment linking the incident; Alertmanager suppresses the alert
//!   and sends nothing more for it, so nothing comes back: one write-back;
//! - a note does nothing (`on_annotate = "nothing"`: silences carry no comments);
//! - a resolve expires the silence, and the alert is active again.
//!
//! Once through the emulator's Webhooks v3 subscription, once (the acknowledgement) through
//! the daemon polling PagerDuty's log entries.

mod real;

use pagerbridge_store::WritebackState;
use pagerbridge_testkit::DEMO_ROUTING_KEY;
use pagerbridge_testkit::monitors::alertmanager::Alertmanager;
use pagerduty::rest::{Incident as PdIncident, IncidentStatus};
use real::Bridge;
use real::way_back::{self, Db, RESPONDER, Way, WayBack, summary};
use serde_json::{Value, json};

const GROUP_WAIT: &str = "1s";
const GROUP_INTERVAL: &str = "2s";

/// The alert as Prometheus sends it.
fn alert(started: jiff::Timestamp) -> Value {
    json!({
        "labels": {
            "alertname": "DiskFull",
            "instance": "db1:9100",
            "job": "node",
            "severity": "critical",
        },
        "annotations": {"summary": "Disk almost full on db1:9100"},
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=disk",
        "startsAt": started.to_string(),
    })
}

/// The alert's labels as the equality matchers a silence of exactly this alert has, sorted.
fn matchers_of(labels: &Value) -> Vec<Value> {
    let mut m: Vec<Value> = labels
        .as_object()
        .expect("labels are an object")
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
        .collect();
    m.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_owned());
    m
}

fn sorted_matchers(silence: &Value) -> Vec<Value> {
    let mut m: Vec<Value> = silence["matchers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut x| {
            // Older Alertmanagers leave isEqual out; it defaults to true.
            if x.get("isEqual").is_none() {
                x["isEqual"] = json!(true);
            }
            x
        })
        .collect();
    m.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_owned());
    m
}

/// How many times Alertmanager has flushed an aggregation group (its debug log says so at
/// every `group_interval`, whether or not it then sends anything).
fn flushes(am: &Alertmanager) -> usize {
    std::fs::read_to_string(&am.proc.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("flushing"))
        .count()
}

/// The one alert, as Alertmanager lists it now.
async fn the_alert(am: &Alertmanager) -> Value {
    let alerts = am
        .get("alerts?silenced=true&inhibited=true&active=true")
        .await;
    let list = alerts.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "one alert: {alerts}");
    list[0].clone()
}

/// Everything one test runs, dropped in this order: the daemon and Alertmanager stop before
/// their directory goes.
struct Run {
    db: Db,
    bridge: Bridge,
    am: Alertmanager,
    wb: WayBack,
}

/// The alert as it fired, and the incident it opened.
struct Fired {
    sent: Value,
    /// The dedup key: Alertmanager's fingerprint of the alert.
    key: String,
    inc: PdIncident,
    /// The incident's page.
    url: String,
}

/// The emulator (subscribed to the daemon when `way` is webhooks), Alertmanager posting to
/// the daemon's `alertmanager` source, and the daemon with the write-back snippet. None when
/// skipped.
async fn start(way: Way) -> Option<Run> {
    let program = real::installed_or_skip("prometheus-alertmanager", &["prometheus-alertmanager"])?;
    let wb = WayBack::start(tempfile::tempdir().expect("tempdir"), way).await;
    let dir = wb.dir();
    let bridge_url = format!("http://127.0.0.1:{}", wb.port);

    // Alertmanager first: the daemon's configuration needs its URL, and it needs only the
    // daemon's (known: the port was chosen).
    let token = format!("am-token-{}", real::free_port());
    let token_file = dir.join("pagerbridge.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write the token file");
    let am_config = real::snippet("alertmanager-webhook.yml");
    let am_config = real::substitute(
        &am_config,
        "http://pagerbridge.example.com:8080/ingest/alertmanager",
        &format!("{bridge_url}/ingest/alertmanager"),
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
    let am = match Alertmanager::start(&program, dir, &am_config).await {
        Ok(am) => am,
        Err(why) => {
            real::skipped(&why);
            return None;
        }
    };

    let writeback = real::substitute(
        &wb.writeback_snippet("alertmanager-writeback.toml"),
        "url = \"http://alertmanager.example.com:9093\"",
        &format!("url = \"{}\"", am.url),
    );
    let config = wb.config(&format!(
        "[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\n{}\n\n{writeback}",
        real::snippet("alertmanager-pagerbridge.toml")
    ));
    // The secrets from the environment, as the snippets have them: only the daemon reads
    // this configuration.
    let bridge = wb
        .start_bridge(&config, None, &[("AM_WEBHOOK_TOKEN", token.as_str())])
        .await;
    let db = Db::open(dir).await;
    Some(Run { db, bridge, am, wb })
}

impl Run {
    fn report(&self) -> String {
        format!(
            "{}\n{}\n--- pagerbridge.log:\n{}",
            real::emulator_report(&self.wb.pd),
            self.am.proc.log_tail(30),
            self.bridge.proc.log_tail(40)
        )
    }

    async fn settle(&self) {
        way_back::settle(&self.wb.pd, self.wb.way, &self.db, || self.report()).await;
    }

    /// The alert fires: one incident, keyed by its fingerprint; its trigger (by the
    /// integration) is written back nowhere.
    async fn fire(&self) -> Fired {
        let (pd, am, report) = (&self.wb.pd, &self.am, || self.report());
        let sent = alert(jiff::Timestamp::now());
        am.post_alerts(std::slice::from_ref(&sent)).await;
        let key = am.fingerprint("instance", "db1:9100").await;
        let inc = way_back::the_incident(pd, &key, report).await;
        let url = inc.html_url.clone().expect("incidents have a page");
        self.settle().await;
        assert!(
            self.db.writebacks().await.is_empty(),
            "the trigger (by the integration) is not written back\n{}",
            report()
        );
        assert!(am.silences().await.is_empty(), "no silence yet");
        Fired {
            sent,
            key,
            inc,
            url,
        }
    }

    /// Acknowledged in PagerDuty: a silence of exactly this alert, by the responder, its
    /// comment linking the incident, and Alertmanager suppresses the alert. Returns the
    /// silence's id.
    async fn acknowledge(&self, fired: &Fired) -> String {
        let (pd, am, report) = (&self.wb.pd, &self.am, || self.report());
        way_back::acknowledge(pd, &fired.inc.id).await;
        let silence = real::wait_until("a silence for the acknowledgement", report, async || {
            am.silences()
                .await
                .into_iter()
                .find(|s| s["status"]["state"] == "active")
        })
        .await;
        let silence_id = silence["id"]
            .as_str()
            .expect("silences have ids")
            .to_owned();
        assert_eq!(
            silence["createdBy"], RESPONDER,
            "created by the responder: {silence}"
        );
        assert_eq!(
            silence["comment"],
            format!("Acknowledged in PagerDuty by {RESPONDER} {}", fired.url),
            "the comment says who and links the incident: {silence}"
        );
        assert_eq!(
            sorted_matchers(&silence),
            matchers_of(&fired.sent["labels"]),
            "the silence matches exactly the alert's labels: {silence}"
        );
        let ends: jiff::Timestamp = silence["endsAt"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("endsAt is a time: {silence}"));
        let lasts = ends.duration_since(jiff::Timestamp::now());
        assert!(
            lasts > jiff::SignedDuration::from_hours(23)
                && lasts <= jiff::SignedDuration::from_hours(24),
            "the snippet's silence_duration (24h): ends in {lasts:?}: {silence}"
        );
        let suppressed =
            real::wait_until("Alertmanager to suppress the alert", report, async || {
                let a = the_alert(am).await;
                (a["status"]["state"] == "suppressed").then_some(a)
            })
            .await;
        assert_eq!(
            suppressed["status"]["silencedBy"],
            json!([silence_id]),
            "silenced by that silence: {suppressed}"
        );
        silence_id
    }

    /// One write-back so far, the acknowledgement, and one silence; the incident
    /// acknowledged.
    async fn acknowledged_once(&self, fired: &Fired) {
        let report = || self.report();
        self.settle().await;
        assert_eq!(
            summary(&self.db.writebacks().await),
            [("acknowledge".to_owned(), WritebackState::Done)],
            "one write-back: the acknowledgement\n{}",
            report()
        );
        let silences = self.am.silences().await;
        assert_eq!(silences.len(), 1, "one silence: {silences:?}");
        let incidents = real::incidents_with_key(&self.wb.pd, &fired.key);
        assert_eq!(
            incidents.iter().map(|i| i.status).collect::<Vec<_>>(),
            [IncidentStatus::Acknowledged],
            "{}",
            report()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_silences_on_acknowledge_and_expires_on_resolve_without_echo() {
    let Some(run) = start(Way::Webhooks).await else {
        return;
    };
    let (pd, am, db, report) = (&run.wb.pd, &run.am, &run.db, || run.report());
    let fired = run.fire().await;
    let (key, inc) = (&fired.key, &fired.inc);
    let silence_id = run.acknowledge(&fired).await;

    // No echo: Alertmanager flushes the group twice more with the alert silenced and sends
    // nothing (no resolve either); nothing comes back from PagerDuty to write back.
    let before = flushes(am);
    real::wait_for("Alertmanager to flush the group twice more", report, || {
        (flushes(am) >= before + 2).then_some(())
    })
    .await;
    run.acknowledged_once(&fired).await;
    let silences = am.silences().await;
    let actions = real::actions_for(pd, key);
    assert!(
        !actions.is_empty() && actions.iter().all(|a| a == "trigger"),
        "the silenced alert sends neither an acknowledgement nor a resolve: {actions:?}\n{}",
        report()
    );
    let row = db.incident(key).await.expect("the map has the alert");
    assert_eq!(
        row.memo,
        Some(json!({"silence_id": silence_id})),
        "the silence is remembered, to expire it later: {row:?}"
    );

    // A note: Alertmanager has nowhere to put it.
    way_back::add_note(pd, &inc.id, "Replacing the disk, back within the hour").await;
    run.settle().await;
    assert_eq!(
        summary(&db.writebacks().await),
        [("acknowledge".to_owned(), WritebackState::Done)],
        "on_annotate = \"nothing\": no write-back for the note\n{}",
        report()
    );
    assert_eq!(am.silences().await, silences, "the silence is unchanged");

    // Resolved in PagerDuty: the silence expires, the alert is active again.
    way_back::resolve(pd, &inc.id).await;
    let expired = real::wait_until("the silence to expire", report, async || {
        am.silences()
            .await
            .into_iter()
            .find(|s| s["id"] == silence_id.as_str() && s["status"]["state"] == "expired")
    })
    .await;
    assert_eq!(expired["createdBy"], RESPONDER, "{expired}");
    real::wait_until("the alert to be active again", report, async || {
        (the_alert(am).await["status"]["state"] == "active").then_some(())
    })
    .await;
    run.settle().await;
    assert_eq!(
        summary(&db.writebacks().await),
        [
            ("acknowledge".to_owned(), WritebackState::Done),
            ("resolve".to_owned(), WritebackState::Done)
        ],
        "{}",
        report()
    );
    let silences = am.silences().await;
    assert_eq!(
        silences.len(),
        1,
        "expired, not replaced by another: {silences:?}"
    );
    assert_eq!(
        real::incidents_with_key(pd, key)
            .iter()
            .map(|i| i.status)
            .collect::<Vec<_>>(),
        [IncidentStatus::Resolved],
        "{}",
        report()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_silences_on_an_acknowledgement_the_poller_found() {
    let Some(run) = start(Way::Poller).await else {
        return;
    };
    run.wb.assert_way();
    let fired = run.fire().await;
    run.acknowledge(&fired).await;
    run.acknowledged_once(&fired).await;
}
