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
    /// The capture group that is removed (0: the whole match); the rest is context, e.g. the
    /// `years old` of an age or the `ZIP` before a ZIP code.
    group: usize,
    /// Extra check on the removed text (e.g. a phone needs 7 to 15 digits, a card its Luhn sum).
    accept: fn(&str) -> bool,
}

fn any(_: &str) -> bool {
    true
}

fn digits_between(s: &str, lo: usize, hi: usize) -> bool {
    let n = s.bytes().filter(u8::is_ascii_digit).count();
    (lo..=hi).contains(&n)
}

/// A payment card: 12 to 19 digits whose Luhn sum checks.
fn luhn(s: &str) -> bool {
    let d: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(12..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| match (i % 2, x * 2) {
            (0, _) => x,
            (_, y) if y > 9 => y - 9,
            (_, y) => y,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IBAN: country, check digits and up to 30 letters and digits whose ISO 7064 mod-97 is 1.
fn iban(s: &str) -> bool {
    let c: Vec<char> = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if !(15..=34).contains(&c.len()) {
        return false;
    }
    let mut rem = 0u32;
    for ch in c[4..].iter().chain(&c[..4]) {
        let v = ch.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// An identifier after its cue: it has a digit (`DL A123456`, not `DL suspended`).
fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// A street named without a number (`Whittaker Street`, `4TH AVE`): capitalized, and no word
/// of it a function word (`the way`, `Speedway on Kanawha Blvd` is `Kanawha Blvd`).
fn named_street(s: &str) -> bool {
    const NOT: &[&str] = &[
        "the", "a", "an", "this", "that", "his", "her", "my", "your", "our", "their", "its", "on",
        "in", "at", "to", "of", "and", "or", "one", "same", "other", "long", "main", "down", "up",
        "off", "no", "any", "each", "by", "from", "near", "behind", "across", "for", "with", "was",
        "is", "are", "found", "end",
    ];
    let words: Vec<&str> = s.split_whitespace().collect();
    let first = words.first().copied().unwrap_or("");
    first.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit())
        && words[..words.len().saturating_sub(1)]
            .iter()
            .all(|w| !NOT.contains(&w.to_lowercase().as_str()) && !w.ends_with('.') || w.len() <= 2)
}

const MONTHS: &str = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";
const WEEKDAYS: &str = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday";
/// Street suffixes that end a numbered address (USPS's common ones and West Virginia's own).
const SUFFIX: &str = r"st|str|street|ave|av|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|ct|court|way|pl|place|ter|terr|terrace|pkwy|parkway|hwy|highway|cir|circle|sq|square|pike|run|trl|trail|aly|alley|holw|hollow|hill|branch|crk|creek|xing|crossing|loop|point|rdg|ridge|vw|view|walk|row|mtn|mountain|estates|hts|heights";
/// Suffixes that end a street named without a number (`Whittaker Street`); `way`, `place`,
/// `court`, `run` and the like are too often ordinary words there.
const NAMED_SUFFIX: &str = r"street|st|avenue|ave|road|rd|boulevard|blvd|drive|lane|ln|highway|pike|hollow|holw|parkway|pkwy|terrace";
/// Street words of other languages, after the name (`Nassaustraat 123`) or before it (`rue X`).
const FOREIGN_AFTER: &str = r"straat|strasse|straße|gasse|weg|laan|gatan|gata|vej|veien|vegen|vägen|plein|platz|allee|ulica|utca|útja|katu|tie|steeg|kade|gracht|dreef|singel|ring";
const FOREIGN_BEFORE: &str = r"rue|avenue|via|viale|calle|avenida|rua|strada|piazza|plaza|boulevard|chemin|place|quai|ulica|ul\.";
/// US states and territories by their postal abbreviations, and West Virginia's other forms.
const STATES: &str = r"al|ak|az|ar|ca|co|ct|de|dc|fl|ga|hi|id|il|in|ia|ks|ky|la|me|md|ma|mi|mn|ms|mo|mt|ne|nv|nh|nj|nm|ny|nc|nd|oh|ok|or|pa|ri|sc|sd|tn|tx|ut|vt|va|wa|wv|wi|wy|pr|w\.\s?va\.?|west virginia|virginia|ohio|kentucky|pennsylvania|maryland";

/// Earlier patterns win where matches overlap: specific shapes before general ones.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |label, re: &str, group, accept| Pattern {
        label,
        re: RegexBuilder::new(re)
            .case_insensitive(true)
            .build()
            .expect("scrub patterns compile"),
        group,
        accept,
    };
    let addr_words = r"(?:\s+[\p{L}0-9][\p{L}0-9.'-]*){1,4}";
    vec![
        p(
            "EMAIL",
            r"\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b",
            0,
            any,
        ),
        p("URL", r"\b(?:https?://|www\.)[^\s<>]+", 0, any),
        p(
            "URL",
            r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|info|biz|us|uk|de|se|pl|co)\b(?:/[^\s<>]*)?",
            0,
            any,
        ),
        p(
            "IP",
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
            0,
            any,
        ),
        // Four groups or more: a time of day (`14:48:14`) is not an address.
        p("IP", r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b", 0, any),
        p(
            "IBAN",
            r"\b[a-z]{2}\d{2}(?:\s?[a-z0-9]{4}){2,7}(?:\s?[a-z0-9]{1,4})?\b",
            0,
            iban,
        ),
        p(
            "DATE",
            r"\b\d{4}-\d{1,2}-\d{1,2}(?:[ t]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:z|[+-]\d{2}:?\d{2})?)?\b",
            0,
            any,
        ),
        p(
            "DATE",
            r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b",
            0,
            any,
        ),
        p(
            "DATE",
            &format!(
                r"\b(?:(?:{WEEKDAYS}),?\s+)?(?:(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?(?:,?\s+\d{{4}})?\b|(?:{MONTHS})\.?,?\s+\d{{4}}\b)"
            ),
            0,
            any,
        ),
        p("DATE", &format!(r"\b(?:{WEEKDAYS})\b"), 0, any),
        // A month and day without a year (`11/02`), not a fraction (`1/2`).
        p(
            "DATE",
            r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])\b",
            0,
            |s| s.len() >= 4,
        ),
        // A month alone, written out (not `may`, `march`: verbs).
        p(
            "DATE",
            r"\b(?:january|february|april|june|july|august|september|october|november|december)\b",
            0,
            |s| s.starts_with(char::is_uppercase),
        ),
        // Times of day: `14:48`, `2:30 pm`, `0230 hrs`.
        p(
            "DATE",
            r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?\b|\b\d{1,2}\s?[ap]\.?m\b\.?|\b\d{4}\s?(?:hrs|hours)\b",
            0,
            any,
        ),
        // A year of birth: `born 1990`, `DOB 1990` (a year alone is no identifier).
        p(
            "DATE",
            r"\b(?:born(?:\s+in)?|dob:?|d\.o\.b\.?:?|yob:?)\s+((?:19|20)\d{2})\b",
            1,
            any,
        ),
        p(
            "SSN",
            r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b",
            0,
            any,
        ),
        p("CARD", r"\b(?:\d[ -]?){11,18}\d\b", 0, luhn),
        // Ages in context: `36 year old`, `36 y/o`, `36YOM`, `W/M 36`, `aged 81`, `turn 81`, `age: 5`.
        p(
            "AGE",
            r"\b(\d{1,3}(?:\s*(?:-|to)\s*\d{1,3})?)\s*-?\s*(?:years?|yrs?|months?|mos?)[\s-]+old\b|\b(\d{1,3}(?:\s*(?:-|to)\s*\d{1,3})?)\s*(?:y/o|y\.o\.?|yo|yoa|yom|yof|yo[mf])\b",
            1,
            any,
        ),
        p(
            "AGE",
            r"\b(?:aged?|age:|turn(?:s|ed|ing)?|ages)\s+(?:of\s+)?(\d{1,3})\b",
            1,
            any,
        ),
        p(
            "AGE",
            r"\b[wbhai]/[mf]\s*[,(]?\s*(?:approx\.?|appx\.?|about|~)?\s*(\d{2})\b|\b(?:male|female|man|woman|boy|girl)\s*,?\s*\(?(\d{1,3})\)?[\s,)]",
            1,
            any,
        ),
        p(
            "PHONE",
            r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b|\b\d{10}\b",
            0,
            |s| digits_between(s, 7, 15),
        ),
        p("SSN", r"\b\d{9}\b", 0, any),
        // Licences, plates and record numbers after their cue.
        p(
            "ID",
            r"(?:driver'?s?\s+licen[cs]e|\bd\.?l\.?|\bo\.?l\.?n\.?|\blicen[cs]e|\bplate|\btag|\breg|\bregistration|\bvrm|\bvin|\bmrn|\bcase|\breport|\bacct|\baccount|\bpolicy|\bmedicaid|\bmedicare|\bbadge|\bid)\s*(?:#|no\.?|num(?:ber)?|number)?\s*(?:is\s+)?[:#]?\s*([a-z0-9][a-z0-9-]{3,16})\b",
            1,
            has_digit,
        ),
        p(
            "ADDRESS",
            r"\bp\.?\s?o\.?\s*box\s+\d+\b|\bpost\s+office\s+box\s+\d+\b|\b(?:psc|cmr|unit)\s+\d+,?\s+box\s+\d+\b|\b[afd]po\s+a[aep]\b",
            0,
            any,
        ),
        p(
            "ADDRESS",
            &format!(
                r"\b\d{{1,6}}(?:\s+\d{{1,6}})?\s+(?:block|blk)\s+(?:of\s+)?[\p{{L}}0-9.'-]+(?:\s+(?:{SUFFIX})\b)?"
            ),
            0,
            any,
        ),
        p(
            "ADDRESS",
            &format!(r"\b\d{{1,6}}[a-z]?(?:\s+\d{{1,6}})?{addr_words}\s+(?:{SUFFIX})\b"),
            0,
            any,
        ),
        p(
            "ADDRESS",
            r"\b(?:\d{1,6}\s+)?(?:(?:us|wv|state|county)\s+)?(?:route|rte|rt|hwy|highway|sr|cr|co\.?\s+rd\.?)\s*\d{1,4}[a-z]?\b|\bi-\d{2,3}\b(?:\s+[nsew]b)?(?:\s+mm\s*\d{1,3})?",
            0,
            any,
        ),
        p(
            "ADDRESS",
            &format!(r"\b(?:\d{{1,6}}\s+)?[\p{{L}}]*(?:{FOREIGN_AFTER})\s+\d{{1,5}}[a-z]?\b"),
            0,
            any,
        ),
        p(
            "ADDRESS",
            &format!(
                r"\b(?:\d{{1,6}},?\s+)?(?:{FOREIGN_BEFORE})\s+(?:(?:de|du|des|la|le|di|del|della|do|da)\s+)?\p{{Lu}}[\p{{L}}'-]*(?:\s+\p{{Lu}}[\p{{L}}'-]*){{0,2}}(?:,?\s+\d{{1,5}})?"
            ),
            0,
            |s| {
                !s.starts_with(|c: char| c.is_lowercase())
                    || s.starts_with(|c: char| c.is_ascii_digit())
            },
        ),
        p(
            "ADDRESS",
            &format!(r"\b(?:[\p{{L}}0-9][\p{{L}}0-9.'-]*\s+){{1,3}}(?:{NAMED_SUFFIX})\b"),
            0,
            named_street,
        ),
        // Units: `Apt 3`, `apt. 614`, `Suite 771`, `Lot 12`, `Trlr B`, `#4`.
        p(
            "ADDRESS",
            r"\b(?:apt|apartment|suite|ste|lot|trlr|trailer|rm|room|bldg|building)\b\.?\s*#?\s*(?:\d+[a-z]?|[a-z]\b|[a-z]-?\d+)\b|\bunit\s*#?\s*(?:\d+[a-z]|[a-z]-?\d*)\b",
            0,
            any,
        ),
        // ZIP codes in context: after a state, or named as such.
        p(
            "ZIP",
            &format!(r"\b(?:{STATES})\.?,?\s+(\d{{5}}(?:-\d{{4}})?)\b"),
            1,
            any,
        ),
        p(
            "ZIP",
            r"\b(?:zip|zip\s*code|postal\s+code|zipcode)\s*(?:is\s+)?[:#]?\s*(\d{5}(?:-\d{4})?|[a-z]\d[a-z]\s?\d[a-z]\d)\b",
            1,
            any,
        ),
        // A plate or record number by its shape: letters and digits mixed, at least two of each
        // (`8XK4471`, `NXY412`), not a quantity (`0318HRS`, `40MG`).
        p("ID", r"\b[a-z0-9]{5,10}\b", 0, |s| {
            let digits = s.bytes().filter(u8::is_ascii_digit).count();
            let l = s.to_ascii_lowercase();
            digits >= 2
                && s.len() - digits >= 2
                && ![
                    "hrs", "mg", "mcg", "ml", "am", "pm", "th", "st", "nd", "rd", "yo", "yom",
                    "yof", "yoa", "lbs", "mph", "min", "mins",
                ]
                .iter()
                .any(|u| l.ends_with(u))
        }),
        // Any other long number (an account, a case, a record): seven digits or more.
        p("ID", r"\b\d{7,}\b", 0, any),
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
        while let Some(c) = p.re.captures_at(text, pos) {
            let whole = c.get(0).expect("group 0 always matches");
            // The removed group, or the first group that took part (alternatives).
            let m = if p.group == 0 {
                Some(whole)
            } else {
                (p.group..c.len()).find_map(|i| c.get(i))
            };
            let span = m.map(|m| Span {
                start: m.start(),
                end: m.end(),
                label: p.label,
            });
            let ok = span.filter(|s| {
                !taken.iter().any(|t| s.start < t.end && t.start < s.end)
                    && (p.accept)(&text[s.start..s.end])
            });
            if let Some(span) = ok {
                taken.push(span);
                pos = span.end.max(whole.start() + 1);
            } else {
                pos = whole.start()
                    + text[whole.start()..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
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
