//! The key that unmapped values are described under, and the store's own salt for it.
//!
//! The `mapping_gaps` table keeps each unmapped value as [`describe_unmapped`] gives it: a
//! code-shaped value as it is, any other as its length and a keyed hash. The quarantine keeps
//! where a rejected record is (file, line, record, byte) and why (kind, field, a reason that
//! names the field and the expected form): none of the record's content, so there is nothing of
//! it to seal.

use super::{Result, Store, StoreError, now};
use crate::mapping::unmapped::{GapKey, describe_unmapped, is_code_shaped};
use rusqlite::{OptionalExtension, params};

/// The `meta` row holding the store's random salt.
const SALT: &str = "unmapped_salt";
/// The `meta` row saying that gaps kept by older versions have been described.
const DESCRIBED: &str = "gaps_described";

impl Store {
    /// From now on unmapped values are described under `key` (derived from the vault secret:
    /// see [`GapKey`]) instead of the store's salt.
    pub fn describe_gaps_with(&mut self, key: GapKey) {
        self.gap_key = Some(key);
    }

    /// The key unmapped values are described under: the one given to
    /// [`Store::describe_gaps_with`], else one derived from this store's random salt.
    pub fn gap_key(&self) -> Result<GapKey> {
        match &self.gap_key {
            Some(k) => Ok(k.clone()),
            None => Ok(GapKey::from_salt(&self.salt()?)),
        }
    }

    /// The store's salt, made at first use.
    fn salt(&self) -> Result<Vec<u8>> {
        let get = || {
            self.conn
                .query_row("SELECT value FROM meta WHERE name = ?1", [SALT], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()
        };
        if let Some(s) = get()? {
            return Ok(s);
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt)
            .map_err(|e| StoreError::Invalid(format!("no randomness: {e}")))?;
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES (?1, ?2)",
            params![SALT, &salt[..]],
        )?;
        // Another process may have made it first.
        get()?.ok_or_else(|| StoreError::Invalid("the store's salt is missing".into()))
    }

    /// Older versions kept unmapped values verbatim: each one that is not code-shaped is
    /// replaced by its description under the store's salt (once; a vault-keyed gateway then
    /// lists such a value under two hashes, the old and the new).
    pub(super) fn describe_legacy_gaps(&mut self) -> Result<()> {
        let done: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM meta WHERE name = ?1", [DESCRIBED], |r| {
                r.get(0)
            })
            .optional()?;
        if done.is_some() {
            return Ok(());
        }
        let key = GapKey::from_salt(&self.salt()?);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have done it meanwhile.
        let done: Option<i64> = tx
            .query_row("SELECT 1 FROM meta WHERE name = ?1", [DESCRIBED], |r| {
                r.get(0)
            })
            .optional()?;
        if done.is_some() {
            return Ok(());
        }
        let rows: Vec<(String, String, String, i64, String, String)> = tx
            .prepare(
                "SELECT adapter, code_table, code, count, first_seen, last_seen FROM mapping_gaps",
            )?
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (adapter, table, code, count, first, last) in rows {
            if is_code_shaped(&code) {
                continue;
            }
            tx.execute(
                "DELETE FROM mapping_gaps WHERE adapter = ?1 AND code_table = ?2 AND code = ?3",
                params![adapter, table, code],
            )?;
            tx.execute(
                "INSERT INTO mapping_gaps (adapter, code_table, code, count, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (adapter, code_table, code) DO UPDATE SET count = count + ?4,
                   first_seen = min(first_seen, ?5), last_seen = max(last_seen, ?6)",
                params![
                    adapter,
                    table,
                    describe_unmapped(&code, &key),
                    count,
                    first,
                    last
                ],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES (?1, ?2)",
            params![DESCRIBED, now()],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_gaps_are_described_once_and_the_salt_stays() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("g.db");
        let store = Store::open(&path).unwrap();
        let k1 = store.gap_key().unwrap();
        // As an older version would have written them.
        for code in ["OD", "ZEBEDIAH QUANTRELL"] {
            store
                .conn
                .execute(
                    "INSERT INTO mapping_gaps VALUES ('a', 't', ?1, 2, 'x', 'y')",
                    [code],
                )
                .unwrap();
        }
        store
            .conn
            .execute("DELETE FROM meta WHERE name = ?1", [DESCRIBED])
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let codes: Vec<String> = store
            .mapping_gaps()
            .unwrap()
            .into_iter()
            .map(|g| g.2)
            .collect();
        assert!(codes.contains(&"OD".to_string()), "{codes:?}");
        let name = describe_unmapped("ZEBEDIAH QUANTRELL", &k1);
        assert!(codes.contains(&name), "{codes:?}");
        assert!(!codes.iter().any(|c| c.contains("ZEBEDIAH")));
        let k2 = store.gap_key().unwrap();
        assert_eq!(describe_unmapped("A B", &k1), describe_unmapped("A B", &k2));
    }
}
