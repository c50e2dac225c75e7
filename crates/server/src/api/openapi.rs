//! The OpenAPI 3.1 document of the API, generated from the same route table the router is built
//! from ([`super::endpoints`]), with the request and response schemas below. A snapshot is kept
//! at docs/api/openapi.json; a test fails when they differ.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Map, Value, json};

use super::error::ErrorKind;
use super::input::{In, Param, ParamKind};
use super::{Access, Endpoint, PREFIX, endpoints};

/// `GET /api/v1/openapi.json`.
pub(super) async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for e in endpoints() {
        let item = paths
            .entry(format!("{PREFIX}{}", e.path))
            .or_insert_with(|| json!({}));
        item[e.method.as_str().to_ascii_lowercase()] = operation(&e);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pagerbridge API",
            "version": "1",
            "summary": "The pagerbridge daemon's own API: PagerDuty incidents, services and \
                        maintenance windows, the outbox and the incident map.",
            "description": "Served by `pagerbridge serve` under /api/v1; see docs/api.md. \
                            Authenticate with `Authorization: Bearer <token>`, a token of \
                            `[[api.tokens]]` in the configuration: GET routes need the `read` \
                            scope, POST routes `admin` (`x-pagerbridge-scope`). Every error is \
                            the JSON `Error` object.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [
            {"name": "incidents", "description": "PagerDuty incidents, through PagerDuty's REST API (needs pagerduty.api_token)."},
            {"name": "services", "description": "PagerDuty services (needs pagerduty.api_token)."},
            {"name": "maintenance", "description": "PagerDuty maintenance windows (needs pagerduty.api_token)."},
            {"name": "queue", "description": "The outbox: events waiting for PagerDuty, delivered, or refused (dead letters)."},
            {"name": "incident map", "description": "Which PagerDuty incident belongs to which monitor problem."},
            {"name": "meta", "description": "About the API itself."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of [[api.tokens]] in the daemon's configuration.",
                },
            },
            "responses": responses(),
            "schemas": schemas(),
        },
    })
}

/// Whether a concrete `path` fits a `template` such as `/api/v1/incidents/{id}`.
pub(super) fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

fn operation(e: &Endpoint) -> Value {
    let mut op = Map::new();
    op.insert(
        "operationId".into(),
        Value::from(operation_id(e.method.as_str(), e.path)),
    );
    op.insert("tags".into(), json!([e.tag]));
    op.insert("summary".into(), Value::from(e.summary));
    op.insert("description".into(), Value::from(e.description));
    let scope = match e.access {
        Access::Public => {
            op.insert("security".into(), json!([]));
            "none"
        }
        Access::Scope(s) => {
            op.insert("security".into(), json!([{"bearer": []}]));
            s.as_str()
        }
    };
    op.insert("x-pagerbridge-scope".into(), Value::from(scope));
    if !e.params.is_empty() {
        op.insert(
            "parameters".into(),
            Value::Array(e.params.iter().map(parameter).collect()),
        );
    }
    if let Some(body) = e.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": {"application/json": {"schema": schema_ref(body)}},
            }),
        );
    }
    let mut answers = Map::new();
    for (status, schema, description) in &e.responses {
        answers.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema_ref(schema)}},
            }),
        );
    }
    let mut errors: Vec<(u16, &str)> = Vec::new();
    if !e.params.is_empty() || e.body.is_some() {
        errors.push((400, "BadInput"));
    }
    if let Access::Scope(scope) = e.access {
        errors.push((401, "Unauthorized"));
        if scope == pagerbridge_config::ApiScope::Admin {
            errors.push((403, "Forbidden"));
        }
        errors.push((404, "NotFound"));
    }
    if e.body.is_some() {
        errors.push((413, "TooLarge"));
    }
    if e.pagerduty {
        errors.push((502, "PagerDutyFailed"));
        errors.push((503, "Unavailable"));
    }
    for (status, name) in errors {
        answers
            .entry(status.to_string())
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
    answers.insert(
        "default".into(),
        json!({"$ref": "#/components/responses/Error"}),
    );
    op.insert("responses".into(), Value::Object(answers));
    Value::Object(op)
}

/// `get_incidents_id_notes` from `GET /incidents/{id}/notes`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            segment
                .chars()
                .filter(|c| !matches!(c, '{' | '}'))
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

