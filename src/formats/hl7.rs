//! HL7 v2 messages in: segments split on CR, LF or CRLF (a UTF-8 BOM is skipped), one message
//! per MSH. MSH-2 is checked before parsing (a 5th, v2.7+ truncation character is set aside; a
//! short MSH-2 is an error, never a silent shift of every field). The structure is split here
//! rather than by `hl7-parser`: that crate takes MSH-2 as exactly five characters, mis-decodes
//! text with non-ASCII before an escape, and (measured) spent half of the HL7 ingest time in
//! allocations; splitting on five separators is short, and fuzzed. Values are unescaped by
//! [`unescape`], over characters. Each message becomes a JSON object
//! `{"MSH": [segment, ...], "PID": [...]}`, a segment being `[name, field 1, field 2, ...]` and a
//! field `[[[subcomponent, ...] per component] per repetition]`; mappings address it with HL7
//! paths such as `PID-3[2].1` (see docs/mapping.md). To keep allocations down, an empty field is
//! `[]` and a component without subcomponents is its string rather than `[string]`.

use super::{FileError, Item, LineEnd, Position, Rejection, read_line_bounded};
use serde_json::{Map, Value};
use std::io::BufRead;

/// Limits that keep one message bounded in memory.
pub const MAX_SEGMENT_BYTES: usize = 1 << 20;
pub const MAX_SEGMENTS: usize = 5_000;
/// All segments of one message together (5,000 segments of 1 MiB would be 5 GiB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

pub struct Hl7Reader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Segments of the message being gathered, its first line and byte, and whether it broke.
    segments: Vec<String>,
    /// Bytes held in `segments`.
    held: usize,
    start: Position,
    broken: Option<Rejection>,
    line: u64,
    offset: u64,
    record: u64,
    done: bool,
    /// MSH-11 processing IDs taken as real incidents (`P`, production, by default).
    processing_ids: Vec<String>,
}

/// The processing IDs (MSH-11) a reader takes unless its adapter says otherwise: production.
/// `T` (training) and `D` (debugging) messages are exercises, not incidents.
pub fn default_processing_ids() -> Vec<String> {
    vec!["P".into()]
}

impl<R: BufRead> Hl7Reader<R> {
    pub fn new(inner: R) -> Self {
        Hl7Reader {
            inner,
            buf: Vec::new(),
            segments: Vec::new(),
            held: 0,
            start: Position::default(),
            broken: None,
            line: 0,
            offset: 0,
            record: 0,
            done: false,
            processing_ids: default_processing_ids(),
        }
    }

    /// Takes messages whose MSH-11 is one of `ids` (a message without MSH-11 is always taken).
    pub fn accepting(mut self, ids: &[String]) -> Self {
        self.processing_ids = ids.to_vec();
        self
    }

    /// Finishes the message gathered so far.
    fn take(&mut self) -> Option<Item<Value>> {
        if self.segments.is_empty() && self.broken.is_none() {
            return None;
        }
        let segments = std::mem::take(&mut self.segments);
        self.held = 0;
        let pos = self.start;
        Some(match self.broken.take() {
            Some(r) => Item::Rejected(pos, r),
            None => match message(&segments, &self.processing_ids) {
                Ok(v) => Item::Record(pos, v),
                Err(r) => Item::Rejected(pos, r),
            },
        })
    }

