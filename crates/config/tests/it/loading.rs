//! What a valid configuration loads as.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pagerbridge_config::{
    Config, Duration as ConfigDuration, Proxy, Region, Secret, SecretSource, StoreLocation,
    StoreUrl,
};
use pagerduty::ProxyConfig;

use super::{ORIGIN, no_env, parse, repo_root};

#[test]
fn the_example_file_loads_with_the_values_written_in_it() {
    let path = repo_root().join("examples/pagerbridge.toml");
    let config = Config::load(&path).unwrap();
    let examples = std::path::absolute(repo_root().join("examples")).unwrap();

    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.data_dir(), examples.join("pagerbridge-data"));
    assert_eq!(
        config.store_url(),
        format!(
            "sqlite://{}",
            examples.join("pagerbridge-data/pagerbridge.db").display()
        )
    );
    assert_eq!(
        config.store_path(),
        examples.join("pagerbridge-data/pagerbridge.db")
    );

    let pd = &config.pagerduty;
    assert_eq!(pd.region, Region::Us);
    assert_eq!(pd.proxy, Some(Proxy::Direct));
    assert_eq!(
        pd.api_token.as_ref().unwrap().expose(),
        "emulator-account-token"
    );
    assert_eq!(pd.from.as_ref().unwrap().as_str(), "ada@example.com");
    let client = pd.client_config();
    assert_eq!(client.events_url.as_str(), "http://127.0.0.1:8787/");
    assert_eq!(client.rest_url.as_str(), "http://127.0.0.1:8787/");
    assert_eq!(client.timeout, Duration::from_secs(15));
    assert_eq!(client.connect_timeout, Duration::from_secs(3));
    assert_eq!(client.proxy, ProxyConfig::Direct);

    let outbox = &config.outbox;
    assert_eq!(outbox.retention.get(), Duration::from_secs(14 * 86_400));
    assert_eq!(outbox.max_in_flight, 16);
    assert!(outbox.coalesce);
    assert_eq!(outbox.rate_limit.events_per_minute, 60);
    assert_eq!(outbox.rate_limit.burst, 20);
    assert_eq!(outbox.retry.initial_delay.get(), Duration::from_secs(2));
    assert_eq!(outbox.retry.max_delay.get(), Duration::from_secs(600));
    assert_eq!(outbox.circuit.failures, 3);
    assert_eq!(outbox.circuit.cooldown.get(), Duration::from_secs(10));
    assert_eq!(outbox.circuit.max_cooldown.get(), Duration::from_secs(300));

    let names: Vec<_> = config.rules.iter().map(|r| r.name.as_deref()).collect();
    assert_eq!(names, [Some("test hosts"), Some("databases")]);
    let sources: Vec<_> = config
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str(), s.route()))
        .collect();
    assert_eq!(
        sources,
        [
            (
                "alertmanager",
                "alertmanager",
                "/ingest/alertmanager".to_owned()
            ),
            ("grafana", "grafana", "/ingest/grafana".to_owned())
        ]
    );
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let config = parse("").unwrap();
    let base = Path::new("/srv/pagerbridge");

    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.data_dir, Path::new("./pagerbridge-data"));
    assert_eq!(config.data_dir(), base.join("pagerbridge-data"));
    assert_eq!(config.store.url, None);
    assert_eq!(
        config.store_url(),
        "sqlite:///srv/pagerbridge/pagerbridge-data/pagerbridge.db"
    );

    let pd = &config.pagerduty;
    assert_eq!(pd.region, Region::Us);
    assert_eq!(pd.events_url, None);
    assert_eq!(pd.rest_url, None);
    assert_eq!(pd.timeout.get(), Duration::from_secs(10));
    assert_eq!(pd.connect_timeout.get(), Duration::from_secs(5));
    assert_eq!(pd.proxy, None);
    assert_eq!(pd.no_proxy, None);
    assert_eq!(pd.api_token, None);
    assert_eq!(pd.from, None);
    let client = pd.client_config();
    assert_eq!(client.events_url.as_str(), "https://events.pagerduty.com/");
    assert_eq!(client.rest_url.as_str(), "https://api.pagerduty.com/");
    assert_eq!(client.timeout, Duration::from_secs(10));
    assert_eq!(client.connect_timeout, Duration::from_secs(5));
    assert_eq!(client.proxy, ProxyConfig::Environment);
    assert_eq!(client.user_agent, pagerduty::client::user_agent());

    let outbox = &config.outbox;
    assert_eq!(outbox.retention.get(), Duration::from_secs(7 * 86_400));
    assert_eq!(outbox.max_in_flight, 32);
    assert!(outbox.coalesce);
    assert_eq!(outbox.rate_limit.events_per_minute, 100);
    assert_eq!(outbox.rate_limit.burst, 10);
    assert_eq!(outbox.retry.initial_delay.get(), Duration::from_secs(1));
    assert_eq!(outbox.retry.max_delay.get(), Duration::from_secs(300));
    assert_eq!(outbox.circuit.failures, 5);
    assert_eq!(outbox.circuit.cooldown.get(), Duration::from_secs(5));
    assert_eq!(outbox.circuit.max_cooldown.get(), Duration::from_secs(120));

    // Config::default() is the same configuration, anchored at the current directory.
    let default = Config::default();
    assert_eq!(default.server, config.server);
    assert_eq!(default.store, config.store);
    assert_eq!(default.pagerduty, config.pagerduty);
    assert_eq!(default.outbox, config.outbox);
    assert_eq!(
        default.data_dir(),
        std::env::current_dir().unwrap().join("pagerbridge-data")
    );
}

