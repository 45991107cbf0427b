//! Transports that bring exports in: files named on the command line, and drop folders that the
//! gateway scans (woken by `notify`, with a periodic rescan as a safety net).
//!
//! The ledger in the store remembers, per adapter and file, how far it was read (byte offset,
//! line, record), the size and a hash of its head, so that a restart neither re-reads nor skips a
//! record, an export that grows is read on from where it stopped, and an export replaced under the
//! same name is read again from the start. Exports are never modified or deleted unless the
//! adapter says `after = "move"`.

mod positions;
pub mod records;

use crate::config::adapter::{After, Format};
use crate::config::gateway::Pipeline;
use crate::config::{Adapter, adapter::glob_match};
use crate::formats::Checkpoint;
use crate::pipeline::sinks::StoreSink;
use crate::pipeline::{Ended, FileRun, PipelineError, Stats};
use crate::policy::ProgramRules;
use crate::store::attempts::{Attempt, POISON_KIND, Verdict};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Bytes of a file's head hashed to recognise it again.
const HEAD: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// What to do with a file, given the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Already read to its end, unchanged.
    Skip,
    /// Read from the start.
    Fresh,
    /// Read on from a checkpoint (a stopped run, or an export that grew).
    Resume(Checkpoint),
}

fn hash_prefix(path: &Path, limit: u64) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut f = File::open(path)?.take(limit);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex::encode(&h.finalize()))
}

/// Decides how to read `path` for `adapter`.
pub fn plan(store: &Store, adapter: &Adapter, path: &Path, size: u64) -> Result<Plan, IngestError> {
    let key = path.display().to_string();
    let Some(entry) = store.ledger(&adapter.name, &key)? else {
        return Ok(Plan::Fresh);
    };
    let io = |source| IngestError::Io {
        path: key.clone(),
        source,
    };
    let head_len = HEAD.min(entry.checkpoint.byte.max(entry.size.min(HEAD)));
    let head = hash_prefix(path, head_len).map_err(io)?;
    let same_head = head == entry.head_hash;
    let resumable = matches!(adapter.format, Format::Delimited(_) | Format::Ndjson { .. })
        && entry.checkpoint.byte > 0;
    Ok(if !same_head || size < entry.size {
        store.forget(&adapter.name, &key)?;
        Plan::Fresh
    } else if entry.done && size == entry.size {
        Plan::Skip
    } else if entry.done && !resumable {
        // A whole-file rejection or a JSON document that changed: read it again.
        store.forget(&adapter.name, &key)?;
        Plan::Fresh
    } else {
        Plan::Resume(entry.checkpoint)
    })
}

