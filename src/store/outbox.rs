//! The durable outbox: one row per (incident, destination) payload, with an idempotency key that
//! stays the same across retries and restarts, its status (`pending`, `delivered`, `dead`,
//! `withdrawn`), attempts, next attempt time and last error. Payloads are encrypted at rest
//! (AES-256-GCM, a random nonce per row, the key outside the store) and purged once delivered or
//! withdrawn; the audit trail keeps their digest.

use super::vault::random_token;
use super::{Result, Store, StoreError, now};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The outbox's encryption key, derived from the configured secret.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    pub fn from_secret(secret: &[u8]) -> SealKey {
        let mut h = Sha256::new();
        h.update(b"pnp-gateway outbox v1\n");
        h.update(secret);
        SealKey(h.finalize().into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.0).expect("32-byte key")
    }

    /// nonce (12 bytes) ‖ ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let mut n = [0u8; 12];
        getrandom::fill(&mut n).map_err(|e| StoreError::Invalid(format!("no randomness: {e}")))?;
        let nonce = Nonce::try_from(&n[..]).expect("12 bytes");
        let ct = self
            .cipher()
            .encrypt(&nonce, plain)
            .map_err(|_| StoreError::Invalid("encryption failed".into()))?;
        let mut out = n.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 12 {
            return Err(StoreError::Invalid("a sealed payload is too short".into()));
        }
        let nonce = Nonce::try_from(&sealed[..12]).expect("12 bytes");
        self.cipher().decrypt(&nonce, &sealed[12..]).map_err(|_| {
            StoreError::Invalid("a payload does not decrypt: wrong outbox key, or altered".into())
        })
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// What goes into the outbox.
pub struct NewRow<'a> {
    pub destination: &'a str,
    pub adapter: &'a str,
    pub incident_id: &'a str,
    pub profile: &'a str,
    pub consent_id: Option<&'a str>,
    pub person_token: Option<&'a str>,
    pub fields: &'a [String],
    pub payload: &'a serde_json::Value,
    pub payload_digest: &'a str,
}

/// A row as listed (metadata only: never the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub idempotency_key: String,
    pub destination: String,
    pub adapter: String,
    pub incident_id: String,
    pub profile: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: String,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub consent_id: Option<String>,
    pub person_token: Option<String>,
    pub fields: Vec<String>,
    pub payload_digest: String,
    pub delivered_at: Option<String>,
    pub replay_of: Option<i64>,
    pub has_payload: bool,
    /// Set on a cancellation: the referral row whose delivery it cancels (see
    /// [`super::cancellations`]).
    pub cancels: Option<i64>,
    /// A failed attempt may have left the payload with the receiver (migration 22), or an
    /// attempt is under way or was stopped before its outcome was recorded (migration 23): a
    /// withdrawn referral with it is owed a cancellation.
    pub may_have_arrived: bool,
}

impl Row {
    /// The audit entry for something that happened to this row (delivered, withdrawn, ...).
    /// A cancellation's entries say so (`cancellation-delivered`, ...), so that the trail tells
    /// a referral from the message that cancelled it.
    pub fn audit_entry(&self, what: &str, reasons: Vec<String>) -> super::audit::Entry {
        super::audit::Entry {
            destination: self.destination.clone(),
            profile: self.profile.clone(),
            decision: match self.cancels {
                Some(_) => format!("cancellation-{what}"),
                None => what.to_string(),
            },
            reasons,
            person_token: self.person_token.clone(),
            consent_id: self.consent_id.clone(),
            fields: self.fields.clone(),
            payload_digest: Some(self.payload_digest.clone()),
        }
    }
}

pub(super) const COLUMNS: &str = "id, idempotency_key, destination, adapter, incident_id, profile, status, attempts, created_at, next_attempt_at, last_error, consent_id, person_token, fields, payload_digest, delivered_at, replay_of, payload IS NOT NULL, cancels, max(may_have_arrived, sending)";

pub(super) fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    let fields: String = r.get(13)?;
    Ok(Row {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        destination: r.get(2)?,
        adapter: r.get(3)?,
        incident_id: r.get(4)?,
        profile: r.get(5)?,
        status: r.get(6)?,
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        next_attempt_at: r.get(9)?,
        last_error: r.get(10)?,
        consent_id: r.get(11)?,
        person_token: r.get(12)?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        payload_digest: r.get(14)?,
        delivered_at: r.get(15)?,
        replay_of: r.get(16)?,
        has_payload: r.get(17)?,
        cancels: r.get(18)?,
        may_have_arrived: r.get(19)?,
    })
}

