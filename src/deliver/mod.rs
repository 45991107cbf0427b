//! Delivery: from the outbox to the destinations. Each attempt re-checks the consent first (a
//! consent revoked or expired while the referral waited withdraws it and purges its payload),
//! classifies the outcome (done, retry later, dead-letter), backs off exponentially with jitter,
//! and writes the outcome to the audit trail. Updates to one incident reach a destination in
//! order; a stuck incident never blocks other incidents. Delivery never sees raw exports: only
//! the payloads the profiles produced.

pub mod fhir;
pub mod file;
pub mod hl7out;
pub mod kafka;
pub mod limits;
pub mod mllp;
pub mod webhook;

use crate::config::gateway::{Delivery, DeliveryKind, Gateway};
use crate::policy::consent::{self, Recipient};
use crate::store::outbox::{Row, SealKey};
use crate::store::{Store, StoreError};
use chrono::{NaiveDate, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub retryable: bool,
    pub message: String,
}

/// Counts of one dispatch pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchStats {
    pub delivered: BTreeMap<String, u64>,
    pub retried: BTreeMap<String, u64>,
    pub dead: BTreeMap<String, u64>,
    pub withdrawn: BTreeMap<String, u64>,
}

/// What lives from one dispatch pass to the next: the destinations' health and their open
/// clients (HTTPS connection pools, Kafka producers), built on first use.
#[derive(Default)]
pub struct Dispatcher {
    pub alerts: Alerts,
    sinks: BTreeMap<String, Sink>,
    breakers: BTreeMap<String, limits::Breaker>,
    paces: BTreeMap<String, limits::Pace>,
}

enum Sink {
    Http(webhook::Webhook),
    Kafka(kafka::KafkaSink),
    /// One connection per concurrent sender.
    Mllp(Vec<hl7out::MllpClient>),
}

/// What is wrong with a destination, for [`Alerts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Trouble {
    /// Failing with errors that may pass: referrals wait for their retry.
    Queuing,
    /// Refusing referrals for good: they go to the dead-letter list.
    DeadLettering,
}

/// Per-destination health, so that a destination that starts queuing or dead-lettering logs one
/// warning when it starts, and one when it recovers (its next delivery), not one per message.
#[derive(Debug, Default)]
pub struct Alerts {
    troubles: BTreeMap<String, std::collections::BTreeSet<Trouble>>,
}

impl Alerts {
    fn raise(&mut self, dest: &str, trouble: Trouble, why: &str) {
        if self
            .troubles
            .entry(dest.to_owned())
            .or_default()
            .insert(trouble)
        {
            match trouble {
                Trouble::Queuing => tracing::warn!(
                    destination = dest,
                    error = why,
                    "destination is failing; referrals are queuing"
                ),
                Trouble::DeadLettering => tracing::warn!(
                    destination = dest,
                    error = why,
                    "destination refuses referrals; they are dead-lettered (see `outbox dead`)"
                ),
            }
        }
    }

    fn ok(&mut self, dest: &str) {
        if self.troubles.remove(dest).is_some_and(|t| !t.is_empty()) {
            tracing::warn!(
                destination = dest,
                "destination recovered; the queue drains"
            );
        }
    }
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
    for (id, delivery) in &gw.deliveries {
        let Some(dest) = gw.destinations.iter().find(|d| &d.id == id) else {
            continue;
        };
        let recipient = Recipient {
            id: &dest.id,
            designations: &dest.designations,
            purpose: &dest.purpose,
        };
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
        let mut pass_failed = false;
        loop {
            let now = Utc::now();
            let rows = store.due(id, &stamp(now), 500)?;
            if rows.is_empty() {
                break;
            }
            let mut batch: Vec<(Row, Value)> = Vec::new();
            for row in rows {
                // Consent at send time, not only at decision time.
                if let Some(cid) = &row.consent_id {
                    let reasons = match store.consent(cid)? {
                        Some(rec) => consent::check(&rec, &recipient, today),
                        None => vec![format!(
                            "consent_unknown: consent {cid} is not in the registry"
                        )],
                    };
                    if !reasons.is_empty() {
                        store.withdraw(row.id, &reasons.join("; "))?;
                        audit(store, audit_key, &row, "withdrawn", reasons)?;
                        *stats.withdrawn.entry(id.clone()).or_default() += 1;
                        continue;
                    }
                }
                match store.payload(seal, row.id)? {
                    Some(p) => batch.push((row, p)),
                    None => {
                        store.withdraw(row.id, "payload purged before delivery")?;
                        *stats.withdrawn.entry(id.clone()).or_default() += 1;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            // Each outcome is recorded as it comes, in group commits: a crash between a send
            // and its bookkeeping repeats at most one group (same idempotency keys).
            let mut failed = false;
            let mut group = Group::new(store);
            let Dispatcher {
                alerts,
                sinks,
                paces,
                ..
            } = state;
            let pace = paces.get(id);
            send(delivery, id, &batch, sinks, pace, &mut |row, outcome| {
                let store = group.store()?;
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
                            alerts.raise(id, Trouble::Queuing, &e.message);
                        }
                        let attempts = row.attempts as u32 + 1;
                        let age_h = chrono::DateTime::parse_from_rfc3339(&row.created_at)
                            .map(|c| (now - c.with_timezone(&Utc)).num_hours())
                            .unwrap_or(0);
                        let give_up = !e.retryable
                            || attempts >= delivery.retry.max_attempts
                            || age_h >= delivery.retry.max_age_hours as i64;
                        if give_up {
                            store.mark_failed(row.id, &e.message, None)?;
                            alerts.raise(id, Trouble::DeadLettering, &e.message);
                            audit(store, audit_key, row, "dead-lettered", vec![e.message])?;
                            *stats.dead.entry(id.clone()).or_default() += 1;
                            tracing::debug!(destination = %id, outbox = row.id, attempts, "referral dead-lettered");
                        } else {
                            let wait = backoff_ms(
                                delivery.retry.initial_backoff_ms,
                                delivery.retry.max_backoff_ms,
                                attempts - 1,
                            );
                            let next = stamp(now + chrono::Duration::milliseconds(wait as i64));
                            store.mark_failed(row.id, &e.message, Some(&next))?;
                            *stats.retried.entry(id.clone()).or_default() += 1;
                        }
                    }
                }
                group.wrote()
            })?;
            group.commit()?;
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
    Ok(stats)
}

/// Where each outcome goes as soon as it is known; an error stops the sending.
type Record<'a> = dyn FnMut(&Row, Result<(), SendError>) -> Result<(), StoreError> + 'a;

/// Writes of one dispatch round in group commits (at most [`Group::ROWS`] outcomes or
/// [`Group::MS`] milliseconds per commit), instead of one synced commit per outcome.
struct Group<'s> {
    store: &'s mut Store,
    open: Option<std::time::Instant>,
    writes: usize,
}

impl<'s> Group<'s> {
    const ROWS: usize = 64;
    const MS: u128 = 50;

