//! The disclosable fields: each canonical field with its information class, how much it
//! identifies (HIPAA Safe Harbor and limited-data-set terms), and how to read it from an incident.
//! Profiles and consents speak in these names.

use crate::model::{IdentifierKind, Incident, InfoClass, Person};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde_json::{Value, json};

/// How much a field identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Not one of the 18 Safe Harbor identifiers.
    None,
    /// A Safe Harbor identifier that a limited data set may keep (dates, city, county, ZIP, age).
    Quasi,
    /// A direct identifier: removed from both Safe Harbor data and limited data sets.
    Direct,
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
    pub class: InfoClass,
    pub level: Level,
    pub kind: Kind,
}

const fn f(
    name: &'static str,
    person: bool,
    class: InfoClass,
    level: Level,
    kind: Kind,
) -> FieldDef {
    FieldDef {
        name,
        person,
        class,
        level,
        kind,
    }
}

use InfoClass as C;
use Kind as K;
use Level as L;

pub const FIELDS: &[FieldDef] = &[
    f("incident_id", false, C::PoliceRecord, L::Direct, K::Text),
    f("action", false, C::Referral, L::None, K::Text),
    f("category", false, C::Referral, L::None, K::Text),
    f("eligible", false, C::Referral, L::None, K::Bool),
    f("call_type.code", false, C::PoliceRecord, L::None, K::Text),
    f("call_type.text", false, C::PoliceRecord, L::None, K::Text),
    f("priority", false, C::PoliceRecord, L::None, K::Text),
    f("times.received", false, C::Referral, L::Quasi, K::DateTime),
    f(
        "times.dispatched",
        false,
        C::PoliceRecord,
        L::Quasi,
        K::DateTime,
    ),
    f(
        "times.arrived",
        false,
        C::PoliceRecord,
        L::Quasi,
        K::DateTime,
    ),
    f(
        "times.cleared",
        false,
        C::PoliceRecord,
        L::Quasi,
        K::DateTime,
    ),
    f("location.street", false, C::Location, L::Direct, K::Text),
    f("location.city", false, C::Location, L::Quasi, K::Text),
    f("location.county", false, C::Location, L::Quasi, K::Text),
    f("location.state", false, C::Location, L::None, K::Text),
    f("location.zip", false, C::Location, L::Quasi, K::Zip),
    f("location.lat", false, C::Location, L::Direct, K::Number),
    f("location.lon", false, C::Location, L::Direct, K::Number),
    f("location.beat", false, C::PoliceRecord, L::Quasi, K::Text),
    f("disposition.code", false, C::PoliceRecord, L::None, K::Text),
    f("disposition.text", false, C::PoliceRecord, L::None, K::Text),
    f("narrative", false, C::Narrative, L::Direct, K::Text),
    f(
        "naloxone_administered",
        false,
        C::Referral,
        L::None,
        K::Bool,
    ),
    f("token", true, C::Identity, L::None, K::Token),
    f("role", true, C::Identity, L::None, K::Text),
    f("name.last", true, C::Identity, L::Direct, K::Text),
    f("name.first", true, C::Identity, L::Direct, K::Text),
    f("name.middle", true, C::Identity, L::Direct, K::Text),
    f("name.suffix", true, C::Identity, L::Direct, K::Text),
    f("dob", true, C::Identity, L::Quasi, K::Date),
    f("age", true, C::Identity, L::Quasi, K::Age),
    f("age_range", true, C::Identity, L::Quasi, K::Text),
    f("age_text", true, C::Identity, L::None, K::Text),
    f("sex", true, C::Identity, L::None, K::Text),
    f("race", true, C::Identity, L::None, K::Text),
    f("ethnicity", true, C::Identity, L::None, K::Text),
    f("phones", true, C::Contact, L::Direct, K::List),
    f("emails", true, C::Contact, L::Direct, K::List),
    f("address.street", true, C::Contact, L::Direct, K::Text),
    f("address.city", true, C::Contact, L::Quasi, K::Text),
    f("address.state", true, C::Contact, L::None, K::Text),
    f("address.zip", true, C::Contact, L::Quasi, K::Zip),
    f("id.ssn", true, C::Identifiers, L::Direct, K::List),
    f(
        "id.drivers_license",
        true,
        C::Identifiers,
        L::Direct,
        K::List,
    ),
    f("id.mrn", true, C::Identifiers, L::Direct, K::List),
    f("id.other", true, C::Identifiers, L::Direct, K::List),
    f("id.plate", true, C::PoliceRecord, L::Direct, K::List),
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
        "times.dispatched" => time(&inc.times.dispatched),
        "times.arrived" => time(&inc.times.arrived),
        "times.cleared" => time(&inc.times.cleared),
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
    for d in FIELDS.iter().filter(|d| {
        !d.person && d.level == Level::Direct && d.kind != Kind::Number && d.name != "narrative"
    }) {
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
        .filter(|d| d.person && d.level == Level::Direct)
    {
        push(&mut out, read(inc, Some(p), d.name));
    }
    push(&mut out, read(inc, Some(p), "dob"));
    push(&mut out, read(inc, Some(p), "address.zip"));
    out
}
