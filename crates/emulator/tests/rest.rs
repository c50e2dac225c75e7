//! The emulated REST API as clients see it: through the typed `RestClient`, and through raw HTTP
//! where the exact status, error body or headers are the point. Every `TestPd` checks each
//! response it served against PagerDuty's OpenAPI files when it is dropped.

use std::collections::HashSet;
use std::time::Instant;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::{
    Incident, IncidentQuery, IncidentSort, IncidentStatus, IncidentUpdate, LogEntry, LogEntryQuery,
    NewIncident, ServiceStatus, Urgency, WindowFilter,
};
use pagerduty::{Error, ErrorBody, Event, EventAction, RestClient, Severity};
use pagerduty_emulator::world::Effect;
use pagerduty_emulator::{Emulator, Seed};
use reqwest::Method;
use serde_json::{Value, json};

const ACCOUNT: &str = "emulator-account-token";
const BOB_TOKEN: &str = "emulator-bob-token";
const READ_ONLY: &str = "emulator-read-only-token";
const ADA: &str = "ada@example.com";
const ADA_ID: &str = "PADA001";
const BOB_ID: &str = "PBOB002";
const DEMO: &str = "PDEMO01";
const DB: &str = "PDEMO02";
const FROM_MISSING: &str = "You must specify a user's email address in the \"From\" header";

// ---------------------------------------------------------------- helpers

/// Opens an incident straight in the world (no HTTP), as if an event arrived at `at`.
fn trigger_at(
    pd: &Emulator,
    routing_key: &str,
    dedup_key: &str,
    severity: Severity,
    at: Timestamp,
) -> String {
    let ev = Event::trigger(
        routing_key,
        format!("{dedup_key} is down"),
        "web-01",
        severity,
    )
    .with_dedup_key(dedup_key);
    let (_, effect) = pd.world().apply_event(&ev, at).expect("known routing key");
    match effect {
        Effect::Created { incident } => incident,
        other => panic!("trigger {dedup_key} did not open an incident: {other:?}"),
    }
}

fn trigger(pd: &Emulator, routing_key: &str, dedup_key: &str) -> String {
    trigger_at(
        pd,
        routing_key,
        dedup_key,
        Severity::Critical,
        Timestamp::now(),
    )
}

fn event_at(pd: &Emulator, routing_key: &str, action: EventAction, dedup_key: &str, at: Timestamp) {
    pd.world()
        .apply_event(&Event::update(routing_key, action, dedup_key), at)
        .expect("known routing key");
}

fn ago(minutes: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_mins(minutes)
}

/// A raw request with the account token and Ada as `From`; tests strip what they test.
fn req(pd: &Emulator, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", pd.url()))
        .header("Authorization", format!("Token token={ACCOUNT}"))
        .header("Accept", "application/vnd.pagerduty+json;version=2")
        .header("From", ADA)
}

