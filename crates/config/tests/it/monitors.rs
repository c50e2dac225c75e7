//! `[sync]` and `[[monitors]]`: the way back is checked at load like everything else, each
//! problem with its line and field.

use pagerbridge_sync::writeback::Action;

use super::{parse, problems};

#[test]
fn monitors_take_their_kinds_defaults_and_the_operators_overrides() {
    let c = parse(
        r#"
[[monitors]]
name = "icinga"
kind = "icinga2"
url = "https://127.0.0.1:5665"
username = "pagerbridge"
password = "s3cret"
on_annotate = "nothing"

[[monitors]]
name = "nagios"
kind = "external_command"
command_file = "rw/nagios.cmd"

[[monitors]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
sources = ["prod-alertmanager"]
"#,
    )
    .unwrap();
    let icinga = &c.monitors[0];
    assert_eq!(icinga.source_list(), ["icinga2"]);
    let p = icinga.policy();
    assert_eq!(p.on_acknowledge, Some(Action::Acknowledge));
    assert_eq!(p.on_annotate, None, "overridden to nothing");
    assert_eq!(p.on_resolve, Some(Action::Comment), "Icinga cannot resolve");
    assert_eq!(icinga.settings().password.as_deref(), Some("s3cret"));

    let nagios = &c.monitors[1];
    assert_eq!(
        nagios.source_list(),
        ["nagios", "naemon", "centreon_engine", "openitcockpit"]
    );
    let cmd = nagios.settings().command_file.unwrap();
    assert!(cmd.is_absolute(), "relative to the file: {cmd:?}");
    assert!(cmd.ends_with("rw/nagios.cmd"));

    let am = &c.monitors[2];
    assert_eq!(am.source_list(), ["prod-alertmanager"]);
    assert_eq!(am.policy().on_resolve, Some(Action::Resolve));
    assert_eq!(
        am.policy().on_annotate,
        None,
        "Alertmanager has no comments"
    );
}

#[test]
fn monitor_mistakes_name_the_field() {
    let got = problems(
        r#"
[[monitors]]
name = "a b"
kind = "icinga"

[[monitors]]
name = "icinga"
kind = "icinga2"
on_resolve = "resolve"
on_acknowledge = "ack"

[[monitors]]
name = "hook"
kind = "webhook"
url = "not a url"
"#,
    );
    let has = |needle: &str| got.iter().any(|p| p.contains(needle));
    assert!(has("monitors[0].name: \"a b\" must be letters"), "{got:#?}");
    assert!(
        has("monitors[0].kind: \"icinga\" is not a monitor kind"),
        "{got:#?}"
    );
    assert!(
        has("monitors[1].on_resolve: icinga2 cannot resolve a problem"),
        "{got:#?}"
    );
    assert!(
        has("monitors[1].on_acknowledge: \"ack\" is not one of: acknowledge, comment, nothing"),
        "{got:#?}"
    );
    assert!(has("monitors[1].url"), "Icinga needs its URL: {got:#?}");
    assert!(
        has("monitors[2].sources: a webhook monitor must name"),
        "{got:#?}"
    );
    assert!(
        has("monitors[2].url: \"not a url\" is not a URL"),
        "{got:#?}"
    );
    assert!(
        got.iter().all(|p| p.starts_with("pagerbridge.toml:")),
        "every problem has its line: {got:#?}"
    );
}

#[test]
fn sync_settings_are_checked() {
    let got = problems(
        r#"
[sync.webhooks]
path = "/hooks"
secrets = ["old", "new"]
legacy_secret = "short"

[sync.poller]
interval = "1s"

[sync.writeback]
initial_backoff = "1m"
max_backoff = "10s"
"#,
    );
    let has = |needle: &str| got.iter().any(|p| p.contains(needle));
    assert!(
        has("sync.webhooks.path: \"/hooks\" must be a path under /webhooks/"),
        "{got:#?}"
    );
    assert!(!has("secrets"), "{got:#?}");
    assert!(
        has("sync.webhooks.legacy_secret: must be at least 16"),
        "{got:#?}"
    );
    assert!(has("sync.poller.interval: must be at least 5s"), "{got:#?}");
    assert!(
        has("sync.writeback.max_backoff: must be at least"),
        "{got:#?}"
    );

    assert_eq!(
        problems("[sync.webhooks]\nsecrets = [\"\"]\n"),
        ["pagerbridge.toml:2:12: sync.webhooks.secrets[0]: secret must not be empty"]
    );

    let ok =
        parse("[sync.webhooks]\nsecrets = [\"old-secret\", { env = \"PD_WEBHOOK_SECRET\" }]\n");
    let err = ok.unwrap_err().to_string();
    assert!(
        err.contains("sync.webhooks.secrets[1]") && err.contains("PD_WEBHOOK_SECRET"),
        "an unset env secret is named: {err}"
    );
}

#[test]
fn polling_needs_the_rest_api_token() {
    let got = problems("[sync.poller]\nenabled = true\n");
    assert_eq!(
        got,
        [
            "pagerbridge.toml:2:11: sync.poller.enabled: polling reads PagerDuty's REST API: set pagerduty.api_token"
        ]
    );
    assert!(parse("[pagerduty]\napi_token = \"t\"\n[sync.poller]\nenabled = true\n").is_ok());
}

/// `pagerbridge send` runs as the monitor's user, in the monitor's environment: what only the
/// daemon uses (its secrets, the monitors' CA files) must not stop it from storing an alert.
#[test]
fn one_shot_commands_do_not_read_what_only_the_daemon_uses() {
    use pagerbridge_config::{Config, Purpose};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerbridge.toml");
    std::fs::write(
        &path,
        r#"
[pagerduty]
api_token = { env = "PAGERBRIDGE_TEST_UNSET_TOKEN" }

[[sources]]
name = "am"
kind = "alertmanager"
auth = { bearer = { env = "PAGERBRIDGE_TEST_UNSET_BEARER" } }

[sync.webhooks]
secrets = [{ env = "PAGERBRIDGE_TEST_UNSET_WEBHOOK" }]

[[monitors]]
name = "icinga"
kind = "icinga2"
url = "https://127.0.0.1:5665"
username = "pagerbridge"
password = "inline"
ca_file = "no-such-ca.crt"

[[monitors]]
name = "zabbix"
kind = "zabbix"
url = "https://127.0.0.1/zabbix"
token = { env = "PAGERBRIDGE_TEST_UNSET_TOKEN2" }
"#,
    )
    .unwrap();
    let config = Config::load_for(&path, Purpose::Enqueue).expect("enough to store alerts");
    assert_eq!(config.sources[0].name, "am");
    assert_eq!(config.monitors[0].name, "icinga");

    let err = Config::load_for(&path, Purpose::Daemon)
        .unwrap_err()
        .to_string();
    for field in [
        "pagerduty.api_token",
        "sources[0].auth.bearer",
        "sync.webhooks.secrets[0]",
        "monitors[1].token",
    ] {
        assert!(err.contains(field), "the daemon needs {field}: {err}");
    }
    assert!(err.contains("no-such-ca.crt"), "{err}");

    // Mistakes of shape are still mistakes, whatever the purpose.
    std::fs::write(&path, "[[monitors]]\nname = \"x\"\nkind = \"nagios\"\n").unwrap();
    let err = Config::load_for(&path, Purpose::Enqueue)
        .unwrap_err()
        .to_string();
    assert!(err.contains("monitors[0].kind"), "{err}");
}
