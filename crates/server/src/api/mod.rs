//! The daemon's own HTTP API under `/api/v1`: incidents, services and maintenance windows
//! (through PagerDuty's REST API, with the operations the CLI uses), the outbox and the incident
//! map (from the store). Described in docs/api.md.
//!
//! Every route is one row of [`endpoints`]: the router is built from that table and so is the
//! OpenAPI document (`/api/v1/openapi.json`), so a route cannot exist undocumented. Callers
//! authenticate with `Authorization: Bearer <token>` (`[[api.tokens]]`); `GET` routes need the
//! `read` scope, `POST` routes `admin`. Errors are JSON everywhere (see [`error`]).

pub mod error;
mod incident_map;
mod incidents;
mod input;
mod openapi;
mod queue;
mod services;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use pagerbridge_config::{ApiScope, Config};
use pagerbridge_store::{Store, SyncStore};
use pagerduty::{RestClient, RetryPolicy};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use self::error::{ApiError, ErrorKind};
use self::input::{BODY_LIMIT, Param};
pub use self::openapi::document as openapi_document;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// How long one API call waits out PagerDuty's rate limiting (and 5xx on reads) in all; past
/// it, the caller gets 503 with PagerDuty's `Retry-After`.
pub const PAGERDUTY_WAIT_BUDGET: Duration = Duration::from_secs(20);

/// What the API works with. Cheap to clone.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

struct Inner {
    tokens: Vec<Token>,
    store: Arc<dyn Store>,
    sync: Arc<dyn SyncStore>,
    rest: Option<RestClient>,
    /// `pagerduty.from`: who writes act as when a request does not say.
    from: Option<String>,
}

struct Token {
    name: String,
    /// The token's SHA-256: compared in constant time, whatever the lengths.
    digest: [u8; 32],
    scope: ApiScope,
}

impl Api {
    /// `rest` is the daemon's REST client (none without `pagerduty.api_token`); the API's copy
    /// waits out PagerDuty's throttling for up to [`PAGERDUTY_WAIT_BUDGET`], logging each wait.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        sync: Arc<dyn SyncStore>,
        rest: Option<RestClient>,
    ) -> Api {
        let tokens = config
            .api
            .tokens
            .iter()
            .map(|t| Token {
                name: t.name.clone(),
                digest: Sha256::digest(t.token.expose().as_bytes()).into(),
                scope: t.scope,
            })
            .collect();
        let policy = RetryPolicy {
            max_total_wait: PAGERDUTY_WAIT_BUDGET,
            ..RetryPolicy::default()
        }
        .on_wait(|wait| tracing::warn!(%wait, "API call: PagerDuty is throttling or failing"));
        Api(Arc::new(Inner {
            tokens,
            store,
            sync,
            rest: rest.map(|r| r.with_retry(policy)),
            from: config
                .pagerduty
                .from
                .as_ref()
                .map(|e| e.as_str().to_owned()),
        }))
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    pub(crate) fn sync_store(&self) -> &dyn SyncStore {
        self.0.sync.as_ref()
    }

    /// The REST client for reads.
    pub(crate) fn rest(&self) -> Result<&RestClient, ApiError> {
        self.0.rest.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::NotConfigured,
                "this route reads PagerDuty's REST API, and the daemon has no API token: set \
                 pagerduty.api_token in the configuration",
            )
        })
    }

    /// The REST client for a write, acting as the body's `from`, else the `From` header, else
    /// `pagerduty.from`; with none, PagerDuty decides (a user token acts as its user).
    pub(crate) fn writer(
        &self,
        from: Option<String>,
        headers: &HeaderMap,
    ) -> Result<RestClient, ApiError> {
        let rest = self.rest()?;
        let given = match from {
            Some(f) => Some(("from", f)),
            None => match headers.get("from").map(|v| v.to_str()) {
                Some(Ok(f)) => Some(("From header", f.to_owned())),
                Some(Err(_)) => {
                    return Err(ApiError::field("from", "From header: not an email address"));
                }
                None => self.0.from.clone().map(|f| ("pagerduty.from", f)),
            },
        };
        let Some((origin, email)) = given else {
            return Ok(rest.clone());
        };
        let email = email.trim();
        let plausible = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace)
        });
        if !plausible {
            return Err(ApiError::field(
                "from",
                format!(
                    "{origin}: {email:?} is not an email address (the PagerDuty user the change \
                     is made as)"
                ),
            ));
        }
        Ok(rest.clone().with_from(email))
    }

    /// The token the request carries, checked against every configured token.
    fn caller(&self, headers: &HeaderMap) -> Result<&Token, ApiError> {
        let unauthorized = |m: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorKind::Unauthorized,
                m.to_owned(),
            )
        };
        let given = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized("missing Authorization: Bearer <token> (a token of [[api.tokens]])")
            })?;
        self.token(given)
            .ok_or_else(|| unauthorized("the bearer token is not one of [[api.tokens]]"))
    }

    /// The configured token `given` is, compared with every one in constant time.
    fn token(&self, given: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        // Every token is compared, so the time taken does not say which one came close.
        let mut found = None;
        for t in &self.0.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found
    }

    /// Whether `[[api.tokens]]` lists any token (without one, the API is off).
    pub(crate) fn has_tokens(&self) -> bool {
        !self.0.tokens.is_empty()
    }

    /// The name and scope of the configured token `given`, checked as the API checks a bearer
    /// token; for callers outside the API that take a token another way (the status page's
    /// replay form).
    pub(crate) fn check_token(&self, given: &str) -> Option<(&str, ApiScope)> {
        self.token(given).map(|t| (t.name.as_str(), t.scope))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, even with the API off.
    Public,
    Scope(ApiScope),
}

