//! Compiled transform steps and code tables.

use super::reuse::Scratch;
use super::spec::{Missing, TransformSpec};
use regex::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub enum Transform {
    Trim,
    Upper,
    Lower,
    Title,
    Digits,
    Split {
        sep: String,
        index: i64,
    },
    /// `ascii`: the same pattern in ASCII mode (see [`ascii_twin`]), for ASCII values.
    Regex {
        re: Regex,
        ascii: Option<Regex>,
        group: usize,
    },
    Replace {
        re: Regex,
        with: String,
    },
    Default(String),
    Table {
        table: usize,
        missing: Missing,
    },
}

/// A code table: code → value. Hashed with FxHash rather than SipHash: the keys are the
/// mapping's own codes (no one can choose them to collide), and a lookup hashes a code of two to
/// five bytes, where SipHash's setup cost more than the rest of the lookup.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub map: CodeMap,
    pub ignore_case: bool,
    pub partial: bool,
}

/// The map of a [`Table`].
pub type CodeMap = HashMap<String, String, rustc_hash::FxBuildHasher>;

impl Table {
    pub fn get(&self, code: &str) -> Option<&str> {
        // Codes are mostly upper case already: no copy for them, and a short one is upper-cased
        // on the stack.
        if self.ignore_case && code.bytes().any(|b| b.is_ascii_lowercase()) {
            let mut buf = [0u8; 32];
            if let Some(b) = buf.get_mut(..code.len()) {
                b.copy_from_slice(code.as_bytes());
                b.make_ascii_uppercase();
                // Upper-casing ASCII letters keeps UTF-8 valid.
                let upper = std::str::from_utf8(b).ok()?;
                return self.map.get(upper).map(String::as_str);
            }
            self.map.get(&code.to_ascii_uppercase()).map(String::as_str)
        } else {
            self.map.get(code).map(String::as_str)
        }
    }
}

