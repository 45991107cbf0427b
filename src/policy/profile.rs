//! Disclosure profiles: which fields a destination receives and how each is transformed.
//! Default deny: a field the profile does not list never leaves. Pure: the pseudonyms come from
//! the vault through the caller.

use super::age::{Ages, generalized_age, over_89};
use super::deid::Mode;
use super::fields::{self, FieldDef, Kind, Nature, Raw};
use super::narrative;
use crate::model::{Element, Incident, Person};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    /// HIPAA 45 CFR 164.514(b)(2): the 18 identifiers removed.
    SafeHarbor,
    /// 164.514(e): direct identifiers removed; dates, city, county, ZIP may stay (needs a DUA).
    LimitedDataSet,
    /// Identified data for one person, limited to what their consent covers.
    ConsentedReferral,
    /// Counts only, never rows: the monthly program report, small counts suppressed (see
    /// `report`). No field is disclosed.
    Aggregate,
}

impl ProfileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::SafeHarbor => "safe-harbor",
            ProfileKind::LimitedDataSet => "limited-data-set",
            ProfileKind::ConsentedReferral => "consented-referral",
            ProfileKind::Aggregate => "aggregate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Keep,
    Redact,
    Generalize,
    Pseudonymize,
    DateShift,
    Scrub,
}

/// The default ZIP3 prefixes that Safe Harbor reports as `000` (populations of 20,000 or fewer):
/// HHS's list and the two Microsoft's anonymizer adds.
pub const RESTRICTED_ZIP3: &[&str] = &[
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893", "205", "369",
];

/// A re-identification code and date shift for one token scope, from the pseudonym vault: keyed
/// derivations of a random id, never of the person's data (164.514(c)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonym {
    pub token: String,
    pub shift_days: i64,
}

/// A checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub kind: ProfileKind,
    pub fields: Vec<(&'static FieldDef, Method)>,
    pub restricted_zip3: Vec<String>,
}

/// What a profile produced: the payload and the names of the fields in it (for the audit).
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub incident: Map<String, Value>,
    pub persons: Vec<Map<String, Value>>,
    pub fields: Vec<String>,
}

fn preset(kind: ProfileKind) -> Vec<(&'static str, Method)> {
    use Method::*;
    match kind {
        ProfileKind::SafeHarbor => vec![
            ("incident_id", Pseudonymize),
            ("action", Keep),
            ("category", Keep),
            ("eligible", Keep),
            ("times.received", Generalize),
            ("location.state", Keep),
            ("location.zip", Generalize),
            ("naloxone_administered", Keep),
            ("indicators.substances", Keep),
            ("indicators.naloxone", Keep),
            ("indicators.naloxone_doses", Keep),
            ("token", Pseudonymize),
            ("role", Keep),
            ("age", Generalize),
            ("age_range", Generalize),
            ("dob", Generalize),
            ("sex", Keep),
            ("race", Keep),
            ("ethnicity", Keep),
        ],
        ProfileKind::LimitedDataSet => vec![
            ("incident_id", Pseudonymize),
            ("action", Keep),
            ("category", Keep),
            ("eligible", Keep),
            ("times.received", Keep),
            ("location.city", Keep),
            ("location.county", Keep),
            ("location.state", Keep),
            ("location.zip", Keep),
            ("naloxone_administered", Keep),
            ("indicators.substances", Keep),
            ("indicators.naloxone", Keep),
            ("indicators.naloxone_doses", Keep),
            ("token", Pseudonymize),
            ("role", Keep),
            ("dob", Keep),
            ("age", Keep),
            ("age_range", Keep),
            ("sex", Keep),
            ("race", Keep),
            ("ethnicity", Keep),
            ("address.city", Keep),
            ("address.state", Keep),
            ("address.zip", Keep),
        ],
        // Everything may go, but only what the person's consent covers does (see `apply`). No
        // vault token: the provider gets the identity the consent covers, and a token shared
        // with de-identified recipients would link the two.
        ProfileKind::ConsentedReferral => fields::FIELDS
            .iter()
            .filter(|d| d.kind != Kind::Token)
            .map(|d| (d.name, Keep))
            .collect(),
        // Counts, never a field.
        ProfileKind::Aggregate => Vec::new(),
    }
}

