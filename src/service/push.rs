//! An export pushed over the API, read the way a dropped file is: the body is written to a
//! spool file (owner-only: it holds identifying values), read by the pipeline's adapter with
//! the ingest ledger's checkpoints and the poison-file guard, and the push ledger records the
//! answer. The spool file goes once the answer is committed.

use crate::config::gateway::Pipeline;
use crate::pipeline::Stats;
use crate::policy::ProgramRules;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The answer to a push: what was accepted, and each rejected record with where and why
/// (never a value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushAnswer {
    pub accepted: u64,
    /// The first [`LISTED`] rejected records; `rejected_total` counts them all (`quarantine
    /// list` shows every one).
    pub rejected: Vec<Rejected>,
    #[serde(default)]
    pub rejected_total: u64,
    /// True when this key was answered before and nothing was read again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// The most rejected records an answer lists: a small body of bad rows would otherwise get an
/// answer many times its size (a 4 MB body of one-field rows: 258 MB, and as much memory).
pub const LISTED: u32 = 100;

impl PushAnswer {
    /// Every rejected record, listed or not (an answer stored before the count lists them all).
    pub fn rejected_count(&self) -> u64 {
        self.rejected_total.max(self.rejected.len() as u64)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rejected {
    pub record: u64,
    pub line: u64,
    pub field: Option<String>,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("this Idempotency-Key was used for a different body")]
    KeyReused,
    #[error("the store cannot take it now: {0}")]
    Store(#[from] StoreError),
    #[error("the store cannot take it now: {0}")]
    Ingest(#[from] crate::ingest::IngestError),
    #[error("the spool cannot take it now: {0}")]
    Spool(std::io::Error),
}

impl PushError {
    /// For `/readyz`: the store (or its disk) failing, as opposed to the client's mistake.
    pub fn store_failure(&self) -> Option<String> {
        match self {
            PushError::KeyReused => None,
            _ => Some("a push could not be committed".into()),
        }
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    crate::hex::encode(&h.finalize())
}

/// Reads `body` into the store for pipeline `p`, or answers from the push ledger when `client`
/// pushed under `key` before. `cursor` (a poll source's next position) moves with the answer.
#[allow(clippy::too_many_arguments)]
pub fn push(
    store: &mut Store,
    p: &Pipeline,
    rules: &ProgramRules,
    spool_dir: &Path,
    client: &str,
    key: &str,
    body: &[u8],
    cursor: Option<&str>,
    stats: &mut Stats,
) -> Result<PushAnswer, PushError> {
    let sha = hex_sha256(&[body]);
    if let Some(row) = store.push(client, &p.id, key)? {
        if row.body_sha256 != sha {
            return Err(PushError::KeyReused);
        }
        if let Some(answer) = row
            .answer
            .and_then(|a| serde_json::from_str::<PushAnswer>(&a).ok())
        {
            return Ok(PushAnswer {
                replayed: true,
                ..answer
            });
        }
    }
    // One spool file per client and key: the same push after a crash reads the same file on
    // from the ingest ledger's checkpoint.
    let spool = spool_path(spool_dir, &p.id, client, key);
    write_spool(&spool, body).map_err(PushError::Spool)?;
    let file = spool.display().to_string();
    store.push_begin(client, &p.id, key, &sha, &file)?;
    fault_hook(key);
    crate::ingest::ingest_file(store, &p.adapter, rules, &spool, None, None, stats)?;
    let (head, rejected_total) = store.quarantine_head_of(&p.adapter.name, &file, LISTED)?;
    let answer = PushAnswer {
        accepted: store.incidents_from(&p.adapter.name, &file)?,
        rejected_total,
        rejected: head
            .into_iter()
            .map(|q| Rejected {
                record: q.record,
                line: q.line,
                field: q.field,
                kind: q.kind,
                reason: q.reason,
            })
            .collect(),
        replayed: false,
    };
    let text = serde_json::to_string(&answer).unwrap_or_default();
    store.push_answer(client, &p.id, key, &text, cursor)?;
    if let Err(e) = std::fs::remove_file(&spool) {
        tracing::warn!(pipeline = %p.id, error = %e.kind(), "cannot remove a read push's spool file");
    }
    Ok(answer)
}

/// Where the service spools pushed bodies: `spool/` beside the store.
pub(crate) fn spool_dir(gw: &crate::config::Gateway) -> std::path::PathBuf {
    gw.store_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("spool")
}

/// The spool file of `client`'s push under `key` (a poll source reads a begun page back from it).
pub(crate) fn spool_path(
    spool_dir: &Path,
    pipeline: &str,
    client: &str,
    key: &str,
) -> std::path::PathBuf {
    let name = hex_sha256(&[client.as_bytes(), b"\n", key.as_bytes()]);
    spool_dir.join(pipeline).join(name)
}

/// Writes the body durably (the file and its folder synced) before anything refers to it.
fn write_spool(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::owner_only::create_dir_all(dir)?;
    let mut f = crate::owner_only::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// A test hook, in debug builds only: `PNP_GATEWAY_FAULT_ABORT_ON_PUSH=KEY` aborts the process
/// once a push under KEY is spooled and begun but not read: a crash between receipt and commit.
fn fault_hook(key: &str) {
    #[cfg(debug_assertions)]
    // An MLLP push's key is its control id, `#`, a digest of the message.
    if std::env::var("PNP_GATEWAY_FAULT_ABORT_ON_PUSH")
        .is_ok_and(|k| k == key || key.split('#').next() == Some(k.as_str()))
    {
        eprintln!("PNP_GATEWAY_FAULT_ABORT_ON_PUSH: aborting before reading push {key}");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = key;
}
