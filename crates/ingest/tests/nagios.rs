//! The Nagios family decoder against notifications captured from real Nagios 4.4 and Icinga 2.13
//! running the snippets of `docs/integrations/snippets/` (see `tests/fixtures/nagios/README.md`).

mod common;

use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerbridge_ingest::nagios::{self, Macros};
use pagerbridge_ingest::{Alert, AlertState, MonitorRef, SourceKind};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// A captured notification, `tests/fixtures/{dir}/{name}.json`.
fn notification(dir: &str, name: &str) -> Value {
    common::fixture_json(dir, &format!("{name}.json"))
}

/// The command line the monitor ran (`pagerbridge send --source K --flag value ...`), as the
/// `send` command will hand it to the decoder.
fn argv_macros(v: &Value) -> (SourceKind, Macros) {
    let argv: Vec<&str> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&argv[..2], ["send", "--source"]);
    let kind = SourceKind::parse(argv[2]).unwrap();
    let rest = &argv[3..];
    assert_eq!(rest.len() % 2, 0, "every flag has a value: {rest:?}");
    let pairs = rest.chunks(2).map(|c| (c[0], c[1]));
    (kind, nagios::macros_from_flags(pairs).unwrap())
}

fn env_macros(v: &Value) -> Macros {
    let env = v["env"].as_object().expect("fixture has the environment");
    nagios::macros_from_env(
        env.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
    )
}

fn decode_argv(dir: &str, name: &str) -> Alert {
    let (kind, m) = argv_macros(&notification(dir, name));
    nagios::decode_macros(kind, &m).unwrap()
}

fn ts(secs: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(secs).unwrap())
}

fn object_ref(
    host: &str,
    service: Option<&str>,
    id: Option<&str>,
    last: Option<&str>,
) -> MonitorRef {
    MonitorRef::Object {
        host: host.into(),
        service: service.map(Into::into),
        problem_id: id.map(Into::into),
        last_problem_id: last.map(Into::into),
    }
}

#[test]
fn nagios_service_problem_decodes_exactly() {
    let a = decode_argv("nagios", "service_problem");
    assert_eq!(a.source, SourceKind::Nagios);
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("CRITICAL"));
    assert_eq!(
        a.summary,
        "CRITICAL: db1/Disk / - DISK CRITICAL - free space: / 100 MB (5% inode=80%)"
    );
    assert_eq!(a.dedup_hint, "db1/Disk /");
    assert_eq!(a.entity.host.as_deref(), Some("db1"));
    assert_eq!(a.entity.service.as_deref(), Some("Disk /"));
    assert!(a.entity.labels.is_empty());
    assert_eq!(
        a.monitor_ref,
        object_ref("db1", Some("Disk /"), Some("1"), None)
    );
    assert_eq!(a.routing_key.as_deref(), Some(KEY));
    assert_eq!(a.client.as_deref(), Some("Nagios"));
    assert_eq!(a.author, None);
    assert_eq!(a.comment, None);
    assert_eq!(a.severity, None);
    assert_eq!(a.occurred_at, ts(1_795_248_861));
    assert_eq!(a.started_at, ts(1_795_248_861));
    assert_eq!(
        Value::Object(a.details),
        json!({
            "notification_type": "PROBLEM",
            "state": "CRITICAL",
            "output": "DISK CRITICAL - free space: / 100 MB (5% inode=80%)",
            "problem_id": "1",
            "host_address": "10.0.0.5",
            "host_alias": "Database server 1",
            "service_display_name": "Root disk",
            "host_state": "UP",
            "perfdata": {"/": {"value": 900.0, "unit": "MB", "warn": 800.0, "crit": 900.0, "min": 0.0, "max": 1000.0}},
            "macros": {"LASTSERVICESTATECHANGE": "1795248861", "TIMET": "1795248861"}
        })
    );
}