/// `req` without any credentials or `From`.
fn bare(pd: &Emulator, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", pd.url()))
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> Option<i64> {
        self.body["error"]["code"].as_i64()
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    /// The error's message and detail strings, for "names the field" checks.
    fn error_text(&self) -> String {
        format!("{} {}", self.message(), self.body["error"]["errors"])
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends and reads the answer; a non-empty body must be JSON.
async fn send(rb: reqwest::RequestBuilder) -> Reply {
    let resp = rb.send().await.expect("emulator answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body reads");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "status {status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Status, code and the text of a REST error from the typed client.
fn api_error(e: Error) -> (u16, Option<i64>, String) {
    match e {
        Error::Api { status, body, .. } => {
            let text = match body.as_ref() {
                ErrorBody::Rest {
                    message, errors, ..
                } => format!("{message} {}", errors.join("; ")),
                other => other.to_string(),
            };
            (status, body.code(), text)
        }
        other => panic!("expected a PagerDuty API error, got {other:?}"),
    }
}

fn client_as(pd: &TestPd, token: &str, from: Option<&str>) -> RestClient {
    let c = RestClient::new(&pd.config(), token).expect("client builds");
    match from {
        Some(f) => c.with_from(f),
        None => c,
    }
}

async fn list(pd: &Emulator, query: &str) -> Reply {
    let r = send(req(pd, Method::GET, &format!("/incidents?{query}"))).await;
    assert_eq!(r.status, 200, "GET /incidents?{query}: {}", r.body);
    r
}

fn ids(r: &Reply, key: &str) -> Vec<String> {
    r.body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {}", r.body))
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

fn status_of(pd: &Emulator, id: &str) -> IncidentStatus {
    let w = pd.world();
    w.incidents[w.incident_by_id(id).expect("incident exists")].status
}

fn ack() -> IncidentUpdate {
    IncidentUpdate::status(IncidentStatus::Acknowledged)
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn tokens_authenticate_and_read_only_tokens_cannot_write() {
    let pd = TestPd::start().await;
    let id = trigger(&pd, DEMO_ROUTING_KEY, "auth");

    let r = send(bare(&pd, Method::GET, "/incidents")).await;
    assert_eq!((r.status, r.code()), (401, Some(2006)), "{}", r.body);

    let r = send(bare(&pd, Method::GET, "/incidents").header("Authorization", "Token token=nope"))
        .await;
    assert_eq!((r.status, r.code()), (401, Some(2006)), "{}", r.body);

    let r =
        send(bare(&pd, Method::GET, "/incidents").header("Authorization", "Token token=")).await;
    assert_eq!(r.status, 401);

    let r = send(
        bare(&pd, Method::GET, "/incidents").header("Authorization", format!("Bearer {ACCOUNT}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r, "incidents"), std::slice::from_ref(&id));

    // Read-only tokens read everything and write nothing, whatever the `From`.
    let ro = client_as(&pd, READ_ONLY, Some(ADA));
    assert_eq!(ro.get_incident(&id).await.expect("read").id, id);
    let (status, code, _) = api_error(ro.update_incident(&id, &ack()).await.unwrap_err());
    assert_eq!((status, code), (403, Some(2010)));
    let (status, code, _) = api_error(
        ro.create_incident(&NewIncident::new("nope", DEMO))
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code), (403, Some(2010)));
    let (status, code, _) = api_error(ro.create_note(&id, "nope").await.unwrap_err());
    assert_eq!((status, code), (403, Some(2010)));
    assert_eq!(status_of(&pd, &id), IncidentStatus::Triggered);
    assert!(pd.world().notes.is_empty());
}

#[tokio::test]
async fn rest_responses_carry_rate_limit_headers_and_throttle_with_2020() {
    let mut seed = Seed::demo();
    seed.settings.rest_requests_per_minute = 3;
    let pd = TestPd::with_seed(seed).await;
    for remaining in ["2", "1", "0"] {
        let r = send(req(&pd, Method::GET, "/users")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some(remaining));
        let reset: u64 = r.header("ratelimit-reset").expect("reset").parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let r = send(req(&pd, Method::GET, "/users")).await;
    assert_eq!((r.status, r.code()), (429, Some(2020)), "{}", r.body);
    assert_eq!(r.message(), "Rate Limit Exceeded");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // Limits are per token: another token still gets through.
    let r = send(
        bare(&pd, Method::GET, "/users")
            .header("Authorization", format!("Token token={BOB_TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------- From

#[tokio::test]
async fn account_token_writes_need_a_valid_from_header() {
    let pd = TestPd::start().await;
    let id = trigger(&pd, DEMO_ROUTING_KEY, "from");
    let body = json!({"incident": {"type": "incident_reference", "status": "acknowledged"}});
    let put = |from: Option<&str>| {
        let rb = bare(&pd, Method::PUT, &format!("/incidents/{id}"))
            .header("Authorization", format!("Token token={ACCOUNT}"))
            .json(&body);
        match from {
            Some(f) => rb.header("From", f),
            None => rb,
        }
    };

    let r = send(put(None)).await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains(FROM_MISSING), "{}", r.body);

    let r = send(put(Some("nobody@example.com"))).await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("From"), "{}", r.body);

    let r = send(put(Some("not-an-email"))).await;
    assert_eq!((r.status, r.code()), (400, Some(1028)), "{}", r.body);

    assert_eq!(status_of(&pd, &id), IncidentStatus::Triggered);
    assert!(
        pd.world()
            .logs
            .iter()
            .all(|l| l.kind == "trigger_log_entry"),
        "a refused write must not change anything"
    );

    // The typed client without `with_from` hits the same rule on every write.
    let anon = client_as(&pd, ACCOUNT, None);
    let (status, _, text) = api_error(anon.create_note(&id, "hi").await.unwrap_err());
    assert_eq!(status, 400);
    assert!(text.contains(FROM_MISSING), "{text}");
    let (status, _, text) = api_error(
        anon.create_incident(&NewIncident::new("x", DEMO))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(text.contains(FROM_MISSING), "{text}");
    let (status, _, _) = api_error(
        anon.update_incidents(&[IncidentUpdate {
            id: Some(id.clone()),
            ..ack()
        }])
        .await
        .unwrap_err(),
    );
    assert_eq!(status, 400);
}

#[tokio::test]
async fn user_token_writes_act_as_its_user_without_from() {
    let pd = TestPd::start().await;
    let id = trigger(&pd, DEMO_ROUTING_KEY, "bob-acks");
    let bob = client_as(&pd, BOB_TOKEN, None);
    let inc = bob.update_incident(&id, &ack()).await.expect("bob acks");
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledgements.len(), 1);
    let acker = &inc.acknowledgements[0].acknowledger;
    assert_eq!(
        (acker.id.as_str(), acker.kind.as_str()),
        (BOB_ID, "user_reference")
    );
    assert_eq!(inc.last_status_change_by.as_ref().unwrap().id, BOB_ID);

    let logs: Vec<LogEntry> = bob
        .incident_log_entries(&id, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let ack_log = logs
        .iter()
        .find(|l| l.kind == "acknowledge_log_entry")
        .expect("an acknowledge log entry");
    let agent = ack_log.agent.as_ref().expect("agent");
    assert_eq!(
        (agent.id.as_str(), agent.kind.as_str()),
        (BOB_ID, "user_reference")
    );

    let note = bob.create_note(&id, "on it").await.expect("bob notes");
    assert_eq!(note.user.unwrap().id, BOB_ID);
}

// ---------------------------------------------------------------- incident list filters

#[tokio::test]
async fn incident_list_filters_and_sorts() {
    let pd = TestPd::start().await;
    // Created in this order so incident numbers run old, a, b, c.
    let old = trigger_at(
        &pd,
        DEMO_ROUTING_KEY,
        "old",
        Severity::Critical,
        ago(40 * 24 * 60),
    );
    event_at(
        &pd,
        DEMO_ROUTING_KEY,
        EventAction::Resolve,
        "old",
        ago(40 * 24 * 60 - 5),
    );
    let a = trigger_at(&pd, DEMO_ROUTING_KEY, "a", Severity::Critical, ago(180));
    let b = trigger_at(&pd, DEMO_ROUTING_KEY, "b", Severity::Critical, ago(120));
    event_at(
        &pd,
        DEMO_ROUTING_KEY,
        EventAction::Acknowledge,
        "b",
        ago(110),
    );
    // The Database service is severity based (warning -> low) and assigns Bob.
    let c = trigger_at(&pd, DEMO_DB_ROUTING_KEY, "c", Severity::Warning, ago(60));

    let cases: &[(&str, Vec<&String>)] = &[
        // PagerDuty's default window is recent: the 40-day-old incident is left out.
        ("", vec![&a, &b, &c]),
        ("statuses[]=triggered", vec![&a, &c]),
        ("statuses[]=acknowledged", vec![&b]),
        (
            "statuses[]=triggered&statuses[]=acknowledged",
            vec![&a, &b, &c],
        ),
        ("statuses[]=resolved", vec![]),
        ("statuses[]=resolved&date_range=all", vec![&old]),
        ("service_ids[]=PDEMO02", vec![&c]),
        (
            "service_ids[]=PDEMO01&service_ids[]=PDEMO02",
            vec![&a, &b, &c],
        ),
        ("service_ids[]=PNOPE99", vec![]),
        ("urgencies[]=low", vec![&c]),
        ("urgencies[]=high", vec![&a, &b]),
        ("incident_key=b", vec![&b]),
        ("incident_key=old&date_range=all", vec![&old]),
        ("date_range=all", vec![&old, &a, &b, &c]),
        ("user_ids[]=PBOB002", vec![&c]),
        ("user_ids[]=PADA001", vec![&a, &b]),
        ("sort_by=incident_number:desc", vec![&c, &b, &a]),
        ("sort_by=incident_number", vec![&a, &b, &c]),
        (
            "sort_by=created_at:asc&date_range=all",
            vec![&old, &a, &b, &c],
        ),
        ("sort_by=created_at:desc", vec![&c, &b, &a]),
    ];
    for (query, want) in cases {
        let got = ids(&list(&pd, query).await, "incidents");
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "GET /incidents?{query}");
    }

    // since/until pick by creation time, and through the typed client too.
    let q = IncidentQuery {
        since: Some(ago(150)),
        until: Some(ago(90)),
        ..Default::default()
    };
    let page = pd.rest().list_incidents(&q, 0, 25).await.unwrap();
    assert_eq!(page.items.iter().map(|i| &i.id).collect::<Vec<_>>(), [&b]);
    let q = IncidentQuery {
        since: Some(ago(50 * 24 * 60)),
        until: Some(ago(30 * 24 * 60)),
        ..Default::default()
    };
    let page = pd.rest().list_incidents(&q, 0, 25).await.unwrap();
    assert_eq!(page.items.iter().map(|i| &i.id).collect::<Vec<_>>(), [&old]);
    let q = IncidentQuery {
        sort_by: Some((IncidentSort::CreatedAt, true)),
        statuses: vec![IncidentStatus::Triggered],
        ..Default::default()
    };
    let page = pd.rest().list_incidents(&q, 0, 25).await.unwrap();
    assert_eq!(
        page.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&c, &a]
    );

    // `total` only when asked for.
    let r = list(&pd, "total=true").await;
    assert_eq!(r.body["total"], 3);
    assert_eq!(r.body["more"], false);
    assert_eq!(list(&pd, "").await.body["total"], Value::Null);

    for bad in [
        "sort_by=title",
        "sort_by=created_at:sideways",
        "statuses[]=sleeping",
        "urgencies[]=medium",
        "since=yesterday",
        "date_range=some",
        "total=maybe",
    ] {
        let r = send(req(&pd, Method::GET, &format!("/incidents?{bad}"))).await;
        assert_eq!((r.status, r.code()), (400, Some(2001)), "{bad}: {}", r.body);
        let name = bad.split(['=', '[']).next().unwrap();
        assert!(
            r.error_text().contains(name),
            "{bad} should name {name}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn incident_list_limits_and_offsets() {
    let pd = TestPd::start().await;
    let base = ago(300);
    for i in 0..120 {
        trigger_at(
            &pd,
            DEMO_ROUTING_KEY,
            &format!("lim-{i}"),
            Severity::Error,
            base + SignedDuration::from_secs(i),
        );
    }
    let r = list(&pd, "").await;
    assert_eq!(
        (r.body["limit"].as_u64(), r.body["offset"].as_u64()),
        (Some(25), Some(0))
    );
    assert_eq!(ids(&r, "incidents").len(), 25);
    assert_eq!(r.body["more"], true);

    let r = list(&pd, "limit=101").await;
    assert_eq!(r.body["limit"], 100);
    assert_eq!(ids(&r, "incidents").len(), 100);

    let r = list(&pd, "limit=100&offset=100").await;
    assert_eq!(ids(&r, "incidents").len(), 20);
    assert_eq!(r.body["more"], false);

    let first = ids(&list(&pd, "limit=10").await, "incidents");
    let second = ids(&list(&pd, "limit=10&offset=10").await, "incidents");
    assert!(first.iter().all(|id| !second.contains(id)), "pages overlap");

    // offset + limit may reach 10,000 but not pass it.
    let r = list(&pd, "offset=9900&limit=100").await;
    assert_eq!(ids(&r, "incidents").len(), 0);
    for bad in [
        "offset=9950&limit=100",
        "offset=10000",
        "offset=18446744073709551615&limit=100",
    ] {
        let r = send(req(&pd, Method::GET, &format!("/incidents?{bad}"))).await;
        assert_eq!((r.status, r.code()), (400, Some(2001)), "{bad}: {}", r.body);
        assert!(r.error_text().contains("offset"), "{bad}: {}", r.body);
    }
    for bad in ["limit=ten", "limit=-1", "offset=x"] {
        let r = send(req(&pd, Method::GET, &format!("/incidents?{bad}"))).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let name = bad.split('=').next().unwrap();
        assert!(r.error_text().contains(name), "{bad}: {}", r.body);
    }
}

// ---------------------------------------------------------------- pagination

#[tokio::test]
async fn list_all_and_incidents_see_260_incidents_once() {
    let pd = TestPd::start().await;
    let base = ago(600);
    let mut created = HashSet::new();
    for i in 0..260 {
        // Several per second: pages must not depend on distinct creation times.
        let at = base + SignedDuration::from_millis(i * 300);
        created.insert(trigger_at(
            &pd,
            DEMO_ROUTING_KEY,
            &format!("p-{i}"),
            Severity::Info,
            at,
        ));
    }
    let all: Vec<Incident> = pd
        .rest()
        .list_all("/incidents", "incidents", Vec::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 260);
    assert_eq!(
        all.iter().map(|i| i.id.clone()).collect::<HashSet<_>>(),
        created
    );
    let numbers: Vec<u64> = all.iter().map(|i| i.incident_number.unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "incident_number order"
    );

    let walked: Vec<Incident> = pd
        .rest()
        .incidents(IncidentQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(walked.len(), 260);
    assert_eq!(
        walked.iter().map(|i| i.id.clone()).collect::<HashSet<_>>(),
        created
    );
}

/// PagerDuty refuses offsets past 10,000; the client's walk goes on by creation time.
#[tokio::test]
async fn incidents_walk_goes_past_the_10000_offset_cap() {
    const N: i64 = 10_250;
    let pd = TestPd::start().await;
    let base = ago(3 * 24 * 60);
    let started = Instant::now();
    let mut created = HashSet::new();
    for i in 0..N {
        let at = base + SignedDuration::from_secs(i);
        created.insert(trigger_at(
            &pd,
            DEMO_ROUTING_KEY,
            &format!("w-{i}"),
            Severity::Info,
            at,
        ));
    }
    let seeded = started.elapsed();

    let r = send(req(&pd, Method::GET, "/incidents?offset=9950&limit=100")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("offset"), "{}", r.body);

    let started = Instant::now();
    let walked: Vec<Incident> = pd
        .rest()
        .incidents(IncidentQuery::default())
        .try_collect()
        .await
        .unwrap();
    let walk = started.elapsed();
    eprintln!("seeded {N} incidents in {seeded:?}; walked them in {walk:?}");

    assert_eq!(walked.len(), N as usize);
    let seen: HashSet<String> = walked.iter().map(|i| i.id.clone()).collect();
    assert_eq!(seen.len(), N as usize, "an incident came twice");
    assert_eq!(seen, created);
    let times: Vec<Timestamp> = walked.iter().map(|i| i.created_at.unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "not in created_at order"
    );
}

/// Incidents created faster than one per second share their `created_at` second, which is all
/// PagerDuty's REST API shows: the walk past 10,000 restarts inside such a second and must
/// neither lose nor repeat its incidents.
#[tokio::test]
async fn incidents_walk_past_10000_when_thousands_share_a_second() {
    const N: i64 = 10_250;
    let pd = TestPd::start().await;
    // Four seconds, 2,562 or so incidents each, with sub-second times as real arrivals have.
    let base = Timestamp::now() - SignedDuration::from_mins(5);
    let mut created = HashSet::new();
    for i in 0..N {
        let at = base + SignedDuration::from_millis(i * 4000 / N);
        created.insert(trigger_at(
            &pd,
            DEMO_ROUTING_KEY,
            &format!("s-{i}"),
            Severity::Info,
            at,
        ));
    }
    let walked: Vec<Incident> = pd
        .rest()
        .incidents(IncidentQuery {
            all_dates: true,
            statuses: vec![IncidentStatus::Triggered, IncidentStatus::Acknowledged],
            ..IncidentQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    let seen: HashSet<String> = walked.iter().map(|i| i.id.clone()).collect();
    assert_eq!(seen.len(), walked.len(), "an incident came twice");
    assert_eq!(walked.len(), N as usize);
    assert_eq!(seen, created);
}

// ---------------------------------------------------------------- one incident

#[tokio::test]
async fn get_incident_and_status_transitions() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let id = trigger(&pd, DEMO_ROUTING_KEY, "life");

    let r = send(req(&pd, Method::GET, "/incidents/PNOSUCH")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(matches!(r.code(), Some(5001 | 2100)), "{}", r.body);

    let inc = rest.get_incident(&id).await.unwrap();
    assert_eq!(
        (inc.status, inc.incident_key.as_deref()),
        (IncidentStatus::Triggered, Some("life"))
    );
    assert!(inc.resolved_at.is_none());
    // Present and null while open, as PagerDuty sends it.
    let r = send(req(&pd, Method::GET, &format!("/incidents/{id}"))).await;
    assert_eq!(r.body["incident"].get("resolved_at"), Some(&Value::Null));

    let inc = rest.update_incident(&id, &ack()).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledgements[0].acknowledger.id, ADA_ID);

    let inc = rest
        .update_incident(&id, &IncidentUpdate::status(IncidentStatus::Triggered))
        .await
        .unwrap();
    assert_eq!(inc.status, IncidentStatus::Triggered);
    assert!(
        inc.acknowledgements.is_empty(),
        "unacknowledging clears them"
    );

    let inc = rest
        .update_incident(
            &id,
            &IncidentUpdate {
                resolution: Some("restarted the pod".into()),
                ..IncidentUpdate::status(IncidentStatus::Resolved)
            },
        )
        .await
        .unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert!(inc.resolved_at.is_some());
    assert!(
        inc.assignments.is_empty(),
        "resolved incidents have no assignments"
    );
    let notes = rest.list_notes(&id).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].content, "restarted the pod");

    let logs: Vec<LogEntry> = rest
        .incident_log_entries(&id, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = logs.iter().map(|l| l.kind.as_str()).collect();
    for k in [
        "trigger_log_entry",
        "acknowledge_log_entry",
        "unacknowledge_log_entry",
        "resolve_log_entry",
        "annotate_log_entry",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let resolve = logs.iter().find(|l| l.kind == "resolve_log_entry").unwrap();
    assert_eq!(resolve.note.as_deref(), Some("restarted the pod"));

    for status in [
        IncidentStatus::Acknowledged,
        IncidentStatus::Triggered,
        IncidentStatus::Resolved,
    ] {
        let (s, code, _) = api_error(
            rest.update_incident(&id, &IncidentUpdate::status(status))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (s, code),
            (400, Some(1001)),
            "{status} on a resolved incident"
        );
    }

    // Title and urgency change without a status change.
    let other = trigger(&pd, DEMO_ROUTING_KEY, "rename");
    let inc = rest
        .update_incident(
            &other,
            &IncidentUpdate {
                // `IncidentUpdate::default()` leaves `type` empty, which PagerDuty refuses.
                kind: "incident_reference".into(),
                title: Some("Disk full on db-2".into()),
                urgency: Some(Urgency::Low),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(inc.title.as_deref(), Some("Disk full on db-2"));
    assert_eq!(inc.urgency, Some(Urgency::Low));
    assert_eq!(inc.status, IncidentStatus::Triggered);
    assert_eq!(
        rest.get_incident(&other).await.unwrap().urgency,
        Some(Urgency::Low)
    );

    let r = send(
        req(&pd, Method::PUT, &format!("/incidents/{other}"))
            .json(&json!({"incident": {"type": "incident_reference", "status": "sleeping"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("incident.status"), "{}", r.body);
    let r = send(
        req(&pd, Method::PUT, &format!("/incidents/{other}"))
            .json(&json!({"incident": {"type": "incident_reference", "urgency": "urgent"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("incident.urgency"), "{}", r.body);
    let r = send(
        req(&pd, Method::PUT, &format!("/incidents/{other}")).json(&json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "the incident wrapper is required: {}",
        r.body
    );
    assert_eq!(status_of(&pd, &other), IncidentStatus::Triggered);

    let r = send(
        req(&pd, Method::PUT, "/incidents/PNOSUCH")
            .json(&json!({"incident": {"type": "incident_reference", "status": "resolved"}})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

// ---------------------------------------------------------------- bulk update

#[tokio::test]
async fn bulk_update_is_all_or_nothing() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let three: Vec<String> = (0..3)
        .map(|i| trigger(&pd, DEMO_ROUTING_KEY, &format!("bulk-{i}")))
        .collect();
    let updates: Vec<IncidentUpdate> = three
        .iter()
        .map(|id| IncidentUpdate {
            id: Some(id.clone()),
            ..ack()
        })
        .collect();
    let out = rest.update_incidents(&updates).await.unwrap();
    assert_eq!(out.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), three);
    for id in &three {
        assert_eq!(status_of(&pd, id), IncidentStatus::Acknowledged);
    }

    let elem = |id: &str| json!({"id": id, "type": "incident_reference", "status": "resolved"});
    let too_many: Vec<Value> = (0..251).map(|_| elem(&three[0])).collect();
    let r = send(req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": too_many}))).await;
    assert_eq!(r.status, 413, "{}", r.body);

    let r = send(
        req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": [
            elem(&three[0]), elem("PNOSUCH"), elem(&three[2]),
        ]})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("incidents[1]"), "{}", r.body);

    let r = send(
        req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": [
            elem(&three[0]), {"type": "incident_reference", "status": "resolved"},
        ]})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("incidents[1].id"), "{}", r.body);

    let r = send(
        req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": [
            elem(&three[0]), {"id": three[1], "type": "incident_reference", "status": "asleep"},
        ]})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("incidents[1].status"), "{}", r.body);

    for id in &three {
        assert_eq!(
            status_of(&pd, id),
            IncidentStatus::Acknowledged,
            "a refused batch changed {id}"
        );
    }
    assert!(
        pd.world()
            .logs
            .iter()
            .all(|l| l.kind != "resolve_log_entry"),
        "a refused batch left a resolve log entry"
    );

    // One resolved incident in the batch refuses the whole batch.
    rest.update_incident(&three[2], &IncidentUpdate::status(IncidentStatus::Resolved))
        .await
        .unwrap();
    let r = send(
        req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": [
            elem(&three[0]), elem(&three[2]),
        ]})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, Some(1001)), "{}", r.body);
    assert_eq!(status_of(&pd, &three[0]), IncidentStatus::Acknowledged);

    // The same incident twice: the second change sees the first, as one-by-one calls would.
    let r = send(
        req(&pd, Method::PUT, "/incidents").json(&json!({"incidents": [
            elem(&three[1]), elem(&three[1]),
        ]})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, Some(1001)), "{}", r.body);
    assert_eq!(status_of(&pd, &three[1]), IncidentStatus::Acknowledged);
}

// ---------------------------------------------------------------- create

#[tokio::test]
async fn post_incidents_creates_and_validates() {
    let pd = TestPd::start().await;
    let body = json!({"incident": {
        "type": "incident",
        "title": "Checkout is slow",
        "service": {"id": DB, "type": "service_reference"},
        "urgency": "low",
        "incident_key": "checkout-slow",
        "body": {"type": "incident_body", "details": "p99 above 2 s since 10:02"},
    }});
    let r = send(req(&pd, Method::POST, "/incidents").json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let inc = &r.body["incident"];
    assert_eq!(inc["title"], "Checkout is slow");
    assert_eq!(inc["service"]["id"], DB);
    assert_eq!(inc["urgency"], "low");
    assert_eq!(inc["incident_key"], "checkout-slow");
    assert_eq!(inc["status"], "triggered");
    let id = inc["id"].as_str().unwrap().to_owned();

    let r = send(req(
        &pd,
        Method::GET,
        &format!("/incidents/{id}?include[]=body"),
    ))
    .await;
    assert_eq!(
        r.body["incident"]["body"]["details"],
        "p99 above 2 s since 10:02"
    );
    let r = send(req(&pd, Method::GET, &format!("/incidents/{id}"))).await;
    assert!(
        r.body["incident"].get("body").is_none(),
        "body only when included"
    );

    let logs: Vec<LogEntry> = pd
        .rest()
        .incident_log_entries(&id, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let agent = logs[0].agent.as_ref().unwrap();
    assert_eq!(
        (logs[0].kind.as_str(), agent.id.as_str()),
        ("trigger_log_entry", ADA_ID)
    );

    // The typed client; an incident_key open on another service is no conflict.
    let mut new = NewIncident::new("Checkout is slow too", DEMO);
    new.incident_key = Some("checkout-slow".into());
    let other = pd
        .rest()
        .create_incident(&new)
        .await
        .expect("other service");
    assert_eq!(
        other.urgency,
        Some(Urgency::High),
        "Demo Service is high urgency"
    );

    let r = send(req(&pd, Method::POST, "/incidents").json(&body)).await;
    assert_eq!(
        r.status, 400,
        "open incident_key on the same service: {}",
        r.body
    );
    assert!(r.error_text().contains("checkout-slow"), "{}", r.body);

    // Once resolved, the key may open a new incident.
    pd.rest()
        .update_incident(&id, &IncidentUpdate::status(IncidentStatus::Resolved))
        .await
        .unwrap();
    let r = send(req(&pd, Method::POST, "/incidents").json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mut unknown = body.clone();
    unknown["incident"]["service"]["id"] = json!("PNOSUCH");
    let r = send(req(&pd, Method::POST, "/incidents").json(&unknown)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("PNOSUCH"), "{}", r.body);

    let mut untitled = body.clone();
    untitled["incident"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    let r = send(req(&pd, Method::POST, "/incidents").json(&untitled)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("incident.title"), "{}", r.body);

    let r = send(
        req(&pd, Method::POST, "/incidents")
            .header("Content-Type", "text/plain")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_text().contains("Content-Type"), "{}", r.body);
    let r = send(
        req(&pd, Method::POST, "/incidents")
            .header("Content-Type", "application/json-seq")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = send(
        req(&pd, Method::POST, "/incidents")
            .header("Content-Type", "Application/JSON; charset=utf-8")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "still the open key, so the body was read: {}",
        r.body
    );
    assert!(r.error_text().contains("checkout-slow"), "{}", r.body);

    let r = send(
        req(&pd, Method::POST, "/incidents")
            .header("Content-Type", "application/json")
            .body("{\"incident\": {\"title\": "),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, Some(2001)), "{}", r.body);

    let before = pd.world().incidents.len();
    assert_eq!(before, 3, "refused creations created nothing");
}

// ---------------------------------------------------------------- notes and log entries

#[tokio::test]
async fn notes_and_log_entries() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let first = trigger_at(&pd, DEMO_ROUTING_KEY, "logs-1", Severity::Error, ago(120));
    let second = trigger_at(&pd, DEMO_ROUTING_KEY, "logs-2", Severity::Error, ago(60));

    let r = send(
        req(&pd, Method::POST, &format!("/incidents/{second}/notes"))
            .json(&json!({"note": {"content": "Looking into it"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["note"]["content"], "Looking into it");
    assert_eq!(r.body["note"]["user"]["id"], ADA_ID);

    let notes = rest.list_notes(&second).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].content, "Looking into it");
    assert_eq!(notes[0].user.as_ref().unwrap().id, ADA_ID);
    assert!(rest.list_notes(&first).await.unwrap().is_empty());

    let r = send(
        req(&pd, Method::POST, &format!("/incidents/{second}/notes")).json(&json!({"note": {}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("note.content"), "{}", r.body);
    let r = send(
        req(&pd, Method::POST, "/incidents/PNOSUCH/notes").json(&json!({"note": {"content": "x"}})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let logs: Vec<LogEntry> = rest
        .incident_log_entries(&second, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let annotate = logs
        .iter()
        .find(|l| l.kind == "annotate_log_entry")
        .expect("the note is in the log");
    assert_eq!(annotate.agent.as_ref().unwrap().id, ADA_ID);
    assert!(
        logs.iter()
            .all(|l| l.incident.as_ref().unwrap().id == second)
    );

    // The account log: newest first.
    let all: Vec<LogEntry> = rest
        .log_entries(&LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].kind, "annotate_log_entry");
    assert!(
        all.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );

    let window = LogEntryQuery {
        since: Some(ago(90)),
        until: Some(ago(30)),
        ..Default::default()
    };
    let got: Vec<LogEntry> = rest.log_entries(&window).try_collect().await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, "trigger_log_entry");
    assert_eq!(got[0].incident.as_ref().unwrap().id, second);

    let r = send(req(
        &pd,
        Method::GET,
        &format!("/log_entries/{}", all[1].id),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["log_entry"]["id"], all[1].id.as_str());
    assert_eq!(r.body["log_entry"]["type"], all[1].kind.as_str());
    let r = send(req(&pd, Method::GET, "/log_entries/RNOSUCH")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(matches!(r.code(), Some(5001 | 2100)), "{}", r.body);
    let r = send(req(&pd, Method::GET, "/log_entries?since=not-a-time")).await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("since"), "{}", r.body);
}

// ---------------------------------------------------------------- alerts

#[tokio::test]
async fn incident_alerts_filter_by_status() {
    let pd = TestPd::start().await;
    let mut ev = Event::trigger(
        DEMO_DB_ROUTING_KEY,
        "Replication lag",
        "db-2",
        Severity::Error,
    )
    .with_dedup_key("lag-db-2");
    ev.payload.as_mut().unwrap().custom_details = Some(json!({"lag_seconds": 42}));
    pd.events().send(&ev).await.expect("event accepted");
    let id = pd.world().incidents[0].id.clone();

    let alerts = |q: &'static str| {
        let pd = &pd;
        let id = id.clone();
        async move {
            let r = send(req(pd, Method::GET, &format!("/incidents/{id}/alerts?{q}"))).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            r.body["alerts"].as_array().unwrap().clone()
        }
    };
    let all = alerts("").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["alert_key"], "lag-db-2");
    assert_eq!(all[0]["status"], "triggered");
    assert_eq!(all[0]["severity"], "error");
    assert_eq!(all[0]["body"]["details"]["lag_seconds"], 42);
    assert_eq!(all[0]["incident"]["id"], id.as_str());
    assert_eq!(alerts("statuses[]=triggered").await.len(), 1);
    assert_eq!(alerts("statuses[]=resolved").await.len(), 0);

    pd.events()
        .send(&Event::update(
            DEMO_DB_ROUTING_KEY,
            EventAction::Resolve,
            "lag-db-2",
        ))
        .await
        .unwrap();
    assert_eq!(alerts("statuses[]=triggered").await.len(), 0);
    assert_eq!(alerts("statuses[]=resolved").await[0]["status"], "resolved");

    let typed: Vec<pagerduty::rest::Alert> =
        pd.rest().incident_alerts(&id).try_collect().await.unwrap();
    assert_eq!(typed[0].alert_key.as_deref(), Some("lag-db-2"));
    assert_eq!(typed[0].severity, Some(Severity::Error));

    let r = send(req(
        &pd,
        Method::GET,
        &format!("/incidents/{id}/alerts?statuses[]=open"),
    ))
    .await;
    assert_eq!(r.status, 400);
    let r = send(req(&pd, Method::GET, "/incidents/PNOSUCH/alerts")).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- merge

async fn send_event(pd: &TestPd, ev: &Event) {
    pd.events().send(ev).await.expect("event accepted");
}

async fn open_by_event(pd: &TestPd, routing_key: &str, dedup_key: &str) -> String {
    send_event(
        pd,
        &Event::trigger(
            routing_key,
            format!("{dedup_key} is down"),
            "web-01",
            Severity::Critical,
        )
        .with_dedup_key(dedup_key),
    )
    .await;
    let w = pd.world();
    w.incidents
        .iter()
        .rfind(|i| i.incident_key == dedup_key)
        .map(|i| i.id.clone())
        .expect("the trigger opened an incident")
}

fn merge_body(ids: &[&str]) -> Value {
    json!({"source_incidents": ids.iter().map(|id| json!({"id": id, "type": "incident_reference"})).collect::<Vec<_>>()})
}

async fn merge_raw(pd: &Emulator, target: &str, body: Value) -> Reply {
    send(req(pd, Method::PUT, &format!("/incidents/{target}/merge")).json(&body)).await
}

async fn incident_raw(pd: &Emulator, id: &str) -> Value {
    let r = send(req(pd, Method::GET, &format!("/incidents/{id}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["incident"].clone()
}

async fn alert_keys(pd: &Emulator, id: &str) -> Vec<(String, String, String)> {
    let r = send(req(pd, Method::GET, &format!("/incidents/{id}/alerts"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut keys: Vec<_> = r.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(
                a["incident"]["id"], id,
                "the alert points at its incident: {a}"
            );
            (
                a["alert_key"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
                a["service"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn keyed(k: &str, status: &str, service: &str) -> (String, String, String) {
    (k.to_owned(), status.to_owned(), service.to_owned())
}

#[tokio::test]
async fn merge_moves_alerts_to_the_target_and_resolves_the_sources_with_the_merge_reason() {
    let pd = TestPd::start().await;
    let target = open_by_event(&pd, DEMO_ROUTING_KEY, "merge-a").await;
    let source = open_by_event(&pd, DEMO_ROUTING_KEY, "merge-b").await;
    // Another service's incident can be merged too; its alert keeps its service.
    let other = open_by_event(&pd, DEMO_DB_ROUTING_KEY, "merge-c").await;
    let target_number = incident_raw(&pd, &target).await["incident_number"].clone();

    let merged = pd
        .rest()
        .merge_incidents(&target, &[source.clone(), other.clone()])
        .await
        .expect("merge accepted");
    assert_eq!(merged.id, target);
    assert_eq!(merged.status, IncidentStatus::Triggered);
    assert_eq!(merged.alert_counts.unwrap().all, 3);
    assert_eq!(merged.resolve_reason, None);
    assert_eq!(merged.merged_into(), None);

    for src in [&source, &other] {
        let inc = incident_raw(&pd, src).await;
        assert_eq!(inc["status"], "resolved");
        assert!(inc["resolved_at"].is_string());
        assert_eq!(inc["resolve_reason"]["type"], "merge_resolve_reason");
        assert_eq!(inc["resolve_reason"]["incident"]["id"], target.as_str());
        assert_eq!(
            inc["resolve_reason"]["incident"]["type"],
            "incident_reference"
        );
        assert_eq!(inc["is_mergeable"], false);
        assert_eq!(
            inc["alert_counts"],
            json!({"all": 0, "triggered": 0, "resolved": 0})
        );
        assert!(alert_keys(&pd, src).await.is_empty());
        let typed = pd.rest().get_incident(src).await.unwrap();
        assert_eq!(typed.merged_into(), Some(target.as_str()));

        let logs: Vec<LogEntry> = pd
            .rest()
            .incident_log_entries(src, &LogEntryQuery::default())
            .try_collect()
            .await
            .unwrap();
        let kinds: Vec<_> = logs.iter().map(|l| l.kind.as_str()).collect();
        assert_eq!(kinds, ["resolve_log_entry", "trigger_log_entry"]);
        let resolve = &logs[0];
        assert_eq!(resolve.agent.as_ref().unwrap().id, ADA_ID);
        assert_eq!(resolve.channel_type(), Some("website"));
        let summary = resolve.summary.as_deref().unwrap_or_default();
        assert!(
            summary.contains(&format!("merged into #{target_number}")),
            "{summary}"
        );
    }
    let t = incident_raw(&pd, &target).await;
    assert_eq!(t["status"], "triggered");
    assert_eq!(t["resolve_reason"], Value::Null);
    assert_eq!(t["is_mergeable"], true);
    assert_eq!(
        t["alert_counts"],
        json!({"all": 3, "triggered": 3, "resolved": 0})
    );
    assert_eq!(
        alert_keys(&pd, &target).await,
        [
            keyed("merge-a", "triggered", DEMO),
            keyed("merge-b", "triggered", DEMO),
            keyed("merge-c", "triggered", DB),
        ]
    );
    // Only the sources were logged.
    let target_logs: Vec<LogEntry> = pd
        .rest()
        .incident_log_entries(&target, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(target_logs.len(), 1);

    // Later events with a moved alert's dedup key act on the target: a trigger is
    // deduplicated into that alert, an acknowledge acknowledges the target, a resolve resolves
    // that alert only, and the target resolves with its last alert.
    send_event(
        &pd,
        &Event::trigger(DEMO_ROUTING_KEY, "again", "web-01", Severity::Critical)
            .with_dedup_key("merge-b"),
    )
    .await;
    assert_eq!(pd.world().incidents.len(), 3, "no new incident");
    send_event(
        &pd,
        &Event::update(DEMO_ROUTING_KEY, EventAction::Acknowledge, "merge-b"),
    )
    .await;
    assert_eq!(status_of(&pd, &target), IncidentStatus::Acknowledged);
    send_event(
        &pd,
        &Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "merge-b"),
    )
    .await;
    send_event(
        &pd,
        &Event::update(DEMO_DB_ROUTING_KEY, EventAction::Resolve, "merge-c"),
    )
    .await;
    assert_eq!(
        alert_keys(&pd, &target).await,
        [
            keyed("merge-a", "triggered", DEMO),
            keyed("merge-b", "resolved", DEMO),
            keyed("merge-c", "resolved", DB),
        ]
    );
    assert_eq!(status_of(&pd, &target), IncidentStatus::Acknowledged);
    assert_eq!(status_of(&pd, &source), IncidentStatus::Resolved);
    send_event(
        &pd,
        &Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "merge-a"),
    )
    .await;
    let t = incident_raw(&pd, &target).await;
    assert_eq!(t["status"], "resolved");
    assert_eq!(
        t["resolve_reason"],
        Value::Null,
        "resolved by events, not merged"
    );
    // A new trigger with a merged key opens a new incident, as after any resolve.
    let again = open_by_event(&pd, DEMO_ROUTING_KEY, "merge-b").await;
    assert!(![&target, &source, &other].contains(&&again));
}

#[tokio::test]
async fn merge_answers_a_reference_to_the_target_and_takes_resolved_and_manual_sources() {
    let pd = TestPd::start().await;
    let target = open_by_event(&pd, DEMO_ROUTING_KEY, "keep").await;
    let resolved = open_by_event(&pd, DEMO_ROUTING_KEY, "gone").await;
    send_event(
        &pd,
        &Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "gone"),
    )
    .await;
    let manual = pd
        .rest()
        .create_incident(&NewIncident::new("Typed in by hand", DEMO))
        .await
        .unwrap()
        .id;

    let r = merge_raw(&pd, &target, merge_body(&[&resolved, &manual])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reference = &r.body["incident"];
    assert_eq!(reference["id"], target.as_str());
    assert_eq!(reference["type"], "incident_reference");
    assert!(
        reference["summary"]
            .as_str()
            .unwrap()
            .ends_with("keep is down")
    );
    assert!(
        reference["self"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/incidents/{target}"))
    );

    // The already resolved source gives up its resolved alert and gains the reason, without a
    // second resolution.
    let inc = incident_raw(&pd, &resolved).await;
    assert_eq!(inc["status"], "resolved");
    assert_eq!(inc["resolve_reason"]["incident"]["id"], target.as_str());
    let kinds: Vec<String> = pd
        .rest()
        .incident_log_entries(&resolved, &LogEntryQuery::default())
        .map_ok(|l| l.kind)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(kinds, ["resolve_log_entry", "trigger_log_entry"]);
    // The incident created by hand has no alerts; it is resolved by the merge.
    let inc = incident_raw(&pd, &manual).await;
    assert_eq!(inc["status"], "resolved");
    assert_eq!(inc["resolve_reason"]["type"], "merge_resolve_reason");
    assert_eq!(
        alert_keys(&pd, &target).await,
        [
            keyed("gone", "resolved", DEMO),
            keyed("keep", "triggered", DEMO)
        ]
    );
    let t = incident_raw(&pd, &target).await;
    assert_eq!(t["status"], "triggered");
    assert_eq!(
        t["alert_counts"],
        json!({"all": 2, "triggered": 1, "resolved": 1})
    );
}

#[tokio::test]
async fn merge_refusals_change_nothing() {
    let pd = TestPd::start().await;
    let a = open_by_event(&pd, DEMO_ROUTING_KEY, "ra").await;
    let b = open_by_event(&pd, DEMO_ROUTING_KEY, "rb").await;
    let done = open_by_event(&pd, DEMO_ROUTING_KEY, "rdone").await;
    send_event(
        &pd,
        &Event::update(DEMO_ROUTING_KEY, EventAction::Resolve, "rdone"),
    )
    .await;

    let cases: Vec<(&str, String, Value, u16, i64, &str)> = vec![
        (
            "unknown target",
            "PNOSUCH".into(),
            merge_body(&[&b]),
            404,
            5001,
            "Incident Not Found",
        ),
        (
            "unknown source",
            a.clone(),
            merge_body(&[&b, "PNOSUCH"]),
            404,
            5001,
            "source_incidents[1].id: incident PNOSUCH not found",
        ),
        (
            "into itself",
            a.clone(),
            merge_body(&[&a]),
            400,
            2001,
            "cannot be merged into itself",
        ),
        (
            "twice",
            a.clone(),
            merge_body(&[&b, &b]),
            400,
            2001,
            "source_incidents[1]: incident",
        ),
        (
            "resolved target",
            done.clone(),
            merge_body(&[&b]),
            400,
            1001,
            "the target of a merge must be open",
        ),
        (
            "no sources field",
            a.clone(),
            json!({}),
            400,
            2001,
            "source_incidents is required",
        ),
        (
            "empty",
            a.clone(),
            json!({"source_incidents": []}),
            400,
            2001,
            "at least one",
        ),
        (
            "not an array",
            a.clone(),
            json!({"source_incidents": b}),
            400,
            2001,
            "must be an array",
        ),
        (
            "not a reference",
            a.clone(),
            json!({"source_incidents": [b]}),
            400,
            2001,
            "source_incidents[0] must be an incident reference",
        ),
        (
            "no id",
            a.clone(),
            json!({"source_incidents": [{"type": "incident_reference"}]}),
            400,
            2001,
            "source_incidents[0].id is required",
        ),
        (
            "wrong type",
            a.clone(),
            json!({"source_incidents": [{"id": b, "type": "service_reference"}]}),
            400,
            2001,
            "source_incidents[0].type",
        ),
    ];
    for (what, target, body, status, code, text) in cases {
        let r = merge_raw(&pd, &target, body).await;
        assert_eq!(
            (r.status, r.code()),
            (status, Some(code)),
            "{what}: {}",
            r.body
        );
        assert!(r.error_text().contains(text), "{what}: {}", r.error_text());
    }

    let r = send(
        bare(&pd, Method::PUT, &format!("/incidents/{a}/merge"))
            .header("Authorization", format!("Token token={ACCOUNT}"))
            .json(&merge_body(&[&b])),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, Some(2016)), "{}", r.body);
    assert!(r.message().starts_with(FROM_MISSING));
    let read_only = client_as(&pd, READ_ONLY, Some(ADA));
    let (status, code, _) = api_error(
        read_only
            .merge_incidents(&a, std::slice::from_ref(&b))
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code), (403, Some(2010)));
    let (status, code, text) = api_error(
        pd.rest()
            .merge_incidents("PNOSUCH", std::slice::from_ref(&b))
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code), (404, Some(5001)), "{text}");

    // Nothing moved, nothing resolved.
    for (id, key) in [(&a, "ra"), (&b, "rb")] {
        assert_eq!(status_of(&pd, id), IncidentStatus::Triggered);
        assert_eq!(alert_keys(&pd, id).await, [keyed(key, "triggered", DEMO)]);
    }

    // A source merged once is gone: it cannot be merged again.
    pd.rest()
        .merge_incidents(&a, std::slice::from_ref(&b))
        .await
        .unwrap();
    let c = open_by_event(&pd, DEMO_ROUTING_KEY, "rc").await;
    let r = merge_raw(&pd, &c, merge_body(&[&b])).await;
    assert_eq!((r.status, r.code()), (400, Some(2001)), "{}", r.body);
    assert!(
        r.error_text().contains("already merged"),
        "{}",
        r.error_text()
    );
    // Nor can an incident that was merged away be a target: it is resolved.
    let r = merge_raw(&pd, &b, merge_body(&[&c])).await;
    assert_eq!((r.status, r.code()), (400, Some(1001)), "{}", r.body);
}

#[tokio::test]
async fn merge_refuses_to_give_the_target_more_than_1000_alerts() {
    let pd = TestPd::start().await;
    let target = trigger(&pd, DEMO_ROUTING_KEY, "big-0");
    let sources: Vec<String> = (1..=1000)
        .map(|n| trigger(&pd, DEMO_ROUTING_KEY, &format!("big-{n}")))
        .collect();
    let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
    let r = merge_raw(&pd, &target, merge_body(&refs)).await;
    assert_eq!((r.status, r.code()), (400, Some(2001)), "{}", r.body);
    assert!(r.error_text().contains("1000 alerts"), "{}", r.error_text());
    assert_eq!(status_of(&pd, &sources[0]), IncidentStatus::Triggered);
    // 999 sources make exactly 1000.
    let r = merge_raw(&pd, &target, merge_body(&refs[..999])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        incident_raw(&pd, &target).await["alert_counts"]["all"],
        1000
    );
}

// ---------------------------------------------------------------- services

#[tokio::test]
async fn services_list_get_and_status() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let all: Vec<pagerduty::rest::Service> = rest.services(None).try_collect().await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [DEMO, DB]
    );
    assert!(all.iter().all(|s| s.status == ServiceStatus::Active));
    let found: Vec<pagerduty::rest::Service> =
        rest.services(Some("datab")).try_collect().await.unwrap();
    assert_eq!(
        found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [DB]
    );

    let r = send(req(&pd, Method::GET, "/services/PNOSUCH")).await;
    assert_eq!((r.status, r.code()), (404, Some(5002)), "{}", r.body);

    let status = |id: &'static str| {
        let rest = rest.clone();
        async move { rest.get_service(id).await.unwrap().status }
    };
    let inc = trigger(&pd, DEMO_ROUTING_KEY, "svc");
    assert_eq!(status(DEMO).await, ServiceStatus::Critical);
    rest.update_incident(&inc, &ack()).await.unwrap();
    assert_eq!(status(DEMO).await, ServiceStatus::Warning);
    rest.update_incident(&inc, &IncidentUpdate::status(IncidentStatus::Resolved))
        .await
        .unwrap();
    assert_eq!(status(DEMO).await, ServiceStatus::Active);

    // Any triggered incident makes a service critical, whatever its urgency (the OpenAPI
    // description of `Service.status`, which wins over the design notes).
    trigger_at(
        &pd,
        DEMO_DB_ROUTING_KEY,
        "low",
        Severity::Info,
        Timestamp::now(),
    );
    assert_eq!(status(DB).await, ServiceStatus::Critical);
    let svc = rest.get_service(DB).await.unwrap();
    assert!(svc.last_incident_timestamp.is_some());
}

#[tokio::test]
async fn maintenance_and_disabled_services_open_no_incidents() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let events = pd.events();
    let window = json!({"maintenance_window": {
        "type": "maintenance_window",
        "start_time": ago(5).to_string(),
        "end_time": ago(-60).to_string(),
        "description": "Kernel upgrade",
        "services": [{"id": DEMO, "type": "service_reference"}],
    }});

    let r = send(
        bare(&pd, Method::POST, "/maintenance_windows")
            .header("Authorization", format!("Token token={ACCOUNT}"))
            .json(&window),
    )
    .await;
    assert_eq!(r.status, 400, "windows need From: {}", r.body);
    assert!(r.message().contains(FROM_MISSING), "{}", r.body);

    let r = send(req(&pd, Method::POST, "/maintenance_windows").json(&window)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["maintenance_window"]["created_by"]["id"], ADA_ID);
    assert_eq!(r.body["maintenance_window"]["services"][0]["id"], DEMO);
    assert_eq!(
        rest.get_service(DEMO).await.unwrap().status,
        ServiceStatus::Maintenance
    );

    let resp = events
        .send(&Event::trigger(
            DEMO_ROUTING_KEY,
            "during maintenance",
            "web-01",
            Severity::Critical,
        ))
        .await
        .expect("accepted");
    assert_eq!(resp.status, 202);
    assert!(
        pd.world().incidents.is_empty(),
        "maintenance opens no incident"
    );

    let r = send(
        req(&pd, Method::PUT, &format!("/services/{DB}"))
            .json(&json!({"service": {"type": "service", "status": "disabled"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"]["status"], "disabled");
    assert_eq!(
        rest.get_service(DB).await.unwrap().status,
        ServiceStatus::Disabled
    );
    let resp = events
        .send(&Event::trigger(
            DEMO_DB_ROUTING_KEY,
            "while disabled",
            "db-1",
            Severity::Critical,
        ))
        .await
        .expect("accepted");
    assert_eq!(resp.status, 202);
    assert!(
        pd.world().incidents.is_empty(),
        "a disabled service opens no incident"
    );

    let r = send(
        req(&pd, Method::PUT, &format!("/services/{DB}"))
            .json(&json!({"service": {"status": "paused"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("service.status"), "{}", r.body);

    let r = send(
        req(&pd, Method::PUT, &format!("/services/{DB}"))
            .json(&json!({"service": {"status": "active"}})),
    )
    .await;
    assert_eq!(r.body["service"]["status"], "active");
    events
        .send(&Event::trigger(
            DEMO_DB_ROUTING_KEY,
            "enabled again",
            "db-1",
            Severity::Critical,
        ))
        .await
        .unwrap();
    assert_eq!(pd.world().incidents.len(), 1);
}

// ---------------------------------------------------------------- maintenance windows

#[tokio::test]
async fn maintenance_windows_filter_and_delete() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    let (past, ongoing, future) = {
        let mut w = pd.world();
        let past = w.add_window(ago(180), ago(120), Some("past".into()), vec![0], None);
        let ongoing = w.add_window(ago(10), ago(-50), Some("ongoing".into()), vec![0], None);
        let future = w.add_window(ago(-120), ago(-180), Some("future".into()), vec![1], None);
        (
            w.windows[past].id.clone(),
            w.windows[ongoing].id.clone(),
            w.windows[future].id.clone(),
        )
    };
    let listed = |ids: &'static [&'static str], filter: WindowFilter| {
        let rest = rest.clone();
        async move {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let got: Vec<pagerduty::rest::MaintenanceWindow> = rest
                .maintenance_windows(&ids, filter)
                .try_collect()
                .await
                .unwrap();
            got.into_iter()
                .map(|w| w.description.unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&[], WindowFilter::Ongoing).await, ["ongoing"]);
    assert_eq!(listed(&[], WindowFilter::Future).await, ["future"]);
    assert_eq!(listed(&[], WindowFilter::Past).await, ["past"]);
    assert_eq!(listed(&[], WindowFilter::Open).await, ["ongoing", "future"]);
    assert_eq!(
        listed(&[], WindowFilter::All).await,
        ["past", "ongoing", "future"]
    );
    assert_eq!(listed(&[DB], WindowFilter::All).await, ["future"]);
    assert_eq!(listed(&[DEMO], WindowFilter::Open).await, ["ongoing"]);

    let r = send(req(&pd, Method::GET, "/maintenance_windows?filter=soon")).await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("filter"), "{}", r.body);

    let mut created = pagerduty::rest::MaintenanceWindow::new(
        ago(-20),
        ago(-10),
        Some("backwards".into()),
        &[DEMO.to_string()],
    );
    let (status, _, text) = api_error(rest.create_maintenance_window(&created).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(text.contains("end_time"), "{text}");
    created.end_time = ago(-30);
    let made = rest
        .create_maintenance_window(&created)
        .await
        .expect("created");
    assert_eq!(made.services[0].id, DEMO);

    let r = send(req(
        &pd,
        Method::GET,
        &format!("/maintenance_windows/{future}"),
    ))
    .await;
    assert_eq!(r.body["maintenance_window"]["description"], "future");
    let r = send(req(
        &pd,
        Method::DELETE,
        &format!("/maintenance_windows/{future}"),
    ))
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null, "204 has no body");
    let r = send(req(
        &pd,
        Method::GET,
        &format!("/maintenance_windows/{future}"),
    ))
    .await;
    assert_eq!(r.status, 404);
    let r = send(req(
        &pd,
        Method::DELETE,
        &format!("/maintenance_windows/{ongoing}"),
    ))
    .await;
    assert_eq!(r.status, 204, "an ongoing window can be ended: {}", r.body);
    let r = send(req(
        &pd,
        Method::DELETE,
        &format!("/maintenance_windows/{past}"),
    ))
    .await;
    assert_eq!(r.status, 405, "an ended window stays: {}", r.body);
    let r = send(req(&pd, Method::DELETE, "/maintenance_windows/PNOSUCH")).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn users_and_users_me() {
    let pd = TestPd::start().await;
    let users: Vec<pagerduty::rest::User> = pd.rest().users().try_collect().await.unwrap();
    assert_eq!(
        users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        [ADA, "bob@example.com"]
    );
    let r = send(req(&pd, Method::GET, &format!("/users/{BOB_ID}"))).await;
    assert_eq!(r.body["user"]["email"], "bob@example.com");
    let r = send(req(&pd, Method::GET, "/users/PNOSUCH")).await;
    assert_eq!(r.status, 404);
    let r = send(req(&pd, Method::GET, "/users?query=bob")).await;
    assert_eq!(ids(&r, "users"), [BOB_ID]);

    let r = send(
        bare(&pd, Method::GET, "/users/me")
            .header("Authorization", format!("Token token={BOB_TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["id"], BOB_ID);
    let r = send(req(&pd, Method::GET, "/users/me")).await;
    assert_eq!(r.status, 400, "account tokens have no me: {}", r.body);
}

// ---------------------------------------------------------------- webhook subscriptions

#[tokio::test]
async fn webhook_subscriptions_show_the_secret_once() {
    let pd = TestPd::start().await;
    let body = json!({"webhook_subscription": {
        "type": "webhook_subscription",
        "delivery_method": {"type": "http_delivery_method", "url": "https://example.com/pd"},
        "description": "pagerbridge",
        "events": ["incident.triggered", "incident.resolved"],
        "filter": {"type": "service_reference", "id": DEMO},
    }});
    let r = send(req(&pd, Method::POST, "/webhook_subscriptions").json(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sub = &r.body["webhook_subscription"];
    let id = sub["id"].as_str().unwrap().to_owned();
    let secret = sub["delivery_method"]["secret"]
        .as_str()
        .expect("secret on create");
    assert!(secret.len() >= 32);
    assert_eq!(sub["filter"]["id"], DEMO);

    let listed: Vec<pagerduty::rest::WebhookSubscription> = pd
        .rest()
        .webhook_subscriptions()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.as_deref(), Some(id.as_str()));
    assert_eq!(listed[0].delivery_method.secret, None, "never listed again");
    let r = send(req(
        &pd,
        Method::GET,
        &format!("/webhook_subscriptions/{id}"),
    ))
    .await;
    assert!(
        r.body["webhook_subscription"]["delivery_method"]
            .get("secret")
            .is_none()
    );

    let mut bad = body.clone();
    bad["webhook_subscription"]["delivery_method"]["url"] = json!("not a url");
    let r = send(req(&pd, Method::POST, "/webhook_subscriptions").json(&bad)).await;
    assert_eq!(r.status, 400);
    assert!(r.error_text().contains("delivery_method.url"), "{}", r.body);

    let r = send(req(
        &pd,
        Method::DELETE,
        &format!("/webhook_subscriptions/{id}"),
    ))
    .await;
    assert_eq!(r.status, 204);
    for method in [Method::GET, Method::DELETE] {
        let r = send(req(
            &pd,
            method.clone(),
            &format!("/webhook_subscriptions/{id}"),
        ))
        .await;
        assert_eq!(r.status, 404, "{method} after delete");
    }
    let r = send(req(
        &pd,
        Method::POST,
        "/webhook_subscriptions/PNOSUCH/ping",
    ))
    .await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- routing

/// Outside PagerDuty's contract (no OpenAPI operation to check against), so a plain emulator.
#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let pd = Emulator::for_tests(Seed::demo()).await;
    let r = send(req(&pd, Method::GET, "/nothing/here")).await;
    assert_eq!((r.status, r.code()), (404, Some(2100)), "{}", r.body);
    let r = send(req(&pd, Method::GET, "/incidents/P1/nothing")).await;
    assert_eq!((r.status, r.code()), (404, Some(2100)), "{}", r.body);

    for (method, path) in [
        (Method::DELETE, "/incidents"),
        (Method::POST, "/incidents/P1"),
        (Method::DELETE, "/services"),
        (Method::PUT, "/users/me"),
        (Method::PATCH, "/log_entries"),
    ] {
        let r = send(req(&pd, method.clone(), path)).await;
        assert!(
            matches!(r.status, 404 | 405),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        assert!(r.code().is_some(), "{method} {path}: {}", r.body);
    }

    // A percent-encoded id that is not UTF-8 is an unknown id, not a plain-text error.
    let r = send(req(&pd, Method::GET, "/incidents/%FF%FE")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.code().is_some());
}

#[tokio::test]
async fn services_include_integrations_as_full_objects_with_their_keys() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    // Without the include: references, no key.
    let plain = rest.get_service(DEMO).await.unwrap();
    assert!(!plain.integrations.is_empty());
    assert!(
        plain
            .integrations
            .iter()
            .all(|i| i.integration_key.is_none() && i.name.is_none())
    );

    let all: Vec<pagerduty::rest::Service> = rest
        .services_with_integrations()
        .try_collect()
        .await
        .unwrap();
    let key_of = |svc: &str| -> Vec<String> {
        all.iter()
            .find(|s| s.id == svc)
            .unwrap()
            .integrations
            .iter()
            .filter_map(|i| i.integration_key.clone())
            .collect()
    };
    assert!(key_of(DEMO).contains(&DEMO_ROUTING_KEY.to_string()));
    assert!(key_of(DB).contains(&DEMO_DB_ROUTING_KEY.to_string()));
    assert!(!key_of(DEMO).contains(&DEMO_DB_ROUTING_KEY.to_string()));

    // The same through GET /services/{id}, with the integration's name and service.
    let r = send(req(
        &pd,
        Method::GET,
        &format!("/services/{DB}?include[]=integrations"),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let integ = &r.body["service"]["integrations"][0];
    assert_eq!(integ["integration_key"], DEMO_DB_ROUTING_KEY);
    assert_eq!(integ["service"]["id"], DB);
    assert!(integ["name"].is_string() && integ["created_at"].is_string());
    // Other includes are accepted and change nothing here.
    let r = send(req(&pd, Method::GET, "/services?include[]=teams")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["services"][0]["integrations"][0]["integration_key"].is_null());
}
