//! A narrative (or other free text) as it may leave: under a consent, only the consenting
//! person's own values that the consent covers stay; everything else identifying goes.
//!
//! Two passes over the text:
//! 1. The known values, each in its common spellings ([`super::spellings`]): every value of every
//!    other person of the incident (callers, witnesses, family), of the incident itself (number,
//!    street, ZIP, coordinates), and the consenting person's values the consent does not cover are
//!    removed; the consenting person's covered values are marked to stay.
//! 2. The patterns ([`super::scrub`]: phones, SSNs, emails, dates, addresses, ...), under every
//!    consent: a match stays only where it lies within a consenting person's covered value.
//!
//! The narrative is text to scrub, never a value to match: its own words are not "known values".
//! Where a spelling is both a value to keep and one to remove (a shared phone, a family name),
//! it is removed.

use super::deid::{self, Mode};
use super::fields::{self, FieldDef, Nature, Raw};
use super::scrub::{self, Span};
use super::spellings;
use crate::model::Incident;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// What a narrative that cannot be scrubbed (the matcher would not build) becomes.
pub const WITHHELD: &str = "[NARRATIVE WITHHELD]";

/// `text` with every value that may not leave replaced by `[LABEL]`.
///
/// `consenting` is the index in `inc.persons` of the person whose consent the disclosure is made
/// under, `None` for a de-identified use (then every value and every pattern goes). `covered`
/// says whether the consent covers a field of that person. `mode` says how much of the rest
/// goes ([`deid`]): under a consent, the patterns and dictionaries (the provider reads the
/// narrative); for a de-identified use, every word not known to be safe too.
pub fn scrub_narrative(
    text: &str,
    inc: &Incident,
    consenting: Option<usize>,
    covered: &dyn Fn(&FieldDef) -> bool,
    mode: Mode,
) -> String {
    match find(text, inc, consenting, covered, mode) {
        Some(spans) => scrub::render(text, &spans),
        None => WITHHELD.to_string(),
    }
}

/// The spans of `text` to remove (sorted, not overlapping); `None` if the matcher could not be
/// built (the caller then withholds the text).
pub fn find(
    text: &str,
    inc: &Incident,
    consenting: Option<usize>,
    covered: &dyn Fn(&FieldDef) -> bool,
    mode: Mode,
) -> Option<Vec<Span>> {
    let alts = known_values(inc, consenting, covered);
    let (removed, kept) = if alts.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        KnownMatcher::new(&alts)?.find(text)
    };
    // A pattern inside a kept value stays; the word layer skips the known values.
    let mut out = deid::find_layers(text, mode, &removed, &kept);
    out.extend(removed);
    Some(merge(out))
}

/// One spelling of one known value.
#[derive(Debug, Clone)]
pub(crate) struct Alt {
    pub re: String,
    pub keep: bool,
    pub label: &'static str,
}

/// Every known value of the incident as spellings, each marked keep (the consenting person's
/// covered values) or remove (everything else).
fn known_values(
    inc: &Incident,
    consenting: Option<usize>,
    covered: &dyn Fn(&FieldDef) -> bool,
) -> Vec<Alt> {
    let mut out = Vec::new();
    for d in fields::FIELDS
        .iter()
        .filter(|d| !d.person && d.nature == Nature::DirectIdentifier && d.name != "narrative")
    {
        if let Some(raw) = fields::read(inc, None, d.name) {
            spell(d.name, &raw, false, &mut out);
        }
    }
    if let Some(raw) = fields::read(inc, None, "location.zip") {
        spell("location.zip", &raw, false, &mut out);
    }
    for (i, p) in inc.persons.iter().enumerate() {
        let own = consenting == Some(i);
        let keep = |name: &str| own && fields::def(name).is_some_and(covered);
        let text = |name: &str| match fields::read(inc, Some(p), name) {
            Some(Raw::Text(t)) => Some(t),
            _ => None,
        };
        let (first, middle, last) = (text("name.first"), text("name.middle"), text("name.last"));
        for (re, parts) in spellings::names(first.as_deref(), middle.as_deref(), last.as_deref()) {
            out.push(Alt {
                re,
                keep: parts.iter().all(|f| keep(f)),
                label: "NAME",
            });
        }
        for d in fields::FIELDS.iter().filter(|d| {
            d.person
                && !d.name.starts_with("name.")
                && (d.nature == Nature::DirectIdentifier || matches!(d.name, "dob" | "address.zip"))
        }) {
            if let Some(raw) = fields::read(inc, Some(p), d.name) {
                spell(d.name, &raw, keep(d.name), &mut out);
            }
        }
    }
    out
}

