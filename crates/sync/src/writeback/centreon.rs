//! Write-back to Centreon through its REST API v2, on the host or service the alert came from
//! (`MonitorRef::CentreonIds`, the numeric ids Centreon Broker sends).
//!
//! Paths are below `<url><api_path>`, `api_path` defaulting to `/centreon/api/latest`.
//!
//! | Change | Request | In Centreon |
//! |---|---|---|
//! | acknowledge | `POST /monitoring/hosts/{host_id}/services/{service_id}/acknowledgements` `{"comment", "is_notify_contacts", "is_persistent_comment", "is_sticky"}`; for a host `POST /monitoring/hosts/{host_id}/acknowledgements` with `with_services` too | the problem is acknowledged by the API user, with the comment (who in PagerDuty, and the link) |
//! | unacknowledge | `DELETE` on the same path | the acknowledgement is cancelled; a 404 (no acknowledgement any more) counts as done |
//! | comment | `POST /monitoring/resources/comments` `{"resources": [{"type": "service", "id": service_id, "parent": {"id": host_id}, "comment", "date"}]}` (`"type": "host"`, `"parent": null` for a host) | a comment on the resource |
//! | resolve | none: a final error | Centreon has no manual resolve; the problem clears when its check recovers |
//!
//! Authentication: with `username` and `password`, `POST /login`
//! `{"security": {"credentials": {"login", "password"}}}` gives a token, sent as `X-AUTH-TOKEN`
//! and kept; when Centreon answers 401 or 403 (the token expired) it logs in again once and
//! repeats the request. With `token` (an API token, Centreon 23.10 and later) that token is sent
//! as is and no login happens. The service endpoint refuses `with_services`, so it is sent for
//! host acknowledgements only.
//!
//! Settings:
//!
//! - `url` (required): Centreon's web URL, `https://centreon.example.com`.
//! - `username` and `password`, or `token` (required, one of the two).
//! - `options.api_path`: default `/centreon/api/latest`; `/centreon/api/v23.10` to pin a version,
//!   `""` when `url` already is the API's base.
//! - `options.sticky` (default `true`): the acknowledgement stays until the resource is OK.
//! - `options.notify` (default `false`): Centreon notifies the contacts of the acknowledgement
//!   (they were paged through PagerDuty already).
//! - `options.persistent` (default `true`): the comment survives an engine restart.
//! - `options.with_services` (default `true`): a host acknowledgement covers its services.
//!
//! Errors: refused credentials at login (401) and a request still refused after a fresh login
//! are final and say so; Centreon's own errors (`{"code", "message"}`: an unknown host or
//! service 404, a refused body 400) are final; 5xx, 408, 429 and transport failures are
//! retried.
//!
//! Memo: `{"last_applied": "<action>:<incident>:<time of the change>"}`; a change the memo says
//! was carried out is not sent again.

use std::sync::Arc;

use pagerbridge_model::MonitorRef;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    Action, Adapter, Applied, Request, Settings, SettingsError, WriteError, already_applied,
    change_key, classify, http_client, ref_kind, shorten, transport,
};

enum Auth {
    Login {
        username: String,
        password: String,
        token: Mutex<Option<String>>,
    },
    ApiToken(String),
}

struct Centreon {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    sticky: bool,
    notify: bool,
    persistent: bool,
    with_services: bool,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let url = settings.http_url("required: Centreon's web URL")?;
    let options = settings.options(
        "Centreon",
        &[
            "api_path",
            "sticky",
            "notify",
            "persistent",
            "with_services",
        ],
    )?;
    let api_path = options
        .string("api_path", "a path starting with / (or \"\")", |s| {
            s.is_empty() || s.starts_with('/')
        })?
        .unwrap_or("/centreon/api/latest");
    let auth = match (
        settings.token.clone().filter(|t| !t.trim().is_empty()),
        settings.username.clone().filter(|u| !u.trim().is_empty()),
        settings.password.clone().filter(|p| !p.is_empty()),
    ) {
        (Some(token), _, _) => Auth::ApiToken(token),
        (None, Some(username), Some(password)) => Auth::Login {
            username,
            password,
            token: Mutex::new(None),
        },
        (None, None, _) => {
            return Err(SettingsError::new(
                "username",
                "required (with password), unless token holds a Centreon API token",
            ));
        }
        (None, Some(_), None) => {
            return Err(SettingsError::new(
                "password",
                "required with username, unless token holds a Centreon API token",
            ));
        }
    };
    let base = format!(
        "{}{}",
        url.as_str().trim_end_matches('/'),
        api_path.trim_end_matches('/')
    );
    Ok(Arc::new(Centreon {
        client: http_client(settings)?,
        base,
        auth,
        sticky: options.bool("sticky", true)?,
        notify: options.bool("notify", false)?,
        persistent: options.bool("persistent", true)?,
        with_services: options.bool("with_services", true)?,
    }))
}

