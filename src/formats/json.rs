//! JSON exports: NDJSON (one object per line) and JSON documents (one object, or an array of
//! objects, streamed element by element so that file size does not change memory use).

use super::{FileError, Item, LineEnd, Position, Rejection, read_line_bounded};
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
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

/// Streams a JSON document: a top-level array yields each element as a record, a top-level
/// object is one record. `skip` records are parsed but not emitted (resuming a partly read
/// file). `emit` returns `false` to stop early.
pub fn stream_document<R: BufRead>(
    reader: R,
    skip: u64,
    emit: &mut dyn FnMut(Item<Value>) -> bool,
) -> Result<(), FileError> {
    let mut counted = Counted {
        inner: reader,
        n: 0,
    };
    if counted.inner.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        counted.inner.consume(3);
        counted.n = 3;
    }
    let mut de = serde_json::Deserializer::from_reader(&mut counted);
    let seed = TopLevel { skip, emit };
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_io() => Err(FileError::Io(io::Error::other(e.to_string()))),
        Err(e) => Err(FileError::JsonSyntax {
            line: e.line(),
            column: e.column(),
            // serde_json reads byte by byte: what it took is where it stopped.
            byte: counted.n.saturating_sub(1),
            message: category(&e).to_owned(),
        }),
    }
}

/// Counts the bytes read through it, to say where a document broke off.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

struct TopLevel<'a> {
    skip: u64,
    emit: &'a mut dyn FnMut(Item<Value>) -> bool,
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
        while let Some(v) = seq.next_element::<Value>()? {
            record += 1;
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
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
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
