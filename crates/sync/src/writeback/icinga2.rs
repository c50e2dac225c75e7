//! Write-back to Icinga 2 through its REST API (`/v1/actions/...`).
//!
//! | Action        | Icinga 2 call                                  |
//! |---------------|------------------------------------------------|
//! | Acknowledge   | `POST /v1/actions/acknowledge-problem`         |
//! | Unacknowledge | `POST /v1/actions/remove-acknowledgement`      |
//! | Comment       | `POST /v1/actions/add-comment`                 |
//! | Resolve       | not possible: Icinga's own checks decide that  |
//!
//! The target is the host or service the alert came from (`MonitorRef::Object`). It is found
//! by name through `filter_vars`, never by pasting names into the filter, so a name with quotes
//! or operators in it cannot change what the filter matches.
//!
//! Settings: `url` (required; `https://icinga:5665`, a path prefix is kept), `username` and
//! `password` of an `ApiUser` with the permissions `actions/acknowledge-problem`,
//! `actions/remove-acknowledgement` and `actions/add-comment`, and `ca_file` (Icinga's CA,
//! `/var/lib/icinga2/certs/ca.crt`) or `insecure_tls` for Icinga's own certificate.
//!
//! Options (`options.*`):
//! - `sticky` (bool, default `false`): the acknowledgement stays through changes between
//!   problem states (WARNING to CRITICAL) instead of lapsing on the first change.
//! - `notify` (bool, default `false`): Icinga sends ACKNOWLEDGEMENT notifications. Off by
//!   default because the acknowledgement was made in PagerDuty, whose responders already know,
//!   and a notification command that reports to pagerbridge would only echo it back.
//! - `persistent` (bool, default `false`): the acknowledgement's comment stays after the
//!   acknowledgement ends (Icinga's own default is to remove it).
//!
//! An acknowledgement with [`Change::expires_at`](super::Change) gets Icinga's `expiry`.
//!
//! Errors: 401/403 and objects that do not exist or are not in a problem state are final;
//! 5xx, 429 and transport failures are retried. Acknowledging what is already acknowledged
//! counts as done, so a retried call does not fail.

use std::sync::Arc;

use serde_json::{Value, json};

use pagerbridge_model::MonitorRef;

use super::{
    Action, Adapter, Applied, Request, Settings, SettingsError, WriteError, http_client, transport,
};

/// The validated options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    sticky: bool,
    notify: bool,
    persistent: bool,
}

struct Icinga2 {
    http: reqwest::Client,
    /// Ends in `/v1/`, ready for `join("actions/...")`.
    base: url::Url,
    username: String,
    password: String,
    options: Options,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("Icinga 2's API URL is required")?;
    let username = settings
        .username
        .clone()
        .ok_or_else(|| SettingsError::new("username", "an Icinga 2 ApiUser is required"))?;
    let password = settings.password.clone().ok_or_else(|| {
        SettingsError::new("password", "the Icinga 2 ApiUser's password is required")
    })?;
    let options = options(settings)?;
    let mut base = url.clone();
    let path = format!("{}/v1/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    Ok(Arc::new(Icinga2 {
        http: http_client(settings)?,
        base,
        username,
        password,
        options,
    }))
}

fn options(settings: &Settings) -> Result<Options, SettingsError> {
    let o = settings.options("Icinga 2", &["sticky", "notify", "persistent"])?;
    Ok(Options {
        sticky: o.bool("sticky", false)?,
        notify: o.bool("notify", false)?,
        persistent: o.bool("persistent", false)?,
    })
}

/// The object a request is about: its Icinga type, a filter over `filter_vars`, and its name
/// for messages (`host!service`, as Icinga writes it).
struct Object {
    kind: &'static str,
    filter: &'static str,
    vars: Value,
    name: String,
}

fn object(target: &MonitorRef) -> Result<Object, WriteError> {
    match target {
        MonitorRef::Object {
            host,
            service: Some(service),
            ..
        } => Ok(Object {
            kind: "Service",
            filter: "host.name==pb_host && service.name==pb_service",
            vars: json!({"pb_host": host, "pb_service": service}),
            name: format!("{host}!{service}"),
        }),
        MonitorRef::Object {
            host,
            service: None,
            ..
        } => Ok(Object {
            kind: "Host",
            filter: "host.name==pb_host",
            vars: json!({"pb_host": host}),
            name: host.clone(),
        }),
        other => Err(WriteError::fail(format!(
            "icinga2 needs a host or service to write back to, not {other:?}"
        ))),
    }
}

#[async_trait::async_trait]
impl Adapter for Icinga2 {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let object = object(req.target)?;
        let change = req.change;
        let (endpoint, mut body) = match change.action {
            Action::Acknowledge => {
                let mut body = json!({
                    "author": change.author,
                    "comment": change.comment,
                    "sticky": self.options.sticky,
                    "notify": self.options.notify,
                    "persistent": self.options.persistent,
                });
                if let Some(at) = change.expires_at {
                    body["expiry"] = json!(at.as_second());
                }
                ("acknowledge-problem", body)
            }
            Action::Unacknowledge => ("remove-acknowledgement", json!({})),
            Action::Comment => (
                "add-comment",
                json!({"author": change.author, "comment": change.comment}),
            ),
            Action::Resolve => {
                return Err(WriteError::fail(
                    "icinga2 cannot resolve a problem: its own checks decide when it recovers \
                     (make on_resolve a comment)",
                ));
            }
        };
        body["type"] = json!(object.kind);
        body["filter"] = json!(object.filter);
        body["filter_vars"] = object.vars.clone();

