//! `docs/configuration.md` and the code describe the same fields, defaults and examples.

use std::collections::BTreeSet;
use std::path::Path;

use pagerbridge_config::{Config, DEFAULT_DATABASE_FILE, MAX_IN_FLIGHT};

use super::{ORIGIN, parse, repo_root};

fn doc() -> String {
    std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap()
}

/// A row of a reference table: | `section.field` | type | default | description |
struct Row {
    field: String,
    kind: String,
    default: String,
    description: String,
}

fn rows(doc: &str) -> Vec<Row> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let field = single_code_span(cells.first()?)?;
            let is_path = field.contains('.')
                && field.split('.').all(|s| {
                    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
            if !is_path {
                return None;
            }
            assert_eq!(cells.len(), 4, "a field row has 4 cells: {line}");
            Some(Row {
                field: field.to_owned(),
                kind: cells[1].to_owned(),
                default: cells[2].to_owned(),
                description: cells[3].to_owned(),
            })
        })
        .collect()
}

/// `"x"` from "`x`" when the cell is exactly one code span.
fn single_code_span(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// The fields the code accepts, found by asking the deserializer: an unknown key in a table
/// makes serde list the table's fields; a key whose value is not a table is a leaf.
fn schema() -> BTreeSet<String> {
    fn walk(table: &str, out: &mut BTreeSet<String>) {
        // `not` holds another condition of the same shape: documented once, not walked.
        let recursive = table.ends_with(".not");
        let Some(fields) = probe(table).filter(|_| !recursive) else {
            out.insert(table.to_owned());
            return;
        };
        for field in fields {
            let path = if table.is_empty() {
                field
            } else {
                format!("{table}.{field}")
            };
            walk(&path, out);
        }
    }
    let mut out = BTreeSet::new();
    walk("", &mut out);
    out
}

/// Sections that are arrays of tables (`[[rules]]`, `[[api.tokens]]`): their fields are
/// documented as `rules.field`, under a `[[rules]]` heading.
const ARRAY_SECTIONS: &[&str] = &["rules", "sources", "monitors", "api.tokens"];

/// The array section `table` is, or is inside of: `rules` for `rules.match`.
fn array_section(table: &str) -> Option<&'static str> {
    ARRAY_SECTIONS
        .iter()
        .copied()
        .filter(|s| table == *s || table.starts_with(&format!("{s}.")))
        .max_by_key(|s| s.len())
}

/// The TOML header that opens `table`: `[a.b]`, or for a table inside an array section,
/// `[[rules]]` followed by `[rules.match]`.
fn header(table: &str) -> String {
    let Some(top) = array_section(table) else {
        return format!("[{table}]\n");
    };
    // An entry with its required fields, so that one more field can be set on its own.
    let mut text = format!("[[{top}]]\n");
    if top == "sources" {
        text.push_str("name = \"probe\"\nkind = \"grafana\"\n");
    }
    if top == "monitors" {
        text.push_str(
            "name = \"probe\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsources = [\"x\"]\n",
        );
    }
    if top == "api.tokens" {
        text.push_str("name = \"probe\"\ntoken = \"probe-token-0123456789\"\nscope = \"read\"\n");
    }
    if table != top {
        text.push_str(&format!("[{table}]\n"));
        if table == "sources.auth.hmac" {
            text.push_str("secret = \"s\"\n");
        }
    }
    text
}

fn probe(table: &str) -> Option<Vec<String>> {
    let text = if table.is_empty() {
        "__probe__ = 1\n".to_owned()
    } else {
        format!("{}__probe__ = 1\n", header(table))
    };
    // A table that takes any key (a map such as `rules.details`) is a leaf for the docs.
    let err = parse(&text).err()?.to_string();
    let (_, expected) = err.split_once("unknown field `__probe__`, expected ")?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn every_field_in_the_code_is_documented_and_vice_versa() {
    let schema = schema();
    assert!(schema.contains("outbox.rate_limit.burst"), "{schema:?}");
    assert!(schema.contains("pagerduty.api_token"), "{schema:?}");

    let doc = doc();
    let rows = rows(&doc);
    let documented: BTreeSet<String> = rows.iter().map(|r| r.field.clone()).collect();
    assert_eq!(documented.len(), rows.len(), "a field is documented twice");

    let undocumented: Vec<_> = schema.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&schema).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md is out of step with the code:\n  in the code, not documented: \
         {undocumented:?}\n  documented, not in the code: {unknown:?}"
    );

    for row in &rows {
        assert!(!row.kind.is_empty(), "{}: no type", row.field);
        assert!(
            row.description.len() > 20,
            "{}: no real description",
            row.field
        );
        // Each section's table sits under its heading.
        let section = row.field.rsplit_once('.').unwrap().0;
        let heading = match array_section(section) {
            Some(top) => format!("### `[[{top}]]`"),
            None => format!("### `[{section}]`"),
        };
        assert!(
            doc.contains(&heading),
            "{}: no heading {heading}",
            row.field
        );
    }
}

