//! `[server]` and `[[client]]` in gateway.toml: where the service's HTTPS API listens, its
//! bounds, and who may call it with what scopes. Tokens are never in the config: only their
//! SHA-256 (`token_sha256`, or a file holding it, which `pnp-gateway keys token` writes).

use super::error::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// The API's address, e.g. `127.0.0.1:8443` or `0.0.0.0:8443`.
    pub listen: String,
    /// The server certificate chain and key (PEM). Required, except on a loopback address.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// CA certificates (PEM) client certificates are checked against: mutual TLS. Clients may
    /// then be named by `cert_subject` instead of a token.
    pub client_ca: Option<String>,
    /// A plain-HTTP listener serving only `GET /metrics` to a scraper, unauthenticated: bind it
    /// where only the scraper reaches. Without it, `/metrics` is on the API, for `admin`.
    pub metrics_listen: Option<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// The largest request body (413 beyond): 16 MiB by default.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Request bodies in memory at once over all connections: 64 MiB by default.
    #[serde(default = "default_max_inflight")]
    pub max_inflight_bytes: usize,
    /// Requests per second each client may make (429 beyond), and the burst it may save up.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    #[serde(default = "default_burst")]
    pub rate_burst: u32,
}

/// Connections are cheap to hold (a task, a descriptor) and a stranger's stalled ones are shed by
/// the header timeout: a cap well above the clients' needs keeps a burst of them from queueing
/// the real clients. Keep it under the process's descriptor limit (`ulimit -n`).
fn default_max_connections() -> usize {
    1024
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_body() -> usize {
    16 << 20
}
fn default_max_inflight() -> usize {
    64 << 20
}
fn default_rate() -> u32 {
    50
}
fn default_burst() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub id: String,
    /// `push:<pipeline>`, `prss`, `provider:<destination>`, `admin`.
    pub scopes: Vec<String>,
    /// Hex SHA-256 of the client's bearer token.
    pub token_sha256: Option<String>,
    /// A file holding that hex SHA-256 (what `pnp-gateway keys token CLIENT` writes).
    pub token_sha256_file: Option<String>,
    /// With `[server] client_ca`: the client certificate's subject common name.
    pub cert_subject: Option<String>,
}

/// What a client may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Push exports into this pipeline.
    Push(String),
    /// Post consents, revocations and engagements.
    Prss,
    /// Report on this destination's referrals (the closed loop).
    Provider(String),
    /// Metrics, readiness details, the status page.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s.split_once(':') {
            Some(("push", p)) if !p.is_empty() => Some(Scope::Push(p.to_string())),
            Some(("provider", d)) if !d.is_empty() => Some(Scope::Provider(d.to_string())),
            None if s == "prss" => Some(Scope::Prss),
            None if s == "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Push(p) => write!(f, "push:{p}"),
            Scope::Prss => write!(f, "prss"),
            Scope::Provider(d) => write!(f, "provider:{d}"),
            Scope::Admin => write!(f, "admin"),
        }
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The SHA-256 of its bearer token, inline or read from the file when the service starts.
    TokenSha256(String),
    TokenSha256File(PathBuf),
    CertSubject(String),
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub scopes: Vec<Scope>,
    pub credential: Credential,
}

/// The checked `[server]`, with paths resolved.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub client_ca: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub limits: crate::server::Limits,
    pub rate_per_second: u32,
    pub rate_burst: u32,
}