    pub fn next_item(&mut self) -> Result<Option<Item<Value>>, FileError> {
        loop {
            if self.done {
                return Ok(self.take());
            }
            let at = self.offset;
            let (n, overlong) = read_line_bounded(
                &mut self.inner,
                &mut self.buf,
                MAX_SEGMENT_BYTES,
                LineEnd::CrOrLf,
            )?;
            if n == 0 {
                self.done = true;
                continue;
            }
            self.offset += n as u64;
            self.line += 1;
            let owned = std::mem::take(&mut self.buf);
            let mut seg: &[u8] = &owned;
            if at == 0 && seg.starts_with(b"\xEF\xBB\xBF") {
                seg = &seg[3..];
            }
            if seg.iter().all(u8::is_ascii_whitespace) && !overlong {
                self.buf = owned;
                continue;
            }
            let is_msh =
                seg.starts_with(b"MSH") || seg.starts_with(b"FHS") || seg.starts_with(b"BHS");
            let mut out = None;
            if is_msh || (self.segments.is_empty() && self.broken.is_none()) {
                out = self.take();
                self.record += 1;
                self.start = Position {
                    byte: at,
                    line: self.line,
                    record: self.record,
                };
                if !is_msh {
                    self.broken = Some(Rejection::new(
                        "bad_hl7",
                        "the message does not begin with an MSH segment",
                    ));
                }
            }
            if seg.starts_with(b"FHS")
                || seg.starts_with(b"BHS")
                || seg.starts_with(b"FTS")
                || seg.starts_with(b"BTS")
            {
                // Batch envelopes carry no message content.
                self.buf = owned;
                if out.is_some() {
                    return Ok(out);
                }
                continue;
            }
            if self.broken.is_none() {
                if overlong {
                    self.broken = Some(Rejection::new(
                        "record_too_long",
                        format!(
                            "segment on line {} is longer than {MAX_SEGMENT_BYTES} bytes",
                            self.line
                        ),
                    ));
                } else if self.segments.len() >= MAX_SEGMENTS {
                    self.broken = Some(Rejection::new(
                        "record_too_long",
                        format!("the message has more than {MAX_SEGMENTS} segments"),
                    ));
                    self.segments.clear();
                } else if self.held + seg.len() > MAX_MESSAGE_BYTES {
                    self.broken = Some(Rejection::new(
                        "record_too_long",
                        format!(
                            "the message is longer than {MAX_MESSAGE_BYTES} bytes (at line {})",
                            self.line
                        ),
                    ));
                    self.segments.clear();
                } else {
                    match std::str::from_utf8(seg) {
                        Ok(s) => {
                            self.held += s.len();
                            self.segments.push(s.to_owned());
                        }
                        Err(_) => {
                            self.broken = Some(Rejection::new(
                                "invalid_utf8",
                                format!("segment on line {} is not valid UTF-8", self.line),
                            ));
                            self.segments.clear();
                        }
                    }
                }
            }
            self.buf = owned;
            if out.is_some() {
                return Ok(out);
            }
        }
    }
}

/// Checks MSH-2, parses the segments, and builds the JSON form; replies (ACK, MCF, RRI) and
/// processing ids other than `processing_ids` carry no incident and are refused.
fn message(segments: &[String], processing_ids: &[String]) -> Result<Value, Rejection> {
    let out = structure(segments)?;
    incident_message(out, processing_ids)
}

