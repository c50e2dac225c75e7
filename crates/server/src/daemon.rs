//! `pagerbridge serve`: the pieces wired together, started and stopped in the right order.
//!
//! Start: open the store the configuration names (SQLite: lock the data directory first;
//! PostgreSQL: join the other replicas and campaign for leadership), then deliver and listen.
//! Every replica takes events and delivers them, and processes PagerDuty's changes and
//! write-backs (the store hands each to one replica); the poller, the reconciler, the
//! maintenance checks and purging run on the leader only (see [`crate::leader`]). Stop: stop
//! listening (requests in flight finish, so every answered event is stored), let the lanes in
//! flight finish and record them, stop the leader's work and give leadership up, then close the
//! store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use jiff::Timestamp;
use pagerbridge_config::{Config, StoreLocation};
use pagerbridge_store::group_commit::GroupCommit;
use pagerbridge_store::sqlite::DataDirLock;
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
use crate::backend::{Backend, Usage};
use crate::dispatch::{self, Dispatcher};
use crate::health::{self, Readiness};
use crate::leader::{self, Election, Leadership};
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
    // One send takes at most the request timeout; its outcome is recorded just after.
    let send_budget = config.pagerduty.timeout.get() + Duration::from_secs(5);
    let lease = match config.store_location() {
        // Claims are in memory, and one daemon has the store: nobody else ever waits on them.
        StoreLocation::Sqlite(_) => dispatch::Settings::default().lease,
        // How long a dead replica's lanes wait for another: short, yet room for a send.
        StoreLocation::Postgres(_) => claim_lease(config),
    };
    dispatch::Settings {
        lease,
        send_budget,
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

/// The lease of a lane claim on a shared (PostgreSQL) store: twice `pagerduty.timeout` plus
/// ten seconds, 30 s by default. A replica that dies holding lanes delays them this long.
pub fn claim_lease(config: &Config) -> Duration {
    config.pagerduty.timeout.get() * 2 + Duration::from_secs(10)
}

/// A running daemon.
pub struct Running {
    addr: SocketAddr,
    dispatcher: Dispatcher,
    backend: Backend,
    leadership: Leadership,
    election: Election,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
    /// SQLite only: one daemon per data directory.
    _lock: Option<DataDirLock>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.backend.store()
    }

    /// Which replica this is, and whether it leads.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Stops gracefully (see the module comment).
    pub async fn stop(self) -> Result<(), DaemonError> {
        let Running {
            dispatcher,
            backend,
            leadership,
            election,
            stop,
            tasks,
            server,
            _lock: lock,
            ..
        } = self;
        let _ = stop.send(true);
        let served = server.await;
        // The leader's work among them: stopped before leadership is given up, so that the
        // next leader never overlaps with it.
        for t in tasks {
            let _ = t.await;
        }
        election.resign().await;
        drop(leadership);
        // The store is closed only once nothing else holds it: our dispatcher handle, and the
        // group-commit writer and the last lane tasks, which end on their own just after.
        drop(dispatcher);
        backend.close(Duration::from_secs(5)).await;
        drop(lock);
        match served {
            Ok(Err(e)) => Err(DaemonError::Server(e)),
            _ => Ok(()),
        }
    }
}

