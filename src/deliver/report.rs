//! The monthly report out: an `aggregate` destination is owed the previous month's report from
//! the first day of a month. It is queued once per month and destination, with its audit entry
//! in the same transaction, and goes out through the destination's delivery like any payload
//! (file, webhook, Kafka), retried and dead-lettered the same way. The payload is the report's
//! JSON: suppressed counts, nothing else.

use crate::config::Gateway;
use crate::policy::profile::ProfileKind;
use crate::report::Month;
use crate::store::audit::Entry;
use crate::store::outbox::{NewRow, SealKey};
use crate::store::{Store, StoreError};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};

/// The outbox rows of reports carry this in place of an adapter (the month in place of an
/// incident id).
pub const ADAPTER: &str = "report";

/// The month whose report is owed on `today`: the one before.
pub fn due_month(today: NaiveDate) -> Month {
    Month::of(today).minus(1)
}

/// Queues the owed report for every aggregate destination that delivers and has not had it.
/// Returns how many were queued.
pub fn queue_due(
    store: &mut Store,
    gw: &Gateway,
    seal: &SealKey,
    audit_key: &[u8],
    today: NaiveDate,
) -> Result<usize, StoreError> {
    let month = due_month(today);
    let m = month.to_string();
    let mut queued = 0;
    for dest in gw
        .destinations
        .iter()
        .filter(|d| d.profile.kind == ProfileKind::Aggregate && gw.deliveries.contains_key(&d.id))
    {
        if store.report_queued(&dest.id, &m)? {
            continue;
        }
        let report = store.report(month, gw.report_min_cell)?;
        let payload = serde_json::to_value(&report)?;
        let digest = crate::hex::encode(&Sha256::digest(serde_json::to_vec(&payload)?));
        let fields: Vec<String> = report
            .tables
            .iter()
            .map(|t| format!("report.{}", t.id))
            .collect();
        store.write(|s| {
            s.enqueue(
                seal,
                &NewRow {
                    destination: &dest.id,
                    adapter: ADAPTER,
                    incident_id: &m,
                    profile: ProfileKind::Aggregate.as_str(),
                    consent_id: None,
                    person_token: None,
                    fields: &fields,
                    payload: &payload,
                    payload_digest: &digest,
                },
            )?;
            s.audit_append(
                audit_key,
                &Entry {
                    destination: dest.id.clone(),
                    profile: ProfileKind::Aggregate.as_str().into(),
                    decision: "deliver".into(),
                    reasons: vec![format!(
                        "monthly_report: {m}, counts 1-{} suppressed",
                        gw.report_min_cell
                    )],
                    person_token: None,
                    consent_id: None,
                    fields: fields.clone(),
                    payload_digest: Some(digest.clone()),
                },
            )
        })?;
        tracing::info!(destination = %dest.id, month = %m, "monthly report queued");
        queued += 1;
    }
    Ok(queued)
}
