//! Write-back to Zenoss through its JSON API (the Ext.Direct router of the event console), on
//! the event the alert came from (`MonitorRef::ZenossEvent`).
//!
//! Request: `POST <url>/zport/dmd/evconsole_router` with HTTP basic authentication and the body
//! `{"action": "EventsRouter", "method": "<method>", "data": [<arguments>], "type": "rpc",
//! "tid": <n>}`.
//!
//! | Change | Calls | In Zenoss |
//! |---|---|---|
//! | acknowledge | `acknowledge` `{"evids": [evid]}`, then `write_log` | the event is Acknowledged; the comment (who, and the incident's link) is in its log |
//! | unacknowledge | `reopen` `{"evids": [evid]}` (or `unacknowledge`, see below), then `write_log` | the event is New again |
//! | comment | `write_log` `{"evid": evid, "message": comment}` | the comment is in the event's log |
//! | resolve | `close` `{"evids": [evid]}`, then `write_log` | the event is Closed |
//!
//! The state change goes first because Zenoss makes it idempotent (acknowledging an
//! acknowledged event changes nothing) while every `write_log` adds a line. When the state change
//! worked and the log line fails: a failure worth retrying is returned as such (the retry
//! repeats the harmless state change, then writes the line); a final one is not, since the
//! change itself was made: the call succeeds and its detail says the log line is missing.
//!
//! Settings:
//!
//! - `url` (required): Zenoss' base URL (`https://zenoss.example.com`, or with `:8080`).
//! - `username`, `password` (required): a Zenoss user with *Manage Events* on the devices.
//! - `options.unacknowledge_method`: `"reopen"` (default; Zenoss 4 and later) or
//!   `"unacknowledge"` (the older name, which Zenoss 4+ keeps as a deprecated alias of reopen).
//! - `options.log_state_changes`: `true` (default) writes the comment to the event's log after
//!   acknowledge, unacknowledge and resolve; `false` changes the state only.
//!
//! Errors: Zenoss answers HTTP 200 with `{"result": {"success": false, "msg": ...}}` when a
//! method fails: final, unless the message says Zenoss could not reach its event server (ZEP),
//! which is retried. A login page (HTML, after a redirect or not) or HTTP 401 means Zenoss
//! refused the username and password: final, and the error says so. HTTP 5xx, 408, 429 and
//! transport failures are retried; other HTTP errors are final.
//!
//! Memo: `{"last_applied": "<action>:<incident>:<time of the change>"}`; a change the memo says
//! was carried out is not sent again, so a redelivered change writes no second log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pagerbridge_model::MonitorRef;
use serde_json::{Value, json};

use super::{
    Action, Adapter, Applied, Change, Request, Settings, SettingsError, WriteError,
    already_applied, change_key, classify, http_client, ref_kind, shorten, transport,
};

struct Zenoss {
    client: reqwest::Client,
    endpoint: String,
    username: String,
    password: String,
    unack_method: &'static str,
    log_state_changes: bool,
    next_tid: AtomicU64,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("required: Zenoss' base URL")?;
    let username = settings
        .username
        .clone()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| SettingsError::new("username", "required: a Zenoss user"))?;
    let password = settings
        .password
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| SettingsError::new("password", "required: the Zenoss user's password"))?;
    let options = settings.options("Zenoss", &["unacknowledge_method", "log_state_changes"])?;
    let unack_method = match options.string(
        "unacknowledge_method",
        "\"reopen\" or \"unacknowledge\"",
        |s| matches!(s, "reopen" | "unacknowledge"),
    )? {
        Some("unacknowledge") => "unacknowledge",
        _ => "reopen",
    };
    let log_state_changes = options.bool("log_state_changes", true)?;
    let endpoint = format!(
        "{}/zport/dmd/evconsole_router",
        url.as_str().trim_end_matches('/')
    );
    Ok(Arc::new(Zenoss {
        client: http_client(settings)?,
        endpoint,
        username,
        password,
        unack_method,
        log_state_changes,
        next_tid: AtomicU64::new(1),
    }))
}

