//! The PRSS's imports (consents, engagements) and consent revocations, for every way they come
//! in: `consent import` and `engagement import` on the command line, and the HTTPS API's
//! `POST /v1/consents`, `/v1/consents/{id}/revocation` and `/v1/engagements`. One place decides
//! what a good record is, so that a record the API takes is a record the command line takes,
//! and the reverse.
//!
//! A bad record does not throw the good ones away: each is reported as a [`Problem`] (the line
//! an editor shows, the field, a stable kind, and a reason that never quotes a value: a
//! misplaced column may hold a name), the others are imported. With `atomic`, nothing is
//! imported when any record is bad. Each import checks first ([`check_consents`],
//! [`check_engagements`]: no store needed) and then commits ([`CheckedConsents::commit`],
//! [`CheckedEngagements::commit`]); [`import_consents`] and [`import_engagements`] do both.

mod consents;
mod engagements;

pub use crate::ingest::records::Content;
pub use consents::{CheckedConsents, ConsentOptions, check_consents, import_consents};
pub use engagements::{CheckedEngagements, check_engagements, import_engagements};

use crate::config::Gateway;
use crate::config::destination::Keys;
use crate::ingest::records::{At, Bad};
use crate::store::registry::Refused;
use crate::store::{Store, StoreError};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

/// What to import: the text, what it is called in messages (a file's name, or "request body")
/// and how to read it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub content: Content,
}

/// One problem with one record. `kind` is stable snake_case for programs: `invalid` (the record
/// cannot be read as one: a wrong type, a missing field, a bad date...), `duplicate_id`,
/// `missing_elements`, `future_signature`, `revoked_before_signed`, `unknown_recipient`,
/// `unknown_provider`, `not_on_roster`, and the store's refusals (`conflicting_content`,
/// `conflicting_revocation`, `unknown_consent`, `incident_purged`). `reason` is for people and
/// names ids (ours) at most, never a value of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The record's id (ours, the PRSS's), when it has one.
    pub record: Option<String>,
    /// The line an editor shows: a CSV header is line 1; for JSON, the line of the object's `{`.
    pub line: usize,
    /// For FHIR, the resource's 1-based place in the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<usize>,
    pub field: Option<String>,
    pub kind: &'static str,
    pub reason: String,
}

impl Problem {
    /// Where the record starts, as the readers say it (`12`, or `3 (resource 2)` for FHIR).
    pub fn at(&self) -> At {
        At {
            line: self.line,
            resource: self.resource,
        }
    }
}

/// An engagement kept pending: its incident has not been read yet (not an error; it joins the
/// incident when that is read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub line: usize,
    pub record: String,
}

/// A revocation an import recorded (a consent's `revoked_on`), and what it withdrew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoked {
    pub record: String,
    pub on: NaiveDate,
    pub withdrawn: usize,
    pub cancelled: usize,
}

/// What an import did. `aborted`: `atomic` and a bad record, so nothing was imported (the
/// counts are then zero but `rejected`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub present: usize,
    pub rejected: usize,
    pub problems: Vec<Problem>,
    pub pending: Vec<Pending>,
    pub revocations: Vec<Revoked>,
    /// Queued referrals withdrawn under the revocations, all together.
    pub withdrawn: usize,
    /// Cancellations queued for referrals delivered under the revocations, all together.
    pub cancelled: usize,
    pub aborted: bool,
}

impl ImportReport {
    fn add(
        &mut self,
        at: At,
        id: Option<&str>,
        field: Option<&str>,
        kind: &'static str,
        reason: &str,
    ) {
        self.problems.push(Problem {
            // Quoted only when it looks like an id: a name shifted into the id column is not
            // one, and the line says where the record is.
            record: id
                .filter(|i| crate::model::shape::is_id_shaped(i))
                .map(str::to_owned),
            line: at.line,
            resource: at.resource,
            field: field.map(str::to_owned),
            kind,
            reason: reason.to_owned(),
        });
    }

    fn bad(&mut self, b: &Bad) {
        self.add(
            b.at,
            b.id.as_deref(),
            b.field.as_deref(),
            "invalid",
            &b.reason,
        );
    }

    fn refused(&mut self, at: At, id: &str, rs: &[Refused]) {
        for r in rs {
            self.add(at, Some(id), r.field, r.kind, &r.reason);
        }
    }

    /// With `atomic` and a bad record: the problems stay, nothing counts as imported.
    fn abort(mut self) -> Self {
        self.added = 0;
        self.present = 0;
        self.pending.clear();
        self.revocations.clear();
        self.aborted = true;
        self
    }
}

/// What a revocation did: queued referrals withdrawn (payloads purged), cancellations queued
/// for referrals already delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub withdrawn: usize,
    pub cancelled: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input cannot be read as a whole (JSON syntax, a CSV header, not the form announced):
    /// nothing of it is trusted, nothing imported. Names where, never a value.
    #[error("{0}")]
    Unreadable(String),
    /// A revocation of a consent the registry does not hold.
    #[error("no consent {0} in the registry")]
    UnknownConsent(String),
    /// The keys a withdrawal needs (audit, outbox) cannot be loaded.
    #[error("{0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Stable snake_case, as [`Problem::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::Unreadable(_) => "unreadable",
            ImportError::UnknownConsent(_) => "unknown_consent",
            ImportError::Keys(_) => "keys",
            ImportError::Store(_) => "store",
        }
    }
}