impl Store {
    /// Enqueues a payload; the same payload for the same incident and destination is enqueued
    /// once (a re-read export does not send twice). Returns the row id when new.
    pub fn enqueue(&mut self, key: &SealKey, n: &NewRow) -> Result<Option<i64>> {
        let exists: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM outbox WHERE destination = ?1 AND adapter = ?2 AND incident_id = ?3 AND payload_digest = ?4 AND replay_of IS NULL")?.query_row(
                params![n.destination, n.adapter, n.incident_id, n.payload_digest],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        let sealed = key.seal(&serde_json::to_vec(n.payload)?)?;
        let (idem, _) = random_token("")?;
        let t = now();
        self.conn.prepare_cached("INSERT INTO outbox (idempotency_key, destination, adapter, incident_id, profile, status, created_at, next_attempt_at, consent_id, person_token, fields, payload, payload_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?7, ?8, ?9, ?10, ?11)")?.execute(
            params![
                idem,
                n.destination,
                n.adapter,
                n.incident_id,
                n.profile,
                t,
                n.consent_id,
                n.person_token,
                serde_json::to_string(n.fields)?,
                sealed,
                n.payload_digest
            ],
        )?;
        Ok(Some(self.conn.last_insert_rowid()))
    }

    /// Pending rows of a destination that are due, in order; a row waits while an earlier
    /// pending row of the same incident is not yet due (updates arrive in order), but other
    /// incidents go on.
    pub fn due(&self, destination: &str, at: &str, limit: usize) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o INDEXED BY outbox_pending WHERE destination = ?1 AND status = 'pending' AND next_attempt_at <= ?2
             AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.destination = o.destination AND e.adapter = o.adapter
                 AND e.incident_id = o.incident_id AND e.status = 'pending' AND e.id < o.id)
             ORDER BY id LIMIT ?3"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![destination, at, limit as i64], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rows by (destination, status), for metrics.
    pub fn outbox_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT destination, status, count(*) FROM outbox GROUP BY destination, status",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The decrypted payload of a row.
    pub fn payload(&self, key: &SealKey, id: i64) -> Result<Option<serde_json::Value>> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT payload FROM outbox WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .flatten();
        match sealed {
            Some(s) => Ok(Some(serde_json::from_slice(&key.open(&s)?)?)),
            None => Ok(None),
        }
    }

    pub fn mark_delivered(&self, id: i64, keep_payload: bool) -> Result<()> {
        self.conn.prepare_cached("UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, last_error = NULL,
             payload = CASE WHEN ?3 THEN payload ELSE NULL END, sending = 0 WHERE id = ?1")?.execute(
            params![id, now(), keep_payload],
        )?;
        Ok(())
    }

    /// Referral rows about to be sent, committed before the first byte goes out: until the
    /// attempt's outcome is recorded ([`Store::mark_delivered`], [`Store::mark_failed`]), the
    /// receiver may hold the referral, and a withdrawal owes it a cancellation
    /// (`super::cancellations`). A row still marked from an attempt a stopped run never
    /// recorded keeps that: it may have arrived.
    pub fn mark_sending(&mut self, ids: &[i64]) -> Result<()> {
        self.update_each(
            "UPDATE outbox SET may_have_arrived = max(may_have_arrived, sending), sending = 1 WHERE id = ?1",
            ids,
        )
    }

    /// Rows [`Store::mark_sending`] marked that were never sent after all (the destination
    /// failed on an earlier row of the batch).
    pub fn unmark_sending(&mut self, ids: &[i64]) -> Result<()> {
        self.update_each("UPDATE outbox SET sending = 0 WHERE id = ?1", ids)
    }

    /// `sql` (taking a row id as `?1`) for each of `ids`, in one write transaction.
    fn update_each(&mut self, sql: &str, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|s| {
            let mut st = s.conn.prepare_cached(sql)?;
            for id in ids {
                st.execute([id])?;
            }
            Ok(())
        })
    }

    /// A failed attempt: retried at `next`, or dead-lettered (payload kept for replay).
    /// `may_have_arrived`: the receiver may hold the payload anyway; once true for a row it
    /// stays true.
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next: Option<&str>,
        may_have_arrived: bool,
    ) -> Result<()> {
        match next {
            Some(n) => self.conn.prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, may_have_arrived = max(may_have_arrived, ?4), sending = 0 WHERE id = ?1")?.execute(
                params![id, error, n, may_have_arrived],
            )?,
            // A row withdrawn while its last attempt was under way (a revocation by another
            // process) stays withdrawn.
            None => self.conn.prepare_cached("UPDATE outbox SET status = CASE WHEN status = 'pending' THEN 'dead' ELSE status END, attempts = attempts + 1, last_error = ?2, may_have_arrived = max(may_have_arrived, ?3), sending = 0 WHERE id = ?1")?.execute(
                params![id, error, may_have_arrived],
            )?,
        };
        Ok(())
    }

    /// Withdraws a row (consent revoked or expired, incident deleted) and purges its payload.
    pub fn withdraw(&self, id: i64, reason: &str) -> Result<()> {
        self.conn.prepare_cached("UPDATE outbox SET status = 'withdrawn', last_error = ?2, payload = NULL WHERE id = ?1 AND status IN ('pending', 'dead')")?.execute(
            params![id, reason],
        )?;
        Ok(())
    }

    /// Pending and dead rows disclosed under a consent revoked on or before `today`
    /// (YYYY-MM-DD), with the consent's id and revocation date: a revocation dated ahead whose
    /// day has come withdraws them (the send-time check sees only the rows due, never the
    /// dead-lettered ones). Not the cancellations.
    pub fn queued_under_revoked(&self, today: &str) -> Result<Vec<(Row, String, String)>> {
        let sql = format!(
            "SELECT {COLUMNS}, (SELECT revoked_on FROM consents c WHERE c.id = outbox.consent_id) FROM outbox
             WHERE status IN ('pending', 'dead') AND cancels IS NULL
               AND consent_id IN (SELECT id FROM consents WHERE revoked_on IS NOT NULL AND revoked_on <= ?1)
             ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let n = st.column_count();
        let rows = st.query_map([today], |r| {
            let o = row(r)?;
            let consent = o.consent_id.clone().unwrap_or_default();
            Ok((o, consent, r.get::<_, String>(n - 1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pending and dead rows disclosed under a consent: withdrawn when it is revoked. Not the
    /// cancellations: a revocation is what they announce.
    pub fn queued_under_consent(&self, consent_id: &str) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE consent_id = ?1 AND status IN ('pending', 'dead') AND cancels IS NULL ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map([consent_id], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pending rows of an incident (any destination): withdrawn when the incident is deleted.
    /// Not the cancellations: they go out whatever happens to the incident next.
    pub fn pending_for_incident(&self, adapter: &str, incident_id: &str) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE adapter = ?1 AND incident_id = ?2 AND status IN ('pending', 'dead') AND cancels IS NULL ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![adapter, incident_id], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn outbox_rows(&self, status: Option<&str>, destination: Option<&str>) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR destination = ?2) ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![status, destination], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn outbox_row(&self, id: i64) -> Result<Option<Row>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Enqueues a dead (or delivered) row again, linked to the original, optionally to another
    /// destination; a new idempotency key, since it is a new delivery.
    pub fn replay(&mut self, id: i64, to: Option<&str>) -> Result<i64> {
        let orig = self
            .outbox_row(id)?
            .ok_or_else(|| StoreError::Invalid(format!("no outbox row {id}")))?;
        if !orig.has_payload {
            return Err(StoreError::Invalid(format!(
                "outbox row {id} has no payload left (status {}): it was purged",
                orig.status
            )));
        }
        let (idem, _) = random_token("")?;
        let t = now();
        self.conn.prepare_cached("INSERT INTO outbox (idempotency_key, destination, adapter, incident_id, profile, status, created_at, next_attempt_at, consent_id, person_token, fields, payload, payload_digest, replay_of, cancels)
             SELECT ?2, COALESCE(?3, destination), adapter, incident_id, profile, 'pending', ?4, ?4, consent_id, person_token, fields, payload, payload_digest, id, cancels
             FROM outbox WHERE id = ?1")?.execute(
            params![id, idem, to, t],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Purges the payloads of delivered and withdrawn rows (older than `before`, if given).
    pub fn purge(&self, before: Option<&str>) -> Result<usize> {
        Ok(self.conn.prepare_cached("UPDATE outbox SET payload = NULL WHERE status IN ('delivered', 'withdrawn') AND payload IS NOT NULL
             AND (?1 IS NULL OR COALESCE(delivered_at, created_at) < ?1)")?.execute(
            params![before],
        )?)
    }
}
