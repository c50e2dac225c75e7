//! Checks HTTP exchanges against PagerDuty's published OpenAPI contracts.
//!
//! Test-support library: the emulator's tests feed every response (and the CLI's
//! tests every request body) through [`Contract::bundled`], so that drift from what
//! real PagerDuty promises is caught without network access. The three OpenAPI files
//! are bundled; the defects found in them are listed in [`KNOWN_DEFECTS`].

mod convert;
mod defects;
mod routing;
mod spec;

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::convert::Direction;
use crate::routing::{Route, path_only, pointer_token};
use crate::spec::{Spec, deref, operation_pointer};

pub use crate::defects::KNOWN_DEFECTS;
pub use crate::spec::Api;

const REST_JSON: &str = include_str!("../openapi/REST.openapi.json");
const EVENTS_V2_JSON: &str = include_str!("../openapi/events-v2.openapi.json");
const EVENTS_V1_JSON: &str = include_str!("../openapi/events-v1.openapi.json");

/// Messages beyond this many add noise, not information.
const MAX_MESSAGES: usize = 20;
/// Errors such as a failed `oneOf` quote the whole offending instance.
const MAX_MESSAGE_LEN: usize = 600;

/// PagerDuty's contract, with compiled validators cached per schema.
pub struct Contract {
    specs: Vec<Spec>,
    routes: Vec<Route>,
    stale: Vec<&'static str>,
}

/// Outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The body was validated against the documented schema.
    Validated,
    /// The exchange is documented, but without a schema for this body (no content
    /// documented, or a content type that is not JSON), so only routing and status
    /// were checked.
    NoSchema,
}

/// The exchange is not what PagerDuty documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    pub method: String,
    pub path: String,
    /// `None` when a request body was checked.
    pub status: Option<u16>,
    /// One line per problem; schema failures read
    /// `at <instance JSON pointer> [<keyword>]: <detail>`.
    pub messages: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.method.is_empty()) {
            (Some(status), _) => write!(f, "{} {} -> {status}", self.method, self.path)?,
            (None, true) => write!(f, "{}", self.path)?,
            (None, false) => write!(f, "{} {} (request body)", self.method, self.path)?,
        }
        f.write_str(" violates the PagerDuty contract:")?;
        for message in &self.messages {
            write!(f, "\n  - {message}")?;
        }
        Ok(())
    }
}

/// An example value that PagerDuty's spec gives for a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The response key it was found under (`"200"`, `"4XX"`, `"default"`).
    pub status: String,
    pub media_type: String,
    /// The name in `examples`, or `"example"` for a lone `example`.
    pub name: String,
    pub value: Value,
}

/// The bundled files could not be loaded; only possible with [`Contract::from_json`].
#[derive(Debug, thiserror::Error)]
#[error("cannot load {api:?} OpenAPI document: {reason}")]
pub struct LoadError {
    pub api: Api,
    pub reason: String,
}

struct Located<'c> {
    spec: &'c Spec,
    template: &'c str,
    method: String,
}

