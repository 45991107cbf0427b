//! `receive`: the reference HTTPS receiver (src/receiver.rs) in the foreground.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn receive(
    listen: SocketAddr,
    cert: Option<&Path>,
    key: Option<&Path>,
    tls_dir: &Path,
    secret_file: &Path,
    out: &Path,
) -> Result<ExitCode> {
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
            let (ca, c, k) = pnp_gateway::receiver::make_certs(tls_dir)?;
            eprintln!(
                "made a private CA and a certificate for localhost in {}; the gateway's `ca_file` is {}",
                tls_dir.display(),
                ca.display()
            );
            (c, k)
        }
        _ => bail!("give both --cert and --key, or neither (a private CA is made)"),
    };
    let rx = pnp_gateway::receiver::start(listen, &cert, &key, secret, Some(out))?;
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
