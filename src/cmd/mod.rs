//! Command handlers that would crowd main.rs: the privacy engine's, the outbox's, the receiver.

pub mod demo;
pub mod imports;
pub mod inspect;
pub mod outbox;
pub mod privacy;
pub mod progress;
pub mod receive;
pub mod referrals;
pub mod report;
pub mod run;
pub mod scrub;
pub mod serve;

use anyhow::{Context, Result};
use pnp_gateway::config::Gateway;
use pnp_gateway::mapping::unmapped::GapKey;
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
    if let Some(key) = vault_gap_key(gw) {
        store.describe_gaps_with(key);
    }
    Ok(store)
}

/// The key unmapped values are described under when the gateway's vault secret can be read
/// (see [`GapKey`]); `None`: the store's salt is used.
pub fn vault_gap_key(gw: &Gateway) -> Option<GapKey> {
    pnp_gateway::config::destination::load_key(
        "PNP_GATEWAY_VAULT_KEY",
        gw.vault_key_file.as_deref(),
    )
    .ok()
    .map(|s| GapKey::from_vault_secret(&s))
}

/// The key `normalize` describes unmapped values under: the vault's, else the salt of the
/// config's store when there is one, else a key of this run only.
pub fn normalize_gap_key(gw: Option<&Gateway>) -> Result<GapKey> {
    let Some(gw) = gw else {
        return Ok(GapKey::ephemeral());
    };
    if let Some(k) = vault_gap_key(gw) {
        return Ok(k);
    }
    if gw.store_path.exists() {
        let store = Store::open(&gw.store_path)
            .with_context(|| format!("opening the store {}", gw.store_path.display()))?;
        return Ok(store.gap_key()?);
    }
    Ok(GapKey::ephemeral())
}