impl Contract {
    /// The contract built from the OpenAPI files bundled with this crate, loaded once
    /// per process.
    pub fn bundled() -> &'static Contract {
        static BUNDLED: OnceLock<Contract> = OnceLock::new();
        BUNDLED.get_or_init(|| {
            Contract::from_json(REST_JSON, EVENTS_V2_JSON, EVENTS_V1_JSON)
                // The files are compiled into the crate, so this is a build defect
                // that every test run would hit immediately.
                .unwrap_or_else(|e| panic!("bundled PagerDuty OpenAPI files are broken: {e}"))
        })
    }

    /// Builds a contract from the text of the three OpenAPI files, applying the
    /// known-defect workarounds.
    pub fn from_json(rest: &str, events_v2: &str, events_v1: &str) -> Result<Contract, LoadError> {
        let mut specs = Vec::new();
        let mut stale = Vec::new();
        for (api, text, workarounds) in [
            (Api::Rest, rest, defects::REST),
            (Api::EventsV2, events_v2, defects::EVENTS_V2),
            (Api::EventsV1, events_v1, defects::EVENTS_V1),
        ] {
            let mut raw: Value = serde_json::from_str(text).map_err(|e| LoadError {
                api,
                reason: e.to_string(),
            })?;
            stale.extend(defects::apply(&mut raw, workarounds));
            specs.push(Spec::new(api, raw).map_err(|reason| LoadError { api, reason })?);
        }
        let routes = specs
            .iter()
            .enumerate()
            .flat_map(|(i, spec)| {
                spec.templates()
                    .map(move |t| Route::new(i, &spec.prefix, t))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Contract {
            specs,
            routes,
            stale,
        })
    }

    /// Names of workarounds whose defect was not found in the loaded files; non-empty
    /// means PagerDuty changed a file and [`KNOWN_DEFECTS`] needs revisiting.
    pub fn stale_workarounds(&self) -> &[&'static str] {
        &self.stale
    }

    /// The published document (after workarounds) for `api`.
    pub fn document(&self, api: Api) -> &Value {
        &self.spec(api).raw
    }

    fn spec(&self, api: Api) -> &Spec {
        self.specs
            .iter()
            .find(|s| s.api == api)
            .expect("from_json loads every Api variant")
    }

    /// Which API and path template a concrete path (query string allowed) maps to.
    pub fn route(&self, path: &str) -> Option<(Api, &str)> {
        routing::find(&self.routes, path_only(path))
            .map(|r| (self.specs[r.spec].api, r.template.as_str()))
    }

    /// Validates one response. `path` is the concrete request path as sent; a query
    /// string is ignored. `content_type` is the response's `Content-Type` header;
    /// `None` is taken to mean the operation's JSON media type.
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Checked, Violation> {
        let violation = |messages: Vec<String>| Violation {
            method: method.to_owned(),
            path: path.to_owned(),
            status: Some(status),
            messages,
        };
        let located = self.locate(method, path).map_err(|m| violation(vec![m]))?;
        let view = located
            .spec
            .view(Direction::Response)
            .map_err(|m| violation(vec![m]))?;
        let doc = &*view.doc;
        let op_pointer = operation_pointer(located.template, &located.method);
        let responses = doc
            .pointer(&format!("{op_pointer}/responses"))
            .and_then(Value::as_object);
        let Some(key) = responses.and_then(|r| status_key(r, status)) else {
            let documented: Vec<&str> = responses
                .map(|r| r.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(violation(vec![format!(
                "undocumented status {status} for {} {} (documented: {})",
                located.method.to_uppercase(),
                located.template,
                documented.join(", ")
            )]));
        };
        let (response, response_pointer) = deref(
            doc,
            &format!("{op_pointer}/responses/{}", pointer_token(key)),
        )
        .ok_or_else(|| violation(vec![format!("response {key} has a dangling $ref")]))?;

        let content = response
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());
        let Some(content) = content else {
            if matches!(status, 204 | 304) && !body.is_empty() {
                return Err(violation(vec![format!(
                    "status {status} must not carry a body, got {} bytes",
                    body.len()
                )]));
            }
            return Ok(Checked::NoSchema);
        };
        let media_type = pick_media_type(content, content_type).ok_or_else(|| {
            let documented: Vec<&str> = content.keys().map(String::as_str).collect();
            violation(vec![format!(
                "content type {:?} is not documented for status {key} (documented: {})",
                content_type.unwrap_or(""),
                documented.join(", ")
            )])
        })?;
        if !is_json(media_type) || content[media_type].get("schema").is_none() {
            return Ok(Checked::NoSchema);
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| {
            violation(vec![format!(
                "body is not valid JSON ({e}) but {media_type} with a schema is documented"
            )])
        })?;
        let schema_pointer = format!(
            "{response_pointer}/content/{}/schema",
            pointer_token(media_type)
        );
        check(view, located.spec.api, &schema_pointer, &instance)
            .map(|()| Checked::Validated)
            .map_err(violation)
    }

    /// Validates a request body against the operation's `requestBody` JSON schema.
    /// Properties PagerDuty marks `readOnly` are ignored (neither required nor checked).
    pub fn validate_request(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), Violation> {
        let violation = |messages: Vec<String>| Violation {
            method: method.to_owned(),
            path: path.to_owned(),
            status: None,
            messages,
        };
        let located = self.locate(method, path).map_err(|m| violation(vec![m]))?;
        let view = located
            .spec
            .view(Direction::Request)
            .map_err(|m| violation(vec![m]))?;
        let op_pointer = operation_pointer(located.template, &located.method);
        let (request_body, body_pointer) = deref(&view.doc, &format!("{op_pointer}/requestBody"))
            .ok_or_else(|| {
            violation(vec![format!(
                "{} {} documents no request body",
                located.method.to_uppercase(),
                located.template
            )])
        })?;
        let content = request_body.get("content").and_then(Value::as_object);
        let media_type = content
            .and_then(|c| pick_media_type(c, None))
            .filter(|m| is_json(m))
            .ok_or_else(|| violation(vec!["no JSON request body is documented".to_owned()]))?;
        if content.and_then(|c| c[media_type].get("schema")).is_none() {
            return Ok(());
        }
        let schema_pointer = format!(
            "{body_pointer}/content/{}/schema",
            pointer_token(media_type)
        );
        check(view, located.spec.api, &schema_pointer, body).map_err(violation)
    }

    /// Validates `instance` as a response-side value of the component schema `name`
    /// (e.g. `"Incident"`), for unit tests of a single object. The violation's
    /// `method` is empty and its `path` is the schema's pointer.
    pub fn validate_schema(&self, api: Api, name: &str, instance: &Value) -> Result<(), Violation> {
        let pointer = format!("/components/schemas/{}", pointer_token(name));
        let violation = |messages: Vec<String>| Violation {
            method: String::new(),
            path: format!("#{pointer}"),
            status: None,
            messages,
        };
        let spec = self.spec(api);
        let view = spec
            .view(Direction::Response)
            .map_err(|m| violation(vec![m]))?;
        if view.doc.pointer(&pointer).is_none() {
            return Err(violation(vec![format!("{api:?} has no schema {name:?}")]));
        }
        check(view, api, &pointer, instance).map_err(violation)
    }

    /// The `example`/`examples` values PagerDuty documents for an operation's
    /// responses (`$ref`s to `#/components/examples` resolved), in spec order.
    pub fn response_examples(&self, method: &str, path: &str) -> Result<Vec<Example>, Violation> {
        let (located, op_pointer) = self.locate_for_examples(method, path)?;
        let doc = &located.spec.raw;
        let mut out = Vec::new();
        let responses = doc
            .pointer(&format!("{op_pointer}/responses"))
            .and_then(Value::as_object);
        for key in responses.into_iter().flat_map(|r| r.keys()) {
            let pointer = format!("{op_pointer}/responses/{}", pointer_token(key));
            if let Some((response, _)) = deref(doc, &pointer) {
                collect_examples(doc, response, key, &mut out);
            }
        }
        Ok(out)
    }

    /// The examples PagerDuty documents for an operation's request body; their
    /// `status` is `"request"`.
    pub fn request_examples(&self, method: &str, path: &str) -> Result<Vec<Example>, Violation> {
        let (located, op_pointer) = self.locate_for_examples(method, path)?;
        let doc = &located.spec.raw;
        let mut out = Vec::new();
        if let Some((body, _)) = deref(doc, &format!("{op_pointer}/requestBody")) {
            collect_examples(doc, body, "request", &mut out);
        }
        Ok(out)
    }

    fn locate_for_examples(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(Located<'_>, String), Violation> {
        let located = self.locate(method, path).map_err(|m| Violation {
            method: method.to_owned(),
            path: path.to_owned(),
            status: None,
            messages: vec![m],
        })?;
        let op_pointer = operation_pointer(located.template, &located.method);
        Ok((located, op_pointer))
    }

    fn locate(&self, method: &str, path: &str) -> Result<Located<'_>, String> {
        let bare = path_only(path);
        let route = routing::find(&self.routes, bare)
            .ok_or_else(|| format!("undocumented path {bare:?}: no path template matches"))?;
        let spec = &self.specs[route.spec];
        let method = method.to_ascii_lowercase();
        let item = spec
            .raw
            .pointer(&format!("/paths/{}", pointer_token(&route.template)))
            .and_then(Value::as_object);
        let documented: Vec<String> = item
            .into_iter()
            .flat_map(|i| i.iter())
            .filter(|(k, v)| convert::is_method(k) && v.is_object())
            .map(|(k, _)| k.to_uppercase())
            .collect();
        if !documented.contains(&method.to_uppercase()) {
            return Err(format!(
                "undocumented method {} for {:?} (template {}; documented: {})",
                method.to_uppercase(),
                bare,
                route.template,
                documented.join(", ")
            ));
        }
        Ok(Located {
            spec,
            template: &route.template,
            method,
        })
    }
}

