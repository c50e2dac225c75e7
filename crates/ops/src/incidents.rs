//! Incidents: list, show, create, acknowledge/resolve in bulk, note.

use futures::{Stream, StreamExt, TryStreamExt};
use jiff::Timestamp;
use pagerduty::RestClient;
use pagerduty::client::MAX_BULK;
use pagerduty::rest::{
    Alert, Incident, IncidentQuery, IncidentStatus, IncidentUpdate, LogEntry, LogEntryQuery, Note,
    Urgency,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Kind, OpError};
use crate::services;
use crate::time::parse_time;

/// Which incidents to list, as the CLI's flags and the API's query parameters give them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Empty: open incidents (triggered and acknowledged).
    pub statuses: Vec<IncidentStatus>,
    /// Service ids or names.
    pub services: Vec<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub urgencies: Vec<Urgency>,
    /// At most this many (newest paging order is PagerDuty's: oldest first).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// From text: `statuses` items may be comma-separated and include `open` (triggered and
    /// acknowledged) or `all`; times as [`parse_time`] reads them.
    pub fn parse(
        statuses: &[String],
        services: &[String],
        since: Option<&str>,
        until: Option<&str>,
        urgencies: &[String],
        now: Timestamp,
    ) -> Result<ListFilter, OpError> {
        let mut filter = ListFilter::default();
        let mut all = false;
        for s in statuses.iter().flat_map(|s| s.split(',')).map(str::trim) {
            match s {
                "" => {}
                "all" => all = true,
                "open" => filter
                    .statuses
                    .extend([IncidentStatus::Triggered, IncidentStatus::Acknowledged]),
                other => filter
                    .statuses
                    .push(IncidentStatus::parse(other).ok_or_else(|| {
                        OpError::field(
                            "status",
                            format!(
                                "status: {other:?} is not one of triggered, acknowledged, \
                                 resolved, open, all"
                            ),
                        )
                    })?),
            }
        }
        if all {
            filter.statuses = vec![
                IncidentStatus::Triggered,
                IncidentStatus::Acknowledged,
                IncidentStatus::Resolved,
            ];
        }
        filter.statuses.dedup();
        for u in urgencies.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if u.is_empty() {
                continue;
            }
            filter.urgencies.push(Urgency::parse(u).ok_or_else(|| {
                OpError::field("urgency", format!("urgency: {u:?} is not high or low"))
            })?);
        }
        filter.services = services
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        filter.since = since.map(|t| parse_time("since", t, now)).transpose()?;
        filter.until = until.map(|t| parse_time("until", t, now)).transpose()?;
        if let (Some(s), Some(u)) = (filter.since, filter.until)
            && s >= u
        {
            return Err(OpError::field(
                "until",
                format!("until: {u} is not after since ({s})"),
            ));
        }
        Ok(filter)
    }

    /// PagerDuty's query, service names resolved to ids.
    pub async fn query(&self, rest: &RestClient) -> Result<IncidentQuery, OpError> {
        let mut service_ids = Vec::new();
        for s in &self.services {
            service_ids.push(services::resolve(rest, s).await?.id);
        }
        let statuses = if self.statuses.is_empty() {
            vec![IncidentStatus::Triggered, IncidentStatus::Acknowledged]
        } else {
            self.statuses.clone()
        };
        Ok(IncidentQuery {
            statuses,
            service_ids,
            urgencies: self.urgencies.clone(),
            since: self.since,
            until: self.until,
            // Without a start, every date: PagerDuty's own default is the last 30 days only,
            // and an open incident older than that is exactly the one to see. PagerDuty then
            // ignores `until` too: `list` stops there itself.
            all_dates: self.since.is_none(),
            ..IncidentQuery::default()
        })
    }
}

/// The incidents `query` matches, oldest first, past PagerDuty's 10,000-offset ceiling; at
/// most `limit`.
pub fn list(
    rest: &RestClient,
    query: IncidentQuery,
    limit: Option<usize>,
) -> impl Stream<Item = Result<Incident, OpError>> + Send + 'static + use<> {
    // `date_range=all` makes PagerDuty ignore `until`; the walk is oldest first, so it ends at
    // the first incident created at or after it.
    let until = query.until.filter(|_| query.all_dates);
    rest.incidents(query)
        .map_err(|e| OpError::from_pagerduty("listing incidents", &e))
        .try_take_while(move |i| {
            let before = match (until, i.created_at) {
                (Some(until), Some(created)) => created < until,
                _ => true,
            };
            futures::future::ready(Ok(before))
        })
        .take(limit.unwrap_or(usize::MAX))
}

