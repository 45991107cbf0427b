//! The canonical fields a mapping may write, by name, and how a text value is stored in each.
//!
//! This registry is the single list of mapping targets: `check` rejects any other name, and
//! `docs/mapping.md` lists these (a test keeps the two in step).

use super::datetime::TimeParser;
use super::reuse::Scratch;
// The fast `trim`: values reach their target trimmed, and `str::trim` walked them again.
use super::transform::trim;
use crate::model::{Category, Coded, Identifier, IdentifierKind, Incident, Person, Sensitive};
use std::borrow::Cow;

/// A canonical field of the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentField {
    IncidentId,
    Action,
    RecordId,
    AgencyOri,
    System,
    CallTypeCode,
    CallTypeText,
    Category,
    Priority,
    Received,
    Answered,
    Dispatched,
    Arrived,
    Cleared,
    TimesAmbiguous,
    Street,
    City,
    County,
    State,
    Zip,
    Lat,
    Lon,
    Beat,
    DispositionCode,
    DispositionText,
    Narrative,
    NaloxoneAdministered,
    Weapon,
    Violence,
    SubstanceUse,
    Offense,
    Drug,
}

/// A canonical field of a person (inside a `[[person]]` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonField {
    /// A whole name, split: "LAST, FIRST MIDDLE" or "FIRST MIDDLE LAST".
    Name,
    Last,
    First,
    Middle,
    Suffix,
    Dob,
    Age,
    AgeMin,
    AgeMax,
    AgeText,
    Sex,
    Race,
    Ethnicity,
    Phone,
    Email,
    Street,
    City,
    State,
    Zip,
    Id(IdentifierKind),
}

pub const INCIDENT_FIELDS: &[(&str, IncidentField)] = &[
    ("incident_id", IncidentField::IncidentId),
    ("action", IncidentField::Action),
    ("source.record_id", IncidentField::RecordId),
    ("source.agency_ori", IncidentField::AgencyOri),
    ("source.system", IncidentField::System),
    ("call_type.code", IncidentField::CallTypeCode),
    ("call_type.text", IncidentField::CallTypeText),
    ("category", IncidentField::Category),
    ("priority", IncidentField::Priority),
    ("times.received", IncidentField::Received),
    ("times.answered", IncidentField::Answered),
    ("times.dispatched", IncidentField::Dispatched),
    ("times.arrived", IncidentField::Arrived),
    ("times.cleared", IncidentField::Cleared),
    ("times.ambiguous", IncidentField::TimesAmbiguous),
    ("location.street", IncidentField::Street),
    ("location.city", IncidentField::City),
    ("location.county", IncidentField::County),
    ("location.state", IncidentField::State),
    ("location.zip", IncidentField::Zip),
    ("location.lat", IncidentField::Lat),
    ("location.lon", IncidentField::Lon),
    ("location.beat", IncidentField::Beat),
    ("disposition.code", IncidentField::DispositionCode),
    ("disposition.text", IncidentField::DispositionText),
    ("narrative", IncidentField::Narrative),
    ("naloxone_administered", IncidentField::NaloxoneAdministered),
    ("flags.weapon", IncidentField::Weapon),
    ("flags.violence", IncidentField::Violence),
    ("flags.substance_use", IncidentField::SubstanceUse),
    ("offense", IncidentField::Offense),
    ("drug", IncidentField::Drug),
];

pub const PERSON_FIELDS: &[(&str, PersonField)] = &[
    ("name", PersonField::Name),
    ("name.last", PersonField::Last),
    ("name.first", PersonField::First),
    ("name.middle", PersonField::Middle),
    ("name.suffix", PersonField::Suffix),
    ("dob", PersonField::Dob),
    ("age", PersonField::Age),
    ("age.min", PersonField::AgeMin),
    ("age.max", PersonField::AgeMax),
    ("age.text", PersonField::AgeText),
    ("sex", PersonField::Sex),
    ("race", PersonField::Race),
    ("ethnicity", PersonField::Ethnicity),
    ("phone", PersonField::Phone),
    ("email", PersonField::Email),
    ("address.street", PersonField::Street),
    ("address.city", PersonField::City),
    ("address.state", PersonField::State),
    ("address.zip", PersonField::Zip),
    ("id.ssn", PersonField::Id(IdentifierKind::Ssn)),
    (
        "id.drivers_license",
        PersonField::Id(IdentifierKind::DriversLicense),
    ),
    ("id.mrn", PersonField::Id(IdentifierKind::Mrn)),
    ("id.plate", PersonField::Id(IdentifierKind::Plate)),
    ("id.other", PersonField::Id(IdentifierKind::Other)),
];

