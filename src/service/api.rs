//! The HTTPS API's routes (docs/api.md lists them with their scopes and errors). Handlers only
//! check the caller and the request, queue a command for the engine and wait for its answer,
//! which comes after the commit: a 202 means stored.

use super::auth::{self, Auth, Caller, error};
use super::engine::Command;
use super::push::PushError;
use super::{Health, ServiceError};
use crate::config::Gateway;
use crate::config::server::{Scope, Server};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};

#[derive(Clone)]
pub struct App {
    gw: Arc<Gateway>,
    engine: SyncSender<Command>,
    health: Arc<Health>,
    metrics: Arc<crate::metrics::Metrics>,
    auth: Arc<Auth>,
}

impl App {
    pub(super) fn new(
        gw: Arc<Gateway>,
        engine: SyncSender<Command>,
        health: Arc<Health>,
        metrics: Arc<crate::metrics::Metrics>,
        server: &Server,
    ) -> Result<App, ServiceError> {
        let auth = Arc::new(Auth::new(
            &gw.clients,
            server.rate_per_second,
            server.rate_burst,
        ));
        Ok(App {
            gw,
            engine,
            health,
            metrics,
            auth,
        })
    }

    /// Every route, behind authentication.
    pub fn router(self) -> Router {
        let auth = self.auth.clone();
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/v1/pipelines/{pipeline}/exports", post(push))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint (docs/api.md)") })
            .with_state(self)
            .layer(axum::middleware::from_fn_with_state(
                auth,
                auth::authenticate,
            ))
    }

    /// Queues `cmd` for the engine: 503 and `Retry-After` when its queue is full or it stops.
    #[allow(clippy::result_large_err)]
    fn queue(&self, cmd: Command) -> Result<(), Response> {
        match self.engine.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(crate::server::layers::busy(
                "the gateway is busy; try again",
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(crate::server::layers::busy("the gateway is stopping"))
            }
        }
    }
}

/// The process runs and answers.
async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Ready when the store takes commits, the keys are loaded (they are, or the service would not
/// have started) and the engine and dispatcher are alive: per component, 503 when any is not.
async fn readyz(State(app): State<App>) -> Response {
    let parts = app.health.components();
    let ready = parts.iter().all(|(_, r)| r.is_ok());
    let mut components = serde_json::Map::new();
    components.insert("keys".into(), serde_json::json!({"ready": true}));
    for (name, r) in parts {
        components.insert(
            name.into(),
            match r {
                Ok(()) => serde_json::json!({"ready": true}),
                Err(why) => serde_json::json!({"ready": false, "reason": why}),
            },
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "components": components})),
    )
        .into_response()
}

/// The Prometheus text, for `admin` (a scraper without a token uses `[server] metrics_listen`).
async fn metrics(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = caller.require(&Scope::Admin) {
        return r;
    }
    crate::metrics::response(&app.metrics)
}

/// `POST /v1/pipelines/{pipeline}/exports`: the body is an export in the pipeline adapter's
/// format; 202 once its records and the push ledger's entry are committed.
async fn push(
    State(app): State<App>,
    Path(pipeline): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = caller.require(&Scope::Push(pipeline.clone())) {
        return r;
    }
    let Some(index) = app.gw.pipelines.iter().position(|p| p.id == pipeline) else {
        return error(StatusCode::NOT_FOUND, "no pipeline with this id");
    };
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the body is empty");
    }
    // Without a key, the body's hash is the key: the same body again is not read twice.
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => crate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&body)),
        Some(Ok(k)) if crate::deliver::webhook::key_is_valid(k) => k.to_string(),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be letters, digits, - and _ (at most 128)",
            );
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(Command::Push {
        pipeline: index,
        client: caller.id.clone(),
        key,
        body,
        reply,
    }) {
        return r;
    }
    match answer.await {
        Ok(Ok(a)) => (StatusCode::ACCEPTED, axum::Json(a)).into_response(),
        Ok(Err(PushError::KeyReused)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PushError::KeyReused.to_string(),
        ),
        Ok(Err(e)) => {
            tracing::error!(pipeline = %pipeline, error = %e, "a push was not stored");
            crate::server::layers::busy("the gateway cannot store it now; try again")
        }
        Err(_) => crate::server::layers::busy("the gateway stopped before storing it; try again"),
    }
}

/// The API's TLS: the server's certificate and key; with `client_ca`, client certificates are
/// required and checked against it (mutual TLS).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ServerConfig>, ServiceError> {
    let certs = crate::tls::read_certs(cert).map_err(ServiceError::Tls)?;
    let key = crate::tls::read_key(key).map_err(ServiceError::Tls)?;
    let builder = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in crate::tls::read_certs(ca).map_err(ServiceError::Tls)? {
                roots
                    .add(c)
                    .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::tls::provider(),
            )
            .build()
            .map_err(|e| ServiceError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServiceError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}
