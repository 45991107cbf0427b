//! The push ledger: exports pushed over the API, by client, pipeline and idempotency key. A
//! row is written before the export is read (`answer` empty) and given its answer in the same
//! transaction as nothing else: the records themselves are committed by the ingest before it, so
//! a crash in between leaves a row without an answer, and the same push again reads the export
//! on from the ingest ledger's checkpoint (nothing twice) and then answers.

use super::{Result, Store, now};
use rusqlite::{OptionalExtension, params};

/// What the ledger holds for one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRow {
    pub body_sha256: String,
    pub spool: String,
    /// The JSON answer, once the export was read.
    pub answer: Option<String>,
}

impl Store {
    pub fn push(&self, client: &str, pipeline: &str, key: &str) -> Result<Option<PushRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT body_sha256, spool, answer FROM pushes
                 WHERE client = ?1 AND pipeline = ?2 AND key = ?3",
                params![client, pipeline, key],
                |r| {
                    Ok(PushRow {
                        body_sha256: r.get(0)?,
                        spool: r.get(1)?,
                        answer: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// The first key of `client`'s pushes into `pipeline` that starts with `prefix`: a Kafka
    /// source asks for the batch it pushed from an offset before, to cut the same batch again.
    pub fn push_key_with_prefix(
        &self,
        client: &str,
        pipeline: &str,
        prefix: &str,
    ) -> Result<Option<String>> {
        // A range over the primary key's index: every key that starts with `prefix`.
        let mut end = prefix.to_string();
        end.push(char::MAX);
        Ok(self
            .conn
            .query_row(
                "SELECT key FROM pushes WHERE client = ?1 AND pipeline = ?2 AND key >= ?3 AND key < ?4
                 ORDER BY key LIMIT 1",
                params![client, pipeline, prefix, end],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a push about to be read.
    pub fn push_begin(
        &self,
        client: &str,
        pipeline: &str,
        key: &str,
        body_sha256: &str,
        spool: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO pushes (client, pipeline, key, body_sha256, spool, at, answer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
            params![client, pipeline, key, body_sha256, spool, now()],
        )?;
        Ok(())
    }

    /// Gives a push its answer: from now on the same key gets it without reading anything. With
    /// `cursor`, the pipeline's source cursor moves in the same transaction.
    pub fn push_answer(
        &mut self,
        client: &str,
        pipeline: &str,
        key: &str,
        answer: &str,
        cursor: Option<&str>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE pushes SET answer = ?4 WHERE client = ?1 AND pipeline = ?2 AND key = ?3",
            params![client, pipeline, key, answer],
        )?;
        if let Some(c) = cursor {
            tx.execute(
                "INSERT INTO source_cursors (pipeline, cursor, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pipeline) DO UPDATE SET cursor = ?2, at = ?3",
                params![pipeline, c, now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A live source's cursor, once it has moved.
    pub fn source_cursor(&self, pipeline: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM source_cursors WHERE pipeline = ?1",
                params![pipeline],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Incidents stored from one file (a pushed export's spool file).
    pub fn incidents_from(&self, adapter: &str, file: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM incidents WHERE adapter = ?1 AND file = ?2",
            params![adapter, file],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