/// Checks MSH-2, parses the segments, and builds the JSON form, whatever the message is (the
/// closed loop's reader of replies, `hl7_reply.rs`, takes what ingest refuses).
pub fn structure(segments: &[String]) -> Result<Value, Rejection> {
    let bad = |why: String| Rejection::new("bad_hl7", why);
    let msh = segments
        .first()
        .ok_or_else(|| bad("empty message".into()))?;
    let mut chars = msh.chars();
    let (Some('M'), Some('S'), Some('H'), Some(fs)) =
        (chars.next(), chars.next(), chars.next(), chars.next())
    else {
        return Err(bad("the message does not begin with an MSH segment".into()));
    };
    if fs.is_alphanumeric() || fs.is_whitespace() {
        return Err(bad(format!(
            "MSH-1 (field separator) `{fs}` is not a separator character"
        )));
    }
    let msh2: String = chars.by_ref().take_while(|&c| c != fs).collect();
    let n2 = msh2.chars().count();
    let mut first = msh.clone();
    match n2 {
        4 => {}
        5 => {
            // v2.7+: the 5th is the truncation character. Set it aside so that fields keep their
            // numbers.
            let keep: String = msh2.chars().take(4).collect();
            first = format!("MSH{fs}{keep}{}", &msh[3 + fs.len_utf8() + msh2.len()..]);
        }
        _ => {
            return Err(bad(format!(
                "MSH-2 has {n2} encoding characters; 4 are needed (5 with a v2.7+ truncation character)"
            )));
        }
    }
    let enc: Vec<char> = msh2.chars().take(4).collect();
    let mut all = enc.clone();
    all.push(fs);
    all.sort_unstable();
    all.dedup();
    if all.len() != 5 || enc.iter().any(|c| c.is_alphanumeric() || c.is_whitespace()) {
        return Err(bad(
            "MSH-1 and MSH-2 must be five distinct separator characters".into(),
        ));
    }
    let sep = Seps {
        field: fs,
        component: enc[0],
        repetition: enc[1],
        escape: enc[2],
        subcomponent: enc[3],
    };
    let mut out = Map::new();
    for (k, seg) in std::iter::once(first.as_str())
        .chain(segments[1..].iter().map(String::as_str))
        .enumerate()
    {
        let name: String = seg.chars().take_while(|&c| c != fs).collect();
        if name.len() != 3
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            // The line's text is not quoted: it can be anything a field holds.
            return Err(bad(format!(
                "segment {} does not begin with a segment name (three capital letters or digits)",
                k + 1
            )));
        }
        if k > 0 && name == "MSH" {
            return Err(bad("a second MSH inside one message".into()));
        }
        let mut fields = vec![Value::String(name.clone())];
        let rest = seg.get(name.len() + fs.len_utf8()..).unwrap_or("");
        if name == "MSH" {
            // MSH-1 is the field separator itself and MSH-2 the encoding characters: neither is
            // split or unescaped.
            fields.push(Value::Array(vec![Value::Array(vec![Value::String(
                fs.to_string(),
            )])]));
            let mut it = rest.splitn(2, fs);
            let enc = it.next().unwrap_or("");
            fields.push(Value::Array(vec![Value::Array(vec![Value::String(
                enc.to_string(),
            )])]));
            if let Some(tail) = it.next() {
                fields.extend(tail.split(fs).map(|f| field(f, &sep)));
            }
        } else if !rest.is_empty() || seg.len() > name.len() {
            fields.extend(rest.split(fs).map(|f| field(f, &sep)));
        }
        out.entry(name)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("segment lists are arrays")
            .push(Value::Array(fields));
    }
    Ok(Value::Object(out))
}