/// How many incidents `query` matches, as PagerDuty counts them (`total=true`), for progress.
/// `None` when PagerDuty does not say or past the 10,000 it can page through.
pub async fn count(rest: &RestClient, query: &IncidentQuery) -> Option<u64> {
    let mut pairs = query.to_pairs();
    pairs.push(("total".into(), "true".into()));
    let page = rest
        .page::<Value>("/incidents", "incidents", &pairs, 0, 1)
        .await
        .ok()?;
    page.total
}

/// An incident with what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    pub incident: Incident,
    pub alerts: Vec<Alert>,
    pub log_entries: Vec<LogEntry>,
    pub notes: Vec<Note>,
}

pub async fn show(rest: &RestClient, id: &str) -> Result<Detail, OpError> {
    check_id("id", id)?;
    let incident = rest
        .get_incident(id)
        .await
        .map_err(|e| not_found_as(&e, id, "reading"))?;
    let doing = format!("reading incident {id}");
    let alerts = rest
        .incident_alerts(id)
        .try_collect()
        .await
        .map_err(|e| OpError::from_pagerduty(&doing, &e))?;
    let log_entries = rest
        .incident_log_entries(id, &LogEntryQuery::default())
        .try_collect()
        .await
        .map_err(|e| OpError::from_pagerduty(&doing, &e))?;
    let notes = rest
        .list_notes(id)
        .await
        .map_err(|e| OpError::from_pagerduty(&doing, &e))?;
    Ok(Detail {
        incident,
        alerts,
        log_entries,
        notes,
    })
}

/// An incident to create from flags; `service` is an id or a name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewFromFlags {
    pub title: String,
    pub service: String,
    pub urgency: Option<String>,
    pub body: Option<String>,
    pub incident_key: Option<String>,
    pub escalation_policy: Option<String>,
    pub priority: Option<String>,
}

/// The `POST /incidents` body the flags describe, the service looked up by id or name.
pub async fn body_from_flags(rest: &RestClient, f: &NewFromFlags) -> Result<Value, OpError> {
    if f.title.trim().is_empty() {
        return Err(OpError::field("title", "title: must not be blank"));
    }
    if f.service.trim().is_empty() {
        return Err(OpError::field(
            "service",
            "service: give the service's id or name",
        ));
    }
    let service = services::resolve(rest, &f.service).await?;
    let mut incident = json!({
        "type": "incident",
        "title": f.title,
        "service": {"id": service.id, "type": "service_reference"},
    });
    let o = incident.as_object_mut().expect("an object");
    if let Some(u) = &f.urgency {
        o.insert("urgency".into(), Value::from(u.as_str()));
    }
    if let Some(b) = &f.body {
        o.insert(
            "body".into(),
            json!({"type": "incident_body", "details": b}),
        );
    }
    if let Some(k) = &f.incident_key {
        o.insert("incident_key".into(), Value::from(k.as_str()));
    }
    if let Some(p) = &f.escalation_policy {
        o.insert(
            "escalation_policy".into(),
            json!({"id": p, "type": "escalation_policy_reference"}),
        );
    }
    if let Some(p) = &f.priority {
        o.insert(
            "priority".into(),
            json!({"id": p, "type": "priority_reference"}),
        );
    }
    validate_new(&json!({ "incident": incident }))
}

/// Checks a `POST /incidents` body against PagerDuty's published request schema and returns it
/// wrapped as `{"incident": {...}}` (the bare incident object is accepted too). Errors name the
/// field: `incident.service.id: is required`.
pub fn validate_new(input: &Value) -> Result<Value, OpError> {
    let Some(obj) = input.as_object() else {
        return Err(OpError::field(
            "incident",
            "the incident must be a JSON object ({\"incident\": {...}} or the incident itself)",
        ));
    };
    let body = if obj.contains_key("incident") {
        input.clone()
    } else {
        json!({ "incident": input })
    };
    if let Some(t) = body.pointer("/incident/title").and_then(Value::as_str)
        && t.trim().is_empty()
    {
        return Err(OpError::field(
            "incident.title",
            "incident.title: must not be blank",
        ));
    }
    let contract = pagerduty_contract::Contract::bundled();
    if let Err(v) = contract.validate_request("POST", "/incidents", &body) {
        let problems: Vec<(String, String)> = v.messages.iter().map(|m| field_of(m)).collect();
        let field = problems.first().map(|(f, _)| f.clone()).unwrap_or_default();
        let message = problems
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(OpError {
            field: Some(field),
            ..OpError::new(
                Kind::BadInput,
                format!("not an incident PagerDuty accepts: {message}"),
            )
        });
    }
    Ok(body)
}

