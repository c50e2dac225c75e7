//! `[store]`: where the outbox is kept.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::secret::Secret;
use crate::validate::Validator;

/// `[store]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database. Unset: the SQLite file `pagerbridge.db` inside `server.data_dir`. Use
    /// [`crate::Config::store_location`] for where it resolves to.
    pub url: Option<StoreUrl>,
    /// PostgreSQL's password, kept out of the URL (which is printed in logs and banners).
    /// Unset: libpq's `PGPASSWORD` or `~/.pgpass`, if any.
    pub password: Option<Secret>,
}

impl StoreConfig {
    pub(crate) fn validate(&mut self, v: &mut Validator<'_>) {
        let postgres = matches!(self.url, Some(StoreUrl::Postgres { .. }));
        if self.password.is_some() && !postgres {
            v.problem(
                "store.password",
                "only a PostgreSQL store takes a password: set store.url to a postgres:// URL, \
                 or remove store.password",
            );
            return;
        }
        // Every command that opens the outbox needs it, `send` and `event` included.
        v.secret("store.password", &mut self.password);
    }
}

/// A database URL pagerbridge can use: SQLite (one daemon) or PostgreSQL (several replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `sqlite:///absolute/path.db`, `sqlite://relative/path.db` or `sqlite:relative/path.db`;
    /// the path is kept as written (relative to the configuration file's directory).
    Sqlite {
        /// The database file, as written in the URL.
        path: PathBuf,
    },
    /// `postgres://user@host:5432/database?sslmode=require` (or `postgresql://`), as written:
    /// it never holds a password (see [`StoreConfig::password`]), so it is safe to print.
    Postgres {
        /// The URL as written, passed to the driver (libpq's URL syntax and parameters).
        url: String,
    },
}

impl StoreUrl {
    /// The canonical URL with a SQLite path made absolute against `base_dir`.
    pub(crate) fn resolved(&self, base_dir: &Path) -> String {
        match self {
            StoreUrl::Sqlite { path } => sqlite_url(&crate::absolute(base_dir, path)),
            StoreUrl::Postgres { url } => url.clone(),
        }
    }
}

/// Where the outbox resolves to, for the code that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite database file, absolute.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresLocation),
}

impl fmt::Display for StoreLocation {
    /// The path or the URL; never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(pg) => f.write_str(pg.url()),
        }
    }
}

/// A PostgreSQL database and the password to reach it with.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresLocation {
    url: String,
    password: Option<Secret>,
}

impl PostgresLocation {
    /// A location from a URL without password and an optional password (tests, benchmarks).
    pub fn new(url: impl Into<String>, password: Option<Secret>) -> Self {
        PostgresLocation {
            url: url.into(),
            password,
        }
    }

    /// The URL as configured, without password: safe to print.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL to give the driver, with `store.password` in it when set. Never print it.
    pub fn connect_url(&self) -> String {
        let Some(password) = self.password.as_ref().and_then(Secret::resolved) else {
            return self.url.clone();
        };
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                // Only fails for URLs without a host part, which libpq then reads from
                // `host=`: the password goes in the query instead.
                if u.set_password(Some(password)).is_ok() {
                    return u.to_string();
                }
                u.query_pairs_mut().append_pair("password", password);
                u.to_string()
            }
            Err(_) => self.url.clone(),
        }
    }
}

impl fmt::Debug for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLocation")
            .field("url", &self.url)
            .field("password", &self.password)
            .finish()
    }
}

/// `sqlite:///abs/path`. The path is not percent-encoded: the store reads it literally.
pub(crate) fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

const EXAMPLES: &str = "e.g. \"sqlite:///var/lib/pagerbridge/pagerbridge.db\" or \
                        \"postgres://pagerbridge@db.example.com/pagerbridge\"";

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is not a database URL; expected {EXAMPLES}"
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => sqlite(text, rest),
            "postgres" | "postgresql" => postgres(text),
            other => Err(format!(
                "unsupported database scheme `{other}`: use sqlite:// (one daemon) or \
                 postgres:// (several replicas), {EXAMPLES}"
            )),
        }
    }
}

fn sqlite(text: &str, rest: &str) -> Result<StoreUrl, String> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(format!(
            "{text:?}: query parameters are not supported; pagerbridge sets the SQLite \
             options itself"
        ));
    }
    if path.is_empty() || path.starts_with(':') {
        return Err(format!(
            "{text:?}: give the path of a database file (an in-memory database would lose \
             the outbox), e.g. \"sqlite:///var/lib/pagerbridge/pagerbridge.db\""
        ));
    }
    Ok(StoreUrl::Sqlite {
        path: PathBuf::from(path),
    })
}