fn parameter(p: &Param) -> Value {
    let mut schema = match p.kind {
        ParamKind::Text => json!({"type": "string"}),
        ParamKind::List => json!({"type": "array", "items": {"type": "string"}}),
        ParamKind::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        ParamKind::Boolean => json!({"type": "boolean"}),
        ParamKind::OneOf(words) => json!({"type": "string", "enum": words}),
        ParamKind::SomeOf(words) => {
            json!({"type": "array", "items": {"type": "string", "enum": words}})
        }
    };
    if let Some(d) = p.default {
        schema["default"] = match p.kind {
            ParamKind::Integer { .. } => d.parse::<i64>().map_or(Value::from(d), Value::from),
            ParamKind::Boolean => Value::from(d == "true"),
            ParamKind::List | ParamKind::SomeOf(_) => json!([d]),
            _ => Value::from(d),
        };
    }
    let mut param = json!({
        "name": p.name,
        "in": match p.location { In::Path => "path", In::Query => "query" },
        "description": p.description,
        "required": p.location == In::Path,
        "schema": schema,
    });
    if matches!(p.kind, ParamKind::List | ParamKind::SomeOf(_)) {
        param["style"] = Value::from("form");
        param["explode"] = Value::from(true);
    }
    param
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("Error")}},
    })
}

fn responses() -> Value {
    let mut unavailable = error_response(
        "PagerDuty (or the outbox) cannot answer now: PagerDuty did not answer, answered 5xx, or \
         kept rate limiting past the API's 20 s wait budget (`kind` `unavailable`, with \
         `Retry-After` when PagerDuty said how long); or the daemon has no PagerDuty API token \
         (`kind` `not_configured`).",
    );
    unavailable["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before trying again, when PagerDuty said.",
            "schema": {"type": "integer", "minimum": 0},
        },
    });
    let mut unauthorized =
        error_response("No `Authorization: Bearer` token, or not one of [[api.tokens]].");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
    });
    json!({
        "BadInput": error_response("A parameter or a body field is wrong: `field` names it. PagerDuty's own refusals are in `pagerduty_errors`."),
        "Unauthorized": unauthorized,
        "Forbidden": error_response("The token's scope does not cover the route: it names the scope needed."),
        "NotFound": error_response("No such object (`kind` `not_found`), or the API is off because no [[api.tokens]] are configured (`kind` `api_off`)."),
        "TooLarge": error_response("The body is larger than 1 MiB."),
        "PagerDutyFailed": error_response("PagerDuty refused the daemon's own API token (`kind` `pagerduty_auth`), or answered something that is not its API (`kind` `failed`)."),
        "Unavailable": unavailable,
        "Error": error_response("Any other error, as the same `Error` object."),
    })
}

/// `{"type": ["string", "null"]}`-style nullable schema.
fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_timestamp() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn count() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn list_of(name: &str) -> Value {
    json!({"type": "array", "items": schema_ref(name)})
}

/// A closed object: every member listed.
fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// A PagerDuty object: the members pagerbridge relies on, and whatever else PagerDuty sends.
fn pagerduty_object(description: &str, required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
        "additionalProperties": true,
    })
}

