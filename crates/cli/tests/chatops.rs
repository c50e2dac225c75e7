//! The chat-ops examples of docs/integrations/chatops.md, run as their runners run them, against
//! a real daemon (its `/api/v1`) delivering to the PagerDuty emulator:
//! - the shell aliases and functions (`pagerbridge-aliases.sh`), sourced by bash;
//! - the StackStorm pack: a chat line is matched against the action aliases' formats as
//!   StackStorm matches them, the parameters are completed with the action files' defaults, and
//!   the Python action class is instantiated with the pack configuration and `run()` as
//!   StackStorm's python-script runner does;
//! - the Slack slash-command runner, started as a process and sent requests signed the way
//!   Slack signs them.
//!
//! The files are read when the tests run, so what is tested is what the page shows. These
//! tests need `python3` (StackStorm and the Slack runner) and `curl` (the shell functions); a test
//! whose program is missing says so and is skipped.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hmac::{KeyInit, Mac};
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;
use pagerduty::{Event, Severity};
use serde_json::{Value, json};
use support::*;
use tempfile::TempDir;

const ADMIN_TOKEN: &str = "chatops-admin-token-0123456789";
const URL_PLACEHOLDER: &str = "http://pagerbridge.example.com:8080";

fn chatops(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/integrations/snippets/chatops")
        .join(rel)
}

fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: {program} is not installed; this chat-ops example was not run");
    }
    found
}

/// A daemon with an admin API token, delivering to `pd`, and three open incidents.
struct Setup {
    pd: TestPd,
    url: String,
    ids: Vec<String>,
    _daemon: Daemon,
    _dir: TempDir,
}

async fn setup() -> Setup {
    let pd = TestPd::start().await;
    let dir = TempDir::new().unwrap();
    let url = pd.url();
    let config = dir.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"data\"\n\n[pagerduty]\nevents_url = \"{url}\"\n\
             rest_url = \"{url}\"\nproxy = \"none\"\napi_token = \"emulator-account-token\"\n\
             from = \"ada@example.com\"\n\n[[api.tokens]]\nname = \"chatops\"\n\
             token = \"{ADMIN_TOKEN}\"\nscope = \"admin\"\n"
        ),
    )
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let ev = Event::trigger(
            DEMO_ROUTING_KEY,
            format!("disk {n} full"),
            "db-01",
            Severity::Critical,
        )
        .with_dedup_key(format!("chatops-{n}"));
        let (_, effect) = pd.world().apply_event(&ev, jiff::Timestamp::now()).unwrap();
        match effect {
            pagerduty_emulator::world::Effect::Created { incident } => ids.push(incident),
            other => panic!("no incident: {other:?}"),
        }
    }
    let (daemon, daemon_url) = start_daemon_env(&config, &[]);
    Setup {
        pd,
        url: daemon_url,
        ids,
        _daemon: daemon,
        _dir: dir,
    }
}

async fn status_of(pd: &TestPd, id: &str) -> IncidentStatus {
    pd.rest().get_incident(id).await.unwrap().status
}