/// Collects the `example` and `examples` of every media type of a response or
/// request body object.
fn collect_examples(doc: &Value, holder: &Value, status: &str, out: &mut Vec<Example>) {
    let content = holder.get("content").and_then(Value::as_object);
    for (media_type, media) in content.into_iter().flatten() {
        let example = |name: &str, value: &Value| Example {
            status: status.to_owned(),
            media_type: media_type.clone(),
            name: name.to_owned(),
            value: value.clone(),
        };
        if let Some(value) = media.get("example") {
            out.push(example("example", value));
        }
        let examples = media.get("examples").and_then(Value::as_object);
        for (name, entry) in examples.into_iter().flatten() {
            let resolved = match entry.get("$ref").and_then(Value::as_str) {
                Some(target) => target
                    .strip_prefix('#')
                    .and_then(|p| deref(doc, p))
                    .map(|(v, _)| v),
                None => Some(entry),
            };
            if let Some(value) = resolved.and_then(|e| e.get("value")) {
                out.push(example(name, value));
            }
        }
    }
}

/// Picks the response key for `status`: the exact code, then an `NXX` range, then
/// `default`, which is the precedence OpenAPI 3.0 defines.
fn status_key(responses: &serde_json::Map<String, Value>, status: u16) -> Option<&str> {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    responses
        .keys()
        .find(|k| **k == exact)
        .or_else(|| responses.keys().find(|k| k.eq_ignore_ascii_case(&range)))
        .or_else(|| responses.keys().find(|k| *k == "default"))
        .map(String::as_str)
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media_type: &str) -> bool {
    let e = essence(media_type);
    e == "application/json" || e.ends_with("+json")
}

