//! Webhooks v3: `X-PagerDuty-Signature` signing and verification, and the payload types.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rest::Reference;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub const SIGNATURE_HEADER: &str = "x-pagerduty-signature";
pub const WEBHOOK_ID_HEADER: &str = "x-webhook-id";
pub const SUBSCRIPTION_HEADER: &str = "x-webhook-subscription";
pub const USER_AGENT: &str = "PagerDuty-Webhook/V3.0";

/// `v1=<hex HMAC-SHA256(secret, body)>`, the value PagerDuty puts in `X-PagerDuty-Signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-PagerDuty-Signature header is missing")]
    Missing,
    #[error("the X-PagerDuty-Signature header has no v1 signature")]
    NoV1Signature,
    #[error("no v1 signature matches the body with any configured secret")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Verifies a signature header against the raw body.
///
/// During a secret rotation PagerDuty sends several comma-separated `v1=` values, and an operator
/// may hold both the old and new secret: any pairing that matches is accepted. Values of other
/// versions are ignored, as PagerDuty asks. The comparison is constant time (`verify_slice`).
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let candidates: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h.trim()).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    for secret in secrets {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_ref()).expect("HMAC accepts keys of any length");
        mac.update(body);
        for candidate in &candidates {
            if mac.clone().verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The body of a v3 delivery: exactly one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    pub event: WebhookEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    /// `incident.triggered`, `incident.acknowledged`, ..., `pagey.ping`.
    pub event_type: String,
    pub resource_type: String,
    pub occurred_at: String,
    #[serde(default)]
    pub agent: Option<Reference>,
    #[serde(default)]
    pub client: Option<Value>,
    /// An incident (`WebhookIncident`), or for `incident.annotated` a note
    /// (`{"type":"incident_note","content":...}`); kept raw so new event types still parse.
    pub data: Value,
}

impl WebhookEvent {
    /// The incident this event is about, for incident events other than notes.
    pub fn incident(&self) -> Option<WebhookIncident> {
        if self.resource_type != "incident" || self.data.get("type")? != "incident" {
            return None;
        }
        serde_json::from_value(self.data.clone()).ok()
    }

    /// The note of an `incident.annotated` event, with the incident it belongs to.
    pub fn note(&self) -> Option<WebhookNote> {
        if self.data.get("type")? != "incident_note" {
            return None;
        }
        serde_json::from_value(self.data.clone()).ok()
    }
}

/// The incident inside a v3 event. It differs from the REST incident: `number`, `assignees`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookIncident {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "self", default)]
    pub self_url: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub number: Option<u64>,
    pub status: crate::rest::IncidentStatus,
    #[serde(default)]
    pub incident_key: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub service: Option<Reference>,
    #[serde(default)]
    pub assignees: Vec<Reference>,
    #[serde(default)]
    pub escalation_policy: Option<Reference>,
    #[serde(default)]
    pub teams: Vec<Reference>,
    #[serde(default)]
    pub priority: Option<Reference>,
    #[serde(default)]
    pub urgency: Option<crate::rest::Urgency>,
    #[serde(default)]
    pub resolve_reason: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookNote {
    pub incident: Reference,
    pub id: String,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub trimmed: bool,
}

/// The legacy "Generic V2 Webhook" body: a batch of messages, unsigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V2Webhook {
    pub messages: Vec<V2Message>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V2Message {
    pub id: String,
    /// `incident.trigger`, `incident.acknowledge`, `incident.unacknowledge`, `incident.resolve`,
    /// `incident.assign`, `incident.escalate`, `incident.delegate`, `incident.annotate`.
    pub event: String,
    pub created_on: String,
    pub incident: Value,
    #[serde(default)]
    pub log_entries: Vec<Value>,
    #[serde(default)]
    pub webhook: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_rotation() {
        let body = br#"{"event":{}}"#;
        let sig = sign(b"new", body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_eq!(verify(Some(&sig), body, &["new"]), Ok(()));
        // Old secret still configured, header signed by both during rotation.
        let both = format!("{}, {}", sign(b"old", body), sig);
        assert_eq!(verify(Some(&both), body, &["old"]), Ok(()));
        assert_eq!(verify(Some(&both), body, &["other", "new"]), Ok(()));
        assert_eq!(
            verify(Some(&sig), body, &["wrong"]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some("v0=abc"), body, &["new"]),
            Err(SignatureError::NoV1Signature)
        );
        assert_eq!(verify(None, body, &["new"]), Err(SignatureError::Missing));
        let none: [&str; 0] = [];
        assert_eq!(
            verify(Some(&sig), body, &none),
            Err(SignatureError::NoSecret)
        );
        // Garbage hex in one value must not hide a valid second value.
        let mixed = format!("v1=zz, {sig}");
        assert_eq!(verify(Some(&mixed), body, &["new"]), Ok(()));
    }
}