#[test]
fn empty_sections_and_comments_only_are_defaults_too() {
    let text = "# nothing yet\n[server]\n[store]\n[pagerduty]\n[outbox]\n[outbox.rate_limit]\n\
                [outbox.retry]\n[outbox.circuit]\n";
    assert_eq!(parse(text).unwrap(), parse("").unwrap());
}

#[test]
fn relative_paths_are_relative_to_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("etc");
    std::fs::create_dir(&conf_dir).unwrap();
    std::fs::create_dir(conf_dir.join("secrets")).unwrap();
    std::fs::write(conf_dir.join("secrets/token"), "tok-from-file\n\n").unwrap();
    let path = conf_dir.join("pagerbridge.toml");
    std::fs::write(
        &path,
        "[server]\ndata_dir = \"data\"\n[store]\nurl = \"sqlite:db/outbox.db\"\n\
         [pagerduty]\napi_token = { file = \"secrets/token\" }\n",
    )
    .unwrap();

    let config = Config::load(&path).unwrap();
    let conf_dir = std::path::absolute(&conf_dir).unwrap();
    assert_eq!(config.base_dir(), conf_dir);
    assert_eq!(config.data_dir(), conf_dir.join("data"));
    assert_eq!(config.store_path(), conf_dir.join("db/outbox.db"));
    assert_eq!(
        config.store_url(),
        format!("sqlite://{}", conf_dir.join("db/outbox.db").display())
    );
    assert_eq!(
        config.store.url,
        Some(StoreUrl::Sqlite {
            path: PathBuf::from("db/outbox.db")
        })
    );
    // Trailing newlines are not part of a file secret.
    assert_eq!(
        config.pagerduty.api_token.as_ref().unwrap().expose(),
        "tok-from-file"
    );
    assert_eq!(
        config.pagerduty.api_token.as_ref().unwrap().source(),
        &SecretSource::File(PathBuf::from("secrets/token"))
    );

    // Absolute paths stay as they are.
    let config = super::parse(
        "[server]\ndata_dir = \"/var/lib/pagerbridge\"\n[store]\nurl = \"sqlite:///var/db/p.db\"\n",
    )
    .unwrap();
    assert_eq!(config.data_dir(), Path::new("/var/lib/pagerbridge"));
    assert_eq!(config.store_url(), "sqlite:///var/db/p.db");
    // The default database follows data_dir.
    let config = super::parse("[server]\ndata_dir = \"/var/lib/pb\"\n").unwrap();
    assert_eq!(config.store_url(), "sqlite:///var/lib/pb/pagerbridge.db");
}

