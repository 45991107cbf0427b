//! API tokens: random, shown once, stored only as their SHA-256.

use sha2::{Digest, Sha256};
use std::path::Path;

/// A new token (`pnp_` and 64 hex digits) and its SHA-256 in hex.
pub fn mint() -> std::io::Result<(String, String)> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = format!("pnp_{}", crate::hex::encode(&b));
    let hash = crate::hex::encode(&Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

/// Mints a token and writes its hash to `hash_file` (owner-only); returns the token.
pub fn mint_into(hash_file: &Path) -> std::io::Result<String> {
    let (token, hash) = mint()?;
    crate::owner_only::write(hash_file, format!("{hash}\n").as_bytes())?;
    Ok(token)
}
