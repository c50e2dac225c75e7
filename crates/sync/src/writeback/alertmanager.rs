//! Write-back to Prometheus Alertmanager through its API v2: an acknowledgement in PagerDuty
//! becomes a silence of the alert, which resolving (or unacknowledging) the incident expires.
//!
//! | Action        | Alertmanager call                                              |
//! |---------------|----------------------------------------------------------------|
//! | Acknowledge   | `POST /api/v2/silences` (equality matchers of the alert)       |
//! | Unacknowledge | `DELETE /api/v2/silence/{id}` (the silence made on acknowledge) |
//! | Resolve       | `DELETE /api/v2/silence/{id}`                                  |
//! | Comment       | not possible: silences and alerts carry no comments            |
//!
//! The target is the alert's labels (`MonitorRef::Matchers`), each an equality matcher. The
//! silence's id is returned as the memo `{"silence_id": "..."}`, which the expiring calls read
//! back; without a memo there is no silence of ours and nothing to expire. Acknowledging again
//! with a memo updates that silence rather than adding a second one.
//!
//! Settings: `url` (required; `http://alertmanager:9093`, a path prefix such as
//! `/alertmanager` is kept), and for a proxy in front of it either `username`/`password`
//! (basic auth) or `token` (a bearer token). `ca_file`/`insecure_tls` for https.
//!
//! Options (`options.*`):
//! - `silence_duration` (a duration such as `"24h"` or `"90m"`, or seconds as a number;
//!   default `"24h"`): how long a silence lasts when the change carries no end
//!   ([`Change::expires_at`](super::Change)). Alertmanager needs an end, and a day bounds
//!   what a forgotten incident can hide.
//!
//! Note: silencing an alert that already fired makes Alertmanager send no resolve for it.
//!
//! Errors: 401/403/400 are final; 5xx, 429 and transport failures are retried. Expiring a
//! silence that is gone or already expired counts as done.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use pagerbridge_model::MonitorRef;

use super::{
    Action, Adapter, Applied, Options, Request, Settings, SettingsError, WriteError, classify,
    http_client, transport,
};

const DEFAULT_SILENCE: SignedDuration = SignedDuration::from_hours(24);

enum Auth {
    None,
    Basic(String, Option<String>),
    Bearer(String),
}

struct Alertmanager {
    http: reqwest::Client,
    /// Ends in `/api/v2/`.
    base: url::Url,
    auth: Auth,
    silence_duration: SignedDuration,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("Alertmanager's URL is required")?;
    let auth = match (&settings.username, &settings.token) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::new(
                "token",
                "give either username/password or a token, not both",
            ));
        }
        (Some(user), None) => Auth::Basic(user.clone(), settings.password.clone()),
        (None, Some(token)) => Auth::Bearer(token.clone()),
        (None, None) if settings.password.is_some() => {
            return Err(SettingsError::new(
                "username",
                "a password needs a username",
            ));
        }
        (None, None) => Auth::None,
    };
    let mut base = url.clone();
    let path = format!("{}/api/v2/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    Ok(Arc::new(Alertmanager {
        http: http_client(settings)?,
        base,
        auth,
        silence_duration: silence_duration(settings)?,
    }))
}

fn silence_duration(settings: &Settings) -> Result<SignedDuration, SettingsError> {
    let options = settings.options("Alertmanager", &["silence_duration"])?;
    let field = "options.silence_duration";
    let d = match options.get("silence_duration") {
        None | Some(Value::Null) => return Ok(DEFAULT_SILENCE),
        Some(Value::String(s)) => s.parse::<SignedDuration>().map_err(|e| {
            SettingsError::new(field, format!("{s:?} is not a duration like \"24h\": {e}"))
        })?,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) => SignedDuration::from_secs(secs.min(i64::MAX as u64) as i64),
            None => {
                return Err(SettingsError::new(
                    field,
                    format!("{n} is not a whole number of seconds"),
                ));
            }
        },
        Some(other) => {
            return Err(Options::expected(
                "silence_duration",
                "a duration like \"24h\"",
                other,
            ));
        }
    };
    if d < SignedDuration::from_mins(1) || d > SignedDuration::from_hours(24 * 366) {
        return Err(SettingsError::new(
            field,
            "must be between one minute and a year",
        ));
    }
    Ok(d)
}

/// Whether Alertmanager says the silence does not exist (0.25 answers 500 "silence not
/// found"; a proxy or a later version may say 404).
fn gone(status: reqwest::StatusCode, text: &str) -> bool {
    status == reqwest::StatusCode::NOT_FOUND
        || (!status.is_success() && text.contains("silence not found"))
}

/// The silence id in a memo of ours.
fn memo_silence(memo: Option<&Value>) -> Option<&str> {
    memo?.get("silence_id")?.as_str().filter(|s| !s.is_empty())
}

impl Alertmanager {
    /// `segments` appended to the API's base as path segments, each escaped as one.
    fn request(&self, method: reqwest::Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let b = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.auth {
            Auth::None => b,
            Auth::Basic(u, p) => b.basic_auth(u, p.as_ref()),
            Auth::Bearer(t) => b.bearer_auth(t),
        }
    }

