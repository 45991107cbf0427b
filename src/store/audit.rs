//! The audit trail: every disclosure decision (delivered, or withheld and why) appended to a hash
//! chain keyed with a secret kept outside the database. An entry holds the time, destination,
//! profile, the person's vault id (never sent: recipients hold tokens derived from it), the
//! consent id, the names of the fields disclosed (never their values) and the payload's digest.
//! `verify` finds an edited, removed or reordered entry; `disclosures` lists a person's
//! disclosures (the accounting of 42 CFR 2.24).
//!
//! An entry may count several identical decisions (`count`): decisions that withheld and name
//! no person, consent or payload differ in nothing but their time, so the disclosure stage
//! writes one entry per destination and reason for a whole group commit (a million-row backfill
//! made three million such entries).

use super::{Result, Store, now};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::Sha256;

/// One entry, as appended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entry {
    pub destination: String,
    pub profile: String,
    pub decision: String,
    pub reasons: Vec<String>,
    pub person_token: Option<String>,
    pub consent_id: Option<String>,
    pub fields: Vec<String>,
    pub payload_digest: Option<String>,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub entry: Entry,
    /// How many identical decisions the entry stands for (1 for all but a group's withholds).
    pub count: u64,
    #[serde(skip)]
    pub mac: String,
}

const GENESIS: &str = "pnp-gateway audit trail v1";

/// The entry's link in the chain. A count other than 1 is covered too; an entry of one decision
/// is signed as before counts existed, so older trails still verify.
fn mac(key: &[u8], prev: &str, seq: i64, at: &str, e: &Entry, count: u64) -> String {
    let body = match count {
        1 => serde_json::to_string(&(seq, at, e)),
        n => serde_json::to_string(&(seq, at, e, n)),
    }
    .expect("entries serialize");
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(prev.as_bytes());
    m.update(b"\n");
    m.update(body.as_bytes());
    crate::hex::encode(&m.finalize().into_bytes())
}

/// A trail that verified: its entries, and the decisions and events they stand for (an entry
/// may count several identical withholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intact {
    pub entries: usize,
    pub decisions: u64,
}

/// Why verification failed: the first entry that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub what: String,
}

impl Store {
    /// Appends an entry; inside an open group (`begin`) it commits with the group, otherwise in
    /// a write transaction of its own (it reads the head before writing: see [`Store::write`]).
    pub fn audit_append(&mut self, key: &[u8], e: &Entry) -> Result<i64> {
        self.audit_append_n(key, e, 1)
    }

    /// Appends one entry standing for `count` identical decisions.
    pub fn audit_append_n(&mut self, key: &[u8], e: &Entry, count: u64) -> Result<i64> {
        self.write(|s| s.atomically(|s| s.audit_append_in(key, e, count)))
    }

