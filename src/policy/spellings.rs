//! The common spellings of a known identifying value, as regular expressions (case-insensitive,
//! with their own word boundaries): how an officer types a phone, an SSN, a name, an email, a
//! street or a date of birth in a narrative. A value stored as `3045550199` must still be found as
//! `(304) 555-0199`; `DOE, JANE Q` as `Jane Q. Doe`, `J. Doe` or `Doe`. Used by
//! [`super::narrative`], which decides which values go and which stay.

use chrono::{Datelike, NaiveDate};

/// `v` as a regex literal. The matcher folds ASCII case only (built without Unicode tables it
/// builds about 2.5 times faster, and it is built for every narrative), so a non-ASCII letter is
/// written as the alternation of its cases: `MUÑOZ` is found as `Muñoz`.
pub fn escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if c.is_ascii() || !c.is_alphabetic() {
            out.push_str(&regex::escape(&c.to_string()));
        } else {
            let mut cases: Vec<String> = vec![
                c.to_lowercase().collect(),
                c.to_uppercase().collect(),
                c.to_string(),
            ];
            cases.sort_unstable();
            cases.dedup();
            // An alternation, not a class: a class may not hold non-ASCII without Unicode.
            let alts: Vec<String> = cases.iter().map(|s| regex::escape(s)).collect();
            out.push_str(&format!("(?:{})", alts.join("|")));
        }
    }
    out
}

/// Separators allowed between the digits of a phone: `(304) 555-0199`, `304.555.0199`.
const PHONE_SEP: &str = r"[\s.()/-]{0,3}";
/// Separators allowed between the characters of an identifier: `123-45-6789`, `ABC 1234`.
const ID_SEP: &str = r"[\s.-]?";
/// Separators allowed inside one name (`O'BRIEN`, `SMITH-JONES`, `VAN BUREN`).
const NAME_SEP: &str = r"(?:[\s'.-]|’){0,2}";