/// A default written as a TOML value must be the default: setting the field to it changes
/// nothing. Other defaults say what applies when the field is unset.
#[test]
fn documented_defaults_are_the_real_ones() {
    let doc = doc();
    let rows = rows(&doc);
    let defaults = parse("").unwrap();
    let mut checked = 0;
    for row in &rows {
        match single_code_span(&row.default) {
            Some(value) => {
                let (table, key) = row.field.rsplit_once('.').unwrap();
                let text = format!("{}{key} = {value}\n", header(table));
                let config = parse(&text).unwrap_or_else(|e| {
                    panic!(
                        "{}: documented default {value} does not load: {e}",
                        row.field
                    )
                });
                // In an array section, the default is that of one entry: the same entry
                // without the field.
                let expected = if header(table).starts_with("[[") {
                    parse(&header(table)).unwrap()
                } else {
                    defaults.clone()
                };
                assert_eq!(
                    config, expected,
                    "{}: documented default {value} is not the default",
                    row.field
                );
                checked += 1;
            }
            None => assert!(
                row.default.starts_with("unset"),
                "{}: a default is a TOML value in one code span, or starts with \"unset\": {}",
                row.field,
                row.default
            ),
        }
    }
    assert!(checked >= 15, "only {checked} defaults checked");

    // The defaults that are not TOML values.
    let row = |field: &str| rows.iter().find(|r| r.field == field).unwrap();
    assert!(row("store.url").default.contains(DEFAULT_DATABASE_FILE));
    assert!(row("store.url").default.contains("server.data_dir"));
    let region = &row("pagerduty.region").description;
    for url in [
        pagerduty::client::EVENTS_URL,
        pagerduty::client::REST_URL,
        pagerduty::client::EU_EVENTS_URL,
        pagerduty::client::EU_REST_URL,
    ] {
        assert!(region.contains(url), "pagerduty.region does not name {url}");
    }
    assert!(
        row("outbox.max_in_flight")
            .description
            .contains(&format!("From 1 to {MAX_IN_FLIGHT}"))
    );
}

#[test]
fn every_toml_example_in_the_docs_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/pagerduty-api-token"), "u+token\n").unwrap();
    let env = |_: &str| Some("u+token".to_owned());

    let doc = doc();
    let blocks = toml_blocks(&doc);
    assert!(blocks.len() >= 5, "found {} toml blocks", blocks.len());
    for block in blocks {
        if let Err(e) = Config::from_str_with_env(&block, ORIGIN, dir.path(), &env) {
            panic!("a TOML example in docs/configuration.md does not load:\n{e}\n{block}");
        }
    }
}

/// The rules examples, and that they route as the text says.
#[test]
fn the_rules_examples_load_and_route_as_described() {
    let doc = std::fs::read_to_string(repo_root().join("docs/rules.md")).unwrap();
    let blocks = toml_blocks(&doc);
    assert_eq!(blocks.len(), 3, "docs/rules.md examples");
    let configs: Vec<Config> = blocks
        .iter()
        .map(|b| {
            Config::from_str(b, "docs/rules.md", Path::new("/")).unwrap_or_else(|e| {
                panic!("a TOML example in docs/rules.md does not load:\n{e}\n{b}")
            })
        })
        .collect();
    let rules = configs[1].compiled_rules();
    let mut alert = pagerbridge_model::Alert::new(
        pagerbridge_model::SourceKind::Nagios,
        pagerbridge_model::AlertState::Problem,
        "s",
        "db7/disk",
    );
    alert.entity.host = Some("db7".into());
    alert.entity.service = Some("disk".into());
    alert.status = Some("CRITICAL".into());
    let routed: Vec<String> = match rules.route(&alert).unwrap() {
        pagerbridge_rules::Decision::Send { events } => {
            events.into_iter().filter_map(|e| e.rule).collect()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(routed, ["databases", "critical to operations too"]);
    alert.entity.host = Some("test-1".into());
    assert!(matches!(
        rules.route(&alert).unwrap(),
        pagerbridge_rules::Decision::Dropped { .. }
    ));
}

#[test]
fn the_docs_reproduce_the_example_file() {
    let example = std::fs::read_to_string(repo_root().join("examples/pagerbridge.toml")).unwrap();
    assert!(
        toml_blocks(&doc()).contains(&example),
        "docs/configuration.md must contain examples/pagerbridge.toml unchanged, as its \
         complete example"
    );
}

#[test]
fn the_error_examples_in_the_docs_are_real() {
    let doc = doc();
    let text = "\
[outbox]
max_in_flight = 32

[outbox.rate_limit]
burst = 200

[pagerduty]
region = \"us\"
api_token = { env = \"PAGERDUTY_API_TOKEN\" }
";
    let unknown = "[server]\nlisen = \"127.0.0.1:8080\"\n";
    for text in [text, unknown] {
        let err = Config::from_str_with_env(text, ORIGIN, Path::new("/"), &super::no_env)
            .unwrap_err()
            .to_string();
        assert!(
            doc.contains(&format!("```text\n{err}\n```")),
            "docs do not show:\n{err}"
        );
    }
}

fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}