#[test]
fn nagios_acknowledgement_carries_author_and_comment() {
    let a = decode_argv("nagios", "service_acknowledgement");
    assert_eq!(a.state, AlertState::Acknowledgement);
    assert_eq!(a.status.as_deref(), Some("CRITICAL"));
    assert_eq!(a.author.as_deref(), Some("alice"));
    assert_eq!(a.comment.as_deref(), Some("Looking into it, see INC-42"));
    assert_eq!(
        a.monitor_ref,
        object_ref("db1", Some("Disk /"), Some("1"), None)
    );
    assert_eq!(
        a.summary,
        "CRITICAL: db1/Disk / - DISK CRITICAL - free space: / 90 MB (4% inode=80%)"
    );
    assert_eq!(a.details["perfdata"]["/"]["value"], json!(910.0));
}

#[test]
fn nagios_recovery_keeps_the_problem_id_it_ends() {
    let a = decode_argv("nagios", "service_recovery");
    assert_eq!(a.state, AlertState::Recovery);
    assert_eq!(a.status.as_deref(), Some("OK"));
    assert_eq!(
        a.summary,
        "OK: db1/Disk / - DISK OK - free space: / 600 MB (60% inode=80%)"
    );
    // Nagios 4.4 still reports the problem's id in its recovery.
    assert_eq!(
        a.monitor_ref,
        object_ref("db1", Some("Disk /"), Some("1"), None)
    );
    assert_eq!(a.started_at, None, "a recovery has no problem start");
}

#[test]
fn nagios_host_notifications_use_the_host_macros() {
    let a = decode_argv("nagios", "host_problem");
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("DOWN"));
    assert_eq!(
        a.summary,
        "DOWN: db1 - CRITICAL - 10.0.0.5: rta nan, lost 100%"
    );
    assert_eq!(a.dedup_hint, "db1");
    assert_eq!(a.entity.service, None);
    assert_eq!(a.monitor_ref, object_ref("db1", None, Some("8"), None));
    assert_eq!(
        a.details["perfdata"],
        json!({"pl": {"value": 100.0, "unit": "%", "warn": 40.0, "crit": 80.0, "min": 0.0}})
    );
    assert!(a.details.get("host_state").is_none());

    let r = decode_argv("nagios", "host_recovery");
    assert_eq!(r.state, AlertState::Recovery);
    assert_eq!(r.status.as_deref(), Some("UP"));
    assert_eq!(r.monitor_ref, object_ref("db1", None, None, Some("8")));
    assert_eq!(r.details["perfdata"]["rta"]["value"], json!(0.6));

    let k = decode_argv("nagios", "host_acknowledgement");
    assert_eq!(k.state, AlertState::Acknowledgement);
    assert_eq!(k.author.as_deref(), Some("dave"));
    assert_eq!(k.comment.as_deref(), Some("Power supply replaced"));
}

#[test]
fn nagios_other_notification_types() {
    let cases = [
        (
            "service_flapping_start",
            AlertState::FlappingStart,
            "FLAPPINGSTART OK: db1/HTTP - HTTP state 0 - flap 4",
        ),
        (
            "service_downtime_start",
            AlertState::DowntimeStart,
            "DOWNTIMESTART OK: db1/Disk / - DISK OK - free space: / 600 MB (60% inode=80%)",
        ),
        (
            "service_downtime_cancelled",
            AlertState::DowntimeCancelled,
            "DOWNTIMECANCELLED OK: db1/Disk / - DISK OK - free space: / 600 MB (60% inode=80%)",
        ),
        (
            "service_custom",
            AlertState::Custom,
            "CUSTOM OK: db1/Disk / - DISK OK - free space: / 600 MB (60% inode=80%)",
        ),
    ];
    for (name, state, summary) in cases {
        let a = decode_argv("nagios", name);
        assert_eq!(a.state, state, "{name}");
        assert_eq!(a.summary, summary, "{name}");
    }
    let c = decode_argv("nagios", "service_custom");
    assert_eq!(c.author.as_deref(), Some("bob"));
    assert_eq!(c.comment.as_deref(), Some("Test page from the runbook"));
    let f = decode_argv("nagios", "service_flapping_start");
    assert_eq!(f.dedup_hint, "db1/HTTP");
    assert_eq!(
        f.monitor_ref,
        object_ref("db1", Some("HTTP"), Some("3"), Some("2"))
    );
}

