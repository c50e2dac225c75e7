//! One loaded OpenAPI document: its operations, and compiled validators per schema.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

use crate::convert::{Direction, convert_document};
use crate::routing::{fragment_encode, pointer_token};

/// Which of PagerDuty's APIs a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// REST API v2 (`https://api.pagerduty.com`).
    Rest,
    /// Events API v2 (`https://events.pagerduty.com/v2`).
    EventsV2,
    /// Legacy Events API v1 (`https://events.pagerduty.com/generic/2010-04-15`).
    EventsV1,
}

impl Api {
    pub(crate) fn uri(self) -> &'static str {
        match self {
            Api::Rest => "urn:pagerduty-contract:rest",
            Api::EventsV2 => "urn:pagerduty-contract:events-v2",
            Api::EventsV1 => "urn:pagerduty-contract:events-v1",
        }
    }
}

/// Compiling a validator may fail (a pattern the regex engine rejects, a dangling
/// `$ref`); the failure is cached too so it is reported consistently, not retried.
type Slot = Arc<OnceLock<Result<Arc<Validator>, String>>>;

/// The converted document for one direction, registered for `$ref` resolution.
pub(crate) struct View {
    pub(crate) doc: Arc<Value>,
    registry: Registry<'static>,
    validators: Mutex<HashMap<String, Slot>>,
}

impl View {
    fn new(api: Api, raw: &Value, direction: Direction) -> Result<View, String> {
        let doc = Arc::new(convert_document(raw, direction));
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(api.uri(), Arc::clone(&doc))
            .and_then(|b| b.prepare())
            .map_err(|e| format!("cannot register {api:?} document: {e}"))?;
        Ok(View {
            doc,
            registry,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the validator for the schema at `pointer` (a JSON pointer into this
    /// document), compiling it on first use.
    pub(crate) fn validator(&self, api: Api, pointer: &str) -> Result<Arc<Validator>, String> {
        let slot = {
            // A poisoned lock only means another thread panicked while inserting an
            // empty slot; the map itself is still consistent.
            let mut map = self
                .validators
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(map.entry(pointer.to_owned()).or_default())
        };
        // Compiling happens outside the map lock so that different schemas can
        // compile concurrently while the same schema still compiles only once.
        slot.get_or_init(|| {
            let schema = serde_json::json!({
                "$ref": format!("{}#{}", api.uri(), fragment_encode(pointer))
            });
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .with_registry(&self.registry)
                .should_validate_formats(false)
                .build(&schema)
                .map(Arc::new)
                .map_err(|e| format!("cannot compile schema {pointer}: {e}"))
        })
        .clone()
    }
}

pub(crate) struct Spec {
    pub(crate) api: Api,
    /// The published document after the known-defect workarounds were applied.
    pub(crate) raw: Value,
    /// Path prefix that the spec's server URL adds in front of every template.
    pub(crate) prefix: String,
    response: View,
    request: OnceLock<Result<View, String>>,
}

impl Spec {
    pub(crate) fn new(api: Api, raw: Value) -> Result<Spec, String> {
        let prefix = server_path_prefix(&raw);
        let response = View::new(api, &raw, Direction::Response)?;
        Ok(Spec {
            api,
            raw,
            prefix,
            response,
            request: OnceLock::new(),
        })
    }

    pub(crate) fn view(&self, direction: Direction) -> Result<&View, String> {
        match direction {
            Direction::Response => Ok(&self.response),
            Direction::Request => self
                .request
                .get_or_init(|| View::new(self.api, &self.raw, Direction::Request))
                .as_ref()
                .map_err(Clone::clone),
        }
    }

    pub(crate) fn templates(&self) -> impl Iterator<Item = &str> {
        self.raw
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|paths| paths.keys().map(String::as_str))
    }
}

/// The path part of the first server URL: `https://events.pagerduty.com/v2` -> `/v2`.
fn server_path_prefix(doc: &Value) -> String {
    let url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or("");
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    path.trim_end_matches('/').to_owned()
}

/// Follows `$ref`s (local ones only) starting from the value at `pointer`, returning
/// the value finally reached and its pointer. Response and request-body objects may
/// be `$ref`s to `#/components/...`, and the validator needs the real location.
pub(crate) fn deref<'d>(doc: &'d Value, pointer: &str) -> Option<(&'d Value, String)> {
    let mut pointer = pointer.to_owned();
    // A bound rather than cycle detection: legitimate chains are one or two long.
    for _ in 0..32 {
        let value = doc.pointer(&pointer)?;
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => pointer = target.strip_prefix('#')?.to_owned(),
            None => return Some((value, pointer)),
        }
    }
    None
}

pub(crate) fn operation_pointer(template: &str, method: &str) -> String {
    format!("/paths/{}/{}", pointer_token(template), method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes() {
        let p = |u: &str| server_path_prefix(&json!({"servers": [{"url": u}]}));
        assert_eq!(p("https://api.pagerduty.com"), "");
        assert_eq!(p("https://events.pagerduty.com/v2"), "/v2");
        assert_eq!(
            p("https://events.pagerduty.com/generic/2010-04-15/"),
            "/generic/2010-04-15"
        );
        assert_eq!(server_path_prefix(&json!({})), "");
    }

    #[test]
    fn deref_follows_chains_and_stops_on_cycles() {
        let doc = json!({"a": {"$ref": "#/b"}, "b": {"$ref": "#/c"}, "c": 1, "x": {"$ref": "#/x"}});
        assert_eq!(deref(&doc, "/a"), Some((&json!(1), "/c".to_owned())));
        assert_eq!(deref(&doc, "/x"), None);
        assert_eq!(deref(&doc, "/missing"), None);
    }
}
