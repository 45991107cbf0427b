//! A written consent to disclose Part 2 records (42 CFR 2.31, as amended in 2024), and the
//! information classes it may cover.

use super::Sensitive;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One element of the information a consent describes (42 CFR 2.31(a)(3): "how much and what
/// kind of information"): the unit a person actually signs for ("my name and phone number").
/// Every disclosable field belongs to exactly one element (`policy::fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    /// Name (last, first, middle, suffix).
    Name,
    /// Date of birth, and the ages derived from or given beside it.
    DateOfBirth,
    Sex,
    /// Race and ethnicity.
    RaceEthnicity,
    Phone,
    Email,
    /// Home address (street, city, state, ZIP).
    HomeAddress,
    Ssn,
    /// Driver's licence, medical record and other person identifiers.
    OtherIdentifiers,
    /// Diagnosis or program category: what the referral is for (category, action).
    Category,
    /// The incident as the referral needs it: time of the call, naloxone given.
    IncidentDetails,
    /// Where the incident happened.
    IncidentLocation,
    /// Police details: incident number, call type, priority, disposition, beat, plates, later
    /// times.
    PoliceRecord,
    /// The officer's free-text narrative.
    Narrative,
}

impl Element {
    pub const ALL: [Element; 14] = [
        Element::Name,
        Element::DateOfBirth,
        Element::Sex,
        Element::RaceEthnicity,
        Element::Phone,
        Element::Email,
        Element::HomeAddress,
        Element::Ssn,
        Element::OtherIdentifiers,
        Element::Category,
        Element::IncidentDetails,
        Element::IncidentLocation,
        Element::PoliceRecord,
        Element::Narrative,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Element::Name => "name",
            Element::DateOfBirth => "date_of_birth",
            Element::Sex => "sex",
            Element::RaceEthnicity => "race_ethnicity",
            Element::Phone => "phone",
            Element::Email => "email",
            Element::HomeAddress => "home_address",
            Element::Ssn => "ssn",
            Element::OtherIdentifiers => "other_identifiers",
            Element::Category => "category",
            Element::IncidentDetails => "incident_details",
            Element::IncidentLocation => "incident_location",
            Element::PoliceRecord => "police_record",
            Element::Narrative => "narrative",
        }
    }

    /// The element's name, or one of the spellings consent forms use for it.
    pub fn parse(s: &str) -> Option<Element> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let alias = match s.as_str() {
            "dob" | "birth_date" => Some(Element::DateOfBirth),
            "race" | "ethnicity" => Some(Element::RaceEthnicity),
            "address" => Some(Element::HomeAddress),
            "diagnosis" => Some(Element::Category),
            _ => None,
        };
        alias.or_else(|| Element::ALL.into_iter().find(|e| e.as_str() == s))
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The coarse classes earlier consents listed: each is a shorthand for a set of [`Element`]s
/// (see `docs/privacy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InfoClass {
    /// Name, date of birth, sex, race and ethnicity.
    Identity,
    /// Phones, emails, home address.
    Contact,
    /// SSN and the other person identifiers.
    Identifiers,
    /// What the referral is for: category, time of the call, naloxone.
    Referral,
    /// Where the incident happened.
    Location,
    /// Police details: incident number, call type, disposition, plates, priority.
    PoliceRecord,
    /// The officer's free-text narrative.
    Narrative,
}

impl InfoClass {
    pub const ALL: [InfoClass; 7] = [
        InfoClass::Identity,
        InfoClass::Contact,
        InfoClass::Identifiers,
        InfoClass::Referral,
        InfoClass::Location,
        InfoClass::PoliceRecord,
        InfoClass::Narrative,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InfoClass::Identity => "identity",
            InfoClass::Contact => "contact",
            InfoClass::Identifiers => "identifiers",
            InfoClass::Referral => "referral",
            InfoClass::Location => "location",
            InfoClass::PoliceRecord => "police_record",
            InfoClass::Narrative => "narrative",
        }
    }

    pub fn parse(s: &str) -> Option<InfoClass> {
        InfoClass::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    /// The elements this class stands for.
    pub fn elements(self) -> &'static [Element] {
        use Element as E;
        match self {
            InfoClass::Identity => &[E::Name, E::DateOfBirth, E::Sex, E::RaceEthnicity],
            InfoClass::Contact => &[E::Phone, E::Email, E::HomeAddress],
            InfoClass::Identifiers => &[E::Ssn, E::OtherIdentifiers],
            InfoClass::Referral => &[E::Category, E::IncidentDetails],
            InfoClass::Location => &[E::IncidentLocation],
            InfoClass::PoliceRecord => &[E::PoliceRecord],
            InfoClass::Narrative => &[E::Narrative],
        }
    }
}

