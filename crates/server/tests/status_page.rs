//! The status page at `/` over HTTP, against a real daemon and the in-process emulator: the
//! figures it shows are the API's, each event links to the incident it became, text from
//! alerts and from PagerDuty can never become markup, and replaying a dead letter takes an
//! admin token of `[[api.tokens]]` (anything less gets a readable refusal). The same page in a
//! real browser: status_page_browser.rs.

mod common;

use std::time::Duration;

use common::*;
use pagerbridge_store::{IncidentUpdate, SyncStore};
use pagerbridge_testkit::{Canned, Recorder, TestPd};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "read-token-0123456789abcdef";

const TOKENS: &str = r#"
[[api.tokens]]
name = "ops-bot"
token = "admin-token-0123456789abcdef"
scope = "admin"

[[api.tokens]]
name = "dashboard"
token = "read-token-0123456789abcdef"
scope = "read"
"#;

struct Setup {
    pd: TestPd,
    daemon: Daemon,
    _monitor: Recorder,
    /// Answers redirects itself (the replay's 303 is checked, not followed).
    http: reqwest::Client,
}

/// A daemon with an Alertmanager source whose problems a `webhook` monitor holds, API tokens
/// unless `tokens` is false, and, with `webhooks`, the emulator's Webhooks v3 subscription, so
/// that the incident map learns each incident's id and page.
async fn setup(tokens: bool, webhooks: bool) -> Setup {
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hooks = if webhooks {
        let secret = pd
            .subscribe_webhooks(&format!("http://{addr}/webhooks/pagerduty"))
            .await;
        format!("[sync.webhooks]\nsecrets = [\"{secret}\"]\n")
    } else {
        String::new()
    };
    let dir = tempfile::tempdir().unwrap();
    let o = Opts {
        extra: format!(
            r#"
[routing]
default_routing_key = "{DEMO_ROUTING_KEY}"

[[sources]]
name = "am"
kind = "alertmanager"

[[monitors]]
name = "hook"
kind = "webhook"
url = "{url}"
sources = ["am"]

{hooks}
{tokens}
"#,
            url = monitor.url(),
            tokens = if tokens { TOKENS } else { "" },
        ),
        ..Opts::default()
    };
    let config = config(&pd.url(), dir.path(), "data", &o);
    let daemon = Daemon::start_on(config, dir, listener).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Setup {
        pd,
        daemon,
        _monitor: monitor,
        http,
    }
}

/// An Alertmanager notification of one firing alert.
fn alert(name: &str, summary: &str) -> Vec<u8> {
    json!({
        "version": "4", "status": "firing", "receiver": "pagerbridge", "groupKey": "{}:{}",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": name, "instance": "db1:9100", "severity": "critical"},
            "annotations": {"summary": summary},
            "startsAt": "2026-11-21T10:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
        }],
    })
    .to_string()
    .into_bytes()
}