#[test]
fn a_relative_base_dir_is_made_absolute_at_load() {
    let config = Config::from_str_with_env("", ORIGIN, Path::new("conf"), &no_env).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(config.base_dir(), cwd.join("conf"));
    assert_eq!(config.data_dir(), cwd.join("conf/pagerbridge-data"));
}

#[test]
fn env_secrets_are_read_at_load() {
    let text = "[pagerduty]\napi_token = { env = \"PD_TOKEN\" }\n";
    let env = |name: &str| (name == "PD_TOKEN").then(|| "tok-from-env".to_owned());
    let config = Config::from_str_with_env(text, ORIGIN, Path::new("/"), &env).unwrap();
    let token = config.pagerduty.api_token.unwrap();
    assert_eq!(token.expose(), "tok-from-env");
    assert_eq!(token.source(), &SecretSource::Env("PD_TOKEN".into()));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "tok-from-file-4242\n").unwrap();
    let env = |_: &str| Some("tok-from-env-4242".to_owned());
    for (token, value) in [
        ("\"tok-inline-4242\"", "tok-inline-4242"),
        ("{ env = \"PD_TOKEN\" }", "tok-from-env-4242"),
        ("{ file = \"token\" }", "tok-from-file-4242"),
    ] {
        let text = format!("[pagerduty]\napi_token = {token}\n");
        let config = Config::from_str_with_env(&text, ORIGIN, dir.path(), &env).unwrap();
        let secret = config.pagerduty.api_token.as_ref().unwrap();
        assert_eq!(secret.expose(), value);
        for shown in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{:?}", config.pagerduty),
            format!("{secret}"),
        ] {
            assert!(!shown.contains("4242"), "secret leaked: {shown}");
        }
        assert!(format!("{config:?}").contains("Secret(***)"));
    }
    assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    assert_eq!(Secret::new("x").to_string(), "Secret(***)");
}

#[test]
fn durations_accept_combinations_and_show_canonically() {
    let config =
        parse("[outbox.retry]\ninitial_delay = \"1s500ms\"\nmax_delay = \"1h30m\"\n").unwrap();
    assert_eq!(
        config.outbox.retry.initial_delay.get(),
        Duration::from_millis(1500)
    );
    assert_eq!(config.outbox.retry.max_delay.to_string(), "1h30m");
    assert_eq!(
        Duration::from(config.outbox.retry.max_delay),
        Duration::from_secs(5400)
    );
    assert_eq!(ConfigDuration::from_secs(90).to_string(), "1m30s");
}

#[test]
fn proxy_forms_map_to_the_client() {
    let client = |text: &str| parse(text).unwrap().pagerduty.client_config();
    assert_eq!(client("").proxy, ProxyConfig::Environment);
    assert_eq!(
        client("[pagerduty]\nproxy = \"none\"\n").proxy,
        ProxyConfig::Direct
    );
    assert_eq!(
        client("[pagerduty]\nproxy = \"http://proxy.example:3128\"\nno_proxy = \"localhost,.internal\"\n")
            .proxy,
        ProxyConfig::Explicit {
            url: "http://proxy.example:3128/".into(),
            no_proxy: Some("localhost,.internal".into()),
        }
    );
    let eu = client("[pagerduty]\nregion = \"eu\"\nrest_url = \"http://127.0.0.1:8787\"\n");
    assert_eq!(eu.events_url.as_str(), "https://events.eu.pagerduty.com/");
    assert_eq!(eu.rest_url.as_str(), "http://127.0.0.1:8787/");
}

#[test]
fn rate_limit_off_ignores_burst() {
    let config = parse("[outbox.rate_limit]\nevents_per_minute = 0\nburst = 0\n").unwrap();
    assert_eq!(config.outbox.rate_limit.events_per_minute, 0);
}

