//! pagerbridge's configuration file (`pagerbridge serve --config pagerbridge.toml`).
//!
//! One struct per `[section]`, each `deny_unknown_fields` with a default for every field, so an
//! empty file is a valid configuration. Loading happens in two steps: serde turns the TOML into
//! the structs (a bad value or unknown field stops it, with its line and column), then
//! [`Config`] checks ranges and fields that constrain each other and reads `env`/`file` secrets,
//! collecting every problem. Every field is documented in `docs/configuration.md`; a test keeps
//! the two in step.
//!
//! Adding a section: a module with its struct (doc comment on every field, `#[serde(default,
//! deny_unknown_fields)]`), a field on [`Config`], a call to its `validate` in
//! `Config::validate`, and its rows in `docs/configuration.md`.

#![warn(missing_docs)]

mod api;
mod duration;
mod error;
mod log;
mod monitors;
mod outbox;
mod pagerduty;
mod secret;
mod self_alert;
mod server;
mod sources;
mod store;
mod sync;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagerbridge_rules::Rules;
use pagerbridge_rules::spec::{RoutingSpec, RuleSpec};
use serde::Deserialize;
use toml::de::DeTable;

pub use crate::api::{ApiConfig, ApiScope, ApiToken, MIN_TOKEN_LEN};
pub use crate::duration::Duration;
pub use crate::error::{ConfigError, Problem};
pub use crate::log::{DEFAULT_LOG_LEVEL, LogConfig, LogFormat, check_level};
pub use crate::monitors::MonitorConfig;
pub use crate::outbox::{CircuitConfig, MAX_IN_FLIGHT, OutboxConfig, RateLimitConfig, RetryConfig};
pub use crate::pagerduty::{Email, HttpUrl, PagerDutyConfig, Proxy, Region};
pub use crate::secret::{Secret, SecretSource};
pub use crate::self_alert::SelfAlertConfig;
pub use crate::server::{MAX_REPLICA_NAME, ServerConfig, check_replica_name};
pub use crate::sources::{AuthConfig, HmacConfig, SourceConfig};
pub use crate::store::{PostgresLocation, StoreConfig, StoreLocation, StoreUrl};
pub use crate::sync::{
    PollerConfig, ReconcilerConfig, SyncConfig, WebhooksConfig, WritebackConfig,
};

pub use crate::validate::Purpose;
use crate::validate::{Validator, toml_problem};

/// File name of the SQLite database inside `server.data_dir` when `store.url` is unset.
pub const DEFAULT_DATABASE_FILE: &str = "pagerbridge.db";

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listener and data directory.
    pub server: ServerConfig,
    /// `[store]`: the database holding the outbox.
    pub store: StoreConfig,
    /// `[pagerduty]`: how to reach PagerDuty.
    pub pagerduty: PagerDutyConfig,
    /// `[outbox]`: delivery, rate limits, retries, circuit breaker.
    pub outbox: OutboxConfig,
    /// `[routing]`: the default routing key, severity maps and dedup key template.
    pub routing: RoutingSpec,
    /// `[[rules]]`: ordered routing rules (see docs/rules.md).
    pub rules: Vec<RuleSpec>,
    /// `[[sources]]`: monitors that post to pagerbridge, each on its own route.
    pub sources: Vec<SourceConfig>,
    /// `[sync]`: how PagerDuty's changes come back.
    pub sync: SyncConfig,
    /// `[[monitors]]`: where PagerDuty's changes are written back.
    pub monitors: Vec<MonitorConfig>,
    /// `[api]`: the bearer tokens of the daemon's HTTP API (`/api/v1`).
    pub api: ApiConfig,
    /// `[log]`: level, format and file of the daemon's log.
    pub log: LogConfig,
    /// `[self_alert]`: pagerbridge's own incident when its outbox is stuck.
    pub self_alert: SelfAlertConfig,
    /// Directory relative paths in the file are relative to: the file's own directory.
    /// Empty for `Config::default()`, meaning the current directory.
    #[serde(skip)]
    base_dir: PathBuf,
    /// The rules as loading compiled them, kept so that the one-shot commands (`send` runs
    /// once per notification) do not compile them twice.
    #[serde(skip)]
    compiled: CompiledRules,
}

/// Compiled rules with the specification they came from: the fields are public and may be
/// changed after loading (the demo does), and a stale compilation must not be used.
#[derive(Clone, Default)]
struct CompiledRules(Option<(RoutingSpec, Vec<RuleSpec>, Arc<Rules>)>);

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledRules")
    }
}

/// Derived from `routing` and `rules`, which the comparison of configurations already covers.
impl PartialEq for CompiledRules {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Config {
    /// Reads and checks the configuration file at `path`. Relative paths inside it are
    /// relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_for(path, Purpose::Daemon)
    }

