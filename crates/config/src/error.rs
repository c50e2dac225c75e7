//! What is wrong with a configuration, said so that the reader can find the spot.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The path as given to `Config::load`.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in file order; `Display` prints one per line.
    #[error("{}", display_lines(problems))]
    Invalid {
        /// At least one.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found; empty for [`ConfigError::Read`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

fn display_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One thing wrong with a configuration.
///
/// Displays as `pagerbridge.toml:12:5: outbox.rate_limit.burst: 200 must not exceed
/// events_per_minute (100)`; the position and field are left out when not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name as given to the loader (or the origin name given to `from_str`).
    pub origin: String,
    /// 1-based line and column (in characters) of the offending key or value.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the field, e.g. `outbox.rate_limit.burst`.
    pub field: Option<String>,
    /// What is wrong, without the location.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// 1-based line and column (counted in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\n[é]\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        let b = text.find("bé").unwrap();
        assert_eq!(line_column(text, b + "bé".len()), (3, 3));
        assert_eq!(line_column(text, text.len()), (4, 1));
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        let mut p = Problem {
            origin: "pagerbridge.toml".into(),
            position: Some((12, 5)),
            field: Some("outbox.rate_limit.burst".into()),
            message: "200 must not exceed events_per_minute (100)".into(),
        };
        assert_eq!(
            p.to_string(),
            "pagerbridge.toml:12:5: outbox.rate_limit.burst: 200 must not exceed events_per_minute (100)"
        );
        p.position = None;
        p.field = None;
        assert_eq!(
            p.to_string(),
            "pagerbridge.toml: 200 must not exceed events_per_minute (100)"
        );
    }
}
