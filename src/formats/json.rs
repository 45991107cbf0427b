//! JSON exports: NDJSON (one object per line) and JSON documents (one object, or an array of
//! objects, streamed element by element so that file size does not change memory use).

use super::{FileError, Item, LineEnd, Position, Rejection, read_line_bounded};
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead};

/// Reads NDJSON: one record per line; blank lines are skipped; a line longer than
/// `max_record_bytes` is rejected without being held in memory.
pub struct NdjsonReader<R> {
    inner: R,
    max: usize,
    line: u64,
    record: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> NdjsonReader<R> {
    /// `start` is where reading begins (a resume checkpoint, or the file start).
    pub fn new(inner: R, max_record_bytes: usize, start: super::Checkpoint) -> Self {
        NdjsonReader {
            inner,
            max: max_record_bytes,
            line: start.line.max(1),
            record: start.record,
            offset: start.byte,
            buf: Vec::new(),
        }
    }

    pub fn checkpoint(&self) -> super::Checkpoint {
        super::Checkpoint {
            byte: self.offset,
            line: self.line,
            record: self.record,
        }
    }

    pub fn next_item(&mut self) -> Result<Option<Item<Value>>, FileError> {
        loop {
            let pos = Position {
                byte: self.offset,
                line: self.line,
                record: self.record + 1,
            };
            let (consumed, overlong) =
                read_line_bounded(&mut self.inner, &mut self.buf, self.max, LineEnd::Lf)?;
            if consumed == 0 {
                return Ok(None);
            }
            self.offset += consumed as u64;
            self.line += 1;
            let mut text: &[u8] = &self.buf;
            if pos.byte == 0 && text.starts_with(b"\xEF\xBB\xBF") {
                text = &text[3..];
            }
            if !overlong && text.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            self.record += 1;
            if overlong {
                return Ok(Some(Item::Rejected(
                    pos,
                    Rejection::new(
                        "record_too_long",
                        format!("line longer than max_record_bytes ({} bytes)", self.max),
                    ),
                )));
            }
            return Ok(Some(match serde_json::from_slice::<Value>(text) {
                Ok(v @ Value::Object(_)) => Item::Record(pos, v),
                Ok(_) => Item::Rejected(
                    pos,
                    Rejection::new("not_an_object", "the line is JSON but not an object"),
                ),
                Err(e) => Item::Rejected(pos, json_rejection(&e)),
            }));
        }
    }
}

/// A rejection for a JSON error; serde_json's messages name positions, never values.
fn json_rejection(e: &serde_json::Error) -> Rejection {
    let kind = if e.is_eof() {
        "truncated_json"
    } else {
        "invalid_json"
    };
    Rejection::new(kind, format!("{} (column {})", category(e), e.column()))
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "JSON syntax error",
        serde_json::error::Category::Data => "JSON data error",
        serde_json::error::Category::Eof => "JSON ends early",
    }
}

/// Streams a JSON document with the default `max_record_bytes` (1 MiB); see
/// [`stream_document_bounded`].
pub fn stream_document<R: BufRead>(
    reader: R,
    skip: u64,
    emit: &mut dyn FnMut(Item<Value>) -> bool,
) -> Result<(), FileError> {
    let max = super::delimited::default_max_record_bytes();
    stream_document_bounded(reader, max, skip, emit)
}

/// Streams a JSON document: a top-level array yields each element as a record, a top-level
/// object is one record. `skip` records are parsed but not emitted (resuming a partly read
/// file). `emit` returns `false` to stop early. A record longer than `max_record_bytes` is cut
/// off in the byte source before serde_json holds it (a 1 GiB string costs at most that much),
/// and is emitted as a `record_too_long` rejection that ends the document: inside a cut record
/// there is no telling where the next one begins.
pub fn stream_document_bounded<R: BufRead>(
    mut reader: R,
    max_record_bytes: usize,
    skip: u64,
    emit: &mut dyn FnMut(Item<Value>) -> bool,
) -> Result<(), FileError> {
    let mut bom = 0;
    if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
        bom = 3;
    }
    let cut = Cut {
        pos: Cell::new(bom),
        stop: Cell::new(bom + max_record_bytes as u64),
        max: max_record_bytes as u64,
        hit: Cell::new(false),
        record: Cell::new(1),
        start: Cell::new(bom),
    };
    let mut de = serde_json::Deserializer::from_reader(Capped {
        inner: reader,
        cut: &cut,
    });
    let seed = TopLevel {
        skip,
        emit: &mut *emit,
        cut: &cut,
    };
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(_) if cut.hit.get() => {
            let (record, from, max) = (cut.record.get(), cut.start.get(), cut.max);
            let pos = Position {
                byte: from,
                line: 0,
                record,
            };
            let why = format!(
                "record {record} is longer than max_record_bytes ({max} bytes); the rest of the document, from byte {from}, could not be read"
            );
            emit(Item::Rejected(pos, Rejection::new("record_too_long", why)));
            Ok(())
        }
        Err(e) if e.is_io() => Err(FileError::Io(io::Error::other(e.to_string()))),
        Err(e) => Err(FileError::JsonSyntax {
            line: e.line(),
            column: e.column(),
            // serde_json reads byte by byte: what it took is where it stopped.
            byte: cut.pos.get().saturating_sub(1),
            message: category(&e).to_owned(),
        }),
    }
}

/// The budget of one record, shared by the byte source and the visitor that starts each record.
struct Cut {
    /// Bytes of the file consumed.
    pos: Cell<u64>,
    /// Where input stops until the next record starts.
    stop: Cell<u64>,
    max: u64,
    hit: Cell<bool>,
    /// The record being read, and where its budget began.
    record: Cell<u64>,
    start: Cell<u64>,
}

impl Cut {
    fn next_record(&self, record: u64) {
        self.record.set(record);
        self.start.set(self.pos.get());
        self.stop.set(self.pos.get() + self.max);
    }
}

/// A byte source that ends where the current record's budget ends.
struct Capped<'a, R> {
    inner: R,
    cut: &'a Cut,
}

impl<R: BufRead> io::Read for Capped<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let room = self.cut.stop.get().saturating_sub(self.cut.pos.get());
        let chunk = self.inner.fill_buf()?;
        if room == 0 && !chunk.is_empty() {
            self.cut.hit.set(true);
            return Ok(0);
        }
        let n = chunk.len().min(out.len()).min(room as usize);
        out[..n].copy_from_slice(&chunk[..n]);
        self.inner.consume(n);
        self.cut.pos.set(self.cut.pos.get() + n as u64);
        Ok(n)
    }
}

struct TopLevel<'a> {
    skip: u64,
    emit: &'a mut dyn FnMut(Item<Value>) -> bool,
    cut: &'a Cut,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut record = 0u64;
        self.cut.next_record(1);
        while let Some(v) = seq.next_element::<Value>()? {
            record += 1;
            self.cut.next_record(record + 1);
            if record <= self.skip {
                continue;
            }
            let pos = Position {
                byte: 0,
                line: 0,
                record,
            };
            let item = match v {
                Value::Object(_) => Item::Record(pos, v),
                _ => Item::Rejected(
                    pos,
                    Rejection::new("not_an_object", "array element is not an object"),
                ),
            };
            if !(self.emit)(item) {
                // Stop: drain nothing more; the caller asked to end.
                loop {
                    self.cut.next_record(0);
                    if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                        break;
                    }
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let v = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        if self.skip == 0 {
            (self.emit)(Item::Record(
                Position {
                    byte: 0,
                    line: 1,
                    record: 1,
                },
                v,
            ));
        }
        Ok(())
    }
}

use serde::Deserialize;
