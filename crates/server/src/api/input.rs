//! Reading what a request carries: query parameters (declared once per route, for the parser and
//! the OpenAPI document alike), path segments and JSON bodies, every mistake answered with the
//! field it is in.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorKind};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
}

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    /// Several texts: the parameter repeated, or comma-separated.
    List,
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Some of these words (repeated, or comma-separated).
    SomeOf(&'static [&'static str]),
}

impl ParamKind {
    fn repeatable(self) -> bool {
        matches!(self, ParamKind::List | ParamKind::SomeOf(_))
    }
}

/// A path or query parameter of a route.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub kind: ParamKind,
    pub description: &'static str,
    /// What applies when it is left out, as it would be written.
    pub default: Option<&'static str>,
}

impl Param {
    pub const fn path(name: &'static str, description: &'static str) -> Param {
        Param {
            name,
            location: In::Path,
            kind: ParamKind::Text,
            description,
            default: None,
        }
    }

    pub const fn query(name: &'static str, kind: ParamKind, description: &'static str) -> Param {
        Param {
            name,
            location: In::Query,
            kind,
            description,
            default: None,
        }
    }

    pub const fn or(self, default: &'static str) -> Param {
        Param {
            default: Some(default),
            ..self
        }
    }
}

/// Most list routes: `limit`, 1 to 100,000, 100 by default.
pub const LIMIT: Param = Param::query(
    "limit",
    ParamKind::Integer {
        min: 1,
        max: 100_000,
    },
    "At most this many.",
)
.or("100");

/// The query parameters of a request, checked against the route's declared ones.
#[derive(Debug)]
pub struct Query {
    params: &'static [Param],
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Refuses parameters the route does not take, values of the wrong kind and single-valued
    /// parameters given twice. `name[]` is read as `name` (PagerDuty's own style).
    pub fn parse(query: Option<&str>, params: &'static [Param]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::field("query", format!("query string: {e}")))?;
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.strip_suffix("[]").map(str::to_owned).unwrap_or(k), v))
            .collect();
        let q = Query { params, pairs };
        for (name, value) in &q.pairs {
            let Some(p) = q.param(name) else {
                let known: Vec<&str> = params
                    .iter()
                    .filter(|p| p.location == In::Query)
                    .map(|p| p.name)
                    .collect();
                let takes = if known.is_empty() {
                    "this route takes none".to_owned()
                } else {
                    format!("this route takes {}", known.join(", "))
                };
                return Err(ApiError::field(
                    name.as_str(),
                    format!("{name}: no such query parameter; {takes}"),
                ));
            };
            if !p.kind.repeatable() && q.pairs.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(ApiError::field(
                    name.as_str(),
                    format!("{name}: given more than once"),
                ));
            }
            check(p, value)?;
        }
        Ok(q)
    }

    fn param(&self, name: &str) -> Option<&'static Param> {
        self.params
            .iter()
            .find(|p| p.location == In::Query && p.name == name)
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| self.param(name).and_then(|p| p.default))
    }

    /// A text parameter; `None` when absent (or empty).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Every value of a repeatable parameter, as given (commas not split).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every value of a repeatable parameter, commas split, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        split(&self.all(name))
    }

    /// An integer parameter (checked at parse), or its default.
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.raw(name).and_then(|v| v.trim().parse().ok())
    }

    pub fn boolean(&self, name: &str) -> bool {
        self.raw(name).is_some_and(|v| v.trim() == "true")
    }
}

fn split(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check(p: &Param, value: &str) -> Result<(), ApiError> {
    let name = p.name;
    let v = value.trim();
    match p.kind {
        ParamKind::Text | ParamKind::List => Ok(()),
        ParamKind::Integer { min, max } => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(ApiError::field(
                name,
                format!("{name}: {value:?} is not a whole number from {min} to {max}"),
            )),
        },
        ParamKind::Boolean => match v {
            "true" | "false" => Ok(()),
            _ => Err(ApiError::field(
                name,
                format!("{name}: {value:?} is not true or false"),
            )),
        },
        ParamKind::OneOf(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(not_one_of(name, v, words))
            }
        }
        ParamKind::SomeOf(words) => {
            for item in split(&[value.to_owned()]) {
                if !words.contains(&item.as_str()) {
                    return Err(not_one_of(name, &item, words));
                }
            }
            Ok(())
        }
    }
}

fn not_one_of(name: &str, value: &str, words: &[&str]) -> ApiError {
    ApiError::field(
        name,
        format!("{name}: {value:?} is not one of {}", words.join(", ")),
    )
}

/// A path segment, percent-decoded; a segment that does not decode is a JSON 400 like any other
/// bad input.
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| PathText(s))
            .map_err(|e| ApiError::field("path", format!("path: {}", e.body_text())))
    }
}

/// A JSON object body.
#[derive(Debug)]
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorKind::TooLarge,
                    format!("body: larger than {BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::field("body", format!("body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::field("body", "body: send a JSON object"));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(fields)) => Ok(JsonBody(fields)),
            Ok(other) => Err(ApiError::field(
                "body",
                format!("body: expected a JSON object, got {}", type_name(&other)),
            )),
            Err(e) => Err(ApiError::field("body", format!("body: not JSON: {e}"))),
        }
    }
}

impl JsonBody {
    /// Refuses fields outside `allowed`, naming the first.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ApiError::field(
                k.as_str(),
                format!(
                    "{k}: no such field; this request takes {}",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// A string field; `None` when absent or null.
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// An array of strings (a single string is taken as a list of one).
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong_type(&format!("{name}[{i}]"), "a string", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(name, "an array of strings", other)),
        }
    }

    /// An array of integers.
    pub fn integers(&self, name: &str) -> Result<Option<Vec<i64>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .ok_or_else(|| wrong_type(&format!("{name}[{i}]"), "an integer", v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(name, "an array of integers", other)),
        }
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::field(
        field,
        format!("{field}: expected {expected}, got {}", type_name(got)),
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param] = &[
        Param::query("status", ParamKind::SomeOf(&["a", "b"]), "x"),
        Param::query("name", ParamKind::Text, "x"),
        LIMIT,
    ];

    #[test]
    fn queries_are_checked_against_the_declared_parameters() {
        let q = Query::parse(Some("status=a,b&status[]=a&name=x"), PARAMS).unwrap();
        assert_eq!(q.list("status"), ["a", "b", "a"]);
        assert_eq!(q.text("name"), Some("x"));
        assert_eq!(q.integer("limit"), Some(100));
        let field = |query: &str| Query::parse(Some(query), PARAMS).unwrap_err().field;
        assert_eq!(field("status=c").as_deref(), Some("status"));
        assert_eq!(field("limit=0").as_deref(), Some("limit"));
        assert_eq!(field("limit=100001").as_deref(), Some("limit"));
        assert_eq!(field("name=a&name=b").as_deref(), Some("name"));
        let e = Query::parse(Some("nmae=x"), PARAMS).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("nmae"));
        assert!(e.message.contains("status, name, limit"), "{}", e.message);
    }
}
