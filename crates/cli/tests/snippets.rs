//! The snippets of docs/integrations/snippets/ that the integration pages tell operators to paste,
//! executed the way their monitor executes them, with the real binary:
//! - the Nagios-family notification commands (Nagios 4, Naemon, Centreon Engine,
//!   openITCOCKPIT): each `command_line` with its `$MACRO$`s expanded as the monitor expands them,
//!   from the macro values captured from real Nagios (crates/ingest/tests/fixtures/nagios/),
//!   output macros stripped of the stock `illegal_macro_output_chars`, run with `/bin/sh -c`;
//! - the Zenoss event commands, `${evt/field}` expanded from an event, run with `/bin/sh -c`;
//! - the generic JSON route's curl example, run with `sh` against a daemon that loads the
//!   documented source, delivering to the emulator;
//! - the Grafana contact point and the Guance webhook target, whose programs cannot run here:
//!   the route and the credentials they are given are the documented sources' own.
//!
//! The snippets are read when the tests run, so what is tested is what the pages show. The
//! placeholders (`/usr/local/bin/pagerbridge`, `/etc/pagerbridge/pagerbridge.toml`, the daemon's
//! URL) are replaced with the binary under test, a temporary configuration and the test daemon;
//! a snippet that no longer contains one fails the test, saying so.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pagerbridge_store::EventRecord;
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::rest::IncidentStatus;
use serde_json::{Value, json};
use support::*;
use tempfile::TempDir;

const BIN_PLACEHOLDER: &str = "/usr/local/bin/pagerbridge";
const CONFIG_PLACEHOLDER: &str = "/etc/pagerbridge/pagerbridge.toml";
const URL_PLACEHOLDER: &str = "http://pagerbridge.example.com:8080";

/// How long one snippet command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn read_repo(rel: &str) -> String {
    let path = repo_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn snippet(name: &str) -> String {
    read_repo(&format!("docs/integrations/snippets/{name}"))
}

fn fixture(rel: &str) -> Value {
    let text = read_repo(&format!("crates/ingest/tests/fixtures/{rel}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixtures/{rel}: {e}"))
}

/// `text` with every `from` replaced by `to`. Fails when the snippet no longer contains `from`:
/// the test's assumptions about the snippet no longer hold and need a look.
fn substitute(text: &str, snippet: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "docs/integrations/snippets/{snippet} no longer contains {from:?}, which this test \
         replaces with {to:?}: update crates/cli/tests/snippets.rs along with the snippet\n\
         --- the text:\n{text}"
    );
    text.replace(from, to)
}

/// A command snippet pointed at the binary under test and at `config`.
fn localize(text: &str, snippet: &str, config: &Path) -> String {
    let config = config.to_str().unwrap();
    assert!(
        config
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)),
        "the temporary path {config:?} would need shell quoting"
    );
    let text = substitute(text, snippet, BIN_PLACEHOLDER, BIN);
    substitute(&text, snippet, CONFIG_PLACEHOLDER, config)
}

/// A configuration for `pagerbridge send` alone: the outbox in `<dir>/data`, no daemon.
fn write_outbox_config(dir: &Path) -> PathBuf {
    let config = dir.join("pagerbridge.toml");
    std::fs::write(&config, "[server]\ndata_dir = \"data\"\n").unwrap();
    config
}

