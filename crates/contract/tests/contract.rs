//! Behaviour of the bundled contract on the operations pagerbridge relies on.

use std::time::{Duration, Instant};

use pagerduty_contract::{Api, Checked, Contract, KNOWN_DEFECTS, Violation};
use serde_json::{Value, json};

/// (method, concrete path, path template) of every operation pagerbridge uses.
const COVERED: &[(&str, &str, &str)] = &[
    ("POST", "/v2/enqueue", "/enqueue"),
    ("POST", "/v2/change/enqueue", "/change/enqueue"),
    (
        "POST",
        "/generic/2010-04-15/create_event.json",
        "/create_event.json",
    ),
    ("GET", "/incidents", "/incidents"),
    ("PUT", "/incidents", "/incidents"),
    ("POST", "/incidents", "/incidents"),
    ("GET", "/incidents/PT4KHLK", "/incidents/{id}"),
    ("PUT", "/incidents/PT4KHLK", "/incidents/{id}"),
    ("GET", "/incidents/PT4KHLK/notes", "/incidents/{id}/notes"),
    ("POST", "/incidents/PT4KHLK/notes", "/incidents/{id}/notes"),
    (
        "GET",
        "/incidents/PT4KHLK/log_entries",
        "/incidents/{id}/log_entries",
    ),
    ("GET", "/incidents/PT4KHLK/alerts", "/incidents/{id}/alerts"),
    ("GET", "/log_entries", "/log_entries"),
    ("GET", "/services", "/services"),
    ("GET", "/services/PIJ90N7", "/services/{id}"),
    ("GET", "/maintenance_windows", "/maintenance_windows"),
    ("POST", "/maintenance_windows", "/maintenance_windows"),
    ("GET", "/users", "/users"),
    ("GET", "/users/me", "/users/me"),
    ("GET", "/webhook_subscriptions", "/webhook_subscriptions"),
    ("POST", "/webhook_subscriptions", "/webhook_subscriptions"),
    (
        "GET",
        "/webhook_subscriptions/PY1OQ7N",
        "/webhook_subscriptions/{id}",
    ),
    (
        "DELETE",
        "/webhook_subscriptions/PY1OQ7N",
        "/webhook_subscriptions/{id}",
    ),
];

/// PagerDuty examples known to contradict PagerDuty's own schema (see
/// KNOWN_DEFECTS); they must keep failing, or the entry is stale.
const EXAMPLE_DEFECTS: &[(&str, &str, &str)] = &[("GET", "/users/me", "created_via_sso")];

fn contract() -> &'static Contract {
    Contract::bundled()
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialisable")
}

fn response(method: &str, path: &str, status: u16, value: &Value) -> Result<Checked, Violation> {
    contract().validate_response(method, path, status, Some("application/json"), &body(value))
}

fn assert_message(violation: &Violation, needles: &[&str]) {
    assert!(
        violation
            .messages
            .iter()
            .any(|m| needles.iter().all(|n| m.contains(n))),
        "no message contains all of {needles:?}:\n{violation}"
    );
}

/// Turns an example's status key into a concrete status (`5XX` -> 500).
fn concrete_status(key: &str) -> u16 {
    key.replace(['X', 'x'], "0")
        .parse()
        .unwrap_or_else(|_| panic!("unexpected status key {key}"))
}

#[test]
fn every_covered_operation_is_routed_to_its_template() {
    for (method, path, template) in COVERED {
        let (_, routed) = contract().route(path).expect(path);
        assert_eq!(routed, *template, "{method} {path}");
    }
}