/// The log line: the comment, with the incident's link when the comment lacks it, so the
/// reason for the change can be followed from Zenoss.
fn log_message(c: &Change) -> String {
    match &c.incident_url {
        Some(u) if !c.comment.contains(u.as_str()) => format!("{} ({u})", c.comment),
        _ => c.comment.clone(),
    }
}

impl Zenoss {
    async fn call(&self, method: &str, data: Value) -> Result<Value, WriteError> {
        let tid = self.next_tid.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "action": "EventsRouter",
            "method": method,
            "data": [data],
            "type": "rpc",
            "tid": tid,
        });
        let what = format!("zenoss EventsRouter.{method}");
        let resp = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.username, Some(&self.password))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        let status = resp.status();
        let html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let text = resp.text().await.map_err(|e| transport(&what, &e))?;
        let login_page = || {
            WriteError::fail(format!(
                "{what}: Zenoss answered with its login page (HTTP {status}): it refused the \
                 username and password, check username and password"
            ))
        };
        if status == reqwest::StatusCode::UNAUTHORIZED || status.is_redirection() {
            return Err(login_page());
        }
        classify(&what, status, &text)?;
        let looks_html = html || text.trim_start().starts_with('<');
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) if looks_html => return Err(login_page()),
            Err(_) => {
                return Err(WriteError::fail(format!(
                    "{what}: the answer is not JSON (check url): {}",
                    shorten(&text)
                )));
            }
        };
        // Before Zenoss 4 a failing method answered a top-level exception object.
        if answer.get("type").and_then(Value::as_str) == Some("exception") {
            let msg = answer.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(result_failure(&what, msg));
        }
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        match result.get("success").and_then(Value::as_bool) {
            Some(true) => Ok(result),
            Some(false) => {
                let msg = result.get("msg").and_then(Value::as_str).unwrap_or("");
                Err(result_failure(&what, msg))
            }
            None => Err(WriteError::fail(format!(
                "{what}: the answer has no result.success: {}",
                shorten(&text)
            ))),
        }
    }
}

fn result_failure(what: &str, msg: &str) -> WriteError {
    let lower = msg.to_ascii_lowercase();
    let message = format!("{what}: Zenoss refused: {msg}");
    // ZEP unreachable from the web tier: the event server may be back later.
    if lower.contains("serviceconnectionerror")
        || lower.contains("unable to connect")
        || lower.contains("connection refused")
        || lower.contains("timed out")
    {
        WriteError::retry(message)
    } else {
        WriteError::fail(message)
    }
}

#[async_trait::async_trait]
impl Adapter for Zenoss {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let MonitorRef::ZenossEvent { evid } = req.target else {
            return Err(WriteError::fail(format!(
                "zenoss write-back needs a Zenoss event reference (zenoss_event), got {}",
                ref_kind(req.target)
            )));
        };
        let key = change_key(req.change);
        if already_applied(req.memo, &key) {
            return Ok(Applied {
                memo: None,
                detail: format!(
                    "zenoss: {} of event {evid} already done, not repeated",
                    req.change.action.as_str()
                ),
            });
        }
        let memo = Some(json!({ "last_applied": key }));
        let log = json!({"evid": evid, "message": log_message(req.change)});
        let state_method = match req.change.action {
            Action::Acknowledge => "acknowledge",
            Action::Unacknowledge => self.unack_method,
            Action::Resolve => "close",
            Action::Comment => {
                self.call("write_log", log).await?;
                return Ok(Applied {
                    memo,
                    detail: format!("zenoss: comment written to the log of event {evid}"),
                });
            }
        };
        self.call(state_method, json!({"evids": [evid]})).await?;
        if !self.log_state_changes {
            return Ok(Applied {
                memo,
                detail: format!("zenoss: {state_method} event {evid}"),
            });
        }
        match self.call("write_log", log).await {
            Ok(_) => Ok(Applied {
                memo,
                detail: format!("zenoss: {state_method} event {evid}, comment logged"),
            }),
            Err(e) if e.retry => Err(WriteError::retry(format!(
                "{state_method} of event {evid} done, its log line not yet: {}",
                e.message
            ))),
            Err(e) => Ok(Applied {
                memo,
                detail: format!(
                    "zenoss: {state_method} event {evid}; the log line was refused: {}",
                    e.message
                ),
            }),
        }
    }
}
