//! The disclosure stage: for each incident and destination, gathers what policy needs (the
//! engagements, consents and roster; pseudonyms from the vault, derived for the destination's
//! token scope), asks policy to decide, and writes every decision to the audit trail. Policy
//! itself does no I/O and holds no key.
//!
//! Over the store ([`disclose_staged`]) the stage works in group commits: a group of incidents
//! (up to [`GROUP_INCIDENTS`], or [`GROUP_TIME`] of work, whichever comes first) has its
//! pseudonyms, audit entries, outbox rows, withdrawals and disclosed marks written in one
//! transaction. A crash loses the whole group and the next run decides it again: no audit entry
//! without its outbox row or the reverse, and the audit chain's head moves with its entries.
//! Nothing is kept per incident: decisions are counted ([`Tally`]) and handed to an observer,
//! and a payload is dropped once it is sealed into the outbox.

use crate::config::destination::Keys;
use crate::model::{Incident, Prss};
use crate::policy::disclose::{Decision, Destination, Facts, decide};
use crate::policy::profile::{ProfileKind, Pseudonym};
use crate::store::audit::Entry;
use crate::store::vault::scoped;
use crate::store::{Store, StoreError};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Disclosure<'a> {
    pub store: &'a mut Store,
    pub keys: &'a Keys,
    pub destinations: &'a [Destination],
    pub roster: &'a [Prss],
    pub today: NaiveDate,
    /// The group's withholds that name no person, consent or payload, counted: they differ in
    /// nothing but their time, and are audited once per entry when the group ends
    /// ([`audit_withheld`]).
    pub withheld: &'a mut Withheld,
}

/// A decision with its payload's digest as audited.
pub type Audited = (Decision, Option<String>);

/// Identical audit entries and how many decisions each stands for.
pub type Withheld = BTreeMap<Entry, u64>;

impl Disclosure<'_> {
    /// Every destination's decision for one incident, each audited at once (one entry per
    /// decision: `preview` prints them one by one).
    pub fn decide(&mut self, adapter: &str, inc: &Incident) -> Result<Vec<Decision>, StoreError> {
        let (decided, _) = self.decide_audited(adapter, inc)?;
        audit_withheld(self.store, &self.keys.audit, self.withheld)?;
        self.withheld.clear();
        Ok(decided.into_iter().map(|(d, _)| d).collect())
    }

    /// Every destination's decision for one incident, each audited (the anonymous withholds
    /// into [`Disclosure::withheld`]), with its payload's digest as audited (computed once: the
    /// outbox row records the same); and the incident's vault id.
    fn decide_audited(
        &mut self,
        adapter: &str,
        inc: &Incident,
    ) -> Result<(Vec<Audited>, Pseudonym), StoreError> {
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
        // An aggregate destination receives the monthly report's counts, never an incident:
        // it has no per-incident decision (see `report`).
        for dest in self
            .destinations
            .iter()
            .filter(|d| d.profile.kind != ProfileKind::Aggregate)
        {
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
            let digest = d.payload_digest();
            let entry = Entry {
                destination: d.destination.clone(),
                profile: d.profile.to_string(),
                decision: d.decision.to_string(),
                reasons: d.reasons.clone(),
                person_token: d.person_token.clone(),
                consent_id: d.consent_id.clone(),
                fields: d.fields.clone(),
                payload_digest: digest.clone(),
            };
            if !d.delivers()
                && entry.person_token.is_none()
                && entry.consent_id.is_none()
                && entry.payload_digest.is_none()
            {
                *self.withheld.entry(entry).or_default() += 1;
            } else {
                self.store.audit_append(&self.keys.audit, &entry)?;
            }
            tracing::debug!(destination = %d.destination, decision = d.decision, reasons = d.reasons.len(), "disclosure decided");
            out.push((d, digest));
        }
        self.record_fact(
            adapter,
            inc,
            &incident_vault,
            &person_ids,
            &engagements,
            &consents,
            &out,
        )?;
        Ok((out, incident_vault))
    }

    /// What the program report counts of this incident (its facts replace earlier ones; a
    /// delete removes them), in the same transaction as the decisions. The subject is counted
    /// under the report's own token scope.
    #[allow(clippy::too_many_arguments)]
    fn record_fact(
        &mut self,
        adapter: &str,
        inc: &Incident,
        incident_vault: &Pseudonym,
        person_ids: &[Pseudonym],
        engagements: &[crate::model::Engagement],
        consents: &[crate::model::ConsentRecord],
        decided: &[Audited],
    ) -> Result<(), StoreError> {
        let subject = inc
            .persons
            .iter()
            .position(|p| p.role == crate::model::Role::Subject)
            .map(|i| {
                scoped(
                    &self.keys.vault,
                    crate::report::facts::SCOPE,
                    &person_ids[i],
                )
                .token
            });
        let decisions: Vec<&Decision> = decided.iter().map(|(d, _)| d).collect();
        match crate::report::facts::of_incident(
            &incident_vault.token,
            adapter,
            inc,
            engagements,
            consents,
            &decisions,
            subject,
            self.today,
        ) {
            Some(f) => self.store.put_fact(&f),
            None => self.store.delete_fact(&incident_vault.token),
        }
    }
}

