//! The follow-up of overdue referrals (docs/closed-loop.md, "Follow-up"). A referral still
//! `sent` after its destination's `accept_within` raises one alert: a warning naming the
//! referral and its destination, a counter, an entry on the status page, and, with
//! `[followup]`, a notice to the PRSS's organization's own webhook.
//!
//! **Once.** The alert is noted in the store (`referral_alerts`) in the same transaction as the
//! notice it queues and its audit entry, by an insert that does nothing for a referral already
//! noted: a restart, or a second process, raises nothing again.
//!
//! **The notice goes through the outbox**, queued under the id [`FOLLOWUP`] and sent by the
//! dispatcher like a webhook delivery, rather than POSTed from here. docs/delivery.md's
//! guarantees then hold for it without a second implementation: at least once across crashes
//! (the row is committed with the alert's note, and stays pending until a 2xx), the same
//! `Idempotency-Key` on every attempt (a receiver takes a repeat once), the same `v2` signature,
//! exponential backoff with jitter, the circuit breaker, one warning per outage, dead-lettering
//! with its reason, `outbox list|dead|replay`, the metrics and the status page. A second path
//! would have had to grow each of those, or do without. The notice discloses nothing of the
//! person (ids, a status and times), so the row carries no consent: the send-time consent check
//! has nothing to check, and a later revocation does not withdraw it.

use crate::config::Gateway;
pub use crate::config::followup::FOLLOWUP;
use crate::store::audit::Entry;
use crate::store::followup::Overdue;
use crate::store::outbox::{NewRow, SealKey};
use crate::store::{Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The notice's `event`.
pub const EVENT: &str = "referral.overdue";

/// What a notice's outbox row carries in place of an adapter and a profile: it is no referral
/// (the closed loop's lists read `consented-referral` rows only) and no incident's payload.
pub const ADAPTER: &str = "followup";
pub const PROFILE: &str = "followup";

/// The notice the PRSS's organization receives: the referral's id (the provider's, its outbox
/// row's idempotency key), its destination, its status and times. Nothing of the person.
pub fn payload(o: &Overdue) -> Value {
    json!({
        "event": EVENT,
        "referral_id": o.id,
        "destination": o.destination,
        "status": o.status.as_str(),
        "sent_at": o.sent_at,
        "overdue_since": o.overdue_since,
    })
}

/// The notice's field names, for its audit entry (names, never values).
const FIELDS: [&str; 6] = [
    "destination",
    "event",
    "overdue_since",
    "referral_id",
    "sent_at",
    "status",
];

/// Every overdue referral at `at`, over the destinations that set `accept_within`.
pub fn overdue(
    store: &Store,
    gw: &Gateway,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Overdue>, StoreError> {
    let mut all = Vec::new();
    for (dest, d) in &gw.deliveries {
        if let Some(within) = d.accept_within {
            all.extend(store.overdue_referrals(dest, within, at)?);
        }
    }
    Ok(all)
}

/// Raises the alert of each overdue referral not alerted yet: notes it, queues the notice when
/// `[followup]` is configured, writes the audit entry (`referral-overdue`), all in one
/// transaction per referral, then logs the warning. Returns the referrals alerted now (the
/// caller counts them). Without the outbox key the notice cannot be sealed: then nothing is
/// noted either, and the alert waits for a pass that has it.
pub fn alert_overdue(
    store: &mut Store,
    gw: &Gateway,
    seal: Option<&SealKey>,
    audit_key: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Overdue>, StoreError> {
    let notify = gw.deliveries.contains_key(FOLLOWUP);
    let mut alerted = Vec::new();
    for o in overdue(store, gw, at)?
        .into_iter()
        .filter(|o| o.alerted_at.is_none())
    {
        let seal = match (notify, seal) {
            (true, None) => {
                return Err(StoreError::Invalid(
                    "no outbox key: the follow-up notice cannot be queued".into(),
                ));
            }
            (_, s) => s,
        };
        let notice = payload(&o);
        let digest = crate::hex::encode(&Sha256::digest(serde_json::to_vec(&notice)?));
        let fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
        let new = store.write(|s| {
            if !s.note_alerted(&o)? {
                return Ok(false);
            }
            if let (true, Some(seal)) = (notify, seal) {
                s.enqueue(
                    seal,
                    &NewRow {
                        destination: FOLLOWUP,
                        adapter: ADAPTER,
                        incident_id: &o.id,
                        profile: PROFILE,
                        consent_id: None,
                        person_token: None,
                        fields: &fields,
                        payload: &notice,
                        payload_digest: &digest,
                    },
                )?;
            }
            s.audit_append(
                audit_key,
                &Entry {
                    destination: o.destination.clone(),
                    profile: "consented-referral".into(),
                    decision: "referral-overdue".into(),
                    reasons: vec![format!("not accepted by {}", o.overdue_since)],
                    person_token: None,
                    consent_id: None,
                    fields: if notify { fields.clone() } else { Vec::new() },
                    payload_digest: notify.then(|| digest.clone()),
                },
            )?;
            Ok(true)
        })?;
        if new {
            tracing::warn!(
                referral = %o.id,
                destination = %o.destination,
                overdue_since = %o.overdue_since,
                "referral not accepted in time: overdue"
            );
            alerted.push(o);
        }
    }
    Ok(alerted)
}

/// How often the service looks for overdue referrals: a quarter of the shortest
/// `accept_within`, between 250 ms and 10 s (the query reads every delivered referral still
/// `sent` of those destinations; a few seconds late is nothing against hours).
#[derive(Debug, Default)]
pub struct Clock {
    last: Option<std::time::Instant>,
}

impl Clock {
    /// True when a follow-up pass is due now (and then not again for the interval).
    pub fn due(&mut self, gw: &Gateway) -> bool {
        let Some(shortest) = gw.deliveries.values().filter_map(|d| d.accept_within).min() else {
            return false;
        };
        let every = (shortest / 4).clamp(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(10),
        );
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        self.last = Some(std::time::Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::lifecycle::Status;

    #[test]
    fn the_notice_carries_ids_status_and_times_only() {
        let o = Overdue {
            id: "k1".into(),
            destination: "prestera".into(),
            status: Status::Sent,
            updated_at: "t0".into(),
            created_at: "t".into(),
            sent_at: "t0".into(),
            overdue_since: "t1".into(),
            alerted_at: None,
        };
        let p = payload(&o);
        let mut keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, FIELDS);
        assert_eq!(p["status"], "sent");
        assert_eq!(p["referral_id"], "k1");
    }
}
