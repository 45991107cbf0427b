//! A referral by the logical id of the Task the `fhir` destination sent for it (the closed
//! loop's FHIR channel, `service::fhir_task`). That id is derived from the referral's key by a
//! hash the caller names (SQL cannot compute it), so the index (`fhir_task_ids`, migration 21)
//! is filled here, at lookup: the referrals queued since the last lookup are indexed first,
//! each once, and the id is then one primary-key read. Outbox rows are never deleted, so their
//! row ids only grow and "queued since" is a range over the outbox's primary key.

use super::referrals::Referral;
use super::{Result, Store};
use rusqlite::{OptionalExtension, params};

/// The `meta` row holding the last outbox row id whose referral is indexed.
const THROUGH: &str = "fhir_task_ids_through";

impl Store {
    /// The referral whose Task has the logical id `task_id`, where `derive` gives a referral's
    /// Task id from its key (always the same function: what was indexed stays indexed).
    pub fn referral_by_task_id(
        &mut self,
        task_id: &str,
        derive: fn(&str) -> String,
    ) -> Result<Option<Referral>> {
        self.index_task_ids(derive)?;
        let key: Option<String> = self
            .conn
            .prepare_cached("SELECT referral FROM fhir_task_ids WHERE task_id = ?1")?
            .query_row(params![task_id], |r| r.get(0))
            .optional()?;
        match key {
            Some(k) => self.referral(&k),
            None => Ok(None),
        }
    }

    /// Indexes the referrals queued after the last indexed outbox row. Reads only when no
    /// referral was queued since, so a lookup takes the write lock only when there is something
    /// to add.
    fn index_task_ids(&mut self, derive: fn(&str) -> String) -> Result<()> {
        let through = |s: &Store| -> Result<i64> {
            Ok(s.conn
                .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
                .query_row(params![THROUGH], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0))
        };
        // The last row that may be a referral: every referral carries its consent, and the
        // rows with one are few (referrals, their cancellations) and indexed. Rows for the
        // de-identified destinations, queued all the time, do not make a lookup write.
        let last: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(max(id), 0) FROM outbox INDEXED BY outbox_by_consent WHERE consent_id IS NOT NULL",
            )?
            .query_row([], |r| r.get(0))?;
        if last <= through(self)? {
            return Ok(());
        }
        self.write(|s| {
            let from = through(s)?;
            let keys: Vec<String> = s
                .conn
                .prepare_cached(
                    "SELECT idempotency_key FROM outbox
                     WHERE id > ?1 AND id <= ?2 AND profile = 'consented-referral' AND cancels IS NULL
                     ORDER BY id",
                )?
                .query_map(params![from, last], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut add = s.conn.prepare_cached(
                "INSERT OR IGNORE INTO fhir_task_ids (task_id, referral) VALUES (?1, ?2)",
            )?;
            for k in &keys {
                add.execute(params![derive(k), k])?;
            }
            drop(add);
            s.conn
                .prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
                .execute(params![THROUGH, last.max(from)])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::{NewRow, SealKey};

    fn queue(store: &mut Store, profile: &str, incident: &str) -> String {
        let payload = serde_json::json!({});
        let id = store
            .enqueue(
                &SealKey::from_secret(b"test"),
                &NewRow {
                    destination: "prestera",
                    adapter: "cad",
                    incident_id: incident,
                    profile,
                    // A referral carries its consent; a de-identified row none.
                    consent_id: (profile == "consented-referral").then_some("C-1"),
                    person_token: None,
                    fields: &[],
                    payload: &payload,
                    payload_digest: incident,
                },
            )
            .unwrap()
            .unwrap();
        store.outbox_row(id).unwrap().unwrap().idempotency_key
    }

    fn derive(key: &str) -> String {
        format!("task-{key}")
    }

    /// Referrals queued after a lookup are found by the next one; other profiles' rows and
    /// unknown ids are not; the index survives reopening the store.
    #[test]
    fn referrals_queued_since_the_last_lookup_are_found() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("store.db");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.referral_by_task_id("task-x", derive).unwrap(), None);
        let first = queue(&mut store, "consented-referral", "i-1");
        let found = store.referral_by_task_id(&derive(&first), derive).unwrap();
        assert_eq!(found.map(|r| r.id), Some(first.clone()));
        let report = queue(&mut store, "safe-harbor", "i-2");
        // Only a de-identified row queued since: the lookup reads and writes nothing.
        let writes = store.conn.total_changes();
        assert_eq!(store.referral_by_task_id("task-x", derive).unwrap(), None);
        assert_eq!(store.conn.total_changes(), writes);
        let second = queue(&mut store, "consented-referral", "i-3");
        assert_eq!(
            store.referral_by_task_id(&derive(&report), derive).unwrap(),
            None
        );
        let found = store.referral_by_task_id(&derive(&second), derive).unwrap();
        assert_eq!(found.map(|r| r.id), Some(second.clone()));
        assert_eq!(store.referral_by_task_id(&first, derive).unwrap(), None);
        drop(store);
        let mut store = Store::open(&path).unwrap();
        let indexed: i64 = store
            .conn
            .query_row("SELECT count(*) FROM fhir_task_ids", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 2);
        let found = store.referral_by_task_id(&derive(&first), derive).unwrap();
        assert_eq!(found.map(|r| r.id), Some(first));
    }
}
