//! The gateway as a long-running service: `pnp-gateway run` (watch mode) and `demo --serve`.
//!
//! ```text
//!   drop folders ──(notify)──┐
//!                            ▼
//!   HTTPS API ──(bounded)──► engine thread ──(wake)──► dispatcher thread ──► destinations
//!   (tokio, axum)   channel   one store writer:          own store connection:
//!                             pushes, imports,           cancellations, deliveries,
//!                             folder ingest,             outcomes
//!                             disclosure stage
//! ```
//!
//! The API runs on a multi-threaded tokio runtime; the store work runs on two plain threads. The
//! engine thread is the one writer of staged records: it takes commands from the API through a
//! bounded channel (a full channel answers 503 with `Retry-After`, so a burst slows the clients
//! instead of growing memory), reads drop folders when the watcher wakes it, and runs the
//! disclosure stage after anything new; each command's answer is sent only after its commit. The
//! durable outbox is the queue between disclosure and delivery: the dispatcher thread, on its
//! own connection to the store, is woken after a disclosure pass (and every second for retries).
//! The store, the delivery clients (reqwest's blocking client, rdkafka, the MLLP client) and the
//! ingest readers are synchronous and stay so: they run on these threads, never on the async
//! runtime's workers, which only parse requests and wait for answers.
//!
//! Shutdown (SIGTERM, SIGINT): the API stops accepting and lets open requests finish (their
//! commands are answered after commit); then the engine finishes the commands queued and
//! stops; then the dispatcher finishes the delivery under way and stops. Whatever is still
//! running after the deadline is left to the next start, which resumes it from its last
//! checkpoint: nothing acknowledged is lost, since nothing is acknowledged before its commit.

pub mod api;
pub(crate) mod auth;
mod dispatcher;
mod engine;
pub mod fhir_task;
mod poll_status;
mod push;
mod referrals;
pub(crate) mod rri;
mod signed;
pub mod sources;
mod status;
pub mod tokens;

pub use engine::Command;

use crate::config::Gateway;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("opening the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Keys(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Source(String),
}

/// Opens the store the way every part of the service needs it: staged incidents sealed with the
/// outbox key when anything delivers, unmapped values described under the vault's key.
pub fn open_store(gw: &Gateway) -> Result<Store, ServiceError> {
    let mut store = Store::open(&gw.store_path)?;
    if !gw.deliveries.is_empty() {
        let key = crate::config::destination::load_key(
            "PNP_GATEWAY_OUTBOX_KEY",
            gw.outbox_key_file.as_deref(),
        )
        .map_err(|e| {
            ServiceError::Keys(format!(
                "staged incidents are sealed with the outbox key: {e}"
            ))
        })?;
        store.seal_incidents_with(crate::store::outbox::SealKey::from_secret(&key));
    }
    if let Ok(secret) =
        crate::config::destination::load_key("PNP_GATEWAY_VAULT_KEY", gw.vault_key_file.as_deref())
    {
        store.describe_gaps_with(crate::mapping::unmapped::GapKey::from_vault_secret(&secret));
    }
    Ok(store)
}

/// Today in the program's zone (America/New_York), or `PNP_GATEWAY_TODAY` (for tests and
/// demos that decide as of a fixed date).
pub fn today() -> chrono::NaiveDate {
    std::env::var("PNP_GATEWAY_TODAY")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| {
            chrono::Utc::now()
                .with_timezone(&chrono_tz::America::New_York)
                .date_naive()
        })
}

/// When each long-lived part of the service last showed it was alive, for `/readyz`.
pub struct Health {
    engine: std::sync::Mutex<Option<Instant>>,
    dispatcher: std::sync::Mutex<Option<Instant>>,
    /// The engine's last commit failed (the store is not writable): cleared by the next success.
    store_error: std::sync::Mutex<Option<String>>,
    /// Where each live source's state is kept: the metrics show it too.
    metrics: Arc<crate::metrics::Metrics>,
}

pub use crate::metrics::SourceState;