/// Runs `script` as monitors run their commands: `/bin/sh -c`, in `dir`, with a plain PATH and
/// `env` as the whole environment; killed after [`COMMAND_TIMEOUT`].
fn sh(script: &str, dir: &Path, env: &[(&str, &str)]) -> Out {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/bin/sh starts");
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {COMMAND_TIMEOUT:?}: /bin/sh -c {script}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The outbox's records, oldest first.
async fn stored(dir: &Path) -> Vec<EventRecord> {
    let mut v = records(&dir.join("data/pagerbridge.db")).await;
    v.reverse();
    v
}

fn body(r: &EventRecord) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn action_and_key(r: &EventRecord) -> (String, String) {
    (
        r.action.map(|a| a.as_str().to_owned()).unwrap_or_default(),
        r.dedup_key.clone().unwrap_or_default(),
    )
}

fn incident_status(pd: &TestPd, key: &str) -> (usize, Option<IncidentStatus>) {
    let w = pd.world();
    let all: Vec<_> = w
        .incidents
        .iter()
        .filter(|i| i.incident_key == key)
        .collect();
    (all.len(), all.last().map(|i| i.status))
}

async fn wait_incident(pd: &TestPd, key: &str, status: IncidentStatus) {
    wait_until(&format!("one incident {key:?}, {status:?}"), || async {
        incident_status(pd, key) == (1, Some(status))
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The Nagios family
// ---------------------------------------------------------------------------------------------

/// A monitor of the Nagios family, its snippet and the `client` its events name.
#[derive(Clone, Copy)]
struct Family {
    snippet: &'static str,
    source: &'static str,
    client: &'static str,
}

const FAMILY: [Family; 4] = [
    Family {
        snippet: "nagios.conf",
        source: "nagios",
        client: "Nagios",
    },
    Family {
        snippet: "naemon.conf",
        source: "naemon",
        client: "Naemon",
    },
    Family {
        snippet: "centreon-engine.conf",
        source: "centreon_engine",
        client: "Centreon",
    },
    Family {
        snippet: "openitcockpit.conf",
        source: "openitcockpit",
        client: "openITCOCKPIT",
    },
];

impl Family {
    fn is_openitcockpit(self) -> bool {
        self.source == "openitcockpit"
    }
}

/// openITCOCKPIT's core names hosts and services by UUID and keeps the names people know in the
/// display names: the captured db1 and `Disk /` under the names openITCOCKPIT gives them.
const OITC_HOST_UUID: &str = "c36b8048-93ce-4385-ac19-ab5c90574b77";
const OITC_SERVICE_UUID: &str = "74fd8f59-1348-4e16-85f0-4a5c57c7dd62";
/// The contact custom variable `_PAGERDUTY_KEY` that openitcockpit.conf tells operators to
/// create, as the macro Nagios-style cores make of it.
const OITC_KEY_MACRO: &str = "_CONTACTPAGERDUTY_KEY";

/// The macros Nagios strips of `illegal_macro_output_chars` before putting them in a command
/// (Nagios 4 `init_macros()`; Naemon and Centreon Engine strip these too): plugin output, long
/// output, performance data, acknowledgement author and comment. The others go in as they are.
const STRIPPED_MACROS: [&str; 10] = [
    "HOSTOUTPUT",
    "LONGHOSTOUTPUT",
    "HOSTPERFDATA",
    "HOSTACKAUTHOR",
    "HOSTACKCOMMENT",
    "SERVICEOUTPUT",
    "LONGSERVICEOUTPUT",
    "SERVICEPERFDATA",
    "SERVICEACKAUTHOR",
    "SERVICEACKCOMMENT",
];

/// `illegal_macro_output_chars` as the stock nagios.cfg, naemon.cfg and Centreon set it; control
/// characters are always stripped as well.
const ILLEGAL_MACRO_OUTPUT_CHARS: &str = "`~$&|'\"<>";

fn strip_illegal(value: &str) -> String {
    value
        .chars()
        .filter(|c| !ILLEGAL_MACRO_OUTPUT_CHARS.contains(*c) && !c.is_ascii_control())
        .collect()
}

/// The definitions of one object type (`command`, `contact`) in a Nagios object file, as
/// directive → value, read as Nagios reads them: `#` starts a comment line, an unescaped `;`
/// starts a comment, `\;` is a semicolon.
fn nagios_objects(text: &str, kind: &str) -> Vec<BTreeMap<String, String>> {
    let mut found = Vec::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    for raw in text.lines() {
        if raw.trim_start().starts_with('#') {
            continue;
        }
        let mut line = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&';') => {
                    line.push(';');
                    chars.next();
                }
                ';' => break,
                c => line.push(c),
            }
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("define") {
            assert!(current.is_none(), "a define inside a define: {raw:?}");
            let object_type = rest.trim().trim_end_matches('{').trim().to_owned();
            current = Some((object_type, BTreeMap::new()));
        } else if line == "}" {
            let (object_type, fields) = current.take().expect("a } closes a define");
            if object_type == kind {
                found.push(fields);
            }
        } else {
            let (_, fields) = current
                .as_mut()
                .unwrap_or_else(|| panic!("a directive outside of a define: {raw:?}"));
            let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            fields.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    assert!(current.is_none(), "a define is not closed");
    found
}

/// A notification command: its name and its command line as the snippet shows it.
struct NotifyCommand {
    name: String,
    line: String,
}

/// The snippet's host and service notification commands.
fn notification_commands(family: Family) -> (NotifyCommand, NotifyCommand) {
    let text = snippet(family.snippet);
    let commands: Vec<NotifyCommand> = nagios_objects(&text, "command")
        .into_iter()
        .map(|c| NotifyCommand {
            name: c["command_name"].clone(),
            line: c["command_line"].clone(),
        })
        .collect();
    assert_eq!(
        commands.len(),
        2,
        "{}: a host and a service notification command",
        family.snippet
    );
    let (service, host): (Vec<_>, Vec<_>) = commands
        .into_iter()
        .partition(|c| c.line.contains("$SERVICEDESC$"));
    assert!(
        service.len() == 1 && host.len() == 1,
        "{}: one command passes $SERVICEDESC$ (services), the other not (hosts)",
        family.snippet
    );
    let (host, service) = (host.into_iter().next(), service.into_iter().next());
    let (host, service) = (host.unwrap(), service.unwrap());

    // The contact must name these commands, or the monitor never runs them.
    let contacts = nagios_objects(&text, "contact");
    if contacts.is_empty() {
        // openITCOCKPIT: the contact is made in its web interface, as the comment says.
        for c in [&host, &service] {
            assert!(
                text.matches(&c.name).count() >= 2,
                "{}: the instructions name {} for the contact",
                family.snippet,
                c.name
            );
        }
    }
    for contact in &contacts {
        assert_eq!(
            contact.get("host_notification_commands"),
            Some(&host.name),
            "{}: the contact's host notification command",
            family.snippet
        );
        assert_eq!(
            contact.get("service_notification_commands"),
            Some(&service.name),
            "{}: the contact's service notification command",
            family.snippet
        );
    }
    (host, service)
}

/// Expands the `$MACRO$`s of a command line as Nagios' `process_macros_r` does: `$$` is a `$`, a
/// macro becomes its value (stripped of illegal characters for [`STRIPPED_MACROS`]), a macro
/// without a value is empty. Returns the line and the macros `macros` had no value for.
fn expand_macros(line: &str, macros: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let parts: Vec<&str> = line.split('$').collect();
    assert!(
        parts.len() % 2 == 1,
        "an odd number of `$` in the command line: {line}"
    );
    let mut out = String::new();
    let mut missing = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else if part.is_empty() {
            out.push('$');
        } else {
            match macros.get(*part) {
                Some(v) if STRIPPED_MACROS.contains(part) => out.push_str(&strip_illegal(v)),
                Some(v) => out.push_str(v),
                None => missing.push(part.to_string()),
            }
        }
    }
    (out, missing)
}

/// The macros of a captured Nagios notification (`NAGIOS_*` of the fixture's environment: every
/// macro Nagios has, empty ones included), as `family`'s monitor would have them.
fn captured_macros(family: Family, name: &str) -> BTreeMap<String, String> {
    let v = fixture(&format!("nagios/{name}"));
    let mut m: BTreeMap<String, String> = v["env"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("NAGIOS_")?.to_owned(),
                v.as_str()?.to_owned(),
            ))
        })
        .collect();
    assert!(m.len() > 150, "{name}: the capture has every macro");
    if family.is_openitcockpit() {
        m.insert("HOSTNAME".into(), OITC_HOST_UUID.into());
        if !m["SERVICEDESC"].is_empty() {
            m.insert("SERVICEDESC".into(), OITC_SERVICE_UUID.into());
        }
        let pager = m["CONTACTPAGER"].clone();
        m.insert(OITC_KEY_MACRO.into(), pager);
    }
    m
}