/// What kind of text a target accepts; decides which options (`formats`) apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    DateTime,
    Date,
    Number,
    Bool,
    Category,
    Action,
}

impl IncidentField {
    pub fn parse(name: &str) -> Option<Self> {
        INCIDENT_FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    pub fn kind(self) -> ValueKind {
        use IncidentField::*;
        match self {
            Received | Answered | Dispatched | Arrived | Cleared => ValueKind::DateTime,
            Lat | Lon => ValueKind::Number,
            NaloxoneAdministered | Weapon | Violence | SubstanceUse | TimesAmbiguous => {
                ValueKind::Bool
            }
            Category => ValueKind::Category,
            Action => ValueKind::Action,
            _ => ValueKind::Text,
        }
    }

    /// Stores `v` (non-empty, after transforms). Errors name the expected form, never the
    /// value: any column can hold what a dispatcher typed (docs/privacy.md, "No value in any
    /// message").
    /// Owned values are taken from `scratch` (see [`super::reuse`]).
    pub fn set(
        self,
        inc: &mut Incident,
        v: Cow<str>,
        time: &TimeParser,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        use IncidentField::*;
        match self {
            IncidentId => inc.incident_id = scratch.text(v),
            Action => {
                inc.action = crate::model::Action::ALL
                    .into_iter()
                    .find(|a| a.as_str().eq_ignore_ascii_case(trim(&v)))
                    .ok_or_else(|| {
                        "not an action (new, update, delete); map the source's codes with a table"
                            .to_string()
                    })?
            }
            RecordId => inc.source.record_id = scratch.text(v),
            AgencyOri => inc.source.agency_ori = Some(scratch.text(v)),
            System => inc.source.system = Some(scratch.text(v)),
            CallTypeCode => coded(&mut inc.call_type).code = scratch.text(v),
            CallTypeText => coded(&mut inc.call_type).text = Some(scratch.text(v)),
            Category => {
                inc.category = crate::model::Category::parse(trim(&v)).ok_or_else(|| {
                    format!(
                        "not a program category ({}); map the source's codes with a table",
                        category_names()
                    )
                })?
            }
            Priority => inc.priority = Some(scratch.text(v)),
            Received => inc.times.received = Some(placed(inc, time, &v)?),
            Answered => inc.times.answered = Some(placed(inc, time, &v)?),
            Dispatched => inc.times.dispatched = Some(placed(inc, time, &v)?),
            Arrived => inc.times.arrived = Some(placed(inc, time, &v)?),
            Cleared => inc.times.cleared = Some(placed(inc, time, &v)?),
            // A source that knows its time was in the repeated hour may say so; a `false`
            // never clears what a time of this record set.
            TimesAmbiguous => inc.times.ambiguous |= boolean(&v)?,
            Street => inc.location.street = Some(Sensitive::new(scratch.text(v))),
            City => inc.location.city = Some(scratch.text(v)),
            County => inc.location.county = Some(scratch.text(v)),
            State => inc.location.state = Some(scratch.text(v)),
            Zip => inc.location.zip = Some(Sensitive::new(scratch.text(v))),
            Lat => inc.location.lat = Some(Sensitive::new(number(&v, -90.0, 90.0)?)),
            Lon => inc.location.lon = Some(Sensitive::new(number(&v, -180.0, 180.0)?)),
            Beat => inc.location.beat = Some(scratch.text(v)),
            DispositionCode => coded(&mut inc.disposition).code = scratch.text(v),
            DispositionText => coded(&mut inc.disposition).text = Some(scratch.text(v)),
            Narrative => inc.narrative = Some(Sensitive::new(scratch.text(v))),
            NaloxoneAdministered => inc.naloxone_administered = Some(boolean(&v)?),
            Weapon => inc.flags.weapon = Some(boolean(&v)?),
            Violence => inc.flags.violence = Some(boolean(&v)?),
            SubstanceUse => inc.flags.substance_use = Some(boolean(&v)?),
            Offense => inc.offenses.push(scratch.text(v)),
            Drug => inc.drugs.push(scratch.text(v)),
        }
        Ok(())
    }
}

impl PersonField {
    pub fn parse(name: &str) -> Option<Self> {
        PERSON_FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    pub fn kind(self) -> ValueKind {
        match self {
            PersonField::Dob => ValueKind::Date,
            PersonField::Age | PersonField::AgeMin | PersonField::AgeMax => ValueKind::Number,
            _ => ValueKind::Text,
        }
    }

    /// Owned values are taken from `scratch` (see [`super::reuse`]).
    pub fn set(
        self,
        p: &mut Person,
        v: Cow<str>,
        time: &TimeParser,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        use PersonField::*;
        match self {
            Name => split_name(p, &v, scratch),
            Last => p.name.last = Some(Sensitive::new(scratch.text(v))),
            First => p.name.first = Some(Sensitive::new(scratch.text(v))),
            Middle => p.name.middle = Some(Sensitive::new(scratch.text(v))),
            Suffix => p.name.suffix = Some(Sensitive::new(scratch.text(v))),
            Dob => p.dob = Some(Sensitive::new(time.date(&v)?)),
            Age => p.age = Some(Sensitive::new(years(&v)?)),
            AgeMin => p.age_min = Some(Sensitive::new(years(&v)?)),
            AgeMax => p.age_max = Some(Sensitive::new(years(&v)?)),
            AgeText => p.age_text = Some(v.into_owned()),
            Sex => p.sex = Some(v.into_owned()),
            Race => p.race = Some(v.into_owned()),
            Ethnicity => p.ethnicity = Some(v.into_owned()),
            // The same number twice (home and work) is kept once.
            // The same number in two spellings (XTN-1 and XTN-6/7) is one phone.
            Phone if p.phones.iter().any(|x| same_number(x.expose(), &v)) => {}
            Phone => p.phones.push(Sensitive::new(v.into_owned())),
            Email if p.emails.iter().any(|x| x.expose() == &*v) => {}
            Email => p.emails.push(Sensitive::new(v.into_owned())),
            Id(kind)
                if p.identifiers
                    .iter()
                    .any(|i| i.kind == kind && i.value.expose() == &*v) => {}
            Street => p.address.street = Some(Sensitive::new(scratch.text(v))),
            City => p.address.city = Some(Sensitive::new(scratch.text(v))),
            State => p.address.state = Some(v.into_owned()),
            Zip => p.address.zip = Some(Sensitive::new(scratch.text(v))),
            Id(kind) => p.identifiers.push(Identifier {
                kind,
                value: Sensitive::new(v.into_owned()),
                issuer: None,
            }),
        }
        Ok(())
    }
}

/// A date-time of the incident; a local time that happened twice flags the incident.
fn placed(
    inc: &mut Incident,
    time: &TimeParser,
    v: &str,
) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    let p = time.datetime_placed(v)?;
    inc.times.ambiguous |= p.ambiguous;
    Ok(p.at)
}

fn years(v: &str) -> Result<u16, String> {
    trim(v)
        .parse()
        .ok()
        .filter(|a| *a <= 130)
        .ok_or_else(|| "not an age in years (0 to 130)".to_string())
}

fn coded(slot: &mut Option<Coded>) -> &mut Coded {
    slot.get_or_insert_with(Coded::default)
}

fn category_names() -> String {
    Category::ALL.map(|c| c.as_str()).join(", ")
}

fn number(v: &str, min: f64, max: f64) -> Result<f64, String> {
    trim(v)
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && (min..=max).contains(n))
        .ok_or_else(|| format!("not a number between {min} and {max}"))
}