/// `at /incident/service [required]: "id" is a required property` ->
/// (`incident.service.id`, `is required`).
fn field_of(message: &str) -> (String, String) {
    let Some(rest) = message.strip_prefix("at ") else {
        return ("incident".into(), message.to_owned());
    };
    let (pointer, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (keyword, detail) = match rest.split_once("]: ") {
        Some((k, d)) => (k.trim_start_matches('['), d),
        None => ("", rest),
    };
    let mut field: Vec<String> = pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    if keyword == "required"
        && let Some(name) = detail.split('"').nth(1)
    {
        field.push(name.to_owned());
        return (join_field(&field), "is required".into());
    }
    if keyword == "additionalProperties" {
        return (join_field(&field), detail.to_owned());
    }
    (join_field(&field), detail.to_owned())
}

fn join_field(parts: &[String]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{p}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
    }
    if out.is_empty() { "body".into() } else { out }
}

/// Creates an incident from a body [`validate_new`] accepted.
pub async fn create(rest: &RestClient, body: &Value) -> Result<Incident, OpError> {
    rest.create_incident_json(body)
        .await
        .map_err(|e| with_from_hint(OpError::from_pagerduty("creating the incident", &e)))
}

/// One id that could not be changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub id: String,
    /// Flat in JSON: `{"id", "error": "<message>", "kind", ...}`, as the API answers.
    #[serde(flatten)]
    pub error: OpError,
}

/// What a bulk acknowledge or resolve did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BulkReport {
    pub updated: Vec<Incident>,
    pub failed: Vec<Failure>,
}

impl BulkReport {
    /// The exit code for the CLI: 0 when all changed; the failures' own code when nothing
    /// changed and they agree; 1 (partly done) otherwise.
    pub fn exit_code(&self) -> u8 {
        let Some(first) = self.failed.first() else {
            return 0;
        };
        if self.updated.is_empty() && self.failed.iter().all(|f| f.error.kind == first.error.kind) {
            first.error.exit_code()
        } else {
            1
        }
    }
}