/// A code a table step did not find: a gap to report, or a rejection (`missing = "reject"`). The
/// code is the raw value: the mapping engine describes it (see [`super::unmapped`]) before it
/// leaves.
pub enum Miss<'a> {
    Gap { table: usize, code: Cow<'a, str> },
    Reject { table: usize, code: Cow<'a, str> },
}

impl Transform {
    /// Compiles one step; `table_id` resolves table names.
    pub fn compile(
        spec: &TransformSpec,
        table_id: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Transform, String> {
        Ok(match spec {
            TransformSpec::Trim => Transform::Trim,
            TransformSpec::Upper => Transform::Upper,
            TransformSpec::Lower => Transform::Lower,
            TransformSpec::Title => Transform::Title,
            TransformSpec::Digits => Transform::Digits,
            TransformSpec::Split { sep, index } => {
                if sep.is_empty() {
                    return Err("split needs a non-empty `sep`".into());
                }
                Transform::Split {
                    sep: sep.clone(),
                    index: *index,
                }
            }
            TransformSpec::Regex { pattern, group } => {
                let re = Regex::new(pattern).map_err(|e| format!("bad regex: {e}"))?;
                if *group >= re.captures_len() {
                    return Err(format!(
                        "regex has {} capture group(s); group {group} does not exist",
                        re.captures_len() - 1
                    ));
                }
                Transform::Regex {
                    ascii: ascii_twin(pattern),
                    re,
                    group: *group,
                }
            }
            TransformSpec::Replace { pattern, with } => Transform::Replace {
                re: Regex::new(pattern).map_err(|e| format!("bad regex: {e}"))?,
                with: with.clone(),
            },
            TransformSpec::Default { value } => Transform::Default(value.clone()),
            TransformSpec::Table { table, missing } => Transform::Table {
                table: table_id(table)
                    .ok_or_else(|| format!("no table named `{table}` in [tables]"))?,
                missing: *missing,
            },
        })
    }

    /// Applies the step to `v` in place. The value is changed where it stands rather than
    /// moved in and out of each step: the chain runs for every value of every record, and the
    /// moves of the returned value were the hottest part of `transform` (store-forwarding
    /// stalls). A borrowed value stays borrowed whenever the step only narrows it (trim, a regex
    /// group, an upper-case code) or picks a table entry or default; a step that writes a new
    /// text writes it into a buffer from `scratch` (see [`super::reuse`]).
    pub fn apply<'a>(
        &'a self,
        v: &mut Cow<'a, str>,
        tables: &'a [Table],
        scratch: &mut Scratch,
    ) -> Option<Miss<'a>> {
        match self {
            Transform::Trim => trim_in_place(v),
            // ASCII first: a byte test, not a Unicode property per character.
            Transform::Upper if v.is_ascii() => {
                if v.bytes().any(|b| b.is_ascii_lowercase()) {
                    v.to_mut().make_ascii_uppercase();
                }
            }
            Transform::Upper => {
                if v.chars().any(char::is_lowercase) {
                    *v = Cow::Owned(v.to_uppercase());
                }
            }
            Transform::Lower => {
                if v.chars().any(char::is_uppercase) {
                    *v = Cow::Owned(v.to_lowercase());
                }
            }
            Transform::Title => {
                let mut out = scratch.buffer();
                title(v, &mut out);
                *v = Cow::Owned(out);
            }
            Transform::Digits => {
                if !v.bytes().all(|b| b.is_ascii_digit()) {
                    let mut s = scratch.buffer();
                    s.extend(v.chars().filter(char::is_ascii_digit));
                    *v = Cow::Owned(s);
                }
            }
            Transform::Split { sep, index } => {
                let parts: Vec<&str> = v.split(sep.as_str()).collect();
                let i = if *index < 0 {
                    parts.len() as i64 + index
                } else {
                    *index
                };
                let part = usize::try_from(i)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                *v = Cow::Owned(part);
            }
            // A borrowed value yields a borrowed capture: no copy of the group.
            Transform::Regex { re, ascii, group } => {
                let re = match ascii {
                    Some(a) if v.is_ascii() => a,
                    _ => re,
                };
                *v = match &*v {
                    Cow::Borrowed(b) => Cow::Borrowed(
                        re.captures(b)
                            .and_then(|c| c.get(*group))
                            .map_or("", |m| m.as_str()),
                    ),
                    Cow::Owned(o) => Cow::Owned(
                        re.captures(o)
                            .and_then(|c| c.get(*group))
                            .map(|m| m.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                };
            }
            Transform::Replace { re, with } => {
                if let Cow::Owned(o) = re.replace_all(v, with.as_str()) {
                    *v = Cow::Owned(o);
                }
            }
            Transform::Default(d) => {
                if v.is_empty() {
                    *v = Cow::Borrowed(d);
                }
            }
            Transform::Table { table, missing } => {
                if v.is_empty() {
                    return None;
                }
                let t = &tables[*table];
                match t.get(v) {
                    Some(found) => *v = Cow::Borrowed(found),
                    None if t.partial => {
                        if *missing != Missing::Keep {
                            *v = Cow::Borrowed("");
                        }
                    }
                    None => {
                        let table = *table;
                        return Some(match missing {
                            Missing::Reject => Miss::Reject {
                                table,
                                code: std::mem::take(v),
                            },
                            Missing::Empty => Miss::Gap {
                                table,
                                code: std::mem::take(v),
                            },
                            Missing::Keep => Miss::Gap {
                                table,
                                code: v.clone(),
                            },
                        });
                    }
                }
            }
        }
        None
    }
}

/// [`trim`] of a value in place: a borrowed value is narrowed, an owned one copied only when it
/// has blanks at its ends.
pub fn trim_in_place(v: &mut Cow<'_, str>) {
    match v {
        Cow::Borrowed(b) => *b = trim(b),
        Cow::Owned(o) => {
            let t = trim(o);
            if t.len() != o.len() {
                *o = t.to_owned();
            }
        }
    }
}

/// The pattern compiled in ASCII mode (`\d`, `\s`, `\w`, `\b` and case folding by ASCII
/// alone), when the pattern is ASCII text and compiles so; `None` otherwise. On an ASCII value it
/// matches exactly as the Unicode pattern does: the Unicode classes agree with the ASCII ones on
/// ASCII characters, and what could differ cannot compile (a class or `.` that would match a
/// non-ASCII byte) or is declined here: a code point written by escape (`(?i)\x{212A}`, the
/// Kelvin sign, matches `k` under Unicode case folding only). The Unicode classes made the regex crate
/// run its backtracker where the ASCII pattern runs a one-pass DFA (`^\s*(\d{5})` for a ZIP code
/// was 4% of `normalize`).
fn ascii_twin(pattern: &str) -> Option<Regex> {
    if !pattern.is_ascii() || ["\\x", "\\u", "\\U"].iter().any(|e| pattern.contains(e)) {
        return None;
    }
    RegexBuilder::new(pattern).unicode(false).build().ok()
}

/// `str::trim`, answered from the two end bytes when both are ASCII and not blanks (nearly
/// every field of an export): `trim` walks characters from both ends to decide that, and ran
/// on every value twice (before the transforms and in `trim`), about 2% of `normalize`.
pub fn trim(s: &str) -> &str {
    let kept = |b: &u8| b.is_ascii() && !matches!(b, b'\t'..=b'\r' | b' ');
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if kept(a) && kept(z) => s,
        // An empty value (a column left blank) is its own trim.
        (None, _) => s,
        _ => s.trim(),
    }
}

/// Writes `v` in title case to `out` (empty).
fn title(v: &str, out: &mut String) {
    out.reserve(v.len());
    let mut start = true;
    for c in v.chars() {
        if c.is_alphanumeric() || c == '\'' {
            // ASCII by a byte's case, the rest by Unicode's mapping (which may be several
            // characters long).
            match (c.is_ascii(), start) {
                (true, true) => out.push(c.to_ascii_uppercase()),
                (true, false) => out.push(c.to_ascii_lowercase()),
                (false, true) => out.extend(c.to_uppercase()),
                (false, false) => out.extend(c.to_lowercase()),
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: Transform, v: &str) -> String {
        let mut v = Cow::Borrowed(v);
        let scratch = &mut Scratch::default();
        assert!(t.apply(&mut v, &[], scratch).is_none(), "not a value");
        v.into_owned()
    }

    #[test]
    fn steps() {
        assert_eq!(run(Transform::Trim, "  a b "), "a b");
        assert_eq!(
            run(Transform::Title, "o'BRIEN-SMITH jr"),
            "O'brien-Smith Jr"
        );
        assert_eq!(run(Transform::Digits, "(304) 555-0100"), "3045550100");
        let split = |index| Transform::Split {
            sep: ",".into(),
            index,
        };
        assert_eq!(run(split(1), "a,b,c"), "b");
        assert_eq!(run(split(-1), "a,b,c"), "c");
        assert_eq!(run(split(5), "a,b,c"), "");
        let re = Transform::Regex {
            re: Regex::new(r"^(\d+)-").unwrap(),
            ascii: ascii_twin(r"^(\d+)-"),
            group: 1,
        };
        assert_eq!(run(re.clone(), "46A - CIT"), "");
        assert_eq!(run(re, "46-CIT"), "46");
        assert_eq!(run(Transform::Default("x".into()), ""), "x");
    }

    /// On ASCII values the ASCII twin captures what the Unicode pattern captures; patterns that
    /// could tell them apart get no twin.
    #[test]
    fn the_ascii_twin_matches_as_the_unicode_pattern() {
        let patterns = [
            r"^\s*(\d{5})",
            r"(\w+)\s+(\d+)",
            r"\b(\w)\w*\b",
            r"(?i)(k+)(s)",
            r"^([A-Z]{2})-?(\d*)$",
            r"(\S+)@",
            r"(.)",
            r"([^,]+),",
            r"(\D+)",
            r"(\xE9)",
            r"(\x{212A})",
            r"(?i)(\x{212A})",
            r"(?i)(\u{17F})",
            r"(?i)(\U0000017F)",
            r"(\pL+)",
            r"([[:alpha:]]+)",
        ];
        let mut values: Vec<String> = [
            "",
            " 25301-1234",
            "25301",
            "2530",
            "KS ks Ks",
            "ab 12 cd",
            "x@y",
            "WV-25",
            "a,b",
            "\t\x0b\x0c\r\n 12345",
            "\x1c12345",
            "_a1 b_2",
            "K\u{212A}s\u{17F}",
        ]
        .map(String::from)
        .to_vec();
        // Every pair of ASCII characters.
        for a in 0u8..128 {
            for b in [b'0', b'a', b'K', b' ', b'_', b'\n', b'@', b',', a] {
                values.push(String::from_utf8(vec![a, b, b'5', b'5', b'5', b'5']).unwrap());
            }
        }
        let mut twins = 0;
        for p in patterns {
            let re = Regex::new(p).unwrap();
            let Some(twin) = ascii_twin(p) else { continue };
            twins += 1;
            for v in values.iter().filter(|v| v.is_ascii()) {
                let groups = |r: &Regex| {
                    r.captures(v)
                        .map(|c| c.iter().map(|m| m.map(|m| m.range())).collect::<Vec<_>>())
                };
                assert_eq!(groups(&re), groups(&twin), "{p} on {v:?}");
            }
        }
        // The ZIP pattern, words, case folding and the POSIX class have twins; `.`, negated
        // classes, escaped code points and `\pL` have none.
        assert_eq!(twins, 6);
        assert!(ascii_twin(r"^\s*(\d{5})").is_some());
        assert!(ascii_twin("(é)").is_none());
    }

    /// The fast trim gives `str::trim`'s answer, whatever the ends hold.
    #[test]
    fn trim_agrees_with_str_trim() {
        let ends = [
            "", "a", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x7f", "\u{85}",
            "\u{a0}", "\u{2003}", "\u{3000}", "é", "日", "\"",
        ];
        for a in ends {
            for z in ends {
                for mid in ["", "x", " x ", "a b"] {
                    let s = format!("{a}{mid}{z}");
                    assert_eq!(trim(&s), s.trim(), "{s:?}");
                }
            }
        }
    }
}
