//! Logging setup shared by every subcommand: a level or tracing filter, text or JSON lines,
//! to standard error or appended to a file that `SIGHUP` reopens (for logrotate).
//!
//! `serve` takes its settings from the configuration's `[log]` section; the command-line flags
//! (and their environment variables) win over it. The other commands use the flags alone.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use pagerbridge_config::{DEFAULT_LOG_LEVEL, LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// What the command line says about logging; `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub level: Option<String>,
    pub format: Option<LogFormat>,
    pub file: Option<PathBuf>,
}

/// Where each setting comes from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub level: String,
    /// `--log-level` or `log.level`, naming the level in errors.
    pub level_origin: &'static str,
    pub format: LogFormat,
    /// Absolute, or relative to the current directory (a flag's).
    pub file: Option<PathBuf>,
}

impl Flags {
    /// The settings: flags first, then the configuration's `[log]` (`file` resolved against
    /// the configuration file's directory), then the defaults.
    pub fn settings(&self, config: Option<(&LogConfig, Option<PathBuf>)>) -> Settings {
        let (level, level_origin) = match (&self.level, &config) {
            (Some(level), _) => (level.clone(), "--log-level"),
            (None, Some((log, _))) => (log.level.clone(), "log.level"),
            (None, None) => (DEFAULT_LOG_LEVEL.to_owned(), "--log-level"),
        };
        Settings {
            level,
            level_origin,
            format: self
                .format
                .or(config.as_ref().map(|(log, _)| log.format))
                .unwrap_or_default(),
            file: self
                .file
                .clone()
                .or_else(|| config.and_then(|(_, file)| file)),
        }
    }
}

/// Kept by a long-running command: reopens the log file on demand.
#[derive(Clone, Default)]
pub struct Handle {
    file: Option<Arc<LogFile>>,
}

impl Handle {
    /// The log file, if the log goes to one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref().map(|f| f.path.as_path())
    }

    /// Closes and reopens the log file (after logrotate moved it away).
    pub fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }
}

pub fn init(settings: &Settings) -> anyhow::Result<Handle> {
    let filter =
        EnvFilter::try_new(with_quiet_dependencies(&settings.level)).with_context(|| {
            format!(
                "{} {:?} is not a level or tracing filter",
                settings.level_origin, settings.level
            )
        })?;
    let (writer, ansi, handle) = match &settings.file {
        Some(path) => {
            let file = Arc::new(LogFile::open(path)?);
            let handle = Handle {
                file: Some(file.clone()),
            };
            (BoxMakeWriter::new(SharedFile(file)), false, handle)
        }
        // Colours only for a person at a terminal: journald gets plain text.
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
            Handle::default(),
        ),
    };
    let layer = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_ansi(ansi)
            .boxed(),
        // Every field a key of its own, beside `timestamp`, `level`, `target` and `message`:
        // what log collectors index.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .context("cannot set up logging")?;
    Ok(handle)
}

/// `level` with the store's SQL statements (logged by `sqlx` at `debug`, one line per
/// statement) kept at `warn`, unless the filter names `sqlx` itself: `debug` is for reading
/// what pagerbridge does.
fn with_quiet_dependencies(level: &str) -> String {
    if level.contains("sqlx") {
        level.to_owned()
    } else {
        format!("{level},sqlx=warn")
    }
}

/// Reopens the log file whenever the process gets `SIGHUP` (logrotate's `postrotate`). Runs
/// until the runtime stops; does nothing when the log goes to standard error, so that `SIGHUP`
/// keeps its usual meaning there.
pub async fn reopen_on_hangup(handle: Handle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Some(path) = handle.file().map(Path::to_path_buf) else {
            return;
        };
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: the log file will not be reopened");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match handle.reopen() {
                Ok(()) => tracing::info!(file = %path.display(), "reopened the log file (SIGHUP)"),
                // Still writing to the old file: nothing is lost, and the next SIGHUP tries again.
                Err(e) => tracing::error!(file = %path.display(), error = %e,
                    "cannot reopen the log file; still writing to the old one"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = handle;
}

/// A log file opened for appending, shared by every thread that logs.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> anyhow::Result<LogFile> {
        let file =
            append(path).with_context(|| format!("cannot open the log file {}", path.display()))?;
        Ok(LogFile {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let fresh = append(&self.path)?;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file.flush();
        *file = fresh;
        Ok(())
    }
}

/// Appending: several writers (a restarted daemon, `copytruncate`) never overwrite each other.
fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct SharedFile(Arc<LogFile>);

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = FileWriter<'a>;

    fn make_writer(&'a self) -> FileWriter<'a> {
        FileWriter(&self.0)
    }
}

struct FileWriter<'a>(&'a LogFile);

impl Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(buf)
    }

    /// One line, one lock: lines of two threads never interleave.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_configuration() {
        let log = LogConfig {
            level: "debug".into(),
            format: LogFormat::Json,
            file: Some("rel.log".into()),
        };
        let from_file = Some((&log, Some(PathBuf::from("/etc/pagerbridge/rel.log"))));
        let none = Flags::default();
        let s = none.settings(from_file.clone());
        assert_eq!(s.level, "debug");
        assert_eq!(s.level_origin, "log.level");
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(
            s.file.as_deref(),
            Some(Path::new("/etc/pagerbridge/rel.log"))
        );

        let flags = Flags {
            level: Some("warn".into()),
            format: Some(LogFormat::Text),
            file: Some("here.log".into()),
        };
        let s = flags.settings(from_file);
        assert_eq!(
            (s.level.as_str(), s.format, s.file.as_deref()),
            ("warn", LogFormat::Text, Some(Path::new("here.log")))
        );

        let s = none.settings(None);
        assert_eq!(
            (s.level.as_str(), s.format, s.file),
            ("info", LogFormat::Text, None)
        );
    }

    #[test]
    fn the_file_is_appended_to_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        std::fs::write(&path, "before\n").unwrap();
        let file = LogFile::open(&path).unwrap();
        FileWriter(&file).write_all(b"one\n").unwrap();
        // logrotate moves the file away, then signals.
        std::fs::rename(&path, dir.path().join("p.log.1")).unwrap();
        FileWriter(&file).write_all(b"two\n").unwrap();
        file.reopen().unwrap();
        FileWriter(&file).write_all(b"three\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.log.1")).unwrap(),
            "before\none\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
