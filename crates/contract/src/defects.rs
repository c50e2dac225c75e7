//! Known defects of PagerDuty's published OpenAPI files and their workarounds.
//!
//! Every workaround reports whether it still found the defect it fixes, so that a
//! refreshed copy of the files in which PagerDuty fixed something shows up as a
//! stale workaround (see [`crate::Contract::stale_workarounds`]) instead of silently
//! patching a document that no longer needs it.

use serde_json::{Value, json};

/// Human-readable list of the defects found in the bundled OpenAPI files, both the
/// ones worked around here and the ones only recorded (defects of examples, which
/// must not loosen the schema). Kept in sync with `README.md`.
pub const KNOWN_DEFECTS: &[&str] = &[
    // events-v2
    "events-v2: POST /enqueue and /change/enqueue 400 responses say \"description\": \"#/components/responses/ArgumentError\" instead of a $ref, and no such component exists; workaround: 400 is validated as PagerDuty's documented {status, message, errors[]} body (all three required).",
    "events-v2: 429 responses likewise carry \"#/components/responses/TooManyRequests\" as description and no content; workaround: none needed, any 429 body is accepted (Checked::NoSchema).",
    "events-v2: request `event_action` and `payload.severity` have an enum but no `type`; workaround: `type: string` added.",
    "events-v2: \"dedup_key is required unless event_action is trigger\" exists only in prose; workaround: encoded as if/then in the /enqueue request schema.",
    "events-v2: `payload` is not required at all, but PagerDuty rejects trigger events without one; workaround: /enqueue requests with event_action=trigger must carry payload.",
    "events-v2 and events-v1: `format: url` is not a JSON Schema format and the `date-time` examples (\"2015-07-17T08:42:58.315+0000\") are not RFC 3339; workaround: `format` is never validated.",
    // events-v1
    "events-v1: \"incident_key is required unless event_type is trigger\" and \"description is required for trigger events\" exist only in prose; workaround: encoded as if/then in the request schema.",
    "events-v1: 400 and 403 responses document no body (PagerDuty actually sends {status, message, errors[]}); not worked around: any body is accepted (Checked::NoSchema).",
    // REST: schema defects, worked around
    "REST: Incident.resolved_at, Incident.alert_grouping, Incident.alert_grouping.ended_at and Incident.resolve_reason are not nullable, yet the prose says they are null when unset and PagerDuty's own GET /incidents, GET /incidents/{id} and POST /incidents examples contain null; workaround: nullable.",
    "REST: Service.auto_resolve_timeout, Service.acknowledgement_timeout, Service.alert_grouping, User.time_zone, Notification.address and AcknowledgeLogEntry.acknowledgement_timeout are described as possibly null but not nullable; workaround: nullable.",
    "REST: AcknowledgeLogEntry restricts `type` to \"acknowledgement_log_entry\" while its base LogEntry allows only \"acknowledge_log_entry\", so no acknowledge log entry can validate; workaround: \"acknowledge_log_entry\" (what the API sends).",
    "REST: Channel is a oneOf of five alternatives that differ only in prose (`type` is an unconstrained string), so every log entry channel matches all five and fails oneOf (PagerDuty's own log entry examples fail); workaround: anyOf.",
    "REST: Service.alert_grouping_parameters and AlertGroupingParameters.config are oneOfs of objects whose properties are all optional, so e.g. {\"type\":\"intelligent\"} matches several (PagerDuty's own GET /services example fails); workaround: anyOf.",
    "REST: ContentBasedAlertGroupingConfiguration.aggregate has enum [\"all, any\"] (one string) instead of [\"all\", \"any\"]; workaround: two values.",
    "REST: most operations document only some of the errors every endpoint can return (e.g. GET /services has no 429, GET /users/me has no 401/403, GET /incidents/{id}/alerts has no 404, PUT /incidents/{id} has no 400); no REST operation documents any 5xx, though PagerDuty answers them; workaround: every operation also accepts 400/401/403/429 and 5XX, and operations on a templated path 404, with the shared {error: {code, message, errors}} schema.",
    "REST: Service.integrations items are always IntegrationReference, whose `type` must end in `_reference`, though the description says they are full Integration objects with include[]=integrations (as PagerDuty sends them, typed e.g. `events_api_v2_inbound_integration`); workaround: a reference or a full Integration.",
    "REST: IncidentBody.details is `type: object`, but PagerDuty's own POST /incidents request example (and its API reference) sends a string; workaround: string or object.",
    // REST: recorded only
    "REST: the webhook_subscriptions error responses (WebhookBadRequest, WebhookUnauthorized, WebhookForbidden, WebhookNotFound) document no body; not worked around: any body is accepted (Checked::NoSchema).",
    "REST: GET /log_entries lists 15 log entry types in its oneOf, omitting field_value_change_log_entry and custom_field_value_change_log_entry that GET /incidents/{id}/log_entries allows; not worked around.",
    "REST example defect: the EscalationPolicy schema example has escalation_rule_assignment_strategy as [{\"type\":\"round_robin\"}] where the schema says a string enum; escalation policies are out of scope here, not worked around.",
    "REST example defect: the GET /users/me 200 example has \"created_via_sso\": \"true,\" (a string) where the schema says boolean; not worked around, the example is wrong.",
];