/// Who last changed the incident, by email.
async fn changed_by(pd: &TestPd, id: &str) -> String {
    let incident = pd.rest().get_incident(id).await.unwrap();
    let user_id = incident
        .last_status_change_by
        .expect("changed by someone")
        .id;
    pd.world()
        .users
        .iter()
        .find(|u| u.id == user_id)
        .map(|u| u.email.clone())
        .unwrap_or_else(|| panic!("{user_id} is not a user"))
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pagerbridge"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `script` with bash after sourcing the aliases file, as an interactive shell would.
fn bash_with_aliases(s: &Setup, from: &str, script: &str) -> (i32, String, String) {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let aliases = chatops("pagerbridge-aliases.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "shopt -s expand_aliases\n. '{}'\n{script}",
            aliases.display()
        ))
        .env("PATH", path)
        .env("PAGERBRIDGE_URL", &s.url)
        .env("PAGERBRIDGE_API_TOKEN", ADMIN_TOKEN)
        .env("PAGERDUTY_FROM", from)
        // The CLI aliases talk to PagerDuty (the emulator) directly.
        .env("PAGERDUTY_API_TOKEN", "emulator-account-token")
        .env("PAGERDUTY_REST_URL", s.pd.url())
        .env_remove("PAGERBRIDGE_CONFIG")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_aliases_list_acknowledge_and_resolve() {
    if !have("curl") {
        return;
    }
    let s = setup().await;
    let aliases = std::fs::read_to_string(chatops("pagerbridge-aliases.sh")).unwrap();
    assert!(aliases.contains(URL_PLACEHOLDER), "the page's URL changed");

    // The API through curl.
    let (code, out, err) = bash_with_aliases(&s, "bob@example.com", "pb-open");
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["count"], 3, "{listed}");

    let script = format!("pb-ack {} {}", s.ids[0], s.ids[1]);
    let (code, out, err) = bash_with_aliases(&s, "bob@example.com", &script);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["updated"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(
        status_of(&s.pd, &s.ids[0]).await,
        IncidentStatus::Acknowledged
    );
    assert_eq!(changed_by(&s.pd, &s.ids[1]).await, "bob@example.com");
    assert_eq!(status_of(&s.pd, &s.ids[2]).await, IncidentStatus::Triggered);

    // A refusal: curl exits non-zero with pagerbridge's JSON error naming the problem.
    let (code, out, _) = bash_with_aliases(&s, "bob@example.com", "pb-resolve QNOSUCHID1");
    assert_ne!(code, 0, "{out}");
    let error: Value = serde_json::from_str(&out).unwrap();
    assert!(
        error.to_string().contains("QNOSUCHID1"),
        "the error names the id: {error}"
    );

    // The CLI alias, straight to PagerDuty.
    let script = format!(
        "pd resolve --quiet --from ada@example.com {} && pd-open --json",
        s.ids[2]
    );
    let (code, out, err) = bash_with_aliases(&s, "bob@example.com", &script);
    assert_eq!(code, 0, "{err}");
    let open: Value = serde_json::from_str(&out).unwrap();
    let open_ids: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(open_ids, [s.ids[0].as_str(), s.ids[1].as_str()]);
    assert_eq!(changed_by(&s.pd, &s.ids[2]).await, "ada@example.com");
}

/// One piece of an action alias format: literal text or a `{{name}}` / `{{name=default}}`.
#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Var(String, Option<String>),
}

fn parse_format(format: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Lit(rest[..start].to_owned()));
        }
        let end = rest[start..].find("}}").expect("closed {{") + start;
        let inner = rest[start + 2..end].trim();
        let (name, default) = match inner.split_once('=') {
            Some((n, d)) => (n.trim().to_owned(), Some(d.trim().to_owned())),
            None => (inner.to_owned(), None),
        };
        pieces.push(Piece::Var(name, default));
        rest = &rest[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest.to_owned()));
    }
    pieces
}

