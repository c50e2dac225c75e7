//! Write-back as a generic outbound webhook: every change is one JSON `POST` to `url`, for
//! monitors pagerbridge has no adapter for and for anything else that wants PagerDuty's changes.
//!
//! Body (every action, any monitor reference):
//!
//! ```json
//! {"action": "acknowledge", "author": "Jane Doe",
//!  "comment": "Acknowledged by Jane Doe in PagerDuty: https://acme.pagerduty.com/incidents/Q1ABC",
//!  "incident": {"id": "Q1ABC", "url": "https://acme.pagerduty.com/incidents/Q1ABC"},
//!  "at": "2026-11-21T08:15:00Z", "expires_at": null,
//!  "monitor_ref": {"kind": "zabbix_event", "event_id": "5021", "trigger_id": "17500"}}
//! ```
//!
//! `action` is `acknowledge`, `unacknowledge`, `comment` or `resolve`; `monitor_ref` is the
//! reference the alert carried, as pagerbridge stores it (`kind` and that kind's fields).
//!
//! Headers: `Content-Type: application/json`; `Idempotency-Key: <action>:<incident>:<at>`, the
//! same for every delivery of one change, so a receiver can drop a repeated delivery;
//! `Authorization: Bearer <token>` when `token` is set; with `options.hmac_secret`,
//! `X-Pagerbridge-Timestamp: <unix seconds>` and
//! `<signature_header>: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. The secret is a
//! separate option, not the bearer token, because the token travels in every request while the
//! secret never does; signing the timestamp with the body lets a receiver refuse old replays.
//!
//! Settings:
//!
//! - `url` (required): the receiver, http or https.
//! - `token`: a bearer token to send.
//! - `options.hmac_secret`: the HMAC key; no signature without it.
//! - `options.signature_header`: default `X-Pagerbridge-Signature`.
//!
//! Answers: 2xx is done; 5xx, 408, 429 and transport failures (refused, reset, timed out) are
//! retried; any other status is final.
//!
//! Memo: `{"last_applied": "<action>:<incident>:<time of the change>"}`; a change the memo says
//! was delivered is not posted again.

use std::sync::Arc;

use hmac::{KeyInit, Mac};
use pagerbridge_model::MonitorRef;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{
    Adapter, Applied, Change, Request, Settings, SettingsError, WriteError, already_applied,
    change_key, classify, http_client, transport,
};

const TIMESTAMP_HEADER: &str = "X-Pagerbridge-Timestamp";

struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    token: Option<String>,
    hmac_secret: Option<String>,
    signature_header: HeaderName,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("required: the receiver's URL")?.clone();
    let options = settings.options("the webhook", &["hmac_secret", "signature_header"])?;
    let hmac_secret = options
        .string("hmac_secret", "a non-empty string", |s| !s.is_empty())?
        .map(str::to_string);
    let signature_header = match options.string("signature_header", "a header name", |_| true)? {
        None => HeaderName::from_static("x-pagerbridge-signature"),
        Some(s) => HeaderName::from_bytes(s.as_bytes()).map_err(|_| {
            SettingsError::new(
                "options.signature_header",
                format!("{s:?} is not a valid HTTP header name"),
            )
        })?,
    };
    if options.get("signature_header").is_some() && hmac_secret.is_none() {
        return Err(SettingsError::new(
            "options.signature_header",
            "set without options.hmac_secret: nothing would be signed",
        ));
    }
    Ok(Arc::new(Webhook {
        client: http_client(settings)?,
        url,
        token: settings.token.clone().filter(|t| !t.is_empty()),
        hmac_secret,
        signature_header,
    }))
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what a receiver recomputes.
fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn payload(target: &MonitorRef, c: &Change) -> Value {
    json!({
        "action": c.action.as_str(),
        "author": c.author,
        "comment": c.comment,
        "incident": {"id": c.incident_id, "url": c.incident_url},
        "at": c.at.to_string(),
        "expires_at": c.expires_at.map(|t| t.to_string()),
        "monitor_ref": target,
    })
}

#[async_trait::async_trait]
impl Adapter for Webhook {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let key = change_key(req.change);
        if already_applied(req.memo, &key) {
            return Ok(Applied {
                memo: None,
                detail: format!(
                    "webhook: {} of {} already delivered, not repeated",
                    req.change.action.as_str(),
                    req.change.incident_id
                ),
            });
        }
        let body = serde_json::to_vec(&payload(req.target, req.change))
            .map_err(|e| WriteError::fail(format!("webhook: cannot encode the change: {e}")))?;
        let mut http = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        // An incident id or timestamp can hold nothing a header refuses, but never panic on it.
        if let Ok(v) = HeaderValue::from_str(&key) {
            http = http.header("Idempotency-Key", v);
        }
        if let Some(token) = &self.token {
            http = http.bearer_auth(token);
        }
        if let Some(secret) = &self.hmac_secret {
            let ts = jiff::Timestamp::now().as_second().to_string();
            http = http
                .header(TIMESTAMP_HEADER, &ts)
                .header(self.signature_header.clone(), signature(secret, &ts, &body));
        }
        let what = format!(
            "webhook {} of {} to {}",
            req.change.action.as_str(),
            req.change.incident_id,
            self.url
        );
        let resp = http
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(&what, &e))?;
        classify(&what, status, &text)?;
        Ok(Applied {
            memo: Some(json!({ "last_applied": key })),
            detail: format!("{what}: HTTP {status}"),
        })
    }
}
