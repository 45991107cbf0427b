//! The wiring of ingest stages: a file is read by its adapter's format reader, each record is
//! mapped and given its eligibility, and the results go to a [`Sink`] together with the reading
//! position, so that a sink that stores both in one transaction loses nothing on a crash.

pub mod disclosure;
pub mod sinks;

use crate::config::Adapter;
use crate::config::adapter::Format;
use crate::formats::delimited::{DelimitedReader, Row};
use crate::formats::eido::EidoReader;
use crate::formats::hl7::Hl7Reader;
use crate::formats::json::{NdjsonReader, stream_document_bounded};
use crate::formats::nibrs::flat::FlatReader;
use crate::formats::nibrs::xml::NibrsXmlReader;
use crate::formats::{Checkpoint, FileError, Item, Position, RecordView, Rejection};
use crate::mapping::unmapped::GapKey;
use crate::mapping::{Binding, Gap, Scratch};
use crate::model::{Category, Incident};
use crate::policy::ProgramRules;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

/// How many records go into one checkpointed batch.
pub const BATCH: u64 = 1000;

/// A batch is also committed once it is this old, so that a reading killed from outside (not by
/// its file) has made progress the poison-file guard can see (`store::attempts`): only stops at
/// the same place count against a file.
pub const BATCH_MS: u128 = 200;

/// Where results go. Called in reading order; `checkpoint` follows the items it covers.
pub trait Sink {
    fn incident(&mut self, pos: Position, inc: Incident) -> Result<(), SinkError>;
    fn rejected(&mut self, pos: Position, r: Rejection) -> Result<(), SinkError>;
    fn gap(&mut self, gap: Gap) -> Result<(), SinkError>;
    /// Everything before `cp` has been handed over; `done` when the file is fully read.
    fn checkpoint(&mut self, cp: Checkpoint, done: bool) -> Result<(), SinkError>;
    /// An incident this sink is done with (written out, not kept), handed back so that the
    /// mapping can fill its strings with the next record's values (see
    /// [`crate::mapping::reuse`]). A sink that keeps its incidents has none.
    fn spare(&mut self) -> Option<Incident> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode output: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{path}: {source}")]
    File { path: String, source: FileError },
}

/// Counts for the summary that `run`, `normalize` and `demo` print.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub files: u64,
    pub records: u64,
    pub incidents: u64,
    pub eligible: BTreeMap<Category, u64>,
    pub by_category: BTreeMap<Category, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub gaps: BTreeMap<Gap, u64>,
    pub bytes: u64,
}

impl Stats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn merge(&mut self, o: &Stats) {
        self.files += o.files;
        self.records += o.records;
        self.incidents += o.incidents;
        self.bytes += o.bytes;
        for (k, v) in &o.eligible {
            *self.eligible.entry(*k).or_default() += v;
        }
        for (k, v) in &o.by_category {
            *self.by_category.entry(*k).or_default() += v;
        }
        for (k, v) in &o.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.gaps {
            *self.gaps.entry(k.clone()).or_default() += v;
        }
    }
}

/// How a file's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Read to its end.
    Done,
    /// Stopped early (a record limit); resumable from the last checkpoint.
    Stopped,
}

/// Reads one file through an adapter.
pub struct FileRun<'a, 'p> {
    pub adapter: &'a Adapter,
    pub rules: &'a ProgramRules,
    /// Describes unmapped codes that are not code-shaped (see [`crate::mapping::unmapped`]).
    pub gap_key: &'a GapKey,
    /// Where to start (a checkpoint from the ledger), or the beginning.
    pub resume: Option<Checkpoint>,
    /// Stop after this many records (the rest stays for the next run).
    pub limit: Option<u64>,
    /// Called now and then with the bytes read so far.
    pub progress: Option<&'p mut dyn FnMut(u64)>,
}