/// One route: what the router serves and what the OpenAPI document says about it.
pub(crate) struct Endpoint {
    pub method: Method,
    /// Under [`PREFIX`], with `{name}` path parameters (axum's syntax and OpenAPI's).
    pub path: &'static str,
    pub access: Access,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: &'static [Param],
    /// The request body's schema (a name under `components.schemas`).
    pub body: Option<&'static str>,
    /// Success answers: status, schema, description.
    pub responses: Vec<(u16, &'static str, &'static str)>,
    /// Goes to PagerDuty (so 502 and 503 are documented).
    pub pagerduty: bool,
    handler: MethodRouter<Api>,
}

impl Endpoint {
    fn new(method: Method, path: &'static str, handler: MethodRouter<Api>) -> Endpoint {
        let access = if method == Method::GET {
            Access::Scope(ApiScope::Read)
        } else {
            Access::Scope(ApiScope::Admin)
        };
        Endpoint {
            method,
            path,
            access,
            tag: "",
            summary: "",
            description: "",
            params: &[],
            body: None,
            responses: Vec::new(),
            pagerduty: false,
            handler,
        }
    }

    fn get<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Endpoint {
        Endpoint::new(Method::GET, path, get(handler))
    }

    fn post<H: Handler<T, Api>, T: 'static>(path: &'static str, handler: H) -> Endpoint {
        Endpoint::new(Method::POST, path, post(handler))
    }

    fn public(mut self) -> Endpoint {
        self.access = Access::Public;
        self
    }

    fn doc(mut self, tag: &'static str, summary: &'static str, description: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self.description = description;
        self
    }

    fn params(mut self, params: &'static [Param]) -> Endpoint {
        self.params = params;
        self
    }

    fn body(mut self, schema: &'static str) -> Endpoint {
        self.body = Some(schema);
        self
    }

    fn answers(mut self, status: u16, schema: &'static str, description: &'static str) -> Self {
        self.responses.push((status, schema, description));
        self
    }

    fn pagerduty(mut self) -> Endpoint {
        self.pagerduty = true;
        self
    }
}

/// Every route of the API.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    let mut all = vec![
        Endpoint::get("/openapi.json", openapi::serve)
            .public()
            .doc("meta", "This document", "The OpenAPI 3.1 description of this API. Needs no token, and is served even with the API off.")
            .answers(200, "OpenApiDocument", "The document."),
    ];
    all.extend(incidents::endpoints());
    all.extend(services::endpoints());
    all.extend(queue::endpoints());
    all.extend(incident_map::endpoints());
    all
}

/// The API's routes, to merge into the daemon's router.
pub fn routes(api: Api) -> Router {
    let mut inner = Router::new();
    for e in endpoints() {
        let handler = e.handler.layer(middleware::from_fn_with_state(
            (api.clone(), e.access),
            authorize,
        ));
        inner = inner.route(e.path, handler);
    }
    let inner = inner
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api);
    Router::new().nest(PREFIX, inner)
}

/// Checks the caller's token against the route's scope; logs writes with the token's name.
async fn authorize(
    State((api, access)): State<(Api, Access)>,
    req: Request,
    next: Next,
) -> Response {
    let Access::Scope(needed) = access else {
        return next.run(req).await;
    };
    if api.0.tokens.is_empty() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::ApiOff,
            "the API is off: no [[api.tokens]] in the configuration",
        )
        .into_response();
    }
    let caller = match api.caller(req.headers()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if caller.scope < needed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::Forbidden,
            format!(
                "{} {} needs a token of scope {}; the token {:?} has scope {}",
                req.method(),
                original_path(&req),
                needed.as_str(),
                caller.name,
                caller.scope.as_str()
            ),
        )
        .into_response();
    }
    let write = req.method() != Method::GET;
    let (method, path, token) = (
        req.method().clone(),
        original_path(&req),
        caller.name.clone(),
    );
    let resp = next.run(req).await;
    if write {
        tracing::info!(%method, %path, %token, status = resp.status().as_u16(), "API write");
    }
    resp
}

/// The path as the caller sent it (inside the nested router, the URI lacks the prefix).
fn original_path(req: &Request) -> String {
    req.extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned())
}

async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NoRoute,
        format!(
            "no route {}; the routes are listed in {PREFIX}/openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    let path = uri.path();
    // The router prefers a literal segment to a parameter (`/incidents/resolve` over
    // `/incidents/{id}`): so do the methods listed.
    let all = endpoints();
    let fitting: Vec<&Endpoint> = all
        .iter()
        .filter(|e| openapi::matches(&format!("{PREFIX}{}", e.path), path))
        .collect();
    let params = |e: &Endpoint| e.path.matches('{').count();
    let fewest = fitting.iter().map(|e| params(e)).min().unwrap_or(0);
    let allowed: Vec<String> = fitting
        .iter()
        .filter(|e| params(e) == fewest)
        .map(|e| e.method.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::MethodNotAllowed,
        format!(
            "{method} is not allowed on {path}; send {}",
            if allowed.is_empty() {
                "another method".to_owned()
            } else {
                allowed.join(" or ")
            }
        ),
    )
}