/// Compared without case rather than lower-cased first: that was a `String` per flag per record.
fn boolean(v: &str) -> Result<bool, String> {
    let v = trim(v);
    let any = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(v));
    if any(&["true", "yes", "y", "1", "t"]) {
        Ok(true)
    } else if any(&["false", "no", "n", "0", "f"]) {
        Ok(false)
    } else {
        Err("not a yes/no value (true/false, yes/no, y/n, 1/0)".into())
    }
}

/// "LAST, FIRST MIDDLE SUFFIX" when there is a comma, else "FIRST MIDDLE LAST".
fn split_name(p: &mut Person, v: &str, scratch: &mut Scratch) {
    const SUFFIXES: &[&str] = &["JR", "SR", "II", "III", "IV", "V"];
    let mut s = |x: &str| Some(Sensitive::new(scratch.copy(x)));
    let is_suffix = |w: &str| {
        let w = w.trim_end_matches('.');
        SUFFIXES.iter().any(|x| x.eq_ignore_ascii_case(w))
    };
    // The text from the start of word `a` to the end of word `b` (both slices of `v`).
    let span = |a: &str, b: &str| {
        let start = a.as_ptr() as usize - v.as_ptr() as usize;
        let end = b.as_ptr() as usize - v.as_ptr() as usize + b.len();
        &v[start..end]
    };
    // With a comma: "LAST, FIRST MIDDLE"; `last` is Some (possibly empty) only then.
    let (last, rest, min_words) = match v.split_once(',') {
        Some((last, rest)) => (Some(trim(last)), rest, 2),
        None => (None, v, 3),
    };
    // One pass keeps the count and the words a split can use (the first two and the last
    // three): a `Vec` per name was two allocations per record, and finding each word again by
    // position walked the name six times.
    let (mut head, mut tail, mut total) = ([""; 2], [""; 3], 0);
    for w in rest.split_whitespace() {
        if total < 2 {
            head[total] = w;
        }
        tail = [tail[1], tail[2], w];
        total += 1;
    }
    // Word `i`, for `i` among the first two or the last three.
    let word = |i: usize| {
        if i < 2 { head[i] } else { tail[i + 3 - total] }
    };
    let mut n = total;
    if n >= min_words && is_suffix(word(n - 1)) {
        p.name.suffix = s(word(n - 1));
        n -= 1;
    }
    match (last, n) {
        (Some(l), _) => {
            p.name.last = s(l).filter(|_| !l.is_empty());
            if n >= 1 {
                p.name.first = s(word(0));
            }
            if n >= 2 {
                p.name.middle = s(span(word(1), word(n - 1)));
            }
        }
        (None, 0) => {}
        (None, 1) => p.name.last = s(word(0)),
        (None, _) => {
            p.name.first = s(word(0));
            p.name.last = s(word(n - 1));
            if n >= 3 {
                p.name.middle = s(span(word(1), word(n - 2)));
            }
        }
    }
}

