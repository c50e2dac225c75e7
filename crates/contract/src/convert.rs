//! OpenAPI 3.0 schema objects -> JSON Schema draft 2020-12.
//!
//! The whole OpenAPI document is kept (so `$ref`s such as
//! `#/components/responses/Conflict/content/application~1json/schema` or
//! `#/components/schemas/Tag/allOf/0` keep resolving) and only the values sitting in
//! schema positions are rewritten in place. Recursive schemas are never inlined:
//! `$ref`s stay and the validator resolves them inside the registered document.

use serde_json::{Map, Value};

/// Which side of the exchange a schema is used for: `readOnly` properties only exist
/// in responses and `writeOnly` ones only in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    Response,
    Request,
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub(crate) fn is_method(key: &str) -> bool {
    METHODS.contains(&key)
}

/// Returns a copy of `doc` where every schema position holds JSON Schema 2020-12.
pub(crate) fn convert_document(doc: &Value, direction: Direction) -> Value {
    let mut doc = doc.clone();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            convert_path_item(item, direction);
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            for schema in schemas.values_mut() {
                convert_schema(schema, direction);
            }
        }
        for_each_value(components.get_mut("parameters"), |p| {
            convert_parameter(p, direction)
        });
        for_each_value(components.get_mut("headers"), |h| {
            convert_parameter(h, direction)
        });
        for_each_value(components.get_mut("requestBodies"), |b| {
            convert_content(b, direction)
        });
        for_each_value(components.get_mut("responses"), |r| {
            convert_response(r, direction)
        });
    }
    doc
}

fn for_each_value(container: Option<&mut Value>, mut f: impl FnMut(&mut Value)) {
    match container {
        Some(Value::Object(map)) => map.values_mut().for_each(&mut f),
        Some(Value::Array(items)) => items.iter_mut().for_each(&mut f),
        _ => {}
    }
}

fn convert_path_item(item: &mut Value, direction: Direction) {
    let Some(item) = item.as_object_mut() else {
        return;
    };
    for_each_value(item.get_mut("parameters"), |p| {
        convert_parameter(p, direction)
    });
    for method in METHODS {
        let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
            continue;
        };
        for_each_value(op.get_mut("parameters"), |p| {
            convert_parameter(p, direction)
        });
        if let Some(body) = op.get_mut("requestBody") {
            convert_content(body, direction);
        }
        for_each_value(op.get_mut("responses"), |r| convert_response(r, direction));
    }
}

fn convert_parameter(param: &mut Value, direction: Direction) {
    if let Some(schema) = param.get_mut("schema") {
        convert_schema(schema, direction);
    }
    convert_content(param, direction);
}

fn convert_response(response: &mut Value, direction: Direction) {
    convert_content(response, direction);
    for_each_value(response.get_mut("headers"), |h| {
        convert_parameter(h, direction)
    });
}

/// Converts the schemas of a `content` map (request bodies, responses, parameters).
fn convert_content(holder: &mut Value, direction: Direction) {
    for_each_value(holder.get_mut("content"), |media| {
        if let Some(schema) = media.get_mut("schema") {
            convert_schema(schema, direction);
        }
    });
}

/// Keywords that are OpenAPI annotations and either mean something else in JSON
/// Schema 2020-12 (`examples` must be an array there) or nothing at all.
fn is_openapi_only(key: &str) -> bool {
    matches!(
        key,
        "example"
            | "examples"
            | "discriminator"
            | "xml"
            | "externalDocs"
            | "readOnly"
            | "writeOnly"
            | "nullable"
    ) || key.starts_with("x-")
}

fn flag(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_bool) == Some(true)
}

/// Converts one OpenAPI schema object (and everything below it) in place.
pub(crate) fn convert_schema(schema: &mut Value, direction: Direction) {
    let Value::Object(map) = schema else {
        return;
    };

    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        // A property that only exists on the other side of the exchange is ignored:
        // it may be absent even when listed in `required`, and whatever is sent for
        // it is not this side's concern.
        let hidden_key = match direction {
            Direction::Response => "writeOnly",
            Direction::Request => "readOnly",
        };
        let mut hidden = Vec::new();
        for (name, property) in properties.iter_mut() {
            if property.as_object().is_some_and(|p| flag(p, hidden_key)) {
                hidden.push(name.clone());
                *property = Value::Bool(true);
            } else {
                convert_schema(property, direction);
            }
        }
        if !hidden.is_empty()
            && let Some(Value::Array(required)) = map.get_mut("required")
        {
            required.retain(|r| r.as_str().is_none_or(|r| !hidden.iter().any(|h| h == r)));
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            convert_schema(child, direction);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for child in children {
                convert_schema(child, direction);
            }
        }
    }

    convert_exclusive_bound(map, "exclusiveMinimum", "minimum");
    convert_exclusive_bound(map, "exclusiveMaximum", "maximum");

    let nullable = flag(map, "nullable");
    map.retain(|key, _| !is_openapi_only(key));
    if nullable {
        make_nullable(schema);
    }
}

