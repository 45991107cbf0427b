//! The peer's record: a PRSS engaged a person met in an incident, with their consent, and
//! recorded what they need and who should receive the referral.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Role;

/// The service a referral asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    SudTreatment,
    Mat,
    Detox,
    Qrt,
    Start,
    MentalHealth,
    Housing,
    FamilyAssistance,
    Cps,
    Veterans,
}

impl Service {
    pub const ALL: [Service; 10] = [
        Service::SudTreatment,
        Service::Mat,
        Service::Detox,
        Service::Qrt,
        Service::Start,
        Service::MentalHealth,
        Service::Housing,
        Service::FamilyAssistance,
        Service::Cps,
        Service::Veterans,
    ];

    /// The name used in files and reports (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::SudTreatment => "sud_treatment",
            Service::Mat => "mat",
            Service::Detox => "detox",
            Service::Qrt => "qrt",
            Service::Start => "start",
            Service::MentalHealth => "mental_health",
            Service::Housing => "housing",
            Service::FamilyAssistance => "family_assistance",
            Service::Cps => "cps",
            Service::Veterans => "veterans",
        }
    }

    pub fn parse(s: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One engagement, as the PRSS recorded it (imported from CSV or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engagement {
    pub id: String,
    /// The incident, by the agency's incident id.
    pub incident_id: String,
    /// The adapter the incident came through, when incident ids could collide across agencies.
    #[serde(default)]
    pub adapter: Option<String>,
    /// Which person of the incident: the first with this role (default `subject`).
    #[serde(default = "subject")]
    pub person_role: Role,
    /// The PRSS, by roster id.
    pub prss_id: String,
    /// The consent the person signed.
    pub consent_id: String,
    pub service: Service,
    /// The destination (provider) that should receive the referral.
    pub provider: String,
    pub engaged_on: NaiveDate,
}

fn subject() -> Role {
    Role::Subject
}

/// A certified Peer Recovery Support Specialist (the roster in gateway config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prss {
    pub id: String,
    /// WVCBAPP peer recovery certification number.
    pub certification: String,
    pub certified_until: NaiveDate,
}
