//! Sinks: JSON lines on stdout/stderr (`normalize`), and the embedded store (`run`).

use super::{Sink, SinkError};
use crate::formats::{Checkpoint, Position, Rejection};
use crate::mapping::Gap;
use crate::model::Incident;
use crate::store::Store;
use serde::Serialize;
use std::io::Write;

/// Incidents as JSON lines to `out`; each rejection as one JSON line to `err`.
pub struct JsonLines<O: Write, E: Write> {
    pub file: String,
    pub out: O,
    pub err: E,
    /// Incidents' lines not yet handed to `out`, written by [`crate::model::json`] (serde_json's
    /// text without its per-field machinery). They reach `out` a [`PENDING`] at a time and at
    /// each checkpoint: a write that large goes past a `BufWriter`'s buffer, so each line is
    /// copied once instead of twice.
    line: Vec<u8>,
    /// The incident last written, handed back by [`Sink::spare`].
    spare: Option<Incident>,
}

/// How many bytes of lines [`JsonLines`] gathers before writing them.
const PENDING: usize = 1 << 16;

impl<O: Write, E: Write> JsonLines<O, E> {
    pub fn new(file: String, out: O, err: E) -> Self {
        JsonLines {
            file,
            out,
            err,
            line: Vec::with_capacity(PENDING + 4096),
            spare: None,
        }
    }

    /// Hands the gathered lines to `out`.
    fn write_pending(&mut self) -> std::io::Result<()> {
        let r = self.out.write_all(&self.line);
        self.line.clear();
        r
    }
}

/// Lines still gathered when a reading stops on an error reach `out` as they did when each went
/// to `out` at once (a `BufWriter` writes what it holds when dropped).
impl<O: Write, E: Write> Drop for JsonLines<O, E> {
    fn drop(&mut self) {
        let _ = self.write_pending();
    }
}

/// The stderr line for a rejected record: `{"rejected": {...}}`.
#[derive(Serialize)]
pub struct RejectedLine<'a> {
    pub rejected: RejectedBody<'a>,
}

#[derive(Serialize)]
pub struct RejectedBody<'a> {
    pub file: &'a str,
    pub record: u64,
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    pub kind: &'a str,
    pub reason: &'a str,
}

/// Writes one `{"rejected": {...}}` line.
pub fn write_rejected(
    w: &mut impl Write,
    file: &str,
    pos: Position,
    r: &Rejection,
) -> Result<(), SinkError> {
    let line = RejectedLine {
        rejected: RejectedBody {
            file,
            record: pos.record,
            line: pos.line,
            field: r.field.as_deref(),
            kind: r.kind,
            reason: &r.reason,
        },
    };
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")?;
    Ok(())
}

impl<O: Write, E: Write> Sink for JsonLines<O, E> {
    fn incident(&mut self, _pos: Position, inc: Incident) -> Result<(), SinkError> {
        crate::model::json::write_incident(&mut self.line, &inc);
        self.line.push(b'\n');
        if self.line.len() >= PENDING {
            self.write_pending()?;
        }
        self.spare = Some(inc);
        Ok(())
    }

    fn spare(&mut self) -> Option<Incident> {
        self.spare.take()
    }

    fn rejected(&mut self, pos: Position, r: Rejection) -> Result<(), SinkError> {
        write_rejected(&mut self.err, &self.file, pos, &r)
    }

    fn gap(&mut self, _gap: Gap) -> Result<(), SinkError> {
        Ok(())
    }

    fn checkpoint(&mut self, _cp: Checkpoint, done: bool) -> Result<(), SinkError> {
        self.write_pending()?;
        if done {
            self.out.flush()?;
            self.err.flush()?;
        }
        Ok(())
    }
}

enum Pending {
    Incident(Position, Box<Incident>),
    Rejected(Position, Rejection),
    Gap(Gap),
}

/// Stages results in the store; each checkpoint commits the batch and the reading position in
/// one transaction.
pub struct StoreSink<'a> {
    pub store: &'a mut Store,
    pub adapter: String,
    pub file: String,
    pub size: u64,
    pub head_hash: String,
    /// Computed when the file is done (the whole content).
    pub content_hash: Option<String>,
    pending: Vec<Pending>,
}

impl<'a> StoreSink<'a> {
    pub fn new(
        store: &'a mut Store,
        adapter: &str,
        file: &str,
        size: u64,
        head_hash: String,
    ) -> Self {
        StoreSink {
            store,
            adapter: adapter.to_owned(),
            file: file.to_owned(),
            size,
            head_hash,
            content_hash: None,
            pending: Vec::new(),
        }
    }
}

impl Sink for StoreSink<'_> {
    fn incident(&mut self, pos: Position, inc: Incident) -> Result<(), SinkError> {
        self.pending.push(Pending::Incident(pos, Box::new(inc)));
        Ok(())
    }

    fn rejected(&mut self, pos: Position, r: Rejection) -> Result<(), SinkError> {
        self.pending.push(Pending::Rejected(pos, r));
        Ok(())
    }

    fn gap(&mut self, gap: Gap) -> Result<(), SinkError> {
        self.pending.push(Pending::Gap(gap));
        Ok(())
    }

    fn checkpoint(&mut self, cp: Checkpoint, done: bool) -> Result<(), SinkError> {
        let batch = self.store.batch()?;
        for p in self.pending.drain(..) {
            match p {
                Pending::Incident(pos, inc) => {
                    batch.incident(&self.adapter, &self.file, pos, &inc)?
                }
                Pending::Rejected(pos, r) => batch.reject(&self.adapter, &self.file, pos, &r)?,
                Pending::Gap(g) => batch.gap(&self.adapter, &g)?,
            }
        }
        let content = if done {
            self.content_hash.as_deref()
        } else {
            None
        };
        batch.ledger(
            &self.adapter,
            &self.file,
            self.size,
            &self.head_hash,
            content,
            cp,
            done,
        )?;
        batch.commit()?;
        Ok(())
    }
}

/// Hands each incident to `f` as it is read, and `None` at each checkpoint (`preview` decides
/// and prints an incident at once, and commits its scratch store's writes at checkpoints, so
/// that nothing of a file is held in memory); writes rejections as JSON lines to `err`.
pub struct Each<F, E: Write> {
    pub file: String,
    pub f: F,
    pub err: E,
}

impl<F, E> Sink for Each<F, E>
where
    F: FnMut(Option<Incident>) -> Result<(), SinkError>,
    E: Write,
{
    fn incident(&mut self, _pos: Position, inc: Incident) -> Result<(), SinkError> {
        (self.f)(Some(inc))
    }

    fn rejected(&mut self, pos: Position, r: Rejection) -> Result<(), SinkError> {
        write_rejected(&mut self.err, &self.file, pos, &r)
    }

    fn gap(&mut self, _gap: Gap) -> Result<(), SinkError> {
        Ok(())
    }

    fn checkpoint(&mut self, _cp: Checkpoint, _done: bool) -> Result<(), SinkError> {
        (self.f)(None)
    }
}
