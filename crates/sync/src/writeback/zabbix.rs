//! Write-back to Zabbix through its JSON-RPC API: one `event.acknowledge` call per change,
//! on the problem event the alert came from (`MonitorRef::ZabbixEvent`).
//!
//! Request: `POST <url>/api_jsonrpc.php` (`url` may also name `api_jsonrpc.php` itself),
//! `Content-Type: application/json-rpc`, body
//! `{"jsonrpc": "2.0", "method": "event.acknowledge", "params": {"eventids": ["<event_id>"],
//! "action": <bitmask>, "message": "<comment>"}, "id": <n>}`.
//!
//! | Change | `action` | In Zabbix |
//! |---|---|---|
//! | acknowledge | 2 + 4 = 6 | the problem is acknowledged, the comment added to its history |
//! | unacknowledge | 16 + 4 = 20 | the acknowledgement is taken back (Zabbix 5.2 and later), with the comment |
//! | comment | 4 | the comment is added to the problem's history |
//! | resolve | 1 + 4 = 5 | the problem is closed by hand, with the comment; only where its trigger has *Allow manual close* |
//!
//! Zabbix itself skips an acknowledge of an acknowledged problem (and the like) but always adds
//! the message. The comment is cut to `max_message` characters because Zabbix refuses longer
//! messages.
//!
//! Settings:
//!
//! - `url` (required): the frontend's base URL, `https://zabbix.example.com` or
//!   `https://example.com/zabbix`.
//! - `token` (required): an API token (*Users > API tokens*) of a user allowed to update
//!   problems (and to close them, for resolve: read-write on the hosts).
//! - `options.auth`: `"header"` (default) sends `Authorization: Bearer <token>`, which Zabbix
//!   6.4 and later take (7.4 refuses anything else); `"body"` sends the token in the request's
//!   `auth` field, for Zabbix 5.4 to 6.2.
//! - `options.max_message`: longest message, in characters (default 2048, Zabbix's limit).
//!
//! Errors: Zabbix answers HTTP 200 with `{"error": {"code", "message", "data"}}`.
//!
//! - `-32602` (invalid parameters; also what Zabbix answers for a refused, expired or unknown
//!   token: "Not authorized", "Session terminated, re-login, please"): final.
//! - `-32500` is Zabbix's code for both refused permissions ("No permissions to referred
//!   object or it does not exist!", "Cannot close problem: trigger does not allow manual
//!   closing.") and internal errors. Permission errors are final; a database failure
//!   ("SQL statement execution has failed", "database") is retried, since the database behind
//!   the frontend may be back later; anything else under `-32500` is final, because retrying
//!   an error Zabbix would not explain rarely helps and a final error is shown to the operator.
//! - `-32603` (internal JSON-RPC error) and `-32300` (transport error): retried.
//! - `-32600`, `-32601`, `-32700`, anything else: final (a Zabbix older than 5.2 refuses the
//!   unacknowledge bit with `-32602`, also final).
//! - HTTP 5xx, 408, 429, refused or timed-out connections: retried; other HTTP errors final; an
//!   answer that is not JSON-RPC (a login page, a proxy's page) is final and says to check
//!   `url`.
//!
//! Memo: `{"last_applied": "<action>:<incident>:<time of the change>"}`. A change that the memo
//! says was already carried out is not sent again, so a redelivered PagerDuty change does not
//! add the message twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pagerbridge_model::MonitorRef;
use serde_json::{Value, json};

use super::{
    Action, Adapter, Applied, Options, Request, Settings, SettingsError, WriteError,
    already_applied, change_key, classify, http_client, ref_kind, shorten, transport,
};

const DEFAULT_MAX_MESSAGE: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    Header,
    Body,
}

