//! The closed loop's record: each consented referral (an outbox row of a `consented-referral`
//! destination, named by its idempotency key, which is what the provider received as the
//! referral's id) and the statuses its provider reported. The lifecycle's rules are
//! `policy::lifecycle`; each change is also an audit entry (ids and statuses only).

use super::{Result, Store, now};
use crate::policy::lifecycle::Status;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// A referral as the loop sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referral {
    pub id: String,
    pub destination: String,
    pub status: Status,
    pub updated_at: String,
    pub created_at: String,
}

/// One reported change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub status: String,
    pub reason: Option<String>,
    /// The FHIR channel's Task.businessStatus code, when one was reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_status: Option<String>,
    pub reported_at: String,
    pub reported_by: String,
    pub recorded_at: String,
}

/// Why a status was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSuchReferral,
    NotYours,
    Illegal(String),
}

/// The status the outbox alone gives, before any report.
fn from_outbox(status: &str) -> Status {
    match status {
        "delivered" => Status::Sent,
        "withdrawn" => Status::Cancelled,
        _ => Status::Queued,
    }
}

const SELECT: &str = "SELECT o.idempotency_key, o.destination, o.status, o.created_at, o.delivered_at,
        (SELECT e.status FROM referral_events e WHERE e.referral = o.idempotency_key ORDER BY e.id DESC LIMIT 1),
        (SELECT e.recorded_at FROM referral_events e WHERE e.referral = o.idempotency_key ORDER BY e.id DESC LIMIT 1)
    FROM outbox o WHERE o.profile = 'consented-referral' AND o.cancels IS NULL";

/// Each referral's destination, outbox status and last reported status (the lifecycle's status
/// is derived from them as in [`referral`]).
const COUNTED: &str = "SELECT o.destination AS destination, o.status AS outbox_status,
        (SELECT e.status FROM referral_events e WHERE e.referral = o.idempotency_key ORDER BY e.id DESC LIMIT 1) AS reported
    FROM outbox o WHERE o.profile = 'consented-referral' AND o.cancels IS NULL";

fn referral(r: &rusqlite::Row) -> rusqlite::Result<Referral> {
    let outbox: String = r.get(2)?;
    let created: String = r.get(3)?;
    let delivered: Option<String> = r.get(4)?;
    let reported: Option<String> = r.get(5)?;
    let reported_at: Option<String> = r.get(6)?;
    let status = reported
        .as_deref()
        .and_then(Status::parse)
        .unwrap_or_else(|| from_outbox(&outbox));
    Ok(Referral {
        id: r.get(0)?,
        destination: r.get(1)?,
        status,
        updated_at: reported_at.or(delivered).unwrap_or_else(|| created.clone()),
        created_at: created,
    })
}

impl Store {
    pub fn referral(&self, id: &str) -> Result<Option<Referral>> {
        Ok(self
            .conn
            .query_row(
                &format!("{SELECT} AND o.idempotency_key = ?1"),
                params![id],
                referral,
            )
            .optional()?)
    }

    /// Every referral, oldest first.
    pub fn referrals(&self) -> Result<Vec<Referral>> {
        let mut st = self.conn.prepare(&format!("{SELECT} ORDER BY o.id"))?;
        let rows = st.query_map([], referral)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many referrals each destination has in each status, for the metrics.
    pub fn referral_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut counts = std::collections::BTreeMap::<(String, String), u64>::new();
        let mut st = self.conn.prepare(&format!(
            "SELECT r.destination, r.outbox_status, r.reported, count(*) FROM ({}) r GROUP BY 1, 2, 3",
            COUNTED
        ))?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)? as u64,
            ))
        })?;
        for row in rows {
            let (dest, outbox, reported, n) = row?;
            let status = reported
                .as_deref()
                .and_then(Status::parse)
                .unwrap_or_else(|| from_outbox(&outbox));
            *counts
                .entry((dest, status.as_str().to_string()))
                .or_default() += n;
        }
        Ok(counts.into_iter().map(|((d, s), n)| (d, s, n)).collect())
    }

    pub fn referral_events(&self, id: &str) -> Result<Vec<Event>> {
        let mut st = self.conn.prepare(
            "SELECT status, reason, reported_at, reported_by, recorded_at, business_status
             FROM referral_events WHERE referral = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok(Event {
                status: r.get(0)?,
                reason: r.get(1)?,
                business_status: r.get(5)?,
                reported_at: r.get(2)?,
                reported_by: r.get(3)?,
                recorded_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records `to` for referral `id`, reported by `by` (a client id) for one of `destinations`,
    /// with its audit entry, in one transaction; or says why not (nothing changes then).
    #[allow(clippy::too_many_arguments)]
    pub fn report_referral(
        &mut self,
        audit_key: &[u8],
        id: &str,
        destinations: &[String],
        to: Status,
        reason: Option<&str>,
        at: &str,
        by: &str,
    ) -> Result<std::result::Result<Referral, Refusal>> {
        self.report_referral_coded(audit_key, id, destinations, to, reason, None, at, by)
    }

    /// [`Store::report_referral`] with a business status code too (the FHIR channel's
    /// Task.businessStatus).
    #[allow(clippy::too_many_arguments)]
    pub fn report_referral_coded(
        &mut self,
        audit_key: &[u8],
        id: &str,
        destinations: &[String],
        to: Status,
        reason: Option<&str>,
        business_status: Option<&str>,
        at: &str,
        by: &str,
    ) -> Result<std::result::Result<Referral, Refusal>> {
        let Some(current) = self.referral(id)? else {
            return Ok(Err(Refusal::NoSuchReferral));
        };
        if !destinations.contains(&current.destination) {
            return Ok(Err(Refusal::NotYours));
        }
        if let Err(why) = current.status.may_become(to) {
            return Ok(Err(Refusal::Illegal(why)));
        }
        let row = self.outbox_row_by_key(id)?;
        self.write(|s| {
            s.conn.execute(
                "INSERT INTO referral_events (referral, status, reason, reported_at, reported_by, recorded_at, business_status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, to.as_str(), reason, at, by, now(), business_status],
            )?;
            if let Some(row) = &row {
                let mut e = row.audit_entry(&format!("referral-{}", to.as_str()), vec![format!("reported_by: {by}")]);
                e.fields.clear();
                s.audit_append(audit_key, &e)?;
            }
            Ok(())
        })?;
        Ok(Ok(self.referral(id)?.expect("the referral just updated")))
    }

    fn outbox_row_by_key(&self, key: &str) -> Result<Option<super::outbox::Row>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM outbox WHERE idempotency_key = ?1",
                    super::outbox::COLUMNS
                ),
                params![key],
                super::outbox::row,
            )
            .optional()?)
    }
}
