//! The store the configuration names, picked by its URL's scheme: SQLite (one daemon, which
//! locks its data directory) or PostgreSQL (several replicas on one database). Past opening,
//! everything works on `Arc<dyn Store>` and `Arc<dyn SyncStore>`.

use std::sync::Arc;
use std::time::Duration;

use pagerbridge_config::StoreLocation;
use pagerbridge_store::postgres::PgStore;
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{Store, StoreError, SyncStore};

/// Who opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// `pagerbridge serve`.
    Daemon,
    /// A process that writes a few rows and exits (`send`, `event`, `queue`).
    Brief,
}

/// An open store.
#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Backend {
    /// Opens (creating the SQLite file, or PostgreSQL's tables, if needed) the store at
    /// `location`. Errors name the file or the URL, never a password.
    pub async fn open(location: &StoreLocation, usage: Usage) -> Result<Backend, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => {
                let store = match usage {
                    Usage::Daemon => SqliteStore::open(path).await?,
                    Usage::Brief => SqliteStore::open_brief(path).await?,
                };
                Ok(Backend::Sqlite(Arc::new(store)))
            }
            StoreLocation::Postgres(pg) => {
                // Its errors name the database by its URL, password masked.
                let store = PgStore::connect(&pg.connect_url()).await?;
                Ok(Backend::Postgres(Arc::new(store)))
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }

    pub fn sync_store(&self) -> Arc<dyn SyncStore> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }

    /// Whether other daemons may share this store (and so elect a leader).
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// `sqlite` or `postgres`, for logs and the status page.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the store once nothing else holds it (the group-commit writer and the last lane
    /// tasks end on their own just after the daemon's tasks), waiting at most `patience`: SQLite
    /// then checkpoints its log into the database, PostgreSQL's connections end cleanly.
    pub async fn close(self, patience: Duration) {
        match self {
            Backend::Sqlite(s) => {
                if let Some(s) = sole_owner(s, patience).await {
                    s.close().await;
                }
            }
            Backend::Postgres(s) => {
                if let Some(s) = sole_owner(s, patience).await {
                    s.close().await;
                }
            }
        }
    }
}

/// `store` itself once this is its last holder, or `None` past `patience`.
async fn sole_owner<T>(mut store: Arc<T>, patience: Duration) -> Option<T> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match Arc::try_unwrap(store) {
            Ok(s) => return Some(s),
            Err(s) if tokio::time::Instant::now() < deadline => {
                store = s;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => {
                tracing::warn!("the store is still in use; leaving it without closing it cleanly");
                return None;
            }
        }
    }
}
