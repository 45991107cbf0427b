//! The closed loop's FHIR channel: a provider updates the Task the gateway sent it, by
//! `PUT /fhir/Task/{id}` (a whole Task, `application/fhir+json`) or `PATCH /fhir/Task/{id}`
//! (JSON Patch, [`patch`]), and reads it back with `GET`; scope `provider:<destination>` of the
//! referral's destination. `{id}` is the Task's logical id as the `fhir` destination sent it
//! (the UUID of its `fullUrl`), or the referral's id; a PUT whose Task carries the referral's
//! id in its identifier (system `urn:pnp-gateway:idempotency-key`) is found by it too, so a
//! provider that stored the Task under an id of its own can still answer.
//!
//! The Task.status becomes a step of the lifecycle ([`task::step_of`]), recorded exactly as
//! `POST /v1/referrals/{id}/status` records it (`Store::report_referral_coded`); the answer is
//! the Task rebuilt from the record ([`task::task`]). Every error is an OperationOutcome, also
//! those of the layers around the handlers (401, 413, 429, 503: [`outcomes`]), and none quotes
//! a value the request carried. docs/closed-loop.md has the mapping and the errors.

pub mod patch;
pub mod task;

use super::api::App;
use super::auth::Caller;
use crate::policy::lifecycle::Status;
use crate::store::referrals::{Referral, Refusal};
use crate::store::{Store, StoreError};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const FHIR_JSON: &str = "application/fhir+json";

/// A refusal: the HTTP status, the OperationOutcome's issue code, and why (never a value of the
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: StatusCode,
    pub code: &'static str,
    pub why: String,
}

impl Fail {
    pub fn new(status: StatusCode, code: &'static str, why: impl Into<String>) -> Fail {
        Fail {
            status,
            code,
            why: why.into(),
        }
    }

    pub fn invalid(why: impl Into<String>) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, "invalid", why)
    }

    pub fn business_rule(why: impl Into<String>) -> Fail {
        Fail::new(StatusCode::CONFLICT, "business-rule", why)
    }

    fn forbidden() -> Fail {
        Fail::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this referral went to another destination",
        )
    }

    fn not_found() -> Fail {
        Fail::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no referral's Task has this id",
        )
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        fhir(self.status, &outcome(self.code, &self.why))
    }
}

/// An OperationOutcome of one error.
fn outcome(code: &str, why: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": why}]
    })
}

fn fhir(status: StatusCode, resource: &Value) -> Response {
    let mut r = (status, resource.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// `If-Match: W/"3"` (FHIR's version-aware update): the version the client last saw.
fn if_match(headers: &HeaderMap) -> Result<Option<String>, Fail> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or_default().trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n.into())),
        _ => Err(Fail::invalid("If-Match is a version, W/\"<versionId>\"")),
    }
}

/// What the request asks.
enum Change {
    Read,
    Put(task::Update),
    Patch(Vec<patch::Op>),
}

/// `GET /fhir/Task/{id}`: the Task as the referral's record stands.
pub(super) async fn read(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    run(app, caller, id, None, Change::Read).await
}

/// `PUT /fhir/Task/{id}`: a whole Task; its status, statusReason and businessStatus codes are
/// what is read.
pub(super) async fn put(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media = super::api::media_type(&headers);
    if media != FHIR_JSON && media != "application/json" {
        let f = Fail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "a Task is sent as application/fhir+json",
        );
        return refused(&app, f);
    }
    let update = serde_json::from_slice::<Value>(&body)
        .map_err(|_| Fail::invalid("the body is not JSON"))
        .and_then(|t| task::read(&t));
    let version = if_match(&headers);
    match (update, version) {
        (Ok(u), Ok(v)) => run(app, caller, id, v, Change::Put(u)).await,
        (Err(f), _) | (_, Err(f)) => refused(&app, f),
    }
}

