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
    pub(super) gw: Arc<Gateway>,
    engine: SyncSender<Command>,
    pub(super) health: Arc<Health>,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    auth: Arc<Auth>,
    /// Signed status reports' signatures, each taken once (`service::signed`).
    pub(super) used_signatures: Arc<super::signed::Used>,
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
            used_signatures: Arc::default(),
        })
    }

    /// Every route, behind authentication.
    pub fn router(self) -> Router {
        let auth = self.auth.clone();
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/status", get(super::status::page))
            .route("/v1/pipelines/{pipeline}/exports", post(push))
            .route("/v1/consents", post(consents))
            .route("/v1/consents/{id}/revocation", post(revocation))
            .route("/v1/engagements", post(engagements))
            .route("/v1/referrals", get(super::referrals::list))
            .route("/v1/referrals/{id}", get(super::referrals::show))
            .route("/v1/referrals/{id}/status", post(super::referrals::report))
            // The closed loop's FHIR channel (fhir_task/; its errors are OperationOutcomes).
            .route(
                "/fhir/Task/{id}",
                get(super::fhir_task::read)
                    .put(super::fhir_task::put)
                    .patch(super::fhir_task::patch),
            )
            // A provider's HL7 v2 answer (RRI^I12, ACK) as an HTTPS body.
            .route("/v1/referrals/hl7", post(super::rri::post_hl7))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint (docs/api.md)") })
            .with_state(self)
            .layer(axum::middleware::from_fn_with_state(
                auth,
                auth::authenticate,
            ))
    }

    /// The engine's queue, for a handler that waits on a full queue its own way.
    pub(super) fn engine(&self) -> &SyncSender<Command> {
        &self.engine
    }

    /// Queues `cmd` for the engine: 503 and `Retry-After` when its queue is full or it stops.
    #[allow(clippy::result_large_err)]
    pub(super) fn queue(&self, cmd: Command) -> Result<(), Response> {
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
    // A source that stopped makes the gateway not ready; one whose peer fails (a poll source
    // backing off) is shown but the gateway is ready.
    let sources = app.health.sources();
    let ready = ready && sources.values().all(|s| s.state != "stopped");
    for (pipeline, st) in &sources {
        components.insert(
            format!("source:{pipeline}"),
            serde_json::json!({"ready": st.state != "stopped", "state": st}),
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
                "Idempotency-Key must be letters, digits, - and _ (at most 200)",
            );
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(Command::Push {
        pipeline: index,
        client: caller.id.clone(),
        key,
        body,
        cursor: None,
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

/// The API's TLS: the server's certificate and key; with `client_ca`, a client certificate, when
/// presented, must chain to it (mutual TLS; `cert_subject` clients authenticate by it).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ServerConfig>, ServiceError> {
    let ca = client_ca.map(|c| (c, crate::tls::ClientCerts::Optional));
    crate::tls::server_config(cert, key, ca).map_err(ServiceError::Tls)
}

/// `?atomic=true` (nothing imported when any record is bad) and, for consents,
/// `?accept_incomplete=true` (recorded, permitting nothing), as on the command line.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    #[serde(default)]
    atomic: bool,
    #[serde(default)]
    accept_incomplete: bool,
}

/// The request's media type (`Content-Type` without parameters), lower case; empty if none.
pub(super) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// How a PRSS body is read: by its `Content-Type`.
fn content_of(headers: &HeaderMap) -> crate::imports::Content {
    match media_type(headers).as_str() {
        "application/fhir+json" => crate::imports::Content::Fhir,
        "text/csv" => crate::imports::Content::Csv,
        "application/json" => crate::imports::Content::Json,
        _ => crate::imports::Content::Guess,
    }
}

/// A PRSS import's body as text: 403 without the `prss` scope, 400 when empty or not UTF-8.
#[allow(clippy::result_large_err)]
fn prss_text(caller: &Caller, body: Bytes) -> Result<String, Response> {
    caller.require(&Scope::Prss)?;
    if body.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "the body is empty"));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the body is not UTF-8"))
}

/// An import's answer: 200 with the report (the first [`super::push::LISTED`] problems, each
/// with line, field, kind and reason, and `problems_total`); 422 when `atomic` refused it all.
fn import_answer(
    r: Result<
        Result<crate::imports::ImportReport, crate::imports::ImportError>,
        tokio::sync::oneshot::error::RecvError,
    >,
) -> Response {
    match r {
        Ok(Ok(report)) => {
            let status = if report.aborted {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            // A file of bad rows would get an answer many times its size (a 1 MB engagements
            // file: 49 MB); `problems_total` counts what the list leaves out.
            let mut report = report;
            let total = report.problems.len();
            report.problems.truncate(super::push::LISTED as usize);
            let mut body = serde_json::to_value(&report).unwrap_or_default();
            body["problems_total"] = serde_json::json!(total);
            (status, axum::Json(body)).into_response()
        }
        Ok(Err(e)) => import_error(&e),
        Err(_) => crate::server::layers::busy("the gateway stopped before storing it; try again"),
    }
}

fn import_error(e: &crate::imports::ImportError) -> Response {
    use crate::imports::ImportError as E;
    let status = match e {
        E::Unreadable(_) => StatusCode::BAD_REQUEST,
        E::UnknownConsent(_) => StatusCode::NOT_FOUND,
        E::Keys(_) | E::Store(_) => {
            tracing::error!(error = %e, "an import was not stored");
            return crate::server::layers::busy("the gateway cannot store it now; try again");
        }
    };
    (
        status,
        axum::Json(serde_json::json!({"error": e.to_string(), "kind": e.kind()})),
    )
        .into_response()
}

/// `POST /v1/consents`: as `consent import`, answered after commit.
async fn consents(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(q): axum::extract::Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = match prss_text(&caller, body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(Command::Consents {
        text,
        content: content_of(&headers),
        atomic: q.atomic,
        accept_incomplete: q.accept_incomplete,
        reply,
    }) {
        return r;
    }
    import_answer(answer.await)
}

/// The body of a revocation: the date it takes effect (default today).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationBody {
    on: Option<chrono::NaiveDate>,
}

/// `POST /v1/consents/{id}/revocation`: recorded, and what waits under the consent withdrawn,
/// before the answer.
async fn revocation(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = caller.require(&Scope::Prss) {
        return r;
    }
    let parsed = if body.is_empty() {
        Ok(RevocationBody::default())
    } else {
        serde_json::from_slice::<RevocationBody>(&body)
    };
    let on = match parsed {
        Ok(b) => b.on.unwrap_or_else(super::today),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body is {\"on\": \"YYYY-MM-DD\"} or empty (today)",
            );
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(Command::Revoke { id, on, reply }) {
        return r;
    }
    match answer.await {
        Ok(Ok(r)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"revoked_on": on, "withdrawn": r.withdrawn, "cancelled": r.cancelled})),
        )
            .into_response(),
        Ok(Err(e)) => import_error(&e),
        Err(_) => crate::server::layers::busy("the gateway stopped before storing it; try again"),
    }
}

/// `POST /v1/engagements`: as `engagement import`, answered after commit.
async fn engagements(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    axum::extract::Query(q): axum::extract::Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = match prss_text(&caller, body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(Command::Engagements {
        text,
        content: content_of(&headers),
        atomic: q.atomic,
        reply,
    }) {
        return r;
    }
    import_answer(answer.await)
}
