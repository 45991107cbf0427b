//! The disclosure decision for one incident and one destination: deliver (with the payload the
//! destination's profile produces) or withhold (with every reason). Pure: the caller gathers the
//! engagement, consent, roster entry and pseudonyms, and writes the audit entry.

use super::consent::{self, Recipient};
use super::fields;
use super::profile::{Profile, ProfileKind, Pseudonym};
use crate::model::{
    Action, ConsentRecord, Element, Engagement, Incident, Person, Prss, covered_elements,
};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The 42 CFR 2.32 notice every consented disclosure carries.
pub const PART2_NOTICE: &str =
    "42 CFR part 2 prohibits unauthorized use or disclosure of these records.";

/// A destination as policy sees it.
#[derive(Debug, Clone)]
pub struct Destination {
    pub id: String,
    pub profile: Profile,
    pub purpose: String,
    pub designations: Vec<String>,
    pub require_certified_prss: bool,
    /// Destinations of one recipient under one agreement that may link their rows: they share
    /// tokens and date shifts. Without it, the destination's tokens are its own.
    pub link_group: Option<String>,
}

impl Destination {
    /// The scope this destination's tokens and date shifts are derived for: its link group, or
    /// the destination alone. Two destinations see the same person under one token only when
    /// their scopes are equal (the prefixes keep a group from taking a destination's id).
    pub fn token_scope(&self) -> String {
        match &self.link_group {
            Some(g) => format!("group:{g}"),
            None => format!("destination:{}", self.id),
        }
    }
}

/// What the caller knows about the incident.
pub struct Facts<'a> {
    pub incident: &'a Incident,
    /// Engagements recorded for this incident (any provider).
    pub engagements: &'a [Engagement],
    /// Consents by id, as found in the registry for those engagements.
    pub consents: &'a [ConsentRecord],
    pub roster: &'a [Prss],
    /// The incident's and persons' pseudonyms as this destination's scope knows them.
    pub incident_pseudo: &'a Pseudonym,
    /// One per `incident.persons`, same order.
    pub person_pseudo: &'a [Pseudonym],
    pub today: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub incident: String,
    pub destination: String,
    pub profile: &'static str,
    pub decision: &'static str,
    pub reasons: Vec<String>,
    /// The consent elements a consented referral carries (fields present in its payload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<&'static str>,
    pub payload: Option<Value>,
    /// Names of the fields disclosed (never values), for the audit trail.
    #[serde(skip)]
    pub fields: Vec<String>,
    /// The token of the person the decision concerns, from `Facts::person_pseudo` (the
    /// disclosure stage records the person's vault id in its place).
    #[serde(skip)]
    pub person_token: Option<String>,
    #[serde(skip)]
    pub consent_id: Option<String>,
}

impl Decision {
    pub fn delivers(&self) -> bool {
        self.decision == "deliver"
    }

    /// SHA-256 of the payload as sent (hex), or `None` when nothing is sent.
    pub fn payload_digest(&self) -> Option<String> {
        let p = self.payload.as_ref()?;
        let bytes = serde_json::to_vec(p).ok()?;
        Some(crate::hex::encode(&Sha256::digest(&bytes)))
    }
}

pub fn decide(dest: &Destination, f: &Facts) -> Decision {
    let inc = f.incident;
    let mut d = Decision {
        incident: inc.incident_id.clone(),
        destination: dest.id.clone(),
        profile: dest.profile.kind.as_str(),
        decision: "withhold",
        reasons: Vec::new(),
        payload: None,
        elements: Vec::new(),
        fields: Vec::new(),
        person_token: None,
        consent_id: None,
    };
    if inc.action == Action::Delete {
        d.reasons
            .push("incident_deleted: a delete retracts; it discloses nothing".into());
        return d;
    }
    if !inc.eligibility.eligible {
        d.reasons
            .push(format!("not_eligible: {}", inc.eligibility.rule));
        return d;
    }
    match dest.profile.kind {
        ProfileKind::SafeHarbor | ProfileKind::LimitedDataSet => {
            let persons: Vec<(&Person, &Pseudonym)> =
                inc.persons.iter().zip(f.person_pseudo).collect();
            let out = dest
                .profile
                .apply(inc, f.incident_pseudo, &persons, None, f.today);
            d.person_token = inc
                .persons
                .iter()
                .position(|p| p.role == crate::model::Role::Subject)
                .and_then(|i| f.person_pseudo.get(i))
                .map(|p| p.token.clone());
            d.payload = Some(json!({
                "profile": dest.profile.kind.as_str(),
                "incident": out.incident,
                "persons": out.persons,
            }));
            d.fields = out.fields;
            d.decision = "deliver";
        }
        ProfileKind::ConsentedReferral => referral(dest, f, &mut d),
        // Counts only: the monthly report carries this incident, no payload does.
        ProfileKind::Aggregate => d
            .reasons
            .push("aggregate: counts only, in the monthly report; never a row".into()),
    }
    d
}