/// The spellings of one field's value.
fn spell(field: &str, raw: &Raw, keep: bool, out: &mut Vec<Alt>) {
    let values: Vec<String> = match raw {
        Raw::Text(t) => vec![t.clone()],
        Raw::List(l) => l.clone(),
        Raw::Date(d) => {
            out.extend(spellings::date(*d).into_iter().map(|re| Alt {
                re,
                keep,
                label: "DATE",
            }));
            return;
        }
        Raw::Number(n) => {
            out.extend(coordinate(*n).map(|re| Alt {
                re,
                keep,
                label: "GEO",
            }));
            return;
        }
        _ => return,
    };
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let (label, res): (&'static str, Vec<String>) = match field {
            "phones" => (
                "PHONE",
                spellings::phone(v)
                    .or_else(|| spellings::identifier(v))
                    .into_iter()
                    .collect(),
            ),
            "emails" => ("EMAIL", spellings::email(v).into_iter().collect()),
            "address.street" | "location.street" => ("ADDRESS", spellings::street(v)),
            "address.zip" | "location.zip" => ("ZIP", spellings::zip(v).into_iter().collect()),
            "id.ssn" => ("SSN", spellings::identifier(v).into_iter().collect()),
            _ => {
                // Identifiers, and any identifying field added later: as written, and (when one
                // word) by its letters and digits with or without separators.
                let mut res = Vec::new();
                if !v.contains(char::is_whitespace) {
                    res.extend(spellings::identifier(v));
                }
                if v.chars().filter(|c| c.is_alphanumeric()).count() >= 2 {
                    res.push(spellings::literal(v));
                }
                ("ID", res)
            }
        };
        out.extend(res.into_iter().map(|re| Alt { re, keep, label }));
    }
}

/// A coordinate by its degrees and first three decimals, however many decimals follow.
fn coordinate(n: f64) -> Option<String> {
    let s = format!("{:.6}", n.abs());
    let (deg, dec) = s.split_once('.')?;
    Some(format!(r"-?\b{deg}\.{}\d*", &dec[..3]))
}

/// The known values compiled: one combined regex, the longest spellings first, so that `Jane
/// Doe` (kept) is not cut down to `Doe` (a relative's name, removed); a match that is exactly a
/// spelling to remove is removed.
pub(crate) struct KnownMatcher {
    re: Regex,
    exact: RegexSet,
    labels: Vec<&'static str>,
}

impl KnownMatcher {
    /// `None` if the matcher cannot be built (too large); the caller withholds the text.
    pub(crate) fn new(alts: &[Alt]) -> Option<KnownMatcher> {
        let mut all: Vec<&Alt> = alts.iter().collect();
        // By the length of the spelling, a name's plural aside (see `spellings::PLURAL`).
        all.sort_by_key(|a| {
            let plurals = a.re.matches(spellings::PLURAL).count() * spellings::PLURAL.len();
            std::cmp::Reverse(a.re.len() - plurals)
        });
        all.dedup_by(|a, b| a.re == b.re && a.keep == b.keep);
        let combined = all
            .iter()
            .map(|a| format!("(?:{})", a.re))
            .collect::<Vec<_>>()
            .join("|");
        // ASCII case folding and word boundaries: the spellings spell out non-ASCII cases
        // themselves (see `spellings::escape`).
        let re: Regex = RegexBuilder::new(&combined)
            .case_insensitive(true)
            .unicode(false)
            .size_limit(64 << 20)
            .build()
            .ok()?;
        let removing: Vec<&&Alt> = all.iter().filter(|a| !a.keep).collect();
        let exact = RegexSetBuilder::new(removing.iter().map(|a| format!("^(?:{})$", a.re)))
            .case_insensitive(true)
            .unicode(false)
            .size_limit(64 << 20)
            .build()
            .ok()?;
        Some(KnownMatcher {
            re,
            exact,
            labels: removing.iter().map(|a| a.label).collect(),
        })
    }