/// A workaround applied to one raw document before conversion; returns whether the
/// defect it targets was present.
pub(crate) type Workaround = (&'static str, fn(&mut Value) -> bool);

pub(crate) const EVENTS_V2: &[Workaround] = &[
    ("events-v2 400 description-as-ref", events_v2_400),
    ("events-v2 429 description-as-ref", events_v2_429),
    ("events-v2 untyped enums", events_v2_untyped_enums),
    (
        "events-v2 dedup_key/payload rules",
        events_v2_conditional_required,
    ),
];

pub(crate) const EVENTS_V1: &[Workaround] = &[(
    "events-v1 incident_key/description rules",
    events_v1_conditional_required,
)];

pub(crate) const REST: &[Workaround] = &[
    ("REST nullable fields", rest_nullable),
    (
        "REST expanded service integrations",
        rest_service_integrations,
    ),
    ("REST acknowledge_log_entry type", rest_acknowledge_type),
    ("REST overlapping oneOf", rest_overlapping_one_of),
    ("REST aggregate enum", rest_aggregate_enum),
    ("REST missing error responses", rest_missing_errors),
    (
        "REST IncidentBody.details string",
        rest_incident_body_details,
    ),
];

/// Fields whose prose (or PagerDuty's own examples) says null but that lack `nullable`.
const REST_NULLABLE: &[&str] = &[
    "/components/schemas/Incident/allOf/1/properties/resolved_at",
    "/components/schemas/Incident/allOf/1/properties/alert_grouping",
    "/components/schemas/Incident/allOf/1/properties/alert_grouping/properties/ended_at",
    "/components/schemas/Incident/allOf/1/properties/resolve_reason",
    "/components/schemas/Service/allOf/1/properties/auto_resolve_timeout",
    "/components/schemas/Service/allOf/1/properties/acknowledgement_timeout",
    "/components/schemas/Service/allOf/1/properties/alert_grouping",
    "/components/schemas/User/allOf/1/properties/time_zone",
    "/components/schemas/Notification/properties/address",
    "/components/schemas/AcknowledgeLogEntry/allOf/1/properties/acknowledgement_timeout",
];

/// `oneOf`s whose alternatives overlap, so that valid data matches several.
const REST_OVERLAPPING_ONE_OF: &[&str] = &[
    "/components/schemas/Channel",
    "/components/schemas/Service/allOf/1/properties/alert_grouping_parameters",
    "/components/schemas/AlertGroupingParameters/properties/config",
];

/// Each fix must find its defect at every listed location: a partial match means
/// the file changed and the list needs a look.
fn rest_nullable(doc: &mut Value) -> bool {
    REST_NULLABLE.iter().fold(true, |all, pointer| {
        let fixed = match doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            Some(schema) if schema.get("nullable") != Some(&Value::Bool(true)) => {
                schema.insert("nullable".to_owned(), Value::Bool(true));
                true
            }
            _ => false,
        };
        all & fixed
    })
}

