//! Where the outbox is, for the commands that work on it beside the daemon (`event`, `queue`,
//! `send`).
//!
//! They open the store the daemon uses: the same SQLite file, without its data-directory lock
//! (SQLite serialises writers across processes, the store sets a busy timeout), or the same
//! PostgreSQL database the replicas share. These commands must work whether the daemon runs or
//! not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagerbridge_config::{Config, DEFAULT_DATABASE_FILE, Purpose, StoreLocation};
use pagerbridge_server::backend::{Backend, Usage};
use pagerbridge_store::{Store, StoreError, SyncStore};

/// The environment variables are read here rather than by clap, so that a flag given on the
/// command line wins over the other option's variable (an operator's `--data-dir` while the
/// shell exports `PAGERBRIDGE_CONFIG` for the daemon) instead of conflicting with it.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The daemon's configuration file: the outbox is the database it names (`store.url`, a
    /// SQLite file or a PostgreSQL database, or `pagerbridge.db` in `server.data_dir`).
    /// [env: PAGERBRIDGE_CONFIG]
    #[arg(
        long,
        short,
        global = true,
        value_name = "FILE",
        help_heading = "Outbox location",
        conflicts_with = "data_dir"
    )]
    pub config: Option<PathBuf>,

    /// The daemon's data directory: the outbox is DIR/pagerbridge.db. Without this and
    /// `--config` (nor their variables): ./pagerbridge-data, the default configuration's.
    /// [env: PAGERBRIDGE_DATA_DIR]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Outbox location"
    )]
    pub data_dir: Option<PathBuf>,
}

pub const CONFIG_ENV: &str = "PAGERBRIDGE_CONFIG";
pub const DATA_DIR_ENV: &str = "PAGERBRIDGE_DATA_DIR";

/// Why the outbox could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration file is missing or invalid: the caller's to fix.
    #[error("{0}")]
    Config(#[from] pagerbridge_config::ConfigError),
    /// There is no outbox where the arguments point (only when it must already exist).
    #[error(
        "no outbox at {0}: neither the daemon nor `pagerbridge event` has used it yet (check --config / --data-dir)"
    )]
    Missing(PathBuf),
    #[error(
        "both {CONFIG_ENV} and {DATA_DIR_ENV} are set: unset one, or say which with --config or --data-dir"
    )]
    Ambiguous,
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `at`: the file, or the database's URL (which holds no password).
    #[error("cannot open the outbox {at}: {source}")]
    Store { at: String, source: StoreError },
}

/// Whether to create the database when it does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// `event`: enqueueing before the daemon ever ran is normal.
    IfMissing,
    /// `queue`: a mistyped path must not show an empty queue.
    No,
}

impl OpenError {
    /// The exit code `event` and `queue` document: 2 for the caller's input, 3 for the store.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpenError::Config(_) | OpenError::Ambiguous => 2,
            _ => 3,
        }
    }
}

/// The outbox and the way back's tables of one store, as `queue` reads them.
pub trait OutboxStore: Store + SyncStore {}

impl<T: Store + SyncStore> OutboxStore for T {}

/// An open outbox, and where it is (for messages).
pub struct Outbox {
    store: Arc<dyn OutboxStore>,
    location: StoreLocation,
}

impl Outbox {
    pub fn store(&self) -> &dyn OutboxStore {
        self.store.as_ref()
    }

    /// The file or the URL, for messages; never a password.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }
}

impl std::ops::Deref for Outbox {
    type Target = dyn OutboxStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

impl StoreArgs {
    /// The store these arguments name: a flag, else an environment variable, else the default
    /// configuration's.
    pub fn location(&self) -> Result<StoreLocation, OpenError> {
        self.resolve().map(|(_, location)| location)
    }

    /// The configuration these arguments name (the defaults with `--data-dir`) and the
    /// store. `send` needs both: the rules and where to store.
    pub fn resolve(&self) -> Result<(Config, StoreLocation), OpenError> {
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let (config, data_dir) = match (&self.config, &self.data_dir) {
            (None, None) => match (env(CONFIG_ENV), env(DATA_DIR_ENV)) {
                (Some(_), Some(_)) => return Err(OpenError::Ambiguous),
                found => found,
            },
            (config, data_dir) => (config.clone(), data_dir.clone()),
        };
        if let Some(dir) = data_dir {
            let path = std::path::absolute(&dir)
                .unwrap_or(dir)
                .join(DEFAULT_DATABASE_FILE);
            return Ok((Config::default(), StoreLocation::Sqlite(path)));
        }
        let config = match config {
            Some(path) => Config::load_for(&path, Purpose::Enqueue)?,
            None => Config::default(),
        };
        let location = config.store_location();
        Ok((config, location))
    }

    pub async fn open(&self, create: Create) -> Result<Outbox, OpenError> {
        open_at(self.location()?, create).await
    }
}

/// Opens the outbox at `location`. A SQLite file's directory is created when `create` says
/// so; a PostgreSQL database must exist (its tables are created when missing).
pub async fn open_at(location: StoreLocation, create: Create) -> Result<Outbox, OpenError> {
    if let StoreLocation::Sqlite(path) = &location {
        match create {
            Create::IfMissing => create_parent(path)?,
            Create::No if !path.exists() => return Err(OpenError::Missing(path.clone())),
            Create::No => {}
        }
    }
    let store: Arc<dyn OutboxStore> = match Backend::open(&location, Usage::Brief).await {
        Ok(Backend::Sqlite(s)) => s,
        Ok(Backend::Postgres(s)) => s,
        Err(source) => {
            return Err(OpenError::Store {
                at: location.to_string(),
                source,
            });
        }
    };
    Ok(Outbox { store, location })
}

fn create_parent(db: &Path) -> Result<(), OpenError> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}