    fn audit_append_in(&mut self, key: &[u8], e: &Entry, count: u64) -> Result<i64> {
        let tx = &self.conn;
        let (seq, prev): (i64, String) = tx
            .prepare_cached("SELECT seq, mac FROM audit_head WHERE one = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, GENESIS.to_string()));
        let seq = seq + 1;
        let at = now();
        let m = mac(key, &prev, seq, &at, e, count);
        tx.prepare_cached("INSERT INTO audit (seq, at, destination, profile, decision, reasons, person_token, consent_id, fields, payload_digest, mac, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?.execute(
            params![
                seq,
                at,
                e.destination,
                e.profile,
                e.decision,
                serde_json::to_string(&e.reasons)?,
                e.person_token,
                e.consent_id,
                serde_json::to_string(&e.fields)?,
                e.payload_digest,
                m,
                count as i64
            ],
        )?;
        tx.prepare_cached(
            "INSERT INTO audit_head (one, seq, mac) VALUES (1, ?1, ?2)
             ON CONFLICT (one) DO UPDATE SET seq = ?1, mac = ?2",
        )?
        .execute(params![seq, m])?;
        Ok(seq)
    }

    fn audit_rows(&self, person: Option<&str>) -> Result<Vec<Row>> {
        let sql = "SELECT seq, at, destination, profile, decision, reasons, person_token, consent_id, fields, payload_digest, mac, count FROM audit";
        let sql = match person {
            Some(_) => format!("{sql} WHERE person_token = ?1 ORDER BY seq"),
            None => format!("{sql} ORDER BY rowid"),
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row| -> rusqlite::Result<(Row, String, String)> {
            Ok((
                Row {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    entry: Entry {
                        destination: r.get(2)?,
                        profile: r.get(3)?,
                        decision: r.get(4)?,
                        reasons: Vec::new(),
                        person_token: r.get(6)?,
                        consent_id: r.get(7)?,
                        fields: Vec::new(),
                        payload_digest: r.get(9)?,
                    },
                    count: r.get::<_, i64>(11)? as u64,
                    mac: r.get(10)?,
                },
                r.get(5)?,
                r.get(8)?,
            ))
        };
        let rows = match person {
            Some(p) => st
                .query_map([p], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => st
                .query_map([], map)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        let mut out = Vec::new();
        for (mut row, reasons, fields) in rows {
            row.entry.reasons = serde_json::from_str(&reasons)?;
            row.entry.fields = serde_json::from_str(&fields)?;
            out.push(row);
        }
        Ok(out)
    }

    /// Checks the whole chain, in storage order.
    pub fn audit_verify(&self, key: &[u8]) -> Result<std::result::Result<Intact, Broken>> {
        let rows = self.audit_rows(None)?;
        let mut prev = GENESIS.to_string();
        for (i, row) in rows.iter().enumerate() {
            let want_seq = i as i64 + 1;
            if row.seq != want_seq {
                return Ok(Err(Broken {
                    seq: row.seq,
                    what: format!(
                        "entry {want_seq} is missing or out of order (found {} in its place)",
                        row.seq
                    ),
                }));
            }
            if mac(key, &prev, row.seq, &row.at, &row.entry, row.count) != row.mac {
                return Ok(Err(Broken {
                    seq: row.seq,
                    what: format!("entry {} was altered (or the chain before it was)", row.seq),
                }));
            }
            prev = row.mac.clone();
        }
        let head: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT seq, mac FROM audit_head WHERE one = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let last = rows.last().map(|r| (r.seq, r.mac.clone()));
        if head != last {
            let n = head.map_or(0, |h| h.0);
            return Ok(Err(Broken {
                seq: n,
                what: format!(
                    "the trail ends at entry {} but its head records entry {n}: entries were removed from the end",
                    rows.len()
                ),
            }));
        }
        Ok(Ok(Intact {
            entries: rows.len(),
            decisions: rows.iter().map(|r| r.count).sum(),
        }))
    }

    /// A person's disclosures (decisions that delivered, to every destination), oldest first.
    /// `token` is the person's vault id, which entries record, or the token any recipient holds
    /// for them (resolved through the vault).
    pub fn audit_disclosures(&self, token: &str) -> Result<Vec<Row>> {
        let person = self.person_of(token)?.unwrap_or_else(|| token.to_string());
        Ok(self
            .audit_rows(Some(&person))?
            .into_iter()
            .filter(|r| r.entry.decision == "deliver")
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_outside_a_group_waits_for_another_writer() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("store.db");
        let mut store = Store::open(&path).unwrap();
        let e = Entry {
            destination: "dest-a".into(),
            profile: "safe-harbor".into(),
            decision: "delivered".into(),
            reasons: Vec::new(),
            person_token: None,
            consent_id: None,
            fields: vec!["incident.category".into()],
            payload_digest: None,
        };
        store.audit_append(b"test-key", &e).unwrap();
        // Another process holds the write lock, then commits a write.
        let other = rusqlite::Connection::open(&path).unwrap();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            other
                .execute_batch("BEGIN IMMEDIATE; INSERT INTO meta VALUES ('test-writer', x'00');")
                .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
            other.execute_batch("COMMIT").unwrap();
        });
        locked.recv().unwrap();
        let seq = store.audit_append(b"test-key", &e);
        holder.join().unwrap();
        assert_eq!(seq.unwrap(), 2);
    }
}