fn replace_enum(doc: &mut Value, pointer: &str, old: Value, new: Value) -> bool {
    match doc.pointer_mut(&format!("{pointer}/enum")) {
        Some(values) if *values == old => {
            *values = new;
            true
        }
        _ => false,
    }
}

fn rest_service_integrations(doc: &mut Value) -> bool {
    let Some(items) =
        doc.pointer_mut("/components/schemas/Service/allOf/1/properties/integrations/items")
    else {
        return false;
    };
    if *items != json!({"$ref": "#/components/schemas/IntegrationReference"}) {
        return false;
    }
    *items = json!({"anyOf": [
        {"$ref": "#/components/schemas/IntegrationReference"},
        {"$ref": "#/components/schemas/Integration"},
    ]});
    true
}

fn rest_acknowledge_type(doc: &mut Value) -> bool {
    let base_has_acknowledge = doc
        .pointer("/components/schemas/LogEntry/allOf/1/properties/type/enum")
        .and_then(Value::as_array)
        .is_some_and(|e| e.iter().any(|v| v == "acknowledge_log_entry"));
    base_has_acknowledge
        && replace_enum(
            doc,
            "/components/schemas/AcknowledgeLogEntry/allOf/1/properties/type",
            json!(["acknowledgement_log_entry"]),
            json!(["acknowledge_log_entry"]),
        )
}

fn rest_aggregate_enum(doc: &mut Value) -> bool {
    replace_enum(
        doc,
        "/components/schemas/ContentBasedAlertGroupingConfiguration/properties/aggregate",
        json!(["all, any"]),
        json!(["all", "any"]),
    )
}

fn rest_incident_body_details(doc: &mut Value) -> bool {
    match doc
        .pointer_mut("/components/schemas/IncidentBody/properties/details")
        .and_then(Value::as_object_mut)
    {
        Some(details) if details.get("type") == Some(&json!("object")) => {
            details.remove("type");
            details.insert(
                "oneOf".to_owned(),
                json!([{"type": "string"}, {"type": "object"}]),
            );
            true
        }
        _ => false,
    }
}

fn rest_overlapping_one_of(doc: &mut Value) -> bool {
    REST_OVERLAPPING_ONE_OF.iter().fold(true, |all, pointer| {
        let fixed = match doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            Some(schema) if !schema.contains_key("anyOf") => match schema.remove("oneOf") {
                Some(alternatives) => {
                    schema.insert("anyOf".to_owned(), alternatives);
                    true
                }
                None => false,
            },
            _ => false,
        };
        all & fixed
    })
}

/// Statuses every REST operation can answer with, and the shared response for each.
const REST_GENERIC_ERRORS: &[(&str, &str)] = &[
    ("400", "ArgumentError"),
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("429", "TooManyRequests"),
    // No REST operation documents a server error, yet PagerDuty answers 5xx like any service
    // and its own retry guidance covers them; the body is the shared error shape.
    ("5XX", "ArgumentError"),
];

fn rest_missing_errors(doc: &mut Value) -> bool {
    let mut added = false;
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return false;
    };
    for (template, item) in paths.iter_mut() {
        let templated = template.contains('{');
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !crate::convert::is_method(method) {
                continue;
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            if responses.contains_key("default") || responses.contains_key("4XX") {
                continue;
            }
            let not_found = templated.then_some(("404", "NotFound"));
            for (status, component) in REST_GENERIC_ERRORS.iter().copied().chain(not_found) {
                if !responses.contains_key(status) {
                    responses.insert(
                        status.to_owned(),
                        json!({"$ref": format!("#/components/responses/{component}")}),
                    );
                    added = true;
                }
            }
        }
    }
    added
}

const EVENTS_V2_PATHS: &[&str] = &["/paths/~1enqueue/post", "/paths/~1change~1enqueue/post"];