impl FileRun<'_, '_> {
    pub fn run(
        mut self,
        path: &Path,
        sink: &mut dyn Sink,
        stats: &mut Stats,
    ) -> Result<Ended, PipelineError> {
        let file_err = |source: FileError| PipelineError::File {
            path: path.display().to_string(),
            source,
        };
        stats.files += 1;
        let mut file = File::open(path).map_err(|e| file_err(e.into()))?;
        let size = file.metadata().map_err(|e| file_err(e.into()))?.len();
        if size == 0 {
            let r = Rejection::new("empty_file", "the file is empty (0 bytes)");
            count_reject(stats, &r);
            sink.rejected(Position::default(), r)?;
            sink.checkpoint(Checkpoint::default(), true)?;
            return Ok(Ended::Done);
        }
        // A file with no data, or in UTF-16, is one rejection that says so (its reader would
        // pass over it in silence, or reject it for the wrong reason).
        if self.resume.is_none_or(|c| c.byte == 0 && c.record == 0) {
            let sniffed = crate::formats::sniff::sniff(&mut file);
            file.seek(SeekFrom::Start(0))
                .map_err(|e| file_err(e.into()))?;
            if let Some(r) = sniffed.map_err(|e| file_err(e.into()))? {
                return file_rejected(sink, stats, r.kind, r.reason);
            }
        }
        let mut state = MapState {
            adapter: self.adapter,
            rules: self.rules,
            gap_key: self.gap_key,
            binding: Binding::default(),
            gaps: Vec::new(),
            scratch: Scratch::default(),
            since_checkpoint: 0,
            batch_started: std::time::Instant::now(),
            limit: self.limit,
            read: 0,
        };
        match &self.adapter.format {
            Format::Delimited(opts) => {
                let reader = DelimitedReader::new(&mut file, opts.clone(), self.resume);
                let mut reader = match reader {
                    Ok(r) => r,
                    Err(FileError::Header(msg)) => {
                        return file_rejected(sink, stats, "bad_header", msg);
                    }
                    Err(e) => return Err(file_err(e)),
                };
                match self.adapter.mapping.bind(reader.headers()) {
                    Ok(b) => state.binding = b,
                    Err(msg) => return file_rejected(sink, stats, "missing_columns", msg),
                }
                let mut row = Row::default();
                while let Some(item) = reader.next_item(&mut row).map_err(file_err)? {
                    let item = match item {
                        Item::Record(pos, ()) => Item::Record(pos, RecordView::Row(&row)),
                        Item::Rejected(pos, r) => Item::Rejected(pos, r),
                    };
                    let cp = reader.checkpoint();
                    if state.step(item, cp, sink, stats, &mut self.progress)? {
                        return Ok(Ended::Stopped);
                    }
                }
                stats.bytes += size - self.resume.map_or(0, |c| c.byte);
                sink.checkpoint(reader.checkpoint(), true)?;
            }
            Format::Ndjson { max_record_bytes } => {
                let start = self.resume.unwrap_or(Checkpoint {
                    byte: 0,
                    line: 1,
                    record: 0,
                });
                file.seek(SeekFrom::Start(start.byte))
                    .map_err(|e| file_err(e.into()))?;
                let mut reader =
                    NdjsonReader::new(BufReader::new(&mut file), *max_record_bytes, start);
                while let Some(item) = reader.next_item().map_err(file_err)? {
                    let item = match &item {
                        Item::Record(pos, v) => Item::Record(*pos, RecordView::Json(v)),
                        Item::Rejected(pos, r) => Item::Rejected(*pos, r.clone()),
                    };
                    let cp = reader.checkpoint();
                    if state.step(item, cp, sink, stats, &mut self.progress)? {
                        return Ok(Ended::Stopped);
                    }
                }
                stats.bytes += size - start.byte;
                sink.checkpoint(reader.checkpoint(), true)?;
            }
            Format::NibrsXml { .. }
            | Format::NibrsFlat
            | Format::NenaEido
            | Format::Hl7v2 { .. } => {
                let skip = self.resume.map_or(0, |c| c.record);
                let reader = BufReader::new(&mut file);
                let mut next: Box<
                    dyn FnMut() -> Result<Option<Item<serde_json::Value>>, FileError>,
                > = match &self.adapter.format {
                    Format::NibrsXml { max_record_bytes } => {
                        let mut r = NibrsXmlReader::with_limit(reader, *max_record_bytes);
                        Box::new(move || r.next_item())
                    }
                    Format::NibrsFlat => {
                        let mut r = FlatReader::new(reader);
                        Box::new(move || r.next_item())
                    }
                    Format::Hl7v2 { processing_ids } => {
                        let mut r = Hl7Reader::new(reader).accepting(processing_ids);
                        Box::new(move || r.next_item())
                    }
                    _ => {
                        let mut r = EidoReader::new(reader).map_err(file_err)?;
                        Box::new(move || r.next_item())
                    }
                };
                let mut n = 0u64;
                while let Some(item) = next().map_err(file_err)? {
                    n += 1;
                    if n <= skip {
                        continue;
                    }
                    let item = match &item {
                        Item::Record(pos, v) => Item::Record(*pos, RecordView::Json(v)),
                        Item::Rejected(pos, r) => Item::Rejected(*pos, r.clone()),
                    };
                    let cp = Checkpoint {
                        byte: 0,
                        line: 0,
                        record: n,
                    };
                    if state.step(item, cp, sink, stats, &mut self.progress)? {
                        return Ok(Ended::Stopped);
                    }
                }
                stats.bytes += size;
                sink.checkpoint(
                    Checkpoint {
                        byte: size,
                        line: 0,
                        record: n,
                    },
                    true,
                )?;
            }
            Format::Json { max_record_bytes } => {
                let skip = self.resume.map_or(0, |c| c.record);
                let mut err = None;
                let mut last = skip;
                let mut stopped = false;
                let result = stream_document_bounded(
                    BufReader::new(&mut file),
                    *max_record_bytes,
                    skip,
                    &mut |item| {
                        let (rec, item) = match &item {
                            Item::Record(pos, v) => {
                                (pos.record, Item::Record(*pos, RecordView::Json(v)))
                            }
                            Item::Rejected(pos, r) => (pos.record, Item::Rejected(*pos, r.clone())),
                        };
                        last = rec;
                        match state.handle(item, sink, stats) {
                            Ok(true) => {
                                let cp = Checkpoint {
                                    byte: 0,
                                    line: 0,
                                    record: rec,
                                };
                                if let Err(e) = sink.checkpoint(cp, false) {
                                    err = Some(e);
                                    return false;
                                }
                                if state.stop() {
                                    stopped = true;
                                    return false;
                                }
                                true
                            }
                            Ok(false) => true,
                            Err(e) => {
                                err = Some(e);
                                false
                            }
                        }
                    },
                );
                if let Some(e) = err {
                    return Err(e.into());
                }
                if stopped {
                    return Ok(Ended::Stopped);
                }
                let end = Checkpoint {
                    byte: size,
                    line: 0,
                    record: last,
                };
                match result {
                    Ok(()) => {}
                    Err(FileError::JsonSyntax {
                        line,
                        column,
                        byte,
                        message,
                    }) => {
                        let r = Rejection::new(
                            "invalid_json",
                            format!(
                                "{message} at line {line}, column {column} (byte {byte}); the rest of the document ({} of {size} bytes) cannot be read",
                                size.saturating_sub(byte)
                            ),
                        );
                        count_reject(stats, &r);
                        sink.rejected(
                            Position {
                                byte,
                                line: line as u64,
                                record: last + 1,
                            },
                            r,
                        )?;
                    }
                    Err(e) => return Err(file_err(e)),
                }
                stats.bytes += size;
                sink.checkpoint(end, true)?;
            }
        }
        Ok(Ended::Done)
    }
}