/// A parsed message as ingest takes it: an incident, not a reply, of a processing id taken.
fn incident_message(out: Value, processing_ids: &[String]) -> Result<Value, Rejection> {
    let kind = out
        .get("MSH")
        .and_then(|m| m.pointer("/0/9/0/0"))
        .and_then(Value::as_str)
        .unwrap_or("");
    // Replies carry no new incident: acknowledgments, and a provider's return of referral
    // information (RRI), which the closed loop reads, not ingest.
    if matches!(kind, "ACK" | "MCF" | "RRI") {
        return Err(Rejection::new(
            "not_an_incident",
            format!("an {kind} message is a reply; it carries no incident"),
        ));
    }
    let processing = out
        .get("MSH")
        .and_then(|m| m.pointer("/0/11/0/0"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if !processing.is_empty() && !processing_ids.iter().any(|p| p == processing) {
        let what = match processing {
            "T" => "training",
            "D" => "debugging",
            _ => "a processing ID the adapter does not take",
        };
        // The value is quoted only when it looks like a code: MSH-11 may hold anything.
        let shown = match crate::model::shape::is_code_shaped(processing) && processing.len() <= 3 {
            true => format!(" (`{processing}`)"),
            false => String::new(),
        };
        return Err(Rejection::new(
            "training_message",
            format!(
                "MSH-11 marks the message as {what}{shown}; the adapter takes {} (`processing_ids`)",
                processing_ids.join(", ")
            ),
        )
        .with_field("MSH-11"));
    }
    Ok(out)
}

/// One field: repetitions of components of subcomponents. Compact on purpose (most fields are
/// empty or simple): an empty field is `[]`, a component without subcomponents is its string.
fn field(f: &str, sep: &Seps) -> Value {
    if f.is_empty() {
        return Value::Array(Vec::new());
    }
    Value::Array(
        f.split(sep.repetition)
            .map(|rep| {
                Value::Array(
                    rep.split(sep.component)
                        .map(|c| {
                            if c.contains(sep.subcomponent) {
                                Value::Array(
                                    c.split(sep.subcomponent)
                                        .map(|s| Value::String(unescape(s, sep)))
                                        .collect(),
                                )
                            } else {
                                Value::String(unescape(c, sep))
                            }
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The separators of one message.
#[derive(Debug, Clone, Copy)]
pub struct Seps {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Seps {
    fn default() -> Self {
        Seps {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

/// Decodes HL7 escapes over characters: `\F\ \S\ \T\ \R\ \E\` (separators), `\Xhh…\` (bytes,
/// as UTF-8), `\.br\` (line break); `\H\ \N\` (highlighting) are dropped; anything else is kept
/// as written. Never panics, whatever the input.
pub fn unescape(s: &str, sep: &Seps) -> String {
    let e = sep.escape;
    if !s.contains(e) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(e) {
        out.push_str(&rest[..i]);
        let after = &rest[i + e.len_utf8()..];
        let Some(j) = after.find(e) else {
            // An escape character with no closing one: kept as written.
            out.push_str(&rest[i..]);
            return out;
        };
        let code = &after[..j];
        let decoded: Option<String> = match code {
            "F" => Some(sep.field.to_string()),
            "S" => Some(sep.component.to_string()),
            "T" => Some(sep.subcomponent.to_string()),
            "R" => Some(sep.repetition.to_string()),
            "E" => Some(e.to_string()),
            ".br" => Some("\n".into()),
            "H" | "N" => Some(String::new()),
            c if c.len() > 1 && c.starts_with('X') && c.len() % 2 == 1 => {
                let hex = &c[1..];
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|k| {
                        hex.get(k..k + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect();
                bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
            }
            _ => None,
        };
        match decoded {
            Some(d) => out.push_str(&d),
            None => {
                out.push(e);
                out.push_str(code);
                out.push(e);
            }
        }
        rest = &after[j + e.len_utf8()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_over_characters() {
        let s = Seps::default();
        assert_eq!(unescape(r"a\F\b\S\c\T\d\R\e\E\f", &s), "a|b^c&d~e\\f");
        assert_eq!(unescape(r"ééééé\T\x", &s), "ééééé&x");
        assert_eq!(unescape(r"line\.br\two", &s), "line\ntwo");
        assert_eq!(unescape(r"\X4A6F\ and \XC3A9\", &s), "Jo and é");
        assert_eq!(unescape(r"\H\bold\N\", &s), "bold");
        assert_eq!(unescape(r"unterminated \F", &s), r"unterminated \F");
        assert_eq!(unescape(r"\Q\", &s), r"\Q\");
        assert_eq!(unescape(r"\X4\", &s), r"\X4\");
    }

    #[test]
    fn msh2_is_checked() {
        let m = |s: &str| {
            message(
                &s.split('\r').map(String::from).collect::<Vec<_>>(),
                &default_processing_ids(),
            )
        };
        let ok = m("MSH|^~\\&#|APP|FAC|||20260101||ADT^A01|1|P|2.7\rPID|1||X").unwrap();
        assert_eq!(ok.pointer("/MSH/0/3/0/0").unwrap(), "APP");
        let short = m("MSH|^~|APP").unwrap_err();
        assert!(short.reason.contains("MSH-2 has 2"), "{}", short.reason);
        let ack = m("MSH|^~\\&|A|B|C|D|20260101||ACK|9|P|2.5.1\rMSA|AA|MSG016").unwrap_err();
        assert_eq!(ack.kind, "not_an_incident");
    }
}
