//! Narrative de-identification, in layers (pure, no I/O):
//!
//! 1. patterns ([`crate::policy::scrub`]): phones, SSNs, dates, ages in context, emails, URLs, IPs,
//!    Luhn-checked cards, IBANs, licences and plates after their cue, street addresses, units,
//!    PO boxes, ZIP codes in context;
//! 2. the known values of the incident (or of a `--known` file), in all their spellings
//!    ([`crate::policy::narrative`]);
//! 3. dictionaries compiled into the binary ([`dict`]): given names and surnames, places, titles,
//!    with the context that tells a name from a word ([`words`]);
//! 4. in [`Mode::SafeWords`] only, Philter's idea: every remaining word goes unless it is an
//!    English word or a word of the domain. What is not known to be safe is removed.
//!
//! Each removal is typed (`[NAME]`, `[PLACE]`, `[ADDRESS]`, `[DATE]`, `[AGE]`, `[PHONE]`, ...;
//! `[UNKNOWN]` for a word the safe-word mode removed that no dictionary names).

pub mod dict;
mod words;

use super::narrative::{self, Alt, KnownMatcher};
use super::scrub::{self, Span};
use super::spellings;
use serde::Deserialize;

/// How much a scrub removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Patterns, known values, dictionaries, and every word not known to be safe: for
    /// de-identified use (the default).
    #[default]
    SafeWords,
    /// Patterns, known values and dictionaries: ordinary words stay, so that a provider under a
    /// consent can read the narrative.
    Patterns,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "safe-words" => Some(Mode::SafeWords),
            "patterns" => Some(Mode::Patterns),
            _ => None,
        }
    }
}

/// The pattern and dictionary layers' spans of `text` (sorted; they may overlap `removed`),
/// given the known values' spans that a caller found: `removed` and `kept` (a consenting
/// person's covered values). A pattern inside a kept value stays; the word layer skips both.
pub fn find_layers(text: &str, mode: Mode, removed: &[Span], kept: &[Span]) -> Vec<Span> {
    let mut spans: Vec<Span> = scrub::find(text)
        .into_iter()
        .filter(|s| !kept.iter().any(|k| k.start <= s.start && s.end <= k.end))
        .collect();
    let mut taken: Vec<Span> = removed.to_vec();
    taken.extend_from_slice(kept);
    taken.extend_from_slice(&spans);
    spans.extend(words::find(text, &taken, mode == Mode::SafeWords));
    spans.sort_by_key(|s| s.start);
    spans
}

/// The spans of `text` to remove, without known values (sorted, not overlapping).
pub fn find(text: &str, mode: Mode) -> Vec<Span> {
    narrative::merge(find_layers(text, mode, &[], &[]))
}

/// `text` with every span replaced by `[LABEL]`, without known values.
pub fn scrub(text: &str, mode: Mode) -> String {
    scrub::render(text, &find(text, mode))
}

/// Values known to identify someone in the texts to scrub (the `--known` file of `pnp-gateway
/// scrub`): each is removed in its common spellings, whatever the mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Known {
    /// `LAST, FIRST MIDDLE` or `First Middle Last`.
    pub names: Vec<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub streets: Vec<String>,
    /// Dates (of birth) as `YYYY-MM-DD` or `MM/DD/YYYY`.
    pub dates: Vec<String>,
    /// SSNs, licences, plates, record numbers.
    pub ids: Vec<String>,
    pub places: Vec<String>,
}

/// An error in a `--known` value: which list and which entry (never the value).
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error("known values: `{list}` entry {index} is not a date as YYYY-MM-DD or MM/DD/YYYY")]
    Date { list: &'static str, index: usize },
    #[error("known values: the matcher for them could not be built")]
    Matcher,
}

/// A scrubber for many texts: the known values compiled once.
pub struct Scrubber {
    mode: Mode,
    known: Option<KnownMatcher>,
}

impl Scrubber {
    pub fn new(mode: Mode, known: &Known) -> Result<Scrubber, KnownError> {
        dict::load();
        let alts = known_alts(known)?;
        let known = if alts.is_empty() {
            None
        } else {
            Some(KnownMatcher::new(&alts).ok_or(KnownError::Matcher)?)
        };
        Ok(Scrubber { mode, known })
    }

