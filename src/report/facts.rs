//! What the report counts of one incident: a row of facts written by the disclosure stage
//! (`report_facts` in the store), kept after the incident itself is purged, so that a month
//! is reported in full and the 12-month charts and the 90-day repeat contacts have their past.
//!
//! A fact holds no identifying value: the incident is named by its vault token (not the
//! agency's incident number), the person by a token of the report's own scope ([`SCOPE`]),
//! which no recipient ever receives; the county is one of West Virginia's 55 or `unknown`, the
//! agency an ORI ([`is_ori`]) or the adapter's name. Only counts of these facts leave.

use crate::model::{Action, Category, ConsentRecord, Engagement, Incident, Role, Service};
use crate::policy::consent::{Recipient, check};
use crate::policy::disclose::Decision;
use chrono::NaiveDate;

/// The token scope of the report's person tokens: its own, so that its tokens match no
/// recipient's (see `store::vault::scoped`).
pub const SCOPE: &str = "report:repeat-contacts";

/// The county of an incident whose location names none of the list.
pub const UNKNOWN_COUNTY: &str = "unknown";

/// West Virginia's 55 counties, as the report names them.
pub const WV_COUNTIES: [&str; 55] = [
    "Barbour",
    "Berkeley",
    "Boone",
    "Braxton",
    "Brooke",
    "Cabell",
    "Calhoun",
    "Clay",
    "Doddridge",
    "Fayette",
    "Gilmer",
    "Grant",
    "Greenbrier",
    "Hampshire",
    "Hancock",
    "Hardy",
    "Harrison",
    "Jackson",
    "Jefferson",
    "Kanawha",
    "Lewis",
    "Lincoln",
    "Logan",
    "Marion",
    "Marshall",
    "Mason",
    "McDowell",
    "Mercer",
    "Mineral",
    "Mingo",
    "Monongalia",
    "Monroe",
    "Morgan",
    "Nicholas",
    "Ohio",
    "Pendleton",
    "Pleasants",
    "Pocahontas",
    "Preston",
    "Putnam",
    "Raleigh",
    "Randolph",
    "Ritchie",
    "Roane",
    "Summers",
    "Taylor",
    "Tucker",
    "Tyler",
    "Upshur",
    "Wayne",
    "Webster",
    "Wetzel",
    "Wirt",
    "Wood",
    "Wyoming",
];

/// One incident's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The incident's vault token: the row's key (an update replaces it, a delete removes it).
    pub incident: String,
    /// The local date the call was received (else the date it was decided).
    pub day: NaiveDate,
    pub category: Category,
    pub county: String,
    pub agency: String,
    pub eligible: bool,
    pub naloxone: bool,
    /// Eligible, and a PRSS recorded an engagement.
    pub engaged: bool,
    /// Engaged, and an engagement's consent was in force on the day of the engagement.
    pub consented: bool,
    /// The services a consented referral was decided for (queued to a provider).
    pub referred: Vec<Service>,
    /// The subject's token in [`SCOPE`], for repeat contacts; never shown.
    pub person: Option<String>,
    /// A provider accepted one of its consented referrals (the lifecycle, docs/closed-loop.md).
    /// Read with the facts, never written with them: the lifecycle moves after the disclosure.
    pub accepted: bool,
    /// ... and reported one completed.
    pub completed: bool,
}