    /// [`Config::load`] for a purpose: [`Purpose::Enqueue`] leaves what only the daemon uses
    /// (its secrets and files) unread.
    pub fn load_for(path: &Path, purpose: Purpose) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Config::parse(
            &text,
            &path.display().to_string(),
            base_dir,
            &|name| std::env::var_os(name).and_then(|v| v.into_string().ok()),
            purpose,
        )
    }

    /// Checks configuration text. `origin` names it in errors (usually the file name);
    /// relative paths are relative to `base_dir`. `env` secrets come from the process
    /// environment.
    pub fn from_str(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::from_str_with_env(text, origin, base_dir, &|name| {
            std::env::var_os(name).and_then(|v| v.into_string().ok())
        })
    }

    /// [`Config::from_str`] with `env` secrets looked up through `env` instead of the process
    /// environment (tests, checking a file meant for another host).
    pub fn from_str_with_env(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse(text, origin, base_dir, env, Purpose::Daemon)
    }

    fn parse(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid { problems };
        let root = DeTable::parse(text)
            .map_err(|e| invalid(vec![toml_problem(origin, text, None, &e)]))?;
        let mut config = Config::deserialize(toml::de::Deserializer::from(root.clone()))
            .map_err(|e| invalid(vec![toml_problem(origin, text, Some(root.get_ref()), &e)]))?;
        config.base_dir = absolute(Path::new(""), base_dir);

        let base_dir = config.base_dir.clone();
        let mut v =
            Validator::new(origin, text, root.get_ref(), &base_dir, env).for_purpose(purpose);
        config.validate(&mut v);
        let mut problems = v.into_problems();
        if problems.is_empty() {
            return Ok(config);
        }
        // File order; problems without a position last.
        problems.sort_by_key(|p| (p.position.is_none(), p.position));
        Err(invalid(problems))
    }

    fn validate(&mut self, v: &mut Validator<'_>) {
        self.server.validate(v);
        self.store.validate(v);
        self.pagerduty.validate(v);
        self.outbox.validate(v);
        sources::validate(&mut self.sources, v);
        self.sync.validate(v);
        if self.sync.poller.enabled && self.pagerduty.api_token.is_none() {
            v.problem(
                "sync.poller.enabled",
                "polling reads PagerDuty's REST API: set pagerduty.api_token",
            );
        }
        let base_dir = self.base_dir.clone();
        monitors::validate(&mut self.monitors, &base_dir, v);
        self.api.validate(v);
        self.log.validate(v);
        self.self_alert.validate(v);
        match Rules::compile(&self.routing, &self.rules) {
            Ok(rules) => {
                self.compiled = CompiledRules(Some((
                    self.routing.clone(),
                    self.rules.clone(),
                    Arc::new(rules),
                )));
            }
            Err(errors) => {
                for e in errors {
                    v.problem(&e.path, e.message);
                }
            }
        }
    }

    /// The rules, compiled. Loading already checked that they compile.
    pub fn compiled_rules(&self) -> Arc<Rules> {
        match &self.compiled.0 {
            Some((routing, rules, compiled))
                if *routing == self.routing && *rules == self.rules =>
            {
                compiled.clone()
            }
            _ => Arc::new(
                Rules::compile(&self.routing, &self.rules).unwrap_or_else(|_| Rules::empty()),
            ),
        }
    }

    /// The directory relative paths in the file are relative to (absolute once loaded).
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// `server.data_dir`, absolute.
    pub fn data_dir(&self) -> PathBuf {
        absolute(&self.base_dir, &self.server.data_dir)
    }

    /// `log.file`, absolute; `None` when the log goes to standard error.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.log.file.as_ref().map(|f| absolute(&self.base_dir, f))
    }

    /// The SQLite database file: `store.url`'s path, or `pagerbridge.db` in the data
    /// directory; absolute. (Where that file would be when `store.url` names PostgreSQL, which
    /// has none: see [`Config::store_location`].)
    pub fn store_path(&self) -> PathBuf {
        match &self.store.url {
            Some(StoreUrl::Sqlite { path }) => absolute(&self.base_dir, path),
            Some(StoreUrl::Postgres { .. }) | None => self.data_dir().join(DEFAULT_DATABASE_FILE),
        }
    }

    /// The database URL, e.g. `sqlite:///var/lib/pagerbridge/pagerbridge.db` (an absolute
    /// path) or `postgres://pagerbridge@db1/pagerbridge`. Never holds a password: safe to print.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.resolved(&self.base_dir),
            None => store::sqlite_url(&self.store_path()),
        }
    }

    /// Where the outbox is, for opening it: the SQLite file, or the PostgreSQL database with
    /// `store.password`.
    pub fn store_location(&self) -> StoreLocation {
        match &self.store.url {
            Some(StoreUrl::Postgres { url }) => StoreLocation::Postgres(PostgresLocation::new(
                url.clone(),
                self.store.password.clone(),
            )),
            Some(StoreUrl::Sqlite { .. }) | None => StoreLocation::Sqlite(self.store_path()),
        }
    }
}

/// `path` made absolute against `base` (against the current directory when `base` is
/// relative), with `.` components removed; `..` is kept, as symlinks make it ambiguous.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    let mut joined = base.join(path);
    if joined.as_os_str().is_empty() {
        joined = PathBuf::from(".");
    }
    std::path::absolute(&joined).unwrap_or(joined)
}
