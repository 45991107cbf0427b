//! How a value that has no table entry is shown: in the run summary, `normalize`'s summary,
//! `check`'s "mapping gaps seen", the `mapping_gaps` table and the reason of a
//! `missing = "reject"` table.
//!
//! An agency's export puts whatever a dispatcher typed into its code columns: a name, an SSN or a
//! phone number lands in the call-type column as easily as `OD`. Operators need the codes to fix
//! their tables, but no identifying value may reach a message or a plaintext table. So a value
//! is shown as it is only when it has the shape of a code (see [`is_code_shaped`]); any other
//! value is shown as its length and a keyed hash (`<17 chars, #a1b2c3d4>`), so that it can still
//! be counted, and found again by whoever holds the key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

pub use crate::model::shape::{MAX_CODE_CHARS, is_code_shaped};

/// The key of the hash that stands for a value that is not code-shaped.
///
/// Which key: the vault key when the gateway has one ([`GapKey::from_vault_secret`]), so that
/// whoever reads the store alone cannot test guesses (an SSN has only 10^9 values). A gateway
/// that only ingests has no keys; it uses a random salt kept in the store's `meta` table
/// ([`GapKey::from_salt`]), which keeps values out of sight and countable but lets whoever holds
/// the store file test guesses: such a store holds its staged incidents unsealed anyway.
/// `normalize` without a store uses a key of its own run ([`GapKey::ephemeral`]): its hashes
/// can be compared within one run only.
#[derive(Clone)]
pub struct GapKey([u8; 32]);

impl GapKey {
    fn derive(label: &[u8], secret: &[u8]) -> GapKey {
        let mut h = Sha256::new();
        h.update(label);
        h.update(secret);
        GapKey(h.finalize().into())
    }

    /// Derived from the vault secret (never the secret itself: a hash published under it tells
    /// nothing of the vault's own derivations).
    pub fn from_vault_secret(secret: &[u8]) -> GapKey {
        GapKey::derive(b"pnp-gateway unmapped values v1\n", secret)
    }

    /// Derived from a store's random salt.
    pub fn from_salt(salt: &[u8]) -> GapKey {
        GapKey::derive(b"pnp-gateway unmapped values, store salt v1\n", salt)
    }

    /// A random key for one run.
    pub fn ephemeral() -> GapKey {
        let mut k = [0u8; 32];
        // Without randomness the hashes would be guessable; a fixed key would be worse than
        // none, so the process stops.
        getrandom::fill(&mut k).expect("the operating system's randomness");
        GapKey(k)
    }

    fn tag(&self, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        crate::hex::encode(&mac.finalize().into_bytes()[..4])
    }
}

impl std::fmt::Debug for GapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GapKey(<redacted>)")
    }
}

/// The form an unmapped value is kept and shown in: the value itself when it is code-shaped,
/// else `<N chars, #xxxxxxxx>` (its length in characters and the first 32 bits of an HMAC-SHA256
/// under `key`).
pub fn describe_unmapped(value: &str, key: &GapKey) -> String {
    if is_code_shaped(value) {
        value.to_owned()
    } else {
        format!("<{} chars, #{}>", value.chars().count(), key.tag(value))
    }
}

/// An unmapped value's description as text output shows it: a code in backticks, a length and
/// hash as they are (they hold whitespace, so they are never code-shaped themselves).
pub fn shown(described: &str) -> Cow<'_, str> {
    if is_code_shaped(described) {
        Cow::Owned(format!("`{described}`"))
    } else {
        Cow::Borrowed(described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Which values are codes: `crate::model::shape`'s tests, the one rule for both.

    #[test]
    fn a_value_is_described_by_length_and_keyed_hash() {
        let k = GapKey::from_salt(b"salt");
        let d = describe_unmapped("ZEBEDIAH QUANTRELL", &k);
        assert!(d.starts_with("<18 chars, #") && d.len() == "<18 chars, #12345678>".len());
        assert_eq!(d, describe_unmapped("ZEBEDIAH QUANTRELL", &k), "countable");
        assert_ne!(
            d,
            describe_unmapped("ZEBEDIAH QUANTRELL", &GapKey::from_salt(b"other"))
        );
        assert_eq!(describe_unmapped("XQ9", &k), "XQ9");
        assert_eq!(shown("XQ9"), "`XQ9`");
        assert_eq!(shown(&d), d);
    }
}
