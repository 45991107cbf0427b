//! The disclosable fields: each canonical field with its consent element, its nature (code, free
//! text, direct identifier, date, geography, age), and how to read it from an incident. Profiles
//! and consents speak in these names; the profiles' rules are stated over the natures.

use crate::model::{Element, IdentifierKind, Incident, Person};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde_json::{Value, json};

/// What a field's values are, decided once for every canonical field: the profiles' rules are
/// stated in these terms, so a field cannot slip through by looking harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nature {
    /// A value of a closed set the gateway defines (category, action, role, a flag).
    Code,
    /// A code as the agency's system wrote it (call type, disposition, priority, sex, race,
    /// state): a closed set in principle, but the column may hold anything, so a de-identified
    /// payload carries it only when the value has the shape of a code.
    AgencyCode,
    /// Text anyone typed (a narrative, a call type's description, an age written as words): it
    /// can hold a name or a number whatever the mapping intends. De-identified profiles never
    /// take it; only a code a code table made of it.
    FreeText,
    /// One of the direct identifiers (names, numbers, contacts, street, coordinates, plates):
    /// removed from both Safe Harbor data and limited data sets.
    DirectIdentifier,
    /// A date or time of the person or incident: Safe Harbor keeps the year only.
    Date,
    /// A place smaller than a state (city, county, ZIP, beat): Safe Harbor keeps ZIP3 only.
    Geography,
    /// An age or age range: Safe Harbor keeps it under 90, else `90+`.
    Age,
    /// The pseudonymous token of the incident or person.
    Token,
}

impl Nature {
    pub fn as_str(self) -> &'static str {
        match self {
            Nature::Code => "code",
            Nature::AgencyCode => "agency code",
            Nature::FreeText => "free text",
            Nature::DirectIdentifier => "direct identifier",
            Nature::Date => "date",
            Nature::Geography => "geography",
            Nature::Age => "age",
            Nature::Token => "token",
        }
    }

    /// One of the 18 Safe Harbor identifiers (or free text, which may hold any of them).
    pub fn identifies(self) -> bool {
        !matches!(self, Nature::Code | Nature::AgencyCode | Nature::Token)
    }
}

/// The shape of a field's value, which decides the methods that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    DateTime,
    Date,
    Zip,
    Age,
    Number,
    Bool,
    /// A list of texts (phones, emails, identifiers of one kind).
    List,
    /// The pseudonymous token of the incident or person.
    Token,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    /// A field of a person (else of the incident).
    pub person: bool,
    /// The consent element it belongs to: a consented referral carries it only when the
    /// consent covers that element.
    pub element: Element,
    pub nature: Nature,
    pub kind: Kind,
}

const fn f(
    name: &'static str,
    person: bool,
    element: Element,
    nature: Nature,
    kind: Kind,
) -> FieldDef {
    FieldDef {
        name,
        person,
        element,
        nature,
        kind,
    }
}

use Element as E;
use Kind as K;
use Nature as N;

