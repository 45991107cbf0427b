//! The word layer: names and places found by the dictionaries and their context, and (in the
//! safe-word mode) every word that is neither an English word nor a word of the domain.
//!
//! Capitalization is evidence only where the text has it: a narrative typed all in capitals (as
//! CAD narratives are) or all in lower case says nothing by its case, and then a word counts as
//! capitalized everywhere. A dictionary name that is also a very common word (`Mark`, `Hunter`,
//! `Brown`) is a name only in context: after a title or a cue (`RP`, `SUBJ`, `her boyfriend`),
//! next to another name, or capitalized in mid-sentence.

use super::dict::{self, fold};
use crate::policy::scrub::Span;

struct Token {
    start: usize,
    /// The end of the word without a possessive `'s` (which stays in the text).
    end: usize,
    folded: String,
    digits: bool,
    letters: bool,
    /// Capitalized, or any word where the text's case says nothing.
    cap: bool,
    /// First word of a sentence or a line: its capital says nothing.
    initial: bool,
    /// Written with a capital and lower case after it (`Mark`): evidence in mixed-case text.
    title_case: bool,
    /// Overlaps a span another layer found.
    taken: bool,
}

/// Splits `text` into words: letters and digits, with an apostrophe inside (`O'Brien`, `don't`);
/// hyphens, slashes and dots separate words.
fn tokens(text: &str, taken: &[Span]) -> Vec<Token> {
    let (mut upper, mut lower) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_uppercase() {
            upper += 1;
        } else if c.is_lowercase() {
            lower += 1;
        }
    }
    let informative = upper > 0 && lower > 0 && upper * 10 < (upper + lower) * 6;
    let mut out: Vec<Token> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut boundary = true;
    while let Some((i, c)) = chars.next() {
        if !c.is_alphanumeric() {
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '\n' | '"' | '(' | '•') {
                boundary = true;
            }
            continue;
        }
        let start = i;
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_alphanumeric() {
                end = j + d.len_utf8();
                chars.next();
            } else if matches!(d, '\'' | '’')
                && text[j + d.len_utf8()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)
            {
                chars.next();
            } else {
                break;
            }
        }
        let raw = &text[start..end];
        let mut folded = String::new();
        fold(raw, &mut folded);
        let core_end = if raw.ends_with("'s") || raw.ends_with("'S") {
            end - 2
        } else if raw.ends_with("’s") || raw.ends_with("’S") {
            end - 4
        } else {
            end
        };
        let first = raw.chars().next().unwrap_or(' ');
        out.push(Token {
            start,
            end: core_end.max(start + first.len_utf8()),
            digits: raw.chars().any(|c| c.is_ascii_digit()),
            letters: raw.chars().any(char::is_alphabetic),
            cap: !informative || first.is_uppercase(),
            initial: boundary,
            title_case: informative
                && first.is_uppercase()
                && raw.chars().skip(1).any(char::is_lowercase),
            taken: taken.iter().any(|s| s.start < end && start < s.end),
            folded,
        });
        boundary = false;
    }
    out
}

/// Whether only spaces or a hyphen lie between two words of one name or place.
fn joined(text: &str, a: &Token, b: &Token) -> bool {
    text.get(a.end..b.start)
        .is_some_and(|gap| gap.chars().all(|c| c == ' ' || c == '-' || c == '\t'))
}

/// A word that is a name by the dictionaries alone.
fn plain_name(t: &Token) -> bool {
    let w = t.folded.as_str();
    t.letters && !t.digits && t.cap && dict::name(w) && !dict::safe(w)
}

/// A word that may continue a name after a title, cue or another name.
fn name_like(t: &Token) -> bool {
    let w = t.folded.as_str();
    t.letters
        && !t.digits
        && t.cap
        && w.chars().count() > 1
        && (dict::name(w) && (!dict::very_common(w) || capitalized(t)) || !dict::safe(w))
        && !dict::title(w)
        && !dict::cue(w)
        && !dict::domain(w)
}

