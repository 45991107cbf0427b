//! The follow-up's record (docs/closed-loop.md, "Follow-up" and "Polling a provider's FHIR
//! server"): which referrals are overdue (still `sent` after their destination's
//! `accept_within`), which of them were alerted (`referral_alerts`, so that a restart does not
//! alert again), and which referrals a polled provider is still asked about. Ids, statuses and
//! times only.

use super::{Result, Store, now};
use crate::policy::lifecycle::Status;
use rusqlite::params;
use serde::Serialize;
use std::time::Duration;

/// An overdue referral: delivered, no answer from its provider, past `accept_within`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overdue {
    pub id: String,
    pub destination: String,
    /// Always `sent`: a referral the provider answered is not overdue.
    pub status: Status,
    pub updated_at: String,
    pub created_at: String,
    /// When it was delivered.
    pub sent_at: String,
    /// `sent_at` + the destination's `accept_within`.
    pub overdue_since: String,
    /// When its alert was raised; `None` until the service's next follow-up pass.
    pub alerted_at: Option<String>,
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Delivered referrals of a destination that are still `sent`: no status reported by the
/// provider (any report, even a rejection, is an answer) and no cancellation owed to it since
/// (a referral the gateway took back awaits no acceptance).
const STILL_SENT: &str =
    "o.profile = 'consented-referral' AND o.cancels IS NULL AND o.status = 'delivered'
    AND o.delivered_at IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM referral_events e WHERE e.referral = o.idempotency_key)
    AND NOT EXISTS (SELECT 1 FROM outbox c WHERE c.cancels = o.id)";

impl Store {
    /// The referrals of `destination` overdue at `at`: still `sent` and delivered at least
    /// `accept_within` before, oldest first.
    pub fn overdue_referrals(
        &self,
        destination: &str,
        accept_within: Duration,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Overdue>> {
        let within = chrono::Duration::from_std(accept_within).unwrap_or(chrono::Duration::MAX);
        let cutoff = stamp(at.checked_sub_signed(within).unwrap_or(at));
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT o.idempotency_key, o.created_at, o.delivered_at, a.alerted_at
             FROM outbox o LEFT JOIN referral_alerts a ON a.referral = o.idempotency_key
             WHERE o.destination = ?1 AND o.delivered_at <= ?2 AND {STILL_SENT}
             ORDER BY o.id"
        ))?;
        let rows = st.query_map(params![destination, cutoff], |r| {
            let sent_at: String = r.get(2)?;
            let overdue_since = chrono::DateTime::parse_from_rfc3339(&sent_at)
                .ok()
                .and_then(|t| t.with_timezone(&chrono::Utc).checked_add_signed(within))
                .map(stamp)
                .unwrap_or_else(|| sent_at.clone());
            Ok(Overdue {
                id: r.get(0)?,
                destination: destination.to_string(),
                status: Status::Sent,
                updated_at: sent_at.clone(),
                created_at: r.get(1)?,
                sent_at,
                overdue_since,
                alerted_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Notes that `o`'s alert was raised, once: false when it already was (nothing written).
    /// Runs in the caller's transaction, so that the note and what the alert queues commit
    /// together.
    pub fn note_alerted(&mut self, o: &Overdue) -> Result<bool> {
        let n = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO referral_alerts (referral, destination, sent_at, overdue_since, alerted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![o.id, o.destination, o.sent_at, o.overdue_since, now()])?;
        Ok(n == 1)
    }

    /// Alerted referrals that are still `sent` (the status page's alerts): id, destination and
    /// when each became overdue, oldest first, at most `limit`.
    pub fn alerted_still_sent(&self, limit: usize) -> Result<Vec<(String, String, String)>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT a.referral, a.destination, a.overdue_since FROM referral_alerts a
             JOIN outbox o ON o.idempotency_key = a.referral
             WHERE {STILL_SENT} ORDER BY a.overdue_since LIMIT ?1"
        ))?;
        let rows = st.query_map(params![limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The referrals of `destination` its provider is still asked about: delivered and not in a
    /// final status (a polled provider is asked until its Task is completed, failed, rejected
    /// or cancelled). Each with its status now, oldest first.
    pub fn open_referrals(&self, destination: &str) -> Result<Vec<(String, Status)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT o.idempotency_key,
                (SELECT e.status FROM referral_events e WHERE e.referral = o.idempotency_key ORDER BY e.id DESC LIMIT 1)
             FROM outbox o
             WHERE o.destination = ?1 AND o.profile = 'consented-referral' AND o.cancels IS NULL
                AND o.status = 'delivered'
             ORDER BY o.id",
        )?;
        let rows = st.query_map(params![destination], |r| {
            let reported: Option<String> = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                reported
                    .as_deref()
                    .and_then(Status::parse)
                    .unwrap_or(Status::Sent),
            ))
        })?;
        let all: Vec<(String, Status)> = rows.collect::<rusqlite::Result<_>>()?;
        Ok(all.into_iter().filter(|(_, s)| !s.is_final()).collect())
    }
}
