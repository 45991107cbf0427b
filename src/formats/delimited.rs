//! Delimited text (CSV, TSV, pipe, any one-byte delimiter) over `csv-core`, with the bounds and
//! recovery an export needs: UTF-8 BOM, CR/LF/CRLF, quoted fields across lines, a byte limit per
//! record, exact byte offsets for resuming, and resynchronisation after a broken record so that
//! one unterminated quote does not swallow the rest of the file.

use super::{Checkpoint, FileError, Item, Position, Rejection};
use csv_core::{ReadRecordResult, Reader as CoreReader, ReaderBuilder};
use serde::Deserialize;
use std::io::{self, Read, Seek, SeekFrom};

/// How a delimited export is laid out (the `[format]` table of an adapter).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelimitedOptions {
    /// One character: `,` (default), `\t`, `|`, `;`...
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether the first row names the columns (default true).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Column names for files without a header row (or to override a header).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// A record longer than this is rejected without being held in memory.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_delimiter() -> char {
    ','
}
fn default_quote() -> char {
    '"'
}
fn default_true() -> bool {
    true
}
pub fn default_max_record_bytes() -> usize {
    1 << 20
}

impl Default for DelimitedOptions {
    fn default() -> Self {
        DelimitedOptions {
            delimiter: ',',
            quote: '"',
            header: true,
            columns: None,
            max_record_bytes: default_max_record_bytes(),
        }
    }
}

impl DelimitedOptions {
    pub fn with_delimiter(delimiter: char) -> Self {
        DelimitedOptions {
            delimiter,
            ..Self::default()
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), String> {
        if !self.delimiter.is_ascii() || !self.quote.is_ascii() {
            return Err("delimiter and quote must be single ASCII characters".into());
        }
        if self.delimiter == self.quote {
            return Err("delimiter and quote must differ".into());
        }
        if !self.header && self.columns.is_none() {
            return Err("a file without a header row needs `columns`".into());
        }
        if self.max_record_bytes < 64 {
            return Err("max_record_bytes must be at least 64".into());
        }
        Ok(())
    }
}

/// One data row, UTF-8, fields addressed by column index.
#[derive(Debug, Default)]
pub struct Row {
    data: String,
    ends: Vec<usize>,
}

impl Row {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

const BUF_SIZE: usize = 64 * 1024;

/// A streaming delimited reader. Memory: one input buffer plus one record.
pub struct DelimitedReader<R> {
    inner: R,
    core: CoreReader,
    opts: DelimitedOptions,
    headers: Vec<String>,
    buf: Box<[u8]>,
    buf_pos: usize,
    buf_len: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    eof: bool,
    done: bool,
    line: u64,
    record: u64,
    out: Vec<u8>,
    ends: Vec<usize>,
    ends_used: usize,
}

/// Outcome of reading one raw record.
enum Raw {
    Record,
    TooLong,
    End,
}

impl<R: Read + Seek> DelimitedReader<R> {
    /// Opens a reader and reads the header row (if any). With `resume` set, continues at that
    /// checkpoint instead of the first data row.
    pub fn new(
        inner: R,
        opts: DelimitedOptions,
        resume: Option<Checkpoint>,
    ) -> Result<Self, FileError> {
        opts.validate().map_err(FileError::Header)?;
        let core = ReaderBuilder::new()
            .delimiter(opts.delimiter as u8)
            .quote(opts.quote as u8)
            .build();
        let mut r = DelimitedReader {
            inner,
            core,
            headers: Vec::new(),
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            buf_pos: 0,
            buf_len: 0,
            buf_offset: 0,
            eof: false,
            done: false,
            line: 1,
            record: 0,
            out: vec![0; 1024],
            ends: vec![0; 64],
            ends_used: 0,
            opts,
        };
        r.inner.seek(SeekFrom::Start(0))?;
        if r.opts.header {
            match r.read_raw()? {
                Raw::Record => {
                    let n = r.ends_len();
                    let mut start = 0;
                    for (i, &end) in r.ends[..n].iter().enumerate() {
                        // Each field on its own: the bytes of two fields may join into a
                        // character once the delimiter between them is gone.
                        let name = std::str::from_utf8(&r.out[start..end]).map_err(|_| {
                            FileError::Header(format!(
                                "the header row's column {} is not valid UTF-8",
                                i + 1
                            ))
                        })?;
                        r.headers.push(name.trim().to_owned());
                        start = end;
                    }
                }
                Raw::TooLong => {
                    return Err(FileError::Header(
                        "the header row is longer than max_record_bytes".into(),
                    ));
                }
                Raw::End => {}
            }
        }
        if let Some(cols) = &r.opts.columns {
            r.headers = cols.clone();
        }
        if let Some(cp) = resume
            && cp.byte > r.buf_offset + r.buf_pos as u64
        {
            r.seek_to(cp.byte, cp.line)?;
            r.record = cp.record;
        }
        Ok(r)
    }