    /// The spans to remove (byte offsets, sorted, not overlapping).
    pub fn find(&self, text: &str) -> Vec<Span> {
        let removed = match &self.known {
            Some(k) => k.find(text).0,
            None => Vec::new(),
        };
        let mut out = find_layers(text, self.mode, &removed, &[]);
        out.extend(removed);
        narrative::merge(out)
    }
}

impl Scrubber {
    /// One input line of `pnp-gateway scrub` (a JSON object with a string `text`, or plain
    /// text) as its output line: `{"text": scrubbed, "spans": [{"start", "end", "type"}]}` with
    /// offsets in characters into the input text; `{"error": ...}` naming the line (never its
    /// content) for a JSON object without a string `text`.
    pub fn scrub_line(&self, line: &str, number: usize) -> String {
        let text = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(o)) => match o.get("text") {
                Some(serde_json::Value::String(t)) => t.clone(),
                _ => {
                    return serde_json::json!({
                        "error": format!("line {number}: a JSON object without a string `text`")
                    })
                    .to_string();
                }
            },
            _ => line.to_string(),
        };
        let found = self.find(&text);
        let spans = &found;
        let bytes: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
        let chars = char_offsets(&text, &bytes);
        let spans: Vec<serde_json::Value> = spans
            .iter()
            .zip(chars.chunks(2))
            .map(|(s, c)| serde_json::json!({"start": c[0], "end": c[1], "type": s.label}))
            .collect();
        serde_json::json!({"text": scrub::render(&text, &found), "spans": spans}).to_string()
    }
}

fn known_alts(k: &Known) -> Result<Vec<Alt>, KnownError> {
    let mut out = Vec::new();
    let mut push = |label: &'static str, res: Vec<String>| {
        out.extend(res.into_iter().map(|re| Alt {
            re,
            keep: false,
            label,
        }))
    };
    for n in &k.names {
        let (first, middle, last) = split_name(n);
        let res = spellings::names(first, middle, last);
        push("NAME", res.into_iter().map(|(re, _)| re).collect());
    }
    for p in &k.phones {
        push(
            "PHONE",
            spellings::phone(p)
                .or_else(|| spellings::identifier(p))
                .into_iter()
                .collect(),
        );
    }
    for e in &k.emails {
        push("EMAIL", spellings::email(e).into_iter().collect());
    }
    for s in &k.streets {
        push("ADDRESS", spellings::street(s));
    }
    for (index, d) in k.dates.iter().enumerate() {
        let date = chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .or_else(|_| chrono::NaiveDate::parse_from_str(d.trim(), "%m/%d/%Y"))
            .map_err(|_| KnownError::Date {
                list: "dates",
                index,
            })?;
        push("DATE", spellings::date(date));
    }
    for i in &k.ids {
        push(
            "ID",
            spellings::identifier(i)
                .into_iter()
                .chain((i.trim().len() >= 2).then(|| spellings::literal(i.trim())))
                .collect(),
        );
    }
    for p in k.places.iter().filter(|p| p.trim().len() >= 2) {
        push("PLACE", vec![spellings::literal(p.trim())]);
    }
    Ok(out)
}

/// `DOE, JANE Q` or `Jane Q Doe` as (first, middle, last).
fn split_name(n: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let n = n.trim();
    if let Some((last, rest)) = n.split_once(',') {
        let mut rest = rest.split_whitespace();
        let first = rest.next();
        let middle = rest.next();
        return (first, middle, Some(last.trim()).filter(|l| !l.is_empty()));
    }
    let words: Vec<&str> = n.split_whitespace().collect();
    match words.as_slice() {
        [] => (None, None, None),
        [one] => (None, None, Some(*one)),
        [f, l] => (Some(*f), None, Some(*l)),
        [f, m, .., l] => (Some(*f), Some(*m), Some(*l)),
    }
}

/// Byte offsets of `text` as offsets in characters (Unicode scalar values), for each of
/// `offsets` (sorted or not).
pub fn char_offsets(text: &str, offsets: &[usize]) -> Vec<usize> {
    offsets
        .iter()
        .map(|&b| {
            let b = (0..=b.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text[..b].chars().count()
        })
        .collect()
}

#[cfg(test)]
mod tests;
