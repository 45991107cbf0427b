//! The `file` destination: NDJSON into a folder (a provider's drop folder, a DHHR batch drop).
//! Each batch is written to a temporary name, synced, then renamed, so a reader never sees half
//! a file; a line is `{"idempotency_key", "destination", "payload"}`, so a receiver can drop the
//! duplicates a crash between rename and bookkeeping may cause.

use super::SendError;
use crate::store::outbox::Row;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_batch(
    folder: &Path,
    dest: &str,
    batch: &[(Row, Value)],
) -> Result<PathBuf, SendError> {
    let io = |what: &str, e: std::io::Error| SendError {
        retryable: true,
        message: format!("{what} in {}: {}", folder.display(), e.kind()),
    };
    std::fs::create_dir_all(folder).map_err(|e| io("cannot create the folder", e))?;
    let first = batch.first().map_or(0, |(r, _)| r.id);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let name = format!("{dest}-{stamp}-{first}.ndjson");
    let tmp = folder.join(format!(".{name}.tmp"));
    let dest_path = folder.join(&name);
    let write = || -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        for (row, payload) in batch {
            serde_json::to_writer(
                &mut w,
                &json!({"idempotency_key": row.idempotency_key, "destination": dest, "payload": payload}),
            )?;
            w.write_all(b"\n")?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest_path)?;
        if let Ok(d) = std::fs::File::open(folder) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot write a batch", e)
    })?;
    Ok(dest_path)
}
