//! Engagements: checked against the config (provider, PRSS roster), then recorded; the store
//! checks the consent and the incident. One whose incident has not been read yet is kept
//! pending (not an error) and joins the incident when it is read.

use super::{ImportError, ImportReport, Input, Pending, check_records};
use crate::config::Gateway;
use crate::ingest::records::{self, At};
use crate::model::Engagement;
use crate::store::Store;
use crate::store::registry::Imported;

/// Engagements read and checked, not stored yet: [`CheckedEngagements::report`] holds the
/// problems found so far.
#[derive(Debug)]
pub struct CheckedEngagements {
    report: ImportReport,
    good: Vec<(At, Engagement)>,
    atomic: bool,
}

/// Reads and checks engagements: ids unique in the input, a provider that is a destination, a
/// PRSS on the roster. `Err`: the input cannot be read as a whole. With `atomic` and a bad
/// record the report comes back `aborted`.
pub fn check_engagements(
    gw: &Gateway,
    input: &Input,
    atomic: bool,
) -> Result<CheckedEngagements, ImportError> {
    let records = records::read_text::<Engagement>(input.name, input.text, input.content)
        .map_err(ImportError::Unreadable)?;
    let (report, good) = check_records(
        records,
        |e: &Engagement| e.id.as_str(),
        atomic,
        |report, at, e| {
            // Ids are quoted in messages and kept in the clear: a name or a number shifted
            // into one is refused before it is either.
            for (field, v) in [
                ("id", &e.id),
                ("consent_id", &e.consent_id),
                ("incident_id", &e.incident_id),
            ] {
                if !crate::model::shape::is_id_shaped(v) {
                    report.add(
                        at,
                        Some(&e.id),
                        Some(field),
                        "invalid",
                        crate::model::shape::ID_SHAPE,
                    );
                }
            }
            if !gw.destinations.iter().any(|d| d.id == e.provider) {
                let reason = format!("is no destination in {}", gw.path.display());
                report.add(
                    at,
                    Some(&e.id),
                    Some("provider"),
                    "unknown_provider",
                    &reason,
                );
            }
            if !gw.roster.iter().any(|p| p.id == e.prss_id) {
                report.add(
                    at,
                    Some(&e.id),
                    Some("prss_id"),
                    "not_on_roster",
                    "is not on the PRSS roster",
                );
            }
        },
    );
    Ok(CheckedEngagements {
        report,
        good,
        atomic,
    })
}

impl CheckedEngagements {
    /// The problems found by the checks; `aborted` when nothing is to be imported.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Records the good engagements (unless aborted): joined to their incident, or pending.
    pub fn commit(self, store: &mut Store) -> Result<ImportReport, ImportError> {
        let CheckedEngagements {
            mut report,
            good,
            atomic,
        } = self;
        if report.aborted {
            return Ok(report);
        }
        let input: Vec<&Engagement> = good.iter().map(|(_, e)| e).collect();
        let outcomes = store.import_engagements(&input, atomic)?;
        for ((at, e), o) in good.iter().zip(&outcomes) {
            match o {
                Ok(i) => {
                    match i.imported {
                        Imported::Added => report.added += 1,
                        Imported::Present => report.present += 1,
                    }
                    if !i.joined {
                        report.pending.push(Pending {
                            line: at.line,
                            record: e.id.clone(),
                        });
                    }
                }
                Err(r) => {
                    report.rejected += 1;
                    report.refused(*at, &e.id, r);
                }
            }
        }
        Ok(report.aborted_if(atomic))
    }
}

/// Checks and imports engagements (see [`check_engagements`] and [`CheckedEngagements::commit`]).
pub fn import_engagements(
    gw: &Gateway,
    store: &mut Store,
    input: &Input,
    atomic: bool,
) -> Result<ImportReport, ImportError> {
    check_engagements(gw, input, atomic)?.commit(store)
}