/// `I'm`, `you'd`, `don't`: a contraction of a safe word.
fn contraction(w: &str) -> bool {
    w.split_once('\'').is_some_and(|(a, b)| {
        (a == "i" || dict::safe(a) || a == "don" || a == "won" || a == "can")
            && matches!(b, "m" | "d" | "ll" | "ve" | "re" | "t" | "s")
    })
}

/// Ordinals and quantities that carry no identity: `5th`, `2nd`, `4mg`, `x2`.
fn quantity(w: &str) -> bool {
    let digits = w.trim_start_matches(|c: char| c.is_ascii_digit());
    let lead = w.len() - digits.len();
    (lead > 0
        && matches!(
            digits,
            "st" | "nd"
                | "rd"
                | "th"
                | "mg"
                | "mcg"
                | "ml"
                | "cc"
                | "g"
                | "x"
                | "am"
                | "pm"
                | "hrs"
                | "hr"
                | "h"
                | "min"
                | "mins"
                | "yo"
                | "lbs"
                | "lb"
                | "mph"
                | "s"
        ))
        || (w.starts_with('x') && w[1..].chars().all(|c| c.is_ascii_digit()) && w.len() > 1)
}

/// The word layer's spans, outside `taken` (the patterns' and known values' spans).
pub fn find(text: &str, taken: &[Span], safe_words: bool) -> Vec<Span> {
    let toks = tokens(text, taken);
    let n = toks.len();
    let mut label: Vec<Option<&'static str>> = vec![None; n];
    let free = |i: usize, label: &[Option<&str>]| !toks[i].taken && label[i].is_none();

    // Places: the longest phrase of up to four joined words first.
    let mut i = 0;
    let mut phrase = String::new();
    while i < n {
        let mut hit = 0;
        if free(i, &label) && toks[i].letters && toks[i].cap {
            phrase.clear();
            for k in 0..4.min(n - i) {
                let t = &toks[i + k];
                if k > 0 && (!joined(text, &toks[i + k - 1], t) || !free(i + k, &label)) {
                    break;
                }
                if k > 0 {
                    phrase.push(' ');
                }
                phrase.push_str(&t.folded);
                if dict::place(&phrase) {
                    hit = k + 1;
                }
            }
        }
        let t = &toks[i];
        // `in Nitro`; `3800 Teays Valley Rd, Hurricane`: after a preposition, or after a comma
        // that follows an address.
        let cued = i > 0
            && (dict::place_cue(&toks[i - 1].folded)
                || toks[i - 1].taken && text[toks[i - 1].end..toks[i].start].trim() == ",");
        let w = t.folded.as_str();
        // `AUSTIN BOGGS`: a given name before a surname is a name, not the city.
        let named = dict::given(w)
            && toks.get(i + 1).is_some_and(|u| {
                u.cap
                    && joined(text, t, u)
                    && dict::surname(&u.folded)
                    && !dict::very_common(&u.folded)
            });
        let accept = match hit {
            0 => false,
            _ if named => false,
            1 => {
                !t.digits
                    && (!dict::safe(w) && !dict::title(w)
                        || (!dict::very_common(w) || cued) && t.cap && !t.initial && capitalized(t)
                        || cued && dict::safe(w) && !dict::very_common(w))
            }
            // `Country Club`, `Point Pleasant`: all common words need a cue.
            _ => {
                cued || toks[i..i + hit]
                    .iter()
                    .any(|t| !dict::very_common(&t.folded))
            }
        };
        if accept {
            label[i..i + hit].fill(Some("PLACE"));
            // `Kanawha County`, `Charleston City`: the word after the place that makes it one.
            if let Some(next) = toks.get(i + hit)
                && free(i + hit, &label)
                && joined(text, &toks[i + hit - 1], next)
                && matches!(next.folded.as_str(), "county" | "co" | "city" | "township")
            {
                label[i + hit] = Some("PLACE");
            }
            i += hit;
        } else {
            i += 1;
        }
    }
    for i in 0..n {
        // `Lincoln County`: a capitalized word before `County` is a place.
        if free(i, &label)
            && toks[i].cap
            && toks[i].letters
            && !toks[i].digits
            && toks.get(i + 1).is_some_and(|t| t.folded == "county")
            && !dict::very_common(&toks[i].folded)
        {
            label[i] = Some("PLACE");
            label[i + 1] = Some("PLACE");
        }
    }

    // Names after a title (`Dr. Nielsen`) or a cue (`RP JOHN SMITH`, `named Lauren`, `call me
    // Roland`): up to three name-like words.
    for i in 0..n {
        let w = toks[i].folded.as_str();
        let after_cue = dict::cue(w)
            || matches!(w, "name" | "names" | "me")
                && i > 0
                && matches!(
                    toks[i - 1].folded.as_str(),
                    "my" | "last"
                        | "first"
                        | "call"
                        | "calls"
                        | "called"
                        | "maiden"
                        | "his"
                        | "her"
                        | "their"
                        | "your"
                )
            || w == "is" && i > 0 && toks[i - 1].folded == "name";
        if !(dict::title(w) || after_cue) || toks[i].digits {
            continue;
        }
        let mut k = i + 1;
        // `name is`, `name was`: the verb is skipped.
        while k < n && matches!(toks[k].folded.as_str(), "is" | "was" | "are") && k <= i + 1 {
            k += 1;
        }
        let strong = dict::strong_cue(w) || w == "is";
        let cued = after_cue && !dict::title(w);
        let mut taken_any = 0;
        while k < n && taken_any < 3 {
            let t = &toks[k];
            let v = t.folded.as_str();
            // A cue's given name may have been taken for a place (`grandson Logan`).
            if !(free(k, &label) || label[k] == Some("PLACE") && dict::given(v) && !t.taken) {
                break;
            }
            // After a cue, a given name is a name even if it is a common word (`HER HUSBAND
            // EARL`, `GIRLFRIEND DESTINY`), unless it is a verb or the like; after `named`,
            // any capitalized word is.
            let ok = name_like(t)
                || t.cap
                    && t.letters
                    && !t.digits
                    && !dict::not_after_cue(v)
                    && !dict::domain(v)
                    && (strong && taken_any == 0
                        || cued && taken_any == 0 && dict::given(v)
                        || taken_any > 0 && dict::surname(v) && dict::given(&toks[k - 1].folded));
            if !ok || taken_any > 0 && !joined(text, &toks[k - 1], t) {
                break;
            }
            label[k] = Some("NAME");
            taken_any += 1;
            k += 1;
        }
    }

    // Names by the dictionaries, and the words joined to them.
    for i in 0..n {
        let t = &toks[i];
        if t.taken || label[i].is_some_and(|l| l != "NAME") || !t.letters || t.digits {
            continue;
        }
        let w = t.folded.as_str();
        let by_dict = plain_name(t)
            || dict::name(w)
                && !dict::very_common(w)
                && t.cap
                && !t.initial
                && capitalized(t)
                && !dict::domain(w);
        // `Mark Brown`: a given name and a surname joined, both capitalized.
        let pair = t.cap
            && dict::given(w)
            && !dict::domain(w)
            && toks.get(i + 1).is_some_and(|u| {
                u.cap
                    && !u.digits
                    && dict::surname(&u.folded)
                    && !dict::not_after_cue(&u.folded)
                    && (!dict::very_common(&u.folded) || capitalized(u))
                    && joined(text, t, u)
                    // The given name is clearly one: not a common word, or capitalized
                    // in mid-sentence (`JOHN SMITH`, `Frank White`; not `WILL SMITH`).
                    && (capitalized(t) || !dict::very_common(w))
            });
        if by_dict {
            label[i] = Some("NAME");
        }
        if pair {
            label[i] = Some("NAME");
            if free(i + 1, &label) {
                label[i + 1] = Some("NAME");
            }
        }
    }
    // Extend names to joined name-like words on both sides (`Jessica Solomina`, `Janice Brkić`).
    for _ in 0..2 {
        for i in 0..n {
            if label[i] != Some("NAME") {
                continue;
            }
            if i + 1 < n
                && free(i + 1, &label)
                && joined(text, &toks[i], &toks[i + 1])
                && name_like(&toks[i + 1])
                && (dict::surname(&toks[i + 1].folded) || !dict::safe(&toks[i + 1].folded))
                && (!dict::very_common(&toks[i + 1].folded) || capitalized(&toks[i + 1]))
            {
                label[i + 1] = Some("NAME");
            }
            if i > 0
                && free(i - 1, &label)
                && joined(text, &toks[i - 1], &toks[i])
                && name_like(&toks[i - 1])
                && (dict::given(&toks[i - 1].folded) || !dict::safe(&toks[i - 1].folded))
                && (!dict::very_common(&toks[i - 1].folded) || capitalized(&toks[i - 1]))
            {
                label[i - 1] = Some("NAME");
            }
        }
    }

    if safe_words {
        for i in 0..n {
            if !free(i, &label) {
                continue;
            }
            let t = &toks[i];
            let w = t.folded.as_str();
            label[i] = if t.letters {
                if w.chars().count() < 2 || dict::safe(w) || quantity(w) || contraction(w) {
                    None
                } else if t.digits {
                    Some("ID")
                } else if dict::name(w) {
                    Some("NAME")
                } else if dict::place(w) {
                    Some("PLACE")
                } else {
                    Some("UNKNOWN")
                }
            } else {
                match w.len() {
                    5 => Some("ZIP"),
                    6.. => Some("ID"),
                    _ => None,
                }
            };
        }
        // House and unit numbers next to a removed word on its line (`87 Jakobi 69`).
        for i in 0..n {
            if !free(i, &label) || toks[i].letters || toks[i].folded.len() > 6 {
                continue;
            }
            let next = |j: usize| {
                label[j].is_some_and(|l| l != "ZIP" && l != "ID")
                    && !toks[j].taken
                    && text[toks[i].end.min(toks[j].end)..toks[i].start.max(toks[j].start)]
                        .chars()
                        .all(|c| c == ' ' || c == ',')
            };
            if (i + 1 < n && next(i + 1)) || (i > 0 && next(i - 1)) {
                label[i] = Some("ADDRESS");
            }
        }
    }
    // `Arnold Staats, 78,`, `JESSE CAUDILL (52)`, `DANIEL PRITT 44`: a number of at most three
    // digits right after a name is an age.
    for i in 1..n {
        if free(i, &label)
            && !toks[i].letters
            && toks[i].folded.len() <= 3
            && label[i - 1] == Some("NAME")
            && matches!(
                text[toks[i - 1].end..toks[i].start].trim_end(),
                "" | "," | " (" | "(" | ", ("
            )
            && toks[i].folded.parse::<u32>().is_ok_and(|a| a <= 120)
        {
            label[i] = Some("AGE");
        }
    }
    // A five-digit number right after a place is its ZIP (`Serbia 23823`, `Nitro, WV 25143`).
    for i in 1..n {
        if free(i, &label)
            && !toks[i].letters
            && toks[i].folded.len() == 5
            && label[i - 1] == Some("PLACE")
            && text[toks[i - 1].end..toks[i].start]
                .chars()
                .all(|c| c == ' ' || c == ',')
        {
            label[i] = Some("ZIP");
        }
    }

    // Joined words of one label make one span.
    let mut out: Vec<Span> = Vec::new();
    for i in 0..n {
        let Some(l) = label[i] else { continue };
        if toks[i].taken {
            continue;
        }
        match out.last_mut() {
            Some(last)
                if last.label == l
                    && i > 0
                    && label[i - 1] == Some(l)
                    && joined(text, &toks[i - 1], &toks[i]) =>
            {
                last.end = toks[i].end
            }
            _ => out.push(Span {
                start: toks[i].start,
                end: toks[i].end,
                label: l,
            }),
        }
    }
    out
}

/// Whether `t`'s capital is evidence: capitalized in mixed-case text, not first in its sentence.
fn capitalized(t: &Token) -> bool {
    t.title_case && !t.initial
}