/// Whether a word boundary can be asserted next to `c`: the matcher's `\b` is ASCII (see
/// [`escape`]), so a value that begins or ends with a non-ASCII letter goes unbounded there.
fn ascii_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `core` between word boundaries where `head` begins and `tail` ends with a word character (a
/// boundary before `(` or `+` would demand a letter before it).
fn wrap(core: &str, head: &str, tail: &str) -> String {
    let first = head.chars().find(|c| !c.is_whitespace());
    let last = tail.chars().rev().find(|c| !c.is_whitespace());
    let start = if ascii_word(first) { r"\b" } else { "" };
    let end = if ascii_word(last) { r"\b" } else { "" };
    format!("{start}{core}{end}")
}

/// `v` as written (ASCII case aside), as a whole word where its ends are word characters.
pub fn literal(v: &str) -> String {
    wrap(&escape(v), v, v)
}

/// A phone by its digits in any formatting, with or without a leading `1` / `+1`. `None` for
/// fewer than seven digits (not a phone: see [`identifier`]).
pub fn phone(v: &str) -> Option<String> {
    let mut digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('1') {
        digits.remove(0);
    }
    if digits.len() < 7 {
        return None;
    }
    let body = digits
        .chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(PHONE_SEP);
    Some(format!(r"(?:\+?1[\s.-]{{0,2}})?\(?\b{body}\b"))
}

/// An identifier (SSN, licence, MRN, plate, incident number) by its letters and digits, with or
/// without dashes, spaces or dots between them. `None` for fewer than three of them (too short to
/// tell from ordinary text).
pub fn identifier(v: &str) -> Option<String> {
    let chars: Vec<char> = v.chars().filter(|c| c.is_alphanumeric()).collect();
    if chars.len() < 3 {
        return None;
    }
    let body = chars
        .iter()
        .map(|c| escape(&c.to_string()))
        .collect::<Vec<_>>()
        .join(ID_SEP);
    let ends: String = [chars[0], chars[chars.len() - 1]].iter().collect();
    Some(wrap(&body, &ends, &ends))
}

/// A ZIP by its five digits, with or without a ZIP+4.
pub fn zip(v: &str) -> Option<String> {
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 5 {
        return identifier(v);
    }
    Some(format!(r"\b{}(?:[\s-]?\d{{4}})?\b", &digits[..5]))
}

/// An email in any case (the regex is case-insensitive; a literal otherwise).
pub fn email(v: &str) -> Option<String> {
    let v = v.trim();
    (v.len() >= 3).then(|| literal(v))
}

const MONTHS: [&str; 12] = [
    "jan(?:uary)?",
    "feb(?:ruary)?",
    "mar(?:ch)?",
    "apr(?:il)?",
    "may",
    "june?",
    "july?",
    "aug(?:ust)?",
    "sep(?:t(?:ember)?)?",
    "oct(?:ober)?",
    "nov(?:ember)?",
    "dec(?:ember)?",
];

/// A date (of birth) as `1990-07-04`, `07/04/1990`, `7-4-90`, `July 4, 1990`, `4 Jul 1990`,
/// `Jul. 4, '90`, and in the digits officers type without separators: `070490`, `07041990`,
/// `19900704`.
pub fn date(d: NaiveDate) -> Vec<String> {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let yy = y.rem_euclid(100);
    let month = MONTHS[d.month0() as usize];
    let ord = r"(?:st|nd|rd|th)?";
    let year = format!(r"(?:{y}|(?:'|’){yy:02})");
    vec![
        format!(r"\b{y}[/.-]0?{m}[/.-]0?{day}\b"),
        format!(r"\b0?{m}[/.-]0?{day}[/.-](?:{y}|{yy:02})\b"),
        format!(r"\b(?:{month})\.?\s+0?{day}{ord},?\s+{year}\b"),
        format!(r"\b0?{day}{ord}\s+(?:of\s+)?(?:{month})\.?,?\s+{year}\b"),
        format!(r"\b{m:02}{day:02}(?:{y}|{yy:02})\b"),
        format!(r"\b{y}{m:02}{day:02}\b"),
    ]
}

/// Street words with their other common spellings (suffixes and directions).
const STREET_WORDS: &[&[&str]] = &[
    &["st", "str", "street"],
    &["ave", "av", "avenue"],
    &["rd", "road"],
    &["blvd", "boulevard"],
    &["dr", "drive"],
    &["ln", "lane"],
    &["ct", "court"],
    &["pl", "place"],
    &["ter", "terr", "terrace"],
    &["pkwy", "parkway"],
    &["hwy", "highway"],
    &["cir", "circle"],
    &["sq", "square"],
    &["trl", "trail"],
    &["aly", "alley"],
    &["hl", "hill"],
    &["holw", "hollow"],
    &["mtn", "mountain"],
    &["rte", "rt", "route"],
    &["n", "north"],
    &["s", "south"],
    &["e", "east"],
    &["w", "west"],
    &["ne", "northeast"],
    &["nw", "northwest"],
    &["se", "southeast"],
    &["sw", "southwest"],
];

/// Words that start the unit part of an address (`Apt 3`): the street is what comes before.
const UNIT_WORDS: &[&str] = &[
    "apt",
    "apartment",
    "unit",
    "ste",
    "suite",
    "lot",
    "trlr",
    "rm",
];

fn street_word(w: &str) -> (String, bool) {
    let lw = w.to_lowercase();
    match STREET_WORDS.iter().find(|alts| alts.contains(&lw.as_str())) {
        Some(alts) => (format!(r"(?:{})\b\.?", alts.join("|")), true),
        None => (wrap(&escape(w), "", w), false),
    }
}

/// A street address by its number and name: `12 Example Ave` also as `12 EXAMPLE AVENUE`,
/// `12 Example Ave.` and `12 Example`; and the street without the number (`Example Ave`) when it
/// has a suffix.
pub fn street(v: &str) -> Vec<String> {
    let words: Vec<&str> = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty() && *w != "#")
        .collect();
    let end = words
        .iter()
        .position(|w| UNIT_WORDS.contains(&w.to_lowercase().as_str()) || w.starts_with('#'))
        .unwrap_or(words.len());
    let base = &words[..end];
    let parts: Vec<(String, bool)> = base.iter().map(|w| street_word(w)).collect();
    let join = |ps: &[(String, bool)]| {
        ps.iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(r"[\s,]+")
    };
    let mut out = Vec::new();
    let numbered = base
        .first()
        .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit()));
    if base.len() < 2 {
        return out;
    }
    if end < words.len() {
        // The whole value, unit included, comes first (longest).
        let all: Vec<(String, bool)> = words.iter().map(|w| street_word(w)).collect();
        out.push(wrap(&join(&all), base[0], ""));
    }
    out.push(wrap(&join(&parts), base[0], ""));
    let suffixed = parts.last().is_some_and(|(_, s)| *s);
    if numbered && suffixed && parts.len() >= 3 {
        out.push(wrap(&join(&parts[..parts.len() - 1]), base[0], ""));
        out.push(wrap(&join(&parts[1..]), base[1], ""));
        // The street's name alone (`walked toward Example`), when it is a word of its own:
        // four letters or more, no direction.
        let name = &parts[1..parts.len() - 1];
        let letters: usize = base[1..base.len() - 1].iter().map(|w| letters(w)).sum();
        if letters >= 4 && name.iter().all(|(_, street_word)| !street_word) {
            out.push(wrap(&join(name), base[1], ""));
        }
    }
    out
}