/// StackStorm's matching for these formats: literals exactly, each parameter as much text as
/// leaves the rest matching; a parameter with a default may be left out with the space before it.
fn match_format(pieces: &[Piece], text: &str) -> Option<BTreeMap<String, String>> {
    fn go(pieces: &[Piece], text: &str, out: &mut BTreeMap<String, String>) -> bool {
        match pieces {
            [] => text.is_empty(),
            [Piece::Lit(l), rest @ ..] => {
                if let Some(t) = text.strip_prefix(l.as_str()) {
                    return go(rest, t, out);
                }
                // "get open incidents" against "get open incidents {{statuses=...}}".
                if let [Piece::Var(name, Some(default))] = rest
                    && text == l.trim_end()
                {
                    out.insert(name.clone(), default.clone());
                    return true;
                }
                false
            }
            [Piece::Var(name, _), rest @ ..] => {
                for end in (1..=text.len()).rev().filter(|&i| text.is_char_boundary(i)) {
                    let mut tried = out.clone();
                    tried.insert(name.clone(), text[..end].to_owned());
                    if go(rest, &text[end..], &mut tried) {
                        *out = tried;
                        return true;
                    }
                }
                false
            }
        }
    }
    let mut out = BTreeMap::new();
    go(pieces, text, &mut out).then_some(out)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The action a chat line runs and its parameters, as StackStorm would resolve them.
fn resolve_chat(line: &str) -> (String, Value) {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(chatops("stackstorm/aliases")).unwrap() {
        let alias = yaml(&entry.unwrap().path());
        for format in alias["formats"].as_array().unwrap() {
            if let Some(params) = match_format(&parse_format(format.as_str().unwrap()), line) {
                found.push((alias["action_ref"].as_str().unwrap().to_owned(), params));
            }
        }
    }
    assert_eq!(found.len(), 1, "{line:?} matches {found:?}");
    let (action_ref, matched) = found.pop().unwrap();
    let name = action_ref.strip_prefix("pagerbridge.").expect("the pack");
    let action = yaml(&chatops(&format!("stackstorm/actions/{name}.yaml")));
    assert_eq!(action["runner_type"], "python-script");
    assert_eq!(action["entry_point"], "pagerbridge_action.py");
    let mut params = serde_json::Map::new();
    for (param, spec) in action["parameters"].as_object().unwrap() {
        if let Some(d) = spec.get("default") {
            params.insert(param.clone(), d.clone());
        }
    }
    for (k, v) in matched {
        let spec = &action["parameters"][&k];
        assert!(!spec.is_null(), "the alias fills {k}, which {name} has not");
        assert_ne!(spec["immutable"], true, "{k} is immutable in {name}");
        params.insert(k, Value::from(v));
    }
    for (param, spec) in action["parameters"].as_object().unwrap() {
        if spec["required"] == true {
            assert!(params.contains_key(param), "{name}: {param} is required");
        }
    }
    (name.to_owned(), Value::Object(params))
}

/// Runs the action class as StackStorm's python-script runner does: constructed with the pack
/// configuration, `run(**parameters)`; returns `(success, result)`.
fn run_action(config: &Value, params: &Value) -> (bool, Value) {
    let harness = "import json, sys\n\
                   sys.path.insert(0, sys.argv[1])\n\
                   from pagerbridge_action import PagerbridgeAction\n\
                   action = PagerbridgeAction(config=json.loads(sys.argv[2]))\n\
                   print(json.dumps(action.run(**json.loads(sys.argv[3]))))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(harness)
        .arg(chatops("stackstorm/actions"))
        .arg(config.to_string())
        .arg(params.to_string())
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v[0].as_bool().unwrap(), v[1].clone())
}