/// A method a profile's rule forbids, or a field that does not exist: `check` reports it with
/// the destination and the line of the entry that named the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl Profile {
    /// The preset for `kind` with `overrides` (field → method; `redact` removes a field). Refuses
    /// what the profile's rule forbids, e.g. `keep` of a name under Safe Harbor.
    pub fn build(
        kind: ProfileKind,
        overrides: &BTreeMap<String, Method>,
        restricted_zip3: Option<&[String]>,
    ) -> Result<Profile, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut list: Vec<(&'static FieldDef, Method)> = Vec::new();
        let mut set =
            |name: &str, m: Method, errors: &mut Vec<ProfileError>| match fields::def(name) {
                Some(d) => match list.iter_mut().find(|(x, _)| x.name == name) {
                    Some(slot) => slot.1 = m,
                    None => list.push((d, m)),
                },
                None => errors.push(ProfileError {
                    field: name.to_owned(),
                    message: "no such field (docs/privacy.md lists the fields)".into(),
                }),
            };
        for (name, m) in preset(kind) {
            set(name, m, &mut errors);
        }
        for (name, m) in overrides {
            set(name, *m, &mut errors);
        }
        list.retain(|(_, m)| *m != Method::Redact);
        if kind == ProfileKind::Aggregate {
            for (d, _) in &list {
                errors.push(ProfileError {
                    field: d.name.to_owned(),
                    message: "an aggregate destination receives counts, never a field: remove the `fields` entry".into(),
                });
            }
        }
        for (d, m) in &list {
            if let Err(e) = allowed(kind, d, *m) {
                errors.push(ProfileError {
                    field: d.name.to_owned(),
                    message: e,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Profile {
            kind,
            fields: list,
            restricted_zip3: restricted_zip3
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| RESTRICTED_ZIP3.iter().map(|s| s.to_string()).collect()),
        })
    }

    /// Builds the payload parts. `persons` are the persons to include with their pseudonyms;
    /// `elements` (consented referrals) keeps only the fields of those consent elements; `today`
    /// is the disclosure date, at which ages are judged.
    pub fn apply(
        &self,
        inc: &Incident,
        incident_pseudo: &Pseudonym,
        persons: &[(&Person, &Pseudonym)],
        elements: Option<&BTreeSet<Element>>,
        today: NaiveDate,
    ) -> Produced {
        // Free text under a consent keeps only the engaged person's covered values (see
        // `narrative`); without a consent, every value goes.
        let free = FreeText {
            consenting: elements.and_then(|_| {
                let (p, _) = persons.first()?;
                inc.persons.iter().position(|q| std::ptr::eq(q, *p))
            }),
            covered: &|d: &FieldDef| elements.is_some_and(|c| c.contains(&d.element)),
        };
        let when = Ages {
            call: inc.times.received.map(|t| t.date_naive()),
            disclosure: today,
        };
        let mut out = Produced {
            incident: Map::new(),
            persons: Vec::new(),
            fields: Vec::new(),
        };
        let in_scope = |d: &FieldDef| elements.is_none_or(|c| c.contains(&d.element));
        for (d, m) in self.fields.iter().filter(|(d, _)| !d.person && in_scope(d)) {
            if let Some(v) = self.value(
                inc,
                None,
                d,
                *m,
                incident_pseudo,
                &free,
                &when,
                elements.is_some(),
            ) {
                set_path(&mut out.incident, d.name, v);
                out.fields.push(format!("incident.{}", d.name));
            }
        }
        for (p, pseudo) in persons {
            let mut obj = Map::new();
            for (d, m) in self.fields.iter().filter(|(d, _)| d.person && in_scope(d)) {
                if let Some(v) = self.value(
                    inc,
                    Some(p),
                    d,
                    *m,
                    pseudo,
                    &free,
                    &when,
                    elements.is_some(),
                ) {
                    set_path(&mut obj, d.name, v);
                    let name = format!("person.{}", d.name);
                    if !out.fields.contains(&name) {
                        out.fields.push(name);
                    }
                }
            }
            out.persons.push(obj);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn value(
        &self,
        inc: &Incident,
        person: Option<&Person>,
        d: &FieldDef,
        m: Method,
        pseudo: &Pseudonym,
        free: &FreeText,
        when: &Ages,
        consented: bool,
    ) -> Option<Value> {
        if m == Method::Pseudonymize {
            return Some(json!(pseudo.token));
        }
        if m == Method::Generalize
            && let Some(p) = person
            && d.nature == Nature::Age
        {
            return generalized_age(p, d.name, when);
        }
        let raw = fields::read(inc, person, d.name)?;
        // A de-identified recipient gets an agency's code only when it looks like one: a name
        // typed into the call-type column is not a code.
        if !consented
            && d.nature == Nature::AgencyCode
            && matches!(&raw, Raw::Text(t) if !crate::model::shape::is_sendable_code(d.name, t))
        {
            return None;
        }
        match m {
            // Free text under a consent keeps only what the consent covers.
            Method::Keep
                if consented && d.kind == Kind::Text && d.element == Element::Narrative =>
            {
                match raw {
                    Raw::Text(t) => Some(json!(narrative::scrub_narrative(
                        &t,
                        inc,
                        free.consenting,
                        free.covered,
                        Mode::Patterns,
                    ))),
                    _ => None,
                }
            }
            Method::Keep => Some(raw.to_json()),
            Method::Redact | Method::Pseudonymize => None, // pseudonymize: returned above
            Method::Generalize => match (d.kind, &raw) {
                (Kind::Zip, Raw::Text(z)) => zip3(z, &self.restricted_zip3).map(|z| json!(z)),
                // Safe Harbor: a birth year indicative of an age over 89 at disclosure goes too.
                (Kind::Date, Raw::Date(dob)) if d.name == "dob" => {
                    let p = person?;
                    (!over_89(p, when) && when.disclosure.year() - dob.year() < 90)
                        .then(|| json!(dob.year()))
                }
                (Kind::Date | Kind::DateTime, r) => r.year().map(|y| json!(y)),
                _ => None,
            },
            Method::DateShift => {
                let shift = Duration::days(pseudo.shift_days);
                match raw {
                    Raw::Date(d) => Some(json!(d + shift)),
                    Raw::DateTime(t) => Some(json!(t + shift)),
                    _ => None,
                }
            }
            Method::Scrub => match raw {
                // `scrub` removes every value, the consented ones too, and every word not known
                // to be safe.
                Raw::Text(t) => Some(json!(narrative::scrub_narrative(
                    &t,
                    inc,
                    None,
                    &|_| false,
                    Mode::SafeWords,
                ))),
                _ => None,
            },
        }
    }
}

/// Whose consent free text is disclosed under (an index into the incident's persons) and which
/// of their fields it covers.
struct FreeText<'a> {
    consenting: Option<usize>,
    covered: &'a dyn Fn(&FieldDef) -> bool,
}

/// Whether `m` may be used on `d` under `kind`; the refusal says why and what to do instead.
fn allowed(kind: ProfileKind, d: &FieldDef, m: Method) -> Result<(), String> {
    let fits = match m {
        Method::Keep | Method::Redact => d.kind != Kind::Token,
        Method::Generalize => {
            matches!(d.kind, Kind::Date | Kind::DateTime | Kind::Zip | Kind::Age)
                || d.name == "age_range"
        }
        // The incident number may be replaced by the incident's token.
        Method::Pseudonymize => d.kind == Kind::Token || d.name == "incident_id",
        Method::DateShift => matches!(d.kind, Kind::Date | Kind::DateTime),
        Method::Scrub => d.kind == Kind::Text && d.nature == Nature::FreeText,
    };
    if !fits {
        return Err(format!(
            "`{}` does not apply to this field ({}, {})",
            method_name(m),
            d.nature.as_str(),
            kind_name(d.kind)
        ));
    }
    let deidentified = matches!(kind, ProfileKind::SafeHarbor | ProfileKind::LimitedDataSet);
    if deidentified && d.nature == Nature::FreeText && m != Method::Redact {
        return Err(format!(
            "free text never reaches a {} recipient, scrubbed or not: it can hold any identifier; send the code a code table makes of it (e.g. `category`, `call_type.code`)",
            kind.as_str()
        ));
    }
    let passes = match (kind, d.nature, m) {
        (_, _, Method::Redact | Method::Pseudonymize) => true,
        (ProfileKind::ConsentedReferral, _, _) => true,
        (_, Nature::Code | Nature::AgencyCode, Method::Keep) => true,
        (ProfileKind::SafeHarbor, Nature::Date | Nature::Age, Method::Generalize) => true,
        (ProfileKind::SafeHarbor, Nature::Geography, Method::Generalize) => d.kind == Kind::Zip,
        (ProfileKind::LimitedDataSet, Nature::Date | Nature::Age | Nature::Geography, _) => true,
        _ => false,
    };
    if passes {
        return Ok(());
    }
    Err(match kind {
        ProfileKind::SafeHarbor => format!(
            "Safe Harbor removes this identifier ({}): `{}` is not allowed; generalize it where it is a date, an age or a ZIP, else drop it",
            d.nature.as_str(),
            method_name(m)
        ),
        _ => format!(
            "a limited data set excludes direct identifiers: `{}` is not allowed",
            method_name(m)
        ),
    })
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Keep => "keep",
        Method::Redact => "redact",
        Method::Generalize => "generalize",
        Method::Pseudonymize => "pseudonymize",
        Method::DateShift => "date-shift",
        Method::Scrub => "scrub",
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Text => "text",
        Kind::DateTime => "date and time",
        Kind::Date => "date",
        Kind::Zip => "ZIP code",
        Kind::Age => "age",
        Kind::Number => "number",
        Kind::Bool => "yes/no",
        Kind::List => "list",
        Kind::Token => "token",
    }
}

/// The first three digits of a US ZIP, `000` for a restricted prefix; `None` if not a ZIP.
fn zip3(z: &str, restricted: &[String]) -> Option<String> {
    let digits: String = z.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 5 {
        return None;
    }
    let p = &digits[..3];
    Some(if restricted.iter().any(|r| r == p) {
        "000".into()
    } else {
        p.into()
    })
}

fn set_path(obj: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), v);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                set_path(m, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_harbor_refuses_identifiers() {
        let mut o = BTreeMap::new();
        o.insert("name.last".to_string(), Method::Keep);
        let e = Profile::build(ProfileKind::SafeHarbor, &o, None).unwrap_err();
        assert_eq!(e[0].field, "name.last", "{e:?}");
        let mut o = BTreeMap::new();
        o.insert("narrative".to_string(), Method::Scrub);
        assert!(Profile::build(ProfileKind::SafeHarbor, &o, None).is_err());
        assert!(Profile::build(ProfileKind::LimitedDataSet, &o, None).is_err());
        assert!(Profile::build(ProfileKind::ConsentedReferral, &o, None).is_ok());
        let mut o = BTreeMap::new();
        o.insert("category".to_string(), Method::Generalize);
        assert!(Profile::build(ProfileKind::ConsentedReferral, &o, None).is_err());
    }

    #[test]
    fn zip3_and_restricted_prefixes() {
        let r: Vec<String> = RESTRICTED_ZIP3.iter().map(|s| s.to_string()).collect();
        assert_eq!(zip3("25301-1234", &r).as_deref(), Some("253"));
        assert_eq!(zip3("05901", &r).as_deref(), Some("059").map(|_| "000"));
        assert_eq!(zip3("253", &r), None);
    }
}