    /// The spans to remove and the spans that stay.
    pub(crate) fn find(&self, text: &str) -> (Vec<Span>, Vec<Span>) {
        let (mut removed, mut kept) = (Vec::new(), Vec::new());
        for m in self.re.find_iter(text) {
            let hits = self.exact.matches(m.as_str());
            let span = |label| Span {
                start: m.start(),
                end: m.end(),
                label,
            };
            match hits.iter().next() {
                Some(i) => removed.push(span(self.labels[i])),
                None => kept.push(span("KEPT")),
            }
        }
        (removed, kept)
    }
}

/// Sorted spans with overlapping ones joined (the first one's label).
pub(crate) fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start < last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Identifier, IdentifierKind, Name, Person, Role, Sensitive};
    use chrono::NaiveDate;

    fn s(v: &str) -> Option<Sensitive<String>> {
        Some(Sensitive::new(v.to_string()))
    }

    fn person(role: Role, last: &str, first: &str, middle: &str, phone: &str) -> Person {
        Person {
            role,
            name: Name {
                last: s(last),
                first: s(first),
                middle: s(middle),
                suffix: None,
            },
            phones: vec![Sensitive::new(phone.to_string())],
            ..Person::default()
        }
    }

    /// Jane Quinn Doe (the subject) and Richard Mark Roe (the caller), values of our own making.
    fn incident() -> Incident {
        let mut inc = Incident::new("test");
        inc.incident_id = "2026-000101".into();
        inc.location.street = s("77 Hollow Rd");
        inc.location.zip = s("25302");
        let mut jane = person(Role::Subject, "DOE", "JANE", "QUINN", "3045550100");
        jane.emails = vec![Sensitive::new("Jane.Doe@Example.org".into())];
        jane.address.street = s("12 Example Ave");
        jane.dob = Some(Sensitive::new(NaiveDate::from_ymd_opt(1990, 7, 4).unwrap()));
        jane.identifiers = vec![Identifier {
            kind: IdentifierKind::Ssn,
            value: Sensitive::new("123-45-6789".into()),
            issuer: None,
        }];
        let mut richard = person(Role::Caller, "ROE", "RICHARD", "MARK", "304-555-0199");
        richard.emails = vec![Sensitive::new("rroe@mail.example.net".into())];
        richard.address.street = s("400 N Quarry St");
        richard.identifiers = vec![
            Identifier {
                kind: IdentifierKind::Ssn,
                value: Sensitive::new("987654321".into()),
                issuer: None,
            },
            Identifier {
                kind: IdentifierKind::Plate,
                value: Sensitive::new("ABC1234".into()),
                issuer: Some("WV".into()),
            },
        ];
        inc.persons = vec![jane, richard];
        inc
    }

    fn all(_: &FieldDef) -> bool {
        true
    }

    #[test]
    fn every_spelling_of_another_persons_values_goes() {
        let inc = incident();
        for t in [
            "(304) 555-0199",
            "304.555.0199",
            "3045550199",
            "1-304-555-0199",
            "ROE, RICHARD",
            "Roe, Richard M.",
            "Richard Roe",
            "Richard M. Roe",
            "Richard Mark Roe",
            "R. Roe",
            "Roe",
            "Richard",
            "RROE@MAIL.EXAMPLE.NET",
            "400 North Quarry Street",
            "400 N. QUARRY ST.",
            "987-65-4321",
            "987 65 4321",
            "abc-1234",
            "2026-000101",
            "77 Hollow Road",
        ] {
            let text = format!("Callback: {t} ; Subject agreed to talk.");
            let out = scrub_narrative(&text, &inc, Some(0), &all, Mode::Patterns);
            assert!(
                out.starts_with("Callback: [") && out.ends_with("] ; Subject agreed to talk."),
                "{t} -> {out}"
            );
        }
    }

    #[test]
    fn the_consenting_persons_covered_values_stay_and_other_patterns_go() {
        let inc = incident();
        let text = "Jane Q. Doe (DOB 07/04/1990, SSN 123456789) at 12 Example Avenue, \
                    tel (304) 555-0100, JANE.DOE@EXAMPLE.ORG; seen 03/01/2026, \
                    friend at 555-0123 and pal@example.com.";
        let out = scrub_narrative(text, &inc, Some(0), &all, Mode::Patterns);
        assert_eq!(
            out,
            "Jane Q. Doe (DOB 07/04/1990, SSN 123456789) at 12 Example Avenue, \
             tel (304) 555-0100, JANE.DOE@EXAMPLE.ORG; seen [DATE], \
             friend at [PHONE] and [EMAIL]."
        );
    }

    #[test]
    fn values_the_consent_does_not_cover_go_and_ordinary_words_stay() {
        let inc = incident();
        let identity = |d: &FieldDef| {
            crate::model::InfoClass::Identity
                .elements()
                .contains(&d.element)
        };
        let text = "Jane Doe agreed to treatment; call her at 304.555.0100 or 3045550100, \
                    SSN 123-45-6789, lives at 12 EXAMPLE AVE.";
        let out = scrub_narrative(text, &inc, Some(0), &identity, Mode::Patterns);
        assert_eq!(
            out,
            "Jane Doe agreed to treatment; call her at [PHONE] or [PHONE], \
             SSN [SSN], lives at [ADDRESS]"
        );
    }

    #[test]
    fn without_a_consent_every_value_goes() {
        let inc = incident();
        let text = "Doe, Jane called about Richard; Jane's phone 304 555 0100.";
        let out = scrub_narrative(text, &inc, None, &all, Mode::Patterns);
        assert_eq!(out, "[NAME] called about [NAME]; [NAME]'s phone [PHONE].");
    }

    #[test]
    fn under_a_consent_the_dictionaries_remove_names_the_incident_does_not_hold() {
        let inc = incident();
        let text = "Jane Doe met her neighbour Kaylee Okonkwo at 9 Sycamore Ln in Nitro; \
                    Jane agreed to see a peer.";
        let out = scrub_narrative(text, &inc, Some(0), &all, Mode::Patterns);
        assert_eq!(
            out,
            "Jane Doe met her neighbour [NAME] at [ADDRESS] in [PLACE]; \
             Jane agreed to see a peer."
        );
        // Without a consent the subject's name goes too, and unknown words with it.
        let out = scrub_narrative(text, &inc, None, &all, Mode::SafeWords);
        assert!(out.starts_with("[NAME] met her neighbour [NAME]"), "{out}");
    }

    /// What an independent probe found kept in a referral's narrative: the subject's date of
    /// birth typed without separators, a relative's surname as a plural or in lower case, and
    /// the street's name without its number.
    #[test]
    fn compact_dates_plural_names_and_bare_street_names_go() {
        let inc = incident();
        let identity = |d: &FieldDef| d.name.starts_with("name.");
        for (text, want) in [
            ("DOB 070490 per subject.", "DOB [DATE] per subject."),
            ("dob:07041990", "dob:[ID]"),
            ("DOB 19900704.", "DOB [ID]."),
            ("born Jul. 4, '90 per subject.", "born [DATE] per subject."),
            ("The Roes called again.", "The [NAME] called again."),
            ("ROES and RICHARDS", "[NAME] and [NAME]"),
            ("roe's car", "[NAME]'s car"),
            (
                "walked toward Example from Main",
                "walked toward [ADDRESS] from Main",
            ),
            ("subject lives on EXAMPLE", "subject lives on [ADDRESS]"),
            ("the hollow was dark", "the hollow was dark"),
        ] {
            let out = scrub_narrative(text, &inc, Some(0), &identity, Mode::Patterns);
            assert_eq!(out, want, "{text}");
        }
    }

    #[test]
    fn a_spelling_shared_with_another_person_goes() {
        let mut inc = incident();
        // The caller is the subject's mother, Mary Doe, on the subject's phone.
        inc.persons[1] = person(Role::Caller, "DOE", "MARY", "", "(304) 555-0100");
        let text = "Jane Doe's mother Mary Doe called; Doe said 304-555-0100.";
        let out = scrub_narrative(text, &inc, Some(0), &all, Mode::Patterns);
        assert_eq!(out, "Jane Doe's mother [NAME] called; [NAME] said [PHONE].");
    }
}