/// The county named by a location, as one of [`WV_COUNTIES`]: case, a `County` suffix and
/// spacing do not matter; anything else is [`UNKNOWN_COUNTY`] (so no free text reaches a
/// report's row names).
pub fn county(raw: Option<&str>) -> String {
    let Some(raw) = raw else {
        return UNKNOWN_COUNTY.into();
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let mut name = words.join(" ").to_lowercase();
    if let Some(s) = name.strip_suffix(" county") {
        name = s.to_string();
    }
    WV_COUNTIES
        .iter()
        .find(|c| c.to_lowercase() == name)
        .map_or_else(|| UNKNOWN_COUNTY.into(), |c| c.to_string())
}

/// The agency: its ORI when it has an ORI's shape, else the adapter that read it.
pub fn agency(inc: &Incident, adapter: &str) -> String {
    match inc.source.agency_ori.as_deref().map(str::trim) {
        Some(o) if is_ori(o) => o.to_string(),
        _ => adapter.to_string(),
    }
}

/// An FBI originating agency identifier: nine characters, a state's two letters and seven
/// letters or digits, at least two of them digits (so that a word typed into the column, a
/// surname, is not taken for one).
pub fn is_ori(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 9
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b[2..].iter().filter(|c| c.is_ascii_digit()).count() >= 2
}

/// Whether a consent was in force on `day`, whoever it names: complete, signed, neither
/// expired nor revoked. (Whether it covers a given recipient is the referral's check.) The
/// funnel asks it for the day of the engagement: a consent that expired or was revoked since
/// was still given.
pub fn in_force(rec: &ConsentRecord, day: NaiveDate) -> bool {
    let anyone = Recipient {
        id: "",
        designations: &[],
        purpose: "",
    };
    check(rec, &anyone, day)
        .iter()
        .all(|r| r.starts_with("consent_other_recipient") || r.starts_with("consent_other_purpose"))
}

/// What the report counts of an incident, from what the disclosure stage had at hand: its
/// engagements and their consents, the decisions made, and the subject's report token. `None`
/// for a delete (its fact is removed).
#[allow(clippy::too_many_arguments)]
pub fn of_incident(
    incident: &str,
    adapter: &str,
    inc: &Incident,
    engagements: &[Engagement],
    consents: &[ConsentRecord],
    decisions: &[&Decision],
    person: Option<String>,
    today: NaiveDate,
) -> Option<Fact> {
    if inc.action == Action::Delete {
        return None;
    }
    let eligible = inc.eligibility.eligible;
    let mut referred: Vec<Service> = decisions
        .iter()
        .filter(|d| d.delivers() && d.profile == "consented-referral")
        .filter_map(|d| engagements.iter().find(|e| e.provider == d.destination))
        .map(|e| e.service)
        .collect();
    referred.sort_by_key(|s| s.as_str());
    referred.dedup();
    let engaged = eligible && !engagements.is_empty();
    let consented = engaged
        && (!referred.is_empty()
            || engagements.iter().any(|e| {
                consents
                    .iter()
                    .any(|c| c.consent.id == e.consent_id && in_force(c, e.engaged_on))
            }));
    Some(Fact {
        incident: incident.to_string(),
        day: inc.times.received.map(|t| t.date_naive()).unwrap_or(today),
        category: inc.category,
        county: county(inc.location.county.as_deref()),
        agency: agency(inc, adapter),
        eligible,
        naloxone: inc.naloxone_administered == Some(true),
        engaged,
        consented,
        referred: if consented { referred } else { Vec::new() },
        person: inc
            .persons
            .iter()
            .any(|p| p.role == Role::Subject)
            .then_some(person)
            .flatten(),
        accepted: false,
        completed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counties_are_named_from_the_list_or_unknown() {
        assert_eq!(county(Some("KANAWHA")), "Kanawha");
        assert_eq!(county(Some(" mcdowell  county ")), "McDowell");
        assert_eq!(county(Some("San Diego")), UNKNOWN_COUNTY);
        assert_eq!(county(Some("DOE, JANE")), UNKNOWN_COUNTY);
        assert_eq!(county(None), UNKNOWN_COUNTY);
        assert_eq!(WV_COUNTIES.len(), 55);
    }

    #[test]
    fn an_ori_has_its_shape() {
        assert!(is_ori("WV0200100"));
        assert!(is_ori("WVWSP0100"));
        assert!(!is_ori("SMITHJOHN"));
        assert!(!is_ori("wv0200100"));
        assert!(!is_ori("WV020010"));
    }
}
