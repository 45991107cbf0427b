//! A byte source with a budget, for parsers that read a whole token into memory (quick-xml reads
//! an attribute or a text node into one buffer, however long). The budget acts inside the byte
//! source, before any allocation: once `max` bytes have been served since the last
//! [`Budget::reset`], the source reports the end of input, so a 1 GiB attribute costs at most
//! `max` bytes of memory and the parser above stops; [`Budget::hit`] then tells that cut from a
//! real end of the file.

use std::io::{self, BufRead, Read};

pub struct Budget<R> {
    inner: R,
    /// Bytes served before `inner` and not counted (see [`Budget::replay`]).
    replay: Vec<u8>,
    replay_at: usize,
    /// Bytes of `inner` consumed so far: the position in the file.
    pos: u64,
    /// The position at which input stops until the next reset.
    stop: u64,
    max: u64,
    hit: bool,
    /// The last bytes of `inner` served, for [`Budget::skip_past_end_tag`].
    recent: std::collections::VecDeque<u8>,
}

/// How many of the last bytes served are kept: more than an end tag with some whitespace.
const RECENT: usize = 256;

/// Matches `</name` then optional whitespace then `>`, a byte at a time.
struct EndTag {
    pat: Vec<u8>,
    /// Bytes of `pat` matched; at `pat.len()`, waiting for `>`.
    matched: usize,
}

impl EndTag {
    fn new(name: &[u8]) -> Self {
        let mut pat = b"</".to_vec();
        pat.extend_from_slice(name);
        EndTag { pat, matched: 0 }
    }

    /// Takes one byte; true once the whole end tag is seen.
    fn feed(&mut self, b: u8) -> bool {
        if self.matched < self.pat.len() {
            if b == self.pat[self.matched] {
                self.matched += 1;
            } else {
                self.matched = usize::from(b == b'<');
            }
            false
        } else if b == b'>' {
            true
        } else {
            if !b.is_ascii_whitespace() {
                // `</nibrs:ReportHeader`, not `</nibrs:Report>`.
                self.matched = usize::from(b == b'<');
            }
            false
        }
    }
}

impl<R: BufRead> Budget<R> {
    pub fn new(inner: R, max: usize) -> Self {
        let max = max as u64;
        Budget {
            inner,
            replay: Vec::new(),
            replay_at: 0,
            pos: 0,
            stop: max,
            max,
            hit: false,
            recent: std::collections::VecDeque::with_capacity(RECENT),
        }
    }

    /// Bytes of the underlying input consumed so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Whether input was held back because the budget ran out (rather than the file ending).
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Starts a new budget of `max` bytes from here.
    pub fn reset(&mut self) {
        self.stop = self.pos + self.max;
        self.hit = false;
    }

    /// Serves `bytes` before the rest of the input, outside the budget and the position: the
    /// enclosing start tags a fresh parser needs to see after a resynchronisation.
    pub fn replay(&mut self, bytes: Vec<u8>) {
        self.replay = bytes;
        self.replay_at = 0;
    }

    /// Skips the raw input, without the budget, past the end tag `</name>` (whitespace allowed
    /// before `>`). The last bytes served count too: the budget may have run out inside that
    /// very end tag. Returns false if the input ends first.
    pub fn skip_past_end_tag(&mut self, name: &[u8]) -> io::Result<bool> {
        let mut m = EndTag::new(name);
        for &b in &self.recent {
            if m.feed(b) {
                // An end tag already read whole belongs to an earlier element.
                m.matched = 0;
            }
        }
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(false);
            }
            let mut used = chunk.len();
            let mut found = false;
            let mut i = 0;
            while i < chunk.len() {
                if m.matched == 0 {
                    // Jump to the next `<`: the tag has no other `<`, so no match is missed.
                    match memchr::memchr(b'<', &chunk[i..]) {
                        Some(j) => i += j,
                        None => break,
                    }
                }
                if m.feed(chunk[i]) {
                    used = i + 1;
                    found = true;
                    break;
                }
                i += 1;
            }
            self.inner.consume(used);
            self.pos += used as u64;
            if found {
                return Ok(true);
            }
        }
    }

    /// Reads the rest of the raw input without keeping it; returns how many bytes it held.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut n = 0;
        loop {
            let len = match self.inner.fill_buf() {
                Ok(c) => c.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if len == 0 {
                return Ok(n);
            }
            self.inner.consume(len);
            self.pos += len as u64;
            n += len as u64;
        }
    }
}

impl<R: BufRead> Read for Budget<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let chunk = self.fill_buf()?;
        let n = chunk.len().min(out.len());
        out[..n].copy_from_slice(&chunk[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budget<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.replay_at < self.replay.len() {
            return Ok(&self.replay[self.replay_at..]);
        }
        let room = self.stop.saturating_sub(self.pos);
        let chunk = self.inner.fill_buf()?;
        if room == 0 && !chunk.is_empty() {
            self.hit = true;
            return Ok(&[]);
        }
        let n = chunk.len().min(room as usize);
        Ok(&chunk[..n])
    }

    fn consume(&mut self, n: usize) {
        if self.replay_at < self.replay.len() {
            self.replay_at += n;
            return;
        }
        if let Ok(chunk) = self.inner.fill_buf() {
            let keep = &chunk[n.saturating_sub(RECENT)..n.min(chunk.len())];
            let over = (self.recent.len() + keep.len()).saturating_sub(RECENT);
            self.recent.drain(..over.min(self.recent.len()));
            self.recent.extend(keep);
        }
        self.inner.consume(n);
        self.pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_budget_and_resumes_after_a_reset() {
        let mut b = Budget::new(&b"0123456789"[..], 4);
        let mut s = String::new();
        b.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), b.hit()), ("0123", true));
        b.reset();
        s.clear();
        b.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), b.hit()), ("4567", true));
        b.reset();
        s.clear();
        b.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), b.hit()), ("89", false));
    }

    #[test]
    fn skips_past_the_end_tag_only() {
        let text = b"xx</a:ReportHeader></a:Report\n >rest";
        // A one-byte reader, so every match crosses buffers.
        let mut b = Budget::new(std::io::BufReader::with_capacity(1, &text[..]), 100);
        assert!(b.skip_past_end_tag(b"a:Report").unwrap());
        assert_eq!(b.pos(), 32);
        let mut s = String::new();
        b.read_to_string(&mut s).unwrap();
        assert_eq!(s, "rest");
        assert!(!b.skip_past_end_tag(b"a:Report").unwrap());
    }

    #[test]
    fn the_budget_running_out_inside_the_end_tag_still_finds_it() {
        let text = b"<a:Report>abc</a:Rep" as &[u8];
        let rest = b"ort>next</a:Report>" as &[u8];
        let mut b = Budget::new(text.chain(rest), text.len());
        let mut s = String::new();
        b.read_to_string(&mut s).unwrap();
        assert!(b.hit());
        assert!(b.skip_past_end_tag(b"a:Report").unwrap());
        b.reset();
        s.clear();
        b.read_to_string(&mut s).unwrap();
        assert!(s.starts_with("next"), "{s}");
    }
}