#[test]
fn pagerduty_response_examples_validate_except_listed_example_defects() {
    let mut checked = 0;
    for (method, path, _) in COVERED {
        for example in contract().response_examples(method, path).unwrap() {
            let status = concrete_status(&example.status);
            let result = contract().validate_response(
                method,
                path,
                status,
                Some(&example.media_type),
                &body(&example.value),
            );
            let known = EXAMPLE_DEFECTS
                .iter()
                .find(|(m, p, _)| m == method && p == path);
            match (result, known) {
                (Ok(checked_as), None) => {
                    assert_eq!(checked_as, Checked::Validated, "{method} {path} {status}");
                    checked += 1;
                }
                (Err(v), None) => panic!("PagerDuty's own example fails:\n{v}"),
                (Err(v), Some(&(_, _, field))) => assert_message(&v, &[field]),
                (Ok(_), Some(_)) => panic!("{method} {path}: listed example defect now passes"),
            }
        }
    }
    // The bundled files hold exactly this many (plus the listed defect); a drop
    // means examples silently stopped being found.
    assert_eq!(checked, 24, "examples validated");
}

#[test]
fn pagerduty_request_examples_validate() {
    let mut checked = 0;
    for (method, path, _) in COVERED {
        for example in contract().request_examples(method, path).unwrap() {
            contract()
                .validate_request(method, path, &example.value)
                .unwrap_or_else(|v| panic!("request example {}:\n{v}", example.name));
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} request examples validated");
}

#[test]
fn documented_error_responses_are_accepted_for_every_rest_operation() {
    let error = json!({"error": {"message": "Not Found", "code": 2100, "errors": ["x"]}});
    for (method, path, template) in COVERED.iter().filter(|(_, p, _)| !p.starts_with("/v2")) {
        if path.starts_with("/generic") {
            continue;
        }
        let mut statuses = vec![400, 401, 403, 429];
        if template.contains('{') {
            statuses.push(404);
        }
        for status in statuses {
            let checked = response(method, path, status, &error)
                .unwrap_or_else(|v| panic!("{method} {path} {status}:\n{v}"));
            let expected = if path.starts_with("/webhook_subscriptions") && status != 429 {
                // PagerDuty documents the webhook errors without a body.
                Checked::NoSchema
            } else {
                Checked::Validated
            };
            assert_eq!(checked, expected, "{method} {path} {status}");
        }
    }
}

#[test]
fn rest_error_body_shape_is_enforced() {
    let v = response("GET", "/incidents/PX", 404, &json!({"error": "Not Found"})).unwrap_err();
    assert_message(&v, &["at /error", "[type]"]);
}

#[test]
fn events_v2_statuses() {
    let ok = json!({"status": "success", "message": "Event processed", "dedup_key": "k"});
    for path in ["/v2/enqueue", "/v2/change/enqueue"] {
        assert_eq!(response("POST", path, 202, &ok), Ok(Checked::Validated));
        let invalid = json!({"status": "invalid event", "message": "Event object is invalid",
                             "errors": ["'routing_key' is missing"]});
        assert_eq!(
            response("POST", path, 400, &invalid),
            Ok(Checked::Validated)
        );
        // errors[] is part of the documented 400 body.
        let v = response(
            "POST",
            path,
            400,
            &json!({"status": "invalid event", "message": "m"}),
        )
        .unwrap_err();
        assert_message(&v, &["(root)", "[required]", "errors"]);
        assert_eq!(
            contract().validate_response("POST", path, 429, Some("text/plain"), b"slow down"),
            Ok(Checked::NoSchema)
        );
        let error = json!({"status": "Internal error", "message": "oops"});
        assert_eq!(response("POST", path, 500, &error), Ok(Checked::Validated));
        assert_eq!(response("POST", path, 503, &error), Ok(Checked::Validated));
        assert!(response("POST", path, 503, &json!({"status": "x"})).is_err());
        let v = response("POST", path, 200, &ok).unwrap_err();
        assert_message(&v, &["undocumented status 200"]);
    }
}

#[test]
fn events_v2_accepted_without_status_is_rejected() {
    let v = response(
        "POST",
        "/v2/enqueue",
        202,
        &json!({"message": "Event processed"}),
    )
    .unwrap_err();
    assert_eq!(v.status, Some(202));
    assert_message(&v, &["(root)", "[required]", "\"status\""]);
}

#[test]
fn events_v1_statuses() {
    let path = "/generic/2010-04-15/create_event.json";
    let ok = json!({"status": "success", "message": "Event processed", "incident_key": "k"});
    assert_eq!(response("POST", path, 200, &ok), Ok(Checked::Validated));
    for status in [400, 403] {
        assert_eq!(
            response("POST", path, status, &json!({"status": "invalid event"})),
            Ok(Checked::NoSchema)
        );
    }
    assert_eq!(
        response("POST", path, 502, &json!({"status": "e", "message": "m"})),
        Ok(Checked::Validated)
    );
    assert!(response("POST", path, 200, &json!({"message": "no status"})).is_err());
    assert!(response("POST", path, 202, &ok).is_err());
}

fn incident() -> Value {
    json!({
        "id": "PT4KHLK",
        "type": "incident",
        "summary": "[#1234] The server is on fire.",
        "self": "https://api.pagerduty.com/incidents/PT4KHLK",
        "html_url": "https://subdomain.pagerduty.com/incidents/PT4KHLK",
        "incident_number": 1234,
        "title": "The server is on fire.",
        "created_at": "2015-10-06T21:30:42Z",
        "updated_at": "2015-10-06T21:40:23Z",
        "status": "triggered",
        "incident_key": "baf7cf21b1da41b4b0221008339ff357",
        "service": {"id": "PIJ90N7", "type": "service_reference", "summary": "My Mail Service",
                    "self": "https://api.pagerduty.com/services/PIJ90N7",
                    "html_url": "https://subdomain.pagerduty.com/service-directory/PIJ90N7"},
        "assignments": [{"at": "2015-11-10T00:31:52Z",
                         "assignee": {"id": "PXPGF42", "type": "user_reference"}}],
        "assigned_via": "escalation_policy",
        "last_status_change_at": "2015-10-06T21:38:23Z",
        "resolved_at": null,
        "first_trigger_log_entry": {"id": "Q02JTSNZWHSEKV", "type": "trigger_log_entry_reference"},
        "alert_counts": {"all": 2, "triggered": 1, "resolved": 1},
        "is_mergeable": true,
        "escalation_policy": {"id": "PT20YPA", "type": "escalation_policy_reference"},
        "teams": [],
        "pending_actions": [],
        "acknowledgements": [],
        "alert_grouping": null,
        "priority": {"id": "P53ZZH5", "type": "priority_reference", "summary": "P2"},
        "resolve_reason": null,
        "urgency": "high"
    })
}

#[test]
fn a_realistic_incident_validates_and_a_bogus_status_is_named() {
    let good = json!({"incident": incident()});
    assert_eq!(
        response("GET", "/incidents/PT4KHLK", 200, &good),
        Ok(Checked::Validated)
    );

    let mut bad = incident();
    bad["status"] = json!("bogus");
    let v = response("GET", "/incidents/PT4KHLK", 200, &json!({"incident": bad})).unwrap_err();
    assert_message(&v, &["at /incident/status", "[enum]", "bogus"]);

    let mut bad = incident();
    bad["urgency"] = json!("medium");
    let list = json!({"incidents": [incident(), bad], "limit": 25, "offset": 0, "more": false, "total": null});
    let v = response("GET", "/incidents", 200, &list).unwrap_err();
    assert_message(&v, &["at /incidents/1/urgency", "[enum]"]);
}

#[test]
fn nullable_is_honoured_and_not_over_applied() {
    let mut resolved = incident();
    resolved["resolved_at"] = json!("2015-10-06T21:40:23Z");
    assert!(response("GET", "/incidents/P1", 200, &json!({"incident": resolved})).is_ok());
    let mut bad = incident();
    bad["title"] = Value::Null;
    let v = response("GET", "/incidents/P1", 200, &json!({"incident": bad})).unwrap_err();
    assert_message(&v, &["at /incident/title", "[type]"]);
    // Pagination.total is nullable in the spec itself.
    let page = json!({"incidents": [], "limit": 25, "offset": 0, "more": false, "total": null});
    assert!(response("GET", "/incidents", 200, &page).is_ok());
}

#[test]
fn list_response_missing_its_collection_is_rejected() {
    let page = json!({"limit": 25, "offset": 0, "more": false, "total": 0});
    let v = response("GET", "/incidents", 200, &page).unwrap_err();
    assert_message(&v, &["at (root)", "[required]", "\"incidents\""]);
    let v = response("GET", "/services", 200, &json!({"services": {}})).unwrap_err();
    assert_message(&v, &["at /services", "[type]"]);
}

#[test]
fn log_entries_of_every_relevant_type_validate() {
    let base = |kind: &str| {
        json!({
            "id": "Q1", "type": kind, "summary": "s",
            "self": "https://api.pagerduty.com/log_entries/Q1",
            "html_url": null,
            "created_at": "2015-11-07T00:14:20Z",
            "agent": {"id": "PIJ90N7", "type": "service_reference"},
            "channel": {"type": "api"},
            "service": {"id": "PIJ90N7", "type": "service_reference"},
            "incident": {"id": "PT4KHLK", "type": "incident_reference"},
            "teams": []
        })
    };
    for kind in [
        "trigger_log_entry",
        "acknowledge_log_entry",
        "resolve_log_entry",
        "annotate_log_entry",
        "assign_log_entry",
        "escalate_log_entry",
        "notify_log_entry",
    ] {
        let page = json!({"log_entries": [base(kind)], "limit": 25, "offset": 0, "more": false, "total": 1});
        for path in ["/log_entries", "/incidents/PT4KHLK/log_entries"] {
            response("GET", path, 200, &page).unwrap_or_else(|v| panic!("{kind}:\n{v}"));
        }
    }
    let page = json!({"log_entries": [base("made_up_log_entry")]});
    let v = response("GET", "/log_entries", 200, &page).unwrap_err();
    assert_message(&v, &["at /log_entries/0", "[oneOf]"]);
}

#[test]
fn users_me_beats_users_id_and_count_beats_id() {
    assert_eq!(
        contract().route("/users/me"),
        Some((Api::Rest, "/users/me"))
    );
    assert_eq!(
        contract().route("/users/PXPGF42"),
        Some((Api::Rest, "/users/{id}"))
    );
    assert_eq!(
        contract().route("/incidents/count"),
        Some((Api::Rest, "/incidents/count"))
    );
    // /users/me documents no 404; /users/{id} does, so the choice is observable.
    let error = json!({"error": {"message": "Not Found", "code": 2100}});
    assert!(response("GET", "/users/PXPGF42", 404, &error).is_ok());
    let v = response("GET", "/users/me", 404, &error).unwrap_err();
    assert_message(&v, &["undocumented status 404", "/users/me"]);
}

#[test]
fn undocumented_status_method_and_path_are_violations() {
    // REST documents no 5xx at all; PagerDuty's shared error body is accepted for them (a listed
    // defect), anything else is not.
    let error = json!({"error": {"message": "Internal Server Error", "code": 2000}});
    assert!(response("GET", "/incidents", 500, &error).is_ok());
    let v = response("GET", "/incidents", 503, &json!({"error": "down"})).unwrap_err();
    assert_message(&v, &["/error"]);
    let v = response("GET", "/incidents", 302, &json!({})).unwrap_err();
    assert_message(&v, &["undocumented status 302", "GET /incidents"]);
    let v = response("GET", "/incidents/P1", 418, &json!({})).unwrap_err();
    assert_message(&v, &["undocumented status 418"]);
    let v = response("PATCH", "/incidents", 200, &json!({})).unwrap_err();
    assert_message(&v, &["undocumented method PATCH", "GET", "POST", "PUT"]);
    let v = response("GET", "/nope", 200, &json!({})).unwrap_err();
    assert_message(&v, &["undocumented path"]);
    assert!(response("POST", "/enqueue", 202, &json!({"status": "success"})).is_err());
    assert!(response("GET", "incidents", 200, &json!({})).is_err());
}

#[test]
fn query_string_is_ignored() {
    let page =
        json!({"incidents": [incident()], "limit": 1, "offset": 0, "more": true, "total": null});
    let path = "/incidents?statuses[]=triggered&limit=1&include[]=users#frag";
    assert_eq!(response("GET", path, 200, &page), Ok(Checked::Validated));
    assert_eq!(
        contract().route("/users/me?include[]=teams"),
        Some((Api::Rest, "/users/me"))
    );
    // The violation reports the path as sent.
    let v = response("GET", path, 200, &json!({})).unwrap_err();
    assert_eq!(v.path, path);
}

#[test]
fn method_case_and_content_type_parameters_do_not_matter() {
    let body = body(&json!({"status": "success"}));
    let c = contract();
    for ct in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        None,
    ] {
        assert_eq!(
            c.validate_response("post", "/v2/enqueue", 202, ct, &body),
            Ok(Checked::Validated),
            "{ct:?}"
        );
    }
    let v = c
        .validate_response("POST", "/v2/enqueue", 202, Some("text/html"), &body)
        .unwrap_err();
    assert_message(&v, &["content type", "text/html"]);
}

