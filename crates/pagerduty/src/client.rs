//! HTTP clients for the Events APIs and the REST API.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::error::{Api, Error, ErrorBody, RateLimit, requested_delay};
use crate::events::{ChangeEvent, Event, EventResponse, V1Event, V1Response};
use crate::rest::{
    Alert, Incident, IncidentQuery, IncidentSort, IncidentUpdate, LogEntry, LogEntryQuery,
    MaintenanceWindow, NewIncident, Note, Page, Reference, Service, User, WebhookSubscription,
    WindowFilter,
};
use crate::retry::{RetryPolicy, Wait};

pub const EVENTS_URL: &str = "https://events.pagerduty.com";
pub const REST_URL: &str = "https://api.pagerduty.com";
pub const EU_EVENTS_URL: &str = "https://events.eu.pagerduty.com";
pub const EU_REST_URL: &str = "https://api.eu.pagerduty.com";

/// The REST API refuses `offset + limit` above this; lists longer than that are walked by time.
pub const MAX_OFFSET: u64 = 10_000;
/// Largest page PagerDuty serves.
pub const MAX_LIMIT: u64 = 100;
/// Largest bulk `PUT /incidents` PagerDuty accepts (413 above).
pub const MAX_BULK: usize = 250;

const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

pub fn user_agent() -> String {
    format!("pagerbridge/{}", env!("CARGO_PKG_VERSION"))
}