/// `PATCH /fhir/Task/{id}`: a JSON Patch (`application/json-patch+json`) of the Task as it stands.
pub(super) async fn patch(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if super::api::media_type(&headers) != "application/json-patch+json" {
        let f = Fail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "a Task patch is a JSON Patch, application/json-patch+json (FHIRPath Patch is not taken)",
        );
        return refused(&app, f);
    }
    let ops = serde_json::from_slice::<Value>(&body)
        .map_err(|_| Fail::invalid("the body is not JSON"))
        .and_then(|d| patch::ops(&d));
    match (ops, if_match(&headers)) {
        (Ok(ops), Ok(v)) => run(app, caller, id, v, Change::Patch(ops)).await,
        (Err(f), _) | (_, Err(f)) => refused(&app, f),
    }
}

/// A PUT or PATCH refused before it is queued, counted like the others.
fn refused(app: &App, f: Fail) -> Response {
    app.metrics.answer("fhir", "task", "rejected");
    f.into_response()
}

/// Queues the change for the engine (the store's one writer) and answers after its commit; a
/// PUT or PATCH is counted in the metrics ([`crate::metrics::Metrics::answer`], channel `fhir`),
/// a read is not: it answers nothing.
async fn run(
    app: App,
    caller: Caller,
    id: String,
    version: Option<String>,
    change: Change,
) -> Response {
    let counted = !matches!(change, Change::Read);
    let metrics = app.metrics.clone();
    let (r, recorded) = update(app, caller, id, version, change).await;
    if counted {
        let outcome = match recorded {
            Some(false) => "ignored",
            _ => crate::metrics::outcome_of(r.status()),
        };
        metrics.answer("fhir", "task", outcome);
    }
    r
}

/// [`run`]'s work: the answer, and whether a step was recorded (`None` when it failed).
async fn update(
    app: App,
    caller: Caller,
    id: String,
    version: Option<String>,
    change: Change,
) -> (Response, Option<bool>) {
    let destinations = super::referrals::providers_of(&caller);
    if destinations.is_empty() {
        return (
            Fail::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("client `{}` has no `provider:` scope", caller.id),
            )
            .into_response(),
            None,
        );
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let by = caller.id;
    if let Err(r) = app.queue(super::engine::Command::Store(Box::new(
        move |store, keys| {
            let r = apply(
                store,
                &keys.audit,
                &id,
                &destinations,
                version.as_deref(),
                change,
                &by,
            );
            let _ = reply.send(r);
        },
    ))) {
        return (r, None); // converted to an OperationOutcome by `outcomes`
    }
    match answer.await {
        Ok(Ok(Ok((t, recorded)))) => (fhir(StatusCode::OK, &t), Some(recorded)),
        Ok(Ok(Err(f))) => (f.into_response(), None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a Task update was not stored");
            let r = crate::server::layers::busy("the gateway cannot store it now; try again");
            (r, None)
        }
        Err(_) => (
            crate::server::layers::busy("the gateway stopped before storing it; try again"),
            None,
        ),
    }
}