/// Runs the notification command the monitor picks for these macros (the service command when
/// `$SERVICEDESC$` has a value), expanded and through `/bin/sh -c`, in `dir`.
fn notify(
    family: Family,
    commands: &(NotifyCommand, NotifyCommand),
    macros: &BTreeMap<String, String>,
    dir: &Path,
    config: &Path,
) -> Out {
    let command = if macros["SERVICEDESC"].is_empty() {
        &commands.0
    } else {
        &commands.1
    };
    let line = localize(&command.line, family.snippet, config);
    let (line, missing) = expand_macros(&line, macros);
    // The capture has every macro Nagios knows: one it lacks is a typo, or a custom variable
    // the test does not define (Nagios would pass `$NAME$` on as it is).
    assert!(
        missing.is_empty(),
        "{}: {} uses macros neither Nagios' capture nor the test's contact define: {missing:?}",
        family.snippet,
        command.name
    );
    sh(&line, dir, &[])
}

/// The routing key the captured notifications carry: the contact's pager.
fn captured_pager() -> String {
    let v = fixture("nagios/service_problem.json");
    v["env"]["NAGIOS_CONTACTPAGER"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn nagios_family_notification_commands_store_problem_ack_and_recovery() {
    // (capture, the action stored, or None: PagerDuty has no event for it, nothing stored)
    let cases = [
        ("service_problem.json", Some("trigger")),
        ("service_problem_repeat.json", Some("trigger")),
        ("service_acknowledgement.json", Some("acknowledge")),
        ("service_recovery.json", Some("resolve")),
        ("service_custom.json", None),
        ("host_problem.json", Some("trigger")),
        ("host_acknowledgement.json", Some("acknowledge")),
        ("host_recovery.json", Some("resolve")),
    ];
    let pager = captured_pager();
    for family in FAMILY {
        let what = family.snippet;
        let commands = notification_commands(family);
        let tmp = TempDir::new().unwrap();
        let config = write_outbox_config(tmp.path());
        let mut expected = Vec::new();
        for (name, action) in cases {
            let macros = captured_macros(family, name);
            let out = notify(family, &commands, &macros, tmp.path(), &config);
            assert_eq!(out.code, 0, "{what}, {name}: {}", out.stderr);
            let Some(action) = action else {
                assert_eq!(out.stdout, "", "{what}, {name}");
                assert!(
                    out.stderr.contains("nothing to send"),
                    "{what}, {name} says why nothing was stored: {}",
                    out.stderr
                );
                continue;
            };
            assert_eq!(out.stderr, "", "{what}, {name}");
            // The dedup key printed: the object the monitor names, the same for every
            // notification of one problem.
            let object = match macros["SERVICEDESC"].as_str() {
                "" => macros["HOSTNAME"].clone(),
                service => format!("{}/{service}", macros["HOSTNAME"]),
            };
            assert_eq!(out.stdout, format!("{object}\n"), "{what}, {name}");
            expected.push((action.to_owned(), object));
        }

        let records = stored(tmp.path()).await;
        let got: Vec<(String, String)> = records.iter().map(action_and_key).collect();
        assert_eq!(got, expected, "{what}: the stored events, oldest first");
        let (host, service) = if family.is_openitcockpit() {
            (
                OITC_HOST_UUID,
                format!("{OITC_HOST_UUID}/{OITC_SERVICE_UUID}"),
            )
        } else {
            ("db1", "db1/Disk /".to_owned())
        };
        let keys: Vec<&str> = expected.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            [&*service, &service, &service, &service, host, host, host],
            "{what}: one key per problem, from problem to recovery"
        );
        for r in &records {
            assert_eq!(r.source, format!("send {}", family.source), "{what}");
            assert_eq!(
                body(r)["routing_key"],
                pager.as_str(),
                "{what}: the contact's pager is the routing key"
            );
        }

        // The service problem: what each quoted macro carried arrives whole.
        let problem = body(&records[0]);
        let m = captured_macros(family, "service_problem.json");
        let shown_service = if family.is_openitcockpit() {
            &m["SERVICEDISPLAYNAME"]
        } else {
            "Disk /"
        };
        assert_eq!(problem["client"], family.client, "{what}");
        let payload = &problem["payload"];
        assert_eq!(payload["source"], "db1", "{what}: {problem}");
        assert_eq!(payload["component"], shown_service, "{what}: {problem}");
        assert_eq!(payload["severity"], "critical", "{what}: {problem}");
        assert_eq!(
            payload["summary"],
            format!("CRITICAL: db1/{shown_service} - {}", m["SERVICEOUTPUT"]),
            "{what}"
        );
        let details = &payload["custom_details"];
        assert_eq!(details["output"], m["SERVICEOUTPUT"], "{what}: {problem}");
        assert_eq!(details["problem_id"], "1", "{what}: {problem}");
        assert_eq!(
            details["host_address"], m["HOSTADDRESS"],
            "{what}: {problem}"
        );
        // The macros the service command passes with --macro arrive too.
        let line = &commands.1.line;
        for (macro_name, detail) in [
            ("HOSTALIAS", "host_alias"),
            ("HOSTDISPLAYNAME", "host_display_name"),
            ("SERVICEDISPLAYNAME", "service_display_name"),
            ("HOSTSTATE", "host_state"),
        ] {
            if line.contains(&format!("--macro \"{macro_name}=${macro_name}$\"")) {
                assert_eq!(details[detail], m[macro_name], "{what}: {problem}");
            }
        }
        assert_eq!(details["macros"]["TIMET"], m["TIMET"], "{what}: {problem}");
        assert_eq!(
            details["perfdata"]["/"]["value"],
            json!(900.0),
            "{what}: the perfdata, parsed: {problem}"
        );
        // The host problem names the host alone.
        let host_problem = body(&records[4]);
        assert_eq!(host_problem["event_action"], "trigger", "{what}");
        assert_eq!(host_problem["client"], family.client, "{what}");
        assert_eq!(host_problem["payload"]["source"], "db1", "{what}");
        assert!(
            host_problem["payload"].get("component").is_none(),
            "{what}: {host_problem}"
        );
    }
}

#[tokio::test]
async fn plugin_output_with_shell_metacharacters_arrives_as_the_monitor_passes_it() {
    // What a plugin may print: quotes, a phrase with spaces, shell syntax, backslashes (a UNC
    // path, a drive at the very end). Nagios strips illegal_macro_output_chars from it; the
    // rest must reach pagerbridge as one argument, unchanged, and run nothing.
    const OUTPUT: &str = r#"DISK CRITICAL - "/srv data" at 95% & rising; $(touch pwned) `touch pwned` | <in> > ~backup's $HOME (*) [a] {b} !c #d \\fileserver\share C:\"#;
    const LONG_OUTPUT: &str =
        r#"mount "/srv data": 95% used\nowner's quota: 'none' & C:\temp\ | more"#;
    const PERFDATA: &str = "/=950MB;800;900;0;1000 'srv data'=95%;80;90";

    for family in FAMILY {
        let what = family.snippet;
        let commands = notification_commands(family);
        let tmp = TempDir::new().unwrap();
        let config = write_outbox_config(tmp.path());
        for name in ["service_problem.json", "host_problem.json"] {
            let mut macros = captured_macros(family, name);
            let service = !macros["SERVICEDESC"].is_empty();
            let prefix = if service { "SERVICE" } else { "HOST" };
            macros.insert(format!("{prefix}OUTPUT"), OUTPUT.into());
            macros.insert(format!("LONG{prefix}OUTPUT"), LONG_OUTPUT.into());
            macros.insert(format!("{prefix}PERFDATA"), PERFDATA.into());
            let out = notify(family, &commands, &macros, tmp.path(), &config);
            assert_eq!(out.code, 0, "{what}, {name}: {}", out.stderr);
            assert_eq!(out.stderr, "", "{what}, {name}");
        }
        // An acknowledgement comment is typed by a person: the same hostile text there.
        let mut ack = captured_macros(family, "service_acknowledgement.json");
        for m in ["SERVICEACKCOMMENT", "NOTIFICATIONCOMMENT"] {
            ack.insert(m.into(), OUTPUT.into());
        }
        let out = notify(family, &commands, &ack, tmp.path(), &config);
        assert_eq!(out.code, 0, "{what}, acknowledgement: {}", out.stderr);
        assert!(
            !tmp.path().join("pwned").exists(),
            "{what}: plugin output or a comment ran a command"
        );
        let mut records = stored(tmp.path()).await;
        assert_eq!(records.len(), 3, "{what}");
        let ack_event = body(&records.pop().unwrap());
        // (PagerDuty's acknowledge events carry no payload: the comment's proof is that the
        // command line survived it.)
        assert_eq!(ack_event["event_action"], "acknowledge", "{what}");
        assert_eq!(
            ack_event["dedup_key"],
            body(&records[0])["dedup_key"],
            "{what}"
        );
        for r in &records {
            let ev = body(r);
            let details = &ev["payload"]["custom_details"];
            assert_eq!(
                details["output"],
                strip_illegal(OUTPUT),
                "{what}: the output, as Nagios passes it"
            );
            assert_eq!(details["long_output"], strip_illegal(LONG_OUTPUT), "{what}");
            assert_eq!(
                details["perfdata"]["/"]["value"],
                json!(950.0),
                "{what}: {ev}"
            );
            assert!(
                ev["payload"]["summary"]
                    .as_str()
                    .unwrap()
                    .ends_with(&strip_illegal(OUTPUT)),
                "{what}: {ev}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naemon_notification_command_opens_acks_and_resolves_the_incident() {
    let family = FAMILY[1];
    assert_eq!(family.source, "naemon");
    let commands = notification_commands(family);
    let pd = TestPd::start().await;
    let tmp = TempDir::new().unwrap();
    let config = write_config(tmp.path(), &pd);
    let _daemon = start_daemon(&config);
    let notify_demo = |name: &str| {
        let mut macros = captured_macros(family, name);
        macros.insert("CONTACTPAGER".into(), DEMO_ROUTING_KEY.into());
        let out = notify(family, &commands, &macros, tmp.path(), &config);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        out.stdout.trim().to_owned()
    };
    let key = notify_demo("service_problem.json");
    wait_incident(&pd, &key, IncidentStatus::Triggered).await;
    assert_eq!(notify_demo("service_acknowledgement.json"), key);
    wait_incident(&pd, &key, IncidentStatus::Acknowledged).await;
    assert_eq!(notify_demo("service_recovery.json"), key);
    wait_incident(&pd, &key, IncidentStatus::Resolved).await;
    let titles = incident_titles(&pd).await;
    assert_eq!(
        titles,
        ["CRITICAL: db1/Disk / - DISK CRITICAL - free space: / 100 MB (5% inode=80%)"],
        "one problem, one incident"
    );
}

// ---------------------------------------------------------------------------------------------
// Zenoss
// ---------------------------------------------------------------------------------------------

/// A field as Zenoss writes it into a command: text as it is, numbers as Python prints them
/// (fixtures/zenoss/command-fields.json), a missing field empty.
fn zenoss_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_owned(),
        Some(other) => other.to_string(),
    }
}

/// The `${evt/field}` expressions of a Zenoss command, in order.
fn tales_fields(command: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = command;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("an unterminated ${{ in {command}"));
        let expr = &after[..end];
        let field = expr.strip_prefix("evt/").unwrap_or_else(|| {
            panic!("this test expands ${{evt/...}} only; the command has ${{{expr}}}")
        });
        fields.push(field.to_owned());
        rest = &after[end + 1..];
    }
    fields
}

