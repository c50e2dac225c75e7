//! A local, faithful PagerDuty: Events API v2, change events and v1 with PagerDuty's semantics,
//! the REST API subset pagerbridge uses, Webhooks v3 deliveries, per-key rate limits and fault
//! injection. `pagerbridge emulator` runs it; tests start it in-process with [`Emulator::start`].

mod admin;
mod events_api;
pub mod faults;
mod page;
pub mod ratelimit;
mod rest_api;
pub mod seed;
mod server;
pub mod webhooks;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use tokio::net::TcpListener;

pub use faults::{FaultKind, FaultSpec, Scope};
pub use seed::Seed;
pub use server::Exchange;
pub use world::World;

use crate::ratelimit::SlidingWindow;
use crate::webhooks::{Job, Webhooks};

/// Everything the request handlers share.
pub struct Shared {
    world: Mutex<World>,
    pub faults: faults::Faults,
    events_limit: SlidingWindow,
    rest_limit: SlidingWindow,
    pub webhooks: Webhooks,
    exchanges: Option<Mutex<Vec<Exchange>>>,
}

impl Shared {
    pub fn new(world: World, record_exchanges: bool) -> Arc<Shared> {
        let webhooks = Webhooks::new(world.settings.clone());
        Arc::new(Shared {
            world: Mutex::new(world),
            faults: Default::default(),
            events_limit: Default::default(),
            rest_limit: Default::default(),
            webhooks,
            exchanges: record_exchanges.then(Default::default),
        })
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // A handler that panicked mid-change is a bug we want to see, but the emulator should keep
        // answering other tests' requests, so a poisoned lock is taken over.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the webhook bodies the last change produced to their subscriptions' queues. Called
    /// with the world lock held so that deliveries keep the order of the changes.
    fn flush(&self, world: &mut World) {
        for outgoing in std::mem::take(&mut world.outgoing) {
            let Some(sub) = world
                .subscriptions
                .iter()
                .find(|s| s.id == outgoing.subscription)
            else {
                continue;
            };
            let job = Job {
                url: sub.url.clone(),
                v3: sub.version == seed::WebhookVersion::V3,
                outgoing,
            };
            self.webhooks.enqueue(job);
        }
    }

    pub fn reset(&self) {
        let mut w = self.world();
        w.reset();
        self.events_limit.clear();
        self.rest_limit.clear();
        self.faults.clear();
        self.webhooks.clear_log();
        if let Some(x) = &self.exchanges {
            x.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub seed: Seed,
    /// The base URL put into `self`/`html_url` links; the listening address when `None`.
    pub public_url: Option<String>,
    /// Keep every API response, for checking them against PagerDuty's OpenAPI files in tests.
    pub record_exchanges: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Seed::demo(),
            public_url: None,
            record_exchanges: false,
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
}

impl Emulator {
    pub async fn start(config: Config) -> Result<Emulator, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let world = World::new(config.seed, base)?;
        let shared = Shared::new(world, config.record_exchanges);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(listener, router(shared.clone()), stopped));
        Ok(Emulator {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Starts on a free loopback port with the given seed, recording exchanges (for tests).
    pub async fn for_tests(seed: Seed) -> Emulator {
        Emulator::start(Config {
            seed,
            record_exchanges: true,
            ..Config::default()
        })
        .await
        .expect("emulator starts on a loopback port")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base of both the Events and the REST API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world()
    }

    pub fn inject(&self, fault: FaultSpec) -> Result<u64, String> {
        self.shared.faults.add(fault)
    }

    /// Every API request/response pair so far (only with `record_exchanges`).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared
            .exchanges
            .as_ref()
            .map(|x| x.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    pub fn deliveries(&self) -> Vec<webhooks::DeliveryRecord> {
        self.shared.webhooks.deliveries()
    }

    /// Stops accepting and closes open connections, as an outage would.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The whole HTTP surface: PagerDuty's APIs, the admin API under `/_emulator`, the HTML page.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(events_api::routes())
        .merge(rest_api::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            server::faults_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            server::record_layer,
        ))
        .layer(axum::middleware::from_fn(server::log_layer))
        .merge(admin::routes())
        .merge(page::routes())
        .fallback(rest_api::not_found)
        .method_not_allowed_fallback(server::method_not_allowed)
        .with_state(shared)
}
