//! A written consent to disclose Part 2 records (42 CFR 2.31, as amended in 2024), and the
//! information classes it may cover.

use super::Sensitive;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a consent lets a recipient see, as classes of canonical fields (see
/// `docs/privacy.md` for the fields of each class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoClass {
    /// Name, date of birth, age, sex, race, ethnicity.
    Identity,
    /// Phones, emails, home address.
    Contact,
    /// SSN, driver's licence, MRN and other person identifiers.
    Identifiers,
    /// What the referral is for: program category, service needed, naloxone, time of the call.
    Referral,
    /// Where the incident happened (street, ZIP, coordinates).
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
        InfoClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for InfoClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// 2.31(a)(3): how much and what kind of information.
    #[serde(default)]
    pub information: Vec<InfoClass>,
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
