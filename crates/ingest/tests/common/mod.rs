//! Shared by the decoders' integration tests: fixtures and repository files, the documentation's
//! snippets, the shipped scripts' self-tests, and the never-a-panic properties.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use pagerbridge_ingest::DecodeError;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A change to a fixture, for tables of cases.
pub type Edit = Box<dyn Fn(&mut Value)>;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture_dir(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

pub fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = fixture_dir(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_json(dir: &str, name: &str) -> Value {
    serde_json::from_slice(&fixture(dir, name)).unwrap()
}

/// A file by its path from the repository's root.
pub fn repo_file(path: &str) -> String {
    let p = repo_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- documentation ----

/// The snippets a page of `docs/integrations/` shows are the files the end-to-end tests load, so
/// the page must show each of them exactly as it is.
pub fn assert_page_shows_snippets(page: &str, snippets: &[&str]) {
    let doc = repo_file(&format!("docs/integrations/{page}"));
    for snippet in snippets {
        let text = repo_file(&format!("docs/integrations/snippets/{snippet}"));
        assert!(
            doc.contains(&text),
            "docs/integrations/{page} does not include snippets/{snippet} verbatim"
        );
    }
}

/// The `[[sources]]` of a documented pagerbridge configuration, each checked to be of `kind`.
pub fn documented_sources(snippet: &str, kind: &str) -> Vec<toml::Value> {
    let cfg: toml::Table =
        toml::from_str(&repo_file(&format!("docs/integrations/snippets/{snippet}"))).unwrap();
    let sources = cfg["sources"].as_array().unwrap().clone();
    assert!(!sources.is_empty(), "{snippet} configures no source");
    for source in &sources {
        assert_eq!(source["kind"].as_str(), Some(kind), "{snippet}");
    }
    sources
}

// ---- the shipped scripts' self-tests ----

/// Debian packages of the interpreters the shipped scripts run under.
fn package_of(program: &str) -> &'static [&'static str] {
    match program {
        "node" => &["nodejs"],
        "lua5.3" => &["lua5.3"],
        other => panic!("no package known for {other}"),
    }
}

/// Runs a script of the repository under `program`, installing its interpreter when it is
/// missing (CI runs as root); `None`, with a loud SKIPPED, when it cannot be had.
pub fn run_script(program: &str, script: &str, args: &[&str]) -> Option<Output> {
    let path = pagerbridge_testkit::debian::installed_or_skip(program, package_of(program))?;
    let out = Command::new(&path)
        .arg(repo_root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    Some(out)
}

/// What a self-test that must succeed printed, as JSON (`None`: see [`run_script`]).
pub fn script_json(program: &str, script: &str) -> Option<Value> {
    let out = run_script(program, script, &[])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

// ---- never a panic ----

/// Any JSON, with a decoder's own words among the leaves (`extra_leaves`, each as likely as any
/// other kind of leaf) so that generated input gets past its first checks.
pub fn arb_json(extra_leaves: Vec<Value>) -> impl Strategy<Value = Value> {
    let extra = u32::try_from(extra_leaves.len()).unwrap();
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        1 => "[a-z0-9:/._ -]{0,12}".prop_map(Value::String),
        extra => prop::sample::select(extra_leaves),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

/// Removes (`None`) or replaces the node picked by `pick` among all nodes of `v`.
pub fn mutate(v: &mut Value, pick: usize, with: Option<Value>) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let p = &all[pick % all.len()];
    match with {
        Some(new) => {
            if let Some(slot) = v.pointer_mut(p) {
                *slot = new;
            }
        }
        None => {
            let (parent, last) = p.rsplit_once('/').unwrap();
            let last = last.replace("~1", "/").replace("~0", "~");
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Each edit of `base` makes `decode` fail with an error that names `field` and whose message
/// contains `message`; `what` says which edit failed.
pub fn assert_edits_fail<T: std::fmt::Debug>(
    base: &Value,
    cases: Vec<(&str, Edit, &str, &str)>,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    for (what, edit, field, message) in cases {
        let mut v = base.clone();
        edit(&mut v);
        let err = decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.field, field, "{what}: {err}");
        assert!(err.message.contains(message), "{what}: {err}");
    }
}

/// Removes (`None`) or replaces the field `key` of `obj`.
pub fn remove_or_replace(obj: &mut Map<String, Value>, key: &str, with: Option<&Value>) {
    match with {
        None => {
            obj.remove(key);
        }
        Some(junk) => {
            obj.insert(key.to_owned(), junk.clone());
        }
    }
}

/// A decoder may refuse anything, but an error about a JSON object must name the field at fault:
/// only a body that is no object can be wrong as a whole.
pub fn object_errors_name_a_field<T>(
    body: &[u8],
    decoded: Result<T, DecodeError>,
) -> Result<(), TestCaseError> {
    let is_object = matches!(serde_json::from_slice::<Value>(body), Ok(Value::Object(_)));
    if let Err(e) = decoded {
        prop_assert!(
            !is_object || !e.field.is_empty(),
            "an error about an object names a field: {e}"
        );
    }
    Ok(())
}

/// The never-a-panic properties of a JSON decoder's suite: `$check` (a `fn(&[u8]) ->
/// Result<(), TestCaseError>` that decodes a body) holds for arbitrary bytes, for `$arb_json`,
/// and for the fixtures `$files` of `tests/fixtures/{$dir}` with nodes removed or replaced.
#[allow(unused_macros)]
macro_rules! never_panic_properties {
    ($check:ident, $arb_json:expr, $dir:expr, $files:expr $(,)?) => {
        ::proptest::proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(
                body in ::proptest::collection::vec(::proptest::prelude::any::<u8>(), 0..256),
            ) {
                $check(&body)?;
            }

            #[test]
            fn arbitrary_json_never_panics(v in $arb_json) {
                $check(&::serde_json::to_vec(&v).unwrap())?;
            }

            #[test]
            fn mutated_fixtures_never_panic(
                which in 0..$files.len(),
                edits in ::proptest::collection::vec(
                    (
                        ::proptest::prelude::any::<usize>(),
                        ::proptest::option::of($arb_json),
                    ),
                    1..5,
                ),
            ) {
                let mut v = $crate::common::fixture_json($dir, $files[which]);
                for (pick, with) in edits {
                    $crate::common::mutate(&mut v, pick, with);
                }
                $check(&::serde_json::to_vec(&v).unwrap())?;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use never_panic_properties;