#[test]
fn non_json_bodies_are_violations_not_panics() {
    let c = contract();
    let v = c
        .validate_response(
            "GET",
            "/incidents",
            200,
            Some("application/json"),
            b"<html>",
        )
        .unwrap_err();
    assert_message(&v, &["not valid JSON"]);
    assert!(
        c.validate_response("GET", "/incidents", 200, None, b"")
            .is_err()
    );
    // Deterministic pseudo-random bytes (xorshift) across several operations.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..200 {
        let len = (round * 7) % 64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let (method, path, _) = COVERED[round % COVERED.len()];
        let _ = c.validate_response(method, path, 200, Some("application/json"), &bytes);
        let _ = c.validate_response(method, path, 404, None, &bytes);
    }
    // Paths with odd bytes route nowhere rather than panicking.
    for path in [
        "/incidents/%",
        "/incidents/%zz/notes",
        "/ü/€",
        "//",
        "/?",
        "",
    ] {
        let _ = c.validate_response("GET", path, 200, None, b"{}");
    }
}

#[test]
fn no_content_responses() {
    let c = contract();
    let path = "/webhook_subscriptions/PY1OQ7N";
    assert_eq!(
        c.validate_response("DELETE", path, 204, None, b""),
        Ok(Checked::NoSchema)
    );
    let v = c
        .validate_response("DELETE", path, 204, Some("application/json"), b"{}")
        .unwrap_err();
    assert_message(&v, &["must not carry a body"]);
}

