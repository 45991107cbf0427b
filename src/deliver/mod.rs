//! Delivery: from the outbox to the destinations. Each attempt re-checks the consent first (a
//! consent revoked or expired while the referral waited withdraws it and purges its payload),
//! classifies the outcome (done, retry later, dead-letter), backs off exponentially with jitter,
//! and writes the outcome to the audit trail. Updates to one incident reach a destination in
//! order; a stuck incident never blocks other incidents. Delivery never sees raw exports: only
//! the payloads the profiles produced.

mod alerts;
pub mod cancel;
pub mod fhir;
pub mod file;
pub mod followup;
pub mod hl7out;
pub mod kafka;
pub mod limits;
pub mod mllp;
pub mod mllp_client;
pub mod report;
mod send;
pub mod webhook;

use crate::config::gateway::Gateway;
use crate::policy::consent::{self, Recipient};
use crate::progress::Stage::Delivering;
use crate::store::outbox::{Row, SealKey};
use crate::store::{Store, StoreError};
use chrono::{NaiveDate, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

pub use alerts::Alerts;
use alerts::Trouble;
use send::{Books, Sink, send};

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub retryable: bool,
    pub message: String,
    /// How long the receiver asked us to wait (HTTP `Retry-After`), in seconds: the next
    /// attempt waits at least that long.
    pub retry_after: Option<u64>,
    /// The payload may have reached the receiver although the attempt failed: it was written
    /// and no answer settled it (a timeout or a lost connection after the request or message
    /// went out, an HTTP 5xx, no ACK). A referral withdrawn after such an attempt is owed a
    /// cancellation as a delivered one is (`store::cancellations`): the receiver may hold it.
    /// False where the receiver never got it or said it did not take it (no connection, a
    /// TLS failure, a 4xx, AR or AE).
    pub may_have_arrived: bool,
}

/// Counts of one dispatch pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchStats {
    pub delivered: BTreeMap<String, u64>,
    pub retried: BTreeMap<String, u64>,
    pub dead: BTreeMap<String, u64>,
    pub withdrawn: BTreeMap<String, u64>,
}

impl DispatchStats {
    /// One log line for a pass that did anything: its outcomes, summed over destinations.
    pub fn log(&self) {
        let n = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
        if n(&self.delivered) + n(&self.retried) + n(&self.dead) + n(&self.withdrawn) > 0 {
            tracing::info!(
                delivered = n(&self.delivered),
                retried = n(&self.retried),
                dead = n(&self.dead),
                withdrawn = n(&self.withdrawn),
                "dispatch pass"
            );
        }
    }
}

/// What lives from one dispatch pass to the next: the destinations' health and their open
/// clients (HTTPS connection pools, Kafka producers), built on first use.
#[derive(Default)]
pub struct Dispatcher {
    pub alerts: Alerts,
    sinks: BTreeMap<String, Sink>,
    breakers: BTreeMap<String, limits::Breaker>,
    paces: BTreeMap<String, limits::Pace>,
    /// File destinations whose folder was cleared of unfinished files in this run.
    swept: std::collections::BTreeSet<String>,
    /// Sees each pass's attempts ([`crate::progress::Stage::Delivering`]): the total due when
    /// the pass begins, then one unit per outcome recorded.
    pub progress: Option<Box<dyn crate::progress::Observer>>,
}

/// The delay before attempt `attempts + 1`: exponential from `initial`, capped, with ±20% jitter.
pub fn backoff_ms(initial: u64, max: u64, attempts: u32) -> u64 {
    let base = initial.saturating_mul(1u64 << attempts.min(30)).min(max);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = (u16::from_le_bytes(b) as u64 % 41) as i64 - 20; // -20..=20 %
    (base as i64 + base as i64 * jitter / 100).max(0) as u64
}

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One pass over every delivering destination.
pub fn dispatch(
    store: &mut Store,
    gw: &Gateway,
    seal: &SealKey,
    audit_key: &[u8],
    today: NaiveDate,
    state: &mut Dispatcher,
) -> Result<DispatchStats, StoreError> {
    let mut stats = DispatchStats::default();
    if let Some(p) = state.progress.as_mut() {
        let due = store
            .outbox_counts()?
            .iter()
            .filter(|(d, status, _)| status == "pending" && gw.deliveries.contains_key(d))
            .map(|(_, _, n)| n)
            .sum();
        p.begin(Delivering, due);
    }
    let stats = dispatch_all(store, gw, seal, audit_key, today, state, &mut stats).map(|()| stats);
    if let Some(p) = state.progress.as_mut() {
        p.end(Delivering);
    }
    stats
}

