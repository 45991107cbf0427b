//! The NIBRS flat file (2019.1 technical specification §2): fixed-width segments, one per line,
//! positions 1–4 the segment length (RDW), 5 the level, 6 the action, 17–25 the ORI, 26–37 the
//! incident number. Segments of one incident follow each other; an incident is emitted when the
//! next begins, or when an administrative segment (level 1) of the same incident opens a new
//! submission of it: a delete (`D`) followed by an incident (`I`) of the same ORI and number is
//! a deletion and a resubmission, emitted as one replacement (action `R`) with the new data.
//! Trailing blanks may be cut (a line shorter than its RDW is padded); a line longer than its
//! RDW, or too short to hold its segment's header, is rejected.

use super::{Age, NibrsPerson, Offense, Report, some};
use crate::formats::{FileError, Item, Position, Rejection};
use crate::formats::{LineEnd, read_line_bounded};
use serde_json::Value;
use std::io::BufRead;

/// The longest segment of the 2019.1 layout is well under this.
const MAX_LINE: usize = 4096;

pub struct FlatReader<R> {
    inner: R,
    line: u64,
    offset: u64,
    record: u64,
    buf: Vec<u8>,
    current: Option<(Position, Report)>,
    pending: Vec<Item<Value>>,
    done: bool,
}

impl<R: BufRead> FlatReader<R> {
    pub fn new(inner: R) -> Self {
        FlatReader {
            inner,
            line: 0,
            offset: 0,
            record: 0,
            buf: Vec::new(),
            current: None,
            pending: Vec::new(),
            done: false,
        }
    }

    fn flush(&mut self) {
        if let Some((pos, mut r)) = self.current.take() {
            r.finish();
            self.pending.push(Item::Record(pos, r.to_json()));
        }
    }

    pub fn next_item(&mut self) -> Result<Option<Item<Value>>, FileError> {
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            if self.done {
                return Ok(None);
            }
            let start = self.offset;
            let (n, overlong) =
                read_line_bounded(&mut self.inner, &mut self.buf, MAX_LINE, LineEnd::Lf)?;
            if n == 0 {
                self.done = true;
                self.flush();
                continue;
            }
            self.offset += n as u64;
            self.line += 1;
            let pos = Position {
                byte: start,
                line: self.line,
                record: self.record + 1,
            };
            let reject = |kind, why: String| Item::Rejected(pos, Rejection::new(kind, why));
            if overlong {
                self.record += 1;
                self.pending.push(reject(
                    "record_too_long",
                    format!("line longer than {MAX_LINE} bytes"),
                ));
                continue;
            }
            let owned = std::mem::take(&mut self.buf);
            let mut line: &[u8] = &owned;
            if self.line == 1 && line.starts_with(b"\xEF\xBB\xBF") {
                line = &line[3..];
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line = &line[..line.len() - 1];
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(line) else {
                self.record += 1;
                self.pending.push(reject(
                    "invalid_utf8",
                    "the segment is not valid UTF-8".into(),
                ));
                continue;
            };
            if !text.is_ascii() {
                self.record += 1;
                self.pending.push(reject(
                    "bad_segment",
                    "the segment holds non-ASCII characters".into(),
                ));
                continue;
            }
            match segment(text) {
                Err(why) => {
                    self.record += 1;
                    self.pending.push(reject("bad_segment", why));
                }
                Ok(Segment::Zero) => {}
                Ok(Segment::GroupB) => {
                    self.record += 1;
                    self.pending.push(reject(
                        "not_an_incident",
                        "a Group B arrest (level 7) is not an incident".into(),
                    ));
                }
                Ok(Segment::Part {
                    key,
                    action,
                    admin: starts,
                    apply,
                }) => {
                    let same = self.current.as_ref().is_some_and(|(_, r)| {
                        (r.ori.as_str(), r.incident_number.as_str())
                            == (key.0.as_str(), key.1.as_str())
                    });
                    // A second administrative segment of the same incident begins a new
                    // submission of it. After a delete (`D`), an incident segment is its
                    // resubmission: one replacement (`R`) carrying the new data, never the
                    // new data under the delete (which hid the incident).
                    let resubmitted = same
                        && starts
                        && self.current.as_ref().is_some_and(|(_, r)| r.action == "D")
                        && action != "D";
                    if resubmitted {
                        // The same record number: the delete and its resubmission are one.
                        let pos = Position {
                            record: self.record,
                            ..pos
                        };
                        let r = Report {
                            ori: key.0,
                            incident_number: key.1,
                            action: "R".into(),
                            ..Report::default()
                        };
                        self.current = Some((pos, r));
                    } else if !same || starts {
                        self.flush();
                        self.record += 1;
                        let r = Report {
                            ori: key.0,
                            incident_number: key.1,
                            action,
                            ..Report::default()
                        };
                        self.current = Some((pos, r));
                    }
                    if let Some((_, r)) = self.current.as_mut() {
                        apply(r, text);
                    }
                }
            }
            self.buf = owned;
        }
    }
}