#[test]
fn alias_formats_match_as_stackstorm_matches_them() {
    let (action, params) = resolve_chat("ack incident id Q1 Q2 from bob@example.com");
    assert_eq!(action, "acknowledge_incident");
    assert_eq!(params["ids"], "Q1 Q2");
    assert_eq!(params["from_email"], "bob@example.com");
    assert_eq!(params["operation"], "acknowledge");
    let (action, params) = resolve_chat("get open incidents");
    assert_eq!(action, "get_open_incidents");
    assert_eq!(params["statuses"], "triggered,acknowledged");
    let (_, params) = resolve_chat("create incident Disk full on db-01 on Storage");
    assert_eq!(params["title"], "Disk full on db-01");
    assert_eq!(params["service"], "Storage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stackstorm_actions_from_chat_lines() {
    if !have("python3") {
        return;
    }
    let s = setup().await;
    let config = json!({"url": s.url, "api_token": ADMIN_TOKEN});

    let (_, params) = resolve_chat("get open incidents");
    let (ok, result) = run_action(&config, &params);
    assert!(ok, "{result}");
    assert_eq!(result["count"], 3, "{result}");

    let line = format!(
        "ack incident id {}, {} from bob@example.com",
        s.ids[0], s.ids[1]
    );
    let (_, params) = resolve_chat(&line);
    let (ok, result) = run_action(&config, &params);
    assert!(ok, "{result}");
    assert_eq!(result["updated"].as_array().unwrap().len(), 2, "{result}");
    assert_eq!(changed_by(&s.pd, &s.ids[0]).await, "bob@example.com");

    let (_, params) = resolve_chat(&format!(
        "resolve incident id {} from ada@example.com",
        s.ids[2]
    ));
    let (ok, _) = run_action(&config, &params);
    assert!(ok);
    assert_eq!(status_of(&s.pd, &s.ids[2]).await, IncidentStatus::Resolved);

    let (service_id, service_name) = s.pd.service_of(DEMO_ROUTING_KEY);
    let (_, params) = resolve_chat(&format!("create incident Payments down on {service_name}"));
    let (ok, result) = run_action(&config, &params);
    assert!(ok, "{result}");
    assert_eq!(result["incident"]["title"], "Payments down", "{result}");
    assert_eq!(
        result["incident"]["service"]["id"],
        service_id.as_str(),
        "{result}"
    );

    // A refusal reaches the workflow as a failed execution naming the problem.
    let (_, params) = resolve_chat("ack incident id Q1 from bob@example.com");
    let (ok, result) = run_action(&config, &params);
    assert!(!ok, "{result}");
    assert!(result.to_string().contains("Q1"), "{result}");
}

/// Slack's signature of a request body sent at `timestamp`.
fn slack_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

struct Runner(std::process::Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_slash_command_runner() {
    if !have("python3") {
        return;
    }
    let s = setup().await;
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let mut child = Command::new("python3")
        .arg(chatops("slack_runner.py"))
        .env("SLACK_SIGNING_SECRET", secret)
        .env("PAGERBRIDGE_URL", &s.url)
        .env("PAGERBRIDGE_API_TOKEN", ADMIN_TOKEN)
        .env("PAGERDUTY_EMAIL_DOMAIN", "example.com")
        .env("RUNNER_LISTEN", "127.0.0.1:0")
        .env("NO_PROXY", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _runner = Runner(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |text: String, sign_with: &str| {
        let body = format!(
            "token=unused&team_id=T0001&command=%2Fpd&user_id=U2147483697&user_name=bob&text={}&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234",
            text.replace(' ', "+")
        );
        let ts = jiff::Timestamp::now().as_second().to_string();
        let sig = slack_signature(sign_with, &ts, &body);
        http.post(format!("http://{addr}/slack/command"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Slack-Request-Timestamp", ts)
            .header("X-Slack-Signature", sig)
            .body(body)
            .send()
    };

    let r = post("list".into(), secret).await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(text.starts_with("3 open incident(s)"), "{text}");
    assert!(text.contains(&s.ids[0]), "{text}");

    let r = post(format!("ack {} {}", s.ids[0], s.ids[1]), secret)
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with("acknowledged 2 incident(s) as bob@example.com"),
        "{text}"
    );
    assert_eq!(changed_by(&s.pd, &s.ids[1]).await, "bob@example.com");

    let r = post(format!("note {} rolled back the deploy", s.ids[0]), secret)
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["text"], format!("note added to {}", s.ids[0]));
    let notes = s.pd.rest().list_notes(&s.ids[0]).await.unwrap();
    assert_eq!(notes[0].content, "rolled back the deploy");

    // One unknown id among good ones: the good one changes, the bad one is named.
    let r = post(format!("resolve {} QNOSUCHID1", s.ids[2]), secret)
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    let text = answer["text"].as_str().unwrap();
    assert!(text.starts_with("resolved 1 incident(s)"), "{text}");
    assert!(text.contains("QNOSUCHID1:"), "{text}");
    assert_eq!(status_of(&s.pd, &s.ids[2]).await, IncidentStatus::Resolved);

    // A request Slack did not sign is refused and does nothing.
    let r = post(format!("resolve {}", s.ids[0]), "not-the-secret")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        status_of(&s.pd, &s.ids[0]).await,
        IncidentStatus::Acknowledged
    );
}
