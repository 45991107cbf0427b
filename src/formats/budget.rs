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
    /// before `>`). Returns false if the input ends first.
    pub fn skip_past_end_tag(&mut self, name: &[u8]) -> io::Result<bool> {
        let mut pat = b"</".to_vec();
        pat.extend_from_slice(name);
        // 0..pat.len(): bytes of `pat` matched; then waiting for `>` after optional whitespace.
        let mut matched = 0;
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
                let b = chunk[i];
                if matched < pat.len() {
                    if matched == 0 {
                        // Jump to the next `<`: `pat` has no other `<`, so no match is missed.
                        match memchr::memchr(b'<', &chunk[i..]) {
                            Some(j) => i += j,
                            None => break,
                        }
                        matched = 1;
                    } else if b == pat[matched] {
                        matched += 1;
                    } else {
                        matched = usize::from(b == b'<');
                    }
                } else if b == b'>' {
                    used = i + 1;
                    found = true;
                    break;
                } else if !b.is_ascii_whitespace() {
                    // `</nibrs:ReportHeader`, not `</nibrs:Report>`.
                    matched = usize::from(b == b'<');
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
}