fn refused(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

impl Centreon {
    async fn login(&self, username: &str, password: &str) -> Result<String, WriteError> {
        let what = "centreon login";
        let resp = self
            .client
            .post(format!("{}/login", self.base))
            .json(&json!({"security": {"credentials": {"login": username, "password": password}}}))
            .send()
            .await
            .map_err(|e| transport(what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(what, &e))?;
        if refused(status) {
            return Err(WriteError::fail(format!(
                "{what}: Centreon refused username and password (HTTP {status}): {}",
                shorten(&text)
            )));
        }
        classify(what, status, &text)?;
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/security/token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                WriteError::fail(format!(
                    "{what}: the answer has no security.token (check url and options.api_path): {}",
                    shorten(&text)
                ))
            })
    }

    async fn send(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<(StatusCode, String), WriteError> {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-AUTH-TOKEN", token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.map_err(|e| transport(what, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(what, &e))?;
        Ok((status, text))
    }

    /// One request with the cached session token; a refused token is replaced once.
    async fn request(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String), WriteError> {
        match &self.auth {
            Auth::ApiToken(token) => {
                let (status, text) = self.send(what, method, path, body, token).await?;
                if refused(status) {
                    return Err(WriteError::fail(format!(
                        "{what}: Centreon refused the API token (HTTP {status}): check token"
                    )));
                }
                Ok((status, text))
            }
            Auth::Login {
                username,
                password,
                token,
            } => {
                // Held across the call so concurrent changes share one login.
                let mut cached = token.lock().await;
                let mut fresh = false;
                let current = match cached.clone() {
                    Some(t) => t,
                    None => {
                        fresh = true;
                        let t = self.login(username, password).await?;
                        *cached = Some(t.clone());
                        t
                    }
                };
                let (status, text) = self
                    .send(what, method.clone(), path, body, &current)
                    .await?;
                if !refused(status) {
                    return Ok((status, text));
                }
                *cached = None;
                if fresh {
                    return Err(WriteError::fail(format!(
                        "{what}: refused (HTTP {status}) with a token just obtained: the user \
                         lacks the rights for this action"
                    )));
                }
                let t = self.login(username, password).await?;
                *cached = Some(t.clone());
                let (status, text) = self.send(what, method, path, body, &t).await?;
                if refused(status) {
                    *cached = None;
                    return Err(WriteError::fail(format!(
                        "{what}: refused (HTTP {status}) even after a fresh login: the user \
                         lacks the rights for this action"
                    )));
                }
                Ok((status, text))
            }
        }
    }
}

#[async_trait::async_trait]
impl Adapter for Centreon {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let MonitorRef::CentreonIds {
            host_id,
            service_id,
        } = req.target
        else {
            return Err(WriteError::fail(format!(
                "centreon write-back needs Centreon ids (centreon_ids), got {}",
                ref_kind(req.target)
            )));
        };
        let key = change_key(req.change);
        let resource = match service_id {
            Some(s) => format!("service {host_id}/{s}"),
            None => format!("host {host_id}"),
        };
        if already_applied(req.memo, &key) {
            return Ok(Applied {
                memo: None,
                detail: format!(
                    "centreon: {} of {resource} already done, not repeated",
                    req.change.action.as_str()
                ),
            });
        }
        let ack_path = match service_id {
            Some(s) => format!("/monitoring/hosts/{host_id}/services/{s}/acknowledgements"),
            None => format!("/monitoring/hosts/{host_id}/acknowledgements"),
        };
        let what = format!("centreon {} of {resource}", req.change.action.as_str());
        let (status, text, detail) = match req.change.action {
            Action::Acknowledge => {
                let mut body = json!({
                    "comment": req.change.comment,
                    "is_notify_contacts": self.notify,
                    "is_persistent_comment": self.persistent,
                    "is_sticky": self.sticky,
                });
                if service_id.is_none() {
                    body["with_services"] = Value::Bool(self.with_services);
                }
                let (status, text) = self
                    .request(&what, Method::POST, &ack_path, Some(&body))
                    .await?;
                (status, text, format!("centreon: acknowledged {resource}"))
            }
            Action::Unacknowledge => {
                let (status, text) = self.request(&what, Method::DELETE, &ack_path, None).await?;
                if status == StatusCode::NOT_FOUND {
                    return Ok(Applied {
                        memo: Some(json!({ "last_applied": key })),
                        detail: format!(
                            "centreon: {resource} has no acknowledgement to cancel (404)"
                        ),
                    });
                }
                (
                    status,
                    text,
                    format!("centreon: acknowledgement of {resource} cancelled"),
                )
            }
            Action::Comment => {
                let item = match service_id {
                    Some(s) => json!({
                        "type": "service",
                        "id": s,
                        "parent": {"id": host_id},
                        "comment": req.change.comment,
                        "date": req.change.at.to_string(),
                    }),
                    None => json!({
                        "type": "host",
                        "id": host_id,
                        "parent": null,
                        "comment": req.change.comment,
                        "date": req.change.at.to_string(),
                    }),
                };
                let body = json!({ "resources": [item] });
                let (status, text) = self
                    .request(
                        &what,
                        Method::POST,
                        "/monitoring/resources/comments",
                        Some(&body),
                    )
                    .await?;
                (status, text, format!("centreon: commented {resource}"))
            }
            Action::Resolve => {
                return Err(WriteError::fail(format!(
                    "{what}: Centreon has no manual resolve (the problem clears when its check \
                     recovers); set the monitor's on_resolve to comment"
                )));
            }
        };
        classify(&what, status, &text)?;
        Ok(Applied {
            memo: Some(json!({ "last_applied": key })),
            detail,
        })
    }
}
