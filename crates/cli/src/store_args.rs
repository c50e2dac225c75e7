//! Where the outbox is, for the commands that work on it beside the daemon (`event`, `queue`).
//!
//! They open the same SQLite file the daemon uses, without its data-directory lock: SQLite
//! serialises writers across processes (the store sets a busy timeout), and these commands must
//! work whether the daemon runs or not.

use std::path::{Path, PathBuf};

use pagerbridge_config::{Config, DEFAULT_DATABASE_FILE, Purpose};
use pagerbridge_store::StoreError;
use pagerbridge_store::sqlite::SqliteStore;

/// The environment variables are read here rather than by clap, so that a flag given on the
/// command line wins over the other option's variable (an operator's `--data-dir` while the
/// shell exports `PAGERBRIDGE_CONFIG` for the daemon) instead of conflicting with it.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The daemon's configuration file: the outbox is the database it names (`store.url`, or
    /// `pagerbridge.db` in `server.data_dir`). [env: PAGERBRIDGE_CONFIG]
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
    #[error("cannot open the outbox {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
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

impl StoreArgs {
    /// The database file these arguments name: a flag, else an environment variable, else
    /// the default configuration's.
    pub fn store_path(&self) -> Result<PathBuf, OpenError> {
        self.resolve().map(|(_, path)| path)
    }

    /// The configuration these arguments name (the defaults with `--data-dir`) and the
    /// database file. `send` needs both: the rules and where to store.
    pub fn resolve(&self) -> Result<(Config, PathBuf), OpenError> {
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
            return Ok((Config::default(), path));
        }
        let config = match config {
            Some(path) => Config::load_for(&path, Purpose::Enqueue)?,
            None => Config::default(),
        };
        let path = config.store_path();
        Ok((config, path))
    }

    pub async fn open(&self, create: Create) -> Result<SqliteStore, OpenError> {
        open_at(self.store_path()?, create).await
    }
}

/// Opens the outbox at `path`, creating its directory when `create` says so.
pub async fn open_at(path: PathBuf, create: Create) -> Result<SqliteStore, OpenError> {
    match create {
        Create::IfMissing => create_parent(&path)?,
        Create::No if !path.exists() => return Err(OpenError::Missing(path)),
        Create::No => {}
    }
    SqliteStore::open_brief(&path)
        .await
        .map_err(|source| OpenError::Store { path, source })
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