/// Records a written revocation of consent `id` taking effect `on`, then withdraws what waits
/// under it and queues cancellations (see [`withdraw`]). `keys`: `None` loads them from `gw`
/// only when something is to be withdrawn.
pub fn revoke(
    gw: &Gateway,
    store: &mut Store,
    keys: Option<&Keys>,
    id: &str,
    on: NaiveDate,
    today: NaiveDate,
) -> Result<Revocation, ImportError> {
    record_revocation(store, id, on)?;
    withdraw(gw, store, keys, id, on, today)
}

/// The first half of [`revoke`]: the revocation recorded, nothing withdrawn yet.
pub fn record_revocation(store: &mut Store, id: &str, on: NaiveDate) -> Result<(), ImportError> {
    match store.revoke_consent(id, on) {
        Ok(()) => Ok(()),
        // The only refusal `revoke_consent` makes: the id is not in the registry.
        Err(StoreError::Invalid(_)) => Err(ImportError::UnknownConsent(id.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// After a revocation of consent `id` taking effect `on`: what still waits under the consent is
/// withdrawn now and its payload purged, and each referral already delivered under it gets a
/// cancellation (queued, sent by `run`); a revocation dated later than `today` acts at send
/// time, when its date has come (and `run` queues the cancellations then).
pub fn withdraw(
    gw: &Gateway,
    store: &mut Store,
    keys: Option<&Keys>,
    id: &str,
    on: NaiveDate,
    today: NaiveDate,
) -> Result<Revocation, ImportError> {
    if on > today {
        return Ok(Revocation::default());
    }
    let queued = store.queued_under_consent(id)?;
    if queued.is_empty() && !crate::deliver::cancel::owed_for_revoked(store, gw, today)? {
        return Ok(Revocation::default());
    }
    let loaded;
    let keys = match keys {
        Some(k) => k,
        None => {
            loaded = gw.keys().map_err(ImportError::Keys)?;
            &loaded
        }
    };
    for row in &queued {
        crate::deliver::cancel::withdraw_revoked(store, &keys.audit, row, id, &on.to_string())?;
    }
    let seal = keys
        .outbox
        .as_deref()
        .map(crate::store::outbox::SealKey::from_secret);
    let cancelled =
        crate::deliver::cancel::queue_for_revoked(store, gw, seal.as_ref(), &keys.audit, today)?;
    Ok(Revocation {
        withdrawn: queued.len(),
        cancelled,
    })
}

/// The checks every import makes the same way: the records that could not be read are
/// reported, an id seen more than once refuses each of its records (`duplicate_id`), `check`
/// adds each read record's own problems to the report, and a record with any problem is set
/// aside. Returns the report (aborted when `atomic` and anything was refused) and the good
/// records.
fn check_records<T>(
    records: crate::ingest::records::Records<T>,
    id: impl Fn(&T) -> &str,
    atomic: bool,
    mut check: impl FnMut(&mut ImportReport, At, &T),
) -> (ImportReport, Vec<(At, T)>) {
    let crate::ingest::records::Records { rows, bad } = records;
    let mut report = ImportReport::default();
    bad.iter().for_each(|b| report.bad(b));
    report.rejected = bad.len();
    let dups = duplicates(
        rows.iter()
            .map(|(at, r)| (id(r), *at))
            .chain(bad.iter().filter_map(|b| Some((b.id.as_deref()?, b.at)))),
    );
    let faulty: Vec<bool> = rows
        .iter()
        .map(|(at, r)| {
            let before = report.problems.len();
            if let Some(lines) = dups.get(id(r)) {
                report.add(*at, Some(id(r)), Some("id"), "duplicate_id", &twice(lines));
            }
            check(&mut report, *at, r);
            report.problems.len() > before
        })
        .collect();
    report.rejected += faulty.iter().filter(|f| **f).count();
    let good = rows
        .into_iter()
        .zip(faulty)
        .filter(|(_, f)| !f)
        .map(|(r, _)| r)
        .collect();
    (report.aborted_if(atomic), good)
}

impl ImportReport {
    /// Nothing imported when `atomic` and any record was refused.
    fn aborted_if(self, atomic: bool) -> ImportReport {
        if atomic && self.rejected > 0 {
            self.abort()
        } else {
            self
        }
    }
}

/// Ids that appear more than once in the input, with the lines they appear on: every such
/// record is refused, as nothing says which one is right.
fn duplicates<'a>(ids: impl Iterator<Item = (&'a str, At)>) -> BTreeMap<&'a str, Vec<usize>> {
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (id, at) in ids {
        lines.entry(id).or_default().push(at.line);
    }
    lines.values_mut().for_each(|l| l.sort_unstable());
    lines.retain(|_, l| l.len() > 1);
    lines
}

fn twice(lines: &[usize]) -> String {
    let l: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    format!(
        "the id appears more than once in the file (lines {})",
        l.join(", ")
    )
}
