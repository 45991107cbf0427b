//! The disclosure stage: for each incident and destination, gathers what policy needs (the
//! engagements, consents and roster; pseudonyms from the vault, derived for the destination's
//! token scope), asks policy to decide, and writes every decision to the audit trail. Policy
//! itself does no I/O and holds no key.

use crate::config::destination::Keys;
use crate::model::{Incident, Prss};
use crate::policy::disclose::{Decision, Destination, Facts, decide};
use crate::policy::profile::{ProfileKind, Pseudonym};
use crate::store::audit::Entry;
use crate::store::vault::scoped;
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
        // The vault's ids never leave the gateway: each destination gets pseudonyms derived
        // for its token scope (see `vault::scoped`), and the audit records the vault id.
        let incident_vault =
            self.store
                .incident_pseudonym(&self.keys.vault, adapter, &inc.incident_id)?;
        let mut person_ids = Vec::with_capacity(inc.persons.len());
        for (i, p) in inc.persons.iter().enumerate() {
            let local = format!("{adapter}|{}|{i}", inc.incident_id);
            person_ids.push(self.store.person_pseudonym(&self.keys.vault, p, &local)?);
        }
        let mut out = Vec::new();
        for dest in self.destinations {
            let scope = dest.token_scope();
            let incident_pseudo = scoped(&self.keys.vault, &scope, &incident_vault);
            let person_pseudo: Vec<Pseudonym> = person_ids
                .iter()
                .map(|m| scoped(&self.keys.vault, &scope, m))
                .collect();
            let facts = Facts {
                incident: inc,
                engagements: &engagements,
                consents: &consents,
                roster: self.roster,
                incident_pseudo: &incident_pseudo,
                person_pseudo: &person_pseudo,
                today: self.today,
            };
            let mut d = decide(dest, &facts);
            d.person_token = d.person_token.and_then(|t| {
                let i = person_pseudo.iter().position(|p| p.token == t)?;
                Some(person_ids[i].token.clone())
            });
            if d.delivers() && dest.profile.kind != ProfileKind::ConsentedReferral {
                let sent: Vec<(&str, &str)> = person_pseudo
                    .iter()
                    .zip(&person_ids)
                    .map(|(t, id)| (t.token.as_str(), id.token.as_str()))
                    .collect();
                self.store.record_scoped(&scope, &sent)?;
            }
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

/// The disclosure stage over the store: every staged incident not yet through it gets its
/// decisions (audited); the deliveries go into the outbox (encrypted), and a deleted incident
/// withdraws what is still queued for it. Returns the decisions made.
pub fn disclose_staged(
    store: &mut Store,
    gw: &crate::config::Gateway,
    keys: &Keys,
    today: NaiveDate,
) -> Result<Vec<Decision>, StoreError> {
    use crate::store::outbox::{NewRow, SealKey};
    let seal = keys.outbox.as_deref().map(SealKey::from_secret);
    let mut all = Vec::new();
    loop {
        let batch = store.undisclosed(500)?;
        if batch.is_empty() {
            return Ok(all);
        }
        for (row_id, adapter, inc) in batch {
            let decisions = Disclosure {
                store,
                keys,
                destinations: &gw.destinations,
                roster: &gw.roster,
                today,
            }
            .decide(&adapter, &inc)?;
            if inc.action == crate::model::Action::Delete {
                for r in store.pending_for_incident(&adapter, &inc.incident_id)? {
                    store.withdraw(r.id, "incident_deleted: the agency deleted the incident")?;
                }
                // What was delivered is taken back: a cancellation after each referral.
                crate::deliver::cancel::queue_for_incident(
                    store,
                    gw,
                    seal.as_ref(),
                    &keys.audit,
                    &adapter,
                    &inc.incident_id,
                )?;
            }
            for d in &decisions {
                if !d.delivers() || !gw.deliveries.contains_key(&d.destination) {
                    continue;
                }
                let seal = seal.as_ref().ok_or_else(|| {
                    StoreError::Invalid(
                        "no outbox key: set PNP_GATEWAY_OUTBOX_KEY or [keys] outbox_key_file"
                            .into(),
                    )
                })?;
                let payload = d
                    .payload
                    .as_ref()
                    .expect("a delivering decision has a payload");
                store.enqueue(
                    seal,
                    &NewRow {
                        destination: &d.destination,
                        adapter: &adapter,
                        incident_id: &inc.incident_id,
                        profile: d.profile,
                        consent_id: d.consent_id.as_deref(),
                        person_token: d.person_token.as_deref(),
                        fields: &d.fields,
                        payload,
                        payload_digest: &d.payload_digest().unwrap_or_default(),
                    },
                )?;
            }
            store.mark_disclosed(row_id)?;
            all.extend(decisions);
        }
    }
}
