//! The canonical incident model: what every adapter produces and every later stage consumes.
//!
//! Identifying values are wrapped in [`Sensitive`]; see `docs/canonical-model.md` for the JSON
//! form (kept in sync with these types by a test).

mod consent;
mod engagement;
pub mod json;
mod rfc3339;
mod sensitive;
pub mod shape;

pub use consent::{Consent, ConsentRecord, Element, InfoClass, Information, covered_elements};
pub use engagement::{Engagement, Prss, Service};

pub use sensitive::{REDACTED, Sensitive};

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One incident, normalized from one source record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    pub source: Source,
    pub incident_id: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_type: Option<Coded>,
    pub category: Category,
    pub eligibility: Eligibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Times::is_empty")]
    pub times: Times,
    #[serde(default, skip_serializing_if = "Location::is_empty")]
    pub location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<Coded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrative: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naloxone_administered: Option<bool>,
    #[serde(default, skip_serializing_if = "Flags::is_empty")]
    pub flags: Flags,
    /// Offense codes (e.g. NIBRS UCR codes such as 35A).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offenses: Vec<String>,
    /// Drug categories involved (e.g. NIBRS drug type codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drugs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persons: Vec<Person>,
}

impl Incident {
    /// An incident with only its provenance set; the mapping fills in the rest.
    pub fn new(adapter: &str) -> Self {
        Incident {
            source: Source {
                adapter: adapter.to_owned(),
                ..Source::default()
            },
            incident_id: String::new(),
            action: Action::New,
            call_type: None,
            category: Category::Unmapped,
            eligibility: Eligibility::default(),
            priority: None,
            times: Times::default(),
            location: Location::default(),
            disposition: None,
            narrative: None,
            naloxone_administered: None,
            flags: Flags::default(),
            offenses: Vec::new(),
            drugs: Vec::new(),
            persons: Vec::new(),
        }
    }
}

/// Where the incident came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The adapter that read it (`adapters/<name>.toml`).
    pub adapter: String,
    /// The agency's ORI (FBI originating agency identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_ori: Option<String>,
    /// The sending system, e.g. "San Diego PD CAD".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The record's own id in the source system (defaults to the incident id).
    #[serde(default)]
    pub record_id: String,
}

/// What the record asks us to do with the incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    New,
    Update,
    /// Retracts the incident (and, later, any referral made from it); never creates one.
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::New, Action::Update, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::New => "new",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// A code with its human-readable text (call type, disposition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coded {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The program category an agency call type maps to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Overdose,
    SubstanceUse,
    BehavioralHealth,
    WelfareCheck,
    DomesticNonviolent,
    Violent,
    Other,
    /// The call-type code has no entry in the agency's code table: never eligible, always counted.
    #[default]
    Unmapped,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Overdose,
        Category::SubstanceUse,
        Category::BehavioralHealth,
        Category::WelfareCheck,
        Category::DomesticNonviolent,
        Category::Violent,
        Category::Other,
        Category::Unmapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Overdose => "overdose",
            Category::SubstanceUse => "substance_use",
            Category::BehavioralHealth => "behavioral_health",
            Category::WelfareCheck => "welfare_check",
            Category::DomesticNonviolent => "domestic_nonviolent",
            Category::Violent => "violent",
            Category::Other => "other",
            Category::Unmapped => "unmapped",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the program takes this incident, and the rule that decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    pub eligible: bool,
    pub rule: String,
}

/// Timestamps, RFC 3339 with the offset that applied locally at that moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize"
    )]
    pub received: Option<DateTime<FixedOffset>>,
    /// When the call was answered (EIDO `answerDate`): after `received`, before dispatch.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize"
    )]
    pub answered: Option<DateTime<FixedOffset>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize"
    )]
    pub dispatched: Option<DateTime<FixedOffset>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize"
    )]
    pub arrived: Option<DateTime<FixedOffset>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::serialize"
    )]
    pub cleared: Option<DateTime<FixedOffset>>,
    /// A local time among these happened twice (the hour repeated when daylight saving time
    /// ends) and the source gave no offset: the offset was chosen by the `ambiguous_time` rule
    /// (earlier by default), so the time may be an hour off. Shown only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ambiguous: bool,
}

impl Times {
    pub fn is_empty(&self) -> bool {
        self == &Times::default()
    }
}

/// Where the incident happened. Street, ZIP and coordinates identify; city, county, state and
/// beat alone do not, but disclosure profiles still decide each one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub county: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<Sensitive<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<Sensitive<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beat: Option<String>,
}

impl Location {
    pub fn is_empty(&self) -> bool {
        self == &Location::default()
    }
}

/// Facts that exclude an incident from the program whatever its category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weapon: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violence: Option<bool>,
    /// Someone involved was suspected of using drugs (e.g. NIBRS "offender suspected of using" D).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substance_use: Option<bool>,
}

impl Flags {
    pub fn is_empty(&self) -> bool {
        self == &Flags::default()
    }
}

/// A person's part in the incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person the call is about: the one a peer may engage.
    Subject,
    /// Caller or reporting party.
    Caller,
    Victim,
    Witness,
    #[default]
    Other,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Subject,
        Role::Caller,
        Role::Victim,
        Role::Witness,
        Role::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Subject => "subject",
            Role::Caller => "caller",
            Role::Victim => "victim",
            Role::Witness => "witness",
            Role::Other => "other",
        }
    }
}

/// A person named in the incident. Every field that identifies is [`Sensitive`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Name::is_empty")]
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<Sensitive<NaiveDate>>,
    /// Age in years when the source gives an age instead of (or beside) a date of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<Sensitive<u16>>,
    /// An age range in years, when that is all the source knows (NIBRS "25 to 32").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_min: Option<Sensitive<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_max: Option<Sensitive<u16>>,
    /// An age the source gives as text or a code ("under 24 hours", "unknown", "over 98").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ethnicity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Address::is_empty")]
    pub address: Address,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
}

impl Person {
    pub fn new(role: Role) -> Self {
        Person {
            role,
            ..Person::default()
        }
    }

    /// True when nothing but the role is known: such a person is not emitted.
    pub fn is_empty(&self) -> bool {
        self == &Person::new(self.role)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Name {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<Sensitive<String>>,
}

impl Name {
    pub fn is_empty(&self) -> bool {
        self == &Name::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<Sensitive<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<Sensitive<String>>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

/// The kinds of identifier a source may carry for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    Ssn,
    DriversLicense,
    Mrn,
    Plate,
    Other,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 5] = [
        IdentifierKind::Ssn,
        IdentifierKind::DriversLicense,
        IdentifierKind::Mrn,
        IdentifierKind::Plate,
        IdentifierKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Ssn => "ssn",
            IdentifierKind::DriversLicense => "drivers_license",
            IdentifierKind::Mrn => "mrn",
            IdentifierKind::Plate => "plate",
            IdentifierKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: Sensitive<String>,
    /// Who issued it (a state for a licence or plate, a facility for an MRN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}