/// Sets `status` on every incident of `ids`, by PagerDuty's bulk endpoint in chunks of at most
/// 250 (`MAX_BULK`). PagerDuty refuses a whole chunk when one id is wrong; such a chunk is
/// retried one incident at a time so that the others change and the wrong one is named.
/// `progress(done, total)` is called after each chunk.
pub async fn set_status(
    rest: &RestClient,
    ids: &[String],
    status: IncidentStatus,
    resolution: Option<&str>,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<BulkReport, OpError> {
    let ids = unique_ids(ids)?;
    if status == IncidentStatus::Triggered {
        return Err(OpError::field(
            "status",
            "status: incidents can be acknowledged or resolved, not triggered again",
        ));
    }
    let update = |id: &str| IncidentUpdate {
        id: Some(id.to_owned()),
        status: Some(status),
        resolution: resolution
            .filter(|_| status == IncidentStatus::Resolved)
            .map(str::to_owned),
        ..IncidentUpdate::default()
    };
    let verb = match status {
        IncidentStatus::Resolved => "resolving",
        _ => "acknowledging",
    };
    let mut report = BulkReport::default();
    let total = ids.len();
    let mut done = 0;
    for chunk in ids.chunks(MAX_BULK) {
        let updates: Vec<IncidentUpdate> = chunk.iter().map(|id| update(id)).collect();
        match rest.update_incidents(&updates).await {
            Ok(incidents) => report.updated.extend(incidents),
            Err(e) => {
                let err = with_from_hint(OpError::from_pagerduty(
                    &format!("{verb} {} incident(s)", chunk.len()),
                    &e,
                ));
                // A wrong From or token fails every chunk alike: stop here.
                if !matches!(err.kind, Kind::BadInput | Kind::NotFound)
                    || err.field.as_deref() == Some("from")
                {
                    return Err(err);
                }
                for id in chunk {
                    match rest.update_incident(id, &update(id)).await {
                        Ok(inc) => report.updated.push(inc),
                        Err(e) => report.failed.push(Failure {
                            id: id.clone(),
                            error: not_found_as(&e, id, verb),
                        }),
                    }
                }
            }
        }
        done += chunk.len();
        progress(done, total);
    }
    Ok(report)
}

/// Adds a note to an incident, as the From user.
pub async fn add_note(rest: &RestClient, id: &str, text: &str) -> Result<Note, OpError> {
    check_id("id", id)?;
    if text.trim().is_empty() {
        return Err(OpError::field("content", "content: the note is blank"));
    }
    rest.create_note(id, text)
        .await
        .map_err(|e| with_from_hint(not_found_as(&e, id, "adding a note to")))
}

fn unique_ids(ids: &[String]) -> Result<Vec<String>, OpError> {
    if ids.is_empty() {
        return Err(OpError::field("ids", "ids: give at least one incident id"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for (n, id) in ids.iter().enumerate() {
        check_id(&format!("ids[{n}]"), id)?;
        if seen.insert(id.as_str()) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// PagerDuty ids are short alphanumeric strings; anything else is a typo or a pasted URL.
fn check_id(field: &str, id: &str) -> Result<(), OpError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(OpError::field(
            field,
            format!(
                "{field}: {id:?} is not a PagerDuty incident id (letters and digits, such as Q1A2B3C4D5E6F7)"
            ),
        ));
    }
    Ok(())
}

fn not_found_as(e: &pagerduty::Error, id: &str, verb: &str) -> OpError {
    let mut err = OpError::from_pagerduty(&format!("{verb} incident {id}"), e);
    if err.kind == Kind::NotFound {
        err.message = format!("no incident {id}");
    }
    err
}

/// PagerDuty's answer to a write without a usable `From` names the header; say where the
/// address comes from.
pub(crate) fn with_from_hint(mut e: OpError) -> OpError {
    // PagerDuty names the header in `errors` or only in its message ("You must specify a
    // user's email address in the \"From\" header", code 2016).
    let mentions_from = e
        .pagerduty_errors
        .iter()
        .any(|m| m.to_ascii_lowercase().contains("from"))
        || e.message.to_ascii_lowercase().contains("\"from\" header");
    if e.kind == Kind::BadInput && mentions_from {
        e.field = Some("from".into());
        e.message = format!(
            "{}: writes act as a PagerDuty user; give their email (--from, PAGERDUTY_FROM, \
             pagerduty.from in the configuration, or \"from\" in an API request)",
            e.message
        );
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_reads_statuses_and_refuses_unknown_ones() {
        let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let f = ListFilter::parse(
            &["open".into()],
            &[],
            Some("2h"),
            None,
            &["high".into()],
            now,
        )
        .unwrap();
        assert_eq!(
            f.statuses,
            [IncidentStatus::Triggered, IncidentStatus::Acknowledged]
        );
        assert_eq!(f.since.unwrap().to_string(), "2026-11-21T10:00:00Z");
        let e =
            ListFilter::parse(&["triggered,closed".into()], &[], None, None, &[], now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("status"));
        assert!(e.message.contains("\"closed\""), "{}", e.message);
        let e = ListFilter::parse(&[], &[], Some("1h"), Some("2h"), &[], now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("until"));
    }

    #[test]
    fn validation_names_the_field() {
        let e = validate_new(&json!({"type": "incident", "title": "disk full"})).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("incident.service"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("incident.service: is required"),
            "{}",
            e.message
        );
        let e = validate_new(&json!({"incident": {"type": "incident", "title": "x",
            "service": {"id": "PSVC", "type": "service_reference"}, "urgency": "urgent"}}))
        .unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("incident.urgency"),
            "{}",
            e.message
        );
        let ok = validate_new(&json!({"type": "incident", "title": "disk full",
            "service": {"id": "PSVC", "type": "service_reference"}}))
        .unwrap();
        assert_eq!(ok["incident"]["title"], "disk full");
        let e = validate_new(&json!({"type": "incident", "title": "  ",
            "service": {"id": "PSVC", "type": "service_reference"}}))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("incident.title"));
    }

    #[test]
    fn ids_are_checked_and_deduplicated() {
        let ids: Vec<String> = ["Q1", "Q2", "Q1"].map(String::from).into();
        assert_eq!(unique_ids(&ids).unwrap(), ["Q1", "Q2"]);
        let e = unique_ids(&["Q1".into(), "https://x/incidents/Q2".into()]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ids[1]"));
        assert!(unique_ids(&[]).is_err());
    }

    #[test]
    fn a_missing_from_is_named_whether_pagerduty_lists_it_or_only_says_it() {
        let api = |body: &[u8]| pagerduty::Error::Api {
            api: pagerduty::Api::Rest,
            status: 400,
            body: Box::new(pagerduty::ErrorBody::parse(body)),
            retry_after: None,
            rate_limit: pagerduty::RateLimit::default(),
        };
        for body in [
            &br#"{"error":{"message":"You must specify a user's email address in the \"From\" header to perform this action","code":2016}}"#[..],
            br#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["From header is missing"]}}"#,
        ] {
            let e = with_from_hint(OpError::from_pagerduty("creating", &api(body)));
            assert_eq!(e.field.as_deref(), Some("from"), "{}", e.message);
            assert!(e.message.contains("--from"), "{}", e.message);
        }
        let e = with_from_hint(OpError::from_pagerduty(
            "creating",
            &api(br#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["Title is blank"]}}"#),
        ));
        assert_eq!(e.field, None);
    }

    #[test]
    fn bulk_exit_codes() {
        let fail = |kind| Failure {
            id: "Q".into(),
            error: OpError::new(kind, "x"),
        };
        let mut r = BulkReport::default();
        assert_eq!(r.exit_code(), 0);
        r.failed = vec![fail(Kind::NotFound), fail(Kind::NotFound)];
        assert_eq!(r.exit_code(), 4);
        r.failed.push(fail(Kind::BadInput));
        assert_eq!(r.exit_code(), 1);
    }
}