/// The plural a name may take in a narrative (`the Roes called`). [`super::narrative`] orders
/// spellings by their length without it, so that it does not put a name before a longer value
/// that holds it (an email).
pub const PLURAL: &str = "(?:s|es)?";

/// Which name fields a spelling shows.
pub type NameParts = &'static [&'static str];

const LAST: NameParts = &["name.last"];
const FIRST: NameParts = &["name.first"];
const MIDDLE: NameParts = &["name.middle"];
const LAST_FIRST: NameParts = &["name.last", "name.first"];
const ALL_THREE: NameParts = &["name.last", "name.first", "name.middle"];

/// One name as a regex body (no boundaries), its parts joined by [`NAME_SEP`]; `None` if empty.
fn name_word(v: &str) -> Option<String> {
    let parts: Vec<String> = v
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(escape)
        .collect();
    (!parts.is_empty()).then(|| parts.join(NAME_SEP))
}

/// The first letter of a name, with an optional period.
fn initial(v: &str) -> Option<String> {
    v.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| format!(r"{}\.?", escape(&c.to_string())))
}

fn letters(v: &str) -> usize {
    v.chars().filter(|c| c.is_alphanumeric()).count()
}

/// A person's name as `LAST, FIRST [MIDDLE|M.]`, `LAST FIRST`, `First [Middle|M.] Last`,
/// `F. [M.] Last`, the last name alone (and each part of a compound one), the first and the
/// middle name alone (two letters or more); each with the name fields it shows.
pub fn names(
    first: Option<&str>,
    middle: Option<&str>,
    last: Option<&str>,
) -> Vec<(String, NameParts)> {
    let f = first.and_then(name_word);
    let m = middle.and_then(name_word);
    let l = last.and_then(name_word);
    let fi = first.and_then(initial);
    let mi = middle.and_then(initial);
    // The name as its first and last characters show, for the word boundaries.
    let trim = |v: Option<&str>| {
        v.map(|v| v.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .unwrap_or_default()
    };
    let (fv, mv, lv) = (trim(first), trim(middle), trim(last));
    let mut out: Vec<(String, NameParts)> = Vec::new();
    // A name also as a plural (`the Does`, `DOES`; `Doe's` is `Doe` and `'s` already).
    let mut push = |core: String, head: &str, tail: &str, parts: NameParts| {
        out.push((wrap(&format!("{core}{PLURAL}"), head, tail), parts));
    };
    if let (Some(l), Some(f)) = (&l, &f) {
        let comma = r"\s*,\s*";
        if let (Some(m), Some(mi)) = (&m, &mi) {
            let (core, lf) = (format!(r"{l}{comma}{f}(?:\s+|{comma}){m}"), ALL_THREE);
            push(core, &lv, &mv, lf);
            push(format!(r"{l}{comma}{f}\s+{mi}"), &lv, "", ALL_THREE);
            push(format!(r"{f}\s+{m}\s+{l}"), &fv, &lv, ALL_THREE);
            push(format!(r"{f}\s+{mi}\s*{l}"), &fv, &lv, ALL_THREE);
        }
        push(format!(r"{l}{comma}{f}"), &lv, &fv, LAST_FIRST);
        push(format!(r"{l}\s+{f}"), &lv, &fv, LAST_FIRST);
        push(format!(r"{f}\s+{l}"), &fv, &lv, LAST_FIRST);
        if let Some(fi) = &fi {
            if let Some(mi) = &mi {
                push(format!(r"{fi}\s*{mi}\s*{l}"), &fv, &lv, ALL_THREE);
            }
            push(format!(r"{fi}\s*{l}"), &fv, &lv, LAST_FIRST);
        }
    }
    let mut alone = |v: Option<&str>, parts: NameParts| {
        let Some(v) = v else { return };
        if letters(v) >= 2
            && let Some(w) = name_word(v)
        {
            let t = v.trim_matches(|c: char| !c.is_alphanumeric());
            push(w, t, t, parts);
        }
        // Each part of a compound name (`SMITH-JONES`, `VAN BUREN`) alone too.
        let pieces: Vec<&str> = v
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| letters(p) >= 2)
            .collect();
        if pieces.len() > 1 {
            for p in pieces {
                push(escape(p), p, p, parts);
            }
        }
    };
    alone(last, LAST);
    alone(first, FIRST);
    alone(middle, MIDDLE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::RegexBuilder;

    /// Whether one of `spellings` matches all of `text`.
    fn spelled(spellings: &[String], text: &str) -> bool {
        spellings.iter().any(|s| {
            RegexBuilder::new(&format!("^(?:{s})$"))
                .case_insensitive(true)
                .unicode(false)
                .build()
                .unwrap()
                .is_match(text)
        })
    }

    #[test]
    fn phones_in_any_formatting() {
        let p = vec![phone("3045550199").unwrap()];
        for t in [
            "(304) 555-0199",
            "304.555.0199",
            "3045550199",
            "304-555-0199",
            "304 555 0199",
            "1-304-555-0199",
            "+1 (304) 555-0199",
        ] {
            assert!(spelled(&p, t), "{t}");
        }
        assert!(!spelled(&p, "304-555-0198"));
        assert_eq!(phone("+1 (304) 555-0199"), phone("304.555.0199"));
        assert!(phone("12345").is_none());
    }

    #[test]
    fn ssns_and_identifiers_with_or_without_separators() {
        let s = vec![identifier("123-45-6789").unwrap()];
        for t in ["123-45-6789", "123456789", "123 45 6789", "123.45.6789"] {
            assert!(spelled(&s, t), "{t}");
        }
        assert!(!spelled(&s, "123-45-6780"));
        let plate = vec![identifier("ABC1234").unwrap()];
        assert!(spelled(&plate, "abc-1234"));
        assert!(spelled(&plate, "ABC 1234"));
        let z = vec![zip("25301").unwrap()];
        assert!(spelled(&z, "25301-1234"));
    }

    #[test]
    fn emails_in_any_case() {
        let e = vec![email("Jane.Roe@Example.org").unwrap()];
        assert!(spelled(&e, "JANE.ROE@EXAMPLE.ORG"));
        assert!(spelled(&e, "jane.roe@example.org"));
        assert!(!spelled(&e, "jane.roe@example.com"));
    }

    #[test]
    fn dates_of_birth() {
        let d = date(NaiveDate::from_ymd_opt(1990, 7, 4).unwrap());
        for t in [
            "1990-07-04",
            "07/04/1990",
            "7/4/1990",
            "7-4-90",
            "July 4, 1990",
            "Jul. 4th 1990",
            "4 July 1990",
        ] {
            assert!(spelled(&d, t), "{t}");
        }
        assert!(!spelled(&d, "07/04/1991"));
    }

    #[test]
    fn streets_by_number_and_name() {
        let s = street("12 Example Ave");
        for t in [
            "12 Example Ave",
            "12 Example Avenue",
            "12 EXAMPLE AVE.",
            "12 example av",
            "12 Example",
            "Example Avenue",
        ] {
            assert!(spelled(&s, t), "{t}");
        }
        assert!(!spelled(&s, "13 Example Ave"));
        let s = street("400 N Quarry St Apt 3");
        for t in [
            "400 North Quarry Street",
            "400 N. Quarry St. Apt 3",
            "400 n quarry",
        ] {
            assert!(spelled(&s, t), "{t}");
        }
    }

    #[test]
    fn names_in_their_common_orders() {
        let all: Vec<String> = names(Some("JANE"), Some("QUINN"), Some("DOE"))
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for t in [
            "DOE, JANE",
            "Doe, Jane Q.",
            "DOE, JANE QUINN",
            "Doe Jane",
            "Jane Doe",
            "Jane Q. Doe",
            "Jane Quinn Doe",
            "J. Doe",
            "J Doe",
            "J.Q. Doe",
            "Doe",
            "Jane",
            "Quinn",
        ] {
            assert!(spelled(&all, t), "{t}");
        }
        assert!(!spelled(&all, "Jan"));
        let compound: Vec<String> = names(Some("JO"), None, Some("SMITH-JONES"))
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for t in ["Jo Smith-Jones", "SMITH JONES, JO", "Jones", "Smith", "Jo"] {
            assert!(spelled(&compound, t), "{t}");
        }
        let accented: Vec<String> = names(Some("JOSÉ"), None, Some("O’BRIEN-MUÑOZ"))
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for t in ["José O'Brien-Muñoz", "O’BRIEN MUÑOZ, JOSÉ", "muñoz", "José"] {
            assert!(spelled(&accented, t), "{t}");
        }
        // One-letter first names are not matched alone.
        assert!(
            names(Some("J"), None, None).is_empty(),
            "a single letter is no name"
        );
    }
}
