//! `pagerbridge serve`: the pieces wired together, started and stopped in the right order.
//!
//! Start: lock the data directory, open the outbox, then deliver and listen. Stop: stop
//! listening (requests in flight finish, so every answered event is stored), let the lanes in
//! flight finish and record them, then close the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use jiff::Timestamp;
use pagerbridge_config::Config;
use pagerbridge_store::group_commit::GroupCommit;
use pagerbridge_store::sqlite::{DataDirLock, SqliteStore};
use pagerbridge_store::{Store, StoreError, SyncStore};
use pagerbridge_sync::maintenance::MaintenanceWatch;
use pagerbridge_sync::plan::MonitorRoute;
use pagerbridge_sync::poller::Poller;
use pagerbridge_sync::reconciler::Reconciler;
use pagerbridge_sync::worker::{Backoff, MonitorTarget, Sync};
use pagerduty::EventsClient;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::auth::RouteAuth;
use crate::dispatch::{self, Dispatcher};
use crate::health::{self, Readiness};
use crate::metrics::{self, Metrics};
use crate::relay::{self, Ingest};
use crate::sources::{self, Source};
use crate::status_page::{self, StatusPage};
use crate::webhooks::{self, Webhooks};

/// Events of one commit at most: enough to amortise an `fsync` over many requests, few enough
/// that one commit never holds the database for long.
const MAX_COMMIT_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("PagerDuty client: {0}")]
    Client(#[from] pagerduty::Error),
    #[error("the HTTP server stopped: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Source(String),
    #[error("{0}")]
    Monitor(String),
}

/// The dispatcher settings an `[outbox]` section describes.
pub fn dispatch_settings(config: &Config) -> dispatch::Settings {
    let o = &config.outbox;
    dispatch::Settings {
        max_in_flight: o.max_in_flight,
        coalesce: o.coalesce,
        events_per_minute: o.rate_limit.events_per_minute,
        burst: o.rate_limit.burst,
        initial_delay: o.retry.initial_delay.get(),
        max_delay: o.retry.max_delay.get(),
        circuit_failures: o.circuit.failures,
        circuit_cooldown: o.circuit.cooldown.get(),
        circuit_max_cooldown: o.circuit.max_cooldown.get(),
        ..dispatch::Settings::default()
    }
}

/// A running daemon.
pub struct Running {
    addr: SocketAddr,
    dispatcher: Dispatcher,
    store: Arc<SqliteStore>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
    _lock: DataDirLock,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Stops gracefully (see the module comment).
    pub async fn stop(self) -> Result<(), DaemonError> {
        let Running {
            dispatcher,
            mut store,
            stop,
            tasks,
            server,
            _lock: lock,
            ..
        } = self;
        let _ = stop.send(true);
        let served = server.await;
        for t in tasks {
            let _ = t.await;
        }
        // The store is closed only once nothing else holds it: our dispatcher handle, and the
        // group-commit writer and the last lane tasks, which end on their own just after.
        drop(dispatcher);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match Arc::try_unwrap(store) {
                Ok(s) => {
                    s.close().await;
                    break;
                }
                Err(s) if tokio::time::Instant::now() < deadline => {
                    store = s;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => {
                    tracing::warn!("the store is still in use; leaving it without a checkpoint");
                    break;
                }
            }
        }
        drop(lock);
        match served {
            Ok(Err(e)) => Err(DaemonError::Server(e)),
            _ => Ok(()),
        }
    }
}