/// [`dispatch`]'s work, destination by destination.
fn dispatch_all(
    store: &mut Store,
    gw: &Gateway,
    seal: &SealKey,
    audit_key: &[u8],
    today: NaiveDate,
    state: &mut Dispatcher,
    stats: &mut DispatchStats,
) -> Result<(), StoreError> {
    for (id, delivery) in &gw.deliveries {
        // The follow-up webhook's notices (`[followup]`) are queued under an id of their own,
        // no destination's: they carry no consent and nothing of a person (followup.rs).
        let dest = gw.destinations.iter().find(|d| &d.id == id);
        if dest.is_none() && id != followup::FOLLOWUP {
            continue;
        }
        if let crate::config::gateway::DeliveryKind::File { folder, .. } = &delivery.kind
            && state.swept.insert(id.clone())
        {
            match file::remove_unfinished(folder, id) {
                Ok(0) => {}
                Ok(n) => tracing::warn!(destination = %id, files = n,
                    "removed unfinished delivery files a stopped run left; their payloads go out again"),
                Err(e) => tracing::warn!(destination = %id, error = %e.kind(),
                    "cannot clear unfinished delivery files; trying again next run"),
            }
        }
        let recipient = dest.map(|dest| Recipient {
            id: &dest.id,
            designations: &dest.designations,
            purpose: &dest.purpose,
        });
        if !state
            .breakers
            .get(id)
            .is_none_or(|b| b.allows(std::time::Instant::now()))
        {
            continue; // open: cooling down after a failed pass
        }
        if let Some(r) = delivery.rate_per_second {
            state
                .paces
                .entry(id.clone())
                .or_insert_with(|| limits::Pace::new(r));
        }
        // What the warnings call what this destination is sent.
        let what = match dest.map(|d| d.profile.kind) {
            Some(crate::policy::profile::ProfileKind::ConsentedReferral) => "referrals",
            Some(_) => "payloads",
            None => "notices",
        };
        let mut pass_failed = false;
        loop {
            let now = Utc::now();
            let rows = store.due(id, &stamp(now), 500)?;
            if rows.is_empty() {
                break;
            }
            let mut batch: Vec<(Row, Value)> = Vec::new();
            for row in rows {
                // Consent at send time, not only at decision time. Not for a cancellation: it
                // discloses nothing new, and a revocation is what it may announce.
                if let Some(cid) = row.consent_id.as_ref().filter(|_| row.cancels.is_none()) {
                    let reasons = match (store.consent(cid)?, &recipient) {
                        (Some(rec), Some(recipient)) => consent::check(&rec, recipient, today),
                        _ => vec![format!(
                            "consent_unknown: consent {cid} is not in the registry"
                        )],
                    };
                    if !reasons.is_empty() {
                        store.withdraw(row.id, &reasons.join("; "))?;
                        audit(store, audit_key, &row, "withdrawn", reasons)?;
                        *stats.withdrawn.entry(id.clone()).or_default() += 1;
                        if let Some(p) = state.progress.as_mut() {
                            p.advance(Delivering, 1);
                        }
                        continue;
                    }
                }
                match store.payload(seal, row.id)? {
                    Some(p) => batch.push((row, p)),
                    None => {
                        store.withdraw(row.id, "payload purged before delivery")?;
                        *stats.withdrawn.entry(id.clone()).or_default() += 1;
                        if let Some(p) = state.progress.as_mut() {
                            p.advance(Delivering, 1);
                        }
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            // Each outcome is recorded as it comes, in group commits: a crash between a send
            // and its bookkeeping repeats at most `send::WINDOW` payloads (or a batched
            // webhook's requests in flight), under the same idempotency keys.
            let mut failed = false;
            // The rows whose outcome was recorded: the others were never handed to a sender.
            let mut recorded: std::collections::HashSet<i64> = Default::default();
            let Dispatcher {
                alerts,
                sinks,
                paces,
                progress,
                ..
            } = state;
            let pace = paces.get(id);
            let mut record = |store: &mut Store, row: &Row, outcome: Result<(), SendError>| {
                recorded.insert(row.id);
                if let Some(p) = progress.as_mut() {
                    p.advance(Delivering, 1);
                }
                match outcome {
                    Ok(()) => {
                        alerts.ok(id);
                        store.mark_delivered(row.id, delivery.retention_hours > 0)?;
                        audit(store, audit_key, row, "delivered", Vec::new())?;
                        *stats.delivered.entry(id.clone()).or_default() += 1;
                    }
                    Err(e) => {
                        failed |= e.retryable;
                        if e.retryable {
                            alerts.raise(id, what, Trouble::Queuing, &e.message);
                        }
                        let attempts = row.attempts as u32 + 1;
                        let age_h = chrono::DateTime::parse_from_rfc3339(&row.created_at)
                            .map(|c| (now - c.with_timezone(&Utc)).num_hours())
                            .unwrap_or(0);
                        let give_up = !e.retryable
                            || attempts >= delivery.retry.max_attempts
                            || age_h >= delivery.retry.max_age_hours as i64;
                        if give_up {
                            store.mark_failed(row.id, &e.message, None, e.may_have_arrived)?;
                            alerts.raise(id, what, Trouble::DeadLettering, &e.message);
                            audit(store, audit_key, row, "dead-lettered", vec![e.message])?;
                            *stats.dead.entry(id.clone()).or_default() += 1;
                            tracing::debug!(destination = %id, outbox = row.id, attempts, "referral dead-lettered");
                        } else {
                            let asked = e.retry_after.map_or(0, |s| s.min(86_400) * 1000);
                            let wait = backoff_ms(
                                delivery.retry.initial_backoff_ms,
                                delivery.retry.max_backoff_ms,
                                attempts - 1,
                            )
                            .max(asked);
                            let next = stamp(now + chrono::Duration::milliseconds(wait as i64));
                            store.mark_failed(
                                row.id,
                                &e.message,
                                Some(&next),
                                e.may_have_arrived,
                            )?;
                            *stats.retried.entry(id.clone()).or_default() += 1;
                        }
                    }
                }
                Ok(())
            };
            // Referrals about to go out are marked first: a run stopped before their outcome is
            // recorded leaves them marked, and a withdrawal then owes a cancellation. The whole
            // batch is marked in one commit, so a stop part-way also marks those not yet sent:
            // they get a cancellation they did not need, never the reverse. Those the senders
            // never took (the destination failed on an earlier row) are unmarked once the
            // sending is over; after a store error they stay marked, as some may have gone out
            // with their outcome unrecorded.
            let referrals: Vec<i64> = batch
                .iter()
                .filter(|(r, _)| r.consent_id.is_some() && r.cancels.is_none())
                .map(|(r, _)| r.id)
                .collect();
            store.mark_sending(&referrals)?;
            let mut books = Books::new(store, &mut record);
            send(delivery, id, &batch, sinks, pace, &mut books)?;
            books.commit()?;
            drop(books);
            let untried: Vec<i64> = referrals
                .into_iter()
                .filter(|r| !recorded.contains(r))
                .collect();
            store.unmark_sending(&untried)?;
            if failed {
                pass_failed = true;
                break; // this destination is failing: the others go on
            }
        }
        let breaker = state.breakers.entry(id.clone()).or_default();
        if pass_failed {
            breaker.failed(std::time::Instant::now());
        } else {
            breaker.succeeded();
        }
    }
    Ok(())
}

fn audit(
    store: &mut Store,
    key: &[u8],
    row: &Row,
    what: &str,
    reasons: Vec<String>,
) -> Result<(), StoreError> {
    store.audit_append(key, &row.audit_entry(what, reasons))?;
    Ok(())
}
