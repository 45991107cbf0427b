//! Signed status reports (`POST /v1/referrals/{id}/status`): where the referral's destination
//! has a signing secret (a `webhook` or FHIR delivery's `secret_file`/`secret_env`), a provider
//! may sign its report the way the gateway signs what it sends it: `X-PNP-Timestamp` (Unix
//! seconds) and `X-PNP-Signature: v2=<hex HMAC-SHA256(secret, "{timestamp}.{referral id}.{body}")>`
//! (`deliver::webhook::signing_mac`, checked by `receiver::verify`). A present signature is
//! checked, in addition to the bearer token or client certificate: bad, stale (more than five
//! minutes from our clock) or uncheckable (no secret for the destination) is 401 and nothing
//! changes. Without the headers the report is taken on the caller's credentials alone.

use super::api::App;
use super::auth::error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

const TIMESTAMP: &str = "x-pnp-timestamp";
const SIGNATURE: &str = "x-pnp-signature";

fn unauthorized(kind: &str, why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"error": why, "kind": kind})),
    )
        .into_response()
}

/// Whether the request carries a signature to check (either header present).
pub(super) fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(TIMESTAMP) || headers.contains_key(SIGNATURE)
}

/// Checks a signed report of referral `id` for one of `destinations` (the caller's): 404 and
/// 403 as for any report, 401 with a kind (`bad_signature`, `stale_signature`,
/// `no_signing_secret`) when the signature does not hold.
#[allow(clippy::result_large_err)]
pub(super) async fn check(
    app: &App,
    destinations: &[String],
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let (timestamp, signature) = (header(TIMESTAMP), header(SIGNATURE));
    let (reply, answer) = tokio::sync::oneshot::channel();
    let key = id.to_string();
    app.queue(super::engine::Command::Store(Box::new(move |store, _| {
        let _ = reply.send(store.referral(&key));
    })))?;
    let destination = match answer.await {
        Ok(Ok(Some(r))) => r.destination,
        Ok(Ok(None)) => return Err(error(StatusCode::NOT_FOUND, "no referral with this id")),
        _ => {
            return Err(crate::server::layers::busy(
                "the gateway cannot read it now; try again",
            ));
        }
    };
    if !destinations.contains(&destination) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "this referral went to another destination",
        ));
    }
    let secret = match app.gw.deliveries.get(&destination).map(|d| &d.kind) {
        Some(crate::config::gateway::DeliveryKind::Webhook { http, .. }) => {
            crate::deliver::webhook::secret(http).ok()
        }
        _ => None,
    };
    let Some(secret) = secret else {
        return Err(unauthorized(
            "no_signing_secret",
            "this referral's destination has no signing secret: send the report unsigned",
        ));
    };
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| {
        (chrono::Utc::now().timestamp() - t).abs() <= crate::receiver::MAX_SKEW_SECS
    });
    if !fresh {
        return Err(unauthorized(
            "stale_signature",
            "X-PNP-Timestamp is missing or more than five minutes from the gateway's clock",
        ));
    }
    if !crate::receiver::verify(&secret, &timestamp, id, body, &signature) {
        return Err(unauthorized(
            "bad_signature",
            "X-PNP-Signature is not v2= HMAC-SHA256 of \"{timestamp}.{referral id}.{body}\" under the destination's secret",
        ));
    }
    Ok(())
}