/// The referral a request names: by the URL's id (the Task's id, or the referral's id), else by
/// the Task's identifier; both must name the same one.
fn resolve(
    store: &mut Store,
    id: &str,
    key: Option<&str>,
) -> Result<Result<Referral, Fail>, StoreError> {
    let mut by_url = store.referral(id)?;
    if by_url.is_none() && looks_like_uuid(id) {
        // The Task's id is a hash of the referral's: looked up in the store's index of them
        // (`store::task_ids`), not by hashing every referral.
        by_url = store.referral_by_task_id(id, task::task_id)?;
    }
    let by_key = match key {
        Some(k) => store.referral(k)?,
        None => None,
    };
    Ok(match (by_url, by_key) {
        (Some(a), Some(b)) if a.id != b.id => Err(Fail::invalid(
            "the Task's identifier names another referral than the URL",
        )),
        (Some(a), _) => Ok(a),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(Fail::not_found()),
    })
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// On the engine: resolves, checks the caller and the version, applies the change, records the
/// step; the Task as it then stands, and whether a step was recorded.
fn apply(
    store: &mut Store,
    audit_key: &[u8],
    id: &str,
    destinations: &[String],
    version: Option<&str>,
    change: Change,
    by: &str,
) -> Result<Result<(Value, bool), Fail>, StoreError> {
    let key = match &change {
        Change::Put(u) => u.key.as_deref(),
        _ => None,
    };
    let referral = match resolve(store, id, key)? {
        Ok(r) => r,
        Err(f) => return Ok(Err(f)),
    };
    if !destinations.contains(&referral.destination) {
        return Ok(Err(Fail::forbidden()));
    }
    let events = store.referral_events(&referral.id)?;
    let current = task::task(&referral, &events);
    if version.is_some_and(|v| current["meta"]["versionId"] != v) {
        return Ok(Err(Fail::new(
            StatusCode::PRECONDITION_FAILED,
            "conflict",
            "the Task has changed since the version in If-Match",
        )));
    }
    let update = match change {
        Change::Read => return Ok(Ok((current, false))),
        // The id in the body, when there is one, is the URL's (FHIR's update rule), or the
        // gateway's id of this Task (a Task read at the referral's id and sent back there).
        Change::Put(u)
            if u.id
                .as_ref()
                .is_some_and(|i| i != id && *i != current["id"]) =>
        {
            return Ok(Err(Fail::invalid("the Task's id is not the id in the URL")));
        }
        Change::Put(u) => u,
        Change::Patch(ops) => {
            let mut t = current.clone();
            match patch::apply(&mut t, &ops).and_then(|()| task::read(&t)) {
                Ok(u) => u,
                Err(f) => return Ok(Err(f)),
            }
        }
    };
    let to = match update.step {
        task::Step::To(s) => s,
        task::Step::Acknowledge if referral.status == Status::Sent => {
            return Ok(Ok((current, false)));
        }
        task::Step::Acknowledge => {
            return Ok(Err(Fail::business_rule(format!(
                "`{}` cannot follow `{}`: the provider has answered already",
                update.status,
                referral.status.as_str()
            ))));
        }
    };
    let at = crate::store::now();
    match store.report_referral_coded(
        audit_key,
        &referral.id,
        destinations,
        to,
        update.reason.as_deref(),
        update.business.as_deref(),
        &at,
        by,
    )? {
        Ok(r) => {
            let events = store.referral_events(&r.id)?;
            Ok(Ok((task::task(&r, &events), true)))
        }
        Err(Refusal::NoSuchReferral) => Ok(Err(Fail::not_found())),
        Err(Refusal::NotYours) => Ok(Err(Fail::forbidden())),
        Err(Refusal::Illegal(why)) => Ok(Err(Fail::business_rule(why))),
    }
}

/// A middleware over the whole API: an error answered on a `/fhir/` path by anything but the
/// handlers above (authentication's 401, the rate limit's 429, the body limit's 413, a full
/// server's 503, an unknown path or method) becomes an OperationOutcome with the same status
/// and headers. Its diagnostics are the gateway's own JSON `error` when there is one, else the
/// status's meaning; a plain-text body is not passed on.
pub async fn outcomes(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/fhir/") {
        return next.run(req).await;
    }
    let r = next.run(req).await;
    let is_fhir = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(FHIR_JSON.as_bytes()));
    if r.status().is_success() || is_fhir {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let said = if json {
        axum::body::to_bytes(body, 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
    } else {
        None
    };
    let (code, meaning) = match parts.status.as_u16() {
        400 => ("invalid", "the request is malformed"),
        401 => (
            "login",
            "no valid credentials (Authorization: Bearer <token>)",
        ),
        403 => ("forbidden", "not allowed for this client"),
        404 => ("not-found", "no such endpoint (docs/api.md)"),
        405 => (
            "not-supported",
            "this method is not taken here (GET, PUT, PATCH)",
        ),
        408 => ("timeout", "the body came too slowly"),
        413 => ("too-costly", "the body is larger than this server takes"),
        429 => ("throttled", "over this client's request rate; try again"),
        503 => ("transient", "the gateway is busy; try again"),
        _ => ("exception", "the request failed"),
    };
    let body = outcome(code, said.as_deref().unwrap_or(meaning)).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Response::from_parts(parts, Body::from(body))
}
