//! Who is calling: a bearer token, compared by its SHA-256 with the `[[client]]`s' (tokens are
//! never stored), or with mutual TLS the common name of the client certificate the listener
//! verified against `[server] client_ca` (`cert_subject`); then a per-client rate limit (governor's keyed limiter). A request without
//! valid credentials is answered 401 before its body is read; a wrong scope is the handler's
//! 403. Neither stores anything.

use crate::config::server::{Client, Credential, Scope};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The authenticated caller, put into the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// 403 unless the caller holds `scope` (or, for anything but `admin`, `admin` does not
    /// stand in: scopes are exactly what the config grants).
    #[allow(clippy::result_large_err)]
    pub fn require(&self, scope: &Scope) -> Result<(), Response> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(error(
                StatusCode::FORBIDDEN,
                &format!("client `{}` lacks the scope `{scope}`", self.id),
            ))
        }
    }
}

pub struct Auth {
    /// (SHA-256 of the token, client); a client whose hash file is missing is left out.
    tokens: Vec<([u8; 32], Caller)>,
    /// (certificate subject common name, client), for mutual TLS.
    subjects: Vec<(String, Caller)>,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Auth {
    pub fn new(clients: &[Client], rate: u32, burst: u32) -> Auth {
        let mut tokens = Vec::new();
        let mut subjects = Vec::new();
        for c in clients {
            if let Credential::CertSubject(s) = &c.credential {
                subjects.push((
                    s.clone(),
                    Caller {
                        id: c.id.clone(),
                        scopes: c.scopes.clone(),
                    },
                ));
            }
            let hex = match &c.credential {
                Credential::TokenSha256(h) => Some(h.clone()),
                Credential::TokenSha256File(f) => match std::fs::read_to_string(f) {
                    Ok(t) if crate::config::server::is_sha256_hex(t.trim()) => {
                        Some(t.trim().to_lowercase())
                    }
                    _ => {
                        tracing::warn!(client = %c.id, file = %f.display(),
                            "no token hash in this file (`pnp-gateway keys token` writes it): the client cannot authenticate");
                        None
                    }
                },
                Credential::CertSubject(_) => None,
            };
            if let Some(bytes) = hex.as_deref().and_then(crate::hex::decode)
                && let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice())
            {
                tokens.push((
                    hash,
                    Caller {
                        id: c.id.clone(),
                        scopes: c.scopes.clone(),
                    },
                ));
            }
        }
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Auth {
            tokens,
            subjects,
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// The client whose token this is. Every client's hash is compared, in constant time each,
    /// so the time taken says nothing about which one matched.
    fn caller(&self, token: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (h, c) in &self.tokens {
            let diff = h.iter().zip(hash.iter()).fold(0u8, |d, (a, b)| d | (a ^ b));
            if diff == 0 {
                found = Some(c.clone());
            }
        }
        found
    }

    /// The client named by the common name of the certificate the TLS listener verified.
    fn by_certificate(&self, cert: &crate::server::PeerCertificate) -> Option<Caller> {
        let cn = crate::tls::common_name(&cert.0)?;
        self.subjects
            .iter()
            .find(|(s, _)| *s == cn)
            .map(|(_, c)| c.clone())
    }
}

/// A JSON error answer: `{"error": why}`.
pub fn error(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// The middleware: 401 without a known bearer token, 429 over the client's rate.
pub async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A bearer token when there is one; else the client certificate (mutual TLS).
    let caller = match token {
        Some(t) => auth.caller(t),
        None => req
            .extensions()
            .get::<crate::server::PeerCertificate>()
            .and_then(|c| auth.by_certificate(c)),
    };
    let Some(caller) = caller else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "no valid credentials (Authorization: Bearer <token>)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"pnp-gateway\""),
        );
        return r;
    };
    if auth.limiter.check_key(&caller.id).is_err() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "over this client's request rate; try again",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