#[test]
fn icinga2_service_problem_decodes_exactly() {
    let a = decode_argv("icinga2", "service_problem");
    assert_eq!(a.source, SourceKind::Icinga2);
    assert_eq!(a.state, AlertState::Problem);
    assert_eq!(a.status.as_deref(), Some("WARNING"));
    assert_eq!(
        a.summary,
        "WARNING: db1/disk-root - DISK WARNING - free space: / 180 MB (18% inode=80%)"
    );
    assert_eq!(a.dedup_hint, "db1/disk-root");
    // Icinga 2 has no problem ids.
    assert_eq!(
        a.monitor_ref,
        object_ref("db1", Some("disk-root"), None, None)
    );
    assert_eq!(a.routing_key.as_deref(), Some(KEY));
    assert_eq!(a.client.as_deref(), Some("Icinga 2"));
    assert_eq!(a.author, None, "Icinga 2 passes an empty author");
    assert_eq!(a.occurred_at, ts(1_795_248_906));
    assert_eq!(
        Value::Object(a.details),
        json!({
            "notification_type": "PROBLEM",
            "state": "WARNING",
            "output": "DISK WARNING - free space: / 180 MB (18% inode=80%)",
            "host_address": "10.0.0.5",
            "host_display_name": "Database server 1",
            "service_display_name": "Disk /",
            "host_state": "UP",
            "perfdata": {"/": {"value": 820.0, "unit": "MB", "warn": 800.0, "crit": 900.0, "min": 0.0, "max": 1000.0}},
            "macros": {
                "LASTSERVICESTATECHANGE": "1795248906",
                "LONGDATETIME": "2026-11-21 08:15:06 +0000",
                "SERVICESTATETYPE": "HARD",
                "TIMET": "1795248906"
            }
        })
    );
}

#[test]
fn icinga2_notification_types_as_icinga_passes_them() {
    let cases = [
        ("service_problem_repeat", AlertState::Problem, "CRITICAL"),
        (
            "service_acknowledgement",
            AlertState::Acknowledgement,
            "CRITICAL",
        ),
        ("service_recovery", AlertState::Recovery, "OK"),
        ("service_custom", AlertState::Custom, "OK"),
        ("service_downtime_start", AlertState::DowntimeStart, "OK"),
        (
            "service_flapping_start",
            AlertState::FlappingStart,
            "CRITICAL",
        ),
        ("host_problem", AlertState::Problem, "DOWN"),
        ("host_acknowledgement", AlertState::Acknowledgement, "DOWN"),
        ("host_recovery", AlertState::Recovery, "UP"),
    ];
    for (name, state, status) in cases {
        let a = decode_argv("icinga2", name);
        assert_eq!(a.state, state, "{name}");
        assert_eq!(a.status.as_deref(), Some(status), "{name}");
    }
    let ack = decode_argv("icinga2", "service_acknowledgement");
    assert_eq!(ack.author.as_deref(), Some("alice"));
    assert_eq!(ack.comment.as_deref(), Some("Looking into it, see INC-42"));
    // The long date Icinga 2 writes has a numeric zone: it is the notification time when TIMET
    // is missing.
    let (kind, mut m) = argv_macros(&notification("icinga2", "service_acknowledgement"));
    m.remove("TIMET");
    let a = nagios::decode_macros(kind, &m).unwrap();
    assert_eq!(a.occurred_at, ts(1_795_248_918));
    let host = decode_argv("icinga2", "host_problem");
    assert_eq!(
        host.summary,
        "DOWN: db1 - CRITICAL - 10.0.0.5: rta nan, lost 100%"
    );
    assert_eq!(host.dedup_hint, "db1");
}