impl Health {
    pub fn new(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Health {
            engine: Default::default(),
            dispatcher: Default::default(),
            store_error: Default::default(),
            metrics,
        }
    }

    fn beat(slot: &std::sync::Mutex<Option<Instant>>) {
        if let Ok(mut s) = slot.lock() {
            *s = Some(Instant::now());
        }
    }

    fn alive(slot: &std::sync::Mutex<Option<Instant>>) -> bool {
        slot.lock()
            .ok()
            .and_then(|s| *s)
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
    }

    fn store_failed(&self, e: Option<String>) {
        if let Ok(mut s) = self.store_error.lock() {
            *s = e;
        }
    }

    /// Updates a live source's state.
    pub fn source(&self, pipeline: &str, f: impl FnOnce(&mut SourceState)) {
        self.metrics
            .update(|s| f(s.sources.entry(pipeline.to_string()).or_default()));
    }

    /// Every live source's state, by pipeline id.
    /// Counts a provider's answer (`Metrics::answer`): the FHIR poller's are the Tasks it
    /// read, as a provider's own reports are what they sent.
    pub fn answer(&self, channel: &'static str, kind: &'static str, outcome: &'static str) {
        self.metrics.answer(channel, kind, outcome);
    }

    pub fn sources(&self) -> std::collections::BTreeMap<String, SourceState> {
        self.metrics.sources()
    }

    /// Per component: ready or why not. No value of any record is in it.
    pub fn components(&self) -> Vec<(&'static str, Result<(), String>)> {
        let alive = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("the {what} has not reported for 10 s"))
            }
        };
        let store = match self.store_error.lock().ok().and_then(|s| s.clone()) {
            None => Ok(()),
            Some(e) => Err(e),
        };
        vec![
            ("engine", alive(Self::alive(&self.engine), "engine")),
            (
                "dispatcher",
                alive(Self::alive(&self.dispatcher), "dispatcher"),
            ),
            ("store", store),
        ]
    }
}

/// What the running service is made of; see the module documentation.
pub struct Running {
    /// The API's bound address, when `[server]` is configured.
    pub api: Option<SocketAddr>,
    /// The plain metrics listener's bound address, when configured.
    pub metrics: Option<SocketAddr>,
    /// The live sources started (an MLLP listener's address).
    pub sources: Vec<sources::Bound>,
    runtime: tokio::runtime::Runtime,
    server: Option<tokio::task::JoinHandle<()>>,
    stop_server: crate::server::Shutdown,
    stop: Arc<AtomicBool>,
    /// Held so that the engine's queue stays open while the service runs.
    _commands: std::sync::mpsc::SyncSender<Command>,
    engine: std::thread::JoinHandle<()>,
    dispatcher: std::thread::JoinHandle<()>,
}

/// What the command line adds to the config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A plain metrics listener (`run --metrics-listen`), over `[server] metrics_listen`.
    pub metrics_listen: Option<SocketAddr>,
}

