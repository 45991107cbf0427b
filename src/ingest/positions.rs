//! Where records start in a PRSS file, as the line an editor shows: csv's positions are where
//! the reader stood before a record (the end of the previous one), and serde_json keeps no
//! positions for the elements of an array.

/// Lines of a text, counted forward once (records come in order).
pub(crate) struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Lines {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        }
    }

    /// The line of the byte at `offset` (not before the last one asked).
    pub(crate) fn line_at(&mut self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        if end > self.at {
            self.line += memchr::memchr_iter(b'\n', &self.text[self.at..end]).count();
            self.at = end;
        }
        self.line
    }

    /// The line a CSV record starts on, given where the reader stood before it: the line
    /// breaks (and blank lines) before its first byte are not part of it.
    pub(crate) fn start_of_record(&mut self, offset: usize) -> usize {
        let skip = self.text.get(offset..).map_or(0, |t| {
            t.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count()
        });
        self.line_at(offset + skip)
    }
}

/// The line each element of the array at `path` (object keys from the top; empty for the top
/// value itself) starts on, in a text serde_json has parsed. A top-level object counts as an
/// array of one. `None` when the path leads to no array.
pub(crate) fn element_lines(text: &str, path: &[&str]) -> Option<Vec<usize>> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    for key in path {
        if s.peek()? != b'{' {
            return None;
        }
        s.i += 1;
        loop {
            s.ws();
            match s.peek()? {
                b'}' => return None,
                b',' => {
                    s.i += 1;
                    continue;
                }
                _ => {}
            }
            let k = s.string()?;
            s.ws();
            s.i += 1; // ':'
            s.ws();
            if k == key.as_bytes() {
                break;
            }
            s.skip()?;
        }
    }
    let mut starts = Vec::new();
    match s.peek()? {
        b'{' if path.is_empty() => starts.push(s.i),
        b'[' => {
            s.i += 1;
            loop {
                s.ws();
                match s.peek()? {
                    b']' => break,
                    b',' => s.i += 1,
                    _ => {
                        starts.push(s.i);
                        s.skip()?;
                    }
                }
            }
        }
        _ => return None,
    }
    let mut lines = Lines::new(text);
    Some(starts.into_iter().map(|o| lines.line_at(o)).collect())
}

/// A cursor over valid JSON. Strings hold no raw line breaks in JSON, so lines are counted
/// from the offsets alone.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// A string's raw bytes (escapes left as they are); the cursor after its closing quote.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        loop {
            match *self.b.get(j)? {
                b'\\' => j += 2,
                b'"' => {
                    self.i = j + 1;
                    return Some(&self.b[start..j]);
                }
                _ => j += 1,
            }
        }
    }

    /// Past one value (object, array, string, number, literal).
    fn skip(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    if depth == 0 {
                        return Some(());
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    if depth == 0 {
                        return Some(());
                    }
                    depth -= 1;
                    self.i += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => return Some(()),
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_and_bundle_entries() {
        let text = "[\n  {\"a\": \"x]\\\"{\"},\n\n  {\"b\": [1, {\"c\": 2}]\n  },\n 3, \"s\"]";
        assert_eq!(element_lines(text, &[]), Some(vec![2, 4, 6, 6]));
        assert_eq!(element_lines("\n\n{\"a\":1}", &[]), Some(vec![3]));
        let bundle = "{\"resourceType\": \"Bundle\",\n \"x\": {\"entry\": 1},\n \"entry\": [\n {\"r\": 1},\n {\"r\": 2}]}";
        assert_eq!(element_lines(bundle, &["entry"]), Some(vec![4, 5]));
        assert_eq!(element_lines(bundle, &["nothing"]), None);
    }

    #[test]
    fn csv_record_starts_skip_the_previous_line_break_and_blank_lines() {
        let text = "h\n\"a\nb\"\n\r\n\nc\n";
        let mut l = Lines::new(text);
        assert_eq!(l.start_of_record(1), 2);
        assert_eq!(l.start_of_record(7), 6);
    }
}