/// Every canonical field that can be disclosed: the one place that says what each is.
#[rustfmt::skip]
pub const FIELDS: &[FieldDef] = &[
    f("incident_id",           false, E::PoliceRecord,     N::DirectIdentifier, K::Text),
    f("action",                false, E::Category,         N::Code,             K::Text),
    f("category",              false, E::Category,         N::Code,             K::Text),
    f("eligible",              false, E::Category,         N::Code,             K::Bool),
    f("call_type.code",        false, E::PoliceRecord,     N::AgencyCode,       K::Text),
    f("call_type.text",        false, E::PoliceRecord,     N::FreeText,         K::Text),
    f("priority",              false, E::PoliceRecord,     N::AgencyCode,       K::Text),
    f("times.received",        false, E::IncidentDetails,  N::Date,             K::DateTime),
    f("times.answered",        false, E::PoliceRecord,     N::Date,             K::DateTime),
    f("times.dispatched",      false, E::PoliceRecord,     N::Date,             K::DateTime),
    f("times.arrived",         false, E::PoliceRecord,     N::Date,             K::DateTime),
    f("times.cleared",         false, E::PoliceRecord,     N::Date,             K::DateTime),
    f("times.ambiguous",       false, E::IncidentDetails,  N::Code,             K::Bool),
    f("location.street",       false, E::IncidentLocation, N::DirectIdentifier, K::Text),
    f("location.city",         false, E::IncidentLocation, N::Geography,        K::Text),
    f("location.county",       false, E::IncidentLocation, N::Geography,        K::Text),
    f("location.state",        false, E::IncidentLocation, N::AgencyCode,       K::Text),
    f("location.zip",          false, E::IncidentLocation, N::Geography,        K::Zip),
    f("location.lat",          false, E::IncidentLocation, N::DirectIdentifier, K::Number),
    f("location.lon",          false, E::IncidentLocation, N::DirectIdentifier, K::Number),
    f("location.beat",         false, E::PoliceRecord,     N::Geography,        K::Text),
    f("disposition.code",      false, E::PoliceRecord,     N::AgencyCode,       K::Text),
    f("disposition.text",      false, E::PoliceRecord,     N::FreeText,         K::Text),
    f("narrative",             false, E::Narrative,        N::FreeText,         K::Text),
    f("naloxone_administered", false, E::IncidentDetails,  N::Code,             K::Bool),
    // Codes read from the narrative (`super::indicators`); the narrative itself stays free text.
    f("indicators.substances", false, E::Category,         N::Code,             K::List),
    f("indicators.naloxone",   false, E::IncidentDetails,  N::Code,             K::Bool),
    f("indicators.naloxone_doses", false, E::IncidentDetails, N::Code,          K::Number),
    f("token",                 true,  E::Name,             N::Token,            K::Token),
    f("role",                  true,  E::Category,         N::Code,             K::Text),
    f("name.last",             true,  E::Name,             N::DirectIdentifier, K::Text),
    f("name.first",            true,  E::Name,             N::DirectIdentifier, K::Text),
    f("name.middle",           true,  E::Name,             N::DirectIdentifier, K::Text),
    f("name.suffix",           true,  E::Name,             N::DirectIdentifier, K::Text),
    f("dob",                   true,  E::DateOfBirth,      N::Date,             K::Date),
    f("age",                   true,  E::DateOfBirth,      N::Age,              K::Age),
    f("age_range",             true,  E::DateOfBirth,      N::Age,              K::Text),
    f("age_text",              true,  E::DateOfBirth,      N::FreeText,         K::Text),
    f("sex",                   true,  E::Sex,              N::AgencyCode,       K::Text),
    f("race",                  true,  E::RaceEthnicity,    N::AgencyCode,       K::Text),
    f("ethnicity",             true,  E::RaceEthnicity,    N::AgencyCode,       K::Text),
    f("phones",                true,  E::Phone,            N::DirectIdentifier, K::List),
    f("emails",                true,  E::Email,            N::DirectIdentifier, K::List),
    f("address.street",        true,  E::HomeAddress,      N::DirectIdentifier, K::Text),
    f("address.city",          true,  E::HomeAddress,      N::Geography,        K::Text),
    f("address.state",         true,  E::HomeAddress,      N::AgencyCode,       K::Text),
    f("address.zip",           true,  E::HomeAddress,      N::Geography,        K::Zip),
    f("id.ssn",                true,  E::Ssn,              N::DirectIdentifier, K::List),
    f("id.drivers_license",    true,  E::OtherIdentifiers, N::DirectIdentifier, K::List),
    f("id.mrn",                true,  E::OtherIdentifiers, N::DirectIdentifier, K::List),
    f("id.other",              true,  E::OtherIdentifiers, N::DirectIdentifier, K::List),
    f("id.plate",              true,  E::PoliceRecord,     N::DirectIdentifier, K::List),
];

pub fn def(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|d| d.name == name)
}

/// A raw field value, before a method is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Text(String),
    DateTime(DateTime<FixedOffset>),
    Date(NaiveDate),
    Number(f64),
    Age(u16),
    /// A count (naloxone doses).
    Count(u32),
    Bool(bool),
    List(Vec<String>),
}

impl Raw {
    pub fn to_json(&self) -> Value {
        match self {
            Raw::Text(s) => json!(s),
            Raw::DateTime(d) => json!(d),
            Raw::Date(d) => json!(d),
            Raw::Number(n) => json!(n),
            Raw::Age(a) => json!(a),
            Raw::Count(n) => json!(n),
            Raw::Bool(b) => json!(b),
            Raw::List(l) => json!(l),
        }
    }