impl ServerSpec {
    pub fn validate(&self, file: &Path, base: &Path) -> Result<Server, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let err = |field: &str, m: &str| ConfigError::new(file, m).field(format!("server.{field}"));
        let addr = |field: &str, s: &str, errors: &mut Vec<ConfigError>| {
            s.parse::<SocketAddr>()
                .map_err(|_| errors.push(err(field, "is not an address such as 127.0.0.1:8443")))
                .ok()
        };
        let listen = addr("listen", &self.listen, &mut errors);
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .and_then(|m| addr("metrics_listen", m, &mut errors));
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
            (None, None) => None,
            _ => {
                errors.push(err("tls_cert", "`tls_cert` and `tls_key` go together"));
                None
            }
        };
        if tls.is_none() && listen.is_some_and(|l| !l.ip().is_loopback()) {
            errors.push(err(
                "tls_cert",
                "the API carries identifying values: it needs `tls_cert` and `tls_key` unless it listens on a loopback address",
            ));
        }
        if self.client_ca.is_some() && tls.is_none() {
            errors.push(err(
                "client_ca",
                "mutual TLS needs `tls_cert` and `tls_key`",
            ));
        }
        if self.max_connections == 0
            || self.header_timeout_secs == 0
            || self.idle_timeout_secs == 0
            || self.max_body_bytes == 0
            || self.rate_per_second == 0
        {
            errors.push(err(
                "max_connections",
                "max_connections, header_timeout_secs, idle_timeout_secs, max_body_bytes and rate_per_second must be above 0",
            ));
        }
        if self.max_inflight_bytes < self.max_body_bytes {
            errors.push(err(
                "max_inflight_bytes",
                "must be at least `max_body_bytes`",
            ));
        }
        match (listen, errors.is_empty()) {
            (Some(listen), true) => Ok(Server {
                listen,
                tls,
                client_ca: self.client_ca.as_ref().map(|c| base.join(c)),
                metrics_listen,
                limits: crate::server::Limits {
                    max_connections: self.max_connections,
                    header_timeout: Duration::from_secs(self.header_timeout_secs),
                    idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                    max_body: self.max_body_bytes,
                    max_inflight: self.max_inflight_bytes,
                },
                rate_per_second: self.rate_per_second,
                rate_burst: self.rate_burst.max(1),
            }),
            _ => Err(errors),
        }
    }
}

impl ClientSpec {
    /// Checks one client against the pipelines' and destinations' ids.
    pub fn validate(
        &self,
        file: &Path,
        base: &Path,
        pipelines: &[&str],
        destinations: &[&str],
    ) -> Result<Client, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let err = |field: &str, m: String| {
            ConfigError::new(file, m).field(format!("client `{}`: {field}", self.id))
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(err("id", "must be letters, digits, - and _".into()));
        }
        let mut scopes = Vec::new();
        for s in &self.scopes {
            match Scope::parse(s) {
                Some(Scope::Push(p)) if !pipelines.contains(&p.as_str()) => errors.push(err(
                    "scopes",
                    format!(
                        "`push:{p}` names no pipeline id (ids: {})",
                        pipelines.join(", ")
                    ),
                )),
                Some(Scope::Provider(d)) if !destinations.contains(&d.as_str()) => errors.push(
                    err("scopes", format!("`provider:{d}` names no destination id")),
                ),
                Some(scope) => scopes.push(scope),
                None => errors.push(err(
                    "scopes",
                    format!(
                        "`{s}` is none of push:<pipeline>, prss, provider:<destination>, admin"
                    ),
                )),
            }
        }
        let credential = match (
            &self.token_sha256,
            &self.token_sha256_file,
            &self.cert_subject,
        ) {
            (Some(h), None, None) if is_sha256_hex(h) => {
                Some(Credential::TokenSha256(h.to_lowercase()))
            }
            (Some(_), None, None) => {
                errors.push(err("token_sha256", "is not 64 hex digits".into()));
                None
            }
            (None, Some(f), None) => Some(Credential::TokenSha256File(base.join(f))),
            (None, None, Some(s)) if !s.is_empty() => Some(Credential::CertSubject(s.clone())),
            _ => {
                errors.push(err(
                    "token_sha256",
                    "give exactly one of `token_sha256`, `token_sha256_file` and `cert_subject`"
                        .into(),
                ));
                None
            }
        };
        match credential {
            Some(credential) if errors.is_empty() => Ok(Client {
                id: self.id.clone(),
                scopes,
                credential,
            }),
            _ => Err(errors),
        }
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}