#[test]
fn one_problem_keeps_one_dedup_hint_from_problem_to_recovery() {
    for dir in ["nagios", "icinga2"] {
        let hints: Vec<String> = [
            "service_problem",
            "service_problem_repeat",
            "service_acknowledgement",
            "service_recovery",
        ]
        .into_iter()
        .map(|n| decode_argv(dir, n).dedup_hint)
        .collect();
        assert!(hints.iter().all(|h| *h == hints[0]), "{dir}: {hints:?}");
        let host: Vec<String> = ["host_problem", "host_acknowledgement", "host_recovery"]
            .into_iter()
            .map(|n| decode_argv(dir, n).dedup_hint)
            .collect();
        assert!(host.iter().all(|h| *h == host[0]), "{dir}: {host:?}");
        assert_ne!(
            hints[0], host[0],
            "{dir}: a host and its service are two problems"
        );
    }
}

#[test]
fn environment_form_agrees_with_the_command_line() {
    // Captured: Nagios ran the command line and exported NAGIOS_* for the same notification.
    // The environment holds every macro, so only `details.macros` may differ.
    for name in [
        "service_problem",
        "service_problem_repeat",
        "service_acknowledgement",
        "service_recovery",
        "service_custom",
        "service_downtime_start",
        "service_downtime_cancelled",
        "service_flapping_start",
        "host_problem",
        "host_acknowledgement",
        "host_recovery",
    ] {
        let v = notification("nagios", name);
        let (kind, m) = argv_macros(&v);
        let mut from_argv = nagios::decode_macros(kind, &m).unwrap();
        let mut from_env = nagios::decode_macros(SourceKind::Nagios, &env_macros(&v)).unwrap();
        let argv_macros = from_argv.details.remove("macros").unwrap();
        let env_macros = from_env.details.remove("macros").unwrap();
        for (k, val) in argv_macros.as_object().unwrap() {
            assert_eq!(env_macros.get(k), Some(val), "{name}: {k}");
        }
        // The environment also has the display name Nagios defaults to the host name.
        from_env.details.remove("host_display_name");
        assert_eq!(from_argv, from_env, "{name}");
    }
}

#[test]
fn environment_and_macro_forms_give_the_same_alert() {
    let (kind, m) = argv_macros(&notification("nagios", "service_problem"));
    let direct = nagios::decode_macros(kind, &m).unwrap();
    for prefix in nagios::ENV_PREFIXES {
        let mut env: Vec<(String, String)> = m
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect();
        env.push(("PATH".into(), "/usr/bin".into()));
        env.push(("HOME".into(), "/var/lib/nagios".into()));
        let from_env = nagios::decode_macros(kind, &nagios::macros_from_env(env)).unwrap();
        assert_eq!(from_env, direct, "{prefix}");
    }
}

