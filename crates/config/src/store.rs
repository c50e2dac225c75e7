//! `[store]`: where the outbox is kept.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// `[store]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database. Unset: the SQLite file `pagerbridge.db` inside `server.data_dir`. Use
    /// [`crate::Config::store_url`] for the resolved URL.
    pub url: Option<StoreUrl>,
}

/// A database URL pagerbridge can use. Only SQLite for now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `sqlite:///absolute/path.db`, `sqlite://relative/path.db` or `sqlite:relative/path.db`;
    /// the path is kept as written (relative to the configuration file's directory).
    Sqlite {
        /// The database file, as written in the URL.
        path: PathBuf,
    },
}

impl StoreUrl {
    /// The canonical URL with the path made absolute against `base_dir`.
    pub(crate) fn resolved(&self, base_dir: &Path) -> String {
        match self {
            StoreUrl::Sqlite { path } => sqlite_url(&crate::absolute(base_dir, path)),
        }
    }
}

/// `sqlite:///abs/path`. The path is not percent-encoded: the store reads it literally.
pub(crate) fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is not a database URL; expected e.g. \
                 \"sqlite:///var/lib/pagerbridge/pagerbridge.db\""
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {}
            "postgres" | "postgresql" => {
                return Err(
                    "PostgreSQL is not supported yet: only sqlite:// store URLs are accepted for now"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "unsupported database scheme `{other}`: only sqlite:// is supported"
                ));
            }
        }
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
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
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
        };
        assert_eq!(path("sqlite:///var/lib/p.db"), Path::new("/var/lib/p.db"));
        assert_eq!(path("sqlite://data/p.db"), Path::new("data/p.db"));
        assert_eq!(path("sqlite:p.db"), Path::new("p.db"));
        assert_eq!(path("SQLite:///x y/p.db"), Path::new("/x y/p.db"));
    }

    #[test]
    fn other_urls_are_refused_with_a_reason() {
        let err = |s: &str| s.parse::<StoreUrl>().unwrap_err();
        assert!(err("postgres://u@h/db").contains("not supported yet"));
        assert!(err("postgresql://u@h/db").contains("not supported yet"));
        assert!(err("mysql://h/db").contains("`mysql`"));
        assert!(err("/var/lib/p.db").contains("not a database URL"));
        assert!(err("sqlite::memory:").contains("in-memory"));
        assert!(err("sqlite://").contains("path"));
        assert!(err("sqlite:///p.db?mode=rwc").contains("query"));
    }
}