/// OpenAPI 3.0 (like draft 4) spells exclusive bounds as a boolean next to
/// `minimum`/`maximum`; 2020-12 wants the number in `exclusiveMinimum` itself.
fn convert_exclusive_bound(map: &mut Map<String, Value>, exclusive: &str, inclusive: &str) {
    match map.get(exclusive) {
        Some(Value::Bool(true)) => {
            if let Some(bound) = map.remove(inclusive) {
                map.insert(exclusive.to_owned(), bound);
            } else {
                map.remove(exclusive);
            }
        }
        Some(Value::Bool(false)) => {
            map.remove(exclusive);
        }
        _ => {}
    }
}

fn make_nullable(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let composite = ["$ref", "allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| map.contains_key(*k));
    if composite {
        // `type: [X, "null"]` cannot express "a $ref/allOf or null": the referenced
        // schemas would still reject null, so wrap the whole thing instead.
        let inner = std::mem::take(map);
        map.insert(
            "anyOf".to_owned(),
            Value::Array(vec![
                serde_json::json!({ "type": "null" }),
                Value::Object(inner),
            ]),
        );
        return;
    }
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert(
                "type".to_owned(),
                Value::Array(vec![Value::String(t), Value::from("null")]),
            );
        }
        Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
            types.push(Value::from("null"));
        }
        _ => {}
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.iter().any(Value::is_null)
    {
        values.push(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(mut v: Value, d: Direction) -> Value {
        convert_schema(&mut v, d);
        v
    }

    #[test]
    fn nullable_variants() {
        assert_eq!(
            conv(
                json!({"type": "string", "nullable": true, "enum": ["a"]}),
                Direction::Response
            ),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            conv(
                json!({"$ref": "#/x", "nullable": true}),
                Direction::Response
            ),
            json!({"anyOf": [{"type": "null"}, {"$ref": "#/x"}]})
        );
        assert_eq!(
            conv(
                json!({"allOf": [{"type": "object"}], "type": "object", "nullable": true}),
                Direction::Response
            ),
            json!({"anyOf": [{"type": "null"}, {"allOf": [{"type": "object"}], "type": "object"}]})
        );
        assert_eq!(
            conv(
                json!({"type": "string", "nullable": false}),
                Direction::Response
            ),
            json!({"type": "string"})
        );
    }

    #[test]
    fn drops_openapi_keywords_but_not_property_names() {
        let v = conv(
            json!({
                "type": "object",
                "example": {"a": 1},
                "x-foo": 1,
                "discriminator": {"propertyName": "type"},
                "properties": {"example": {"type": "string", "example": "s"}, "x-y": {"type": "integer"}}
            }),
            Direction::Response,
        );
        assert_eq!(
            v,
            json!({"type": "object", "properties": {"example": {"type": "string"}, "x-y": {"type": "integer"}}})
        );
    }

    #[test]
    fn read_only_ignored_in_requests_only() {
        let s = json!({
            "type": "object",
            "properties": {"id": {"type": "string", "readOnly": true}, "name": {"type": "string"},
                           "secret": {"type": "string", "writeOnly": true}},
            "required": ["id", "name", "secret"]
        });
        assert_eq!(
            conv(s.clone(), Direction::Request),
            json!({"type": "object",
                   "properties": {"id": true, "name": {"type": "string"}, "secret": {"type": "string"}},
                   "required": ["name", "secret"]})
        );
        assert_eq!(
            conv(s, Direction::Response),
            json!({"type": "object",
                   "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "secret": true},
                   "required": ["id", "name"]})
        );
    }

    #[test]
    fn exclusive_bounds() {
        assert_eq!(
            conv(
                json!({"minimum": 0, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false}),
                Direction::Request
            ),
            json!({"maximum": 9, "exclusiveMinimum": 0})
        );
    }
}