#[test]
fn environment_ignores_unrelated_variables_and_empty_duplicates() {
    let env = [
        ("NAGIOS_HOSTNAME", "db1"),
        ("ICINGA_HOSTNAME", ""),
        ("NAGIOS_", "no name"),
        ("LANG", "C"),
        ("XNAGIOS_HOSTNAME", "wrong"),
        ("ICINGA_NOTIFICATIONTYPE", "PROBLEM"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let m = nagios::macros_from_env(env);
    assert_eq!(
        m,
        BTreeMap::from([
            ("HOSTNAME".to_owned(), "db1".to_owned()),
            ("NOTIFICATIONTYPE".to_owned(), "PROBLEM".to_owned()),
        ])
    );
}

#[test]
fn json_form_gives_the_same_alert() {
    let (kind, m) = argv_macros(&notification("icinga2", "service_acknowledgement"));
    let direct = nagios::decode_macros(kind, &m).unwrap();
    let mut obj = serde_json::Map::new();
    for (k, v) in &m {
        // Names as people write them in a posted form: any case, with the dollars.
        obj.insert(format!("${}$", k.to_lowercase()), Value::String(v.clone()));
    }
    obj.insert("$timet$".into(), json!(1_795_248_918));
    obj.insert("unused".into(), Value::Null);
    let body = serde_json::to_vec(&obj).unwrap();
    assert_eq!(nagios::decode(kind, &body).unwrap(), direct);
}

fn base() -> Macros {
    [
        ("NOTIFICATIONTYPE", "PROBLEM"),
        ("HOSTNAME", "web1"),
        ("SERVICEDESC", "HTTP"),
        ("SERVICESTATE", "critical"),
        ("SERVICEOUTPUT", "HTTP CRITICAL - 503\nsecond line"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn notification_types_are_accepted_in_every_spelling() {
    let cases = [
        ("PROBLEM", AlertState::Problem),
        ("Problem", AlertState::Problem),
        ("recovery", AlertState::Recovery),
        ("Acknowledgement", AlertState::Acknowledgement),
        ("FLAPPINGSTART", AlertState::FlappingStart),
        ("FlappingStart", AlertState::FlappingStart),
        ("FLAPPINGSTOP", AlertState::FlappingStop),
        ("FlappingEnd", AlertState::FlappingStop),
        ("FLAPPINGDISABLED", AlertState::FlappingDisabled),
        ("DowntimeStart", AlertState::DowntimeStart),
        ("DOWNTIMEEND", AlertState::DowntimeEnd),
        ("DOWNTIMECANCELLED", AlertState::DowntimeCancelled),
        ("DowntimeRemoved", AlertState::DowntimeCancelled),
        ("Custom", AlertState::Custom),
    ];
    for (t, state) in cases {
        let mut m = base();
        m.insert("NOTIFICATIONTYPE".into(), t.into());
        let a = nagios::decode_macros(SourceKind::Icinga2, &m).unwrap();
        assert_eq!(a.state, state, "{t}");
        assert_eq!(a.details["notification_type"], json!(t.to_uppercase()));
    }
}

#[test]
fn summary_uses_the_first_line_and_upper_cases_the_state() {
    let a = nagios::decode_macros(SourceKind::Naemon, &base()).unwrap();
    assert_eq!(a.summary, "CRITICAL: web1/HTTP - HTTP CRITICAL - 503");
    assert_eq!(a.status.as_deref(), Some("CRITICAL"));
    assert_eq!(
        a.details["output"],
        json!("HTTP CRITICAL - 503\nsecond line")
    );
    assert_eq!(a.client.as_deref(), Some("Naemon"));
    let mut m = base();
    m.remove("SERVICEOUTPUT");
    m.remove("SERVICESTATE");
    let a = nagios::decode_macros(SourceKind::CentreonEngine, &m).unwrap();
    assert_eq!(a.summary, "PROBLEM: web1/HTTP");
    assert_eq!(a.status, None);
    assert_eq!(a.client.as_deref(), Some("Centreon"));
}

#[test]
fn empty_service_means_a_host_notification() {
    let mut m = base();
    m.insert("SERVICEDESC".into(), String::new());
    m.insert("HOSTSTATE".into(), "DOWN".into());
    m.insert("HOSTOUTPUT".into(), "PING CRITICAL".into());
    let a = nagios::decode_macros(SourceKind::Icinga2, &m).unwrap();
    assert_eq!(a.entity.service, None);
    assert_eq!(a.dedup_hint, "web1");
    assert_eq!(a.status.as_deref(), Some("DOWN"));
    assert_eq!(a.summary, "DOWN: web1 - PING CRITICAL");
    // The service's output of a host notification is not the host's: kept as given.
    assert_eq!(
        a.details["macros"]["SERVICEOUTPUT"],
        json!("HTTP CRITICAL - 503\nsecond line")
    );
}

#[test]
fn routing_key_comes_only_from_a_key_shaped_pager() {
    let mut m = base();
    m.insert("CONTACTPAGER".into(), format!(" {KEY} "));
    let a = nagios::decode_macros(SourceKind::Nagios, &m).unwrap();
    assert_eq!(a.routing_key.as_deref(), Some(KEY));
    assert!(a.details.get("macros").is_none(), "the key is not shown");
    m.insert("CONTACTPAGER".into(), "+49 170 1234567".into());
    let a = nagios::decode_macros(SourceKind::Nagios, &m).unwrap();
    assert_eq!(a.routing_key, None);
    assert_eq!(
        a.details["macros"]["CONTACTPAGER"],
        json!("+49 170 1234567")
    );
}

#[test]
fn openitcockpit_shows_display_names_and_keeps_uuids_for_write_back() {
    let mut m = base();
    m.insert(
        "HOSTNAME".into(),
        "c36b8048-93ce-4385-ac19-ab5c90574b77".into(),
    );
    m.insert("HOSTDISPLAYNAME".into(), "web1".into());
    m.insert(
        "SERVICEDESC".into(),
        "74fd8f59-1348-4e16-85f0-4a5c57c7dd62".into(),
    );
    m.insert("SERVICEDISPLAYNAME".into(), "HTTP".into());
    m.insert("SERVICEPROBLEMID".into(), "321".into());
    let a = nagios::decode_macros(SourceKind::Openitcockpit, &m).unwrap();
    assert_eq!(a.entity.host.as_deref(), Some("web1"));
    assert_eq!(a.entity.service.as_deref(), Some("HTTP"));
    assert_eq!(a.summary, "CRITICAL: web1/HTTP - HTTP CRITICAL - 503");
    assert_eq!(
        a.dedup_hint,
        "c36b8048-93ce-4385-ac19-ab5c90574b77/74fd8f59-1348-4e16-85f0-4a5c57c7dd62"
    );
    assert_eq!(
        a.monitor_ref,
        object_ref(
            "c36b8048-93ce-4385-ac19-ab5c90574b77",
            Some("74fd8f59-1348-4e16-85f0-4a5c57c7dd62"),
            Some("321"),
            None
        )
    );
    assert_eq!(a.client.as_deref(), Some("openITCOCKPIT"));
}

#[test]
fn errors_name_the_macro() {
    let mut m = base();
    m.remove("HOSTNAME");
    let e = nagios::decode_macros(SourceKind::Nagios, &m).unwrap_err();
    assert_eq!(e.field, "HOSTNAME");

    let mut m = base();
    m.insert("NOTIFICATIONTYPE".into(), "  ".into());
    let e = nagios::decode_macros(SourceKind::Nagios, &m).unwrap_err();
    assert_eq!(e.field, "NOTIFICATIONTYPE");

    let mut m = base();
    m.insert("NOTIFICATIONTYPE".into(), "PROBLEMATIC".into());
    let e = nagios::decode_macros(SourceKind::Nagios, &m).unwrap_err();
    assert_eq!(e.field, "NOTIFICATIONTYPE");
    for known in [
        "PROBLEM",
        "RECOVERY",
        "ACKNOWLEDGEMENT",
        "FLAPPINGEND",
        "DOWNTIMECANCELLED",
        "CUSTOM",
    ] {
        assert!(e.message.contains(known), "{}", e.message);
    }

    let e = nagios::decode_macros(SourceKind::Zabbix, &base()).unwrap_err();
    assert_eq!(e.field, "source");

    let e = nagios::decode(SourceKind::Nagios, br#"{"HOSTNAME": ["db1"]}"#).unwrap_err();
    assert_eq!(e.field, "HOSTNAME");
    let e = nagios::decode(SourceKind::Nagios, b"[1]").unwrap_err();
    assert_eq!(e.field, "");
    assert!(nagios::decode(SourceKind::Nagios, b"{").is_err());

    let e = nagios::macros_from_flags([("--macro", "NOEQUALS")]).unwrap_err();
    assert_eq!(e.field, "--macro");
    let e = nagios::macros_from_flags([("--bogus", "x")]).unwrap_err();
    assert_eq!(e.field, "--bogus");
}

#[test]
fn flags_map_to_service_or_host_macros() {
    let service = nagios::macros_from_flags([
        ("--type", "PROBLEM"),
        ("--host", "db1"),
        ("--service", "Disk"),
        ("--state", "CRITICAL"),
        ("--output", "out"),
        ("--problem-id", "7"),
        ("--macro", "HOSTSTATE=UP"),
        ("--macro", "hostalias=Database"),
        ("--macro", "LONGDATETIME=2026-11-21 08:15:18 +0000=x"),
    ])
    .unwrap();
    assert_eq!(service["SERVICESTATE"], "CRITICAL");
    assert_eq!(service["SERVICEOUTPUT"], "out");
    assert_eq!(service["SERVICEPROBLEMID"], "7");
    assert_eq!(service["HOSTSTATE"], "UP");
    assert_eq!(service["HOSTALIAS"], "Database");
    assert_eq!(service["LONGDATETIME"], "2026-11-21 08:15:18 +0000=x");
    let host = nagios::macros_from_flags([
        ("--type", "PROBLEM"),
        ("--host", "db1"),
        ("--service", ""),
        ("--state", "DOWN"),
        ("--problem-id", "8"),
        // A named flag wins over --macro for the same macro.
        ("--macro", "HOSTSTATE=UP"),
    ])
    .unwrap();
    assert_eq!(host["HOSTSTATE"], "DOWN");
    assert_eq!(host["HOSTPROBLEMID"], "8");
    assert!(!host.contains_key("SERVICESTATE"));
}

/// Every snippet these pages show is a file the end-to-end tests load: each page must show its
/// files exactly as they are.
#[test]
fn integration_docs_include_their_snippets_verbatim() {
    let pages = [
        ("icinga2.md", &["icinga2.conf"][..]),
        ("nagios.md", &["nagios.conf"][..]),
        ("naemon.md", &["naemon.conf"][..]),
        ("centreon.md", &["centreon-engine.conf"][..]),
        ("openitcockpit.md", &["openitcockpit.conf"][..]),
        (
            "zenoss.md",
            &[
                "zenoss-command.txt",
                "zenoss-clear-command.txt",
                "zenoss-transform.py",
            ][..],
        ),
    ];
    for (page, snippets) in pages {
        common::assert_page_shows_snippets(page, snippets);
    }
}

fn fixture_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::fixture_dir(dir))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.file_stem().unwrap().to_str().unwrap().to_owned())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_fixture_decodes() {
    for dir in ["nagios", "icinga2"] {
        let names = fixture_names(dir);
        assert!(names.len() >= 10, "{dir}: {names:?}");
        for name in names {
            let a = decode_argv(dir, &name);
            assert!(a.summary.contains("db1"), "{dir}/{name}: {}", a.summary);
        }
    }
}

fn all_fixture_macros() -> Vec<(SourceKind, Macros)> {
    let mut out = Vec::new();
    for dir in ["nagios", "icinga2"] {
        for name in fixture_names(dir) {
            out.push(argv_macros(&notification(dir, &name)));
        }
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = nagios::decode(SourceKind::Nagios, &body);
    }

    #[test]
    fn arbitrary_json_objects_never_panic(
        obj in proptest::collection::btree_map("[A-Za-z$]{0,20}", prop_oneof![
            "[ -~]{0,30}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            Just(json!([1, 2])),
            Just(json!({"a": 1})),
        ], 0..12)
    ) {
        let body = serde_json::to_vec(&obj).unwrap();
        let _ = nagios::decode(SourceKind::Icinga2, &body);
    }

    /// Real notifications with macros dropped, emptied or replaced by junk: an alert or an
    /// error naming a macro, never a panic; and the dedup hint only depends on host and service.
    #[test]
    fn mutated_fixtures_decode_or_name_the_macro(
        pick in 0usize..64,
        drops in proptest::collection::vec(0usize..64, 0..6),
        junk in "[ -~\\n]{0,40}",
        junk_at in 0usize..64,
    ) {
        let all = all_fixture_macros();
        let (kind, mut m) = all[pick % all.len()].clone();
        let keys: Vec<String> = m.keys().cloned().collect();
        for d in drops {
            m.remove(&keys[d % keys.len()]);
        }
        m.insert(keys[junk_at % keys.len()].clone(), junk);
        match nagios::decode_macros(kind, &m) {
            Ok(a) => {
                let host = m["HOSTNAME"].trim().to_owned();
                prop_assert!(!host.is_empty());
                prop_assert!(a.dedup_hint.starts_with(&m["HOSTNAME"]));
            }
            Err(e) => prop_assert!(
                e.field == "HOSTNAME" || e.field == "NOTIFICATIONTYPE",
                "unexpected error {e}"
            ),
        }
    }
}