/// A group commit holds at most this many incidents: the group's work and its one sync are
/// repeated at most this far after a crash. Larger groups were measured and are slower at a
/// backfill's scale (scripts/bench-e2e.sh on tmpfs): 5,000 incidents or 500 ms wrote a third
/// fewer bytes through the WAL at 100,000 rows and ran 8% faster there, but at 1,000,000 rows
/// `run --once` took 190 s against 179 s, and 2,000 incidents 172 s against 164 s with 57 s of
/// system time against 45 s (the 1,000-incident run second, with less memory free): a group's
/// dirty index leaves outgrew the 64 MiB page cache and spilled to the WAL before its commit.
pub const GROUP_INCIDENTS: usize = 1000;
/// ... and is committed once it has worked this long, so that the write lock it holds keeps
/// other writers (an import, `outbox` commands) waiting no longer than that. At 50 ms a group
/// held about 150 incidents on a loaded 2-core machine, and since the vault's and audit's
/// indexes are keyed by MACs, each commit wrote a random index leaf per insert: about 40 WAL
/// pages an incident. Larger groups share leaves (scripts/bench-e2e.sh).
pub const GROUP_TIME: Duration = Duration::from_millis(250);
/// Staged incidents are read this many at a time: memory holds no more than a page of them.
const PAGE: usize = 64;

/// What the disclosure stage did, counted: nothing of an incident is kept once it is through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Incidents through the stage.
    pub incidents: u64,
    /// Decisions by (destination, decision).
    pub decisions: BTreeMap<(String, String), u64>,
    /// Payloads sealed into the outbox, by destination.
    pub queued: BTreeMap<String, u64>,
    /// Queued rows withdrawn because their incident was deleted.
    pub withdrawn: u64,
}

impl Tally {
    pub fn decisions_total(&self) -> u64 {
        self.decisions.values().sum()
    }

    pub fn queued_total(&self) -> u64 {
        self.queued.values().sum()
    }