enum Segment {
    Zero,
    GroupB,
    Part {
        key: (String, String),
        action: String,
        /// The administrative segment (level 1), which opens a submission of an incident.
        admin: bool,
        apply: fn(&mut Report, &str),
    },
}

/// Characters `from..=to` (1-based, as the specification numbers them), trimmed; blank → None.
fn at(s: &str, from: usize, to: usize) -> Option<String> {
    s.get(from - 1..to.min(s.len())).and_then(some)
}

fn segment(s: &str) -> Result<Segment, String> {
    let rdw: usize = s
        .get(0..4)
        .and_then(|r| r.parse().ok())
        .ok_or("positions 1-4 (segment length) are not a number")?;
    if s.len() > rdw && !s[rdw..].trim().is_empty() {
        return Err(format!(
            "the line is {} characters, its segment length says {rdw}",
            s.len()
        ));
    }
    if s.len() < 37 {
        return Err(format!(
            "the line is {} characters, too short for a segment header (37)",
            s.len()
        ));
    }
    let level = &s[4..5];
    let action = s[5..6].to_string();
    if !matches!(
        action.as_str(),
        "I" | "A" | "D" | "R" | "W" | "X" | "L" | "M"
    ) {
        return Err(format!("position 6 (action) is `{action}`, not I, A or D"));
    }
    let key = (
        at(s, 17, 25).unwrap_or_default(),
        at(s, 26, 37).unwrap_or_default(),
    );
    let apply: fn(&mut Report, &str) = match level {
        "0" => return Ok(Segment::Zero),
        "7" => return Ok(Segment::GroupB),
        "1" => admin,
        "2" => offense,
        "3" => property,
        "4" => victim,
        "5" => offender,
        "6" => arrestee,
        other => return Err(format!("position 5 (segment level) is `{other}`, not 0-7")),
    };
    if key.0.is_empty() || key.1.is_empty() {
        return Err("the ORI (17-25) or incident number (26-37) is blank".into());
    }
    Ok(Segment::Part {
        key,
        action: match action.as_str() {
            "W" | "X" | "L" | "M" => "I".into(), // time-window submissions carry an incident
            a => a.into(),
        },
        admin: level == "1",
        apply,
    })
}

fn ymd(s: Option<String>) -> Option<String> {
    let d = s?;
    (d.len() == 8).then(|| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]))
}

fn admin(r: &mut Report, s: &str) {
    r.date = ymd(at(s, 38, 45));
    r.report_date_indicator = at(s, 46, 46).as_deref() == Some("R");
    r.hour = at(s, 47, 48);
    r.cleared_exceptionally = at(s, 49, 49);
}

fn offense(r: &mut Report, s: &str) {
    let Some(code) = at(s, 38, 40) else { return };
    r.offenses.push(Offense {
        code,
        attempted: at(s, 41, 41).as_deref() == Some("A"),
        suspected_of_using: (42..=44).filter_map(|p| at(s, p, p)).collect(),
        location_type: at(s, 45, 46),
        bias: at(s, 62, 63),
    });
}

fn property(r: &mut Report, s: &str) {
    for k in 0..3 {
        let p = 233 + k * 15;
        if let Some(d) = at(s, p, p)
            && !r.drug_categories.contains(&d)
        {
            r.drug_categories.push(d);
        }
    }
}

fn person(s: &str, seq: (usize, usize), age: usize, sex: usize) -> NibrsPerson {
    NibrsPerson {
        seq: at(s, seq.0, seq.1)
            .map(|q| q.trim_start_matches('0').to_string())
            .unwrap_or_default(),
        age: Age::from_code(s.get(age - 1..(age + 3).min(s.len())).unwrap_or("")),
        sex: at(s, sex, sex),
        race: at(s, sex + 1, sex + 1),
        ethnicity: at(s, sex + 2, sex + 2),
        resident: at(s, sex + 3, sex + 3),
        ..NibrsPerson::default()
    }
}

fn victim(r: &mut Report, s: &str) {
    let mut p = person(s, (38, 40), 72, 76);
    p.victim_type = at(s, 71, 71);
    r.victims.push(p);
}

fn offender(r: &mut Report, s: &str) {
    let mut p = person(s, (38, 39), 40, 44);
    p.resident = None; // not in the offender segment
    r.subjects.push(p);
}

fn arrestee(r: &mut Report, s: &str) {
    let mut p = person(s, (38, 39), 71, 75);
    p.arrest_date = ymd(at(s, 52, 59));
    p.arrest_type = at(s, 60, 60);
    p.charge = at(s, 62, 64);
    r.arrestees.push(p);
}
