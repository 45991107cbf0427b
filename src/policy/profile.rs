//! Disclosure profiles: which fields a destination receives and how each is transformed.
//! Default deny: a field the profile does not list never leaves. Pure: the pseudonyms come from
//! the vault through the caller.

use super::fields::{self, FieldDef, Kind, Level, Raw};
use super::scrub;
use crate::model::{Incident, InfoClass, Person};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    /// HIPAA 45 CFR 164.514(b)(2): the 18 identifiers removed.
    SafeHarbor,
    /// 164.514(e): direct identifiers removed; dates, city, county, ZIP may stay (needs a DUA).
    LimitedDataSet,
    /// Identified data for one person, limited to what their consent covers.
    ConsentedReferral,
}

impl ProfileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::SafeHarbor => "safe-harbor",
            ProfileKind::LimitedDataSet => "limited-data-set",
            ProfileKind::ConsentedReferral => "consented-referral",
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
            ("token", Pseudonymize),
            ("role", Keep),
            ("age", Generalize),
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
            ("token", Pseudonymize),
            ("role", Keep),
            ("dob", Keep),
            ("age", Keep),
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
    }
}

impl Profile {
    /// The preset for `kind` with `overrides` (field → method; `redact` removes a field). Refuses
    /// what the profile's rule forbids, e.g. `keep` of a name under Safe Harbor.
    pub fn build(
        kind: ProfileKind,
        overrides: &BTreeMap<String, Method>,
        restricted_zip3: Option<&[String]>,
    ) -> Result<Profile, Vec<String>> {
        let mut errors = Vec::new();
        let mut list: Vec<(&'static FieldDef, Method)> = Vec::new();
        let mut set = |name: &str, m: Method, errors: &mut Vec<String>| match fields::def(name) {
            Some(d) => match list.iter_mut().find(|(x, _)| x.name == name) {
                Some(slot) => slot.1 = m,
                None => list.push((d, m)),
            },
            None => errors.push(format!("unknown field `{name}`")),
        };
        for (name, m) in preset(kind) {
            set(name, m, &mut errors);
        }
        for (name, m) in overrides {
            set(name, *m, &mut errors);
        }
        list.retain(|(_, m)| *m != Method::Redact);
        for (d, m) in &list {
            if let Err(e) = allowed(kind, d, *m) {
                errors.push(format!("field `{}`: {e}", d.name));
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
    /// `classes` (consented referrals) keeps only the fields of those information classes.
    pub fn apply(
        &self,
        inc: &Incident,
        incident_pseudo: &Pseudonym,
        persons: &[(&Person, &Pseudonym)],
        classes: Option<&[InfoClass]>,
    ) -> Produced {
        // Free text under a consent: the other persons' identifying values always go; when the
        // consent does not cover every identifying class, the recognisable patterns go too.
        let narrative = match classes {
            None => Narrative {
                known: fields::identifying_values(inc),
                patterns: true,
            },
            Some(c) => {
                let full = [
                    InfoClass::Identity,
                    InfoClass::Contact,
                    InfoClass::Identifiers,
                    InfoClass::Location,
                    InfoClass::PoliceRecord,
                ]
                .iter()
                .all(|x| c.contains(x));
                let mut known: Vec<String> = inc
                    .persons
                    .iter()
                    .filter(|p| !persons.iter().any(|(q, _)| std::ptr::eq(*p, *q)))
                    .flat_map(|p| fields::person_values(inc, p))
                    .collect();
                if !full {
                    known = fields::identifying_values(inc);
                }
                Narrative {
                    known,
                    patterns: !full,
                }
            }
        };
        let when = inc.times.received.map(|t| t.date_naive());
        let mut out = Produced {
            incident: Map::new(),
            persons: Vec::new(),
            fields: Vec::new(),
        };
        let in_scope = |d: &FieldDef| classes.is_none_or(|c| c.contains(&d.class));
        for (d, m) in self.fields.iter().filter(|(d, _)| !d.person && in_scope(d)) {
            if let Some(v) = self.value(
                inc,
                None,
                d,
                *m,
                incident_pseudo,
                &narrative,
                when,
                classes.is_some(),
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
                    &narrative,
                    when,
                    classes.is_some(),
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
        narrative: &Narrative,
        when: Option<NaiveDate>,
        consented: bool,
    ) -> Option<Value> {
        if m == Method::Pseudonymize {
            return Some(json!(pseudo.token));
        }
        let age = person.and_then(|p| age_of(p, when));
        if d.name == "age" && m == Method::Generalize {
            // An age, given or derived from the date of birth; over 89 becomes "90+".
            return age.map(|a| if a > 89 { json!("90+") } else { json!(a) });
        }
        let raw = fields::read(inc, person, d.name)?;
        match m {
            // Free text under a consent keeps only what the consent covers.
            Method::Keep
                if consented && d.kind == Kind::Text && d.class == InfoClass::Narrative =>
            {
                match raw {
                    Raw::Text(t) => Some(json!(scrub::scrub_with(
                        &t,
                        &narrative.known,
                        narrative.patterns
                    ))),
                    _ => None,
                }
            }
            Method::Keep => Some(raw.to_json()),
            Method::Redact | Method::Pseudonymize => None, // pseudonymize: returned above
            Method::Generalize => match (d.kind, &raw) {
                (Kind::Zip, Raw::Text(z)) => zip3(z, &self.restricted_zip3).map(|z| json!(z)),
                // Safe Harbor: the birth year of a person over 89 goes too.
                (Kind::Date, _) if d.name == "dob" && age.is_some_and(|a| a > 89) => None,
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
                Raw::Text(t) => Some(json!(scrub::scrub(&t, &narrative.known))),
                _ => None,
            },
        }
    }
}

/// What free text must lose.
struct Narrative {
    known: Vec<String>,
    patterns: bool,
}

/// Whether `m` may be used on `d` under `kind`.
fn allowed(kind: ProfileKind, d: &FieldDef, m: Method) -> Result<(), &'static str> {
    let fits = match m {
        Method::Keep | Method::Redact => d.kind != Kind::Token,
        Method::Generalize => matches!(d.kind, Kind::Date | Kind::DateTime | Kind::Zip | Kind::Age),
        // The incident number may be replaced by the incident's token.
        Method::Pseudonymize => d.kind == Kind::Token || d.name == "incident_id",
        Method::DateShift => matches!(d.kind, Kind::Date | Kind::DateTime),
        Method::Scrub => d.kind == Kind::Text,
    };
    if !fits {
        return Err("this method does not apply to this field's values");
    }
    match (kind, d.level, m) {
        (
            ProfileKind::SafeHarbor,
            Level::Direct | Level::Quasi,
            Method::Keep | Method::DateShift | Method::Scrub,
        ) => Err("Safe Harbor removes this identifier (generalize or drop it)"),
        (
            ProfileKind::LimitedDataSet,
            Level::Direct,
            Method::Keep | Method::DateShift | Method::Scrub,
        ) => Err("a limited data set excludes direct identifiers"),
        _ => Ok(()),
    }
}

/// Age in whole years: the given age, else from the date of birth at `when` (the incident).
fn age_of(p: &Person, when: Option<NaiveDate>) -> Option<u16> {
    if let Some(a) = &p.age {
        return Some(*a.expose());
    }
    let dob = *p.dob.as_ref()?.expose();
    let at = when?;
    let mut years = at.year() - dob.year();
    if (at.month(), at.day()) < (dob.month(), dob.day()) {
        years -= 1;
    }
    u16::try_from(years).ok()
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
        assert!(e[0].contains("name.last"), "{e:?}");
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
