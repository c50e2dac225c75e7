//! The checks that run after deserializing: ranges, fields that constrain each other, secrets.
//!
//! Serde stops at the first error; these checks collect every problem, so one start shows them
//! all. They find each field's line in the parsed document by its dotted path, so the structs
//! stay plain types.

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::error::{Problem, line_column};
use crate::secret::Secret;

/// Collects the problems of one configuration file.
pub(crate) struct Validator<'a> {
    origin: &'a str,
    text: &'a str,
    root: &'a DeTable<'a>,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    purpose: Purpose,
}

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// The daemon and `config check`: everything is read and checked.
    #[default]
    Daemon,
    /// The one-shot commands that store events or read the queue (`send`, `event`, `queue`,
    /// `route test`). They run in the monitor's environment, as the monitor's user (a Nagios
    /// notification command), where the daemon's own secrets and files (the REST API token,
    /// webhook secrets, sources' tokens, monitors' credentials and CA files, the HTTP API's
    /// tokens) are neither available nor needed: those are checked for shape only, not read.
    Enqueue,
}

/// Secrets only the daemon uses (see [`Purpose::Enqueue`]).
fn daemon_only(field: &str) -> bool {
    field == "pagerduty.api_token"
        || field.starts_with("sync.")
        || field.starts_with("monitors[")
        || field.starts_with("api.")
        || (field.starts_with("sources[") && field.contains(".auth."))
}

impl<'a> Validator<'a> {
    pub(crate) fn new(
        origin: &'a str,
        text: &'a str,
        root: &'a DeTable<'a>,
        base_dir: &'a Path,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Validator {
            origin,
            text,
            root,
            base_dir,
            env,
            problems: Vec::new(),
            purpose: Purpose::Daemon,
        }
    }

    pub(crate) fn for_purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = purpose;
        self
    }

    /// Whether what only the daemon uses is to be read and checked.
    pub(crate) fn daemon(&self) -> bool {
        self.purpose == Purpose::Daemon
    }

    /// Whether the file sets `field` (a dotted path), as opposed to it taking its default.
    pub(crate) fn is_set(&self, field: &str) -> bool {
        lookup(self.root, field).is_some()
    }

    /// Records a problem with `field`, located at its value (or, when the file does not set
    /// it, at the nearest enclosing table it does set).
    pub(crate) fn problem(&mut self, field: &str, message: impl Display) {
        let mut path = field;
        let span = loop {
            if let Some(span) = lookup(self.root, path) {
                break Some(span);
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => break None,
            }
        };
        self.problems.push(Problem {
            origin: self.origin.to_owned(),
            position: span.map(|s| line_column(self.text, s.start)),
            field: Some(field.to_owned()),
            message: message.to_string(),
        });
    }

    /// Reads an `env` or `file` secret, recording why it could not be read.
    pub(crate) fn secret(&mut self, field: &str, secret: &mut Option<Secret>) {
        if !self.daemon() && daemon_only(field) {
            return;
        }
        if let Some(secret) = secret
            && let Err(message) = secret.resolve(self.base_dir, self.env)
        {
            self.problem(field, message);
        }
    }

    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

/// Turns a deserialization or syntax error into a problem, naming the field it points at.
pub(crate) fn toml_problem(
    origin: &str,
    text: &str,
    root: Option<&DeTable<'_>>,
    error: &toml::de::Error,
) -> Problem {
    let span = error.span();
    Problem {
        origin: origin.to_owned(),
        position: span.as_ref().map(|s| line_column(text, s.start)),
        field: span.and_then(|s| root.and_then(|r| field_at(r, s.start))),
        message: error.message().trim_end().to_owned(),
    }
}

/// The span of the value at a dotted path such as `outbox.retry.max_delay` or `sources[2].url`.
fn lookup(root: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let (name, indexes) = split_indexes(first)?;
    let mut value = get(root, name)?;
    for index in indexes {
        value = index_into(value, index)?;
    }
    for segment in segments {
        let (name, indexes) = split_indexes(segment)?;
        let DeValue::Table(table) = value.get_ref() else {
            return None;
        };
        value = get(table, name)?;
        for index in indexes {
            value = index_into(value, index)?;
        }
    }
    Some(value.span())
}

type SpannedValue<'i> = toml::Spanned<DeValue<'i>>;

fn get<'t, 'i>(table: &'t DeTable<'i>, name: &str) -> Option<&'t SpannedValue<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == name)
        .map(|(_, v)| v)
}

fn index_into<'t, 'i>(value: &'t SpannedValue<'i>, index: usize) -> Option<&'t SpannedValue<'i>> {
    match value.get_ref() {
        DeValue::Array(items) => items.get(index),
        _ => None,
    }
}

/// `name[1][2]` into `name` and `[1, 2]`.
fn split_indexes(segment: &str) -> Option<(&str, Vec<usize>)> {
    let Some(open) = segment.find('[') else {
        return Some((segment, Vec::new()));
    };
    let indexes = segment[open..]
        .split_terminator(']')
        .map(|part| part.strip_prefix('[')?.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    Some((&segment[..open], indexes))
}

/// The dotted path of the deepest key whose key or value covers `offset`.
fn field_at(root: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut path = String::new();
    field_in_table(root, offset, &mut path).then_some(path)
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

fn field_in_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        // Deeper first: the span of a `[header]` table can cover the keys inside it.
        if field_in_value(value, offset, path)
            || covers(&key.span(), offset)
            || covers(&value.span(), offset)
        {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn field_in_value(value: &SpannedValue<'_>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => field_in_table(table, offset, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if field_in_value(item, offset, path) || covers(&item.span(), offset) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DeTable<'_> {
        DeTable::parse(text).unwrap().into_inner()
    }

    #[test]
    fn looks_up_dotted_paths_and_array_items() {
        let text = "top = 1\n[a.b]\nc = \"x\"\n[[list]]\nk = 1\n[[list]]\nk = 22\n";
        let root = parse(text);
        assert_eq!(&text[lookup(&root, "top").unwrap()], "1");
        assert_eq!(&text[lookup(&root, "a.b.c").unwrap()], "\"x\"");
        assert_eq!(&text[lookup(&root, "list[1].k").unwrap()], "22");
        assert_eq!(lookup(&root, "a.b.d"), None);
        assert_eq!(lookup(&root, "list[2].k"), None);
        assert_eq!(lookup(&root, "top.x"), None);
    }

    #[test]
    fn finds_the_field_at_an_offset() {
        let text = "top = 1\n[a.b]\nc = \"x\"\n[[list]]\nk = 1\n[[list]]\nk = 22\n";
        let root = parse(text);
        let at = |needle: &str| field_at(&root, text.find(needle).unwrap());
        assert_eq!(at("1\n").as_deref(), Some("top"));
        assert_eq!(at("\"x\"").as_deref(), Some("a.b.c"));
        assert_eq!(at("c =").as_deref(), Some("a.b.c"));
        assert_eq!(at("22").as_deref(), Some("list[1].k"));
    }
}
