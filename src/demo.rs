//! The embedded default: the demo config, adapters, mappings and sample exports are compiled into
//! the binary and written out to a folder, so `pnp-gateway demo` needs nothing but itself.

use std::io;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// A file that marks a folder as the demo's own, so that it may be emptied on the next run.
const MARKER: &str = ".pnp-gateway-demo";

/// The demo config's path inside the written-out tree.
pub const CONFIG: &str = "examples/demo/gateway.toml";

/// The line of the demo config that [`with_receiver`] replaces.
const RECEIVER_SLOT: &str = "# (demo: https receiver)";

/// Starts a local HTTPS receiver (a private CA and certificate made for it, a fresh signing
/// secret) and points the demo's `dhhr-research` destination at it. Payloads land in
/// `deliveries/dhhr-research/received.ndjson`.
pub fn with_receiver(config: &Path) -> io::Result<crate::receiver::Running> {
    let base = config.parent().unwrap_or(Path::new("."));
    let tls = base.join("state/tls");
    let (ca, cert, key) = crate::receiver::make_certs(&tls).map_err(io::Error::other)?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
    let secret = crate::hex::encode(&secret);
    let secret_file = base.join("state/dhhr-research.secret");
    crate::owner_only::write(&secret_file, secret.as_bytes())?;
    let out = base.join("deliveries/dhhr-research");
    crate::owner_only::create_dir_all(&out)?;
    let rx = crate::receiver::start(
        "127.0.0.1:0".parse().expect("a socket address"),
        &cert,
        &key,
        secret.into_bytes(),
        Some(&out.join("received.ndjson")),
    )
    .map_err(io::Error::other)?;
    let text = std::fs::read_to_string(config)?;
    let line = format!(
        "deliver = {{ kind = \"webhook\", url = \"https://localhost:{}/research\", secret_file = \"state/dhhr-research.secret\", ca_file = \"{}\", batch_max = 100 }}",
        rx.addr.port(),
        ca.strip_prefix(base).unwrap_or(&ca).display()
    );
    std::fs::write(config, text.replace(RECEIVER_SLOT, &line))?;
    Ok(rx)
}

/// Writes the embedded tree into `out` (emptied first if it is an earlier demo's folder).
pub fn write_tree(out: &Path) -> io::Result<PathBuf> {
    if out.exists() {
        let is_ours = out.join(MARKER).exists();
        let empty = std::fs::read_dir(out)?.next().is_none();
        if !is_ours && !empty {
            return Err(io::Error::other(format!(
                "{} exists and is not a pnp-gateway demo folder; choose another with --out",
                out.display()
            )));
        }
        if is_ours {
            std::fs::remove_dir_all(out)?;
        }
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join(MARKER),
        b"written by pnp-gateway demo; safe to delete\n",
    )?;
    for (rel, bytes) in embedded::FILES {
        let p = out.join(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&p, bytes)?;
    }
    Ok(out.join(CONFIG))
}

pub fn files() -> impl Iterator<Item = &'static str> {
    embedded::FILES.iter().map(|(p, _)| *p)
}
