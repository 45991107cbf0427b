//! A look at a file before its reader sees it, for the two kinds of file that every reader
//! would otherwise pass over in silence: a file with no data (whitespace, NUL bytes or a
//! byte-order mark alone: a reader that skips blank lines finds no record, and says nothing)
//! and a UTF-16 file (every reader here reads UTF-8; with NULs between the characters a CSV
//! header names no column the mapping knows, HL7 finds no MSH). Each becomes one rejection
//! of the whole file that says what it is.

use super::Rejection;
use std::io::{self, Read};

/// Bytes of the head looked at for UTF-16 without a byte-order mark.
const HEAD: usize = 4096;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `file` from where it stands (its start) and returns a rejection for a file with no
/// data or in UTF-16; `None` for a file its reader should read. Reads up to the first byte of
/// data (the whole file only when it has none); the caller seeks back.
pub fn sniff(file: &mut impl Read) -> io::Result<Option<Rejection>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    // The head: enough for the byte-order mark and the UTF-16 check.
    while filled < HEAD {
        let n = read_some(file, &mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &buf[..filled];
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Ok(Some(utf16(
            "it begins with a UTF-16 byte-order mark".to_owned(),
        )));
    }
    let bom = if head.starts_with(UTF8_BOM) { 3 } else { 0 };
    if let Some(order) = utf16_without_bom(&head[bom..]) {
        return Ok(Some(utf16(format!(
            "every other byte is NUL: UTF-16{order} without a byte-order mark"
        ))));
    }
    if head[bom..].iter().any(|&b| !blank(b)) {
        return Ok(None);
    }
    let mut total = filled as u64;
    loop {
        let n = read_some(file, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| !blank(b)) {
            return Ok(None);
        }
        total += n as u64;
    }
    Ok(Some(Rejection::new(
        "no_data",
        format!(
            "the file holds no data: its {total} bytes are whitespace, NUL bytes or a byte-order mark only"
        ),
    )))
}

fn read_some(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn blank(b: u8) -> bool {
    matches!(b, 0 | b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

fn utf16(how: String) -> Rejection {
    Rejection::new(
        "bad_encoding",
        format!("the file is UTF-16 ({how}); exports are read as UTF-8: export it as UTF-8"),
    )
}

/// "LE" or "BE" when at least three quarters of the head's byte pairs hold a NUL on one side
/// and a character on the other (ASCII text in UTF-16); no text in UTF-8 looks like that.
fn utf16_without_bom(head: &[u8]) -> Option<&'static str> {
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let (mut le, mut be) = (0, 0);
    for p in head.chunks_exact(2) {
        match (p[0], p[1]) {
            (a, 0) if a != 0 => le += 1,
            (0, b) if b != 0 => be += 1,
            _ => {}
        }
    }
    if le * 4 >= pairs * 3 {
        Some("LE")
    } else if be * 4 >= pairs * 3 {
        Some("BE")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(bytes: &[u8]) -> Option<&'static str> {
        sniff(&mut &bytes[..]).unwrap().map(|r| r.kind)
    }

    #[test]
    fn data_is_left_to_the_reader() {
        assert_eq!(kind(b"id,when\n1,2\n"), None);
        assert_eq!(kind(b"\xEF\xBB\xBFid\n"), None);
        assert_eq!(kind(b"  \n\n  x"), None);
        // Data after a long blank stretch.
        let mut v = vec![b' '; 200_000];
        v.push(b'x');
        assert_eq!(kind(&v), None);
    }

    #[test]
    fn blank_nul_and_bom_only_files_have_no_data() {
        assert_eq!(kind(b" \t\r\n "), Some("no_data"));
        assert_eq!(kind(&[0u8; 100_000]), Some("no_data"));
        assert_eq!(kind(b"\xEF\xBB\xBF"), Some("no_data"));
        assert_eq!(kind(b"\xEF\xBB\xBF\r\n"), Some("no_data"));
    }

    #[test]
    fn utf16_with_or_without_a_bom_is_bad_encoding() {
        assert_eq!(kind(b"\xFF\xFEi\0d\0"), Some("bad_encoding"));
        assert_eq!(kind(b"i\0d\0,\0w\0\n\0"), Some("bad_encoding"));
        assert_eq!(kind(b"\0i\0d\0,\0w\0\n"), Some("bad_encoding"));
    }
}
