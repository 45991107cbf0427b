//! The closed loop over the API: providers report what became of their referrals
//! (`POST /v1/referrals/{id}/status`, scope `provider:<destination>`), the PRSS's organization
//! reads them (`GET /v1/referrals`, `GET /v1/referrals/{id}`, scope `prss`; a provider sees its
//! own). docs/closed-loop.md.

use super::api::App;
use super::auth::{Caller, error};
use crate::config::server::Scope;
use crate::policy::lifecycle::Status;
use crate::store::referrals::Refusal;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The destinations whose referrals the caller may see and report on: its `provider:` scopes,
/// or every destination for `prss` (read only).
pub(super) fn providers_of(caller: &Caller) -> Vec<String> {
    caller
        .scopes
        .iter()
        .filter_map(|s| match s {
            Scope::Provider(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Report {
    status: String,
    /// A code (letters, digits, `-`, `_`; at most 64), such as FHIR's Task.statusReason codes:
    /// never free text, which could name someone.
    reason: Option<String>,
    /// When it happened (RFC 3339); default now.
    at: Option<String>,
}

pub(super) fn reason_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `POST /v1/referrals/{id}/status`, counted in the metrics by its answer's status
/// ([`crate::metrics::Metrics::answer`], channel `json`).
pub(super) async fn report(
    State(app): State<App>,
    caller: Extension<Caller>,
    id: Path<String>,
    headers: axum::http::HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let metrics = app.metrics.clone();
    let r = report_status(State(app), caller, id, headers, raw).await;
    metrics.answer("json", "status", crate::metrics::outcome_of(r.status()));
    r
}

async fn report_status(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let destinations = providers_of(&caller);
    if destinations.is_empty() {
        return error(
            StatusCode::FORBIDDEN,
            &format!("client `{}` has no `provider:` scope", caller.id),
        );
    }
    // A signed body is checked before it is read (service::signed); whether its signature
    // stays taken is decided where the report is stored.
    let taken = if super::signed::is_signed(&headers) {
        match super::signed::check(&app, &destinations, &id, &headers, &raw).await {
            Ok(t) => Some(t),
            Err(r) => return r,
        }
    } else {
        None
    };
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is JSON: Content-Type application/json",
        );
    }
    // Read by serde_json, answered in words of our own: serde's message quotes what it could
    // not take (`invalid type: string "..."`, an unknown field's name), and a body may hold
    // anything a provider's system put in it.
    let body: Report = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            let what = match e.classify() {
                serde_json::error::Category::Data => {
                    "a field is missing, unknown or of the wrong type"
                }
                _ => "not JSON",
            };
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body is {{\"status\": ..., \"reason\": ..., \"at\": ...}}: {what} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    let Some(to) = Status::parse(&body.status) else {
        return error(
            StatusCode::BAD_REQUEST,
            "status is one of accepted, rejected, in-progress, on-hold, completed, failed, cancelled",
        );
    };
    if body.reason.as_deref().is_some_and(|r| !reason_ok(r)) {
        return error(
            StatusCode::BAD_REQUEST,
            "reason is a code (letters, digits, - and _; at most 64), not free text",
        );
    }
    let at = match body.at.as_deref() {
        None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Some(a) => match chrono::DateTime::parse_from_rfc3339(a) {
            Ok(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Err(_) => return error(StatusCode::BAD_REQUEST, "at is not an RFC 3339 time"),
        },
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let by = caller.id.clone();
    if let Err(r) = app.queue(super::engine::Command::Store(Box::new(
        move |store, keys| {
            let r = store.report_referral(
                &keys.audit,
                &id,
                &destinations,
                to,
                body.reason.as_deref(),
                &at,
                &by,
            );
            // Recorded or refused, the report was read: its signature stays taken, whatever
            // becomes of the answer. A store error gives it back (dropped).
            if r.is_ok()
                && let Some(t) = taken
            {
                t.keep();
            }
            let _ = reply.send(r);
        },
    ))) {
        return r;
    }
    match answer.await {
        Ok(Ok(Ok(referral))) => (StatusCode::OK, axum::Json(referral)).into_response(),
        Ok(Ok(Err(Refusal::NoSuchReferral))) => {
            error(StatusCode::NOT_FOUND, "no referral with this id")
        }
        Ok(Ok(Err(Refusal::NotYours))) => error(
            StatusCode::FORBIDDEN,
            "this referral went to another destination",
        ),
        Ok(Ok(Err(Refusal::Illegal(why)))) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({"error": why, "kind": "illegal_transition"})),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a referral status was not stored");
            crate::server::layers::busy("the gateway cannot store it now; try again")
        }
        Err(_) => crate::server::layers::busy("the gateway stopped before storing it; try again"),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    destination: Option<String>,
    /// Only referrals still `sent` after their destination's `accept_within`, with `sent_at`,
    /// `overdue_since` and `alerted_at` (docs/closed-loop.md, "Follow-up").
    overdue: Option<bool>,
}

/// Which destinations the caller may read: all for `prss`, its own for a provider.
#[allow(clippy::result_large_err)]
fn readable(caller: &Caller) -> Result<Option<Vec<String>>, Response> {
    if caller.scopes.contains(&Scope::Prss) {
        return Ok(None);
    }
    let own = providers_of(caller);
    if own.is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!("client `{}` lacks the scope `prss`", caller.id),
        ));
    }
    Ok(Some(own))
}

/// `GET /v1/referrals[?status=][&destination=]`: id, destination, status, times.
pub(super) async fn list(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Response {
    let only = match readable(&caller) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let status = match q.status.as_deref().map(Status::parse) {
        Some(None) => return error(StatusCode::BAD_REQUEST, "no such status"),
        Some(s) => s,
        None => None,
    };
    // What the caller may read, in the status and for the destination asked.
    let keep = move |destination: &String, st: Status| {
        only.as_ref().is_none_or(|o| o.contains(destination))
            && status.is_none_or(|s| st == s)
            && q.destination.as_ref().is_none_or(|d| d == destination)
    };
    if q.overdue == Some(true) {
        let gw = app.gw.clone();
        return read_rows(
            &app,
            move |store| crate::deliver::followup::overdue(store, &gw, chrono::Utc::now()),
            move |r| keep(&r.destination, r.status),
        )
        .await;
    }
    read_rows(
        &app,
        |store| store.referrals(),
        move |r| keep(&r.destination, r.status),
    )
    .await
}

/// `{"referrals": [...]}`: the rows `read` gives on the engine's store connection that `keep`
/// keeps.
async fn read_rows<T, E>(
    app: &App,
    read: impl FnOnce(&mut crate::store::Store) -> Result<Vec<T>, E> + Send + 'static,
    keep: impl Fn(&T) -> bool,
) -> Response
where
    T: serde::Serialize + Send + 'static,
    E: Send + 'static,
{
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(super::engine::Command::Store(Box::new(move |store, _| {
        let _ = reply.send(read(store));
    }))) {
        return r;
    }
    match answer.await {
        Ok(Ok(all)) => {
            let rows: Vec<T> = all.into_iter().filter(|r| keep(r)).collect();
            axum::Json(serde_json::json!({ "referrals": rows })).into_response()
        }
        _ => crate::server::layers::busy("the gateway cannot read it now; try again"),
    }
}

/// `GET /v1/referrals/{id}`: the referral and its timeline.
pub(super) async fn show(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let only = match readable(&caller) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if let Err(r) = app.queue(super::engine::Command::Store(Box::new(move |store, _| {
        let r = store
            .referral(&id)
            .and_then(|r| Ok((r, store.referral_events(&id)?)));
        let _ = reply.send(r);
    }))) {
        return r;
    }
    match answer.await {
        Ok(Ok((Some(r), events))) => {
            if only.as_ref().is_some_and(|o| !o.contains(&r.destination)) {
                return error(
                    StatusCode::FORBIDDEN,
                    "this referral went to another destination",
                );
            }
            axum::Json(serde_json::json!({"referral": r, "events": events})).into_response()
        }
        Ok(Ok((None, _))) => error(StatusCode::NOT_FOUND, "no referral with this id"),
        _ => crate::server::layers::busy("the gateway cannot read it now; try again"),
    }
}