/// Two phone values are the same number when their digits are.
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    a == b || (!digits(a).is_empty() && digits(a) == digits(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Role};

    fn name(v: &str) -> [Option<String>; 4] {
        let mut p = Person::new(Role::Subject);
        split_name(&mut p, v, &mut Scratch::default());
        let f = |x: &Option<Sensitive<String>>| x.as_ref().map(|s| s.expose().clone());
        [
            f(&p.name.last),
            f(&p.name.first),
            f(&p.name.middle),
            f(&p.name.suffix),
        ]
    }

    #[test]
    fn splits_last_comma_first_middle() {
        let o = |s: &str| Some(s.to_string());
        assert_eq!(name("DOE, JANE Q"), [o("DOE"), o("JANE"), o("Q"), None]);
        assert_eq!(
            name("Smith, John Paul Jr."),
            [o("Smith"), o("John"), o("Paul"), o("Jr.")]
        );
        assert_eq!(name("Jane Q Doe"), [o("Doe"), o("Jane"), o("Q"), None]);
        assert_eq!(name("DOE"), [o("DOE"), None, None, None]);
        assert_eq!(name(", "), [None, None, None, None]);
        assert_eq!(name(", JANE"), [None, o("JANE"), None, None]);
        assert_eq!(
            name("Mary Ann  Lee Smith"),
            [o("Smith"), o("Mary"), o("Ann  Lee"), None]
        );
    }

    #[test]
    fn every_target_name_parses() {
        for (n, f) in INCIDENT_FIELDS {
            assert_eq!(IncidentField::parse(n), Some(*f));
        }
        for (n, f) in PERSON_FIELDS {
            assert_eq!(PersonField::parse(n), Some(*f));
        }
        assert_eq!(IncidentField::parse("location.streeet"), None);
    }

    #[test]
    fn action_needs_a_canonical_word() {
        let t = TimeParser::default();
        let mut inc = Incident::new("t");
        let s = &mut Scratch::default();
        IncidentField::Action
            .set(&mut inc, "Delete".into(), &t, s)
            .unwrap();
        assert_eq!(inc.action, Action::Delete);
        assert!(
            IncidentField::Action
                .set(&mut inc, "D".into(), &t, s)
                .is_err()
        );
    }
}