#[test]
fn incident_create_request_validation() {
    let c = contract();
    let good = json!({"incident": {
        "type": "incident",
        "title": "The server is on fire.",
        "service": {"id": "PWIXJZS", "type": "service_reference"},
        "urgency": "high",
        "body": {"type": "incident_body", "details": "A disk is getting full."}
    }});
    c.validate_request("POST", "/incidents", &good).unwrap();

    let mut missing_title = good.clone();
    missing_title["incident"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    let v = c
        .validate_request("POST", "/incidents", &missing_title)
        .unwrap_err();
    assert_eq!(v.status, None);
    assert_message(&v, &["at /incident", "[required]", "\"title\""]);

    let mut bad_urgency = good.clone();
    bad_urgency["incident"]["urgency"] = json!("urgent");
    let v = c
        .validate_request("POST", "/incidents", &bad_urgency)
        .unwrap_err();
    assert_message(&v, &["at /incident/urgency", "[enum]"]);

    let mut no_service_id = good;
    no_service_id["incident"]["service"] = json!({"type": "service_reference"});
    let v = c
        .validate_request("POST", "/incidents", &no_service_id)
        .unwrap_err();
    assert_message(&v, &["at /incident/service", "[required]", "\"id\""]);

    let v = c
        .validate_request("GET", "/incidents", &json!({}))
        .unwrap_err();
    assert_message(&v, &["documents no request body"]);
}

#[test]
fn read_only_fields_are_ignored_in_requests() {
    let c = contract();
    // sequence_number and teams are readOnly on MaintenanceWindow: sending them (even
    // with wrong types) is ignored by PagerDuty, and so by the contract.
    let window = json!({"maintenance_window": {
        "type": "maintenance_window",
        "start_time": "2015-11-09T20:00:00-05:00",
        "end_time": "2015-11-09T22:00:00-05:00",
        "services": [{"id": "PIJ90N7", "type": "service_reference"}],
        "sequence_number": "not-a-number",
        "teams": "nope"
    }});
    c.validate_request("POST", "/maintenance_windows", &window)
        .unwrap();
    // In a response the same values are checked.
    let v = response("POST", "/maintenance_windows", 201, &window).unwrap_err();
    assert_message(&v, &["at /maintenance_window/sequence_number", "[type]"]);
}

#[test]
fn events_request_rules_from_prose_are_enforced() {
    let c = contract();
    let key = "e93facc04764012d7bfb002500d5d1a6";
    let ack = json!({"routing_key": key, "event_action": "acknowledge"});
    let v = c.validate_request("POST", "/v2/enqueue", &ack).unwrap_err();
    assert_message(&v, &["[required]", "dedup_key"]);
    let mut ack = ack;
    ack["dedup_key"] = json!("srv01/mysql");
    c.validate_request("POST", "/v2/enqueue", &ack).unwrap();

    let trigger = json!({"routing_key": key, "event_action": "trigger"});
    let v = c
        .validate_request("POST", "/v2/enqueue", &trigger)
        .unwrap_err();
    assert_message(&v, &["[required]", "payload"]);
    let trigger = json!({"routing_key": key, "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "critical"}});
    c.validate_request("POST", "/v2/enqueue", &trigger).unwrap();

    let bad = json!({"routing_key": key, "event_action": 7, "dedup_key": "k"});
    let v = c.validate_request("POST", "/v2/enqueue", &bad).unwrap_err();
    assert_message(&v, &["at /event_action", "[type]"]);
    let bad = json!({"routing_key": key, "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "fatal"}});
    let v = c.validate_request("POST", "/v2/enqueue", &bad).unwrap_err();
    assert_message(&v, &["at /payload/severity", "[enum]"]);

    let v1 = "/generic/2010-04-15/create_event.json";
    let resolve = json!({"service_key": key, "event_type": "resolve"});
    let v = c.validate_request("POST", v1, &resolve).unwrap_err();
    assert_message(&v, &["[required]", "incident_key"]);
    let trigger = json!({"service_key": key, "event_type": "trigger"});
    let v = c.validate_request("POST", v1, &trigger).unwrap_err();
    assert_message(&v, &["[required]", "description"]);
    let trigger = json!({"service_key": key, "event_type": "trigger", "description": "d"});
    c.validate_request("POST", v1, &trigger).unwrap();
}

#[test]
fn component_schemas_can_be_checked_directly() {
    let c = contract();
    c.validate_schema(Api::Rest, "Incident", &incident())
        .unwrap();
    let v = c
        .validate_schema(Api::Rest, "Service", &json!({"type": "service"}))
        .unwrap_err();
    assert_message(&v, &["[required]", "escalation_policy"]);
    assert!(
        c.validate_schema(Api::Rest, "NoSuchThing", &json!({}))
            .is_err()
    );
}

#[test]
fn workarounds_still_match_the_files_and_are_documented() {
    assert_eq!(contract().stale_workarounds(), &[] as &[&str]);
    let readme = include_str!("../README.md");
    for defect in KNOWN_DEFECTS {
        assert!(
            readme.contains(defect),
            "README.md does not list the known defect:\n{defect}"
        );
    }
}

#[test]
fn first_validation_is_fast_and_cached_validation_faster() {
    // A private instance, so the cost of loading is measured even when other tests
    // already initialised `Contract::bundled()`.
    let started = Instant::now();
    let c = Contract::from_json(
        include_str!("../openapi/REST.openapi.json"),
        include_str!("../openapi/events-v2.openapi.json"),
        include_str!("../openapi/events-v1.openapi.json"),
    )
    .unwrap();
    let loaded = started.elapsed();
    // GET /incidents pulls in the largest schema graph (Incident, Service, User,
    // EscalationPolicy, log entries, ...).
    let page = body(&json!({"incidents": [incident()], "more": false}));
    let started = Instant::now();
    let first = c.validate_response("GET", "/incidents", 200, None, &page);
    let first_took = started.elapsed();
    assert_eq!(first, Ok(Checked::Validated));
    let started = Instant::now();
    let again = c.validate_response("GET", "/incidents", 200, None, &page);
    let cached_took = started.elapsed();
    assert_eq!(again, Ok(Checked::Validated));
    eprintln!(
        "load: {loaded:?}, first GET /incidents validation: {first_took:?}, cached: {cached_took:?}"
    );
    assert!(
        loaded + first_took < Duration::from_secs(2),
        "{loaded:?} + {first_took:?}"
    );
    assert!(cached_took < Duration::from_millis(100), "{cached_took:?}");
}

#[test]
fn validation_is_thread_safe() {
    let page = json!({"incidents": [incident()]});
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    assert!(response("GET", "/incidents", 200, &page).is_ok());
                    assert!(response("GET", "/incidents/P1/alerts", 200, &json!({})).is_err());
                }
            });
        }
    });
}

