//! The disclosure stage: for each incident and destination, gathers what policy needs (the
//! engagements, consents and roster; pseudonyms from the vault), asks policy to decide, and
//! writes every decision to the audit trail. Policy itself does no I/O.

use crate::config::destination::Keys;
use crate::model::{Incident, Prss};
use crate::policy::disclose::{Decision, Destination, Facts, decide};
use crate::store::audit::Entry;
use crate::store::{Store, StoreError};
use chrono::NaiveDate;

pub struct Disclosure<'a> {
    pub store: &'a mut Store,
    pub keys: &'a Keys,
    pub destinations: &'a [Destination],
    pub roster: &'a [Prss],
    pub today: NaiveDate,
}

impl Disclosure<'_> {
    /// Every destination's decision for one incident, each written to the audit trail.
    pub fn decide(&mut self, adapter: &str, inc: &Incident) -> Result<Vec<Decision>, StoreError> {
        let engagements = self.store.engagements_for(&inc.incident_id, adapter)?;
        let mut consents = Vec::new();
        for e in &engagements {
            if let Some(c) = self.store.consent(&e.consent_id)? {
                consents.push(c);
            }
        }
        let incident_pseudo =
            self.store
                .incident_pseudonym(&self.keys.vault, adapter, &inc.incident_id)?;
        let mut person_pseudo = Vec::with_capacity(inc.persons.len());
        for p in &inc.persons {
            person_pseudo.push(self.store.person_pseudonym(&self.keys.vault, p)?);
        }
        let facts = Facts {
            incident: inc,
            engagements: &engagements,
            consents: &consents,
            roster: self.roster,
            incident_pseudo: &incident_pseudo,
            person_pseudo: &person_pseudo,
            today: self.today,
        };
        let mut out = Vec::new();
        for dest in self.destinations {
            let d = decide(dest, &facts);
            self.store.audit_append(
                &self.keys.audit,
                &Entry {
                    destination: d.destination.clone(),
                    profile: d.profile.to_string(),
                    decision: d.decision.to_string(),
                    reasons: d.reasons.clone(),
                    person_token: d.person_token.clone(),
                    consent_id: d.consent_id.clone(),
                    fields: d.fields.clone(),
                    payload_digest: d.payload_digest(),
                },
            )?;
            tracing::debug!(destination = %d.destination, decision = d.decision, reasons = d.reasons.len(), "disclosure decided");
            out.push(d);
        }
        Ok(out)
    }
}
