//! The write-back snippets of `docs/integrations/snippets/*-writeback.toml`: each loads as
//! pagerbridge loads its configuration (secrets from a stand-in environment), its monitor does
//! what the page's table says (the default and the "configurable to" columns), and each page
//! shows its snippets exactly as the files are, so the page and the tested file cannot drift.

use std::path::Path;

use pagerbridge_config::Config;
use pagerbridge_sync::writeback::{Action, Kind, Policy};

use super::repo_root;

/// A CA certificate for `ca_file` (self-signed, never used to connect): `ca_file` is read and
/// parsed when the configuration loads.
const TEST_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUCat1lceULFlXKf0dXc/S6zjJOxAwCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwad3JpdGViYWNrLXNuaXBwZXRzIHRlc3QgQ0EwIBcNMjYxMTIx
MDkzMTEyWhgPMjEyNjEwMjgwOTMxMTJaMCUxIzAhBgNVBAMMGndyaXRlYmFjay1z
bmlwcGV0cyB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEybTXcV3Z
0i+nWD7Oq3aL+4Rx0etB3odX80bLo33PXdW9OQsm12N7bBNiL6T0ObEo9eMQ4tHW
dDgUVYAdY49og6NTMFEwHQYDVR0OBBYEFLEbvrPExA4JqadnHh2/MnY8GvaMMB8G
A1UdIwQYMBaAFLEbvrPExA4JqadnHh2/MnY8GvaMMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDRwAwRAIgV/XxDPBe3ujWsVDO/BL7u+5ngtS1yVn2PWLncPyz
KrsCIHRh69j2Kq+gX6pFEGtzDkIwreCgGZRqwQXGWYTui0u+
-----END CERTIFICATE-----
";

/// Where the snippets' relative `ca_file` points (relative to the configuration's directory).
const CA_FILE_NAME: &str = "icinga2-ca.crt";

const ACK: Option<Action> = Some(Action::Acknowledge);
const UNACK: Option<Action> = Some(Action::Unacknowledge);
const COMMENT: Option<Action> = Some(Action::Comment);
const RESOLVE: Option<Action> = Some(Action::Resolve);
const NOTHING: Option<Action> = None;

/// One snippet, and what its page says about it.
struct Snippet {
    file: &'static str,
    /// The page that shows it.
    page: &'static str,
    kind: Kind,
    sources: &'static [&'static str],
    /// The table's "then in <monitor>" column.
    policy: Policy,
    /// Whether that column is the kind's default (the page says "(default)").
    is_default: bool,
    /// The table's "configurable to" column, with the value the snippet sets, per field:
    /// on_acknowledge, on_unacknowledge, on_annotate, on_resolve.
    allowed: [&'static [&'static str]; 4],
    /// The secrets the snippet reads from the environment, and which setting each becomes.
    secrets: &'static [(&'static str, Secret)],
}

#[derive(Clone, Copy, Debug)]
enum Secret {
    Password,
    Token,
}

const FIELDS: [&str; 4] = [
    "on_acknowledge",
    "on_unacknowledge",
    "on_annotate",
    "on_resolve",
];
const VALUES: [&str; 5] = [
    "acknowledge",
    "unacknowledge",
    "comment",
    "resolve",
    "nothing",
];

/// The Nagios family: no resolve, everything else.
const COMMAND_FILE_ALLOWED: [&[&str]; 4] = [
    &["acknowledge", "comment", "nothing"],
    &["unacknowledge", "comment", "nothing"],
    &["comment", "nothing"],
    &["comment", "nothing"],
];
/// Monitors that can close a problem: every value of each field.
const ALL_ALLOWED: [&[&str]; 4] = [
    &["acknowledge", "comment", "nothing"],
    &["unacknowledge", "comment", "nothing"],
    &["comment", "nothing"],
    &["resolve", "comment", "nothing"],
];
const NAGIOS_FAMILY_POLICY: Policy = Policy {
    on_acknowledge: ACK,
    on_unacknowledge: UNACK,
    on_annotate: COMMENT,
    on_resolve: COMMENT,
};
const WEBHOOK_POLICY: Policy = Policy {
    on_acknowledge: ACK,
    on_unacknowledge: UNACK,
    on_annotate: COMMENT,
    on_resolve: RESOLVE,
};

fn external_command(file: &'static str, page: &'static str, source: &'static str) -> Snippet {
    Snippet {
        file,
        page,
        kind: Kind::ExternalCommand,
        sources: match source {
            "nagios" => &["nagios"],
            "naemon" => &["naemon"],
            "openitcockpit" => &["openitcockpit"],
            "centreon_engine" => &["centreon_engine"],
            other => panic!("{other}"),
        },
        policy: NAGIOS_FAMILY_POLICY,
        is_default: true,
        allowed: COMMAND_FILE_ALLOWED,
        secrets: &[],
    }
}

