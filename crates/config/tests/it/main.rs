//! One test binary for the configuration crate: loading, errors, and docs that match the code.

mod docs;
mod errors;
mod loading;
mod monitors;
mod writeback_snippets;

use std::path::{Path, PathBuf};

use pagerbridge_config::{Config, ConfigError};

pub const ORIGIN: &str = "pagerbridge.toml";

/// The repository root, where `docs/` and `examples/` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An environment in which no variable is set.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Loads `text` as if it were `/srv/pagerbridge/pagerbridge.toml`, with an empty environment.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, ORIGIN, Path::new("/srv/pagerbridge"), &no_env)
}

/// The problems `text` has, as printed: one string per line.
pub fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected problems with:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

/// The single problem `text` has.
pub fn problem(text: &str) -> String {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    all.remove(0)
}