fn schemas() -> Value {
    let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    let bulk_failure = json!({
        "allOf": [schema_ref("Error")],
        "required": ["id"],
        "properties": {"id": {"type": "string", "description": "The incident id that failed."}},
    });
    let mut all = Map::new();
    all.insert("Error".into(), json!({
            "type": "object",
            "description": "Every error answer. Bulk and queue routes add their partial report (`updated` and `failed`; `changed`, `unknown`, `not_eligible`...) when nothing changed.",
            "required": ["error", "kind"],
            "properties": {
                "error": {"type": "string", "description": "What went wrong, naming the field, id or setting at fault."},
                "kind": {"type": "string", "enum": kinds},
                "field": {"type": "string", "description": "The parameter or body field at fault (`limit`, `ids[3]`, `incident.service.id`, `from`)."},
                "pagerduty_errors": {"type": "array", "items": {"type": "string"}, "description": "PagerDuty's own messages, when it refused the request."},
                "retry_after": {"type": "integer", "minimum": 0, "description": "Seconds to wait before trying again (also the Retry-After header)."},
            },
            "additionalProperties": true,
        }));
    all.insert(
        "Reference".into(),
        json!(pagerduty_object(
            "A reference to a PagerDuty object.",
            &["id", "type"],
            json!({
                "id": {"type": "string"},
                "type": {"type": "string"},
                "summary": {"type": "string"},
                "self": {"type": "string"},
                "html_url": {"type": "string"},
            })
        )),
    );
    all.insert(
        "Incident".into(),
        json!(pagerduty_object(
            "A PagerDuty incident, as PagerDuty's REST API gives it.",
            &["id", "type", "status"],
            json!({
                "id": {"type": "string"},
                "type": {"const": "incident"},
                "summary": {"type": "string"},
                "self": {"type": "string"},
                "html_url": {"type": "string"},
                "incident_number": {"type": "integer"},
                "title": {"type": "string"},
                "created_at": timestamp(),
                "updated_at": timestamp(),
                "status": {"type": "string", "enum": ["triggered", "acknowledged", "resolved"]},
                "incident_key": {"type": "string"},
                "service": schema_ref("Reference"),
                "assignments": {"type": "array"},
                "acknowledgements": {"type": "array"},
                "last_status_change_at": timestamp(),
                "resolved_at": timestamp(),
                "urgency": {"type": "string", "enum": ["high", "low"]},
                "priority": schema_ref("Reference"),
                "escalation_policy": schema_ref("Reference"),
                "teams": list_of("Reference"),
            })
        )),
    );
    all.insert(
        "Alert".into(),
        json!(pagerduty_object(
            "An alert of an incident.",
            &["id", "type", "status"],
            json!({
                "id": {"type": "string"},
                "type": {"type": "string"},
                "status": {"type": "string"},
                "created_at": timestamp(),
                "alert_key": {"type": "string"},
                "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"]},
                "service": schema_ref("Reference"),
                "incident": schema_ref("Reference"),
            })
        )),
    );
    all.insert(
        "LogEntry".into(),
        json!(pagerduty_object(
            "What happened to an incident.",
            &["id", "type", "created_at"],
            json!({
                "id": {"type": "string"},
                "type": {"type": "string"},
                "summary": {"type": "string"},
                "created_at": timestamp(),
                "agent": schema_ref("Reference"),
                "channel": {"type": "object"},
                "note": {"type": "string"},
            })
        )),
    );
    all.insert(
        "Note".into(),
        json!(pagerduty_object(
            "A note on an incident.",
            &["content"],
            json!({
                "id": {"type": "string"},
                "user": schema_ref("Reference"),
                "content": {"type": "string"},
                "created_at": timestamp(),
            })
        )),
    );
    all.insert("Service".into(), json!(pagerduty_object("A PagerDuty service.", &["id", "type", "status"], json!({
            "id": {"type": "string"},
            "type": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "warning", "critical", "maintenance", "disabled"]},
            "created_at": timestamp(),
            "last_incident_timestamp": timestamp(),
            "escalation_policy": schema_ref("Reference"),
            "teams": list_of("Reference"),
            "integrations": {"type": "array"},
        }))));
    all.insert(
        "MaintenanceWindow".into(),
        json!(pagerduty_object(
            "A PagerDuty maintenance window.",
            &["type", "start_time", "end_time", "services"],
            json!({
                "id": {"type": "string"},
                "type": {"type": "string"},
                "sequence_number": {"type": "integer"},
                "start_time": timestamp(),
                "end_time": timestamp(),
                "description": {"type": "string"},
                "created_by": schema_ref("Reference"),
                "services": list_of("Reference"),
                "teams": list_of("Reference"),
            })
        )),
    );
    all.insert("IncidentList".into(), json!(object(&["incidents", "count", "limit", "more"], json!({
            "incidents": list_of("Incident"),
            "count": count(),
            "limit": {"type": "integer", "minimum": 1},
            "more": {"type": "boolean", "description": "More incidents match than `limit` let through."},
        }))));
    all.insert(
        "IncidentOne".into(),
        json!(object(
            &["incident"],
            json!({"incident": schema_ref("Incident")})
        )),
    );
    all.insert(
        "IncidentDetail".into(),
        json!(object(
            &["incident", "alerts", "log_entries", "notes"],
            json!({
                "incident": schema_ref("Incident"),
                "alerts": list_of("Alert"),
                "log_entries": list_of("LogEntry"),
                "notes": list_of("Note"),
            })
        )),
    );
    all.insert("NewIncident".into(), json!({
            "description": "PagerDuty's `POST /incidents` body (wrapped or bare), or the short form. `from` is the email of the PagerDuty user it is created as (else the From header, else pagerduty.from).",
            "anyOf": [
                {
                    "title": "PagerDuty's body",
                    "type": "object",
                    "required": ["incident"],
                    "properties": {"incident": {"type": "object"}, "from": {"type": "string"}},
                },
                {
                    "title": "PagerDuty's incident object",
                    "type": "object",
                    "required": ["type", "title", "service"],
                    "properties": {"type": {"const": "incident"}, "from": {"type": "string"}},
                },
                {
                    "title": "Short form",
                    "type": "object",
                    "required": ["title", "service"],
                    "properties": {
                        "title": {"type": "string"},
                        "service": {"type": "string", "description": "The service's id or name."},
                        "urgency": {"type": "string", "enum": ["high", "low"]},
                        "body": {"type": "string", "description": "The incident's details."},
                        "incident_key": {"type": "string"},
                        "escalation_policy": {"type": "string", "description": "An escalation policy id."},
                        "priority": {"type": "string", "description": "A priority id."},
                        "from": {"type": "string"},
                    },
                    "additionalProperties": false,
                },
            ],
        }));
    all.insert("BulkRequest".into(), json!(object(&["ids"], json!({
            "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Incident ids; any number."},
            "from": {"type": "string", "description": "The email of the PagerDuty user the change is made as (else the From header, else pagerduty.from)."},
            "resolution": {"type": "string", "description": "Resolve only: the resolution PagerDuty records."},
        }))));
    all.insert("BulkFailure".into(), json!(bulk_failure));
    all.insert(
        "BulkReport".into(),
        json!(object(
            &["updated", "failed"],
            json!({
                "updated": list_of("Incident"),
                "failed": list_of("BulkFailure"),
            })
        )),
    );
    all.insert("NewNote".into(), json!(object(&["content"], json!({
            "content": {"type": "string"},
            "from": {"type": "string", "description": "The email of the PagerDuty user the note is written as."},
        }))));
    all.insert(
        "NoteOne".into(),
        json!(object(&["note"], json!({"note": schema_ref("Note")}))),
    );
    all.insert(
        "ServiceList".into(),
        json!(object(
            &["services", "count"],
            json!({
                "services": list_of("Service"),
                "count": count(),
            })
        )),
    );
    all.insert(
        "ServiceOne".into(),
        json!(object(
            &["service"],
            json!({"service": schema_ref("Service")})
        )),
    );
    all.insert(
        "MaintenanceWindowList".into(),
        json!(object(
            &["maintenance_windows", "count"],
            json!({
                "maintenance_windows": list_of("MaintenanceWindow"),
                "count": count(),
            })
        )),
    );
    all.insert(
        "MaintenanceWindowOne".into(),
        json!(object(
            &["maintenance_window"],
            json!({"maintenance_window": schema_ref("MaintenanceWindow")})
        )),
    );
    all.insert("NewMaintenanceWindow".into(), json!(object(&["services"], json!({
            "services": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Service ids or names."},
            "start": {"type": "string", "description": "Default now."},
            "end": {"type": "string"},
            "duration": {"type": "string", "description": "Instead of end: `90m`, `2h`, `1d`."},
            "description": {"type": "string"},
            "from": {"type": "string", "description": "The email of the PagerDuty user the window is created as."},
        }))));
    all.insert(
        "KeyStats".into(),
        json!(object(
            &[
                "routing_key",
                "pending",
                "lanes",
                "oldest_pending_at",
                "next_attempt_at",
                "oldest_pending_age_seconds",
                "next_attempt_in_seconds"
            ],
            json!({
                "routing_key": {"type": "string"},
                "pending": count(),
                "lanes": count(),
                "oldest_pending_at": nullable_timestamp(),
                "next_attempt_at": nullable_timestamp(),
                "oldest_pending_age_seconds": nullable("integer"),
                "next_attempt_in_seconds": nullable("integer"),
            })
        )),
    );
    all.insert(
        "QueueStats".into(),
        json!(object(
            &[
                "pending",
                "dead",
                "delivered",
                "coalesced",
                "dropped",
                "oldest_pending_at",
                "by_routing_key",
                "now",
                "oldest_pending_age_seconds"
            ],
            json!({
                "pending": count(),
                "dead": count(),
                "delivered": count(),
                "coalesced": count(),
                "dropped": count(),
                "oldest_pending_at": nullable_timestamp(),
                "by_routing_key": list_of("KeyStats"),
                "now": timestamp(),
                "oldest_pending_age_seconds": nullable("integer"),
            })
        )),
    );
    all.insert("Event".into(), json!(object(&["id", "lane", "kind", "routing_key", "dedup_key", "action", "body", "source", "received_at", "state", "attempts", "next_attempt_at", "last_attempt_at", "last_status", "last_error", "response", "finished_at", "coalesced_into"], json!({
            "id": {"type": "integer"},
            "lane": {"type": "string"},
            "kind": {"type": "string", "enum": ["events_v2", "change", "events_v1"]},
            "routing_key": {"type": "string"},
            "dedup_key": nullable("string"),
            "action": {"type": ["string", "null"], "enum": ["trigger", "acknowledge", "resolve", null]},
            "body": {"description": "What is (or was) sent to PagerDuty, as JSON."},
            "source": {"type": "string"},
            "received_at": timestamp(),
            "state": {"type": "string", "enum": ["pending", "delivered", "dead", "coalesced", "dropped"]},
            "attempts": count(),
            "next_attempt_at": nullable_timestamp(),
            "last_attempt_at": nullable_timestamp(),
            "last_status": nullable("integer"),
            "last_error": nullable("string"),
            "response": {"type": ["string", "null"], "description": "PagerDuty's answer to the delivery (its JSON, as text)."},
            "finished_at": nullable_timestamp(),
            "coalesced_into": nullable("integer"),
        }))));
    all.insert("EventList".into(), json!(object(&["events", "count", "limit", "next_before"], json!({
            "events": list_of("Event"),
            "count": count(),
            "limit": {"type": "integer", "minimum": 1},
            "next_before": {"type": ["integer", "null"], "description": "When the page is full: the `before` of the next page."},
        }))));
    all.insert(
        "EventOne".into(),
        json!(object(&["event"], json!({"event": schema_ref("Event")}))),
    );
    all.insert("QueueChangeRequest".into(), json!(object(&["ids"], json!({
            "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "description": "Event ids."},
        }))));
    all.insert("QueueChangeReport".into(), json!(object(&["action", "changed", "ids", "not_eligible", "unknown", "changed_meanwhile"], json!({
            "action": {"type": "string", "enum": ["retry", "drop"]},
            "changed": count(),
            "ids": {"type": "array", "items": {"type": "integer"}, "description": "The ids that were eligible."},
            "not_eligible": {"type": "array", "items": object(&["id", "state"], json!({
                "id": {"type": "integer"},
                "state": {"type": "string"},
            }))},
            "unknown": {"type": "array", "items": {"type": "integer"}, "description": "Ids of no event."},
            "changed_meanwhile": {"type": "integer", "minimum": 0, "description": "Eligible events the dispatcher or another operator changed between the check and the change."},
        }))));
    all.insert("MappedIncident".into(), json!(object(&["routing_key", "dedup_key", "source", "monitor_ref", "problem_id", "problem_started_at", "problem_seen_at", "monitor_state", "monitor_changed_at", "incident_id", "incident_url", "service_id", "pd_status", "pd_changed_at", "memo", "created_at", "updated_at"], json!({
            "routing_key": {"type": "string"},
            "dedup_key": {"type": "string"},
            "source": {"type": "string", "description": "The [[sources]] name, or the source kind."},
            "monitor_ref": {"description": "The monitor's reference to the problem."},
            "problem_id": nullable("string"),
            "problem_started_at": nullable_timestamp(),
            "problem_seen_at": timestamp(),
            "monitor_state": {"type": "string", "enum": ["problem", "acknowledged", "recovered"]},
            "monitor_changed_at": timestamp(),
            "incident_id": nullable("string"),
            "incident_url": nullable("string"),
            "service_id": nullable("string"),
            "pd_status": {"type": ["string", "null"], "enum": ["triggered", "acknowledged", "resolved", null]},
            "pd_changed_at": nullable_timestamp(),
            "memo": {"description": "What the write-back adapter keeps (an Alertmanager silence id)."},
            "created_at": timestamp(),
            "updated_at": timestamp(),
        }))));
    all.insert(
        "IncidentMapList".into(),
        json!(object(
            &["incidents", "count", "limit"],
            json!({
                "incidents": list_of("MappedIncident"),
                "count": count(),
                "limit": {"type": "integer", "minimum": 1},
            })
        )),
    );
    all.insert(
        "IncidentMapRows".into(),
        json!(object(
            &["dedup_key", "incidents", "count"],
            json!({
                "dedup_key": {"type": "string"},
                "incidents": list_of("MappedIncident"),
                "count": count(),
            })
        )),
    );
    all.insert(
        "OpenApiDocument".into(),
        json!({
            "type": "object",
            "description": "An OpenAPI 3.1 document.",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string"}},
        }),
    );
    Value::Object(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_concrete_paths() {
        assert!(matches("/api/v1/incidents/{id}", "/api/v1/incidents/Q1"));
        assert!(!matches("/api/v1/incidents/{id}", "/api/v1/incidents/"));
        assert!(!matches(
            "/api/v1/incidents/{id}",
            "/api/v1/incidents/Q1/notes"
        ));
        assert!(matches("/api/v1/queue", "/api/v1/queue"));
    }

    #[test]
    fn every_schema_referenced_is_defined() {
        let doc = document();
        let text = doc.to_string();
        let defined = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(
                defined.contains_key(&name),
                "{name} is referenced, not defined"
            );
        }
        assert_eq!(
            operation_id("GET", "/incidents/{id}/notes"),
            "get_incidents_id_notes"
        );
    }
}
