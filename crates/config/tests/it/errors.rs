//! Every kind of mistake is reported with file, line, column and field.

use std::path::Path;

use pagerbridge_config::{Config, ConfigError};

use super::{ORIGIN, no_env, problem, problems};

#[test]
fn unknown_field_lists_the_valid_ones() {
    assert_eq!(
        problem("[server]\nlisten = \"127.0.0.1:9000\"\nlisen = \"127.0.0.1:9000\"\n"),
        "pagerbridge.toml:3:1: server.lisen: unknown field `lisen`, expected one of `listen`, \
         `data_dir`, `replica_name`"
    );
    assert_eq!(
        problem("[outbox.retry]\nmax_delay = \"1m\"\nmax_delays = \"1m\"\n"),
        "pagerbridge.toml:3:1: outbox.retry.max_delays: unknown field `max_delays`, expected \
         `initial_delay` or `max_delay`"
    );
}

#[test]
fn unknown_section_lists_the_valid_ones() {
    assert_eq!(
        problem("[sever]\nlisten = \"127.0.0.1:9000\"\n"),
        "pagerbridge.toml:1:2: sever: unknown field `sever`, expected one of `server`, `store`, \
         `pagerduty`, `outbox`, `routing`, `rules`, `sources`, `sync`, `monitors`, `api`, `log`, \
         `self_alert`"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        problem("[outbox]\nmax_in_flight = \"32\"\n"),
        "pagerbridge.toml:2:17: outbox.max_in_flight: invalid type: string \"32\", expected usize"
    );
    assert_eq!(
        problem("[outbox]\ncoalesce = \"yes\"\n"),
        "pagerbridge.toml:2:12: outbox.coalesce: invalid type: string \"yes\", expected a boolean"
    );
    assert_eq!(
        problem("[outbox]\nrate_limit = 5\n"),
        "pagerbridge.toml:2:14: outbox.rate_limit: invalid type: integer `5`, expected struct \
         RateLimitConfig"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        problem("[pagerduty]\ntimeout = \"10 parsecs\"\n"),
        "pagerbridge.toml:2:11: pagerduty.timeout: invalid duration \"10 parsecs\": expected \
         whole numbers each followed by a unit (ms, s, m, h, d), largest unit first, such as \
         \"250ms\", \"10s\" or \"1h30m\""
    );
    assert_eq!(
        problem("[outbox.circuit]\ncooldown = 5\n"),
        "pagerbridge.toml:2:12: outbox.circuit.cooldown: a duration needs a unit: write \"5s\" \
         (or ms, m, h, d), not 5"
    );
}

#[test]
fn bad_listen_address() {
    assert_eq!(
        problem("[server]\nlisten = \"localhost:8080\"\n"),
        "pagerbridge.toml:2:10: server.listen: \"localhost:8080\" is not an IP address and port \
         such as \"127.0.0.1:8080\" or \"[::]:8080\" (host names are not accepted)"
    );
}

#[test]
fn zero_max_in_flight() {
    assert_eq!(
        problem("[outbox]\nmax_in_flight = 0\n"),
        "pagerbridge.toml:2:17: outbox.max_in_flight: 0 is out of range: must be from 1 to 1024"
    );
    assert_eq!(
        problem("[outbox]\nmax_in_flight = 1025\n"),
        "pagerbridge.toml:2:17: outbox.max_in_flight: 1025 is out of range: must be from 1 to 1024"
    );
}

#[test]
fn burst_above_events_per_minute() {
    assert_eq!(
        problem("[outbox.rate_limit]\nevents_per_minute = 100\n    burst = 200\n"),
        "pagerbridge.toml:3:13: outbox.rate_limit.burst: 200 must not exceed events_per_minute (100)"
    );
    // Against a default, the message says so.
    assert_eq!(
        problem("[outbox.rate_limit]\nburst = 200\n"),
        "pagerbridge.toml:2:9: outbox.rate_limit.burst: 200 must not exceed events_per_minute \
         (100, the default)"
    );
    // Only the other side written: the problem is where the reader wrote something.
    assert_eq!(
        problem("[outbox.rate_limit]\nevents_per_minute = 5\n"),
        "pagerbridge.toml:2:21: outbox.rate_limit.events_per_minute: 5 must not be less than \
         burst (10, the default)"
    );
    assert_eq!(
        problem("[outbox.rate_limit]\nburst = 0\n"),
        "pagerbridge.toml:2:9: outbox.rate_limit.burst: must be at least 1 while \
         events_per_minute is above 0"
    );
}

