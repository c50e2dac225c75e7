//! The status page in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `chromedriver` (Debian's `chromium-driver`) over the W3C WebDriver protocol, against a real
//! daemon and the in-process emulator. The figures Chromium shows are the API's, each event links
//! to its incident, an alert's markup shows as text, and a dead letter is replayed by typing an
//! admin token into its form and pressing its button (a read-only token is refused first). A
//! screenshot is kept at target/test-artifacts/status-page.png.
//!
//! Both packages are installed when missing (root and a package mirror needed); without them the
//! test prints SKIPPED with the reason. Everything listens on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pagerbridge_store::SyncStore;
use pagerbridge_testkit::debian;
use pagerbridge_testkit::{Canned, Recorder, TestPd};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "read-token-0123456789abcdef";

/// The key WebDriver names an element by in its answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts")
}

/// Chromium and chromedriver, installed when missing; `None` (after a loud SKIPPED) when they
/// cannot be.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let driver = debian::installed_or_skip("chromedriver", &["chromium", "chromium-driver"])?;
    let chromium = debian::installed_or_skip("chromium", &["chromium"])?;
    Some((chromium, driver))
}

/// A chromedriver of this test's own, with one Chromium session; both end with it.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
    driver: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut b = Browser {
            http,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            driver,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = b
                .http
                .get(format!("{}/status", b.base))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(r) = ready
                && let Ok(v) = r.await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver is not ready after 20s:\n{}",
                b.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = b._dir.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    // As root, in a container: no sandbox, no GPU, no small /dev/shm.
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--no-first-run", "--window-size=1400,2200",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = b.call(reqwest::Method::POST, "/session", Some(caps)).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {v}"))
            .to_owned();
        eprintln!(
            "Chromium {} via chromedriver {}",
            v["capabilities"]["browserVersion"], v["capabilities"]["chrome"]["chromedriverVersion"]
        );
        b.session = Some(id);
        b
    }

    fn log_tail(&self) -> String {
        debian::tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 30)
    }

    /// One WebDriver command; its `value`, or a panic with WebDriver's error.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_tail()));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "{method} {path}: {status} {v}\n{}",
            self.log_tail()
        );
        v["value"].clone()
    }

    fn path(&self, rest: &str) -> String {
        format!(
            "/session/{}{rest}",
            self.session.as_deref().expect("session")
        )
    }

    async fn goto(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &self.path("/url"),
            Some(json!({"url": url})),
        )
        .await;
    }

    async fn url(&self) -> String {
        let v = self
            .call(reqwest::Method::GET, &self.path("/url"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn title(&self) -> String {
        let v = self
            .call(reqwest::Method::GET, &self.path("/title"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                &self.path("/elements"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn find(&self, css: &str) -> String {
        let all = self.find_all(css).await;
        assert_eq!(all.len(), 1, "exactly one element matches {css}");
        all[0].clone()
    }

    async fn text_of(&self, element: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &self.path(&format!("/element/{element}/text")),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.text_of(&e).await
    }

    async fn number(&self, css: &str) -> u64 {
        let t = self.text(css).await;
        t.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{css} shows {t:?}, not a number"))
    }

    async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &self.path(&format!("/element/{element}/attribute/{name}")),
                None,
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{e}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the page's URL satisfies `f`.
    async fn wait_url(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let u = self.url().await;
            if f(&u) {
                return u;
            }
            assert!(Instant::now() < deadline, "waited for {what}; at {u}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, to: &Path) {
        let v = self
            .call(reqwest::Method::GET, &self.path("/screenshot"), None)
            .await;
        let png = base64_decode(v.as_str().expect("a base64 PNG"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        std::fs::write(to, &png).unwrap();
        eprintln!("screenshot: {} ({} bytes)", to.display(), png.len());
    }

    async fn quit(mut self) {
        if self.session.is_some() {
            self.call(reqwest::Method::DELETE, &self.path(""), None)
                .await;
            self.session = None;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session ends with its driver (Chromium is chromedriver's child).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
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
        }],
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_status_page_and_replays_a_dead_letter() {
    let Some((chromium, chromedriver)) = tokio::task::spawn_blocking(browser).await.unwrap() else {
        return;
    };
    let started = Instant::now();

    // The daemon: an Alertmanager source, a webhook monitor, PagerDuty's webhooks naming the
    // incidents, and an admin and a read-only API token.
    let pd = TestPd::start().await;
    let monitor = Recorder::start(Canned::json(200, json!({"ok": true}))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let secret = pd
        .subscribe_webhooks(&format!("http://{addr}/webhooks/pagerduty"))
        .await;
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

[sync.webhooks]
secrets = ["{secret}"]

[[api.tokens]]
name = "ops-bot"
token = "{ADMIN}"
scope = "admin"

[[api.tokens]]
name = "dashboard"
token = "{READER}"
scope = "read"
"#,
            url = monitor.url()
        ),
        ..Opts::default()
    };
    let daemon = Daemon::start_on(config(&pd.url(), dir.path(), "data", &o), dir, listener).await;
    let api = |path: &str| {
        let req = daemon
            .http
            .get(format!("{}/api/v1{path}", daemon.base))
            .bearer_auth(READER);
        async move {
            let a = answer(req).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.body
        }
    };

    // Three alerts delivered, their incidents named by PagerDuty's webhooks; one event refused.
    for (name, summary) in [
        ("DiskFull", "Disk full on db1"),
        ("LoadHigh", "Load <b>not bold</b> on db1"),
        ("MemoryLow", "Memory low on db1"),
    ] {
        let a = answer(
            daemon
                .http
                .post(format!("{}/ingest/am", daemon.base))
                .header("content-type", "application/json")
                .body(alert(name, summary)),
        )
        .await;
        assert_eq!(a.status, 202, "{}", a.body);
    }
    wait_drained(&daemon.store(), WAIT).await;
    let store = open_store(&daemon.db_path()).await;
    let rows = eventually("the map learns the incidents", WAIT, || async {
        let rows = store.list_incidents(false, 10).await.unwrap();
        (rows.len() == 3 && rows.iter().all(|r| r.incident_url.is_some())).then_some(rows)
    })
    .await;
    pd.refuse_next_events(400, 1);
    daemon
        .send(&trigger(DEMO_ROUTING_KEY, "refused-1", 1))
        .await;
    let dead = eventually("a dead letter", WAIT, || async {
        api("/dead_letters").await["events"][0]["id"].as_i64()
    })
    .await;

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.goto(&format!("{}/", daemon.base)).await;
    assert_eq!(browser.title().await, "Status · pagerbridge");

    // The figures are the API's.
    let queue = api("/queue").await;
    let letters = api("/dead_letters").await;
    assert_eq!(
        browser.number("#pending-count").await,
        queue["pending"].as_u64().unwrap()
    );
    assert_eq!(
        browser.number("#dead-count").await,
        queue["dead"].as_u64().unwrap()
    );
    assert_eq!(browser.number("#dead-count").await, 1);
    assert_eq!(
        browser.number("#delivered-count").await,
        queue["delivered"].as_u64().unwrap()
    );
    assert_eq!(browser.number("#delivered-15m").await, 3);
    let shown = browser.find_all("#dead-letters tbody tr").await;
    assert_eq!(shown.len(), letters["events"].as_array().unwrap().len());
    let row = browser
        .text(&format!("#dead-letters tr[data-event=\"{dead}\"]"))
        .await;
    let error = letters["events"][0]["last_error"].as_str().unwrap();
    assert!(row.contains(error), "{row:?} shows PagerDuty's {error:?}");
    assert!(row.contains("400"), "{row:?}");

    // Each alert's event links to its incident's page.
    let mut hrefs = Vec::new();
    for a in browser.find_all("#recent-events td a").await {
        hrefs.push(browser.attribute(&a, "href").await.unwrap_or_default());
    }
    for r in &rows {
        let url = r.incident_url.as_deref().unwrap();
        assert!(hrefs.iter().any(|h| h == url), "{url} among {hrefs:?}");
    }
    // Markup from an alert is text: no <b> element, the tags shown as typed.
    assert!(browser.find_all("#recent-events b").await.is_empty());
    let recent = browser.text("#recent-events").await;
    assert!(recent.contains("Load <b>not bold</b> on db1"), "{recent}");
    std::fs::create_dir_all(artifacts()).unwrap();
    browser
        .screenshot(&artifacts().join("status-page.png"))
        .await;

    // A read-only token is refused, in words.
    let token = format!("#token-{dead}");
    let button = format!("form[data-event=\"{dead}\"] button");
    browser.type_into(&token, READER).await;
    browser.click(&button).await;
    browser
        .wait_url("the replay answer", |u| u.ends_with("/status/replay"))
        .await;
    assert_eq!(browser.text("h1").await, "This token may not replay");
    let message = browser.text(".message").await;
    assert!(message.contains("scope read"), "{message}");
    assert_eq!(api("/queue").await["dead"], 1, "nothing changed");

    // Back, with the admin token: the page says the event was replayed, and it is.
    browser.click("a[href=\"/\"]").await;
    browser
        .wait_url("the status page", |u| u.ends_with('/'))
        .await;
    browser.type_into(&token, ADMIN).await;
    browser.click(&button).await;
    let at = browser
        .wait_url("the page after the replay", |u| u.contains("replayed="))
        .await;
    assert!(at.ends_with(&format!("/?replayed={dead}")), "{at}");
    let notice = browser.text("#notice").await;
    assert!(
        notice.starts_with(&format!("Event {dead} replayed: it is now ")),
        "{notice}"
    );
    assert_eq!(browser.number("#dead-count").await, 0);
    let state = api(&format!("/queue/events/{dead}")).await["event"]["state"].clone();
    assert!(state == "pending" || state == "delivered", "{state}");
    eventually("the replayed event is delivered", WAIT, || async {
        (api(&format!("/queue/events/{dead}")).await["event"]["state"] == "delivered").then_some(())
    })
    .await;
    assert!(
        api("/dead_letters").await["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    browser
        .screenshot(&artifacts().join("status-page-replayed.png"))
        .await;
    browser.quit().await;
    eprintln!("browser test took {:?}", started.elapsed());
}