fn webhook(
    file: &'static str,
    page: &'static str,
    sources: &'static [&'static str],
    secrets: &'static [(&'static str, Secret)],
) -> Snippet {
    Snippet {
        file,
        page,
        kind: Kind::Webhook,
        sources,
        policy: WEBHOOK_POLICY,
        // on_resolve is set to resolve: the page says so, and that the default is comment.
        is_default: false,
        allowed: ALL_ALLOWED,
        secrets,
    }
}

fn snippets() -> Vec<Snippet> {
    vec![
        Snippet {
            file: "icinga2-writeback.toml",
            page: "icinga2.md",
            kind: Kind::Icinga2,
            sources: &["icinga2"],
            policy: NAGIOS_FAMILY_POLICY,
            is_default: true,
            allowed: COMMAND_FILE_ALLOWED,
            secrets: &[("ICINGA2_API_PASSWORD", Secret::Password)],
        },
        external_command("nagios-writeback.toml", "nagios.md", "nagios"),
        external_command("naemon-writeback.toml", "naemon.md", "naemon"),
        external_command(
            "openitcockpit-writeback.toml",
            "openitcockpit.md",
            "openitcockpit",
        ),
        external_command(
            "centreon-engine-writeback.toml",
            "centreon.md",
            "centreon_engine",
        ),
        Snippet {
            file: "centreon-writeback.toml",
            page: "centreon.md",
            kind: Kind::Centreon,
            sources: &["centreon_broker"],
            policy: NAGIOS_FAMILY_POLICY,
            is_default: true,
            allowed: COMMAND_FILE_ALLOWED,
            secrets: &[("CENTREON_API_PASSWORD", Secret::Password)],
        },
        Snippet {
            file: "zabbix-writeback.toml",
            page: "zabbix.md",
            kind: Kind::Zabbix,
            sources: &["zabbix"],
            policy: NAGIOS_FAMILY_POLICY,
            is_default: true,
            allowed: ALL_ALLOWED,
            secrets: &[("ZABBIX_API_TOKEN", Secret::Token)],
        },
        Snippet {
            file: "zenoss-writeback.toml",
            page: "zenoss.md",
            kind: Kind::Zenoss,
            sources: &["zenoss"],
            policy: NAGIOS_FAMILY_POLICY,
            is_default: true,
            allowed: ALL_ALLOWED,
            secrets: &[("ZENOSS_PASSWORD", Secret::Password)],
        },
        Snippet {
            file: "alertmanager-writeback.toml",
            page: "alertmanager.md",
            kind: Kind::Alertmanager,
            sources: &["alertmanager"],
            policy: Policy {
                on_acknowledge: ACK,
                on_unacknowledge: UNACK,
                on_annotate: NOTHING,
                on_resolve: RESOLVE,
            },
            is_default: true,
            allowed: [
                &["acknowledge", "nothing"],
                &["unacknowledge", "nothing"],
                &["nothing"],
                &["resolve", "nothing"],
            ],
            secrets: &[],
        },
        webhook(
            "grafana-writeback.toml",
            "grafana.md",
            &["grafana"],
            &[("GRAFANA_WRITEBACK_TOKEN", Secret::Token)],
        ),
        webhook(
            "guance-writeback.toml",
            "guance.md",
            &["guance"],
            &[("GUANCE_WRITEBACK_TOKEN", Secret::Token)],
        ),
        webhook(
            "generic-json-writeback.toml",
            "generic-json.md",
            &["uptime"],
            &[("UPTIME_WRITEBACK_TOKEN", Secret::Token)],
        ),
    ]
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn snippet_text(file: &str) -> String {
    read(&format!("docs/integrations/snippets/{file}"))
}

/// A stand-in for the process environment: every variable is set, to `fake-<NAME>`.
fn fake_env(name: &str) -> Option<String> {
    Some(format!("fake-{name}"))
}

/// Loads `text` as `/etc/pagerbridge/pagerbridge.toml` would be, from a directory holding the
/// files the snippets name relative to the configuration (Icinga's CA). The command files need
/// not exist at load: `external_command` only requires an absolute path, and a missing command
/// file is a write-back failure that is retried.
fn load(text: &str, origin: &str, dir: &Path) -> Result<Config, String> {
    Config::from_str_with_env(text, origin, dir, &fake_env).map_err(|e| e.to_string())
}

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CA_FILE_NAME), TEST_CA).unwrap();
    dir
}