        let what = format!("icinga2 {endpoint} for {} {}", object.kind, object.name);
        let url = self
            .base
            .join(&format!("actions/{endpoint}"))
            .map_err(|e| WriteError::fail(format!("{what}: bad URL: {e}")))?;
        let resp = self
            .http
            .post(url)
            .basic_auth(&self.username, Some(&self.password))
            // Without it Icinga answers 400 with an HTML page.
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(&what, &e))?;
        judge(&what, &object, change.action, status, &text)
    }
}

/// Reads Icinga's answer. Its HTTP status sums up the per-object `results[].code` (the worst
/// one), so the results decide: an empty list means nothing matched the filter.
fn judge(
    what: &str,
    object: &Object,
    action: Action,
    status: reqwest::StatusCode,
    text: &str,
) -> Result<Applied, WriteError> {
    let short = super::shorten(text);
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(WriteError::fail(format!(
            "{what}: HTTP {status}: Icinga refuses the ApiUser or its permissions: {short}"
        )));
    }
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let results = parsed
        .as_ref()
        .and_then(|v| v.get("results"))
        .and_then(Value::as_array);
    let Some(results) = results else {
        // Not Icinga's JSON: a proxy's page, or an error of the whole request.
        return super::classify(what, status, text).and_then(|()| {
            Err(WriteError::retry(format!(
                "{what}: HTTP {status} without a results list: {short}"
            )))
        });
    };
    if results.is_empty() {
        // Icinga 2.13 answers 404 or 500 (older: 200) to a filter without matches.
        return Err(WriteError::fail(format!(
            "{what}: Icinga has no {} {:?} (no object matches)",
            object.kind.to_lowercase(),
            object.name
        )));
    }
    let mut details = Vec::new();
    for r in results {
        let code = r.get("code").and_then(Value::as_f64).unwrap_or(0.0) as u16;
        let said = r
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if (200..300).contains(&code) {
            details.push(said);
            continue;
        }
        let lower = said.to_lowercase();
        if code == 409 && action == Action::Acknowledge && lower.contains("already acknowledged") {
            details.push(format!("{said} (counted as done)"));
            continue;
        }
        if code == 409 && action == Action::Acknowledge {
            return Err(WriteError::fail(format!(
                "{what}: {} is not in a problem state, nothing to acknowledge: {said}",
                object.name
            )));
        }
        let message = format!("{what}: Icinga answered {code}: {said}");
        return Err(if code >= 500 || code == 429 || code == 408 {
            WriteError::retry(message)
        } else {
            WriteError::fail(message)
        });
    }
    Ok(Applied {
        memo: None,
        detail: format!("{what}: {}", details.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(options: Value) -> Settings {
        Settings {
            url: Some("https://icinga.example.com:5665".parse().unwrap()),
            username: Some("pb".into()),
            password: Some("pw".into()),
            options,
            ..Settings::default()
        }
    }

    #[test]
    fn options_default_to_false_and_are_checked() {
        let options = |o: Value| options(&settings(o));
        assert_eq!(
            options(Value::Null).unwrap(),
            Options {
                sticky: false,
                notify: false,
                persistent: false
            }
        );
        assert_eq!(
            options(json!({"sticky": true, "notify": true})).unwrap(),
            Options {
                sticky: true,
                notify: true,
                persistent: false
            }
        );
        let e = options(json!({"sticky": "yes"})).unwrap_err();
        assert_eq!(e.field, "options.sticky");
        let e = options(json!({"stiky": true})).unwrap_err();
        assert_eq!(e.field, "options.stiky");
        let e = options(json!([1])).unwrap_err();
        assert_eq!(e.field, "options");
    }

    #[test]
    fn build_names_the_missing_setting() {
        let mut s = settings(Value::Null);
        s.url = None;
        assert_eq!(build(&s).err().unwrap().field, "url");
        let mut s = settings(Value::Null);
        s.password = None;
        assert_eq!(build(&s).err().unwrap().field, "password");
        let mut s = settings(Value::Null);
        s.username = None;
        assert_eq!(build(&s).err().unwrap().field, "username");
        assert!(build(&settings(json!({"notify": true}))).is_ok());
    }

    #[test]
    fn names_travel_as_filter_vars_not_in_the_filter() {
        let o = object(&MonitorRef::Object {
            host: r#"h" || true || ""#.into(),
            service: Some("s".into()),
            problem_id: None,
            last_problem_id: None,
        })
        .unwrap();
        assert!(!o.filter.contains('"'));
        assert_eq!(o.vars["pb_host"], r#"h" || true || ""#);
    }

    #[test]
    fn answers_are_judged_per_result() {
        let o = object(&MonitorRef::Object {
            host: "h".into(),
            service: None,
            problem_id: None,
            last_problem_id: None,
        })
        .unwrap();
        let ok = reqwest::StatusCode::OK;
        let conflict = reqwest::StatusCode::CONFLICT;
        assert!(
            judge("x", &o, Action::Acknowledge, ok, r#"{"results":[]}"#)
                .is_err_and(|e| !e.retry && e.message.contains("\"h\""))
        );
        assert!(
            judge(
                "x",
                &o,
                Action::Acknowledge,
                conflict,
                r#"{"results":[{"code":409,"status":"Host h is already acknowledged."}]}"#
            )
            .is_ok()
        );
        assert!(
            judge(
                "x",
                &o,
                Action::Acknowledge,
                reqwest::StatusCode::SERVICE_UNAVAILABLE,
                "busy"
            )
            .is_err_and(|e| e.retry)
        );
        assert!(
            judge(
                "x",
                &o,
                Action::Comment,
                reqwest::StatusCode::UNAUTHORIZED,
                ""
            )
            .is_err_and(|e| !e.retry)
        );
    }
}