    pub fn merge(&mut self, o: &Tally) {
        self.incidents += o.incidents;
        for (k, v) in &o.decisions {
            *self.decisions.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.queued {
            *self.queued.entry(k.clone()).or_default() += v;
        }
        self.withdrawn += o.withdrawn;
    }
}

/// The disclosure stage over the store: every staged incident not yet through it gets its
/// decisions (audited); the deliveries go into the outbox (sealed), and a deleted incident
/// withdraws what is still queued for it. Works in group commits (see the module's doc).
///
/// `tally` counts what committed groups did: it is an argument rather than the result so that
/// a failure part-way leaves the counts of the groups committed before it. `observe` sees each
/// decision once its payload has been sealed and dropped (`payload` is always `None`); it is
/// called before its group commits, so a failed group may have shown decisions that the next
/// run makes again.
pub fn disclose_staged(
    store: &mut Store,
    gw: &crate::config::Gateway,
    keys: &Keys,
    today: NaiveDate,
    tally: &mut Tally,
    observe: &mut dyn FnMut(&Decision),
) -> Result<(), StoreError> {
    disclose_groups(store, gw, keys, today, tally, observe, usize::MAX).map(|_| ())
}

/// As [`disclose_staged`], but at most `groups` group commits; returns whether staged
/// incidents may remain. The service runs one group at a time, so that the commands waiting
/// for the store (pushes, imports) are taken between groups instead of after a whole backlog.
pub fn disclose_groups(
    store: &mut Store,
    gw: &crate::config::Gateway,
    keys: &Keys,
    today: NaiveDate,
    tally: &mut Tally,
    observe: &mut dyn FnMut(&Decision),
    groups: usize,
) -> Result<bool, StoreError> {
    let seal = keys
        .outbox
        .as_deref()
        .map(crate::store::outbox::SealKey::from_secret);
    let stage = Stage {
        gw,
        keys,
        today,
        seal: seal.as_ref(),
    };
    for _ in 0..groups {
        let mut group = Tally::default();
        let more = store.write_whole(|s| stage.group(s, &mut group, observe))?;
        tally.merge(&group);
        if !more {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What every incident of a pass is decided with.
struct Stage<'a> {
    gw: &'a crate::config::Gateway,
    keys: &'a Keys,
    today: NaiveDate,
    seal: Option<&'a crate::store::outbox::SealKey>,
}

impl Stage<'_> {
    /// One group, inside the open transaction. Returns whether staged incidents may remain.
    fn group(
        &self,
        store: &mut Store,
        tally: &mut Tally,
        observe: &mut dyn FnMut(&Decision),
    ) -> Result<bool, StoreError> {
        let mut withheld = Withheld::new();
        let more = self.incidents(store, &mut withheld, tally, observe)?;
        audit_withheld(store, &self.keys.audit, &withheld)?;
        Ok(more)
    }

    /// The group's incidents, until the group is full or none is left (then `false`).
    fn incidents(
        &self,
        store: &mut Store,
        withheld: &mut Withheld,
        tally: &mut Tally,
        observe: &mut dyn FnMut(&Decision),
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let mut done = 0;
        loop {
            // Incidents marked in this transaction are no longer undisclosed to it.
            let page = store.undisclosed(PAGE.min(GROUP_INCIDENTS - done))?;
            if page.is_empty() {
                return Ok(false);
            }
            for (row_id, adapter, inc) in page {
                self.incident(store, withheld, row_id, &adapter, &inc, tally, observe)?;
                done += 1;
                // The rest of the page is read again by the next group.
                if done >= GROUP_INCIDENTS || started.elapsed() >= GROUP_TIME {
                    return Ok(true);
                }
            }
        }
    }

    /// One incident: its decisions (audited), a delete's withdrawals, the deliveries sealed
    /// into the outbox, and its disclosed mark.
    #[allow(clippy::too_many_arguments)]
    fn incident(
        &self,
        store: &mut Store,
        withheld: &mut Withheld,
        row_id: i64,
        adapter: &str,
        inc: &crate::model::Incident,
        tally: &mut Tally,
        observe: &mut dyn FnMut(&Decision),
    ) -> Result<(), StoreError> {
        let (decisions, incident) = Disclosure {
            store,
            keys: self.keys,
            destinations: &self.gw.destinations,
            roster: &self.gw.roster,
            today: self.today,
            withheld,
        }
        .decide_audited(adapter, inc)?;
        if inc.action == crate::model::Action::Delete {
            tally.withdrawn += withdraw_deleted(store, adapter, &inc.incident_id)?;
            // What was delivered is taken back: a cancellation after each referral, in this
            // group's transaction.
            crate::deliver::cancel::queue_for_incident(
                store,
                self.gw,
                self.seal,
                &self.keys.audit,
                adapter,
                &inc.incident_id,
            )?;
        }
        for (mut d, digest) in decisions {
            // Taken out of the decision: the plain payload lives only until it is sealed.
            let payload = d.payload.take();
            if d.delivers() && self.gw.deliveries.contains_key(&d.destination) {
                let payload = payload.expect("a delivering decision has a payload");
                let digest = digest.unwrap_or_default();
                let row = self.enqueue(store, adapter, &d, &payload, &digest)?;
                if let Some(row) = row.filter(|_| d.profile == "consented-referral") {
                    // The report counts what became of it under the incident's facts.
                    let called = inc.times.received.map(|t| t.to_rfc3339());
                    store.link_referral(row, &incident.token, called.as_deref())?;
                }
                *tally.queued.entry(d.destination.clone()).or_default() += 1;
            }
            *tally
                .decisions
                .entry((d.destination.clone(), d.decision.to_string()))
                .or_default() += 1;
            observe(&d);
        }
        store.mark_disclosed(row_id)?;
        tally.incidents += 1;
        Ok(())
    }

    /// Seals the payload into the outbox; the new row's id (`None`: it was queued before).
    fn enqueue(
        &self,
        store: &mut Store,
        adapter: &str,
        d: &Decision,
        payload: &serde_json::Value,
        digest: &str,
    ) -> Result<Option<i64>, StoreError> {
        use crate::store::outbox::NewRow;
        let seal = self.seal.ok_or_else(|| {
            StoreError::Invalid(
                "no outbox key: set PNP_GATEWAY_OUTBOX_KEY or [keys] outbox_key_file".into(),
            )
        })?;
        store.enqueue(
            seal,
            &NewRow {
                destination: &d.destination,
                adapter,
                incident_id: &d.incident,
                profile: d.profile,
                consent_id: d.consent_id.as_deref(),
                person_token: d.person_token.as_deref(),
                fields: &d.fields,
                payload,
                payload_digest: digest,
            },
        )
    }
}

/// Audits a group's counted withholds, one entry each, in the group's transaction.
fn audit_withheld(store: &mut Store, key: &[u8], withheld: &Withheld) -> Result<(), StoreError> {
    for (entry, n) in withheld {
        store.audit_append_n(key, entry, *n)?;
    }
    Ok(())
}

/// A deleted incident withdraws what is still queued for it (any destination) and purges those
/// payloads. Returns how many rows were withdrawn.
fn withdraw_deleted(
    store: &mut Store,
    adapter: &str,
    incident_id: &str,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for r in store.pending_for_incident(adapter, incident_id)? {
        store.withdraw(r.id, "incident_deleted: the agency deleted the incident")?;
        n += 1;
    }
    Ok(n)
}
