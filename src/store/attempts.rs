//! The poison-file guard. A file whose reading aborts the process (an allocation failure, a
//! bug in a reader) would otherwise be read again at every restart, and abort it again: the
//! pipelines after it would never run. So the start of each reading is committed before the
//! first byte is read, with the content's hash and where reading starts, and cleared when the
//! reading returns (read to its end, stopped, rejected or failed with an error). An attempt
//! still there at the next reading means the process stopped while reading that file.
//!
//! A stop counts against a file only when reading made no progress since the last one (no
//! batch was committed): a gateway killed now and then while it reads a big export goes on
//! from its checkpoint every time. After [`MAX_STOPS`] stops at the same place, the file is
//! set aside: one `poison_file` quarantine entry for the whole file, its ledger entry marked
//! done so that it is not looked at again, until its content changes (it is then a new file)
//! or an operator releases it ([`Store::release_set_aside`], `quarantine release`).

use super::{Result, Store, now};
use crate::formats::Checkpoint;
use rusqlite::{OptionalExtension, params};

/// Stops at the same place after which a file is set aside.
pub const MAX_STOPS: u32 = 2;

/// The quarantine kind of a file set aside.
pub const POISON_KIND: &str = "poison_file";

/// What to do with a file about to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Read it; the attempt is recorded.
    Read,
    /// Set aside now (the quarantine entry was written by this call).
    SetAsideNow,
    /// Set aside earlier, content unchanged: not read.
    SetAside,
}

/// The file about to be read.
pub struct Attempt<'a> {
    pub adapter: &'a str,
    pub path: &'a str,
    pub size: u64,
    pub head_hash: &'a str,
    pub content_hash: &'a str,
    /// Where this reading starts (the ledger's checkpoint, or the file's start).
    pub from: Checkpoint,
}

impl Store {
    /// Records that reading `a` starts (committed before it does), or says that the file is
    /// set aside. Call [`Store::end_attempt`] when the reading returns.
    pub fn begin_attempt(&mut self, a: &Attempt) -> Result<Verdict> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, u32, i64, i64, Option<String>)> = tx
            .query_row(
                "SELECT content_hash, attempts, byte_offset, record, set_aside_at
                 FROM ingest_attempts WHERE adapter = ?1 AND path = ?2",
                params![a.adapter, a.path],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        // Another content under the same name is another file; progress since the last stop
        // (a later checkpoint) starts the count again.
        let stops = match row {
            Some((hash, n, byte, record, aside)) if hash == a.content_hash => {
                if aside.is_some() {
                    return Ok(Verdict::SetAside);
                }
                let progressed = (a.from.byte as i64, a.from.record as i64) > (byte, record);
                if progressed { 0 } else { n }
            }
            _ => 0,
        };
        if stops >= MAX_STOPS {
            let reason = format!(
                "reading this file stopped the gateway {stops} times at the same place (record {}, byte {}); it is set aside and not read again until its content changes or `pnp-gateway quarantine release FILE`",
                a.from.record + 1,
                a.from.byte
            );
            tx.execute(
                "UPDATE ingest_attempts SET set_aside_at = ?3 WHERE adapter = ?1 AND path = ?2",
                params![a.adapter, a.path, now()],
            )?;
            tx.execute(
                "INSERT INTO quarantine (at, adapter, file, record, line, byte_offset, kind, field, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)",
                params![
                    now(),
                    a.adapter,
                    a.path,
                    (a.from.record + 1) as i64,
                    a.from.line as i64,
                    a.from.byte as i64,
                    POISON_KIND,
                    reason
                ],
            )?;
            // Done in the ledger: the file is skipped like one read to its end, and read again
            // from the start once its size or head changes.
            tx.execute(
                "INSERT INTO ingest_ledger (adapter, path, size, head_hash, content_hash, byte_offset, line, record, done, updated_at)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, 1, ?8)
                 ON CONFLICT (adapter, path) DO UPDATE SET size = ?3, head_hash = ?4, done = 1, updated_at = ?8",
                params![
                    a.adapter,
                    a.path,
                    a.size as i64,
                    a.head_hash,
                    a.from.byte as i64,
                    a.from.line as i64,
                    a.from.record as i64,
                    now()
                ],
            )?;
            tx.commit()?;
            return Ok(Verdict::SetAsideNow);
        }
        tx.execute(
            "INSERT INTO ingest_attempts (adapter, path, content_hash, attempts, byte_offset, record, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (adapter, path) DO UPDATE SET content_hash = ?3, attempts = ?4,
               byte_offset = ?5, record = ?6, started_at = ?7, set_aside_at = NULL",
            params![
                a.adapter,
                a.path,
                a.content_hash,
                stops + 1,
                a.from.byte as i64,
                a.from.record as i64,
                now()
            ],
        )?;
        tx.commit()?;
        Ok(Verdict::Read)
    }

    /// The reading of a file returned (whatever its outcome): it did not stop the process.
    pub fn end_attempt(&self, adapter: &str, path: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM ingest_attempts WHERE adapter = ?1 AND path = ?2 AND set_aside_at IS NULL",
            params![adapter, path],
        )?;
        Ok(())
    }
}

impl Store {
    /// Releases a file set aside (`path` as `quarantine list` names it): it is read again from
    /// the start at the next pass. Returns whether one was set aside under that name.
    pub fn release_set_aside(&mut self, path: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let adapters: Vec<String> = tx
            .prepare(
                "SELECT adapter FROM ingest_attempts WHERE path = ?1 AND set_aside_at IS NOT NULL",
            )?
            .query_map([path], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for adapter in &adapters {
            tx.execute(
                "DELETE FROM ingest_attempts WHERE adapter = ?1 AND path = ?2",
                params![adapter, path],
            )?;
            tx.execute(
                "DELETE FROM ingest_ledger WHERE adapter = ?1 AND path = ?2",
                params![adapter, path],
            )?;
        }
        tx.commit()?;
        Ok(!adapters.is_empty())
    }
}
