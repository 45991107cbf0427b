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