struct Zabbix {
    client: reqwest::Client,
    endpoint: String,
    token: String,
    auth: AuthMode,
    max_message: usize,
    next_id: AtomicU64,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("required: the Zabbix frontend's URL")?;
    let token = settings
        .token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| SettingsError::new("token", "required: a Zabbix API token"))?;
    let options = settings.options("Zabbix", &["auth", "max_message"])?;
    let auth = match options.string(
        "auth",
        "\"header\" (Zabbix 6.4+) or \"body\" (older)",
        |s| matches!(s, "header" | "body"),
    )? {
        Some("body") => AuthMode::Body,
        _ => AuthMode::Header,
    };
    let max_message = match options.get("max_message") {
        None | Some(Value::Null) => DEFAULT_MAX_MESSAGE,
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                Options::expected("max_message", "a positive number of characters", v)
            })?,
    };
    let base = url.as_str().trim_end_matches('/');
    let endpoint = if base.ends_with("api_jsonrpc.php") {
        base.to_string()
    } else {
        format!("{base}/api_jsonrpc.php")
    };
    Ok(Arc::new(Zabbix {
        client: http_client(settings)?,
        endpoint,
        token,
        auth,
        max_message,
        next_id: AtomicU64::new(1),
    }))
}

/// The bitmask of `event.acknowledge` (Zabbix 5.2+): 1 close, 2 acknowledge, 4 add message,
/// 16 unacknowledge.
fn action_bits(action: Action) -> u32 {
    const CLOSE: u32 = 1;
    const ACK: u32 = 2;
    const MESSAGE: u32 = 4;
    const UNACK: u32 = 16;
    match action {
        Action::Acknowledge => ACK | MESSAGE,
        Action::Unacknowledge => UNACK | MESSAGE,
        Action::Comment => MESSAGE,
        Action::Resolve => CLOSE | MESSAGE,
    }
}

#[async_trait::async_trait]
impl Adapter for Zabbix {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let MonitorRef::ZabbixEvent { event_id, .. } = req.target else {
            return Err(WriteError::fail(format!(
                "zabbix write-back needs a Zabbix event reference (zabbix_event), got {}",
                ref_kind(req.target)
            )));
        };
        let key = change_key(req.change);
        if already_applied(req.memo, &key) {
            return Ok(Applied {
                memo: None,
                detail: format!(
                    "zabbix: {} of event {event_id} already done, not repeated",
                    req.change.action.as_str()
                ),
            });
        }
        let message: String = req.change.comment.chars().take(self.max_message).collect();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = json!({
            "jsonrpc": "2.0",
            "method": "event.acknowledge",
            "params": {
                "eventids": [event_id],
                "action": action_bits(req.change.action),
                "message": message,
            },
            "id": id,
        });
        let mut http = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json-rpc");
        match self.auth {
            AuthMode::Header => http = http.bearer_auth(&self.token),
            AuthMode::Body => body["auth"] = Value::String(self.token.clone()),
        }
        let what = format!(
            "zabbix event.acknowledge ({}) of event {event_id}",
            req.change.action.as_str()
        );
        let resp = http
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(&what, &e))?;
        classify(&what, status, &text)?;
        let answer: Value = serde_json::from_str(&text).map_err(|_| {
            WriteError::fail(format!(
                "{what}: the answer is not JSON-RPC (check that url is the Zabbix frontend): {}",
                shorten(&text)
            ))
        })?;
        if let Some(err) = answer.get("error") {
            return Err(json_rpc_error(&what, err));
        }
        let Some(result) = answer.get("result") else {
            return Err(WriteError::fail(format!(
                "{what}: the answer has neither result nor error: {}",
                shorten(&text)
            )));
        };
        Ok(Applied {
            memo: Some(json!({ "last_applied": key })),
            detail: format!(
                "zabbix: {} event {event_id} (action {}): {}",
                req.change.action.as_str(),
                action_bits(req.change.action),
                result
            ),
        })
    }
}

fn json_rpc_error(what: &str, err: &Value) -> WriteError {
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    let data = err.get("data").and_then(Value::as_str).unwrap_or("");
    let full = format!("{what}: Zabbix error {code}: {message} {data}");
    let lower = data.to_ascii_lowercase();
    match code {
        -32602
            if lower.contains("not authori")
                || lower.contains("session terminated")
                || lower.contains("api token") =>
        {
            WriteError::fail(format!("{full} (the API token was refused: check token)"))
        }
        -32500 if lower.contains("manual clos") => WriteError::fail(format!(
            "{full} (the trigger does not allow manual close: tick \"Allow manual close\" on \
             the trigger, or write a comment on resolve instead)"
        )),
        -32500 if lower.contains("sql") || lower.contains("database") => WriteError::retry(full),
        -32603 | -32300 => WriteError::retry(full),
        _ => WriteError::fail(full),
    }
}
