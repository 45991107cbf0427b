//! The `file` destination: NDJSON or CSV into a folder (a provider's drop folder, a DHHR batch
//! drop). Each file is written to a temporary name, synced, then renamed, so a reader never sees
//! half a file.
//!   - NDJSON: a line is `{"idempotency_key", "destination", "payload"}`.
//!   - CSV: a header row, then a row per payload: `idempotency_key`, then one column per field
//!     of the payloads in this file (dotted paths such as `incident.category`, sorted; a list's
//!     values joined with `;`, a missing field empty).
//!
//! Either way each record carries its idempotency key, so a receiver can drop the duplicates a
//! crash between the rename and the bookkeeping may cause.
//!
//! A delivery killed between creating its temporary file and the rename leaves that file behind,
//! with the payloads in it (they are still pending in the outbox and go out again in another
//! file). In a provider's folder that is identified data outside the outbox, so the first pass of
//! a run removes the destination's own leftovers ([`remove_unfinished`]): only names of this
//! module's temporary pattern for that destination, and only files no live writer holds (a
//! writer keeps an exclusive lock on its temporary file until the rename).
//!
//! For a destination that receives identifying values (`owner_only`), the file is created 0600
//! under its temporary name (so the rename keeps it so) and a folder the gateway makes is 0700
//! (src/owner_only.rs).

use super::SendError;
use crate::config::destination::FileFormat;
use crate::store::outbox::Row;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One NDJSON line: the payload borrowed, not copied into a new JSON object (`json!` cloned
/// each payload, identifying values and all). The fields are in the order the JSON object's
/// sorted keys had, so the lines are the same bytes as before.
#[derive(serde::Serialize)]
struct Line<'a> {
    destination: &'a str,
    idempotency_key: &'a str,
    payload: &'a Value,
}