impl fmt::Display for InfoClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a consent's `information`, as the person signed it: a class (a shorthand) or
/// an element. Kept as written so the registry, the payload and the audit show what was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Information {
    Class(InfoClass),
    Element(Element),
}

impl Information {
    /// A class name first (`police_record` and `narrative` are both, and mean the same), then an
    /// element or its alias.
    pub fn parse(s: &str) -> Option<Information> {
        InfoClass::parse(s)
            .map(Information::Class)
            .or_else(|| Element::parse(s).map(Information::Element))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Information::Class(c) => c.as_str(),
            Information::Element(e) => e.as_str(),
        }
    }

    pub fn elements(self) -> &'static [Element] {
        match self {
            Information::Class(c) => c.elements(),
            Information::Element(e) => std::slice::from_ref(&ELEMENTS[e as usize]),
        }
    }
}

/// Every element in declaration order, so that `ELEMENTS[e as usize] == e`.
static ELEMENTS: [Element; 14] = Element::ALL;

impl From<InfoClass> for Information {
    fn from(c: InfoClass) -> Self {
        Information::Class(c)
    }
}

impl From<Element> for Information {
    fn from(e: Element) -> Self {
        Information::Element(e)
    }
}

impl fmt::Display for Information {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Information {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Information {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The value is a form's word, not personal data, but keep to the expectation only.
        Information::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown information class or element (expected one of the classes {} or the elements {})",
                InfoClass::ALL.map(InfoClass::as_str).join(", "),
                Element::ALL.map(Element::as_str).join(", ")
            ))
        })
    }
}

/// The elements a consent's `information` covers, classes expanded.
pub fn covered_elements(information: &[Information]) -> std::collections::BTreeSet<Element> {
    information
        .iter()
        .flat_map(|i| i.elements().iter().copied())
        .collect()
}

/// One consent as signed. Every element of 42 CFR 2.31(a) has a field; an element left empty
/// makes the consent defective (it permits nothing), and the check says which element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub id: String,
    /// 2.31(a)(1): the patient's name.
    pub patient_name: Option<Sensitive<String>>,
    /// The patient's date of birth, to match the consent to the person.
    #[serde(default)]
    pub patient_dob: Option<Sensitive<NaiveDate>>,
    /// 2.31(a)(2): who may disclose (the program or person).
    pub disclosing: Option<String>,
    /// 2.31(a)(3): how much and what kind of information: elements, or classes standing for
    /// sets of them.
    #[serde(default)]
    pub information: Vec<Information>,
    /// 2.31(a)(4): recipients, by destination id, or a general designation written
    /// `general:<designation>` (matched against a destination's `designations`).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// 2.31(a)(5): the purpose of the disclosure.
    pub purpose: Option<String>,
    /// 2.31(a)(6): the statement of the right to revoke in writing.
    pub right_to_revoke_statement: Option<String>,
    /// 2.31(a)(7): expiry date ...
    #[serde(default)]
    pub expires_on: Option<NaiveDate>,
    /// ... or expiry event (the consent then lasts until the event is recorded as revocation).
    #[serde(default)]
    pub expires_event: Option<String>,
    /// 2.31(a)(8): the signature (of the patient or an authorized person).
    pub signature: Option<Sensitive<String>>,
    /// 2.31(a)(9): the date signed.
    pub signed_on: Option<NaiveDate>,
    /// A consent for treatment, payment and health care operations (TPO) ...
    #[serde(default)]
    pub tpo: bool,
    /// ... must carry the redisclosure statement (2.31(a)(4)(i)).
    #[serde(default)]
    pub redisclosure_statement: Option<String>,
}

/// A consent as held in the registry: the consent and its revocation, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub consent: Consent,
    /// The date a written revocation takes effect.
    pub revoked_on: Option<NaiveDate>,
}
