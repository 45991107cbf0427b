//! The consent registry and the PRSS engagements. An import takes each record on its own (a
//! refused one does not stop the others) in one transaction; an atomic import rolls back
//! everything when any record is refused. An engagement may come before its incident (PRSS
//! paperwork often does): it is kept pending and joins the incident when that is read.

use super::{Result, Store, StoreError, now};
use crate::model::{Consent, ConsentRecord, Engagement};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

/// What an import did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// New in the store.
    Added,
    /// Already there with the same content (a re-import).
    Present,
}

/// Why the store refused one record: a stable snake_case kind (what a program answering an API
/// client matches on), the field at fault, when one is, and the reason. Names ids (ours) at
/// most, never a value of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub kind: &'static str,
    pub field: Option<&'static str>,
    pub reason: String,
}

fn refused(kind: &'static str, field: Option<&'static str>, reason: impl Into<String>) -> Refused {
    Refused {
        kind,
        field,
        reason: reason.into(),
    }
}

/// One consent's import: added or present, and whether a revocation was recorded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentImport {
    pub imported: Imported,
    pub revocation_recorded: bool,
}

/// One engagement's import: added or present, and whether it has joined its incident (or
/// waits, pending, for the incident to be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngagementImport {
    pub imported: Imported,
    pub joined: bool,
}

/// An engagement as `engagement list` shows it: ids, provider and state, no person data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementState {
    pub id: String,
    pub incident_id: String,
    pub adapter: Option<String>,
    pub provider: String,
    pub joined: bool,
}

/// Per record, in order: what was done, or why it was refused (each problem).
pub type Outcomes<T> = Vec<std::result::Result<T, Vec<Refused>>>;