#[test]
fn max_below_initial_and_cooldown_orders() {
    assert_eq!(
        problem("[outbox.retry]\ninitial_delay = \"10m\"\nmax_delay = \"1m\"\n"),
        "pagerbridge.toml:2:17: outbox.retry.initial_delay: 10m must not exceed max_delay (1m)"
    );
    assert_eq!(
        problem("[outbox.circuit]\nmax_cooldown = \"1s\"\n"),
        "pagerbridge.toml:2:16: outbox.circuit.max_cooldown: 1s must not be less than cooldown \
         (5s, the default)"
    );
}

#[test]
fn zero_where_zero_means_nothing() {
    assert_eq!(
        problems(
            "[pagerduty]\ntimeout = \"0s\"\nconnect_timeout = \"0ms\"\n[outbox]\nretention = \"0d\"\n\
             [outbox.circuit]\nfailures = 0\n"
        ),
        [
            "pagerbridge.toml:2:11: pagerduty.timeout: must be longer than 0s",
            "pagerbridge.toml:3:19: pagerduty.connect_timeout: must be longer than 0s",
            "pagerbridge.toml:5:13: outbox.retention: must be longer than 0s",
            "pagerbridge.toml:7:12: outbox.circuit.failures: must be at least 1",
        ]
    );
}

