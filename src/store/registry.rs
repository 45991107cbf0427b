//! The consent registry and the PRSS engagements. Imports are all or nothing: one transaction
//! per file, and any error leaves the registry as it was.

use super::{Result, Store, StoreError, now};
use crate::model::{Consent, ConsentRecord, Engagement};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Imports consents in one transaction. A consent already in the registry with the same
    /// content is skipped; with different content it is an error. Returns the number added.
    pub fn import_consents(&mut self, consents: &[Consent]) -> Result<usize> {
        let key = self.seal.clone();
        let tx = self.conn.transaction()?;
        let mut added = 0;
        for c in consents {
            let body = serde_json::to_string(c)?;
            let new = is_new(&tx, key.as_ref(), "consents", &c.id, &body, || {
                format!(
                    "consent {} is already in the registry with different content; revoke it and import the new consent under a new id",
                    c.id
                )
            })?;
            if new {
                tx.prepare_cached(
                    "INSERT INTO consents (id, body, imported_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    c.id,
                    super::seal(key.as_ref(), body)?,
                    now()
                ])?;
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
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

    /// Whether an incident with this id (from this adapter, if given) has been read.
    pub fn has_incident(&self, incident_id: &str, adapter: Option<&str>) -> Result<bool> {
        let n: i64 = self.conn.prepare_cached("SELECT count(*) FROM incidents WHERE incident_id = ?1 AND (?2 IS NULL OR adapter = ?2)")?.query_row(
            params![incident_id, adapter],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Imports engagements in one transaction; each must name a known incident and consent.
    pub fn import_engagements(&mut self, es: &[Engagement]) -> Result<usize> {
        let mut problems = Vec::new();
        for e in es {
            if !self.has_incident(&e.incident_id, e.adapter.as_deref())? {
                problems.push(format!(
                    "engagement {}: no incident {} has been read",
                    e.id, e.incident_id
                ));
            }
            if self.consent(&e.consent_id)?.is_none() {
                problems.push(format!(
                    "engagement {}: consent {} is not in the registry",
                    e.id, e.consent_id
                ));
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems.join("\n")));
        }
        let tx = self.conn.transaction()?;
        let mut added = 0;
        for e in es {
            let body = serde_json::to_string(e)?;
            let new = is_new(&tx, None, "engagements", &e.id, &body, || {
                format!(
                    "engagement {} is already recorded with different content",
                    e.id
                )
            })?;
            if new {
                tx.prepare_cached("INSERT INTO engagements (id, incident_id, adapter, provider, consent_id, body, imported_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
                    params![e.id, e.incident_id, e.adapter, e.provider, e.consent_id, body, now()],
                )?;
                // The incident goes through the disclosure stage again, now with its engagement.
                tx.prepare_cached("UPDATE incidents SET disclosed_at = NULL WHERE incident_id = ?1 AND (?2 IS NULL OR adapter = ?2)")?.execute(
                    params![e.incident_id, e.adapter],
                )?;
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
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

/// Whether the record `id` is new to `table`. Imports are idempotent: the same content again is
/// not new; other content under the same id is an error (`conflict` says which).
/// Whether `id` is new in `table`; the same id with the same body is not (a re-import), with
/// another body it is a conflict.
fn is_new(
    tx: &rusqlite::Transaction,
    key: Option<&super::outbox::SealKey>,
    table: &str,
    id: &str,
    body: &str,
    conflict: impl FnOnce() -> String,
) -> Result<bool> {
    let existing: Option<Value> = tx
        .query_row(
            &format!("SELECT body FROM {table} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        None => Ok(true),
        Some(b) => {
            if super::unseal(key, b)? == body.as_bytes() {
                Ok(false)
            } else {
                Err(StoreError::Invalid(conflict()))
            }
        }
    }
}

impl Store {
    fn record(&self, body: Value, revoked: Option<String>) -> Result<ConsentRecord> {
        Ok(ConsentRecord {
            consent: serde_json::from_slice(&super::unseal(self.seal.as_ref(), body)?)?,
            revoked_on: revoked.and_then(|r| r.parse().ok()),
        })
    }
}