/// Starts the daemon. `listener` replaces `server.listen` (tests bind port 0 themselves).
pub async fn start(config: &Config, listener: Option<TcpListener>) -> Result<Running, DaemonError> {
    let lock = DataDirLock::acquire(&config.data_dir())?;
    let store = Arc::new(SqliteStore::open(&config.store_path()).await?);
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.server.listen,
                source,
            })?,
    };
    let addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.server.listen,
            source,
        })?;
    let client = EventsClient::new(&config.pagerduty.client_config())?;
    let owner = format!("pagerbridge-{}", std::process::id());
    let metrics = Arc::new(Metrics::new());
    let dispatcher = Dispatcher::new(
        store.clone(),
        client,
        dispatch_settings(config),
        owner,
        metrics.clone(),
    );
    let commit = GroupCommit::start(store.clone(), MAX_COMMIT_BATCH);
    let ingest = Arc::new(Ingest::new(commit, dispatcher.clone(), metrics.clone()));
    let (stop, stopped) = watch::channel(false);

    let mut tasks = vec![tokio::spawn(dispatcher.clone().run(stopped.clone()))];
    tasks.push(tokio::spawn(purge_loop(
        store.clone(),
        config.outbox.retention.get(),
        stopped.clone(),
    )));
    // Its own client: the self-alert must not queue behind what it reports.
    if let Some(settings) = crate::self_alert::Settings::from_config(config) {
        let client = EventsClient::new(&config.pagerduty.client_config())?;
        let outbox: Arc<dyn Store> = store.clone();
        tasks.push(tokio::spawn(crate::self_alert::run(
            settings,
            outbox,
            client,
            stopped.clone(),
        )));
    }

    // One REST client (one connection pool) for every part of the way back that reads
    // PagerDuty's REST API; none without an API token.
    let rest = config
        .pagerduty
        .api_token
        .as_ref()
        .map(|t| pagerduty::RestClient::new(&config.pagerduty.client_config(), t.expose()))
        .transpose()?;
    let sync_store: Arc<dyn SyncStore> = store.clone();
    let sync = Arc::new(
        configured_sync(config, sync_store.clone(), rest.clone())?.with_metrics(metrics.sync()),
    );
    tasks.push(tokio::spawn(sync.clone().run(stopped.clone())));
    match (&rest, config.sync.reconciler.enabled) {
        (Some(rest), true) => {
            let every = config.sync.reconciler.interval.get();
            // A recovery younger than one pass (at most two minutes) may still be on its way.
            let reconciler = Reconciler::new(rest.clone())
                .with_settle(every.min(Duration::from_secs(120)))
                .with_metrics(metrics.sync());
            let outbox: Arc<dyn Store> = store.clone();
            tasks.push(tokio::spawn(reconcile_loop(
                reconciler,
                outbox,
                sync_store.clone(),
                sync.clone(),
                every,
                stopped.clone(),
            )));
        }
        (None, true) if !config.monitors.is_empty() => tracing::info!(
            "the reconciler is off: it reads PagerDuty's REST API, and pagerduty.api_token is not set"
        ),
        _ => {}
    }
    match (&rest, config.sync.maintenance.enabled) {
        (Some(rest), true) if !config.monitors.is_empty() => {
            let refresh = config.sync.maintenance.refresh.get();
            let watch = MaintenanceWatch::new(rest.clone()).with_refresh(refresh);
            tasks.push(tokio::spawn(maintenance_loop(
                watch,
                sync_store.clone(),
                sync.clone(),
                refresh.min(Duration::from_secs(30)),
                stopped.clone(),
            )));
        }
        (None, true) if !config.monitors.is_empty() => tracing::info!(
            "maintenance windows are not watched: that reads PagerDuty's REST API, and \
             pagerduty.api_token is not set"
        ),
        _ => {}
    }
    // Loading refused `sync.poller.enabled` without an API token.
    if let (true, Some(rest)) = (config.sync.poller.enabled, &rest) {
        let poller = Poller::new(rest.clone(), config.sync.poller.lookback.get())
            .with_metrics(metrics.sync());
        tasks.push(tokio::spawn(poll_loop(
            poller,
            sync_store.clone(),
            sync.clone(),
            config.sync.poller.interval.get(),
            stopped.clone(),
        )));
    }
    let api = api::Api::new(config, store.clone(), sync_store.clone(), rest.clone());
    let page = StatusPage::new(
        config,
        store.clone(),
        sync_store.clone(),
        api.clone(),
        dispatcher.clone(),
    );
    let hooks = Arc::new(Webhooks {
        store: sync_store,
        sync,
        secrets: config
            .sync
            .webhooks
            .secrets
            .iter()
            .map(|s| s.expose().to_owned())
            .collect(),
        v3_path: config.sync.webhooks.path.clone(),
        legacy_secret: config
            .sync
            .webhooks
            .legacy_secret
            .as_ref()
            .map(|s| s.expose().to_owned()),
        metrics: metrics.clone(),
    });

    let rules = config.compiled_rules();
    let app = Router::new()
        .merge(relay::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(ingest.clone())
        .merge(health::routes(Readiness::new(
            store.clone(),
            dispatcher.clone(),
            metrics.clone(),
        )))
        .merge(metrics::routes(
            metrics.clone(),
            store.clone(),
            dispatcher.clone(),
        ))
        .merge(sources::routes(configured_sources(config)?, rules, ingest))
        .merge(webhooks::routes(hooks))
        .merge(api::routes(api))
        .merge(status_page::routes(page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let mut shutdown = stopped;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, data_dir = %config.data_dir().display(), "pagerbridge is serving");
    Ok(Running {
        addr,
        dispatcher,
        store,
        stop,
        tasks,
        server,
        _lock: lock,
    })
}

async fn not_found(uri: axum::http::Uri) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"status": "refused", "error": format!("no route {}", uri.path())}),
        ),
    )
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({
            "status": "refused",
            "error": format!("{method} is not allowed on {}; send POST", uri.path()),
        })),
    )
}

