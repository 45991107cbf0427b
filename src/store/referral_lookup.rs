//! Finding a referral by what an HL7 answer carries: the control id of the REF^I12 the gateway
//! sent (MSH-10, the first 20 characters of the referral's id: `deliver::hl7out::control_id`),
//! or the referral's whole id. Kept apart from `referrals.rs`, which records.

use super::referrals::Referral;
use super::{Result, Store};
use rusqlite::params;

/// How long a control id is (`deliver::hl7out::control_id`).
const CONTROL_ID_CHARS: usize = 20;

impl Store {
    /// The referral whose id is `id`, or whose REF^I12 went out with `id` as its control id.
    /// A control id that would name more than one referral names none.
    pub fn referral_by_control_id(&self, id: &str) -> Result<Option<Referral>> {
        if id.is_empty() {
            return Ok(None);
        }
        if let Some(r) = self.referral(id)? {
            return Ok(Some(r));
        }
        if id.chars().count() != CONTROL_ID_CHARS {
            return Ok(None);
        }
        // A range over the unique index rather than substr(), which would read every row.
        let mut st = self.conn.prepare_cached(
            "SELECT idempotency_key FROM outbox
             WHERE idempotency_key >= ?1 AND idempotency_key < ?1 || char(1114111)
               AND profile = 'consented-referral' AND cancels IS NULL LIMIT 2",
        )?;
        let keys: Vec<String> = st
            .query_map(params![id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match keys.as_slice() {
            [one] if one.starts_with(id) => self.referral(one),
            _ => Ok(None),
        }
    }
}