fn count_reject(stats: &mut Stats, r: &Rejection) {
    *stats.rejected.entry(r.kind.to_owned()).or_default() += 1;
}

/// A problem with the whole file (header, columns): one quarantine entry, and the file is done.
fn file_rejected(
    sink: &mut dyn Sink,
    stats: &mut Stats,
    kind: &'static str,
    msg: String,
) -> Result<Ended, PipelineError> {
    let r = Rejection::new(kind, msg);
    count_reject(stats, &r);
    sink.rejected(
        Position {
            byte: 0,
            line: 1,
            record: 0,
        },
        r,
    )?;
    sink.checkpoint(Checkpoint::default(), true)?;
    Ok(Ended::Done)
}

struct MapState<'a> {
    adapter: &'a Adapter,
    rules: &'a ProgramRules,
    gap_key: &'a GapKey,
    binding: Binding,
    gaps: Vec<Gap>,
    scratch: Scratch,
    since_checkpoint: u64,
    batch_started: std::time::Instant,
    limit: Option<u64>,
    read: u64,
}

impl MapState<'_> {
    /// Handles one item; returns true when a checkpoint is due.
    fn handle(
        &mut self,
        item: Item<RecordView>,
        sink: &mut dyn Sink,
        stats: &mut Stats,
    ) -> Result<bool, SinkError> {
        stats.records += 1;
        self.read += 1;
        self.since_checkpoint += 1;
        match item {
            Item::Record(pos, view) => {
                self.gaps.clear();
                if let Some(done) = sink.spare() {
                    self.scratch.recycle(done);
                }
                let out = self.adapter.mapping.apply(
                    &self.adapter.provenance,
                    &view,
                    &self.binding,
                    self.gap_key,
                    &mut self.gaps,
                    &mut self.scratch,
                );
                for g in self.gaps.drain(..) {
                    *stats.gaps.entry(g.clone()).or_default() += 1;
                    sink.gap(g)?;
                }
                match out {
                    Ok(mut inc) => {
                        self.rules.apply(&mut inc);
                        stats.incidents += 1;
                        *stats.by_category.entry(inc.category).or_default() += 1;
                        if inc.eligibility.eligible {
                            *stats.eligible.entry(inc.category).or_default() += 1;
                        }
                        sink.incident(pos, inc)?;
                    }
                    Err(r) => {
                        count_reject(stats, &r);
                        sink.rejected(pos, r)?;
                    }
                }
            }
            Item::Rejected(pos, r) => {
                count_reject(stats, &r);
                sink.rejected(pos, r)?;
            }
        }
        // The clock is read every 32 records, not every one: a read costs about 1% of a
        // record's mapping, and 32 records take well under a millisecond.
        let due = self.since_checkpoint >= BATCH
            || (self.since_checkpoint.is_multiple_of(32)
                && self.batch_started.elapsed().as_millis() >= BATCH_MS)
            || self.stop();
        if due {
            self.since_checkpoint = 0;
            self.batch_started = std::time::Instant::now();
        }
        Ok(due)
    }

    /// Handles one item; at a batch boundary commits `cp` (where reading will go on) and
    /// reports progress. Returns true when the record limit says stop.
    fn step(
        &mut self,
        item: Item<RecordView>,
        cp: Checkpoint,
        sink: &mut dyn Sink,
        stats: &mut Stats,
        progress: &mut Option<&mut dyn FnMut(u64)>,
    ) -> Result<bool, SinkError> {
        if !self.handle(item, sink, stats)? {
            return Ok(false);
        }
        sink.checkpoint(cp, false)?;
        if self.stop() {
            return Ok(true);
        }
        if let Some(p) = progress.as_mut() {
            p(cp.byte);
        }
        Ok(false)
    }

    fn stop(&self) -> bool {
        self.limit.is_some_and(|l| self.read >= l)
    }
}
