//! The pseudonym vault: a person gets a random id (never a hash of their data: 45 CFR
//! 164.514(c)); the same person across incidents, matched locally on normalized name + date of
//! birth or on SSN, gets the same id, so DHHR can count people, not incidents. The matching
//! keys are HMACs under a key kept outside the store and never leave it.
//!
//! The id itself never leaves the gateway either: each recipient gets a token derived from it
//! for its own scope (its link group, or the destination alone), so that two recipients cannot
//! join their rows on a shared token; see [`scoped`].

use super::{Result, Store, now};
use crate::model::{IdentifierKind, Person};
use crate::policy::profile::Pseudonym;
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{OptionalExtension, params};
use sha2::Sha256;

fn hmac_hex(key: &[u8], data: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    crate::hex::encode(&m.finalize().into_bytes())
}

/// 16 random bytes as hex, and a date shift in -180..=180 days.
pub(crate) fn random_token(prefix: &str) -> Result<(String, i64)> {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b)
        .map_err(|e| super::StoreError::Invalid(format!("no randomness: {e}")))?;
    let token = format!("{prefix}{}", crate::hex::encode(&b[..16]));
    let shift = (u16::from_le_bytes([b[16], b[17]]) % 361) as i64 - 180;
    Ok((token, shift))
}

/// A new vault id for the table's `next` row: `prefix`, the row number as 12 hex digits, then
/// 10 random bytes as hex (34 characters, as a fully random id was), and a random date shift.
/// Still random and never derived from the person's data, and never sent (recipients get
/// [`scoped`] tokens); the row number in front makes each new id sort after the ones before
/// it, so that the indexes keyed by vault ids (the vault's own, the report's facts, the audit
/// trail's person index) grow at their right edge instead of taking a random leaf per insert:
/// at a backfill's scale those leaves no longer fit in the page cache, and every commit wrote
/// each of them to the WAL again (scripts/bench-e2e.sh).
fn sequenced_token(prefix: &str, next: i64) -> Result<(String, i64)> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b)
        .map_err(|e| super::StoreError::Invalid(format!("no randomness: {e}")))?;
    let token = format!(
        "{prefix}{:012x}{}",
        next.max(0) as u64 & 0xffff_ffff_ffff,
        crate::hex::encode(&b[..10])
    );
    let shift = (u16::from_le_bytes([b[10], b[11]]) % 361) as i64 - 180;
    Ok((token, shift))
}