#[test]
fn violation_display_lists_every_message() {
    let v = response(
        "GET",
        "/incidents",
        200,
        &json!({"incidents": [{"status": 1, "urgency": 2}]}),
    )
    .unwrap_err();
    let text = v.to_string();
    assert!(text.starts_with("GET /incidents -> 200 violates the PagerDuty contract:"));
    assert!(text.contains("at /incidents/0/status [type]"), "{text}");
    assert!(text.contains("at /incidents/0/urgency [type]"), "{text}");
    let _: &dyn std::error::Error = &v;
}

/// Triage aid, not a check: lists which REST response examples outside the covered
/// operations fail (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn sweep_all_rest_examples() {
    let c = contract();
    let (mut ok, mut failed) = (0, 0);
    let paths = c.document(Api::Rest)["paths"].as_object().unwrap();
    for (template, item) in paths {
        let concrete = template
            .split('/')
            .map(|s| if s.starts_with('{') { "PX" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            for example in c.response_examples(method, &concrete).unwrap() {
                let Ok(status) = example.status.parse::<u16>() else {
                    continue;
                };
                match c.validate_response(method, &concrete, status, None, &body(&example.value)) {
                    Ok(_) => ok += 1,
                    Err(v) => {
                        failed += 1;
                        println!("{method} {template} {}: {}", example.name, v.messages[0]);
                    }
                }
            }
        }
    }
    println!("examples: {ok} valid, {failed} invalid");
}

