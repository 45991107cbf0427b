//! Parsers: bytes of an export in, records out. Parsers know nothing of mappings or policy.
//!
//! Every reader yields [`Item`]s: a record it could read, or a [`Rejection`] naming the line,
//! record and reason, after which it goes on with the next record. A reader never panics on
//! input and holds at most one record (bounded by `max_record_bytes`) in memory.

pub mod budget;
pub mod delimited;
pub mod eido;
pub mod hl7;
pub mod hl7_reply;
pub mod json;
pub mod nibrs;
pub mod sniff;
pub mod xml_error;

use serde::Serialize;

/// Where a record sits in its file. Lines and records count from 1; the header is not a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Byte offset of the record's first byte.
    pub byte: u64,
    /// Line of the record's first byte.
    pub line: u64,
    /// The record's ordinal among the file's data records.
    pub record: u64,
}

/// A resumable reading point: the first byte, line and record number not yet read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub byte: u64,
    pub line: u64,
    pub record: u64,
}

/// Why a record could not be read. The reason never quotes record content: exports carry PHI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// A stable short name to group by, e.g. `wrong_column_count`.
    pub kind: &'static str,
    /// The canonical or source field concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

impl Rejection {
    pub fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Rejection {
            kind,
            field: None,
            reason: reason.into(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// A record's fields as the mapping engine reads them.
pub enum RecordView<'a> {
    /// A delimited row, already checked to be UTF-8; fields by column index.
    Row(&'a delimited::Row),
    /// A JSON value (one NDJSON line, or one element of a JSON array).
    Json(&'a serde_json::Value),
}

/// One step of a reader.
pub enum Item<R> {
    Record(Position, R),
    Rejected(Position, Rejection),
}

/// Errors that stop a whole file (I/O, a header that cannot be read). Records never cause these.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Header(String),
    #[error(
        "JSON syntax error at line {line}, column {column}: {message}; records before it were read"
    )]
    JsonSyntax {
        line: usize,
        column: usize,
        /// Offset of the byte where the document broke off.
        byte: u64,
        message: String,
    },
}

/// What ends a line for [`read_line_bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// `\n` (a `\r` before it stays in the line).
    Lf,
    /// `\r`, `\n` or `\r\n` (HL7 segments).
    CrOrLf,
}

/// Reads one line into `buf`, without its terminator, keeping at most `max` bytes: a longer line
/// is consumed to its end but not stored. Returns the bytes consumed (terminator included; 0 at
/// the end of the input) and whether the line was cut.
pub fn read_line_bounded<R: std::io::BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    ends: LineEnd,
) -> std::io::Result<(usize, bool)> {
    buf.clear();
    let mut consumed = 0;
    let mut overlong = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((consumed, overlong));
        }
        let end = match ends {
            LineEnd::Lf => memchr::memchr(b'\n', chunk),
            LineEnd::CrOrLf => memchr::memchr2(b'\r', b'\n', chunk),
        };
        let stop = end.unwrap_or(chunk.len());
        let room = max.saturating_sub(buf.len());
        overlong |= stop > room;
        buf.extend_from_slice(&chunk[..stop.min(room)]);
        let Some(i) = end else {
            let n = chunk.len();
            r.consume(n);
            consumed += n;
            continue;
        };
        let cr = chunk[i] == b'\r';
        let crlf = cr && chunk.get(i + 1) == Some(&b'\n');
        let take = if crlf { i + 2 } else { i + 1 };
        r.consume(take);
        consumed += take;
        // A CR that ends the buffer may have its LF at the start of the next one.
        if cr
            && !crlf
            && let Ok(next) = r.fill_buf()
            && next.first() == Some(&b'\n')
        {
            r.consume(1);
            consumed += 1;
        }
        return Ok((consumed, overlong));
    }
}
