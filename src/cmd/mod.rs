//! Command handlers that would crowd main.rs: the privacy engine's, the outbox's, the receiver.

pub mod demo;
pub mod imports;
pub mod outbox;
pub mod privacy;
pub mod receive;
pub mod run;

use anyhow::{Context, Result};
use pnp_gateway::config::Gateway;
use pnp_gateway::store::Store;
use std::path::Path;

/// Opens the store at `path` for a command that reads or writes staged incidents: when the
/// config delivers, incidents are sealed with the outbox key, which must then be there.
pub fn open_sealed(gw: &Gateway, path: &Path) -> Result<Store> {
    let mut store =
        Store::open(path).with_context(|| format!("opening the store {}", path.display()))?;
    if !gw.deliveries.is_empty() {
        let key = pnp_gateway::config::destination::load_key(
            "PNP_GATEWAY_OUTBOX_KEY",
            gw.outbox_key_file.as_deref(),
        )
        .map_err(anyhow::Error::msg)
        .context("staged incidents are sealed with the outbox key")?;
        store.seal_incidents_with(pnp_gateway::store::outbox::SealKey::from_secret(&key));
    }
    Ok(store)
}
