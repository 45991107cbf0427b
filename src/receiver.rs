//! `pnp-gateway receive`: a reference HTTPS receiver for the `webhook` destination, the way
//! docs/delivery.md tells a provider to build one. It checks each request's timestamped
//! HMAC-SHA256 signature over its idempotency key and body (`v2`; `v1`, which did not cover the
//! key, is refused), drops a payload whose idempotency key it has already taken (answering
//! 200, so the sender stops), and appends what it accepts to an NDJSON file. The demo starts one
//! for its HTTPS destination; the delivery benchmark measures the gateway against it. It is a
//! test peer and a template, not a provider's intake system: it keeps the keys it has seen in
//! memory only.

mod identity;

pub use identity::{Certs, make_certs, reuse_or_make_certs};

use crate::server::Limits;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::Mac;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What a receiver has taken so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub refused: u64,
}

struct State {
    secret: Vec<u8>,
    seen: HashSet<String>,
    counts: Counts,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

/// A receiver running on its own thread until the process ends.
pub struct Running {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Running {
    pub fn counts(&self) -> Counts {
        self.state
            .lock()
            .map(|s| s.counts.clone())
            .unwrap_or_default()
    }
}

/// Binds `listen` and serves on a new thread under the default [`Limits`]. `out`, when given,
/// gets one JSON line per accepted payload: `{"idempotency_key", "received_at", "path",
/// "payload"}`.
pub fn start(
    listen: SocketAddr,
    cert: &Path,
    key: &Path,
    secret: Vec<u8>,
    out: Option<&Path>,
) -> Result<Running, ReceiverError> {
    start_with(listen, cert, key, secret, out, Limits::default())
}

/// [`start`] under the given limits.
pub fn start_with(
    listen: SocketAddr,
    cert: &Path,
    key: &Path,
    secret: Vec<u8>,
    out: Option<&Path>,
    limits: Limits,
) -> Result<Running, ReceiverError> {
    let tls = tls_config(cert, key)?;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| ReceiverError::Io(format!("cannot listen on {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ReceiverError::Io(listen.to_string(), e))?;
    let out = match out {
        Some(p) => Some(std::io::BufWriter::new(
            crate::owner_only::append(p)
                .map_err(|e| ReceiverError::Io(p.display().to_string(), e))?,
        )),
        None => None,
    };
    let state = Arc::new(Mutex::new(State {
        secret,
        seen: HashSet::new(),
        counts: Counts::default(),
        out,
    }));
    let shared = state.clone();
    let router = axum::Router::new().fallback(handle).with_state(shared);
    let router = crate::server::layers::bounded(router, &limits);
    crate::server::spawn(listener, "pnp-receiver", Some(tls), limits, router)
        .map_err(|e| ReceiverError::Io("cannot start the receiver".into(), e))?;
    Ok(Running { addr, state })
}

fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ReceiverError> {
    crate::tls::server_config(cert, key, None).map_err(ReceiverError::Tls)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Checks `v2=hex(HMAC-SHA256(secret, "{timestamp}.{idempotency_key}.{body}"))` in constant
/// time. Any other scheme is refused: `v1` did not cover the key, so accepting it would let a
/// captured request be replayed under a new key.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    idempotency_key: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    signature_tag(signature)
        .is_some_and(|tag| verify_tag(secret, timestamp, idempotency_key, body, &tag))
}

/// The MAC an `X-PNP-Signature` header carries: the bytes of its `v2=` hex, `None` for any
/// other scheme or for what is not hex.
pub fn signature_tag(signature: &str) -> Option<Vec<u8>> {
    signature
        .strip_prefix(crate::deliver::webhook::SCHEME)
        .and_then(|s| s.strip_prefix('='))
        .and_then(crate::hex::decode)
}

/// [`verify`] for a MAC already read from its header ([`signature_tag`]).
pub fn verify_tag(
    secret: &[u8],
    timestamp: &str,
    idempotency_key: &str,
    body: &[u8],
    tag: &[u8],
) -> bool {
    crate::deliver::webhook::signing_mac(secret, timestamp, idempotency_key, body)
        .verify_slice(tag)
        .is_ok()
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    req: Request,
) -> Response {
    let refuse = |status: StatusCode, why: &str| {
        if let Ok(mut s) = state.lock() {
            s.counts.requests += 1;
            s.counts.refused += 1;
        }
        answer(status, json!({ "error": why }))
    };
    if req.method() != axum::http::Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (timestamp, signature, key) = (
        header("x-pnp-timestamp"),
        header("x-pnp-signature"),
        header("idempotency-key"),
    );
    let path = parts.uri.path().to_string();
    // What can be checked without the body is checked first, so that a request that cannot be
    // taken does not get its body read into memory.
    if !crate::deliver::webhook::key_is_valid(&key) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no Idempotency-Key, or not of letters, digits, - and _",
        );
    }
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= MAX_SKEW_SECS);
    let stale = "bad or stale signature (X-PNP-Timestamp, X-PNP-Signature)";
    if !fresh {
        return refuse(StatusCode::UNAUTHORIZED, stale);
    }
    // The listener's layers bound the body (413 over the limit, 408 when it comes too slowly).
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let (status, why) = crate::server::layers::body_refusal(&e);
            return refuse(status, why);
        }
    };
    let body = &body;
    let secret = match state.lock() {
        Ok(s) => s.secret.clone(),
        Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "receiver state"),
    };
    if !verify(&secret, &timestamp, &key, body, &signature) {
        return refuse(StatusCode::UNAUTHORIZED, stale);
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return refuse(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    // A batch is an array of {"idempotency_key", "payload"}; otherwise the body is one payload
    // under the request's key.
    let items: Vec<(String, Value)> = match value {
        Value::Array(members) => {
            let mut items = Vec::with_capacity(members.len());
            for mut m in members {
                let Some(k) = m["idempotency_key"].as_str().map(str::to_string) else {
                    return refuse(StatusCode::BAD_REQUEST, "a batch member has no key");
                };
                items.push((k, m["payload"].take()));
            }
            items
        }
        v => vec![(key, v)],
    };
    let Ok(mut s) = state.lock() else {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    };
    s.counts.requests += 1;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let mut failed = false;
    for (k, payload) in items {
        if s.seen.contains(&k) {
            duplicates += 1;
            continue;
        }
        if let Some(out) = s.out.as_mut() {
            let line =
                json!({"idempotency_key": k, "received_at": at, "path": path, "payload": payload});
            failed |= writeln!(out, "{line}").is_err();
        }
        s.seen.insert(k);
        accepted += 1;
    }
    if let Some(out) = s.out.as_mut() {
        failed |= out.flush().is_err();
    }
    if failed {
        // Not stored: the sender must try again.
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "cannot store"}),
        );
    }
    s.counts.accepted += accepted;
    s.counts.duplicates += duplicates;
    answer(
        StatusCode::OK,
        json!({"accepted": accepted, "duplicates": duplicates}),
    )
}
