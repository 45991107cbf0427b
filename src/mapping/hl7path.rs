//! HL7 v2 paths in mapping sources: `SEG[occurrence]-FIELD[repetition].COMPONENT.SUBCOMPONENT`,
//! e.g. `PID-5.1` (family name), `PID-3[2].1`, `PID-3[*].1` (every repetition),
//! `PID-3[5=SS].1` (the repetition whose component 5 is `SS`: the SSN), `NTE[*]-3` (every NTE).
//! Occurrence, repetition, component and subcomponent default to 1. Resolved against the JSON
//! form of a message (see `formats::hl7`), or against one segment inside a per-segment person
//! block (`each = "/NK1"`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sel {
    Nth(usize),
    All,
    /// The repetitions whose component `.0` equals `.1`.
    Where(usize, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Path {
    pub segment: String,
    pub occurrence: Sel,
    pub field: usize,
    pub repetition: Sel,
    pub component: usize,
    pub subcomponent: usize,
}

fn sel(s: Option<&str>) -> Option<Sel> {
    match s {
        None => Some(Sel::Nth(1)),
        Some("*") => Some(Sel::All),
        Some(x) => match x.split_once('=') {
            Some((c, v)) => Some(Sel::Where(
                c.parse().ok().filter(|n| *n > 0)?,
                v.to_string(),
            )),
            None => x.parse().ok().filter(|n| *n > 0).map(Sel::Nth),
        },
    }
}

/// `Some` when `s` is written as an HL7 path.
pub fn parse(s: &str) -> Option<Hl7Path> {
    let (seg_part, rest) = s.split_once('-')?;
    let (segment, occ) = match seg_part.split_once('[') {
        Some((name, o)) => (name, Some(o.strip_suffix(']')?)),
        None => (seg_part, None),
    };
    if segment.len() != 3
        || !segment
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        || !segment.starts_with(|c: char| c.is_ascii_uppercase())
    {
        return None;
    }
    let mut parts = rest.splitn(2, '.');
    let field_part = parts.next()?;
    let (field, rep) = match field_part.split_once('[') {
        Some((f, r)) => (f, Some(r.strip_suffix(']')?)),
        None => (field_part, None),
    };
    let field: usize = field.parse().ok().filter(|n| *n > 0)?;
    let mut comp = 1;
    let mut sub = 1;
    if let Some(cs) = parts.next() {
        let mut it = cs.split('.');
        comp = it.next()?.parse().ok().filter(|n| *n > 0)?;
        if let Some(s) = it.next() {
            sub = s.parse().ok().filter(|n| *n > 0)?;
        }
        if it.next().is_some() {
            return None;
        }
    }
    Some(Hl7Path {
        segment: segment.to_string(),
        occurrence: sel(occ)?,
        field,
        repetition: sel(rep)?,
        component: comp,
        subcomponent: sub,
    })
}

impl Hl7Path {
    /// The values at this path (empty ones left out).
    pub fn resolve<'a>(&self, v: &'a Value) -> Vec<&'a str> {
        let segments: Vec<&'a Value> = match v {
            // One segment (a per-segment person block).
            Value::Array(seg)
                if seg.first().and_then(Value::as_str) == Some(self.segment.as_str()) =>
            {
                vec![v]
            }
            Value::Object(m) => match m.get(&self.segment).and_then(Value::as_array) {
                Some(all) => match &self.occurrence {
                    Sel::Nth(n) => all.get(n - 1).into_iter().collect(),
                    _ => all.iter().collect(),
                },
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for seg in segments {
            let Some(reps) = seg.get(self.field).and_then(Value::as_array) else {
                continue;
            };
            // A component is its string, or the list of its subcomponents.
            let at = |rep: &'a Value, c: usize, s: usize| -> Option<&'a str> {
                match rep.get(c - 1)? {
                    Value::String(x) if s == 1 => Some(x.as_str()),
                    Value::Array(subs) => subs.get(s - 1)?.as_str(),
                    _ => None,
                }
            };
            let chosen: Vec<&'a Value> = match &self.repetition {
                Sel::Nth(n) => reps.get(n - 1).into_iter().collect(),
                Sel::All => reps.iter().collect(),
                Sel::Where(c, want) => reps
                    .iter()
                    .filter(|r| at(r, *c, 1) == Some(want.as_str()))
                    .collect(),
            };
            for rep in chosen {
                if let Some(s) =
                    at(rep, self.component, self.subcomponent).filter(|s| !s.is_empty())
                {
                    out.push(s);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let p = parse("PID-3[5=SS].1").unwrap();
        assert_eq!(p.repetition, Sel::Where(5, "SS".into()));
        assert_eq!(parse("PID-5").unwrap().component, 1);
        assert_eq!(parse("NTE[*]-3").unwrap().occurrence, Sel::All);
        assert_eq!(parse("PV1-3.4.2").unwrap().subcomponent, 2);
        for no in [
            "pid-5",
            "PID",
            "PID-0",
            "PID-x",
            "Column-3",
            "/a/b",
            "PID-3.1.1.1",
            "PID-3[0]",
        ] {
            assert!(parse(no).is_none(), "{no}");
        }
    }
}