    async fn silence(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let MonitorRef::Matchers { matchers, .. } = req.target else {
            return Err(WriteError::fail(format!(
                "alertmanager needs the alert's labels to silence it, not {:?}",
                req.target
            )));
        };
        if matchers.is_empty() {
            // A silence without matchers would hide every alert.
            return Err(WriteError::fail(
                "alertmanager: the alert has no labels to silence it by",
            ));
        }
        let change = req.change;
        let now = Timestamp::now();
        let ends = match change.expires_at {
            Some(at) if at > now => at,
            Some(at) => {
                return Err(WriteError::fail(format!(
                    "alertmanager: the acknowledgement already lapsed at {at}; no silence made"
                )));
            }
            None => now
                .checked_add(self.silence_duration)
                .map_err(|e| WriteError::fail(format!("alertmanager: silence end: {e}")))?,
        };
        let mut body = json!({
            "matchers": matchers
                .iter()
                .map(|(name, value)| json!({
                    "name": name, "value": value, "isRegex": false, "isEqual": true,
                }))
                .collect::<Vec<_>>(),
            "startsAt": now.to_string(),
            "endsAt": ends.to_string(),
            "createdBy": change.author,
            "comment": change.comment,
        });
        let previous = memo_silence(req.memo);
        if let Some(id) = previous {
            body["id"] = json!(id);
        }
        let what = "alertmanager: POST /api/v2/silences";
        let (mut status, mut text) = self.post_silence(what, &body).await?;
        if previous.is_some() && gone(status, &text) {
            // The old silence is gone (Alertmanager's data was lost): make a new one.
            body.as_object_mut().expect("an object").remove("id");
            (status, text) = self.post_silence(what, &body).await?;
        }
        classify(what, status, &text)?;
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("silenceID")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                WriteError::fail(format!(
                    "{what}: HTTP {status} without a silenceID: {}",
                    super::shorten(&text)
                ))
            })?;
        Ok(Applied {
            memo: Some(json!({"silence_id": id})),
            detail: format!("silence {id} until {ends}"),
        })
    }

    async fn post_silence(
        &self,
        what: &str,
        body: &Value,
    ) -> Result<(reqwest::StatusCode, String), WriteError> {
        let resp = self
            .request(reqwest::Method::POST, &["silences"])
            .json(body)
            .send()
            .await
            .map_err(|e| transport(what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(what, &e))?;
        Ok((status, text))
    }

    async fn expire(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let Some(id) = memo_silence(req.memo) else {
            return Ok(Applied {
                memo: None,
                detail: "no silence of ours to expire".into(),
            });
        };
        let what = format!("alertmanager: DELETE /api/v2/silence/{id}");
        // The id goes into the path as one segment, whatever it contains.
        let resp = self
            .request(reqwest::Method::DELETE, &["silence", id])
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(&what, &e))?;
        if gone(status, &text) {
            return Ok(Applied {
                memo: None,
                detail: format!("silence {id} is gone already"),
            });
        }
        // Alertmanager answers 500 "already expired" for a silence expired before.
        if text.contains("already expired") {
            return Ok(Applied {
                memo: None,
                detail: format!("silence {id} had expired already"),
            });
        }
        classify(&what, status, &text)?;
        Ok(Applied {
            memo: None,
            detail: format!("silence {id} expired"),
        })
    }
}

#[async_trait::async_trait]
impl Adapter for Alertmanager {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        match req.change.action {
            Action::Acknowledge => self.silence(req).await,
            Action::Unacknowledge | Action::Resolve => self.expire(req).await,
            Action::Comment => Err(WriteError::fail(
                "alertmanager cannot take a comment: silences and alerts have none",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_duration_is_checked() {
        let silence_duration = |options: &Value| {
            silence_duration(&Settings {
                options: options.clone(),
                ..Settings::default()
            })
        };
        assert_eq!(silence_duration(&Value::Null).unwrap(), DEFAULT_SILENCE);
        assert_eq!(
            silence_duration(&json!({"silence_duration": "90m"})).unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            silence_duration(&json!({"silence_duration": 3600})).unwrap(),
            SignedDuration::from_hours(1)
        );
        for bad in [
            json!("soon"),
            json!(-5),
            json!(true),
            json!("1s"),
            json!(1.5),
        ] {
            assert_eq!(
                silence_duration(&json!({"silence_duration": bad}))
                    .unwrap_err()
                    .field,
                "options.silence_duration",
                "{bad}"
            );
        }
        assert_eq!(
            silence_duration(&json!({"duration": "1h"}))
                .unwrap_err()
                .field,
            "options.duration"
        );
    }

    #[test]
    fn build_checks_url_and_auth() {
        assert_eq!(build(&Settings::default()).err().unwrap().field, "url");
        let s = Settings {
            url: Some("http://am:9093".parse().unwrap()),
            username: Some("u".into()),
            token: Some("t".into()),
            ..Settings::default()
        };
        assert_eq!(build(&s).err().unwrap().field, "token");
        let s = Settings {
            url: Some("http://am:9093/alertmanager".parse().unwrap()),
            ..Settings::default()
        };
        assert!(build(&s).is_ok());
    }

    #[test]
    fn memo_is_read_leniently() {
        assert_eq!(
            memo_silence(Some(&json!({"silence_id": "abc"}))),
            Some("abc")
        );
        assert_eq!(memo_silence(Some(&json!({"silence_id": ""}))), None);
        assert_eq!(memo_silence(Some(&json!({}))), None);
        assert_eq!(memo_silence(None), None);
    }
}
