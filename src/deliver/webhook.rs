//! The `webhook` destination: an HTTPS POST of the JSON payload, one request per referral, with
//! `Idempotency-Key` and a timestamped HMAC-SHA256 signature over the key and the body (how a
//! receiver checks it: docs/delivery.md). TLS by rustls; a private CA and a client certificate are optional.
//! Outcomes: 2xx done; 408, 429, 5xx and network errors retried; any other 4xx dead-lettered.

use super::SendError;
use crate::store::outbox::Row;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

pub struct Webhook {
    client: reqwest::blocking::Client,
    url: String,
    secret: Vec<u8>,
}

/// The signature scheme's version, the prefix of `X-PNP-Signature`.
///
/// `v1` signed `"{timestamp}.{body}"` only: a request captured within the freshness window could
/// be replayed under a new `Idempotency-Key` and a receiver took it twice. `v2` signs the key
/// too. Only `v2` is sent, so that a receiver has no weaker signature to be downgraded to.
pub const SCHEME: &str = "v2";

/// `v2=` and the hex HMAC-SHA256 of `"{timestamp}.{idempotency_key}.{body}"` under the shared
/// secret (`timestamp` in Unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, idempotency_key: &str, body: &[u8]) -> String {
    let hex = crate::hex::encode(
        &signing_mac(secret, &timestamp.to_string(), idempotency_key, body)
            .finalize()
            .into_bytes(),
    );
    format!("{SCHEME}={hex}")
}

/// HMAC-SHA256 under the shared secret over `"{timestamp}.{idempotency_key}.{body}"`: what the
/// sender signs and a receiver (src/receiver.rs) verifies. A key never holds a `.` (see
/// [`key_is_valid`]), so the string splits one way only.
pub fn signing_mac(
    secret: &[u8],
    timestamp: &str,
    idempotency_key: &str,
    body: &[u8],
) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(idempotency_key.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// What an `Idempotency-Key` is made of: 1 to 200 ASCII letters, digits, `-` and `_` (the
/// outbox's keys are hex, a batch's `batch-` and hex).
pub fn key_is_valid(key: &str) -> bool {
    (1..=200).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A destination's shared signing secret: the environment variable `secret_env` first, then
/// `secret_file`, trimmed. Also what a provider's signed status report is checked against
/// (service::signed).
pub fn secret(http: &crate::config::gateway::HttpDelivery) -> Result<Vec<u8>, String> {
    let secret = match (
        http.secret_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok()),
        &http.secret_file,
    ) {
        (Some(s), _) => s.trim().as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| s.trim().as_bytes().to_vec())
            .map_err(|e| {
                format!(
                    "cannot read the webhook secret {}: {}",
                    f.display(),
                    e.kind()
                )
            })?,
        (None, None) => return Err("no webhook secret".to_string()),
    };
    Ok(secret)
}

impl Webhook {
    /// The client for a configured destination: its secret (environment first, then the file),
    /// CA and client identity.
    pub fn from_delivery(http: &crate::config::gateway::HttpDelivery) -> Result<Webhook, String> {
        Webhook::new(
            &http.url,
            secret(http)?,
            http.ca_file.as_deref(),
            http.identity_file.as_deref(),
            Duration::from_millis(http.timeout_ms),
        )
    }

    pub fn new(
        url: &str,
        secret: Vec<u8>,
        ca_file: Option<&Path>,
        identity_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Webhook, String> {
        Ok(Webhook {
            client: client(ca_file, identity_file, timeout)?,
            url: url.to_string(),
            secret,
        })
    }

    /// Several referrals in one request: a JSON array of `{"idempotency_key", "payload"}`. The
    /// request's `Idempotency-Key` is derived from the members' keys (stable across retries of
    /// the same batch); each member keeps its own key, so a receiver deduplicates per referral
    /// even when a retry regroups them.
    pub fn send_batch(&self, chunk: &[(Row, Value)]) -> Result<(), SendError> {
        // Borrowed, not copied into new JSON objects (`json!` cloned each payload); the fields
        // in the order of the sorted keys the objects had.
        #[derive(serde::Serialize)]
        struct Item<'a> {
            idempotency_key: &'a str,
            payload: &'a Value,
        }
        let items: Vec<Item<'_>> = chunk
            .iter()
            .map(|(row, payload)| Item {
                idempotency_key: &row.idempotency_key,
                payload,
            })
            .collect();
        let body = serde_json::to_vec(&items).unwrap_or_default();
        let mut h = Sha256::new();
        for (row, _) in chunk {
            h.update(row.idempotency_key.as_bytes());
            h.update(b"\n");
        }
        let key = crate::hex::encode(&h.finalize()[..16]);
        self.send(&format!("batch-{key}"), &body, "application/json")
    }

    pub fn send(
        &self,
        idempotency_key: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(), SendError> {
        let ts = chrono::Utc::now().timestamp();
        let res = self
            .client
            .post(&self.url)
            .header("Content-Type", content_type)
            .header("Idempotency-Key", idempotency_key)
            .header("X-PNP-Timestamp", ts.to_string())
            .header(
                "X-PNP-Signature",
                signature(&self.secret, ts, idempotency_key, body),
            )
            .body(body.to_vec())
            .send();
        match res {
            Err(e) => Err(SendError {
                // Sent, perhaps, unless the connection or its TLS handshake failed.
                may_have_arrived: !e.is_connect() && crate::tls::failure(&e).is_none(),
                retryable: true,
                message: format!(
                    "request failed: {}",
                    if let Some(tls) = crate::tls::failure(&e) {
                        tls
                    } else if e.is_timeout() {
                        "timeout".to_string()
                    } else if e.is_connect() {
                        "cannot connect".to_string()
                    } else {
                        "network error".to_string()
                    }
                ),
                retry_after: None,
            }),
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_secs(v, chrono::Utc::now()));
                match status {
                    200..=299 => Ok(()),
                    408 | 429 | 500..=599 => Err(SendError {
                        retryable: true,
                        message: format!("HTTP {status}"),
                        retry_after,
                        // A 5xx may come after the receiver kept the request; 408 and 429
                        // say it was not taken.
                        may_have_arrived: status >= 500,
                    }),
                    _ => Err(SendError {
                        retryable: false,
                        message: format!("HTTP {status}: refused by the receiver"),
                        retry_after: None,
                        may_have_arrived: false,
                    }),
                }
            }
        }
    }
}