/// Reads one file into the store, resuming where the ledger says.
pub fn ingest_file(
    store: &mut Store,
    adapter: &Adapter,
    rules: &ProgramRules,
    path: &Path,
    limit: Option<u64>,
    progress: Option<&mut dyn FnMut(u64)>,
    stats: &mut Stats,
) -> Result<Option<Ended>, IngestError> {
    let key = path.display().to_string();
    let io = |source| IngestError::Io {
        path: key.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    let resume = match plan(store, adapter, path, size)? {
        Plan::Skip => return Ok(None),
        Plan::Fresh => None,
        Plan::Resume(cp) => Some(cp),
    };
    let head_len = HEAD.min(size);
    let head = hash_prefix(path, head_len).map_err(io)?;
    let content = hash_prefix(path, u64::MAX).map_err(io)?;
    let gap_key = store.gap_key()?;
    let verdict = store.begin_attempt(&Attempt {
        adapter: &adapter.name,
        path: &key,
        size,
        head_hash: &head,
        content_hash: &content,
        from: resume.unwrap_or(Checkpoint {
            byte: 0,
            line: 1,
            record: 0,
        }),
    })?;
    match verdict {
        Verdict::Read => {}
        Verdict::SetAsideNow => {
            tracing::warn!(adapter = %adapter.name, file = %key, "reading this export stopped the gateway twice at the same place: set aside (see `quarantine list`)");
            *stats.rejected.entry(POISON_KIND.to_owned()).or_default() += 1;
            return Ok(None);
        }
        Verdict::SetAside => return Ok(None),
    }
    tracing::info!(adapter = %adapter.name, file = %key, resume = resume.is_some(), "reading export");
    fault_hook(path);
    let mut sink = StoreSink::new(store, &adapter.name, &key, size, head);
    sink.content_hash = Some(content);
    let ended = FileRun {
        adapter,
        rules,
        gap_key: &gap_key,
        resume,
        limit,
        progress,
    }
    .run(path, &mut sink, stats);
    // Returned, whatever the outcome: this reading did not stop the process.
    store.end_attempt(&adapter.name, &key)?;
    Ok(Some(ended?))
}

/// A test hook, in debug builds only: `PNP_GATEWAY_FAULT_ABORT_ON=NAME` aborts the process
/// when it starts reading a file named NAME, as a reader that runs out of memory would. The
/// integration tests of the poison-file guard use it; release builds do not read it.
fn fault_hook(path: &Path) {
    #[cfg(debug_assertions)]
    if let Some(name) = std::env::var_os("PNP_GATEWAY_FAULT_ABORT_ON")
        && path.file_name() == Some(name.as_os_str())
    {
        eprintln!(
            "PNP_GATEWAY_FAULT_ABORT_ON: aborting while reading {}",
            path.display()
        );
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = path;
}

/// The files of a drop folder that match `pattern`, oldest name first. Hidden files and
/// sub-folders (such as `processed/`) are not read.
pub fn list_folder(folder: &Path, pattern: &str) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_file() || !glob_match(pattern, &name) {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

/// Moves a fully read export aside (`after = "move"`), never over an existing file. A folder
/// made for them is the owner's only: exports hold identifying values.
pub fn move_done(path: &Path, folder: &Path, move_to: &str) -> io::Result<PathBuf> {
    let dest_dir = folder.join(move_to);
    crate::owner_only::create_dir_all(&dest_dir)?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut dest = dest_dir.join(&name);
    let mut n = 1;
    while dest.exists() {
        dest = dest_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &dest)?;
    Ok(dest)
}

/// One pass over a pipeline's drop folder. `settled` decides whether a file may be read now
/// (the watcher waits until a file stops growing). Returns false when `limit` stopped it.
/// A file that fails (an I/O error) does not keep the files after it from being read: the
/// error is logged, the pass goes on, and the first error is returned at its end.
pub fn drain_folder(
    store: &mut Store,
    p: &Pipeline,
    rules: &ProgramRules,
    limit: &mut Option<u64>,
    settled: &mut dyn FnMut(&Path) -> bool,
    progress: &mut dyn FnMut(&Path, u64, u64),
    stats: &mut Stats,
) -> Result<bool, IngestError> {
    let files = list_folder(&p.folder, &p.pattern).map_err(|source| IngestError::Io {
        path: p.folder.display().to_string(),
        source,
    })?;
    let mut first_error = None;
    for path in files {
        if !settled(&path) {
            continue;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = stats.records;
        let mut prog = |b: u64| progress(&path, b, size);
        let ended = ingest_file(
            store,
            &p.adapter,
            rules,
            &path,
            *limit,
            Some(&mut prog),
            stats,
        );
        if let Some(l) = limit.as_mut() {
            *l = l.saturating_sub(stats.records - before);
        }
        let ended = match ended {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(adapter = %p.adapter.name, error = %e, "cannot read this export; going on with the next");
                first_error.get_or_insert(e);
                None
            }
        };
        match ended {
            Some(Ended::Stopped) => return first_error.map_or(Ok(false), Err),
            Some(Ended::Done) if p.after == After::Move => {
                let dest = move_done(&path, &p.folder, &p.adapter.transport.move_to).map_err(
                    |source| IngestError::Io {
                        path: path.display().to_string(),
                        source,
                    },
                )?;
                tracing::info!(file = %path.display(), to = %dest.display(), "moved read export");
            }
            _ => {}
        }
        if limit == &Some(0) {
            return first_error.map_or(Ok(false), Err);
        }
    }
    first_error.map_or(Ok(true), Err)
}