/// The pseudonym a scope sees for a vault id (`master`, person or incident): the token
/// `P-`/`I-` and 32 hex digits, and a date shift in -180..=180 days, both from
/// HMAC-SHA256(vault key, "token:v1|{kind}|{scope}|{id}"). Keyed and derived from a random id,
/// never from the person's data; stable for the scope (longitudinal counts), unlinkable across
/// scopes without the vault key; the shift is the scope's own too, or shifted dates would link
/// the rows again.
pub fn scoped(key: &[u8], scope: &str, master: &Pseudonym) -> Pseudonym {
    let (prefix, kind) = if master.token.starts_with("I-") {
        ("I-", "incident")
    } else {
        ("P-", "person")
    };
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(format!("token:v1|{kind}|{scope}|{}", master.token).as_bytes());
    let b = m.finalize().into_bytes();
    Pseudonym {
        token: format!("{prefix}{}", crate::hex::encode(&b[..16])),
        shift_days: (u16::from_le_bytes([b[16], b[17]]) % 361) as i64 - 180,
    }
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// The keys a person can be matched on (keyed, so the store never holds the values).
pub fn match_keys(key: &[u8], p: &Person) -> Vec<String> {
    let mut keys = Vec::new();
    if let (Some(l), Some(f), Some(d)) = (&p.name.last, &p.name.first, &p.dob) {
        let (l, f) = (norm(l.expose()), norm(f.expose()));
        if !l.is_empty() && !f.is_empty() {
            keys.push(hmac_hex(key, &format!("name:{l}|{f}|{}", d.expose())));
        }
    }
    for id in p
        .identifiers
        .iter()
        .filter(|i| i.kind == IdentifierKind::Ssn)
    {
        let digits: String = id
            .value
            .expose()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if digits.len() == 9 {
            keys.push(hmac_hex(key, &format!("ssn:{digits}")));
        }
    }
    keys
}

impl Store {
    /// The person's vault id: found through any of their matching keys, or new. A person with
    /// nothing to match on (no name and date of birth, no SSN) keeps one id within the record
    /// they came from: `local` names that place (adapter, incident, person). Its stored shift
    /// is no longer sent: each scope gets its own (see [`scoped`]). Inside an open group
    /// (`begin`, the disclosure stage's group commits) it commits with the group.
    pub fn person_pseudonym(&mut self, key: &[u8], p: &Person, local: &str) -> Result<Pseudonym> {
        let mut keys = match_keys(key, p);
        if keys.is_empty() {
            keys.push(hmac_hex(key, &format!("local:{local}")));
        }
        self.write(|s| s.atomically(|s| s.person_pseudonym_in(&keys)))
    }

    fn person_pseudonym_in(&mut self, keys: &[String]) -> Result<Pseudonym> {
        let tx = &self.conn;
        let mut found: Option<(String, i64)> = None;
        for k in keys {
            found = tx
                .prepare_cached(
                    "SELECT v.token, v.shift_days FROM vault_keys k JOIN vault_persons v ON v.token = k.token WHERE k.match_key = ?1",
                )?
                .query_row([k], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if found.is_some() {
                break;
            }
        }
        let (token, shift_days) = match found {
            Some(t) => t,
            None => {
                let next: i64 = tx
                    .prepare_cached("SELECT coalesce(max(rowid), 0) + 1 FROM vault_persons")?
                    .query_row([], |r| r.get(0))?;
                let (token, shift) = sequenced_token("P-", next)?;
                tx.prepare_cached(
                    "INSERT INTO vault_persons (token, shift_days, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![token, shift, now()])?;
                (token, shift)
            }
        };
        for k in keys {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO vault_keys (match_key, token) VALUES (?1, ?2)",
            )?
            .execute(params![k, token])?;
        }
        Ok(Pseudonym { token, shift_days })
    }

    /// The incident's vault id (stable for the agency's incident id, random otherwise).
    pub fn incident_pseudonym(
        &mut self,
        key: &[u8],
        adapter: &str,
        incident_id: &str,
    ) -> Result<Pseudonym> {
        let k = hmac_hex(key, &format!("incident:{adapter}|{incident_id}"));
        if let Some((token, shift_days)) = self
            .conn
            .prepare_cached("SELECT token, shift_days FROM vault_incidents WHERE match_key = ?1")?
            .query_row([&k], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            return Ok(Pseudonym { token, shift_days });
        }
        let next: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(rowid), 0) + 1 FROM vault_incidents")?
            .query_row([], |r| r.get(0))?;
        let (token, shift) = sequenced_token("I-", next)?;
        self.conn
            .prepare_cached(
                "INSERT INTO vault_incidents (match_key, token, shift_days) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![k, token, shift])?;
        Ok(Pseudonym {
            token,
            shift_days: shift,
        })
    }

    /// Remembers that each `(token, vault id)` is what `scope` holds for that person, so that
    /// the accounting of disclosures finds the person by the token a recipient quotes. One
    /// transaction (it joins an open group).
    pub fn record_scoped(&mut self, scope: &str, tokens: &[(&str, &str)]) -> Result<()> {
        self.atomically(|s| {
            let mut st = s.conn.prepare_cached(
                "INSERT OR IGNORE INTO vault_scoped (token, scope, person) VALUES (?1, ?2, ?3)",
            )?;
            for (token, master) in tokens {
                st.execute(params![token, scope, master])?;
            }
            Ok(())
        })
    }

    /// The person's vault id for a token: a token some scope received, or the id itself.
    /// `None` for a token the vault never gave.
    pub fn person_of(&self, token: &str) -> Result<Option<String>> {
        if let Some(m) = self
            .conn
            .prepare_cached("SELECT person FROM vault_scoped WHERE token = ?1")?
            .query_row([token], |r| r.get(0))
            .optional()?
        {
            return Ok(Some(m));
        }
        Ok(self
            .conn
            .prepare_cached("SELECT token FROM vault_persons WHERE token = ?1")?
            .query_row([token], |r| r.get(0))
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_vault_ids_sort_in_row_order_and_keep_their_form() {
        let d = tempfile::tempdir().unwrap();
        let mut store = Store::open(&d.path().join("store.db")).unwrap();
        let key = [3u8; 32];
        let ids: Vec<String> = (0..300)
            .map(|i| {
                store
                    .incident_pseudonym(&key, "cad", &format!("2026-{i:06}"))
                    .unwrap()
                    .token
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|t| t.len() == 34 && t.starts_with("I-")));
        // The same incident keeps its id.
        let again = store
            .incident_pseudonym(&key, "cad", "2026-000007")
            .unwrap();
        assert_eq!(again.token, ids[7]);
    }

    #[test]
    fn scoped_pseudonyms_are_stable_per_scope_and_differ_across_scopes_and_keys() {
        let (k1, k2) = ([7u8; 32], [8u8; 32]);
        let person = Pseudonym {
            token: "P-00112233445566778899aabbccddeeff".into(),
            shift_days: 5,
        };
        let a = scoped(&k1, "destination:a", &person);
        assert_eq!(a, scoped(&k1, "destination:a", &person));
        assert!(
            a.token.starts_with("P-") && a.token.len() == 34,
            "{}",
            a.token
        );
        assert!((-180..=180).contains(&a.shift_days));
        assert_ne!(a.token, person.token);
        assert_ne!(a.token, scoped(&k1, "destination:b", &person).token);
        assert_ne!(a.token, scoped(&k1, "group:a", &person).token);
        assert_ne!(a.token, scoped(&k2, "destination:a", &person).token);
        let incident = Pseudonym {
            token: "I-00112233445566778899aabbccddeeff".into(),
            shift_days: 5,
        };
        let i = scoped(&k1, "destination:a", &incident);
        assert!(i.token.starts_with("I-"), "{}", i.token);
        assert_ne!(i.token[2..], a.token[2..]);
    }
}
