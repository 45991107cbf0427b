//! The pattern pass of free-text scrubbing: phones, SSNs, emails, URLs, IP addresses, dates, card
//! numbers and street addresses found by their shapes, in the manner of Presidio's recognizers;
//! measured against Presidio's labelled sentences in `tests/scrub.rs`. The incident's own names
//! and numbers are found by [`super::narrative`], which also decides what a consent keeps.
//! Narratives are still dropped by default: scrubbing lowers the risk in free text, it does not
//! remove it.

use regex::{Regex, RegexBuilder};
use std::sync::LazyLock;

/// A found piece of identifying text, by byte range, with what it looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub label: &'static str,
}

struct Pattern {
    label: &'static str,
    re: Regex,
    /// Extra check on a match (e.g. a phone needs 7 to 15 digits).
    accept: fn(&str) -> bool,
}

fn any(_: &str) -> bool {
    true
}

fn digits_between(s: &str, lo: usize, hi: usize) -> bool {
    let n = s.bytes().filter(u8::is_ascii_digit).count();
    (lo..=hi).contains(&n)
}

/// Earlier patterns win where matches overlap: specific shapes before the general phone shape.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |label, re: &str, accept| Pattern {
        label,
        re: RegexBuilder::new(re)
            .case_insensitive(true)
            .build()
            .expect("scrub patterns compile"),
        accept,
    };
    const MONTHS: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";
    const SUFFIX: &str = r"st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|ct|court|way|pl|place|ter|terrace|pkwy|parkway|hwy|highway|cir|circle|sq|square|pike|run|trl|trail";
    vec![
        p("EMAIL", r"\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", any),
        p("URL", r"\b(?:https?://|www\.)[^\s<>]+", any),
        p(
            "URL",
            r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|info|biz|us|uk|de|se|pl|co)\b(?:/[^\s<>]*)?",
            any,
        ),
        p(
            "IP",
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
            any,
        ),
        // Four groups or more: a time of day (`14:48:14`) is not an address.
        p("IP", r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b", any),
        p(
            "DATE",
            r"\b\d{4}-\d{1,2}-\d{1,2}(?:[ t]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:z|[+-]\d{2}:?\d{2})?)?\b",
            any,
        ),
        p("DATE", r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b", any),
        p(
            "DATE",
            &format!(
                r"\b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?(?:,?\s+\d{{4}})?\b|\b(?:{MONTHS})\.?\s+\d{{4}}\b"
            ),
            any,
        ),
        p("SSN", r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b", any),
        p("CARD", r"\b(?:\d[ -]?){12,15}\d\b", |s| {
            digits_between(s, 13, 16)
        }),
        p(
            "PHONE",
            r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b|\b\d{10}\b",
            |s| digits_between(s, 7, 15),
        ),
        p("SSN", r"\b\d{9}\b", any),
        p(
            "ADDRESS",
            &format!(r"\b\d{{1,6}}(?:\s+[a-z0-9][a-z0-9.'-]*){{1,4}}\s+(?:{SUFFIX})\b\.?"),
            any,
        ),
    ]
});

/// Finds identifying spans in `text` by their shapes alone (sorted, not overlapping). The values
/// of the incident's own persons are found in their spellings by [`super::narrative`], which runs
/// this pass too.
pub fn find(text: &str) -> Vec<Span> {
    let mut taken: Vec<Span> = Vec::new();
    for p in PATTERNS.iter() {
        // Not `find_iter`: a match refused (overlap, or its check) must not hide a later match
        // that starts inside it.
        let mut pos = 0;
        while let Some(m) = p.re.find_at(text, pos) {
            let span = Span {
                start: m.start(),
                end: m.end(),
                label: p.label,
            };
            let free = !taken
                .iter()
                .any(|t| span.start < t.end && t.start < span.end);
            if free && (p.accept)(m.as_str()) {
                taken.push(span);
                pos = m.end().max(m.start() + 1);
            } else {
                pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            }
            if pos > text.len() {
                break;
            }
        }
    }
    taken.sort_by_key(|s| s.start);
    taken
}

/// `text` with every pattern match replaced by `[LABEL]`.
pub fn scrub(text: &str) -> String {
    render(text, &find(text))
}

/// `text` with each of `spans` (sorted, not overlapping) replaced by `[LABEL]`.
pub fn render(text: &str, spans: &[Span]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        out.push_str(&text[at..s.start]);
        out.push('[');
        out.push_str(s.label);
        out.push(']');
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_the_usual_suspects() {
        let t = "Jane Doe (DOB 07/04/1990, SSN 123-45-6789) called 304-555-0100 from 12 Example Ave; \
                 mail jane@example.org, seen March 3, 2026 at 10.0.0.12.";
        let s = scrub(t);
        for leak in [
            "07/04/1990",
            "123-45-6789",
            "304-555-0100",
            "12 Example Ave",
            "jane@",
            "March 3",
            "10.0.0.12",
        ] {
            assert!(!s.contains(leak), "{leak} left in: {s}");
        }
        assert!(s.contains("called"), "{s}");
    }

    #[test]
    fn leaves_plain_text_alone() {
        let t = "Subject agreed to talk to a peer about treatment options.";
        assert_eq!(scrub(t), t);
    }
}
