//! MLLP framing (HL7's minimal lower-layer protocol): `0x0B` message `0x1C 0x0D`. Our own, with
//! a maximum frame size: a frame may arrive split across reads, or several in one read; bytes
//! outside a frame are skipped; a frame larger than the limit is an error, never unbounded memory.

use std::io::{self, Read};

pub const START: u8 = 0x0B;
pub const END: [u8; 2] = [0x1C, 0x0D];

pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&END);
    out
}

/// Reads frames from a byte stream, keeping what follows a frame for the next one.
pub struct FrameReader {
    max: usize,
    buf: Vec<u8>,
    /// How far the end marker was looked for already: a frame arriving a byte at a time is
    /// searched once over, not once per byte.
    searched: usize,
}

impl FrameReader {
    pub fn new(max: usize) -> Self {
        FrameReader {
            max,
            buf: Vec::new(),
            searched: 0,
        }
    }

    /// Bytes held of a frame not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame already buffered, if any.
    pub fn take_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(start) = self.buf.iter().position(|&b| b == START) else {
            self.buf.clear(); // noise before any frame
            self.searched = 0;
            return Ok(None);
        };
        if start > 0 {
            self.buf.drain(..start);
            self.searched = 0;
        }
        let from = self.searched.saturating_sub(1);
        if let Some(end) = self.buf[from..].windows(2).position(|w| w == END) {
            let end = from + end;
            let msg = self.buf[1..end].to_vec();
            self.buf.drain(..end + 2);
            self.searched = 0;
            return Ok(Some(msg));
        }
        self.searched = self.buf.len();
        if self.buf.len() > self.max + 3 {
            self.buf.clear();
            self.searched = 0;
            return Err(io::Error::other(format!(
                "a frame larger than {} bytes",
                self.max
            )));
        }
        Ok(None)
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Reads until one frame is complete.
    pub fn read_frame(&mut self, r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(f) = self.take_frame()? {
                return Ok(f);
            }
            let n = r.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed",
                ));
            }
            self.push(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_several_per_read() {
        let mut r = FrameReader::new(64);
        let two = [frame(b"MSH|one"), frame(b"MSH|two")].concat();
        r.push(b"noise");
        r.push(&two[..5]);
        assert_eq!(r.take_frame().unwrap(), None);
        r.push(&two[5..]);
        assert_eq!(r.take_frame().unwrap().unwrap(), b"MSH|one");
        assert_eq!(r.take_frame().unwrap().unwrap(), b"MSH|two");
        assert_eq!(r.take_frame().unwrap(), None);
        let mut big = vec![START];
        big.extend(std::iter::repeat_n(b'x', 100));
        r.push(&big);
        assert!(r.take_frame().is_err(), "a frame over the limit");
    }
}