#[test]
fn every_problem_after_parsing_is_reported_in_file_order() {
    let text = "\
[pagerduty]
no_proxy = \"localhost\"
api_token = { env = \"PD_TOKEN_UNSET\" }

[outbox]
max_in_flight = 0

[outbox.rate_limit]
events_per_minute = 100
burst = 200

[outbox.retry]
initial_delay = \"10m\"
max_delay = \"1m\"

[outbox.circuit]
cooldown = \"1m\"
max_cooldown = \"10s\"
";
    assert_eq!(
        problems(text),
        [
            "pagerbridge.toml:2:12: pagerduty.no_proxy: only applies with an explicit `proxy` \
             URL; without one, set NO_PROXY in the environment instead",
            "pagerbridge.toml:3:13: pagerduty.api_token: environment variable PD_TOKEN_UNSET is \
             not set",
            "pagerbridge.toml:6:17: outbox.max_in_flight: 0 is out of range: must be from 1 to 1024",
            "pagerbridge.toml:10:9: outbox.rate_limit.burst: 200 must not exceed \
             events_per_minute (100)",
            "pagerbridge.toml:13:17: outbox.retry.initial_delay: 10m must not exceed max_delay (1m)",
            "pagerbridge.toml:17:12: outbox.circuit.cooldown: 1m must not exceed max_cooldown (10s)",
        ]
    );
}

#[test]
fn bad_url_scheme() {
    assert_eq!(
        problem("[pagerduty]\nevents_url = \"ftp://events.example\"\n"),
        "pagerbridge.toml:2:14: pagerduty.events_url: \"ftp://events.example\" must be an \
         http:// or https:// URL"
    );
    assert_eq!(
        problem("[pagerduty]\nrest_url = \"api.pagerduty.com\"\n"),
        "pagerbridge.toml:2:12: pagerduty.rest_url: \"api.pagerduty.com\" is not a URL: \
         relative URL without a base"
    );
    assert_eq!(
        problem("[pagerduty]\nproxy = \"socks5://proxy:1080\"\n"),
        "pagerbridge.toml:2:9: pagerduty.proxy: \"socks5://proxy:1080\" must be an http:// or \
         https:// URL (or \"none\" for no proxy)"
    );
}

#[test]
fn region_is_us_or_eu() {
    assert_eq!(
        problem("pagerduty.region = \"asia\"\n"),
        "pagerbridge.toml:1:20: pagerduty.region: unknown variant `asia`, expected `us` or `eu`"
    );
}

#[test]
fn store_urls_and_passwords() {
    assert_eq!(
        problem("[store]\nurl = \"mysql://db/pagerbridge\"\n"),
        "pagerbridge.toml:2:7: store.url: unsupported database scheme `mysql`: use sqlite:// \
         (one daemon) or postgres:// (several replicas), e.g. \
         \"sqlite:///var/lib/pagerbridge/pagerbridge.db\" or \
         \"postgres://pagerbridge@db.example.com/pagerbridge\""
    );
    // A password in the URL is refused, and not repeated.
    let p = problem("[store]\nurl = \"postgres://pb:hunter2@db/pagerbridge\"\n");
    assert!(
        p.starts_with("pagerbridge.toml:2:7: store.url: the URL holds a password"),
        "{p}"
    );
    assert!(!p.contains("hunter2"), "{p}");
    assert_eq!(
        problem("[store]\npassword = { env = \"DB_PW\" }\n"),
        "pagerbridge.toml:2:12: store.password: only a PostgreSQL store takes a password: set \
         store.url to a postgres:// URL, or remove store.password"
    );
    assert_eq!(
        problem(
            "[store]\nurl = \"postgres://pb@db/pagerbridge\"\npassword = { env = \"DB_PW\" }\n"
        ),
        "pagerbridge.toml:3:12: store.password: environment variable DB_PW is not set"
    );
    assert_eq!(
        problem("[server]\nreplica_name = \"a b\"\n"),
        "pagerbridge.toml:2:16: server.replica_name: \"a b\": ' ' is not allowed; use letters, \
         digits, `.`, `-` and `_`"
    );
}

#[test]
fn env_secret_unset_or_empty() {
    assert_eq!(
        problem("[pagerduty]\napi_token = { env = \"PAGERDUTY_API_TOKEN\" }\n"),
        "pagerbridge.toml:2:13: pagerduty.api_token: environment variable PAGERDUTY_API_TOKEN \
         is not set"
    );
    let empty = |_: &str| Some(String::new());
    let err = Config::from_str_with_env(
        "[pagerduty]\napi_token = { env = \"PAGERDUTY_API_TOKEN\" }\n",
        ORIGIN,
        Path::new("/"),
        &empty,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pagerbridge.toml:2:13: pagerduty.api_token: environment variable PAGERDUTY_API_TOKEN \
         is empty"
    );
}

#[test]
fn file_secret_missing_or_empty() {
    assert_eq!(
        problem("[pagerduty]\napi_token = { file = \"secrets/pd-token\" }\n"),
        "pagerbridge.toml:2:13: pagerduty.api_token: cannot read secret file \
         /srv/pagerbridge/secrets/pd-token: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "\n").unwrap();
    let err = Config::from_str_with_env(
        "[pagerduty]\napi_token = { file = \"token\" }\n",
        ORIGIN,
        dir.path(),
        &no_env,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pagerbridge.toml:2:13: pagerduty.api_token: secret file {} is empty",
            dir.path().join("token").display()
        )
    );
}

#[test]
fn malformed_secret_tables() {
    assert_eq!(
        problem("[pagerduty]\napi_token = { vault = \"x\" }\n"),
        "pagerbridge.toml:2:13: pagerduty.api_token: unknown field `vault`, expected `env` or \
         `file`"
    );
    assert_eq!(
        problem("[pagerduty]\napi_token = { env = \"A\", file = \"b\" }\n"),
        "pagerbridge.toml:2:13: pagerduty.api_token: give either `env` or `file`, not both"
    );
    assert_eq!(
        problem("[pagerduty]\napi_token = \"\"\n"),
        "pagerbridge.toml:2:13: pagerduty.api_token: secret must not be empty"
    );
}

#[test]
fn malformed_email() {
    assert_eq!(
        problem("[pagerduty]\nfrom = \"ops.example.com\"\n"),
        "pagerbridge.toml:2:8: pagerduty.from: \"ops.example.com\" is not an email address \
         (PagerDuty expects the login email of a user, e.g. \"ops@example.com\")"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    assert_eq!(
        problem("[server]\nlisten = \"127.0.0.1:8080\n"),
        "pagerbridge.toml:2:25: invalid basic string, expected `\"`"
    );
    assert_eq!(
        problem("[outbox\nmax_in_flight = 1\n"),
        "pagerbridge.toml:1:8: unclosed table, expected `]`"
    );
}

#[test]
fn empty_data_dir() {
    assert_eq!(
        problem("[server]\ndata_dir = \"\"\n"),
        "pagerbridge.toml:2:12: server.data_dir: must not be empty (write \".\" for the \
         configuration file's directory)"
    );
}

#[test]
fn problems_are_structured_too() {
    let err = super::parse("[outbox]\nmax_in_flight = 0\n").unwrap_err();
    let [p] = err.problems() else { panic!("{err}") };
    assert_eq!(p.origin, ORIGIN);
    assert_eq!(p.position, Some((2, 17)));
    assert_eq!(p.field.as_deref(), Some("outbox.max_in_flight"));
    assert_eq!(p.message, "0 is out of range: must be from 1 to 1024");
}

#[test]
fn unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read configuration file {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn load_names_the_file_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerbridge.toml");
    std::fs::write(&path, "\n[outbox]\nmax_in_flight = 0\n").unwrap();
    assert_eq!(
        Config::load(&path).unwrap_err().to_string(),
        format!(
            "{}:3:17: outbox.max_in_flight: 0 is out of range: must be from 1 to 1024",
            path.display()
        )
    );
}

#[test]
fn rule_problems_name_their_line_and_rule() {
    let text = "[routing]\n\
                default_routing_key = \"a1b2c3d4e5f60718293a4b5c6d7e8f90\"\n\
                \n\
                [[rules]]\n\
                name = \"fine\"\n\
                match = { field = \"host\", glob = \"db*\" }\n\
                \n\
                [[rules]]\n\
                summary = \"{{ unclosed\"\n\
                match = { field = \"host\", regex = \"(\" }\n";
    let p = problems(text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with("pagerbridge.toml:9:11: rules[1].summary: template does not parse"),
        "{p:#?}"
    );
    assert!(
        p[1].starts_with(
            "pagerbridge.toml:10:35: rules[1].match.regex: not a valid regular expression: unclosed group"
        ),
        "{p:#?}"
    );
    let unknown = problem("[[rules]]\nmatch = { field = \"host\", equal = \"x\" }\n");
    assert!(unknown.contains("unknown field `equal`"), "{unknown}");
    assert!(unknown.starts_with("pagerbridge.toml:2:"), "{unknown}");
}

#[test]
fn source_problems_name_their_entry_and_line() {
    let p = problems(
        "[[sources]]\n\
         name = \"am\"\n\
         kind = \"alertmanager\"\n\
         options = { incident_per = \"cluster\" }\n\
         \n\
         [[sources]]\n\
         name = \"am\"\n\
         kind = \"nagois\"\n\
         path = \"/v2/enqueue\"\n\
         \n\
         [[sources]]\n\
         name = \"json\"\n\
         kind = \"generic\"\n\
         \n\
         [[sources]]\n\
         name = \"graf\"\n\
         kind = \"grafana\"\n\
         options = { x = 1 }\n\
         auth = { bearer = \"t\", hmac = { secret = \"s\" } }\n",
    );
    let expect = [
        "pagerbridge.toml:4:11: sources[0].options: unknown variant `cluster`",
        "pagerbridge.toml:7:8: sources[1].name: \"am\" is used by another source",
        "pagerbridge.toml:8:8: sources[1].kind: \"nagois\" is not a source kind",
        "pagerbridge.toml:9:8: sources[1].path: \"/v2/enqueue\" is a route of pagerbridge itself",
        "pagerbridge.toml:11:1: sources[2].mapping: a generic source needs a mapping",
        "pagerbridge.toml:18:11: sources[3].options: options are for alertmanager and centreon_broker sources",
        "pagerbridge.toml:19:8: sources[3].auth: give exactly one of bearer or hmac",
    ];
    for e in expect {
        assert!(
            p.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {p:#?}"
        );
    }
    assert_eq!(p.len(), expect.len(), "{p:#?}");
}

#[test]
fn api_token_problems_name_their_entry_and_line() {
    let p = problems(
        "[[api.tokens]]\n\
         name = \"Grafana\"\n\
         token = \"short\"\n\
         scope = \"read\"\n\
         \n\
         [[api.tokens]]\n\
         name = \"bot\"\n\
         token = \"0123456789abcdef0123\"\n\
         scope = \"admin\"\n\
         \n\
         [[api.tokens]]\n\
         name = \"bot\"\n\
         token = \"0123456789abcdef0123\"\n\
         scope = \"admin\"\n\
         \n\
         [[api.tokens]]\n\
         name = \"spaces\"\n\
         token = \"0123456789 abcdef0123\"\n\
         scope = \"read\"\n",
    );
    let expect = [
        "pagerbridge.toml:2:8: api.tokens[0].name: \"Grafana\" must be lowercase letters, digits, - and _",
        "pagerbridge.toml:3:9: api.tokens[0].token: must be at least 16 characters long",
        "pagerbridge.toml:12:8: api.tokens[2].name: \"bot\" is the name of another token",
        "pagerbridge.toml:13:9: api.tokens[2].token: is the token of api.tokens[1] too",
        "pagerbridge.toml:18:9: api.tokens[3].token: must be printable ASCII without spaces",
    ];
    for e in expect {
        assert!(
            p.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {p:#?}"
        );
    }
    assert_eq!(p.len(), expect.len(), "{p:#?}");
    // The secret's value is never quoted.
    assert!(!p.iter().any(|x| x.contains("0123456789")), "{p:#?}");

    assert_eq!(
        problem("[[api.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nscope = \"write\"\n"),
        "pagerbridge.toml:4:9: api.tokens[0].scope: unknown variant `write`, expected `read` or \
         `admin`"
    );
    assert!(
        problem("[[api.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n")
            .contains("missing field `scope`")
    );
}

#[test]
fn api_tokens_are_the_daemons_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerbridge.toml");
    std::fs::write(
        &path,
        "[[api.tokens]]\nname = \"bot\"\ntoken = { env = \"PB_TEST_UNSET_API_TOKEN\" }\n\
         scope = \"admin\"\n",
    )
    .unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains(
            "api.tokens[0].token: environment variable PB_TEST_UNSET_API_TOKEN is not set"
        ),
        "{err}"
    );
    let config = Config::load_for(&path, pagerbridge_config::Purpose::Enqueue)
        .expect("one-shot commands do not read the API's tokens");
    assert_eq!(config.api.tokens[0].token.resolved(), None);
}

#[test]
fn log_and_self_alert_problems_name_their_field() {
    assert_eq!(
        problem("[log]\nlevel = \"inf\"\n"),
        "pagerbridge.toml:2:9: log.level: \"inf\" is not a level (error, warn, info, debug, \
         trace, off) or `target=level`"
    );
    assert_eq!(
        problem("[log]\nformat = \"xml\"\n"),
        "pagerbridge.toml:2:10: log.format: unknown variant `xml`, expected `text` or `json`"
    );
    // The key itself is not repeated: integration keys are half secret.
    let p = problem("[self_alert]\nrouting_key = \"secret-ish-but-too-short\"\n");
    assert_eq!(
        p,
        "pagerbridge.toml:2:15: self_alert.routing_key: is not a PagerDuty integration key \
         (32 letters and digits)"
    );
    assert_eq!(
        problems(
            "[self_alert]\nrouting_key = \"5f4e3d2c1b0a49382716a5b4c3d2e1f0\"\nmax_age = \"0s\"\n\
             check_interval = \"500ms\"\ndedup_key = \" \"\n"
        )
        .len(),
        3
    );
}