/// Starts the service for `gw`: the engine, the dispatcher and, with `[server]`, the API.
pub fn start(gw: Arc<Gateway>, opts: Options) -> Result<Running, ServiceError> {
    // Without destinations the service only stages records: no secret is needed.
    let keys = Arc::new(if gw.destinations.is_empty() {
        crate::config::destination::Keys {
            vault: Vec::new(),
            audit: Vec::new(),
            outbox: None,
        }
    } else {
        gw.keys().map_err(ServiceError::Keys)?
    });
    for p in &gw.pipelines {
        std::fs::create_dir_all(&p.folder).map_err(|source| ServiceError::Io {
            what: format!("creating drop folder {}", p.folder.display()),
            source,
        })?;
    }
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let health = Arc::new(Health::new(metrics.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel(1);
    let dispatcher = dispatcher::spawn(
        gw.clone(),
        keys.clone(),
        open_store(&gw)?,
        wake_rx,
        stop.clone(),
        health.clone(),
        metrics.clone(),
    )?;
    let (commands, engine) = engine::spawn(
        gw.clone(),
        keys.clone(),
        open_store(&gw)?,
        wake_tx,
        stop.clone(),
        health.clone(),
        metrics.clone(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pnp-api")
        .enable_all()
        .build()
        .map_err(|source| ServiceError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    let (stop_server, signal) = crate::server::Shutdown::new();
    let (mut api, mut server, mut metrics_addr) = (None, None, None);
    let bind = |addr: SocketAddr| {
        let l = std::net::TcpListener::bind(addr).map_err(|source| ServiceError::Io {
            what: format!("cannot listen on {addr}"),
            source,
        })?;
        l.set_nonblocking(true).map_err(|source| ServiceError::Io {
            what: addr.to_string(),
            source,
        })?;
        let bound = l.local_addr().map_err(|source| ServiceError::Io {
            what: addr.to_string(),
            source,
        })?;
        Ok::<_, ServiceError>((l, bound))
    };
    if let Some(cfg) = &gw.server {
        let app = api::App::new(
            gw.clone(),
            commands.clone(),
            health.clone(),
            metrics.clone(),
            cfg,
        )?;
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(api::tls_config(cert, key, cfg.client_ca.as_deref())?),
            None => None,
        };
        let (listener, bound) = bind(cfg.listen)?;
        api = Some(bound);
        // Outermost, so that the FHIR channel's errors from every layer are OperationOutcomes.
        let router = crate::server::layers::bounded(app.router(), &cfg.limits)
            .layer(axum::middleware::from_fn(fhir_task::outcomes));
        let limits = cfg.limits.clone();
        let api_signal = signal.clone();
        server = Some(runtime.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => crate::server::serve(l, "pnp-api", tls, limits, router, api_signal).await,
                Err(e) => tracing::error!(error = %e, "cannot serve the API"),
            }
        }));
    }
    if let Some(addr) = opts
        .metrics_listen
        .or(gw.server.as_ref().and_then(|s| s.metrics_listen))
    {
        let (listener, bound) = bind(addr)?;
        metrics_addr = Some(bound);
        let metrics_signal = signal.clone();
        let limits = crate::metrics::limits();
        let router =
            crate::server::layers::bounded(crate::metrics::router(metrics.clone()), &limits);
        runtime.spawn(async move {
            if let Ok(l) = tokio::net::TcpListener::from_std(listener) {
                crate::server::serve(l, "pnp-metrics", None, limits, router, metrics_signal).await;
            }
        });
    }
    let sources = sources::start_all(
        &runtime,
        &sources::Context {
            gw: gw.clone(),
            pipeline: 0,
            engine: commands.clone(),
            health: health.clone(),
            stop: signal.clone(),
        },
    )?;
    poll_status::start_all(&gw, &commands, &health, &signal)?;
    Ok(Running {
        api,
        metrics: metrics_addr,
        sources,
        runtime,
        server,
        stop_server,
        stop,
        _commands: commands,
        engine,
        dispatcher,
    })
}

/// How long a shutdown may take before what still runs is left to the next start.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(9);

impl Running {
    /// Blocks until SIGTERM or SIGINT, then shuts down (see the module documentation).
    pub fn run_until_signal(self) {
        self.runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(mut term), Ok(mut int)) => {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = int.recv() => {}
                        }
                    }
                    _ => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        tracing::info!("stopping: no new requests; finishing what is in flight");
        self.shutdown();
    }

    /// Stops accepting, lets open requests and queued commands finish, stops the dispatcher.
    pub fn shutdown(self) {
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        self.stop_server.stop();
        if let Some(server) = self.server {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(left, server).await });
        }
        self.stop.store(true, Ordering::SeqCst);
        for (name, t) in [("engine", self.engine), ("dispatcher", self.dispatcher)] {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !t.is_finished() {
                tracing::warn!(
                    part = name,
                    "still busy at the shutdown deadline; the next start resumes from the last commit"
                );
            }
        }
        self.runtime.shutdown_timeout(Duration::from_millis(200));
        tracing::info!("stopped");
    }
}