/// Starts the daemon. `listener` replaces `server.listen` (tests bind port 0 themselves).
pub async fn start(config: &Config, listener: Option<TcpListener>) -> Result<Running, DaemonError> {
    let location = config.store_location();
    let lock = match &location {
        StoreLocation::Sqlite(_) => Some(DataDirLock::acquire(&config.data_dir())?),
        // Replicas share the database; the data directory holds nothing they would contend for.
        StoreLocation::Postgres(_) => None,
    };
    let backend = Backend::open(&location, Usage::Daemon).await?;
    let store = backend.store();
    let sync_store = backend.sync_store();
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
    let metrics = Arc::new(Metrics::new());
    let replica = leader::replica_name(config);
    let (leadership, election) = match &location {
        StoreLocation::Sqlite(_) => (
            Leadership::sole(replica, sync_store.clone(), metrics.clone()),
            Election::none(),
        ),
        StoreLocation::Postgres(pg) => leader::campaign(
            &pg.connect_url(),
            replica,
            sync_store.clone(),
            metrics.clone(),
        )
        .map_err(|e| {
            DaemonError::Store(StoreError::Invalid(format!(
                "the PostgreSQL URL {}: {e}",
                pg.url()
            )))
        })?,
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        client,
        dispatch_settings(config),
        leadership.owner(),
        metrics.clone(),
    );
    let commit = GroupCommit::start(store.clone(), MAX_COMMIT_BATCH);
    let ingest = Arc::new(Ingest::new(commit, dispatcher.clone(), metrics.clone()));
    let (stop, stopped) = watch::channel(false);

    let mut tasks = vec![tokio::spawn(dispatcher.clone().run(stopped.clone()))];
    // Every replica watches the outbox it shares, with its own client: the self-alert must not
    // queue behind what it reports. (Leader-only, a replica's open incident would never be
    // resolved once another replica leads.)
    if let Some(settings) = crate::self_alert::Settings::from_config(config) {
        let client = EventsClient::new(&config.pagerduty.client_config())?;
        tasks.push(tokio::spawn(crate::self_alert::run(
            settings,
            store.clone(),
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
    // On every replica: a shared store hands each inbox item and write-back to one of them.
    let sync = Arc::new(
        configured_sync(config, sync_store.clone(), rest.clone())?
            .with_metrics(metrics.sync())
            .with_owner(format!("{}-sync", leadership.owner())),
    );
    tasks.push(tokio::spawn(sync.clone().run(stopped.clone())));
    if rest.is_none() && !config.monitors.is_empty() {
        if config.sync.reconciler.enabled {
            tracing::info!(
                "the reconciler is off: it reads PagerDuty's REST API, and pagerduty.api_token is \
                 not set"
            );
        }
        if config.sync.maintenance.enabled {
            tracing::info!(
                "maintenance windows are not watched: that reads PagerDuty's REST API, and \
                 pagerduty.api_token is not set"
            );
        }
    }
    let work = LeaderWork {
        config: config.clone(),
        store: store.clone(),
        sync_store: sync_store.clone(),
        sync: sync.clone(),
        rest: rest.clone(),
        metrics: metrics.clone(),
    };
    tasks.push(tokio::spawn(leader::while_leading(
        leadership.clone(),
        stopped.clone(),
        move |stop| work.start(stop),
    )));

    let api = api::Api::new(config, store.clone(), sync_store.clone(), rest.clone());
    let page = StatusPage::new(
        config,
        store.clone(),
        sync_store.clone(),
        api.clone(),
        dispatcher.clone(),
    )
    .with_leadership(leadership.clone());
    let hooks = Arc::new(Webhooks {
        store: sync_store.clone(),
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
        .merge(health::routes(
            Readiness::new(sync_store, dispatcher.clone(), metrics.clone())
                .with_leadership(leadership.clone()),
        ))
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
    tracing::info!(%addr, store = %config.store_url(), replica = %leadership.replica(),
        "pagerbridge is serving");
    Ok(Running {
        addr,
        dispatcher,
        backend,
        leadership,
        election,
        stop,
        tasks,
        server,
        _lock: lock,
    })
}

/// The work done once for all replicas, by the leader: the reconciler, the maintenance checks,
/// the poller (each would do the same REST calls on every replica), and purging old records.
struct LeaderWork {
    config: Config,
    store: Arc<dyn Store>,
    sync_store: Arc<dyn SyncStore>,
    sync: Arc<Sync>,
    rest: Option<pagerduty::RestClient>,
    metrics: Arc<Metrics>,
}

impl LeaderWork {
    /// Spawns the tasks; they run until `stop` turns true.
    fn start(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let config = &self.config;
        let mut tasks = vec![tokio::spawn(purge_loop(
            self.store.clone(),
            config.outbox.retention.get(),
            stop.clone(),
        ))];
        let Some(rest) = &self.rest else {
            return tasks;
        };
        if config.sync.reconciler.enabled {
            let every = config.sync.reconciler.interval.get();
            // A recovery younger than one pass (at most two minutes) may still be on its way.
            let reconciler = Reconciler::new(rest.clone())
                .with_settle(every.min(Duration::from_secs(120)))
                .with_metrics(self.metrics.sync());
            tasks.push(tokio::spawn(reconcile_loop(
                reconciler,
                self.store.clone(),
                self.sync_store.clone(),
                self.sync.clone(),
                every,
                stop.clone(),
            )));
        }
        if config.sync.maintenance.enabled && !config.monitors.is_empty() {
            let refresh = config.sync.maintenance.refresh.get();
            let watch = MaintenanceWatch::new(rest.clone()).with_refresh(refresh);
            tasks.push(tokio::spawn(maintenance_loop(
                watch,
                self.sync_store.clone(),
                self.sync.clone(),
                refresh.min(Duration::from_secs(30)),
                stop.clone(),
            )));
        }
        // Loading refused `sync.poller.enabled` without an API token.
        if config.sync.poller.enabled {
            let poller = Poller::new(rest.clone(), config.sync.poller.lookback.get())
                .with_metrics(self.metrics.sync());
            tasks.push(tokio::spawn(poll_loop(
                poller,
                self.sync_store.clone(),
                self.sync.clone(),
                config.sync.poller.interval.get(),
                stop,
            )));
        }
        tasks
    }
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
async fn purge_loop(store: Arc<dyn Store>, retention: Duration, mut stop: watch::Receiver<bool>) {
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
