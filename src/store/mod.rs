//! The embedded store: one SQLite file (WAL), migrations built in.
//!
//! SQLite was chosen for a file format that stays readable across years of upgrades and for
//! agency IT's `sqlite3` CLI. It holds the ingest ledger (what has been read, up to where), the
//! quarantine (rejected records: where they are and why, never their content), the staged
//! incidents that later stages consume, and the mapping gaps (codes with no table entry).
//! Neither the quarantine nor the mapping gaps hold a record's values (see [`gaps`]).

use crate::formats::{Checkpoint, Position, Rejection};
use crate::mapping::Gap;
use crate::model::Incident;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

pub mod attempts;
pub mod audit;
pub mod cancellations;
pub mod facts;
pub mod followup;
pub mod gaps;
mod migrations;
pub mod outbox;
pub mod pushes;
pub mod referral_lookup;
pub mod referrals;
pub mod registry;
pub mod task_ids;
pub mod vault;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: cannot create its folder or file: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "store: the file was written by a newer pnp-gateway (schema {found}, this one knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("store: cannot encode a record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

use migrations::MIGRATIONS;

/// What the ledger knows of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub size: u64,
    pub head_hash: String,
    pub content_hash: Option<String>,
    pub checkpoint: Checkpoint,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRow {
    pub id: i64,
    pub at: String,
    pub adapter: String,
    pub file: String,
    pub record: u64,
    pub line: u64,
    pub kind: String,
    pub field: Option<String>,
    pub reason: String,
}