/// Chooses the documented media type matching the `Content-Type` actually sent,
/// honouring `type/*` and `*/*` keys; with no header, the JSON one (or the only one).
fn pick_media_type<'c>(
    content: &'c serde_json::Map<String, Value>,
    content_type: Option<&str>,
) -> Option<&'c str> {
    let keys = || content.keys().map(String::as_str);
    match content_type {
        None => keys().find(|k| is_json(k)).or_else(|| keys().next()),
        Some(sent) => {
            let sent = essence(sent);
            let major = sent.split('/').next().unwrap_or("");
            keys()
                .find(|k| essence(k) == sent)
                .or_else(|| keys().find(|k| essence(k) == format!("{major}/*")))
                .or_else(|| keys().find(|k| essence(k) == "*/*"))
        }
    }
}

fn check(view: &spec::View, api: Api, pointer: &str, instance: &Value) -> Result<(), Vec<String>> {
    let validator = view.validator(api, pointer).map_err(|e| vec![e])?;
    let mut messages: Vec<String> = validator
        .iter_errors(instance)
        .take(MAX_MESSAGES + 1)
        .map(|error| {
            let mut message = describe(&error, 0);
            truncate(&mut message, MAX_MESSAGE_LEN);
            message
        })
        .collect();
    if messages.is_empty() {
        return Ok(());
    }
    if messages.len() > MAX_MESSAGES {
        messages.truncate(MAX_MESSAGES);
        messages.push("(further errors omitted)".to_owned());
    }
    Err(messages)
}

/// Renders one error as `at <instance pointer> [<keyword>]: <detail>`.
///
/// For `oneOf`/`anyOf` failures the library's own text quotes the whole instance and
/// says nothing about why; the alternative with the fewest errors is almost always
/// the one the author meant, so its errors are reported instead.
fn describe(error: &jsonschema::ValidationError<'_>, depth: usize) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at = error.instance_path().as_str();
    let at = if at.is_empty() { "(root)" } else { at };
    let keyword = error.kind().keyword();
    let detail = match error.kind() {
        Kind::OneOfNotValid { context } | Kind::AnyOf { context } if depth < 3 => {
            // An alternative rejected only for its type at this very location
            // (the `null` branch of a nullable, say) is the least informative one.
            let wrong_type_here = |errors: &Vec<jsonschema::ValidationError<'static>>| {
                errors.iter().all(|e| {
                    e.kind().keyword() == "type" && e.instance_path() == error.instance_path()
                })
            };
            let closest = context
                .iter()
                .enumerate()
                .filter(|(_, errors)| !errors.is_empty())
                .min_by_key(|(_, errors)| (wrong_type_here(errors), errors.len()));
            match closest {
                Some((index, errors)) => format!(
                    "matches none of the {} alternatives; closest is #{index}: {}",
                    context.len(),
                    errors
                        .iter()
                        .take(3)
                        .map(|e| describe(e, depth + 1))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                None => error.to_string(),
            }
        }
        Kind::OneOfMultipleValid { context } => {
            let valid: Vec<String> = context
                .iter()
                .enumerate()
                .filter(|(_, errors)| errors.is_empty())
                .map(|(i, _)| format!("#{i}"))
                .collect();
            format!(
                "matches more than one of the {} alternatives ({})",
                context.len(),
                valid.join(", ")
            )
        }
        _ => error.to_string(),
    };
    format!("at {at} [{keyword}]: {detail}")
}

fn truncate(message: &mut String, max: usize) {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
}