/// Expands `${evt/field}` as Zenoss' command action does, from `event`.
fn expand_tales(command: &str, event: &Value) -> String {
    let mut out = command.to_owned();
    for field in tales_fields(command) {
        out = out.replacen(
            &format!("${{evt/{field}}}"),
            &zenoss_text(event.get(&field)),
            1,
        );
    }
    out
}

#[tokio::test]
async fn zenoss_event_commands_trigger_and_clear_with_the_event_id() {
    let tmp = TempDir::new().unwrap();
    let config = write_outbox_config(tmp.path());
    let command = localize(
        &snippet("zenoss-command.txt"),
        "zenoss-command.txt",
        &config,
    );
    let clear = localize(
        &snippet("zenoss-clear-command.txt"),
        "zenoss-clear-command.txt",
        &config,
    );
    let critical = fixture("zenoss/event-critical.json");
    let cleared = fixture("zenoss/event-cleared.json");
    let evid = critical["evid"].as_str().unwrap();
    let key = critical["pdServiceKey"].as_str().unwrap();
    assert_eq!(cleared["evid"], evid, "the clear runs for the same event");

    // What the command passes is what command-fields.json says Zenoss gives it.
    let passed = fixture("zenoss/command-fields.json");
    for field in tales_fields(&command) {
        assert_eq!(
            passed.get(&field).and_then(Value::as_str),
            Some(zenoss_text(critical.get(&field)).as_str()),
            "zenoss-command.txt passes {field}: command-fields.json has it as the command gets it"
        );
    }

    // The transform sets the fields the commands pass; its routing key is the one that routes.
    let transform = snippet("zenoss-transform.py");
    let set: Vec<&str> = transform
        .lines()
        .filter_map(|l| l.trim().strip_prefix("evt.")?.split_once('='))
        .map(|(field, _)| field.trim())
        .collect();
    assert!(
        set.contains(&"pdServiceKey"),
        "zenoss-transform.py sets evt.pdServiceKey: {set:?}"
    );
    for field in &set {
        for (name, text) in [
            ("zenoss-command.txt", &command),
            ("zenoss-clear-command.txt", &clear),
        ] {
            assert!(
                text.contains(&format!("--field '{field}=${{evt/{field}}}'")),
                "{name} passes the field zenoss-transform.py sets: {field}"
            );
        }
    }
    assert!(
        transform.contains("evt.summary") && transform.contains(r#".replace("'""#),
        "zenoss-transform.py replaces the single quotes of the summary (the commands quote \
         fields with them)"
    );

    let out = sh(&expand_tales(&command, &critical), tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("{evid}\n"), "the dedup key: the evid");
    let out = sh(&expand_tales(&clear, &cleared), tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("{evid}\n"), "the clear's key: the same");

    let records = stored(tmp.path()).await;
    let got: Vec<(String, String)> = records.iter().map(action_and_key).collect();
    assert_eq!(
        got,
        [
            ("trigger".to_owned(), evid.to_owned()),
            ("resolve".to_owned(), evid.to_owned())
        ]
    );
    for r in &records {
        assert_eq!(body(r)["routing_key"], key, "from pdServiceKey");
        assert_eq!(r.source, "send zenoss");
    }
    let trigger = body(&records[0]);
    assert_eq!(trigger["client"], "Zenoss");
    let payload = &trigger["payload"];
    assert_eq!(payload["source"], critical["device"], "{trigger}");
    assert_eq!(payload["component"], critical["component"], "{trigger}");
    assert_eq!(payload["severity"], "critical", "{trigger}");
    assert_eq!(
        payload["summary"],
        format!(
            "Critical: {}/{} - {}",
            zenoss_text(critical.get("device")),
            zenoss_text(critical.get("component")),
            zenoss_text(critical.get("summary"))
        )
    );
    let details = &payload["custom_details"];
    for field in ["eventClass", "count", "prodState"] {
        assert_eq!(
            details[field],
            zenoss_text(critical.get(field)),
            "{field}: {trigger}"
        );
    }
}

#[tokio::test]
async fn zenoss_fields_with_shell_metacharacters_arrive_unchanged() {
    // A summary as zenoss-transform.py leaves it (its quotes replaced): everything else a
    // summary may hold stays literal inside the commands' single quotes.
    const SUMMARY: &str =
        r#"Interface "eth0" down: $HOME `id` $(id) a|b & c; <x> > ~y (*) \\srv\share owner’s C:\"#;
    let tmp = TempDir::new().unwrap();
    let config = write_outbox_config(tmp.path());
    let command = localize(
        &snippet("zenoss-command.txt"),
        "zenoss-command.txt",
        &config,
    );
    let mut event = fixture("zenoss/event-critical.json");
    event["summary"] = json!(SUMMARY);
    let out = sh(&expand_tales(&command, &event), tmp.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let records = stored(tmp.path()).await;
    assert_eq!(records.len(), 1);
    let ev = body(&records[0]);
    assert_eq!(ev["payload"]["custom_details"]["summary"], SUMMARY, "{ev}");
    assert!(
        ev["payload"]["summary"]
            .as_str()
            .unwrap()
            .ends_with(SUMMARY),
        "{ev}"
    );
}

// ---------------------------------------------------------------------------------------------
// Generic JSON, Grafana, Guance
// ---------------------------------------------------------------------------------------------

/// The first `[[sources]]` of a configuration snippet.
fn documented_source(name: &str) -> toml::Table {
    let table: toml::Table = snippet(name)
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let sources = table["sources"].as_array().expect("[[sources]]");
    assert_eq!(sources.len(), 1, "{name}: one source");
    sources[0].as_table().unwrap().clone()
}

/// The route a source listens on (`/ingest/<name>` unless `path` says otherwise).
fn source_path(source: &toml::Table) -> String {
    match source.get("path") {
        Some(p) => p.as_str().unwrap().to_owned(),
        None => format!("/ingest/{}", source["name"].as_str().unwrap()),
    }
}

/// The environment variable a source's `auth = { bearer = { env = ... } }` reads.
fn bearer_env(source: &toml::Table, name: &str) -> String {
    source
        .get("auth")
        .and_then(|a| a.get("bearer"))
        .and_then(|b| b.get("env"))
        .and_then(|e| e.as_str())
        .unwrap_or_else(|| panic!("{name}: auth = {{ bearer = {{ env = ... }} }}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_json_curl_example_opens_an_incident() {
    let Some(_curl) = pagerbridge_testkit::debian::installed_or_skip("curl", &["curl"]) else {
        return;
    };
    const TOKEN: &str = "snippet-test-token-5d1c";
    let source = documented_source("generic-json-pagerbridge.toml");
    let token_env = bearer_env(&source, "generic-json-pagerbridge.toml");
    let path = source_path(&source);
    let curl = snippet("generic-json-curl.sh");
    assert!(
        curl.contains(&format!("Bearer ${token_env}")),
        "generic-json-curl.sh sends the token the source reads from {token_env}:\n{curl}"
    );
    assert!(
        curl.contains(&format!("{URL_PLACEHOLDER}{path} ")),
        "generic-json-curl.sh posts to the source's route {path}:\n{curl}"
    );
    assert!(
        curl.contains("@uptime-down.json"),
        "generic-json-curl.sh posts uptime-down.json, which the test provides:\n{curl}"
    );

    let pd = TestPd::start().await;
    let tmp = TempDir::new().unwrap();
    let config = write_config(tmp.path(), &pd);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[routing]\ndefault_routing_key = \"{DEMO_ROUTING_KEY}\"\n\n{}",
        snippet("generic-json-pagerbridge.toml")
    ));
    std::fs::write(&config, text).unwrap();
    let (_daemon, url) = start_daemon_env(&config, &[(&token_env, TOKEN)]);

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::copy(
        repo_path("crates/ingest/tests/fixtures/generic/uptime-down.json"),
        work.join("uptime-down.json"),
    )
    .unwrap();
    let script = substitute(&curl, "generic-json-curl.sh", URL_PLACEHOLDER, &url);
    let out = sh(&script, &work, &[(&token_env, TOKEN)]);
    assert_eq!(out.code, 0, "curl: {}{}", out.stdout, out.stderr);
    let answer: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("curl prints the daemon's JSON answer ({e}): {}", out.stdout));
    assert_eq!(answer["status"], "accepted", "{answer}");
    let key = answer["results"][0]["dedup_keys"][0]
        .as_str()
        .unwrap_or_else(|| panic!("the answer names the dedup key: {answer}"))
        .to_owned();
    assert_eq!(key, "uptime/mon_8f2k1x", "the mapping's dedup_key");
    wait_incident(&pd, &key, IncidentStatus::Triggered).await;
    assert_eq!(
        incident_titles(&pd).await,
        ["Checkout API is DOWN: HTTP 503 Service Unavailable"],
        "the mapping's summary"
    );
}

/// `key: value` pairs of a YAML file, by a line scan: comments skipped, list dashes and quotes
/// taken off.
fn yaml_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

fn yaml_value<'a>(pairs: &'a [(String, String)], key: &str, name: &str) -> &'a str {
    let found: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{name}: one {key:?}: {found:?}");
    found[0]
}