/// The blocking HTTPS client of the gateway's outgoing requests (webhook and FHIR deliveries,
/// the FHIR Task poll): rustls, `timeout` per request, a private CA and a client certificate
/// (a PEM certificate and key) when given.
pub fn client(
    ca_file: Option<&Path>,
    identity_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::blocking::Client, String> {
    // No redirect is followed: a 307 would send the signed body (person data, for a referral)
    // to whatever host it names, and a 303 turn the POST into a GET whose 2xx would count as
    // delivered. A 3xx is the receiver's refusal, dead-lettered with its status.
    // The connection (TCP and TLS) has its own timeout, under the request's: a connection that
    // never completes is then "cannot connect" (the payload never left), not a timeout after
    // sending that may have left it with the receiver (`SendError::may_have_arrived`).
    let mut b = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout * 9 / 10)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?;
        for c in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA file {}: {e}", ca.display()))?
        {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(id) = identity_file {
        let pem = std::fs::read(id)
            .map_err(|e| format!("cannot read the client identity {}: {e}", id.display()))?;
        b = b.identity(
            reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("the client identity {}: {e}", id.display()))?,
        );
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))
}

/// `Retry-After` (RFC 9110 10.2.3): delta-seconds, or an HTTP-date, as seconds from `now`.
pub fn retry_after_secs(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A listener on loopback whose connections `serve` handles, one thread each.
    fn listener(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let serve = std::sync::Arc::new(serve);
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let serve = serve.clone();
                std::thread::spawn(move || serve(c));
            }
        });
        addr
    }

    fn hook(url: &str) -> Webhook {
        Webhook::new(url, b"s".to_vec(), None, None, Duration::from_millis(800)).unwrap()
    }

    /// Reads a request's head (and whatever body came with it).
    fn read_request(c: &mut std::net::TcpStream) {
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
    }

    /// Whether the payload may have reached the receiver, by how the attempt failed: a
    /// connection or TLS handshake that never completes, or a refused connection, never sent
    /// it; a request read and left unanswered may have; a 5xx may have; a 4xx did not.
    #[test]
    fn what_a_failed_request_says_of_where_the_payload_is() {
        // Accepts, never speaks TLS: the connection never completes.
        let silent = listener(|c| {
            std::thread::sleep(Duration::from_secs(3));
            drop(c)
        });
        let e = hook(&format!("https://{silent}/hook"))
            .send("k1", b"{}", "application/json")
            .unwrap_err();
        assert!(!e.may_have_arrived, "{e:?}");
        // Nobody there.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = hook(&format!("http://{closed}/hook"))
            .send("k1", b"{}", "application/json")
            .unwrap_err();
        assert!(!e.may_have_arrived, "{e:?}");
        // Reads the request, then closes without an answer.
        let reads = listener(|mut c| {
            read_request(&mut c);
            drop(c)
        });
        let e = hook(&format!("http://{reads}/hook"))
            .send("k1", b"{}", "application/json")
            .unwrap_err();
        assert!(e.may_have_arrived, "{e:?}");
        let answers = |status: &'static str| {
            move |mut c: std::net::TcpStream| {
                read_request(&mut c);
                let _ = write!(c, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            }
        };
        let five = listener(answers("500 Internal Server Error"));
        let e = hook(&format!("http://{five}/hook"))
            .send("k1", b"{}", "application/json")
            .unwrap_err();
        assert!(e.may_have_arrived && e.retryable, "{e:?}");
        let four = listener(answers("400 Bad Request"));
        let e = hook(&format!("http://{four}/hook"))
            .send("k1", b"{}", "application/json")
            .unwrap_err();
        assert!(!e.may_have_arrived && !e.retryable, "{e:?}");
    }

    /// A redirect is not followed: the signed body goes nowhere else, and the 3xx is a refusal.
    #[test]
    fn a_redirect_is_refused_not_followed() {
        static ELSEWHERE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let elsewhere = listener(|mut c| {
            ELSEWHERE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            read_request(&mut c);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        });
        let location = format!("http://{elsewhere}/stolen");
        let addr = listener(move |mut c| {
            read_request(&mut c);
            let _ = write!(
                c,
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
            );
        });
        let e = hook(&format!("http://{addr}/hook"))
            .send("k1", b"{\"person\":\"x\"}", "application/json")
            .unwrap_err();
        assert!(!e.retryable && e.message.contains("307"), "{e:?}");
        assert_eq!(ELSEWHERE.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn the_key_is_signed() {
        let s = signature(b"secret", 1_700_000_000, "k1", b"{}");
        assert!(s.starts_with("v2="));
        assert_ne!(s, signature(b"secret", 1_700_000_000, "k2", b"{}"));
        assert!(key_is_valid("batch-0123abcd") && key_is_valid("a_B-9"));
        assert!(!key_is_valid("") && !key_is_valid("a.b") && !key_is_valid("a b"));
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after_secs("120", now), Some(120));
        assert_eq!(
            retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(60)
        );
        assert_eq!(retry_after_secs("soon", now), None);
        assert_eq!(
            retry_after_secs("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
    }
}