impl Setup {
    async fn ingest(&self, body: Vec<u8>) {
        let a = answer(
            self.http
                .post(format!("{}/ingest/am", self.daemon.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(a.status, 202, "{}", a.body);
    }

    /// `/`, with its status, headers and text.
    async fn page(&self, query: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .get(format!("{}/{query}", self.daemon.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    async fn api(&self, path: &str) -> Value {
        let a = answer(
            self.http
                .get(format!("{}/api/v1{path}", self.daemon.base))
                .bearer_auth(READER),
        )
        .await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    }

    /// Posts the replay form as a browser would.
    async fn replay(&self, fields: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .post(format!("{}/status/replay", self.daemon.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://elsewhere.example")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// Waits for a dead letter and returns its id.
    async fn dead_letter(&self) -> i64 {
        eventually("a dead letter", WAIT, || async {
            let v = self.api("/dead_letters").await;
            v["events"][0]["id"].as_i64()
        })
        .await
    }
}

/// The text of the element with `id` (its content up to the next tag).
fn by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} on the page:\n{page}"));
    let rest = &page[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_owned()
}

/// `text` as HTML shows it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn number(page: &str, id: &str) -> u64 {
    by_id(page, id)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{id} is not a number: {:?}", by_id(page, id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_outbox_as_the_api_sees_it_with_each_incident_linked() {
    let s = setup(true, true).await;
    for name in ["DiskFull", "LoadHigh", "MemoryLow"] {
        s.ingest(alert(name, &format!("{name} on db1"))).await;
    }
    wait_drained(&s.daemon.store(), WAIT).await;
    // The webhooks name each incident in the map.
    let store = open_store(&s.daemon.db_path()).await;
    eventually("the map learns the incidents", WAIT, || async {
        let rows = store.list_incidents(false, 10).await.unwrap();
        (rows.len() == 3 && rows.iter().all(|r| r.incident_url.is_some())).then_some(())
    })
    .await;
    // One refused for good, and two stuck behind a failing PagerDuty for another key.
    s.pd.refuse_next_events(400, 1);
    s.daemon
        .send(&trigger(DEMO_ROUTING_KEY, "refused-1", 1))
        .await;
    let dead = s.dead_letter().await;
    inject(&s.pd, status_fault(500, 10_000));
    for i in 0..2 {
        s.daemon
            .send(&trigger(DEMO_DB_ROUTING_KEY, &format!("stuck-{i}"), i))
            .await;
    }

    let (status, headers, page) = s.page("").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10; url=/\">"));
    let api = s.api("/queue").await;
    assert_eq!(
        number(&page, "pending-count"),
        api["pending"].as_u64().unwrap()
    );
    assert_eq!(number(&page, "pending-count"), 2);
    assert_eq!(number(&page, "dead-count"), api["dead"].as_u64().unwrap());
    assert_eq!(number(&page, "dead-count"), 1);
    assert_eq!(
        number(&page, "delivered-count"),
        api["delivered"].as_u64().unwrap()
    );
    // Everything was delivered within the last minute.
    for window in ["delivered-1m", "delivered-5m", "delivered-15m"] {
        assert_eq!(number(&page, window), 3, "{window}");
    }

    // The backlog per routing key, masked as /metrics masks it, never in full.
    let masked = pagerbridge_server::metrics::mask_key(DEMO_DB_ROUTING_KEY);
    assert!(page.contains(&masked), "{masked} in\n{page}");
    assert!(!page.contains(DEMO_DB_ROUTING_KEY));
    assert!(!page.contains(DEMO_ROUTING_KEY));

    // Each alert event links to the incident it became, at the page PagerDuty gave.
    for row in store.list_incidents(false, 10).await.unwrap() {
        let id = row.incident_id.clone().unwrap();
        let url = row.incident_url.clone().unwrap();
        assert!(url.starts_with(&s.pd.url()), "{url}");
        assert!(
            page.contains(&format!("<a href=\"{url}\" rel=\"noreferrer\">{id}</a>")),
            "a link to {id} in\n{page}"
        );
    }

    // The dead letter with PagerDuty's answer and its replay form.
    let dl = s.api("/dead_letters").await;
    let error = dl["events"][0]["last_error"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(
        page.contains(&format!("<strong>400</strong> {}", escaped(error))),
        "{page}"
    );
    assert!(page.contains(&format!(
        "<form class=\"replay\" method=\"post\" action=\"/status/replay\" data-event=\"{dead}\">"
    )));
    assert!(page.contains(&format!("<label for=\"token-{dead}\">Admin token</label>")));

    // The way back: the monitor, nothing pending or failed.
    assert!(page.contains(
        "<tr><th scope=\"row\">hook</th><td class=\"num\">0</td><td class=\"num\">0</td>"
    ));

    // Paused: no refresh, and a way to resume.
    let (_, _, paused) = s.page("?refresh=off").await;
    assert!(!paused.contains("http-equiv=\"refresh\""));
    assert!(paused.contains("<a href=\"/\">resume</a>"));
    s.pd.shared().faults.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_alerts_and_from_pagerduty_is_shown_never_run() {
    let s = setup(true, false).await;
    const SCRIPT: &str = "<script>document.title='pwned'</script>";
    const IMG: &str = "\"><img src=x onerror=alert(1)>";
    s.ingest(alert("DiskFull", &format!("{SCRIPT}{IMG} & more")))
        .await;
    wait_drained(&s.daemon.store(), WAIT).await;
    // A relayed event with markup in its dedup key, source and summary, refused by PagerDuty.
    s.pd.refuse_next_events(400, 1);
    let mut ev = trigger(DEMO_ROUTING_KEY, "<b>bold</b>'\"", 1);
    ev["payload"]["summary"] = json!(format!("<iframe src=//evil.example></iframe>{SCRIPT}"));
    ev["payload"]["source"] = json!(IMG);
    s.daemon.send(&ev).await;
    s.dead_letter().await;
    // A webhook (or anyone able to write the map) claims a `javascript:` page for the incident.
    let store = open_store(&s.daemon.db_path()).await;
    let row = eventually("the alert's map row", WAIT, || async {
        store.list_incidents(false, 10).await.unwrap().pop()
    })
    .await;
    store
        .update_incidents(&[IncidentUpdate {
            routing_key: row.routing_key.clone(),
            dedup_key: row.dedup_key.clone(),
            incident_id: "Q<1>\"".into(),
            incident_url: Some("javascript:document.title='pwned'".into()),
            service_id: None,
            pd_status: Some("<i>triggered</i>".into()),
            at: jiff::Timestamp::now(),
        }])
        .await
        .unwrap();

    let (status, _, page) = s.page("").await;
    assert_eq!(status, 200);
    for markup in ["<script", "<img", "<iframe", "<b>", "<i>", "javascript:"] {
        assert!(!page.contains(markup), "{markup} on the page:\n{page}");
    }
    assert!(page.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;&#39;&quot;"));
    assert!(page.contains("&lt;iframe"));
    // The incident's link falls back to the REST API, its id encoded in the path.
    let rest = format!("{}/incidents/Q%3C1%3E%22", s.pd.url().trim_end_matches('/'));
    assert!(
        page.contains(&format!(
            "<a href=\"{rest}\" rel=\"noreferrer\">Q&lt;1&gt;&quot;</a>"
        )),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_dead_letter_takes_an_admin_token() {
    let s = setup(true, false).await;
    s.pd.refuse_next_events(400, 1);
    s.daemon
        .send(&trigger(DEMO_ROUTING_KEY, "refused-1", 1))
        .await;
    let id = s.dead_letter().await;
    let ids = id.to_string();

    // No token: 401, a page that says so (also what a form on another site gets).
    let (status, headers, page) = s.replay(&[("id", &ids)]).await;
    assert_eq!(status, 401, "{page}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers.contains_key("www-authenticate"));
    assert!(page.contains("No token was given"), "{page}");
    assert!(page.contains("<a href=\"/\">Back to the status page</a>"));
    let (status, _, page) = s.replay(&[("id", &ids), ("token", "  ")]).await;
    assert_eq!(status, 401, "{page}");

    // A token that is not configured: 401, and the token is not echoed.
    let wrong = "not-a-token-<script>-0123456789";
    let (status, _, page) = s.replay(&[("id", &ids), ("token", wrong)]).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("not one of [[api.tokens]]"), "{page}");
    assert!(!page.contains("not-a-token"));

    // A read-only token: 403, naming the token and the scope needed.
    let (status, _, page) = s.replay(&[("id", &ids), ("token", READER)]).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("The token &quot;dashboard&quot; has scope read"),
        "{page}"
    );
    assert!(!page.contains(READER));

    // An admin token with no usable id: 400 and 404.
    let (status, _, page) = s.replay(&[("id", "twelve"), ("token", ADMIN)]).await;
    assert_eq!(status, 400, "{page}");
    let (status, _, page) = s.replay(&[("id", "999999"), ("token", ADMIN)]).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("no event with id 999999"), "{page}");
    // Nothing of that changed the dead letter.
    assert_eq!(s.api("/queue").await["dead"], 1);

    // An admin token: back to the page, which says what became of the event.
    let (status, headers, _) = s.replay(&[("id", &ids), ("token", ADMIN)]).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], format!("/?replayed={id}"));
    let state = s.api(&format!("/queue/events/{id}")).await["event"]["state"].clone();
    assert!(state == "pending" || state == "delivered", "{state}");
    eventually("the replayed event is delivered", WAIT, || async {
        let v = s.api(&format!("/queue/events/{id}")).await;
        (v["event"]["state"] == "delivered").then_some(())
    })
    .await;
    let (_, _, page) = s.page(&format!("?replayed={id}")).await;
    assert!(
        page.contains(&format!(
            "<p class=\"notice\" role=\"status\" id=\"notice\">Event {id} replayed: it is now delivered.</p>"
        )),
        "{page}"
    );
    assert_eq!(number(&page, "dead-count"), 0);

    // Twice: nothing to replay.
    let (status, _, page) = s.replay(&[("id", &ids), ("token", ADMIN)]).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("is delivered, not a dead letter"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_tokens_the_page_shows_and_replay_is_refused() {
    let s = setup(false, false).await;
    s.pd.refuse_next_events(400, 1);
    s.daemon
        .send(&trigger(DEMO_ROUTING_KEY, "refused-1", 1))
        .await;
    eventually("a dead letter", WAIT, || async {
        let s = s.daemon.store().stats().await.unwrap();
        (s.dead == 1).then_some(())
    })
    .await;
    let (status, _, page) = s.page("").await;
    assert_eq!(status, 200);
    assert_eq!(number(&page, "dead-count"), 1);
    let (status, _, page) = s.replay(&[("id", "1"), ("token", ADMIN)]).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("the configuration lists none"), "{page}");
    assert_eq!(s.daemon.store().stats().await.unwrap().dead, 1);
}