/// Which proxy to use. PagerDuty is reached over the internet; most corporate monitoring hosts
/// must go through a proxy to get there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyConfig {
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY` from the environment.
    #[default]
    Environment,
    /// Connect directly, whatever the environment says.
    Direct,
    /// This proxy for every request, except hosts matched by `no_proxy` (NO_PROXY syntax).
    Explicit {
        url: String,
        no_proxy: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base of the Events APIs (`/v2/enqueue` is appended).
    pub events_url: Url,
    /// Base of the REST API (`/incidents` is appended).
    pub rest_url: Url,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub proxy: ProxyConfig,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            events_url: Url::parse(EVENTS_URL).expect("constant URL"),
            rest_url: Url::parse(REST_URL).expect("constant URL"),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            proxy: ProxyConfig::Environment,
            user_agent: user_agent(),
        }
    }
}

impl ClientConfig {
    /// PagerDuty's EU service region.
    pub fn eu() -> Self {
        ClientConfig {
            events_url: Url::parse(EU_EVENTS_URL).expect("constant URL"),
            rest_url: Url::parse(EU_REST_URL).expect("constant URL"),
            ..Default::default()
        }
    }

    /// Both APIs at one base URL, as the emulator serves them.
    pub fn single_host(base: &str) -> Result<Self, Error> {
        let url = Url::parse(base).map_err(|e| Error::Config(format!("base URL {base:?}: {e}")))?;
        Ok(ClientConfig {
            events_url: url.clone(),
            rest_url: url,
            ..Default::default()
        })
    }

    fn http(&self) -> Result<reqwest::Client, Error> {
        let mut b = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            // Credentials must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none());
        b = match &self.proxy {
            ProxyConfig::Environment => b,
            ProxyConfig::Direct => b.no_proxy(),
            ProxyConfig::Explicit { url, no_proxy } => {
                let mut p = reqwest::Proxy::all(url)
                    .map_err(|e| Error::Config(format!("proxy URL {url:?}: {e}")))?;
                if let Some(np) = no_proxy {
                    p = p.no_proxy(reqwest::NoProxy::from_string(np));
                }
                b.proxy(p)
            }
        };
        b.build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))
    }
}

fn join(base: &Url, path: &str) -> String {
    format!("{}{}", base.as_str().trim_end_matches('/'), path)
}

/// A 2xx answer to an event, with the rate-limit state PagerDuty reported alongside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<T> {
    pub status: u16,
    pub body: T,
    pub rate_limit: RateLimit,
}

/// Sends events. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct EventsClient {
    http: reqwest::Client,
    base: Url,
}

impl EventsClient {
    pub fn new(config: &ClientConfig) -> Result<Self, Error> {
        Ok(EventsClient {
            http: config.http()?,
            base: config.events_url.clone(),
        })
    }

    pub async fn send(&self, event: &Event) -> Result<Accepted<EventResponse>, Error> {
        self.send_raw(Api::EventsV2, Bytes::from(to_json(event)?))
            .await
    }

    pub async fn send_change(&self, event: &ChangeEvent) -> Result<Accepted<EventResponse>, Error> {
        self.send_raw(Api::ChangeEvents, Bytes::from(to_json(event)?))
            .await
    }

    pub async fn send_v1(&self, event: &V1Event) -> Result<Accepted<V1Response>, Error> {
        self.post(Api::EventsV1, Bytes::from(to_json(event)?)).await
    }

    /// Sends an already-serialised v2 or change event exactly as stored, so what was accepted
    /// into the outbox is byte for byte what PagerDuty receives.
    pub async fn send_raw(&self, api: Api, body: Bytes) -> Result<Accepted<EventResponse>, Error> {
        let accepted: Accepted<EventResponse> = self.post(api, body).await?;
        // PagerDuty's own clients refuse a v2 success without a dedup key; so do we, because the
        // key is how later acknowledge/resolve events find the alert.
        if api == Api::EventsV2 && accepted.body.dedup_key.is_none() {
            return Err(Error::Decode {
                status: accepted.status,
                detail: "no dedup_key in the response".into(),
                body: serde_json::to_string(&accepted.body).unwrap_or_default(),
            });
        }
        Ok(accepted)
    }

    async fn post<T: DeserializeOwned>(&self, api: Api, body: Bytes) -> Result<Accepted<T>, Error> {
        let path = match api {
            Api::EventsV2 => "/v2/enqueue",
            Api::ChangeEvents => "/v2/change/enqueue",
            Api::EventsV1 => "/generic/2010-04-15/create_event.json",
            Api::Rest => return Err(Error::InvalidRequest("not an events API".into())),
        };
        let url = join(&self.base, path);
        tracing::debug!(%url, bytes = body.len(), "sending event");
        let resp = self
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::from_reqwest(&url, e))?;
        let (status, headers, bytes) = read(&url, resp).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(api, status, &headers, &bytes));
        }
        let body = decode(status, &bytes)?;
        Ok(Accepted {
            status,
            body,
            rate_limit: RateLimit::from_headers(&headers),
        })
    }
}

async fn read(url: &str, resp: reqwest::Response) -> Result<(u16, HeaderMap, Bytes), Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Error::from_reqwest(url, e))?;
    Ok((status, headers, bytes))
}

fn api_error(api: Api, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    Error::Api {
        api,
        status,
        body: Box::new(ErrorBody::parse(body)),
        retry_after: requested_delay(headers),
        rate_limit: RateLimit::from_headers(headers),
    }
}

fn decode<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        status,
        detail: e.to_string(),
        body: String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).into_owned(),
    })
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::InvalidRequest(e.to_string()))
}

/// A REST API client bound to one API token and, optionally, one `From` user.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: Url,
    token: String,
    from: Option<String>,
    retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never print it.
        f.debug_struct("RestClient")
            .field("base", &self.base.as_str())
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    pub fn new(config: &ClientConfig, token: impl Into<String>) -> Result<Self, Error> {
        Ok(RestClient {
            http: config.http()?,
            base: config.rest_url.clone(),
            token: token.into(),
            from: None,
            retry: None,
        })
    }

    /// Waits out 429s (and 5xx on calls safe to repeat) as `policy` says, instead of failing at
    /// once.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The user (by email) that writes act as. Required by PagerDuty for account-level tokens.
    pub fn with_from(mut self, email: impl Into<String>) -> Self {
        self.from = Some(email.into());
        self
    }

    pub fn from_email(&self) -> Option<&str> {
        self.from.as_deref()
    }

    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&B>,
    ) -> Result<(u16, Value), Error> {
        let mut attempt = 1;
        let mut waited = std::time::Duration::ZERO;
        loop {
            let result = self.call_once(method.clone(), path, query, body).await;
            let (Err(error), Some(policy)) = (&result, &self.retry) else {
                return result;
            };
            let Some((delay, reason)) = policy.next_wait(&method, error, attempt, waited) else {
                return result;
            };
            if let Some(tell) = &policy.on_wait {
                tell(&Wait {
                    delay,
                    reason,
                    attempt,
                    method: method.to_string(),
                    path: path.to_owned(),
                });
            }
            tokio::time::sleep(delay).await;
            waited += delay;
            attempt += 1;
        }
    }

    async fn call_once<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&B>,
    ) -> Result<(u16, Value), Error> {
        let url = join(&self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(http::header::ACCEPT, ACCEPT)
            .header(
                http::header::AUTHORIZATION,
                format!("Token token={}", self.token),
            );
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(from) = &self.from {
            req = req.header("From", from);
        }
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(to_json(b)?);
        }
        tracing::debug!(%method, %url, "PagerDuty REST call");
        let resp = req.send().await.map_err(|e| Error::from_reqwest(&url, e))?;
        let (status, headers, bytes) = read(&url, resp).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(Api::Rest, status, &headers, &bytes));
        }
        if bytes.is_empty() {
            return Ok((status, Value::Null));
        }
        Ok((status, decode(status, &bytes)?))
    }

    async fn get_one<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T, Error> {
        let (status, v) = self.call::<()>(Method::GET, path, &[], None).await?;
        take(status, v, key)
    }

    async fn write_one<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        key: &str,
    ) -> Result<T, Error> {
        let (status, v) = self.call(method, path, &[], Some(body)).await?;
        take(status, v, key)
    }

    /// One page of a list endpoint whose items are under `key`.
    pub async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: &[(String, String)],
        offset: u64,
        limit: u64,
    ) -> Result<Page<T>, Error> {
        let mut q = query.to_vec();
        q.push(("offset".into(), offset.to_string()));
        q.push(("limit".into(), limit.to_string()));
        let (status, mut v) = self.call::<()>(Method::GET, path, &q, None).await?;
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
        let items = match v.get_mut(key).map(Value::take) {
            Some(raw @ Value::Array(_)) => {
                serde_json::from_value(raw).map_err(|e| Error::Decode {
                    status,
                    detail: format!("{key}: {e}"),
                    body: String::new(),
                })?
            }
            _ => {
                return Err(Error::Decode {
                    status,
                    detail: format!("no {key:?} array in the list response"),
                    body: String::new(),
                });
            }
        };
        Ok(Page {
            items,
            limit: num(&v, "limit").unwrap_or(limit),
            offset: num(&v, "offset").unwrap_or(offset),
            more: v.get("more").and_then(Value::as_bool).unwrap_or(false),
            total: num(&v, "total"),
        })
    }

    /// Every item of a list endpoint, page by page (offset/limit/more), up to PagerDuty's
    /// 10,000-offset ceiling. Use [`RestClient::incidents`] for incidents, which goes past it.
    pub fn list_all<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static + use<T> {
        let client = self.clone();
        let path = path.to_owned();
        let key = key.to_owned();
        futures::stream::try_unfold(
            (0u64, true, std::collections::VecDeque::new()),
            move |(mut offset, mut more, mut buf)| {
                let (client, path, key, query) =
                    (client.clone(), path.clone(), key.clone(), query.clone());
                async move {
                    if buf.is_empty() && more && offset + MAX_LIMIT <= MAX_OFFSET {
                        let page: Page<T> =
                            client.page(&path, &key, &query, offset, MAX_LIMIT).await?;
                        let n = page.items.len() as u64;
                        buf.extend(page.items);
                        offset += n;
                        more = page.more && n > 0;
                    }
                    Ok(buf.pop_front().map(|item| (item, (offset, more, buf))))
                }
            },
        )
    }

    // ---- incidents ----

    pub async fn list_incidents(
        &self,
        query: &IncidentQuery,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Incident>, Error> {
        self.page("/incidents", "incidents", &query.to_pairs(), offset, limit)
            .await
    }

    /// Every incident matching `query`, oldest first.
    ///
    /// PagerDuty refuses offsets past 10,000, so when a walk reaches that ceiling it starts a new
    /// walk at the creation time of the last incident seen (`since`), skipping the incidents of
    /// that instant it already returned. The query's own sort is replaced by `created_at:asc`
    /// because that walk needs it.
    pub fn incidents(
        &self,
        query: IncidentQuery,
    ) -> impl Stream<Item = Result<Incident, Error>> + Send + 'static + use<> {
        struct Walk {
            query: IncidentQuery,
            offset: u64,
            more: bool,
            buf: std::collections::VecDeque<Incident>,
            // Ids already returned that share the newest `created_at` seen.
            edge: (Option<jiff::Timestamp>, std::collections::HashSet<String>),
        }
        let mut query = query;
        query.sort_by = Some((IncidentSort::CreatedAt, false));
        let client = self.clone();
        let start = Walk {
            query,
            offset: 0,
            more: true,
            buf: Default::default(),
            edge: (None, Default::default()),
        };
        futures::stream::try_unfold(start, move |mut w| {
            let client = client.clone();
            async move {
                loop {
                    if let Some(inc) = w.buf.pop_front() {
                        if inc.created_at.is_some() && inc.created_at == w.edge.0 {
                            if !w.edge.1.insert(inc.id.clone()) {
                                continue;
                            }
                        } else {
                            w.edge = (inc.created_at, [inc.id.clone()].into());
                        }
                        return Ok(Some((inc, w)));
                    }
                    if !w.more {
                        return Ok(None);
                    }
                    if w.offset + MAX_LIMIT > MAX_OFFSET {
                        // Restart the walk from the last creation time seen.
                        let Some(since) = w.edge.0 else {
                            return Ok(None);
                        };
                        if w.query.since == Some(since) {
                            // More than 10,000 incidents created in the same second: nothing
                            // PagerDuty's API can page through.
                            return Err(Error::InvalidRequest(format!(
                                "more than {MAX_OFFSET} incidents share created_at {since}; narrow the query"
                            )));
                        }
                        w.query.since = Some(since);
                        w.query.all_dates = false;
                        if w.query.until.is_none() {
                            w.query.until =
                                Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60));
                        }
                        w.offset = 0;
                    }
                    let page = client.list_incidents(&w.query, w.offset, MAX_LIMIT).await?;
                    w.offset += page.items.len() as u64;
                    w.more = page.more && !page.items.is_empty();
                    w.buf.extend(page.items);
                    if w.buf.is_empty() {
                        return Ok(None);
                    }
                }
            }
        })
    }

    pub async fn get_incident(&self, id: &str) -> Result<Incident, Error> {
        self.get_one(&format!("/incidents/{}", seg(id)), "incident")
            .await
    }

    pub async fn update_incident(
        &self,
        id: &str,
        update: &IncidentUpdate,
    ) -> Result<Incident, Error> {
        let mut u = update.clone();
        u.id = None;
        self.write_one(
            Method::PUT,
            &format!("/incidents/{}", seg(id)),
            &serde_json::json!({ "incident": u }),
            "incident",
        )
        .await
    }

    /// Merges `source_ids` into `target_id` (`PUT /incidents/{id}/merge`, acting as the `From`
    /// user): the sources' alerts move to the target and the sources are resolved with a
    /// `merge_resolve_reason`. Returns the target incident. PagerDuty's published contract
    /// answers with a reference to the target only, so unless the answer is a whole incident
    /// the target is read back.
    pub async fn merge_incidents(
        &self,
        target_id: &str,
        source_ids: &[String],
    ) -> Result<Incident, Error> {
        if source_ids.is_empty() {
            return Err(Error::InvalidRequest(
                "a merge needs at least one source incident".into(),
            ));
        }
        let sources: Vec<Reference> = source_ids
            .iter()
            .map(|id| Reference::to("incident_reference", id.clone()))
            .collect();
        let (status, mut v) = self
            .call(
                Method::PUT,
                &format!("/incidents/{}/merge", seg(target_id)),
                &[],
                Some(&serde_json::json!({ "source_incidents": sources })),
            )
            .await?;
        let answer = v.get_mut("incident").map(Value::take);
        if let Some(inc) = answer.filter(|i| i.get("status").is_some()) {
            return take(status, serde_json::json!({ "incident": inc }), "incident");
        }
        self.get_incident(target_id).await
    }

    /// Bulk status change (`PUT /incidents`), all-or-nothing on PagerDuty's side. At most 250
    /// per call; callers with more split them (see [`MAX_BULK`]).
    pub async fn update_incidents(
        &self,
        updates: &[IncidentUpdate],
    ) -> Result<Vec<Incident>, Error> {
        if updates.len() > MAX_BULK {
            return Err(Error::InvalidRequest(format!(
                "{} incidents in one bulk update; PagerDuty accepts at most {MAX_BULK}",
                updates.len()
            )));
        }
        if let Some(i) = updates.iter().position(|u| u.id.is_none()) {
            return Err(Error::InvalidRequest(format!(
                "incidents[{i}].id is missing"
            )));
        }
        self.write_one(
            Method::PUT,
            "/incidents",
            &serde_json::json!({ "incidents": updates }),
            "incidents",
        )
        .await
    }

    pub async fn create_incident(&self, incident: &NewIncident) -> Result<Incident, Error> {
        self.write_one(
            Method::POST,
            "/incidents",
            &serde_json::json!({ "incident": incident }),
            "incident",
        )
        .await
    }

    /// `POST /incidents` with a body already shaped as `{"incident": {...}}` (one a caller wrote
    /// and validated against the REST schema), sent as is so that no field is lost.
    pub async fn create_incident_json(&self, body: &Value) -> Result<Incident, Error> {
        self.write_one(Method::POST, "/incidents", body, "incident")
            .await
    }

    pub async fn list_notes(&self, incident_id: &str) -> Result<Vec<Note>, Error> {
        self.get_one(&format!("/incidents/{}/notes", seg(incident_id)), "notes")
            .await
    }

    pub async fn create_note(&self, incident_id: &str, content: &str) -> Result<Note, Error> {
        self.write_one(
            Method::POST,
            &format!("/incidents/{}/notes", seg(incident_id)),
            &serde_json::json!({ "note": { "content": content } }),
            "note",
        )
        .await
    }

    pub fn incident_log_entries(
        &self,
        incident_id: &str,
        query: &LogEntryQuery,
    ) -> impl Stream<Item = Result<LogEntry, Error>> + Send + 'static + use<> {
        self.list_all(
            &format!("/incidents/{}/log_entries", seg(incident_id)),
            "log_entries",
            query.to_pairs(),
        )
    }

    pub fn incident_alerts(
        &self,
        incident_id: &str,
    ) -> impl Stream<Item = Result<Alert, Error>> + Send + 'static + use<> {
        self.list_all(
            &format!("/incidents/{}/alerts", seg(incident_id)),
            "alerts",
            Vec::new(),
        )
    }

    // ---- log entries ----

    pub async fn list_log_entries(
        &self,
        query: &LogEntryQuery,
        offset: u64,
        limit: u64,
    ) -> Result<Page<LogEntry>, Error> {
        self.page(
            "/log_entries",
            "log_entries",
            &query.to_pairs(),
            offset,
            limit,
        )
        .await
    }

    pub fn log_entries(
        &self,
        query: &LogEntryQuery,
    ) -> impl Stream<Item = Result<LogEntry, Error>> + Send + 'static + use<> {
        self.list_all("/log_entries", "log_entries", query.to_pairs())
    }

    // ---- services ----

    pub fn services(
        &self,
        query: Option<&str>,
    ) -> impl Stream<Item = Result<Service, Error>> + Send + 'static + use<> {
        let q = query
            .map(|q| vec![("query".to_string(), q.to_string())])
            .unwrap_or_default();
        self.list_all("/services", "services", q)
    }

    pub async fn get_service(&self, id: &str) -> Result<Service, Error> {
        self.get_one(&format!("/services/{}", seg(id)), "service")
            .await
    }

    /// Every service with its integrations as full objects (`include[]=integrations`), so
    /// that each integration's `integration_key` (a routing key) names its service.
    pub fn services_with_integrations(
        &self,
    ) -> impl Stream<Item = Result<Service, Error>> + Send + 'static + use<> {
        self.list_all(
            "/services",
            "services",
            vec![("include[]".to_string(), "integrations".to_string())],
        )
    }

    /// `PUT /services/{id}` with the fields of `service` given (`{"status": "disabled"}`,
    /// `{"name": ...}`).
    pub async fn update_service(&self, id: &str, service: &Value) -> Result<Service, Error> {
        let mut body = service.clone();
        if let Some(o) = body.as_object_mut() {
            o.entry("type").or_insert_with(|| Value::from("service"));
        }
        self.write_one(
            Method::PUT,
            &format!("/services/{}", seg(id)),
            &serde_json::json!({ "service": body }),
            "service",
        )
        .await
    }

    // ---- maintenance windows ----

    pub fn maintenance_windows(
        &self,
        service_ids: &[String],
        filter: WindowFilter,
    ) -> impl Stream<Item = Result<MaintenanceWindow, Error>> + Send + 'static + use<> {
        let mut q: Vec<(String, String)> = service_ids
            .iter()
            .map(|id| ("service_ids[]".to_string(), id.clone()))
            .collect();
        q.push(("filter".into(), filter.as_str().into()));
        self.list_all("/maintenance_windows", "maintenance_windows", q)
    }

    pub async fn create_maintenance_window(
        &self,
        window: &MaintenanceWindow,
    ) -> Result<MaintenanceWindow, Error> {
        self.write_one(
            Method::POST,
            "/maintenance_windows",
            &serde_json::json!({ "maintenance_window": window }),
            "maintenance_window",
        )
        .await
    }

    // ---- users and webhook subscriptions ----

    pub fn users(&self) -> impl Stream<Item = Result<User, Error>> + Send + 'static + use<> {
        self.list_all("/users", "users", Vec::new())
    }

    pub async fn create_webhook_subscription(
        &self,
        sub: &WebhookSubscription,
    ) -> Result<WebhookSubscription, Error> {
        self.write_one(
            Method::POST,
            "/webhook_subscriptions",
            &serde_json::json!({ "webhook_subscription": sub }),
            "webhook_subscription",
        )
        .await
    }

    pub fn webhook_subscriptions(
        &self,
    ) -> impl Stream<Item = Result<WebhookSubscription, Error>> + Send + 'static + use<> {
        self.list_all(
            "/webhook_subscriptions",
            "webhook_subscriptions",
            Vec::new(),
        )
    }

    /// A reference to the acting user, for building request bodies.
    pub fn reference(kind: &str, id: &str) -> Reference {
        Reference::to(kind, id)
    }
}

/// Ids go into paths; an id with a slash or `?` must not change which endpoint is called.
fn seg(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn take<T: DeserializeOwned>(status: u16, mut v: Value, key: &str) -> Result<T, Error> {
    let inner = if v.is_object() { v[key].take() } else { v };
    serde_json::from_value(inner).map_err(|e| Error::Decode {
        status,
        detail: format!("{key}: {e}"),
        body: String::new(),
    })
}
