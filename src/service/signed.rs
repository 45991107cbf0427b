//! Signed status reports (`POST /v1/referrals/{id}/status`): where the referral's destination
//! has a signing secret (a `webhook` or FHIR delivery's `secret_file`/`secret_env`), a provider
//! may sign its report the way the gateway signs what it sends it: `X-PNP-Timestamp` (Unix
//! seconds) and `X-PNP-Signature: v2=<hex HMAC-SHA256(secret, "{timestamp}.{referral id}.{body}")>`
//! (`deliver::webhook::signing_mac`, checked by `receiver::verify`). A present signature is
//! checked, in addition to the bearer token or client certificate: bad, stale (more than five
//! minutes from our clock) or uncheckable (no secret for the destination) is 401 and nothing
//! changes. A signature is taken once: the same signed request again within its five minutes
//! (a replay, or a retry that was not signed again) is 409 `replayed_signature` and nothing
//! changes ([`Used`]). Without the headers the report is taken on the caller's credentials alone.

use super::api::App;
use super::auth::error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The signatures of the signed reports taken (or being taken) while their timestamp is fresh,
/// so that each is taken once, by the MAC's bytes (a header that spells them otherwise is the
/// same signature). In memory: a signature is fresh for at most ten minutes (five on either side
/// of the clock), and a restarted gateway forgets those it took; a replay then is a step
/// already taken, refused or recorded again without change. Bounded: when it holds
/// [`Used::MAX`] fresh signatures, further signed reports are 503 until some expire.
#[derive(Default)]
pub(super) struct Used {
    /// Signature (`v2=` hex) -> its timestamp.
    by_signature: Mutex<HashMap<String, i64>>,
}

/// Why a signature cannot be taken now.
enum Refused {
    Replayed,
    Full,
}

impl Used {
    const MAX: usize = 100_000;

    /// Takes `signature` (timestamp `ts`) at `now`, forgetting those no longer fresh.
    fn take(&self, signature: &str, ts: i64, now: i64) -> Result<(), Refused> {
        let mut m = self.by_signature.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| (now - *t).abs() <= crate::receiver::MAX_SKEW_SECS);
        if m.contains_key(signature) {
            return Err(Refused::Replayed);
        }
        if m.len() >= Self::MAX {
            return Err(Refused::Full);
        }
        m.insert(signature.to_string(), ts);
        Ok(())
    }

    fn give_back(&self, signature: &str) {
        self.by_signature
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(signature);
    }
}

/// A signature taken for a report under way: given back when dropped, unless kept
/// ([`Taken::keep`]). The report's store step decides, on the engine's thread: kept once the
/// step ran (recorded or refused: a refused report is not taken again later, when its step
/// may have become legal), given back when the store failed or the step never ran (the
/// request was refused before it, the gateway stopped), so that it can be sent again.
pub(super) struct Taken {
    used: Arc<Used>,
    signature: Option<String>,
}

impl Taken {
    pub(super) fn keep(mut self) {
        self.signature = None;
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(s) = self.signature.take() {
            self.used.give_back(&s);
        }
    }
}

/// Checks a signed report of referral `id` for one of `destinations` (the caller's): 404 and
/// 403 as for any report, 401 with a kind (`bad_signature`, `stale_signature`,
/// `no_signing_secret`) when the signature does not hold, 409 `replayed_signature` when it was
/// taken before. The signature is taken until the [`Taken`] is dropped or kept.
#[allow(clippy::result_large_err)]
pub(super) async fn check(
    app: &App,
    destinations: &[String],
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Taken, Response> {
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
    let now = chrono::Utc::now().timestamp();
    let ts = timestamp
        .parse::<i64>()
        .ok()
        .filter(|t| (now - t).abs() <= crate::receiver::MAX_SKEW_SECS);
    let Some(ts) = ts else {
        return Err(unauthorized(
            "stale_signature",
            "X-PNP-Timestamp is missing or more than five minutes from the gateway's clock",
        ));
    };
    let Some(tag) = crate::receiver::signature_tag(&signature)
        .filter(|tag| crate::receiver::verify_tag(&secret, &timestamp, id, body, tag))
    else {
        return Err(unauthorized(
            "bad_signature",
            "X-PNP-Signature is not v2= HMAC-SHA256 of \"{timestamp}.{referral id}.{body}\" under the destination's secret",
        ));
    };
    // Kept by the MAC's bytes, not by how the header spelled them (hex in either case).
    let mac = crate::hex::encode(&tag);
    match app.used_signatures.take(&mac, ts, now) {
        Ok(()) => Ok(Taken {
            used: app.used_signatures.clone(),
            signature: Some(mac),
        }),
        Err(Refused::Replayed) => Err((
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({
                "error": "this signed report was taken already: sign each report, a retry too, with its own X-PNP-Timestamp",
                "kind": "replayed_signature",
            })),
        )
            .into_response()),
        Err(Refused::Full) => Err(crate::server::layers::busy(
            "too many signed reports in the last minutes; try again",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_taken_once_while_fresh_and_given_back_when_not_kept() {
        let used = Arc::new(Used::default());
        let now = 1_767_225_600;
        assert!(used.take("v2=aa", now, now).is_ok());
        assert!(matches!(
            used.take("v2=aa", now, now + 1),
            Err(Refused::Replayed)
        ));
        // Once its timestamp is stale the check refuses it anyway; the set forgets it.
        assert!(used.take("v2=bb", now + 301, now + 301).is_ok());
        assert!(!used.by_signature.lock().unwrap().contains_key("v2=aa"));
        // A report that was not recorded gives its signature back; a kept one stays taken.
        let t = Taken {
            used: used.clone(),
            signature: Some("v2=cc".into()),
        };
        used.take("v2=cc", now + 301, now + 301).ok();
        drop(t);
        assert!(used.take("v2=cc", now + 301, now + 301).is_ok());
        let t = Taken {
            used: used.clone(),
            signature: Some("v2=cc".into()),
        };
        t.keep();
        assert!(matches!(
            used.take("v2=cc", now + 302, now + 302),
            Err(Refused::Replayed)
        ));
    }
}