#[test]
fn every_writeback_snippet_file_is_tested() {
    let dir = repo_root().join("docs/integrations/snippets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("-writeback.toml"))
        .collect();
    files.sort();
    let mut tested: Vec<String> = snippets().iter().map(|s| s.file.to_owned()).collect();
    tested.sort();
    assert_eq!(
        files, tested,
        "a snippet without a test, or a test without a file"
    );
}

#[test]
fn the_writeback_snippets_load_and_do_what_the_pages_say() {
    let dir = config_dir();
    for s in snippets() {
        let text = snippet_text(s.file);
        let config = load(&text, s.file, dir.path())
            .unwrap_or_else(|e| panic!("{} does not load:\n{e}", s.file));

        let w = &config.sync.webhooks;
        assert_eq!(w.path, "/webhooks/pagerduty", "{}", s.file);
        assert_eq!(w.secrets.len(), 1, "{}", s.file);
        assert_eq!(
            w.secrets[0].expose(),
            "fake-PAGERDUTY_WEBHOOK_SECRET",
            "{}: the signing secret comes from the environment",
            s.file
        );

        assert_eq!(config.monitors.len(), 1, "{}: one monitor", s.file);
        let m = &config.monitors[0];
        assert_eq!(m.writeback_kind(), s.kind, "{}", s.file);
        assert_eq!(m.source_list(), s.sources, "{}", s.file);
        assert_eq!(m.policy(), s.policy, "{}: the page's table", s.file);
        assert_eq!(
            m.policy() == s.kind.default_policy(),
            s.is_default,
            "{}: the page says whether its table is the default",
            s.file
        );
        if s.kind != Kind::Webhook {
            // What the snippet lists is among the sources the kind takes by default.
            let mut without = m.clone();
            without.sources = None;
            let defaults = without.source_list();
            assert!(
                s.sources.iter().all(|k| defaults.iter().any(|d| d == k)),
                "{}: {:?} are not among the kind's own sources {defaults:?}",
                s.file,
                s.sources
            );
        }

        let settings = m.settings();
        for (var, field) in s.secrets {
            let got = match field {
                Secret::Password => settings.password.clone(),
                Secret::Token => settings.token.clone(),
            };
            assert_eq!(
                got.as_deref(),
                Some(format!("fake-{var}").as_str()),
                "{}: {field:?} comes from {var}",
                s.file
            );
        }
        if s.kind == Kind::ExternalCommand {
            let cmd = settings.command_file.expect("command_file");
            assert!(cmd.is_absolute(), "{}: {cmd:?}", s.file);
        }
        if s.kind == Kind::Icinga2 {
            assert_eq!(
                settings.ca_file.as_deref(),
                Some(dir.path().join(CA_FILE_NAME).as_path()),
                "{}: ca_file is relative to the configuration's directory",
                s.file
            );
        }
    }
}

/// The "configurable to" column: each value listed loads, every other is refused at load.
#[test]
fn the_writeback_tables_list_what_each_monitor_accepts() {
    let dir = config_dir();
    for s in snippets() {
        let text = snippet_text(s.file);
        for (field, allowed) in FIELDS.iter().zip(s.allowed) {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{field} = ")))
                .unwrap_or_else(|| panic!("{}: no {field} line", s.file));
            for value in VALUES {
                let changed = text.replace(line, &format!("{field} = \"{value}\""));
                let loaded = load(&changed, s.file, dir.path());
                assert_eq!(
                    loaded.is_ok(),
                    allowed.contains(&value),
                    "{}: {field} = {value:?}: {loaded:?}",
                    s.file
                );
            }
        }
        // Each kind's table matches what the kind supports.
        let supported = |a: Action| s.kind.supports(a);
        assert_eq!(
            s.allowed[3].contains(&"resolve"),
            supported(Action::Resolve),
            "{}",
            s.file
        );
        assert_eq!(
            s.allowed[2].contains(&"comment"),
            supported(Action::Comment),
            "{}",
            s.file
        );
    }
}

#[test]
fn each_page_shows_its_writeback_snippets_verbatim() {
    for s in snippets() {
        let page = read(&format!("docs/integrations/{}", s.page));
        let text = snippet_text(s.file);
        assert!(
            page.contains(&format!("```toml\n{text}```\n")),
            "docs/integrations/{} does not show snippets/{} verbatim in a ```toml block",
            s.page,
            s.file
        );
        assert!(
            page.contains(&format!("`docs/integrations/snippets/{}`", s.file)),
            "docs/integrations/{} does not name snippets/{}",
            s.page,
            s.file
        );
        assert!(
            page.contains("## Write-back") || page.contains("### Write-back"),
            "docs/integrations/{} has no write-back section",
            s.page
        );
    }
}