    fn new(store: &'s mut Store) -> Self {
        Group {
            store,
            open: None,
            writes: 0,
        }
    }

    fn store(&mut self) -> Result<&mut Store, StoreError> {
        if self.open.is_none() {
            self.store.begin()?;
            self.open = Some(std::time::Instant::now());
        }
        Ok(self.store)
    }

    fn wrote(&mut self) -> Result<(), StoreError> {
        self.writes += 1;
        if self.writes >= Self::ROWS
            || self
                .open
                .is_some_and(|t| t.elapsed().as_millis() >= Self::MS)
        {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.open.take().is_some() {
            self.store.commit()?;
        }
        self.writes = 0;
        Ok(())
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        // An error left the group open: what it wrote is kept (each outcome is true).
        let _ = self.commit();
    }
}

/// Sends row by row over `clients`, recording each outcome at once (see [`concurrently`]).
fn one_by_one<C: Send>(
    batch: &[(Row, Value)],
    clients: &mut [C],
    pace: Option<&limits::Pace>,
    record: &mut Record<'_>,
    send: impl Fn(&mut C, &Row, &Value) -> Result<(), SendError> + Sync,
) -> Result<(), StoreError> {
    concurrently(
        batch,
        clients,
        pace,
        |c, (row, payload)| send(c, row, payload),
        |(row, _), r| record(row, r),
    )
}

/// Sends `units` (rows, or chunks of rows) over `clients`, one worker thread per client, and
/// hands each outcome to `done` on this thread as it comes: the bookkeeping of one send overlaps
/// the next send. Rows of one
/// batch are of different incidents (the outbox hands out one row per incident at a time), so
/// sending them concurrently keeps each incident's order. After a failure that may pass (the
/// destination is down), the workers stop and the rest waits for the next pass instead of
/// timing out one by one.
fn concurrently<U: Sync, C: Send>(
    units: &[U],
    clients: &mut [C],
    pace: Option<&limits::Pace>,
    send: impl Fn(&mut C, &U) -> Result<(), SendError> + Sync,
    mut done: impl FnMut(&U, Result<(), SendError>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    // One unit (or none): no thread to start.
    match (clients.first_mut(), units) {
        (_, []) | (None, _) => return Ok(()),
        (Some(client), [u]) => {
            if let Some(p) = pace {
                p.wait();
            }
            let r = send(client, u);
            return done(u, r);
        }
        _ => {}
    }
    let workers = clients.len();
    let down = AtomicBool::new(false);
    // Bounded, so that the senders run at most a few outcomes ahead of their bookkeeping.
    let (tx, rx) = std::sync::mpsc::sync_channel(16 * workers);
    std::thread::scope(|scope| {
        for (w, client) in clients.iter_mut().enumerate() {
            let (tx, down, send) = (tx.clone(), &down, &send);
            scope.spawn(move || {
                for (i, u) in units.iter().enumerate().skip(w).step_by(workers) {
                    if down.load(SeqCst) {
                        break;
                    }
                    if let Some(p) = pace {
                        p.wait();
                    }
                    let r = send(client, u);
                    if matches!(&r, Err(e) if e.retryable) {
                        down.store(true, SeqCst);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        for (i, r) in rx {
            if first_error.is_none()
                && let Err(e) = done(&units[i], r)
            {
                down.store(true, SeqCst);
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// The same outcome for several rows (a file, a batched request).
fn all_rows(
    rows: &[(Row, Value)],
    r: Result<(), SendError>,
    record: &mut Record<'_>,
) -> Result<(), StoreError> {
    rows.iter().try_for_each(|(row, _)| record(row, r.clone()))
}

/// The destination's open client, built on first use; a client that cannot be built (a missing
/// secret, a bad CA file) is not kept, so that a fixed file is picked up at the next pass.
fn client<'a>(
    sinks: &'a mut BTreeMap<String, Sink>,
    dest: &str,
    build: impl FnOnce() -> Result<Sink, String>,
) -> Result<&'a mut Sink, SendError> {
    if !sinks.contains_key(dest) {
        let sink = build().map_err(|message| SendError {
            retryable: true,
            message,
        })?;
        sinks.insert(dest.to_string(), sink);
    }
    sinks.get_mut(dest).ok_or_else(|| SendError {
        retryable: true,
        message: "no client".into(),
    })
}

/// Sends a batch, recording each row's outcome; a row not attempted (the destination failed on
/// an earlier row) gets none and waits for the next pass.
fn send(
    delivery: &Delivery,
    dest: &str,
    batch: &[(Row, Value)],
    sinks: &mut BTreeMap<String, Sink>,
    pace: Option<&limits::Pace>,
    record: &mut Record<'_>,
) -> Result<(), StoreError> {
    match &delivery.kind {
        DeliveryKind::File {
            folder,
            format,
            max_records,
        } => {
            for chunk in batch.chunks(*max_records) {
                let r = file::write_batch(folder, dest, *format, chunk).map(|_| ());
                let down = r.is_err();
                all_rows(chunk, r, record)?;
                if down {
                    break;
                }
            }
            Ok(())
        }
        DeliveryKind::Hl7 {
            address,
            receiver,
            timeout_ms,
            tls,
            concurrency,
        } => {
            let built = client(sinks, dest, || {
                let tls = match tls {
                    None => None,
                    Some(t) => Some(hl7out::MllpTls::new(
                        &t.server_name,
                        t.ca_file.as_deref(),
                        t.identity_file.as_deref(),
                    )?),
                };
                let timeout = std::time::Duration::from_millis(*timeout_ms);
                Ok(Sink::Mllp(
                    (0..*concurrency)
                        .map(|_| hl7out::MllpClient::new(address, tls.clone(), timeout))
                        .collect(),
                ))
            });
            let clients = match built {
                Ok(Sink::Mllp(c)) => c,
                Ok(_) => return Ok(()),
                Err(e) => return all_rows(batch, Err(e), record),
            };
            one_by_one(batch, clients, pace, record, |client, row, payload| {
                let now = chrono::Utc::now().fixed_offset();
                let msg = hl7out::ref_i12(payload, &row.idempotency_key, receiver, now);
                client.send(&msg, &hl7out::control_id(&row.idempotency_key))
            })
        }
        DeliveryKind::Kafka {
            brokers,
            topic,
            timeout_ms,
            properties,
        } => {
            let built = client(sinks, dest, || {
                let timeout = std::time::Duration::from_millis(*timeout_ms);
                kafka::KafkaSink::new(brokers, topic, timeout, properties).map(Sink::Kafka)
            });
            let k = match built {
                Ok(Sink::Kafka(k)) => k,
                Ok(_) => return Ok(()),
                Err(e) => return all_rows(batch, Err(e), record),
            };
            for ((row, _), r) in batch.iter().zip(k.send(batch)) {
                record(row, r)?;
            }
            Ok(())
        }
        DeliveryKind::Webhook { http, fhir } => {
            let hook = match client(sinks, dest, || {
                webhook::Webhook::from_delivery(http).map(Sink::Http)
            }) {
                Ok(Sink::Http(h)) => h,
                Ok(_) => return Ok(()),
                Err(e) => return all_rows(batch, Err(e), record),
            };
            // The client's connection pool is shared by the concurrent senders.
            let mut senders = vec![&*hook; http.concurrency];
            if http.batch_max > 1 && !*fhir {
                let chunks: Vec<&[(Row, Value)]> = batch.chunks(http.batch_max).collect();
                return concurrently(
                    &chunks,
                    &mut senders,
                    pace,
                    |hook, chunk| hook.send_batch(chunk),
                    |chunk, r| all_rows(chunk, r, record),
                );
            }
            one_by_one(batch, &mut senders, pace, record, |hook, row, payload| {
                let (body, content_type) = if *fhir {
                    let b = fhir::bundle(payload, &row.idempotency_key);
                    (
                        serde_json::to_vec(&b).unwrap_or_default(),
                        "application/fhir+json",
                    )
                } else {
                    (
                        serde_json::to_vec(payload).unwrap_or_default(),
                        "application/json",
                    )
                };
                hook.send(&row.idempotency_key, &body, content_type)
            })
        }
    }
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