    /// The year of a date or time.
    pub fn year(&self) -> Option<i32> {
        match self {
            Raw::DateTime(d) => Some(d.year()),
            Raw::Date(d) => Some(d.year()),
            _ => None,
        }
    }
}

/// Reads an incident field (`person` is `None`) or a field of `person`. Token fields are not
/// read here: the vault gives them.
pub fn read(inc: &Incident, person: Option<&Person>, name: &str) -> Option<Raw> {
    let t = |s: &Option<String>| s.clone().map(Raw::Text);
    let st = |s: &Option<crate::model::Sensitive<String>>| {
        s.as_ref().map(|v| Raw::Text(v.expose().clone()))
    };
    let list = |l: Vec<String>| {
        if l.is_empty() {
            None
        } else {
            Some(Raw::List(l))
        }
    };
    if let Some(p) = person {
        let ids = |k: IdentifierKind| {
            list(
                p.identifiers
                    .iter()
                    .filter(|i| i.kind == k)
                    .map(|i| i.value.expose().clone())
                    .collect(),
            )
        };
        return match name {
            "role" => Some(Raw::Text(p.role.as_str().into())),
            "name.last" => st(&p.name.last),
            "name.first" => st(&p.name.first),
            "name.middle" => st(&p.name.middle),
            "name.suffix" => st(&p.name.suffix),
            "dob" => p.dob.as_ref().map(|d| Raw::Date(*d.expose())),
            "age" => p.age.as_ref().map(|a| Raw::Age(*a.expose())),
            "age_range" => match (&p.age_min, &p.age_max) {
                (None, None) => None,
                (a, b) => Some(Raw::Text(format!(
                    "{}-{}",
                    a.as_ref()
                        .map(|x| x.expose().to_string())
                        .unwrap_or_default(),
                    b.as_ref()
                        .map(|x| x.expose().to_string())
                        .unwrap_or_default()
                ))),
            },
            "age_text" => t(&p.age_text),
            "sex" => t(&p.sex),
            "race" => t(&p.race),
            "ethnicity" => t(&p.ethnicity),
            "phones" => list(p.phones.iter().map(|v| v.expose().clone()).collect()),
            "emails" => list(p.emails.iter().map(|v| v.expose().clone()).collect()),
            "address.street" => st(&p.address.street),
            "address.city" => st(&p.address.city),
            "address.state" => t(&p.address.state),
            "address.zip" => st(&p.address.zip),
            "id.ssn" => ids(IdentifierKind::Ssn),
            "id.drivers_license" => ids(IdentifierKind::DriversLicense),
            "id.mrn" => ids(IdentifierKind::Mrn),
            "id.other" => ids(IdentifierKind::Other),
            "id.plate" => ids(IdentifierKind::Plate),
            _ => None,
        };
    }
    let time = |d: &Option<DateTime<FixedOffset>>| d.map(Raw::DateTime);
    match name {
        "incident_id" => Some(Raw::Text(inc.incident_id.clone())),
        "action" => Some(Raw::Text(inc.action.as_str().into())),
        "category" => Some(Raw::Text(inc.category.as_str().into())),
        "eligible" => Some(Raw::Bool(inc.eligibility.eligible)),
        "call_type.code" => inc.call_type.as_ref().map(|c| Raw::Text(c.code.clone())),
        "call_type.text" => inc.call_type.as_ref().and_then(|c| t(&c.text)),
        "priority" => t(&inc.priority),
        "times.received" => time(&inc.times.received),
        "times.answered" => time(&inc.times.answered),
        "times.dispatched" => time(&inc.times.dispatched),
        "times.arrived" => time(&inc.times.arrived),
        "times.cleared" => time(&inc.times.cleared),
        // Present only when a time was in the repeated hour: a recipient learns to doubt it.
        "times.ambiguous" => inc.times.ambiguous.then_some(Raw::Bool(true)),
        "location.street" => st(&inc.location.street),
        "location.city" => t(&inc.location.city),
        "location.county" => t(&inc.location.county),
        "location.state" => t(&inc.location.state),
        "location.zip" => st(&inc.location.zip),
        "location.lat" => inc.location.lat.as_ref().map(|v| Raw::Number(*v.expose())),
        "location.lon" => inc.location.lon.as_ref().map(|v| Raw::Number(*v.expose())),
        "location.beat" => t(&inc.location.beat),
        "disposition.code" => inc.disposition.as_ref().map(|c| Raw::Text(c.code.clone())),
        "disposition.text" => inc.disposition.as_ref().and_then(|c| t(&c.text)),
        "narrative" => st(&inc.narrative),
        "naloxone_administered" => inc.naloxone_administered.map(Raw::Bool),
        "indicators.substances" => {
            let i = indicators(inc.narrative.as_ref()?.expose());
            let codes: Vec<String> = i.substances.iter().map(|s| s.as_str().into()).collect();
            (!codes.is_empty()).then_some(Raw::List(codes))
        }
        "indicators.naloxone" => indicators(inc.narrative.as_ref()?.expose())
            .naloxone
            .map(Raw::Bool),
        "indicators.naloxone_doses" => indicators(inc.narrative.as_ref()?.expose())
            .naloxone_doses
            .map(Raw::Count),
        "substance_use" => inc.flags.substance_use.map(Raw::Bool),
        "offenses" => (!inc.offenses.is_empty()).then(|| Raw::List(inc.offenses.clone())),
        "drugs" => (!inc.drugs.is_empty()).then(|| Raw::List(inc.drugs.clone())),
        _ => None,
    }
}

