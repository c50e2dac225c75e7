//! Conditions, compiled once when the configuration loads.

use regex::Regex;
use serde_json::Value;

use crate::spec::MatchSpec;

#[derive(Debug, Clone)]
pub enum Matcher {
    All(Vec<Matcher>),
    Any(Vec<Matcher>),
    Not(Box<Matcher>),
    Field { path: Vec<String>, test: Test },
}

#[derive(Debug, Clone)]
pub enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Regex(Regex),
    Exists(bool),
    Compare { op: Cmp, value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A problem in a match specification: where (`all[1].regex`) and what.
pub type SpecError = (String, String);

fn at(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The regex crate explains errors over several lines with a caret under the spot; the last
/// line says what is wrong, which is what fits a one-line problem report.
fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or(&text);
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

/// Whole-value regex: anchored, as Alertmanager's matchers are, so `db` does not match `db-old`.
fn anchored(re: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{re})$"))
}

/// `*` any run of characters, `?` one character; everything else literal.
fn glob_to_regex(glob: &str) -> String {
    let mut re = String::with_capacity(glob.len() + 8);
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re
}

pub fn compile(spec: &MatchSpec, path: &str) -> Result<Matcher, Vec<SpecError>> {
    let mut errors = Vec::new();
    let combinators = [
        spec.all.is_some(),
        spec.any.is_some(),
        spec.not.is_some(),
        spec.field.is_some(),
    ];
    let n = combinators.iter().filter(|b| **b).count();
    if n != 1 {
        return Err(vec![(
            if path.is_empty() {
                "match".into()
            } else {
                path.to_owned()
            },
            format!("give exactly one of `all`, `any`, `not` or `field` (found {n})"),
        )]);
    }
    let list = |items: &Vec<MatchSpec>, name: &str, errors: &mut Vec<SpecError>| -> Vec<Matcher> {
        if items.is_empty() {
            errors.push((at(path, name), "must list at least one condition".into()));
        }
        items
            .iter()
            .enumerate()
            .filter_map(
                |(i, m)| match compile(m, &format!("{}[{i}]", at(path, name))) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                },
            )
            .collect()
    };
    let m = if let Some(items) = &spec.all {
        Matcher::All(list(items, "all", &mut errors))
    } else if let Some(items) = &spec.any {
        Matcher::Any(list(items, "any", &mut errors))
    } else if let Some(inner) = &spec.not {
        match compile(inner, &at(path, "not")) {
            Ok(m) => Matcher::Not(Box::new(m)),
            Err(e) => return Err(e),
        }
    } else {
        let field = spec.field.as_deref().unwrap_or_default();
        if field.trim().is_empty() {
            errors.push((at(path, "field"), "must name a field of the alert".into()));
        }
        let mut tests = Vec::new();
        if let Some(v) = &spec.equals {
            tests.push(Test::Equals(to_json(v)));
        }
        if let Some(vs) = &spec.one_of {
            tests.push(Test::OneOf(vs.iter().map(to_json).collect()));
        }
        for (name, re) in [
            ("regex", spec.regex.clone()),
            ("glob", spec.glob.as_deref().map(glob_to_regex)),
        ] {
            if let Some(re) = re {
                match anchored(&re) {
                    Ok(r) => tests.push(Test::Regex(r)),
                    Err(e) => errors.push((
                        at(path, name),
                        format!("not a valid regular expression: {}", one_line(&e)),
                    )),
                }
            }
        }
        if let Some(b) = spec.exists {
            tests.push(Test::Exists(b));
        }
        for (op, v) in [
            (Cmp::Gt, spec.gt),
            (Cmp::Gte, spec.gte),
            (Cmp::Lt, spec.lt),
            (Cmp::Lte, spec.lte),
        ] {
            if let Some(value) = v {
                tests.push(Test::Compare { op, value });
            }
        }
        // Counted from what was written, so a comparison that failed to compile is not also
        // reported as missing.
        let given = [
            spec.equals.is_some(),
            spec.one_of.is_some(),
            spec.regex.is_some(),
            spec.glob.is_some(),
            spec.exists.is_some(),
            spec.gt.is_some(),
            spec.gte.is_some(),
            spec.lt.is_some(),
            spec.lte.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            errors.push((
                at(path, "field"),
                format!(
                    "give exactly one comparison with `field` (equals, one_of, regex, glob, exists, gt, gte, lt, lte); found {given}"
                ),
            ));
        }
        Matcher::Field {
            path: field.split('.').map(str::to_owned).collect(),
            test: tests.pop().unwrap_or(Test::Exists(true)),
        }
    };
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}

/// The value at a dotted path in the alert's JSON form (`labels.team`, `details.disk.free`).
pub fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match v {
        Value::Object(o) => o.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(actual: &Value, expected: &Value) -> bool {
    match expected {
        Value::Number(_) => number(actual)
            .zip(number(expected))
            .is_some_and(|(a, b)| a == b),
        Value::String(s) => text(actual).is_some_and(|a| a == *s),
        other => actual == other,
    }
}

impl Matcher {
    pub fn matches(&self, alert: &Value) -> bool {
        match self {
            Matcher::All(ms) => ms.iter().all(|m| m.matches(alert)),
            Matcher::Any(ms) => ms.iter().any(|m| m.matches(alert)),
            Matcher::Not(m) => !m.matches(alert),
            Matcher::Field { path, test } => {
                let v = lookup(alert, path).filter(|v| !v.is_null());
                match (test, v) {
                    (Test::Exists(want), v) => v.is_some() == *want,
                    (_, None) => false,
                    (Test::Equals(e), Some(v)) => equal(v, e),
                    (Test::OneOf(es), Some(v)) => es.iter().any(|e| equal(v, e)),
                    (Test::Regex(r), Some(v)) => text(v).is_some_and(|t| r.is_match(&t)),
                    (Test::Compare { op, value }, Some(v)) => number(v).is_some_and(|n| match op {
                        Cmp::Gt => n > *value,
                        Cmp::Gte => n >= *value,
                        Cmp::Lt => n < *value,
                        Cmp::Lte => n <= *value,
                    }),
                }
            }
        }
    }
}