/// The `[[sources]]` of the configuration, with their decoders and authentication.
pub fn configured_sources(config: &Config) -> Result<Vec<Source>, DaemonError> {
    config
        .sources
        .iter()
        .map(|s| {
            let decoder = s
                .decoder()
                .map_err(|e| DaemonError::Source(format!("source {}: {e}", s.name)))?;
            let auth = s.auth.as_ref().and_then(|a| match (&a.bearer, &a.hmac) {
                (Some(t), _) => Some(RouteAuth::Bearer(t.expose().to_owned())),
                (None, Some(h)) => Some(RouteAuth::Hmac {
                    secret: h.secret.expose().to_owned(),
                    header: h.header.clone(),
                    prefix: h.prefix.clone(),
                }),
                (None, None) => None,
            });
            Ok(Source {
                name: s.name.clone(),
                path: s.route(),
                decoder,
                auth,
            })
        })
        .collect()
}

/// The way back as configured: `[[monitors]]` with their adapters, `[sync.writeback]` retries,
/// and the REST client (with an API token) that finds an incident's problems by its alerts.
pub fn configured_sync(
    config: &Config,
    store: Arc<dyn SyncStore>,
    rest: Option<pagerduty::RestClient>,
) -> Result<Sync, DaemonError> {
    let monitors = config
        .monitors
        .iter()
        .map(|m| {
            let adapter = pagerbridge_sync::writeback::build(m.writeback_kind(), &m.settings())
                .map_err(|e| DaemonError::Monitor(format!("monitor {}: {e}", m.name)))?;
            Ok(MonitorTarget {
                route: MonitorRoute {
                    name: m.name.clone(),
                    policy: m.policy(),
                    sources: m.source_list(),
                },
                adapter,
            })
        })
        .collect::<Result<Vec<_>, DaemonError>>()?;
    let source_kinds = config
        .sources
        .iter()
        .map(|s| (s.name.clone(), s.kind.clone()))
        .collect();
    let w = &config.sync.writeback;
    let sync = Sync::new(
        store,
        monitors,
        source_kinds,
        Backoff {
            initial: w.initial_backoff.get(),
            max: w.max_backoff.get(),
            give_up_after: w.give_up_after.get(),
        },
    );
    Ok(match rest {
        Some(rest) => sync.with_rest(rest),
        None => sync,
    })
}

/// Reconciles the map with PagerDuty every `every` until stopped.
async fn reconcile_loop(
    reconciler: Reconciler,
    outbox: Arc<dyn Store>,
    store: Arc<dyn SyncStore>,
    sync: Arc<Sync>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match reconciler
            .reconcile_once(outbox.as_ref(), store.as_ref(), Timestamp::now())
            .await
        {
            Ok(report) if report.resolves_resent + report.changes_fed + report.ids_learned > 0 => {
                tracing::info!(%report, "reconciled with PagerDuty");
                sync.wake();
            }
            Ok(report) => tracing::debug!(%report, "reconciled with PagerDuty"),
            Err(e) => tracing::warn!(error = %e, "cannot reconcile with PagerDuty; trying again"),
        }
    }
}

/// Checks the services of the open problems (maintenance, disabled) every `every` until
/// stopped; the services' status itself is cached for the watch's refresh.
async fn maintenance_loop(
    watch: MaintenanceWatch,
    store: Arc<dyn SyncStore>,
    sync: Arc<Sync>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match watch.check_once(store.as_ref(), Timestamp::now()).await {
            Ok(report) if report.stored > 0 => {
                tracing::info!(%report, "checked the problems' PagerDuty services");
                sync.wake();
            }
            Ok(report) => tracing::debug!(%report, "checked the problems' PagerDuty services"),
            Err(e) => tracing::warn!(error = %e,
                "cannot check the problems' PagerDuty services; trying again"),
        }
    }
}

/// Polls PagerDuty's log entries every `every` until stopped; what is new wakes the sync task.
async fn poll_loop(
    poller: Poller,
    store: Arc<dyn SyncStore>,
    sync: Arc<Sync>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match poller.poll_once(store.as_ref(), Timestamp::now()).await {
            Ok(report) if report.stored > 0 => {
                tracing::info!(%report, "polled PagerDuty's changes");
                sync.wake();
            }
            Ok(report) => tracing::debug!(%report, "polled PagerDuty's changes"),
            Err(e) => tracing::warn!(error = %e, "cannot poll PagerDuty's changes; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Deletes delivered records once they are older than the retention, a few times per retention
/// period (at most hourly).
async fn purge_loop(store: Arc<SqliteStore>, retention: Duration, mut stop: watch::Receiver<bool>) {
    let every = (retention / 10).clamp(Duration::from_secs(10), Duration::from_secs(3600));
    loop {
        let before =
            Timestamp::now() - jiff::SignedDuration::try_from(retention).unwrap_or_default();
        match store.purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "removed delivered records past their retention"),
            Err(e) => tracing::warn!(error = %e, "cannot purge old records"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