fn referral(dest: &Destination, f: &Facts, d: &mut Decision) {
    let inc = f.incident;
    let Some(e) = f.engagements.iter().find(|e| e.provider == dest.id) else {
        d.reasons.push(format!(
            "no_engagement: no PRSS engagement refers this incident to `{}`",
            dest.id
        ));
        return;
    };
    let Some(pi) = inc.persons.iter().position(|p| p.role == e.person_role) else {
        d.reasons.push(format!(
            "no_person: engagement {} names the incident's {}, who is not in the incident",
            e.id,
            e.person_role.as_str()
        ));
        return;
    };
    let person = &inc.persons[pi];
    let pseudo = &f.person_pseudo[pi];
    d.person_token = Some(pseudo.token.clone());
    d.consent_id = Some(e.consent_id.clone());
    let prss = f.roster.iter().find(|p| p.id == e.prss_id);
    let certified = prss.is_some_and(|p| p.certified_until >= f.today);
    if dest.require_certified_prss && !certified {
        d.reasons.push(format!(
            "prss_not_certified: PRSS `{}` has no current WVCBAPP certification",
            e.prss_id
        ));
    }
    let Some(rec) = f.consents.iter().find(|c| c.consent.id == e.consent_id) else {
        d.reasons.push(format!(
            "consent_unknown: consent {} is not in the registry",
            e.consent_id
        ));
        return;
    };
    let r = Recipient {
        id: &dest.id,
        designations: &dest.designations,
        purpose: &dest.purpose,
    };
    d.reasons.extend(consent::check(rec, &r, f.today));
    if !same_person(rec, person) {
        d.reasons.push(format!(
            "consent_other_person: consent {} names someone other than the engaged person",
            rec.consent.id
        ));
    }
    if !d.reasons.is_empty() {
        return;
    }
    let c = &rec.consent;
    let covered = covered_elements(&c.information);
    let out = dest.profile.apply(
        inc,
        f.incident_pseudo,
        &[(person, pseudo)],
        Some(&covered),
        f.today,
    );
    // The elements this referral actually carries (a field present in the payload), in the
    // consent's terms: what `preview` shows and the audit can be read against.
    let carried: Vec<&'static str> = Element::ALL
        .into_iter()
        .filter(|e| {
            out.fields.iter().any(|name| {
                let name = name.split_once('.').map_or(name.as_str(), |(_, n)| n);
                fields::def(name).is_some_and(|d| d.element == *e)
            })
        })
        .map(Element::as_str)
        .collect();
    d.payload = Some(json!({
        "profile": dest.profile.kind.as_str(),
        "notice": PART2_NOTICE,
        "consent": {
            "id": c.id,
            "information": c.information,
            "elements": covered.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            "purpose": c.purpose,
            "recipient": dest.id,
            "expires_on": c.expires_on,
            "expires_event": c.expires_event,
            "redisclosure_statement": c.redisclosure_statement,
            // The consent's own metadata, not values of the person: when it was signed
            // (2.31(a)(9)) and the program that may disclose (2.31(a)(2)), so a recipient can
            // record the consent it received under (the FHIR Consent's `dateTime` and
            // `organization`).
            "signed_on": c.signed_on,
            "disclosing": c.disclosing,
        },
        "referral": {
            "engagement": e.id,
            "service": e.service,
            "engaged_on": e.engaged_on,
            "prss": e.prss_id,
            "prss_certified": certified,
        },
        "incident": out.incident,
        "person": out.persons.into_iter().next().unwrap_or_default(),
    }));
    d.fields = out.fields;
    d.elements = carried;
    d.decision = "deliver";
}

/// The consent's patient is the engaged person: same last name (and date of birth when both
/// carry one). Compared on letters and digits, ignoring case.
fn same_person(rec: &ConsentRecord, p: &Person) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect()
    };
    let Some(name) = rec
        .consent
        .patient_name
        .as_ref()
        .map(|n| n.expose().clone())
    else {
        return false;
    };
    let Some(last) = p.name.last.as_ref().map(|l| norm(l.expose())) else {
        return false;
    };
    let consent_last = match name.split_once(',') {
        Some((l, _)) => norm(l),
        None => name.split_whitespace().last().map(norm).unwrap_or_default(),
    };
    let dob_ok = match (&rec.consent.patient_dob, &p.dob) {
        (Some(a), Some(b)) => a.expose() == b.expose(),
        _ => true,
    };
    !last.is_empty() && consent_last == last && dob_ok
}
