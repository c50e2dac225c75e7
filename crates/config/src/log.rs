//! `[log]`: how much the daemon logs, in which format, and where to.
//!
//! The command line (`--log-level`, `--log-format`, `--log-file`, or `PAGERBRIDGE_LOG` and
//! `PAGERBRIDGE_LOG_FORMAT`) wins over this section.

use std::path::PathBuf;

use serde::Deserialize;

use crate::validate::Validator;

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter such as
    /// `"info,pagerbridge_sync=debug"`.
    pub level: String,
    /// `text` (one readable line per event) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Append the log to this file instead of writing it to standard error. A relative path is
    /// relative to the configuration file's directory; use [`crate::Config::log_file`] for the
    /// resolved path.
    pub file: Option<PathBuf>,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event, for people: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// `text` or `json`, as written in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{s:?} is not a log format: write \"text\" or \"json\""
            )),
        }
    }
}

/// The level when neither the file nor the command line sets one.
pub const DEFAULT_LOG_LEVEL: &str = "info";

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: DEFAULT_LOG_LEVEL.into(),
            format: LogFormat::Text,
            file: None,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self, v: &mut Validator<'_>) {
        if let Err(message) = check_level(&self.level) {
            v.problem("log.level", message);
        }
        if self.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            v.problem(
                "log.file",
                "must not be empty (leave it out to log to standard error)",
            );
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a level or tracing filter: comma-separated directives, each a level or
/// `target=level`. A bare word that is not a level would be read by tracing as a target
/// logged at every level, which is never what a misspelt `"inf"` meant, so it is refused.
/// Directives with span filters (`target[span]=level`) are left to tracing.
pub fn check_level(filter: &str) -> Result<(), String> {
    let known = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    if filter.trim().is_empty() {
        return Err("must not be empty: write a level such as \"info\"".into());
    }
    for directive in filter.split(',').map(str::trim) {
        if directive.contains('[') {
            continue;
        }
        let ok = match directive.rsplit_once('=') {
            Some((target, level)) => !target.is_empty() && known(level),
            None => known(directive),
        };
        if !ok {
            return Err(format!(
                "{directive:?} is not a level (error, warn, info, debug, trace, off) or \
                 `target=level`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_filters() {
        for ok in [
            "info",
            "DEBUG",
            "warn,pagerbridge_sync=debug",
            "h2=off",
            "a[b]=trace",
        ] {
            assert_eq!(check_level(ok), Ok(()), "{ok}");
        }
        for bad in ["", "inf", "info,", "=debug", "sqlx=verbose"] {
            assert!(check_level(bad).is_err(), "{bad}");
        }
    }
}