#[test]
fn port_zero_is_allowed_for_tests() {
    let config = parse("[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    assert_eq!(config.server.listen.port(), 0);
}

#[test]
fn log_and_self_alert_sections() {
    use pagerbridge_config::LogFormat;
    let config = parse(
        "[log]\nlevel = \"debug,sqlx=warn\"\nformat = \"json\"\nfile = \"log/pagerbridge.log\"\n\
         [self_alert]\nrouting_key = \"5f4e3d2c1b0a49382716a5b4c3d2e1f0\"\nmax_age = \"2m\"\n\
         on_dead_letters = false\ncheck_interval = \"10s\"\ndedup_key = \"pb/prod\"\n",
    )
    .unwrap();
    assert_eq!(config.log.level, "debug,sqlx=warn");
    assert_eq!(config.log.format, LogFormat::Json);
    // Relative to the configuration file's directory, like every path in it.
    assert_eq!(
        config.log_file().unwrap(),
        Path::new("/srv/pagerbridge/log/pagerbridge.log")
    );
    let s = &config.self_alert;
    assert!(s.enabled());
    assert_eq!(s.max_age.get(), Duration::from_secs(120));
    assert!(!s.on_dead_letters);
    assert_eq!(s.check_interval.get(), Duration::from_secs(10));
    assert_eq!(s.dedup_key.as_deref(), Some("pb/prod"));

    let defaults = parse("").unwrap();
    assert_eq!(defaults.log_file(), None);
    assert!(!defaults.self_alert.enabled());
    assert_eq!(
        parse("[log]\nfile = \"/var/log/pb.log\"\n")
            .unwrap()
            .log_file()
            .unwrap(),
        Path::new("/var/log/pb.log")
    );
}

#[test]
fn a_postgres_store_with_its_password_kept_out_of_the_url() {
    let env = |name: &str| (name == "PAGERBRIDGE_DB_PASSWORD").then(|| "s3cret/pw".to_owned());
    let text = "[server]\nreplica_name = \"pagerbridge-a\"\n[store]\n\
                url = \"postgres://pagerbridge@db1:5433/pagerbridge?sslmode=require\"\n\
                password = { env = \"PAGERBRIDGE_DB_PASSWORD\" }\n";
    let from_env = Config::from_str_with_env(text, ORIGIN, Path::new("/srv"), &env).unwrap();
    // `send` and `event` open the store too: the password is read for them as well.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db-password"), "s3cret/pw\n").unwrap();
    let path = dir.path().join("pagerbridge.toml");
    std::fs::write(
        &path,
        text.replace(
            "{ env = \"PAGERBRIDGE_DB_PASSWORD\" }",
            "{ file = \"db-password\" }",
        ),
    )
    .unwrap();
    let from_file = Config::load_for(&path, pagerbridge_config::Purpose::Enqueue).unwrap();
    for config in [from_env, from_file] {
        assert_eq!(config.server.replica_name.as_deref(), Some("pagerbridge-a"));
        assert_eq!(
            config.store_url(),
            "postgres://pagerbridge@db1:5433/pagerbridge?sslmode=require"
        );
        let StoreLocation::Postgres(pg) = config.store_location() else {
            panic!("not postgres")
        };
        assert_eq!(
            pg.connect_url(),
            "postgres://pagerbridge:s3cret%2Fpw@db1:5433/pagerbridge?sslmode=require"
        );
        let shown = format!("{config:?} {}", config.store_location());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    // Without store.password, libpq's PGPASSWORD or ~/.pgpass apply (the driver reads them).
    let config = parse("[store]\nurl = \"postgres://pagerbridge@db1/pagerbridge\"\n").unwrap();
    let StoreLocation::Postgres(pg) = config.store_location() else {
        panic!("not postgres")
    };
    assert_eq!(pg.connect_url(), "postgres://pagerbridge@db1/pagerbridge");
    // SQLite stays the default.
    assert_eq!(
        parse("").unwrap().store_location(),
        StoreLocation::Sqlite(PathBuf::from(
            "/srv/pagerbridge/pagerbridge-data/pagerbridge.db"
        ))
    );
}
