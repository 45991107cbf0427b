//! `receive`: the reference HTTPS receiver (src/receiver.rs) in the foreground.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use pnp_gateway::server::Limits;

/// The listener's bounds (src/server/); the defaults are `Limits::default()`'s.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds for a TLS handshake and for each request's head (also the longest wait between
    /// requests on a kept-alive connection).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a connection may send and receive nothing before it is closed; a request's whole
    /// body must arrive within it too.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// The largest request body taken (413 beyond).
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Request bodies held in memory at once, over all connections (503 and Retry-After beyond).
    #[arg(long, default_value_t = 64 << 20)]
    max_inflight_bytes: usize,
}

impl From<LimitArgs> for Limits {
    fn from(a: LimitArgs) -> Self {
        Limits {
            max_connections: a.max_connections,
            header_timeout: Duration::from_secs(a.header_timeout_secs),
            idle_timeout: Duration::from_secs(a.idle_timeout_secs),
            max_body: a.max_body_bytes,
            max_inflight: a.max_inflight_bytes,
        }
    }
}

pub fn receive(
    listen: SocketAddr,
    cert: Option<&Path>,
    key: Option<&Path>,
    tls_dir: &Path,
    secret_file: &Path,
    out: &Path,
    limits: Limits,
) -> Result<ExitCode> {
    if limits.max_connections == 0
        || limits.header_timeout.is_zero()
        || limits.idle_timeout.is_zero()
    {
        bail!("--max-connections, --header-timeout-secs and --idle-timeout-secs must be above 0");
    }
    if limits.max_inflight < limits.max_body {
        bail!("--max-inflight-bytes must be at least --max-body-bytes");
    }
    let secret = std::fs::read_to_string(secret_file)
        .with_context(|| format!("reading the shared secret {}", secret_file.display()))?;
    let secret = secret.trim().as_bytes().to_vec();
    if secret.len() < 32 {
        bail!(
            "the shared secret in {} is shorter than 32 bytes",
            secret_file.display()
        );
    }
    let (cert, key): (PathBuf, PathBuf) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
        (None, None) => {
            let certs = pnp_gateway::receiver::reuse_or_make_certs(tls_dir)?;
            eprintln!(
                "{} a private CA and a certificate for localhost in {}; the gateway's `ca_file` is {}",
                if certs.made { "made" } else { "reusing" },
                tls_dir.display(),
                certs.ca.display()
            );
            (certs.cert, certs.key)
        }
        _ => bail!("give both --cert and --key, or neither (a private CA is made)"),
    };
    let rx = pnp_gateway::receiver::start_with(listen, &cert, &key, secret, Some(out), limits)?;
    eprintln!(
        "receiving on https://{} into {} (Ctrl-C stops)",
        rx.addr,
        out.display()
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let c = rx.counts();
        tracing::info!(
            requests = c.requests,
            accepted = c.accepted,
            duplicates = c.duplicates,
            refused = c.refused,
            "receiver"
        );
    }
}