impl Store {
    /// Imports consents, each with the revocation its row records (`revoked_on`). A consent
    /// already in the registry with the same content is present; with different content it is
    /// refused. With `atomic`, any refusal leaves the registry as it was.
    pub fn import_consents(
        &mut self,
        consents: &[(&Consent, Option<NaiveDate>)],
        atomic: bool,
    ) -> Result<Outcomes<ConsentImport>> {
        let key = self.seal.clone();
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(consents.len());
        for (c, revoked_on) in consents {
            let body = serde_json::to_string(c)?;
            let imported = match existing(&tx, key.as_ref(), "consents", &c.id, &body)? {
                Some(false) => {
                    out.push(Err(vec![refused(
                        "conflicting_content",
                        None,
                        "already in the registry with different content; revoke it and import the new consent under a new id",
                    )]));
                    continue;
                }
                Some(true) => Imported::Present,
                None => {
                    tx.prepare_cached(
                        "INSERT INTO consents (id, body, imported_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        c.id,
                        super::seal(key.as_ref(), body)?,
                        now()
                    ])?;
                    Imported::Added
                }
            };
            let mut revocation_recorded = false;
            if let Some(on) = revoked_on {
                let before: Option<String> = tx.query_row(
                    "SELECT revoked_on FROM consents WHERE id = ?1",
                    [&c.id],
                    |r| r.get(0),
                )?;
                match before {
                    None => {
                        tx.execute(
                            "UPDATE consents SET revoked_on = ?2 WHERE id = ?1",
                            params![c.id, on.to_string()],
                        )?;
                        revocation_recorded = true;
                    }
                    Some(b) if b == on.to_string() => {}
                    Some(_) => {
                        out.push(Err(vec![refused(
                            "conflicting_revocation",
                            Some("revoked_on"),
                            "the registry holds a revocation of another date; `consent revoke` records a new one",
                        )]));
                        continue;
                    }
                }
            }
            out.push(Ok(ConsentImport {
                imported,
                revocation_recorded,
            }));
        }
        if !atomic || out.iter().all(|o| o.is_ok()) {
            tx.commit()?;
        }
        Ok(out)
    }

    pub fn consent(&self, id: &str) -> Result<Option<ConsentRecord>> {
        let row: Option<(Value, Option<String>)> = self
            .conn
            .prepare_cached("SELECT body, revoked_on FROM consents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(body, revoked)| self.record(body, revoked))
            .transpose()
    }

    pub fn consents(&self) -> Result<Vec<ConsentRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT body, revoked_on FROM consents ORDER BY id")?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, Value>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(b, r)| self.record(b, r)).collect()
    }

    /// Records a written revocation taking effect `on`. Unknown ids are an error.
    pub fn revoke_consent(&mut self, id: &str, on: NaiveDate) -> Result<()> {
        let n = self
            .conn
            .prepare_cached("UPDATE consents SET revoked_on = ?2 WHERE id = ?1")?
            .execute(params![id, on.to_string()])?;
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "no consent {id} in the registry"
            )));
        }
        Ok(())
    }

    /// Imports engagements. Each must name a consent in the registry. One whose incident has
    /// been read joins it, and the incident goes through the disclosure stage again; one whose
    /// incident has not been read yet is kept pending and joins it when it is read (see
    /// [`super::Batch::incident`]); one whose incident was removed after its retention comes
    /// too late and is refused. With `atomic`, any refusal leaves the store as it was.
    pub fn import_engagements(
        &mut self,
        es: &[&Engagement],
        atomic: bool,
    ) -> Result<Outcomes<EngagementImport>> {
        // The checks run in the import's transaction (it takes the write lock when it
        // begins): a purge or an ingest committed between a check and the writes would make
        // an engagement joined to an incident that is gone, or pending for one that is there.
        let tx = self.conn.transaction()?;
        let mut checked = Vec::with_capacity(es.len());
        for e in es {
            let adapter = e.adapter.as_deref();
            let mut problems = Vec::new();
            let known: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM consents WHERE id = ?1")?
                .query_row([&e.consent_id], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                problems.push(refused(
                    "unknown_consent",
                    Some("consent_id"),
                    // Quoted: `imports::check_engagements` took only an id-shaped consent_id.
                    format!("consent {} is not in the registry", e.consent_id),
                ));
            }
            let joined = names(&tx, "incidents", &e.incident_id, adapter)?;
            if !joined && names(&tx, "purged_incidents", &e.incident_id, adapter)? {
                problems.push(refused(
                    "incident_purged",
                    Some("incident_id"),
                    "its incident was read and removed after its retention (incident_retention_days): the engagement comes too late",
                ));
            }
            checked.push(if problems.is_empty() {
                Ok(joined)
            } else {
                Err(problems)
            });
        }
        let mut out = Vec::with_capacity(es.len());
        for (e, joined) in es.iter().zip(checked) {
            let joined = match joined {
                Ok(j) => j,
                Err(r) => {
                    out.push(Err(r));
                    continue;
                }
            };
            let body = serde_json::to_string(e)?;
            match existing(&tx, None, "engagements", &e.id, &body)? {
                Some(false) => out.push(Err(vec![refused(
                    "conflicting_content",
                    None,
                    "already recorded with different content",
                )])),
                Some(true) => {
                    let joined: Option<String> = tx.query_row(
                        "SELECT joined_at FROM engagements WHERE id = ?1",
                        [&e.id],
                        |r| r.get(0),
                    )?;
                    out.push(Ok(EngagementImport {
                        imported: Imported::Present,
                        joined: joined.is_some(),
                    }));
                }
                None => {
                    let at = now();
                    tx.prepare_cached("INSERT INTO engagements (id, incident_id, adapter, provider, consent_id, body, imported_at, joined_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(
                        params![e.id, e.incident_id, e.adapter, e.provider, e.consent_id, body, at, joined.then_some(&at)],
                    )?;
                    if joined {
                        // The incident goes through the disclosure stage again, now with its
                        // engagement.
                        tx.prepare_cached("INSERT OR IGNORE INTO undisclosed (id) SELECT id FROM incidents WHERE incident_id = ?1 AND (?2 IS NULL OR adapter = ?2)")?.execute(
                            params![e.incident_id, e.adapter],
                        )?;
                    }
                    out.push(Ok(EngagementImport {
                        imported: Imported::Added,
                        joined,
                    }));
                }
            }
        }
        if !atomic || out.iter().all(|o| o.is_ok()) {
            tx.commit()?;
        }
        Ok(out)
    }

    /// Every engagement's ids, provider and state, in id order; `pending_only` keeps those
    /// whose incident has not been read yet.
    pub fn engagement_states(&self, pending_only: bool) -> Result<Vec<EngagementState>> {
        let mut st = self.conn.prepare(
            "SELECT id, incident_id, adapter, provider, joined_at IS NOT NULL FROM engagements
             WHERE NOT ?1 OR joined_at IS NULL ORDER BY id",
        )?;
        let rows = st
            .query_map([pending_only], |r| {
                Ok(EngagementState {
                    id: r.get(0)?,
                    incident_id: r.get(1)?,
                    adapter: r.get(2)?,
                    provider: r.get(3)?,
                    joined: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Engagements recorded for an incident (of this adapter, or with no adapter named).
    pub fn engagements_for(&self, incident_id: &str, adapter: &str) -> Result<Vec<Engagement>> {
        let mut st = self.conn.prepare_cached(
            "SELECT body FROM engagements WHERE incident_id = ?1 AND (adapter IS NULL OR adapter = ?2) ORDER BY id",
        )?;
        let rows = st
            .query_map(params![incident_id, adapter], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter().map(|b| Ok(serde_json::from_str(b)?)).collect()
    }
}

/// Whether the record `id` is already in `table`: `None` if not, `Some(true)` with the same
/// body (a re-import), `Some(false)` with another (a conflict).
fn existing(
    tx: &rusqlite::Transaction,
    key: Option<&super::outbox::SealKey>,
    table: &str,
    id: &str,
    body: &str,
) -> Result<Option<bool>> {
    let existing: Option<Value> = tx
        .query_row(
            &format!("SELECT body FROM {table} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    existing
        .map(|b| Ok(super::unseal(key, b)? == body.as_bytes()))
        .transpose()
}

impl Store {
    fn record(&self, body: Value, revoked: Option<String>) -> Result<ConsentRecord> {
        Ok(ConsentRecord {
            consent: serde_json::from_slice(&super::unseal(self.seal.as_ref(), body)?)?,
            revoked_on: revoked.and_then(|r| r.parse().ok()),
        })
    }
}

/// Whether `table` has a row for the incident id (from this adapter, if given): `incidents`,
/// it has been read; `purged_incidents`, it was read and removed after its retention.
fn names(
    conn: &rusqlite::Connection,
    table: &'static str,
    incident_id: &str,
    adapter: Option<&str>,
) -> Result<bool> {
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM {table} WHERE incident_id = ?1 AND (?2 IS NULL OR adapter = ?2)"
        ))?
        .query_row(params![incident_id, adapter], |r| r.get(0))?;
    Ok(n > 0)
}