fn events_v2_400(doc: &mut Value) -> bool {
    let mut found = false;
    for op in EVENTS_V2_PATHS {
        let Some(response) = doc.pointer_mut(&format!("{op}/responses/400")) else {
            continue;
        };
        if response.get("description").and_then(Value::as_str)
            == Some("#/components/responses/ArgumentError")
            && response.get("content").is_none()
        {
            *response = json!({
                "description": "Invalid event (body as documented by PagerDuty in prose).",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "message": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["status", "message", "errors"]
                }}}
            });
            found = true;
        }
    }
    found
}

fn events_v2_429(doc: &mut Value) -> bool {
    // Nothing to rewrite: a response without content already accepts any body. The
    // check only keeps the defect list honest when the file changes.
    EVENTS_V2_PATHS.iter().any(|op| {
        doc.pointer(&format!("{op}/responses/429/description"))
            .and_then(Value::as_str)
            == Some("#/components/responses/TooManyRequests")
    })
}

fn add_string_type(schema: Option<&mut Value>) -> bool {
    match schema.and_then(Value::as_object_mut) {
        Some(map) if map.contains_key("enum") && !map.contains_key("type") => {
            map.insert("type".to_owned(), json!("string"));
            true
        }
        _ => false,
    }
}

fn events_v2_untyped_enums(doc: &mut Value) -> bool {
    let action = add_string_type(doc.pointer_mut(
        "/paths/~1enqueue/post/requestBody/content/application~1json/schema/properties/event_action",
    ));
    let severity =
        add_string_type(doc.pointer_mut("/components/schemas/Payload/properties/severity"));
    action | severity
}

/// Adds a JSON Schema 2020-12 `allOf` of extra rules to a request body schema. The
/// rules use only JSON Schema keywords, so the OpenAPI converter passes them through.
fn add_rules(schema: Option<&mut Value>, rules: Vec<Value>) -> bool {
    let Some(map) = schema.and_then(Value::as_object_mut) else {
        return false;
    };
    if map.contains_key("allOf") {
        return false;
    }
    map.insert("allOf".to_owned(), Value::Array(rules));
    true
}

fn events_v2_conditional_required(doc: &mut Value) -> bool {
    let schema =
        doc.pointer_mut("/paths/~1enqueue/post/requestBody/content/application~1json/schema");
    let prose_only = schema
        .as_ref()
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .is_some_and(|r| !r.iter().any(|x| x == "dedup_key" || x == "payload"));
    prose_only
        && add_rules(
            schema,
            vec![
                json!({
                    "if": {"required": ["event_action"],
                           "properties": {"event_action": {"not": {"const": "trigger"}}}},
                    "then": {"required": ["dedup_key"]}
                }),
                json!({
                    "if": {"required": ["event_action"],
                           "properties": {"event_action": {"const": "trigger"}}},
                    "then": {"required": ["payload"]}
                }),
            ],
        )
}

fn events_v1_conditional_required(doc: &mut Value) -> bool {
    let schema = doc.pointer_mut(
        "/paths/~1create_event.json/post/requestBody/content/application~1json/schema",
    );
    let prose_only = schema
        .as_ref()
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .is_some_and(|r| !r.iter().any(|x| x == "incident_key" || x == "description"));
    prose_only
        && add_rules(
            schema,
            vec![
                json!({
                    "if": {"required": ["event_type"],
                           "properties": {"event_type": {"not": {"const": "trigger"}}}},
                    "then": {"required": ["incident_key"]}
                }),
                json!({
                    "if": {"required": ["event_type"],
                           "properties": {"event_type": {"const": "trigger"}}},
                    "then": {"required": ["description"]}
                }),
            ],
        )
}

/// Applies `workarounds` to `doc`, returning the names of those whose defect was not
/// found.
pub(crate) fn apply(doc: &mut Value, workarounds: &[Workaround]) -> Vec<&'static str> {
    workarounds
        .iter()
        .filter(|(_, fix)| !fix(doc))
        .map(|(name, _)| *name)
        .collect()
}