/// `pagerbridge config check` of a configuration holding the snippet.
fn config_check(name: &str, env: &[(&str, &str)]) {
    let tmp = TempDir::new().unwrap();
    let config = tmp.path().join("pagerbridge.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = \"data\"\n\n{}", snippet(name)),
    )
    .unwrap();
    let out = pb_env(
        &["config", "check", "--config", config.to_str().unwrap()],
        env,
    );
    assert_eq!(out.code, 0, "{name}: {}{}", out.stdout, out.stderr);
}

#[test]
fn grafana_and_guance_post_to_the_routes_their_sources_listen_on() {
    // Grafana: the contact point's URL, method and credentials.
    let name = "grafana-contact-point.yaml";
    let source = documented_source("grafana-pagerbridge.toml");
    assert_eq!(source["kind"].as_str(), Some("grafana"));
    let token_env = bearer_env(&source, "grafana-pagerbridge.toml");
    assert_eq!(
        token_env, "PAGERBRIDGE_GRAFANA_TOKEN",
        "the token variable grafana.md documents"
    );
    let pairs = yaml_pairs(&snippet(name));
    let url = yaml_value(&pairs, "url", name);
    let route = url
        .strip_prefix(URL_PLACEHOLDER)
        .unwrap_or_else(|| panic!("{name}: the URL {url:?} starts with {URL_PLACEHOLDER}"));
    assert_eq!(route, source_path(&source), "{name}: the source's route");
    assert_eq!(yaml_value(&pairs, "type", name), "webhook", "{name}");
    assert_eq!(yaml_value(&pairs, "httpMethod", name), "POST", "{name}");
    assert_eq!(
        yaml_value(&pairs, "authorization_scheme", name),
        "Bearer",
        "{name}: the source takes a bearer token"
    );
    assert_eq!(
        yaml_value(&pairs, "authorization_credentials", name),
        format!("${token_env}"),
        "{name}: the token the source reads from {token_env}"
    );
    assert_eq!(
        yaml_value(&pairs, "disableResolveMessage", name),
        "false",
        "{name}: resolved notifications are what resolve incidents"
    );
    config_check("grafana-pagerbridge.toml", &[(&token_env, "t")]);

    // Guance: the notification target's URL; the source asks for no credentials, which the
    // target's steps do not give.
    let name = "guance-webhook.txt";
    let source = documented_source("guance-pagerbridge.toml");
    assert_eq!(source["kind"].as_str(), Some("guance"));
    assert!(
        source.get("auth").is_none(),
        "guance-pagerbridge.toml asks for credentials that {name} does not configure"
    );
    let text = snippet(name);
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("Webhook URL:"))
        .map(|(_, v)| v.trim())
        .collect();
    assert_eq!(urls.len(), 1, "{name}: one Webhook URL");
    let route = urls[0].strip_prefix(URL_PLACEHOLDER).unwrap_or_else(|| {
        panic!(
            "{name}: the URL {:?} starts with {URL_PLACEHOLDER}",
            urls[0]
        )
    });
    assert_eq!(route, source_path(&source), "{name}: the source's route");
    config_check("guance-pagerbridge.toml", &[]);
}