/// `GET /services?include[]=integrations`: PagerDuty expands each integration into the full
/// object (typed without `_reference`, with its `integration_key`), which the file's schema
/// refuses until the workaround; a type that is neither is still refused.
#[test]
fn expanded_service_integrations_validate_and_bogus_ones_do_not() {
    let integration = |kind: &str| {
        json!({
            "id": "PINT001", "type": kind, "summary": "Events API v2",
            "self": "https://api.pagerduty.com/services/PSVC001/integrations/PINT001",
            "html_url": "https://acme.pagerduty.com/services/PSVC001/integrations/PINT001",
            "name": "Events API v2",
            "service": {"id": "PSVC001", "type": "service_reference"},
            "created_at": "2026-01-01T00:00:00Z",
            "integration_key": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        })
    };
    let page = |kind: &str| {
        json!({"services": [{
            "id": "PSVC001", "type": "service", "summary": "Databases", "name": "Databases",
            "self": "https://api.pagerduty.com/services/PSVC001",
            "html_url": "https://acme.pagerduty.com/service-directory/PSVC001",
            "status": "active",
            "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference"},
            "teams": [], "integrations": [integration(kind)],
        }], "limit": 25, "offset": 0, "more": false, "total": null})
    };
    let full = response(
        "GET",
        "/services",
        200,
        &page("events_api_v2_inbound_integration"),
    );
    assert!(full.is_ok(), "{full:?}");
    let reference = response(
        "GET",
        "/services",
        200,
        &page("events_api_v2_inbound_integration_reference"),
    );
    assert!(reference.is_ok(), "{reference:?}");
    assert!(response("GET", "/services", 200, &page("not_an_integration")).is_err());
}