    /// Column names (from the header row or `columns`).
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Where the next unread record starts.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            byte: self.offset(),
            line: self.line,
            record: self.record,
        }
    }

    fn offset(&self) -> u64 {
        self.buf_offset + self.buf_pos as u64
    }

    fn ends_len(&self) -> usize {
        self.ends_used
    }

    fn end_of(&self, n: usize) -> usize {
        if n == 0 { 0 } else { self.ends[n - 1] }
    }

    fn seek_to(&mut self, byte: u64, line: u64) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(byte))?;
        self.buf_offset = byte;
        self.buf_pos = 0;
        self.buf_len = 0;
        self.eof = false;
        self.done = false;
        self.line = line;
        self.core.reset();
        self.core.set_line(line);
        Ok(())
    }

    fn fill(&mut self) -> io::Result<()> {
        self.buf_offset += self.buf_pos as u64;
        self.buf_pos = 0;
        self.buf_len = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.buf_len = n;
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one record into `out`/`ends`. A record longer than the limit is consumed to its end
    /// without being stored.
    fn read_raw(&mut self) -> io::Result<Raw> {
        if self.done {
            return Ok(Raw::End);
        }
        let (mut outlen, mut endlen) = (0usize, 0usize);
        let mut too_long = false;
        loop {
            if self.buf_pos == self.buf_len && !self.eof {
                self.fill()?;
            }
            let input = &self.buf[self.buf_pos..self.buf_len];
            let (res, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.out[outlen..], &mut self.ends[endlen..]);
            // csv-core counts the `\n` it goes through (every one: it is never copied in bulk),
            // which spares a second pass over the bytes.
            self.line = self.core.line();
            self.buf_pos += nin;
            outlen += nout;
            endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => continue,
                ReadRecordResult::OutputFull => {
                    if self.out.len() >= self.opts.max_record_bytes {
                        // Keep parsing (to find the record's end) but stop storing it.
                        too_long = true;
                        outlen = 0;
                        endlen = 0;
                        self.ends_used = 0;
                    } else {
                        let n = (self.out.len() * 2).min(self.opts.max_record_bytes);
                        self.out.resize(n, 0);
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= 1 << 16 {
                        too_long = true;
                        outlen = 0;
                        endlen = 0;
                        self.ends_used = 0;
                    } else {
                        let n = self.ends.len() * 2;
                        self.ends.resize(n, 0);
                    }
                }
                ReadRecordResult::Record => {
                    self.ends_used = endlen;
                    return Ok(if too_long { Raw::TooLong } else { Raw::Record });
                }
                ReadRecordResult::End => {
                    self.done = true;
                    return Ok(Raw::End);
                }
            }
        }
    }

    /// The next record or rejection; `None` at the end of the file.
    pub fn next_item(&mut self, row: &mut Row) -> Result<Option<Item<()>>, FileError> {
        loop {
            // After a CR, csv-core leaves the LF of a CRLF for the next read: count it here so
            // that the record's position is its first byte and line.
            if self.buf_pos == self.buf_len && !self.eof {
                self.fill()?;
            }
            let lf = usize::from(
                self.buf
                    .get(self.buf_pos..self.buf_len)
                    .is_some_and(|b| b.first() == Some(&b'\n')),
            );
            let start = Position {
                byte: self.offset() + lf as u64,
                line: self.line + lf as u64,
                record: self.record + 1,
            };
            let raw = self.read_raw()?;
            let n = self.ends_len();
            match raw {
                Raw::End => return Ok(None),
                Raw::Record if n == 1 && self.ends[0] == 0 => continue, // blank line
                Raw::Record => {}
                Raw::TooLong => {}
            }
            self.record += 1;
            let spans_lines = self.line > start.line + 1;
            let rejection = match raw {
                Raw::TooLong => Some(Rejection::new(
                    "record_too_long",
                    format!(
                        "record longer than max_record_bytes ({} bytes){}",
                        self.opts.max_record_bytes,
                        if spans_lines {
                            format!(
                                "; it runs from line {} to line {}: an unterminated quote? The lines after line {} are read again as records",
                                start.line,
                                self.line - 1,
                                start.line
                            )
                        } else {
                            String::new()
                        }
                    ),
                )),
                _ if !self.headers.is_empty() && n != self.headers.len() => Some(Rejection::new(
                    "wrong_column_count",
                    format!(
                        "expected {} fields (as the header), found {}{}",
                        self.headers.len(),
                        n,
                        if spans_lines {
                            "; the record spans several lines: an unterminated quote?"
                        } else {
                            ""
                        }
                    ),
                )),
                _ => None,
            };
            if let Some(rejection) = rejection {
                if spans_lines {
                    // Resynchronise on the line after the record's first line, so that what an
                    // unterminated quote swallowed is read again as records of its own.
                    let next = self.next_line_start(start.byte)?;
                    self.seek_to(next, start.line + 1)?;
                }
                return Ok(Some(Item::Rejected(start, rejection)));
            }
            // A record across lines may be a quoted field that never closed, which took the
            // records after it in: rejected, and its lines read again.
            if spans_lines && let Some(why) = self.quote_trouble(start)? {
                let next = self.next_line_start(start.byte)?;
                self.seek_to(next, start.line + 1)?;
                return Ok(Some(Item::Rejected(
                    start,
                    Rejection::new("unterminated_quote", why),
                )));
            }
            // Each field on its own: the bytes of two fields may join into a character once the
            // delimiter between them is gone. The record is checked once as a whole; it is
            // valid field by field when it is valid and every field ends on a character
            // boundary (checking each field again cost about 4% of `normalize`).
            let whole = std::str::from_utf8(&self.out[..self.end_of(n)]).ok();
            let sound =
                whole.is_some_and(|t| self.ends[..n].iter().all(|&e| t.is_char_boundary(e)));
            let mut from = 0;
            for (idx, &end) in self.ends[..n].iter().enumerate() {
                if sound {
                    break;
                }
                if std::str::from_utf8(&self.out[from..end]).is_err() {
                    let name = self
                        .headers
                        .get(idx)
                        .cloned()
                        .unwrap_or_else(|| format!("column {}", idx + 1));
                    return Ok(Some(Item::Rejected(
                        start,
                        Rejection::new(
                            "invalid_utf8",
                            format!("field is not valid UTF-8 (column {})", idx + 1),
                        )
                        .with_field(name),
                    )));
                }
                from = end;
            }
            let text = match whole {
                Some(t) => t,
                None => std::str::from_utf8(&self.out[..self.end_of(n)])
                    .expect("valid fields concatenate to valid UTF-8"),
            };
            row.data.clear();
            row.data.push_str(text);
            row.ends.clear();
            row.ends.extend_from_slice(&self.ends[..n]);
            return Ok(Some(Item::Record(start, ())));
        }
    }

    /// Reads the raw bytes of the record just read (from `start` to where reading stands)
    /// again, strictly: a quoted field must close before the end of the file, and its closing
    /// quote be followed by a delimiter, another quote or the line's end. csv-core is lenient
    /// with both, and then one missing closing quote joins the records after it into one field.
    /// Returns why the record is not sound, or `None`.
    fn quote_trouble(&mut self, start: Position) -> io::Result<Option<String>> {
        #[derive(PartialEq)]
        enum S {
            FieldStart,
            Unquoted,
            Quoted,
            QuoteInQuoted,
        }
        let end = self.offset();
        let (quote, delim) = (self.opts.quote as u8, self.opts.delimiter as u8);
        self.inner.seek(SeekFrom::Start(start.byte))?;
        let mut chunk = [0u8; 8192];
        let mut left = end - start.byte;
        let mut state = S::FieldStart;
        let mut line = start.line;
        let mut quote_line = start.line;
        let mut trouble = None;
        'scan: while left > 0 {
            let n = self.inner.read(&mut chunk[..left.min(8192) as usize])?;
            if n == 0 {
                break;
            }
            left -= n as u64;
            for &b in &chunk[..n] {
                state = match state {
                    S::FieldStart if b == quote => {
                        quote_line = line;
                        S::Quoted
                    }
                    S::FieldStart | S::Unquoted if b == delim => S::FieldStart,
                    S::FieldStart | S::Unquoted => S::Unquoted,
                    S::Quoted if b == quote => S::QuoteInQuoted,
                    S::Quoted => S::Quoted,
                    S::QuoteInQuoted if b == quote => S::Quoted,
                    S::QuoteInQuoted if b == delim => S::FieldStart,
                    S::QuoteInQuoted if b == b'\r' || b == b'\n' => S::FieldStart,
                    S::QuoteInQuoted => {
                        trouble = Some(format!(
                            "the quoted field that opens on line {quote_line} closes on line {line} with a quote followed by other text: an unterminated quote? The lines after line {} are read again as records",
                            start.line
                        ));
                        break 'scan;
                    }
                };
                if b == b'\n' {
                    line += 1;
                }
            }
        }
        if trouble.is_none() && state == S::Quoted {
            trouble = Some(format!(
                "the quoted field that opens on line {quote_line} does not close before the end of the file ({} bytes after the record's start): an unterminated quote? The lines after line {} are read again as records",
                end - start.byte,
                start.line
            ));
        }
        // Back to where the buffered reading stands.
        self.inner
            .seek(SeekFrom::Start(self.buf_offset + self.buf_len as u64))?;
        Ok(trouble)
    }

    /// Offset just after the first `\n` at or after `from`.
    fn next_line_start(&mut self, from: u64) -> io::Result<u64> {
        self.inner.seek(SeekFrom::Start(from))?;
        let mut chunk = [0u8; 8192];
        let mut off = from;
        loop {
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                return Ok(off);
            }
            if let Some(i) = chunk[..n].iter().position(|&b| b == b'\n') {
                return Ok(off + i as u64 + 1);
            }
            off += n as u64;
        }
    }
}