/// Checks the shape only; the database is reached at start. The text may hold a password, so
/// no message repeats it.
fn postgres(text: &str) -> Result<StoreUrl, String> {
    let parsed = url::Url::parse(text).map_err(|e| {
        format!(
            "not a valid PostgreSQL URL ({e}); expected e.g. \
             \"postgres://pagerbridge@db.example.com:5432/pagerbridge?sslmode=require\""
        )
    })?;
    if parsed.password().is_some() || parsed.query_pairs().any(|(k, _)| k == "password") {
        return Err(
            "the URL holds a password, which would show wherever the URL is printed: remove it \
             and set store.password (e.g. { env = \"PAGERBRIDGE_DB_PASSWORD\" } or \
             { file = \"...\" }), or use PGPASSWORD or ~/.pgpass"
                .to_owned(),
        );
    }
    let database = parsed.path().trim_start_matches('/');
    if database.is_empty() && !parsed.query_pairs().any(|(k, _)| k == "dbname") {
        return Err(format!(
            "{text:?}: name the database, e.g. \"postgres://pagerbridge@db.example.com/pagerbridge\""
        ));
    }
    Ok(StoreUrl::Postgres {
        url: text.to_owned(),
    })
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres { url } => f.write_str(url),
        }
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms() {
        let path = |s: &str| match s.parse::<StoreUrl>().unwrap() {
            StoreUrl::Sqlite { path } => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(path("sqlite:///var/lib/p.db"), Path::new("/var/lib/p.db"));
        assert_eq!(path("sqlite://data/p.db"), Path::new("data/p.db"));
        assert_eq!(path("sqlite:p.db"), Path::new("p.db"));
        assert_eq!(path("SQLite:///x y/p.db"), Path::new("/x y/p.db"));
    }

    #[test]
    fn postgres_forms() {
        for url in [
            "postgres://pagerbridge@db1/pagerbridge",
            "postgresql://pagerbridge@db1:5433/pb?sslmode=require",
            "postgres:///pagerbridge?host=/run/postgresql",
        ] {
            assert_eq!(
                url.parse::<StoreUrl>().unwrap(),
                StoreUrl::Postgres { url: url.into() }
            );
        }
    }

    #[test]
    fn other_urls_are_refused_with_a_reason() {
        let err = |s: &str| s.parse::<StoreUrl>().unwrap_err();
        assert!(err("mysql://h/db").contains("`mysql`"));
        assert!(err("/var/lib/p.db").contains("not a database URL"));
        assert!(err("sqlite::memory:").contains("in-memory"));
        assert!(err("sqlite://").contains("path"));
        assert!(err("sqlite:///p.db?mode=rwc").contains("query"));
        assert!(err("postgres://u@h").contains("name the database"));
        assert!(err("postgres://u@h:notaport/db").contains("not a valid PostgreSQL URL"));
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        for url in [
            "postgres://u:hunter2@h/db",
            "postgres://u@h/db?password=hunter2",
        ] {
            let e = url.parse::<StoreUrl>().unwrap_err();
            assert!(e.contains("store.password"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_password_goes_into_the_driver_url_only() {
        let pg = PostgresLocation::new(
            "postgres://pb@db1/pagerbridge?sslmode=require",
            Some(Secret::new("p@ss/word")),
        );
        assert_eq!(
            pg.connect_url(),
            "postgres://pb:p%40ss%2Fword@db1/pagerbridge?sslmode=require"
        );
        assert_eq!(pg.url(), "postgres://pb@db1/pagerbridge?sslmode=require");
        let shown = format!("{pg:?} {}", StoreLocation::Postgres(pg.clone()));
        assert!(!shown.contains("p@ss"), "{shown}");
        let socket = PostgresLocation::new(
            "postgres:///pagerbridge?host=/run/postgresql",
            Some(Secret::new("pw")),
        );
        assert!(
            socket.connect_url().ends_with("&password=pw"),
            "{}",
            socket.connect_url()
        );
        let none = PostgresLocation::new("postgres://pb@db1/pagerbridge", None);
        assert_eq!(none.connect_url(), "postgres://pb@db1/pagerbridge");
    }
}