pub struct Store {
    pub(crate) conn: Connection,
    /// Seals staged incidents' bodies at rest when set (see [`Store::seal_incidents_with`]).
    seal: Option<outbox::SealKey>,
    /// Describes unmapped values; `None`: the store's salt (see [`Store::gap_key`]).
    gap_key: Option<crate::mapping::unmapped::GapKey>,
    /// The open transaction is all or nothing ([`Store::write_whole`]): savepoints inside it
    /// would only cost their statements and subjournal pages.
    whole: bool,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How long a writer waits for the write lock before "database is locked": 30 s.
const LOCK_WAIT_MS: i32 = 30_000;

/// SQLite's busy handler, instead of `busy_timeout`'s: the waiting connection tries again every
/// millisecond. SQLite's own sleeps grow to 100 ms, and a writer that commits back to back (the
/// service's engine taking a stream of pushes) leaves gaps of a few milliseconds: the
/// dispatcher, waiting to record what it had sent, woke in few of them (`scripts/bench_api.py
/// push`, one connection, 100,000 records on tmpfs: 0 and 18,900 of the 57,144 payloads had
/// reached the receiver when the last push was answered; with this handler 34,040 and 30,858,
/// the whole as fast; 2026-12-03).
fn wait_for_the_lock(attempt: i32) -> bool {
    if attempt >= LOCK_WAIT_MS {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    true
}

impl Store {
    /// Opens the store, creating it owner-only (0600 in a 0700 folder) if it is new; SQLite
    /// gives its `-wal` and `-shm` files the database file's mode.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::owner_only::create_dir_all(dir)?;
        }
        crate::owner_only::touch(path)?;
        let mut conn = Connection::open(path)?;
        // Several processes share the store (`run` watching, an import, `outbox` commands): a
        // writer waits for the write lock rather than failing with "database is locked". 30 s
        // covers the longest write transaction the gateway holds (a group of ingest records, a
        // disclosure or delivery group, an import of thousands of records) with a wide margin;
        // it tries again every millisecond ([`wait_for_the_lock`]).
        conn.busy_handler(Some(wait_for_the_lock))?;
        // Write transactions take the write lock when they begin (BEGIN IMMEDIATE), waiting under
        // the busy handler. A deferred one that read first cannot take it once another process
        // has committed since its read: SQLite then fails at once, busy handler or not.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // An acknowledged write survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The delivery loop's statements are prepared once and reused.
        conn.set_prepared_statement_cache_capacity(64);
        // 64 MiB of page cache (SQLite's default is 2 MiB): the outbox's hot pages and the
        // vault's indexes keyed by MACs (every insert lands on a random leaf) stay in memory.
        // At 8 MiB a backfill re-read pages from the OS for most lookups; at 32 MiB it still
        // did at 200,000 incidents, or spilled a group's dirty leaves before its commit (the
        // system time is what fell; scripts/bench-e2e.sh, 200,000 rows:
        // 64 MiB took `run --once`'s CPU time from 51.6 s to 44.9 s, system time from 11.8 s to
        // 8.1 s, peak RSS from 57 to 90 MiB, under the 128).
        conn.pragma_update(None, "cache_size", -65536)?;
        // A checkpoint every 10,000 WAL pages (40 MiB) rather than SQLite's 1,000: a page that
        // several group commits rewrite (an index leaf, the audit chain's head) is copied into
        // the database once per checkpoint, not once per commit. Durability is the WAL's, and
        // the same: each commit is synced before it returns.
        conn.pragma_update(None, "wal_autocheckpoint", 10000)?;
        // The query planner's stability guarantee: a plan does not depend on the values bound
        // to a statement. Without it, SQLite (built with STAT4) marks a cached statement whose
        // WHERE has an OR, a LIMIT or a join on a bound value to be compiled again whenever a
        // new value is bound: the vault's and the engagements' look-ups were parsed and planned
        // again for every incident (11% of `run --once`'s CPU time). The store keeps no
        // statistics (no ANALYZE), so the plans are the same either way.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let mut store = Store {
            conn,
            seal: None,
            gap_key: None,
            whole: false,
        };
        store.migrate()?;
        store.describe_legacy_gaps()?;
        Ok(store)
    }

    /// Opens a group of writes committed together by [`Store::commit`] (one sync instead of
    /// one per write). Writes that use their own transaction join the group as savepoints.
    pub fn begin(&mut self) -> Result<()> {
        // A new transaction is not whole unless `write_whole` says so (not even after a panic
        // left the flag set).
        self.whole = false;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Runs `f` in the open group, or else in a write transaction of its own begun IMMEDIATE.
    /// For writes that read first through a savepoint: outside a transaction a savepoint begins
    /// a deferred one, which fails at once ("database is locked") when another process commits
    /// between its read and its write.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.begin()?;
        match f(self).and_then(|v| self.commit().map(|()| v)) {
            Ok(v) => Ok(v),
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// As [`Store::write`] for work that is all or nothing: any error in `f` rolls back the
    /// whole transaction (a disclosure group), so [`Store::atomically`] takes no savepoint inside
    /// it. A transaction already open is not known to be whole, and keeps its savepoints.
    pub(crate) fn write_whole<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.write(|s| {
            s.whole = true;
            let r = f(s);
            s.whole = false;
            r
        })
    }

    /// Runs `f` inside a savepoint: all its writes or none, within whatever transaction is
    /// open (inside a whole one, [`Store::write_whole`], the transaction is the savepoint).
    /// The savepoint's statements are prepared once (rusqlite's `savepoint()` parses
    /// `SAVEPOINT` and `RELEASE` on each call: the vault and the audit trail take one per
    /// incident and decision).
    pub(crate) fn atomically<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        if self.whole && !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn
            .prepare_cached("SAVEPOINT pnp_atomic")?
            .execute([])?;
        match f(self) {
            Ok(v) => {
                self.conn
                    .prepare_cached("RELEASE pnp_atomic")?
                    .execute([])?;
                Ok(v)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO pnp_atomic; RELEASE pnp_atomic");
                Err(e)
            }
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn ledger(&self, adapter: &str, path: &str) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, head_hash, content_hash, byte_offset, line, record, done
                 FROM ingest_ledger WHERE adapter = ?1 AND path = ?2",
                params![adapter, path],
                |r| {
                    Ok(LedgerEntry {
                        size: r.get::<_, i64>(0)? as u64,
                        head_hash: r.get(1)?,
                        content_hash: r.get(2)?,
                        checkpoint: Checkpoint {
                            byte: r.get::<_, i64>(3)? as u64,
                            line: r.get::<_, i64>(4)? as u64,
                            record: r.get::<_, i64>(5)? as u64,
                        },
                        done: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Writes a consistent copy of the whole store to `dest` (SQLite `VACUUM INTO`).
    /// The copy is created owner-only, like the store (SQLite fills an empty file).
    pub fn copy_to(&self, dest: &Path) -> Result<()> {
        crate::owner_only::touch(dest)?;
        self.conn
            .execute("VACUUM INTO ?1", [dest.to_string_lossy().as_ref()])?;
        Ok(())
    }

    /// Forgets a file (its content was replaced): it will be read from the start.
    pub fn forget(&self, adapter: &str, path: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM ingest_ledger WHERE adapter = ?1 AND path = ?2",
            params![adapter, path],
        )?;
        Ok(())
    }

    /// Starts a batch: records and the reading position are committed together, so a crash
    /// at any moment neither loses a record nor stores it twice.
    /// From now on, staged incidents and consents are written sealed (AES-256-GCM) and sealed
    /// ones can be read. A gateway that delivers has this key (the outbox's); one that only
    /// ingests keeps them as JSON.
    pub fn seal_incidents_with(&mut self, key: outbox::SealKey) {
        self.seal = Some(key);
    }

    /// Removes staged incidents that went through the disclosure stage more than `days` ago:
    /// the gateway is not a system of record. An engagement for one of them comes too late (it
    /// is refused at import: their ids are kept in `purged_incidents` for that); the ledger
    /// still remembers their files, so nothing is read again.
    /// Returns how many.
    pub fn purge_incidents(&self, days: u32) -> Result<usize> {
        let before = (chrono::Utc::now() - chrono::Duration::days(days as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // A savepoint, not a transaction: the purge may run inside a group of writes.
        self.conn.execute_batch("SAVEPOINT purge")?;
        let purged = (|| {
            // Disclosed before the cut, and not queued again since (an engagement came).
            let due = "SELECT id FROM disclosed WHERE at <= ?1 AND id NOT IN (SELECT id FROM undisclosed)";
            self.conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO purged_incidents (adapter, incident_id, purged_at)
                     SELECT DISTINCT adapter, incident_id, ?2 FROM incidents WHERE id IN ({due})"
                ),
                params![before, now()],
            )?;
            let n = self.conn.execute(
                &format!("DELETE FROM incidents WHERE id IN ({due})"),
                [&before],
            )?;
            self.conn.execute(
                &format!("DELETE FROM disclosed WHERE id IN ({due})"),
                [&before],
            )?;
            Ok::<_, rusqlite::Error>(n)
        })();
        match purged {
            Ok(n) => {
                self.conn.execute_batch("RELEASE purge")?;
                Ok(n)
            }
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO purge; RELEASE purge")?;
                Err(e.into())
            }
        }
    }

    fn incident_body(&self, body: rusqlite::types::Value) -> Result<Incident> {
        Ok(serde_json::from_slice(&unseal(self.seal.as_ref(), body)?)?)
    }

    pub fn batch(&mut self) -> Result<Batch<'_>> {
        Ok(Batch {
            seal: self.seal.as_ref(),
            tx: self.conn.transaction()?,
        })
    }

    pub fn quarantine(&self) -> Result<Vec<QuarantineRow>> {
        self.quarantine_where("1", [], u32::MAX)
    }

    /// The rejections of one file (a pushed export's spool file), in order.
    pub fn quarantine_of(&self, adapter: &str, file: &str) -> Result<Vec<QuarantineRow>> {
        self.quarantine_where("adapter = ?1 AND file = ?2", [adapter, file], u32::MAX)
    }

    /// The first `limit` rejections of a file, and how many there are in all: a push's answer
    /// lists a few, not a copy of the quarantine as large as the body.
    pub fn quarantine_head_of(
        &self,
        adapter: &str,
        file: &str,
        limit: u32,
    ) -> Result<(Vec<QuarantineRow>, u64)> {
        let head = self.quarantine_where("adapter = ?1 AND file = ?2", [adapter, file], limit)?;
        let total: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM quarantine WHERE adapter = ?1 AND file = ?2")?
            .query_row([adapter, file], |r| r.get(0))?;
        Ok((head, total as u64))
    }

    fn quarantine_where<P: rusqlite::Params>(
        &self,
        filter: &str,
        p: P,
        limit: u32,
    ) -> Result<Vec<QuarantineRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, at, adapter, file, record, line, kind, field, reason FROM quarantine WHERE {filter} ORDER BY id LIMIT {limit}"
        ))?;
        let rows = st.query_map(p, |r| {
            Ok(QuarantineRow {
                id: r.get(0)?,
                at: r.get(1)?,
                adapter: r.get(2)?,
                file: r.get(3)?,
                record: r.get::<_, i64>(4)? as u64,
                line: r.get::<_, i64>(5)? as u64,
                kind: r.get(6)?,
                field: r.get(7)?,
                reason: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Codes seen with no table entry: (adapter, table, code, count), most frequent first.
    pub fn mapping_gaps(&self) -> Result<Vec<(String, String, String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT adapter, code_table, code, count FROM mapping_gaps ORDER BY count DESC, adapter, code_table, code",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Staged incidents per (category, eligible).
    pub fn incident_counts(&self) -> Result<Vec<(String, bool, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT category, eligible, count(*) FROM incidents GROUP BY category, eligible ORDER BY category, eligible",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many staged incidents have not been through the disclosure stage (a progress bar's
    /// length).
    pub fn undisclosed_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM undisclosed", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Staged incidents that have not been through the disclosure stage: (row id, adapter,
    /// incident), in the order they were read.
    pub fn undisclosed(&self, limit: usize) -> Result<Vec<(i64, String, Incident)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT i.id, i.adapter, i.body FROM undisclosed u JOIN incidents i ON i.id = u.id ORDER BY u.id LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, rusqlite::types::Value>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, a, b)| Ok((id, a, self.incident_body(b)?)))
            .collect()
    }

    /// Takes the incident off the disclosure stage's queue and notes when (for the purge).
    pub fn mark_disclosed(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM undisclosed WHERE id = ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO disclosed (id, at) VALUES (?1, ?2)")?
            .execute(params![id, now()])?;
        Ok(())
    }

    /// Staged incidents' JSON bodies, in the order they were read.
    pub fn incidents(&self) -> Result<Vec<(String, u64, Incident)>> {
        let mut st = self
            .conn
            .prepare("SELECT file, record, body FROM incidents ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, rusqlite::types::Value>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (file, record, body) = row?;
            out.push((file, record, self.incident_body(body)?));
        }
        Ok(out)
    }
}

/// One transaction of ingest results; dropped without `commit`, it stores nothing.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
    seal: Option<&'a outbox::SealKey>,
}

impl Batch<'_> {
    pub fn incident(&self, adapter: &str, file: &str, pos: Position, inc: &Incident) -> Result<()> {
        let body = seal(self.seal, serde_json::to_string(inc)?)?;
        self.tx
            .prepare_cached(
                "INSERT INTO incidents (at, adapter, file, record, line, incident_id, action, category, eligible, rule, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                now(),
                adapter,
                file,
                pos.record as i64,
                pos.line as i64,
                inc.incident_id,
                inc.action.as_str(),
                inc.category.as_str(),
                inc.eligibility.eligible,
                inc.eligibility.rule,
                body
            ])?;
        self.tx
            .prepare_cached("INSERT INTO undisclosed (id) VALUES (?1)")?
            .execute([self.tx.last_insert_rowid()])?;
        // Engagements that came first join the incident now; it goes through the disclosure
        // stage with them.
        self.tx
            .prepare_cached(
                "UPDATE engagements SET joined_at = ?3
                 WHERE joined_at IS NULL AND incident_id = ?1 AND (adapter IS NULL OR adapter = ?2)",
            )?
            .execute(params![inc.incident_id, adapter, now()])?;
        Ok(())
    }

    pub fn reject(&self, adapter: &str, file: &str, pos: Position, r: &Rejection) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO quarantine (at, adapter, file, record, line, byte_offset, kind, field, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                now(),
                adapter,
                file,
                pos.record as i64,
                pos.line as i64,
                pos.byte as i64,
                r.kind,
                r.field,
                r.reason
            ])?;
        Ok(())
    }

    pub fn gap(&self, adapter: &str, gap: &Gap) -> Result<()> {
        let t = now();
        self.tx
            .prepare_cached(
                "INSERT INTO mapping_gaps (adapter, code_table, code, count, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4)
                 ON CONFLICT (adapter, code_table, code) DO UPDATE SET count = count + 1, last_seen = ?4",
            )?
            .execute(params![adapter, gap.table, gap.code, t])?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn ledger(
        &self,
        adapter: &str,
        path: &str,
        size: u64,
        head_hash: &str,
        content_hash: Option<&str>,
        cp: Checkpoint,
        done: bool,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO ingest_ledger (adapter, path, size, head_hash, content_hash, byte_offset, line, record, done, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (adapter, path) DO UPDATE SET size = ?3, head_hash = ?4, content_hash = ?5,
                   byte_offset = ?6, line = ?7, record = ?8, done = ?9, updated_at = ?10",
            )?
            .execute(params![
                adapter,
                path,
                size as i64,
                head_hash,
                content_hash,
                cp.byte as i64,
                cp.line as i64,
                cp.record as i64,
                done,
                now()
            ])?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

/// A JSON body as stored: sealed (a BLOB) when the store has a key, else as TEXT.
pub(crate) fn seal(key: Option<&outbox::SealKey>, json: String) -> Result<rusqlite::types::Value> {
    Ok(match key {
        Some(k) => rusqlite::types::Value::Blob(k.seal(json.as_bytes())?),
        None => rusqlite::types::Value::Text(json),
    })
}

/// A stored JSON body back: TEXT as it is, a sealed BLOB opened with the store's key.
pub(crate) fn unseal(key: Option<&outbox::SealKey>, v: rusqlite::types::Value) -> Result<Vec<u8>> {
    use rusqlite::types::Value as V;
    match v {
        V::Text(t) => Ok(t.into_bytes()),
        V::Blob(b) => match key {
            Some(k) => k.open(&b),
            None => Err(StoreError::Invalid(
                "this store is sealed: the outbox key (PNP_GATEWAY_OUTBOX_KEY or [keys] outbox_key_file) is needed to read it".into(),
            )),
        },
        _ => Err(StoreError::Invalid("a stored body is empty".into())),
    }
}