pub fn write_batch(
    folder: &Path,
    dest: &str,
    format: FileFormat,
    owner_only: bool,
    batch: &[(Row, Value)],
) -> Result<PathBuf, SendError> {
    let io = |what: &str, e: std::io::Error| SendError {
        retryable: true,
        message: format!("{what} in {}: {}", folder.display(), e.kind()),
        retry_after: None,
        // Files and Kafka messages carry no referral that a cancellation would follow.
        may_have_arrived: false,
    };
    if owner_only {
        crate::owner_only::create_dir_all(folder)
    } else {
        std::fs::create_dir_all(folder)
    }
    .map_err(|e| io("cannot create the folder", e))?;
    let first = batch.first().map_or(0, |(r, _)| r.id);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let ext = match format {
        FileFormat::Ndjson => "ndjson",
        FileFormat::Csv => "csv",
    };
    let name = format!("{dest}-{stamp}-{first}.{ext}");
    let tmp = folder.join(temp_name(&name));
    let dest_path = folder.join(&name);
    let write = || -> std::io::Result<()> {
        let f = if owner_only {
            crate::owner_only::options()
        } else {
            std::fs::OpenOptions::new()
        }
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
        // Held until the file is closed, after the rename: a run starting meanwhile leaves it be.
        f.lock()?;
        let mut w = std::io::BufWriter::new(f);
        match format {
            FileFormat::Ndjson => {
                for (row, payload) in batch {
                    let line = Line {
                        destination: dest,
                        idempotency_key: &row.idempotency_key,
                        payload,
                    };
                    serde_json::to_writer(&mut w, &line)?;
                    w.write_all(b"\n")?;
                }
            }
            FileFormat::Csv => write_csv(&mut w, batch)?,
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

/// The temporary name of a file to be renamed to `name`: hidden, so that a reader of the folder
/// skips it.
fn temp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Whether `file` is a temporary name [`write_batch`] makes for `dest`:
/// `.{dest}-{yyyymmddThhmmssfffZ}-{row id}.{ndjson|csv}.tmp`, nothing else (not another
/// destination's, whose id `dest` may begin, nor any file a person put there).
fn is_own_temp(file: &str, dest: &str) -> bool {
    let Some(rest) = file
        .strip_prefix('.')
        .and_then(|f| f.strip_prefix(dest))
        .and_then(|f| f.strip_prefix('-'))
        .and_then(|f| f.strip_suffix(".tmp"))
    else {
        return false;
    };
    let Some((stem, "ndjson" | "csv")) = rest.rsplit_once('.') else {
        return false;
    };
    let Some((stamp, first)) = stem.split_once('-') else {
        return false;
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let b = stamp.as_bytes();
    b.len() == 19
        && digits(&b[..8])
        && b[8] == b'T'
        && digits(&b[9..18])
        && b[18] == b'Z'
        && digits(first.as_bytes())
}

/// Removes the temporary files a stopped delivery of `dest` left in `folder`; returns how many.
/// A file another process is still writing (it holds the lock) is left alone. A folder that does
/// not exist yet has none.
pub fn remove_unfinished(folder: &Path, dest: &str) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| is_own_temp(n, dest))
            || !entry.file_type()?.is_file()
        {
            continue;
        }
        let path = entry.path();
        let Ok(f) = std::fs::File::open(&path) else {
            continue; // gone meanwhile: its writer renamed it
        };
        if f.try_lock().is_err() {
            continue; // a live writer
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed > 0
        && let Ok(d) = std::fs::File::open(folder)
    {
        let _ = d.sync_all();
    }
    Ok(removed)
}

fn write_csv(w: &mut impl Write, batch: &[(Row, Value)]) -> std::io::Result<()> {
    let rows: Vec<BTreeMap<String, String>> = batch
        .iter()
        .map(|(_, p)| {
            let mut cols = BTreeMap::new();
            flatten("", p, &mut cols);
            cols
        })
        .collect();
    let columns: BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    let mut out = csv::Writer::from_writer(w);
    out.write_record(std::iter::once("idempotency_key").chain(columns.iter().map(|c| c.as_str())))?;
    for ((row, _), cols) in batch.iter().zip(&rows) {
        out.write_record(
            std::iter::once(row.idempotency_key.as_str()).chain(
                columns
                    .iter()
                    .map(|c| cols.get(*c).map_or("", String::as_str)),
            ),
        )?;
    }
    out.flush()
}

/// Dotted paths to scalar values; a list of scalars is one column (`;`-joined), a list of
/// objects is numbered (`persons.0.role`).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let joined: Vec<String> = items.iter().map(scalar).collect();
            out.insert(prefix.to_string(), joined.join(";"));
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        Value::Null => {}
        v => {
            out.insert(prefix.to_string(), scalar(v));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_temporary_names_only() {
        let own = temp_name("prestera-20261202T050512123Z-17.ndjson");
        assert!(is_own_temp(&own, "prestera"));
        assert!(is_own_temp(
            ".prestera-20261202T050512123Z-1.csv.tmp",
            "prestera"
        ));
        for other in [
            "prestera-20261202T050512123Z-17.ndjson",  // a finished file
            ".prestera-20261202T050512123Z-17.ndjson", // not .tmp
            ".prestera-x-20261202T050512123Z-17.ndjson.tmp", // destination prestera-x
            ".prestera-notes.tmp",
            ".prestera-20261202T050512123Z-17.txt.tmp",
            ".prestera-20261202T0505121Z-17.ndjson.tmp",
            ".prestera-20261202T050512123Z-.ndjson.tmp",
            "prestera.tmp",
        ] {
            assert!(!is_own_temp(other, "prestera"), "{other}");
        }
        assert!(!is_own_temp(&own, "prest"));
    }

    #[test]
    fn unfinished_files_go_unless_a_writer_holds_them() {
        let d = tempfile::tempdir().unwrap();
        let left = d.path().join(".p-20261202T050512123Z-1.ndjson.tmp");
        let busy = d.path().join(".p-20261202T050512124Z-2.ndjson.tmp");
        let kept = d.path().join(".q-20261202T050512123Z-1.ndjson.tmp");
        for f in [&left, &busy, &kept] {
            std::fs::write(f, "{}\n").unwrap();
        }
        let held = std::fs::File::open(&busy).unwrap();
        held.lock().unwrap();
        assert_eq!(remove_unfinished(d.path(), "p").unwrap(), 1);
        assert!(!left.exists() && busy.exists() && kept.exists());
        drop(held);
        assert_eq!(remove_unfinished(d.path(), "p").unwrap(), 1);
        assert!(!busy.exists() && kept.exists());
        assert_eq!(remove_unfinished(&d.path().join("none"), "p").unwrap(), 0);
    }

    #[test]
    fn flattening() {
        let mut out = BTreeMap::new();
        flatten(
            "",
            &json!({"incident": {"category": "overdose", "times": {"received": 2026}},
                    "persons": [{"role": "subject", "phones": ["1", "2"]}], "notes": null}),
            &mut out,
        );
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("incident.category", "overdose"),
                ("incident.times.received", "2026"),
                ("persons.0.phones", "1;2"),
                ("persons.0.role", "subject"),
            ]
        );
    }
}
