//! Consents: checked against the config (recipients), the date, and the 42 CFR 2.31 elements,
//! then recorded in the registry, each with the revocation its record carries (`revoked_on`).

use super::{ImportError, ImportReport, Input, Revoked, check_records};
use crate::config::Gateway;
use crate::config::destination::Keys;
use crate::ingest::records::{self, At, ConsentRow};
use crate::policy::consent::missing_elements;
use crate::store::Store;
use crate::store::registry::Imported;
use chrono::NaiveDate;

/// How consents are checked.
#[derive(Debug, Clone, Copy)]
pub struct ConsentOptions {
    /// Records a consent that lacks elements (it will permit nothing) instead of refusing it.
    pub accept_incomplete: bool,
    /// Imports nothing when any record is bad.
    pub atomic: bool,
    /// The date a signature may not come after, and revocations take effect against.
    pub today: NaiveDate,
}

/// Consents read and checked, not stored yet: [`CheckedConsents::report`] holds the problems
/// found so far.
#[derive(Debug)]
pub struct CheckedConsents {
    report: ImportReport,
    good: Vec<(At, ConsentRow)>,
    opts: ConsentOptions,
}

/// Reads and checks consents: every element present (unless `accept_incomplete`), signed no
/// later than today, a revocation not before the signature, ids unique in the input,
/// recipients that are destinations or their designations. `Err`: the input cannot be read as a
/// whole. With `atomic` and a bad record the report comes back `aborted`.
pub fn check_consents(
    gw: &Gateway,
    input: &Input,
    opts: ConsentOptions,
) -> Result<CheckedConsents, ImportError> {
    let records = records::read_consents_text(input.name, input.text, input.content)
        .map_err(ImportError::Unreadable)?;
    let (report, good) = check_records(
        records,
        |r: &ConsentRow| r.consent.id.as_str(),
        opts.atomic,
        |report, at, row| {
            let c = &row.consent;
            let mut fault = |field: Option<&str>, kind: &'static str, reason: &str| {
                report.add(at, Some(&c.id), field, kind, reason);
            };
            if c.id.trim().is_empty() {
                fault(Some("id"), "invalid", "is empty");
            } else if !crate::model::shape::is_id_shaped(&c.id) {
                fault(Some("id"), "invalid", crate::model::shape::ID_SHAPE);
            }
            let missing = missing_elements(c);
            if !missing.is_empty() && !opts.accept_incomplete {
                fault(
                    None,
                    "missing_elements",
                    &format!(
                        "lacks element(s) {} (42 CFR 2.31(a)); --accept-incomplete records it anyway, and it will permit nothing",
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if c.signed_on.is_some_and(|s| s > opts.today) {
                fault(
                    Some("signed_on"),
                    "future_signature",
                    &format!("is in the future (after {})", opts.today),
                );
            }
            if let (Some(r), Some(s)) = (row.revoked_on, c.signed_on)
                && r < s
            {
                fault(
                    Some("revoked_on"),
                    "revoked_before_signed",
                    "is before `signed_on`",
                );
            }
            for (i, r) in c.recipients.iter().enumerate() {
                let known = gw.destinations.iter().any(|d| {
                    d.id == *r
                        || r.strip_prefix("general:")
                            .is_some_and(|g| d.designations.iter().any(|x| x == g))
                });
                if !known {
                    fault(
                        Some("recipients"),
                        "unknown_recipient",
                        &format!(
                            "entry {} of {} is no destination id, nor `general:` and a designation of one, in {}",
                            i + 1,
                            c.recipients.len(),
                            gw.path.display()
                        ),
                    );
                }
            }
        },
    );
    Ok(CheckedConsents { report, good, opts })
}

impl CheckedConsents {
    /// The problems found by the checks; `aborted` when nothing is to be imported.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Records the good consents (unless aborted) and the revocations they carry. Withdraws
    /// nothing yet: see [`super::withdraw`] for each of `revocations` (the report's counts of
    /// withdrawn and cancelled stay 0), or use [`import_consents`], which does both.
    pub fn commit(self, store: &mut Store) -> Result<ImportReport, ImportError> {
        let CheckedConsents {
            mut report,
            good,
            opts,
        } = self;
        if report.aborted {
            return Ok(report);
        }
        let input: Vec<_> = good
            .iter()
            .map(|(_, r)| (&r.consent, r.revoked_on))
            .collect();
        let outcomes = store.import_consents(&input, opts.atomic)?;
        for ((at, row), o) in good.iter().zip(&outcomes) {
            match o {
                Ok(i) => {
                    match i.imported {
                        Imported::Added => report.added += 1,
                        Imported::Present => report.present += 1,
                    }
                    if let (true, Some(on)) = (i.revocation_recorded, row.revoked_on) {
                        report.revocations.push(Revoked {
                            record: row.consent.id.clone(),
                            on,
                            withdrawn: 0,
                            cancelled: 0,
                        });
                    }
                }
                Err(r) => {
                    report.rejected += 1;
                    report.refused(*at, &row.consent.id, r);
                }
            }
        }
        Ok(report.aborted_if(opts.atomic))
    }
}

/// Checks and imports consents, and for each revocation recorded withdraws what waits under it
/// and queues cancellations, as `consent revoke` does. `keys`: `None` loads them from `gw` only
/// when something is to be withdrawn.
pub fn import_consents(
    gw: &Gateway,
    store: &mut Store,
    keys: Option<&Keys>,
    input: &Input,
    opts: ConsentOptions,
) -> Result<ImportReport, ImportError> {
    let mut report = check_consents(gw, input, opts)?.commit(store)?;
    for r in &mut report.revocations {
        let done = super::withdraw(gw, store, keys, &r.record, r.on, opts.today)?;
        r.withdrawn = done.withdrawn;
        r.cancelled = done.cancelled;
        report.withdrawn += done.withdrawn;
        report.cancelled += done.cancelled;
    }
    Ok(report)
}
