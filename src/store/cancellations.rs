//! Cancellations in the outbox. A destination that received a referral is told when the
//! referral is cancelled (its incident deleted at the source, its consent revoked): a row of its
//! own, queued after the referral's (so per-incident order, retries and dead-lettering are the
//! outbox's as for any row), with its own idempotency key, naming the referral's row in
//! `cancels`. What it carries is built by `deliver::cancel`; this module only finds the
//! referrals owed one and queues it once per referral row.

use super::outbox::{COLUMNS, Row, SealKey, row};
use super::vault::random_token;
use super::{Result, Store, now};
use rusqlite::params;

/// A cancellation to queue after `referral`.
pub struct NewCancellation<'a> {
    pub referral: &'a Row,
    pub payload: &'a serde_json::Value,
    pub payload_digest: &'a str,
    /// The names of the fields it carries, for the audit trail.
    pub fields: &'a [String],
}

/// The rows a receiver may hold: delivered ones, and those withdrawn after an attempt that may
/// have left the payload with it (`deliver::SendError::may_have_arrived`: written, and no
/// answer settled it), or whose outcome was never recorded (`sending`: the run stopped, or
/// another process withdrew the row while its send was under way). A withdrawn row is not sent
/// again, so telling the receiver is the only way to take back what it may have.
const HELD: &str = "(o.status = 'delivered'
    OR (o.status = 'withdrawn' AND (o.may_have_arrived = 1 OR o.sending = 1)))";

impl Store {
    /// Referral rows of an incident that its destination may hold (delivered, or withdrawn
    /// after an attempt that may have arrived) and that have no cancellation yet. Read after
    /// the incident's queued rows are withdrawn.
    pub fn held_for_incident(&self, adapter: &str, incident_id: &str) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE adapter = ?1 AND incident_id = ?2 AND {HELD}
               AND cancels IS NULL AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.cancels = o.id)
             ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![adapter, incident_id], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A destination's referral rows it may hold (as [`Store::held_for_incident`]) under a
    /// consent revoked on or before `today` (YYYY-MM-DD) that have no cancellation yet: those
    /// delivered (or withdrawn after an attempt that may have arrived) before the revocation was
    /// recorded, and those whose send was under way while it was (recorded as delivered after
    /// it). Read before each dispatch pass: only the revoked consents' rows are read.
    pub fn held_under_revoked(&self, destination: &str, today: &str) -> Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE destination = ?1 AND {HELD} AND cancels IS NULL
               AND consent_id IN (SELECT id FROM consents WHERE revoked_on IS NOT NULL AND revoked_on <= ?2)
               AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.cancels = o.id)
             ORDER BY id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map([destination, today], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Queues a cancellation after its referral (same destination, incident, consent and
    /// person; a new idempotency key), unless the referral has one already. Returns the new
    /// row's id. Call it within a write transaction ([`Store::write`]) so that the check and
    /// the insert are one.
    pub fn enqueue_cancellation(
        &mut self,
        key: &SealKey,
        c: &NewCancellation,
    ) -> Result<Option<i64>> {
        let exists: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE cancels = ?1")?
            .query_row([c.referral.id], |r| r.get(0))?;
        if exists > 0 {
            return Ok(None);
        }
        let sealed = key.seal(&serde_json::to_vec(c.payload)?)?;
        let (idem, _) = random_token("")?;
        let t = now();
        let r = c.referral;
        self.conn.prepare_cached("INSERT INTO outbox (idempotency_key, destination, adapter, incident_id, profile, status, created_at, next_attempt_at, consent_id, person_token, fields, payload, payload_digest, cancels)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?.execute(
            params![
                idem,
                r.destination,
                r.adapter,
                r.incident_id,
                r.profile,
                t,
                r.consent_id,
                r.person_token,
                serde_json::to_string(c.fields)?,
                sealed,
                c.payload_digest,
                r.id
            ],
        )?;
        Ok(Some(self.conn.last_insert_rowid()))
    }
}