/// Every identifying value of an incident (all persons), as text: what a Safe Harbor payload
/// must never contain. Used by the scrubber (to remove the incident's own names and numbers
/// from free text) and by tests.
pub fn identifying_values(inc: &Incident) -> Vec<String> {
    let mut out = incident_values(inc);
    for p in &inc.persons {
        out.extend(person_values(inc, p));
    }
    out
}

fn push(out: &mut Vec<String>, r: Option<Raw>) {
    match r {
        Some(Raw::Text(s)) if !s.trim().is_empty() => out.push(s),
        Some(Raw::List(l)) => out.extend(l.into_iter().filter(|s| !s.trim().is_empty())),
        Some(Raw::Date(d)) => out.push(d.to_string()),
        _ => {}
    }
}

/// The identifying values of the incident itself (number, street, ZIP). Not the narrative: it is
/// text to scrub, not a value to look for.
pub fn incident_values(inc: &Incident) -> Vec<String> {
    let mut out = Vec::new();
    for d in FIELDS
        .iter()
        .filter(|d| !d.person && d.nature == Nature::DirectIdentifier && d.kind != Kind::Number)
    {
        push(&mut out, read(inc, None, d.name));
    }
    push(&mut out, read(inc, None, "location.zip"));
    out
}

/// The identifying values of one person (names, contacts, identifiers, DOB, ZIP).
pub fn person_values(inc: &Incident, p: &Person) -> Vec<String> {
    let mut out = Vec::new();
    for d in FIELDS
        .iter()
        .filter(|d| d.person && d.nature == Nature::DirectIdentifier)
    {
        push(&mut out, read(inc, Some(p), d.name));
    }
    push(&mut out, read(inc, Some(p), "dob"));
    push(&mut out, read(inc, Some(p), "address.zip"));
    out
}

/// The indicators of a narrative, computed once for the several `indicators.*` fields and the
/// several destinations that read them from one incident (4% of `run --once`'s CPU time when
/// each read analysed the narrative again). The memo holds the last narrative's length and a
/// keyed hash (SipHash under this process's random keys), never its text.
fn indicators(text: &str) -> super::indicators::Indicators {
    use std::hash::BuildHasher;
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState = Default::default();
        static LAST: std::cell::RefCell<Option<((usize, u64), super::indicators::Indicators)>> =
            const { std::cell::RefCell::new(None) };
    }
    let key = (text.len(), KEYS.with(|k| k.hash_one(text)));
    if let Some(i) = LAST.with_borrow(|l| {
        l.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, i)| i.clone())
    }) {
        return i;
    }
    let i = super::indicators::from_narrative(text);
    LAST.with_borrow_mut(|l| *l = Some((key, i.clone())));
    i
}
