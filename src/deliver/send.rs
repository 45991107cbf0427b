//! Sending a batch of due rows to one destination: its cached clients, concurrent senders beside
//! the bookkeeping, and the group commits of their outcomes.

use super::{SendError, fhir, file, hl7out, kafka, limits, webhook};
use crate::config::gateway::{Delivery, DeliveryKind};
use crate::store::outbox::Row;
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::collections::BTreeMap;

/// A destination's open client, kept from one pass to the next.
pub(super) enum Sink {
    Http(webhook::Webhook),
    Kafka(kafka::KafkaSink),
    /// One connection per concurrent sender.
    Mllp(Vec<hl7out::MllpClient>),
}

/// Where each outcome goes as soon as it is known; an error stops the sending.
pub(super) type Record<'a> = dyn FnMut(&Row, Result<(), SendError>) -> Result<(), StoreError> + 'a;

/// Writes of one dispatch round in group commits (at most [`Group::ROWS`] outcomes or
/// [`Group::MS`] milliseconds per commit), instead of one synced commit per outcome.
pub(super) struct Group<'s> {
    store: &'s mut Store,
    open: Option<std::time::Instant>,
    writes: usize,
}

impl<'s> Group<'s> {
    const ROWS: usize = 64;
    const MS: u128 = 50;

    pub(super) fn new(store: &'s mut Store) -> Self {
        Group {
            store,
            open: None,
            writes: 0,
        }
    }

    pub(super) fn store(&mut self) -> Result<&mut Store, StoreError> {
        if self.open.is_none() {
            self.store.begin()?;
            self.open = Some(std::time::Instant::now());
        }
        Ok(self.store)
    }

    pub(super) fn wrote(&mut self) -> Result<(), StoreError> {
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

    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
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
/// the next send. Rows of one batch are of different incidents (the outbox hands out one row per
/// incident at a time), so sending them concurrently keeps each incident's order. After a
/// failure that may pass (the destination is down), the workers stop and the rest waits for the
/// next pass instead of timing out one by one.
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
            retry_after: None,
        })?;
        sinks.insert(dest.to_string(), sink);
    }
    sinks.get_mut(dest).ok_or_else(|| SendError {
        retryable: true,
        message: "no client".into(),
        retry_after: None,
    })
}

/// Sends a batch, recording each row's outcome; a row not attempted (the destination failed on
/// an earlier row) gets none and waits for the next pass.
pub(super) fn send(
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
            owner_only,
        } => {
            for chunk in batch.chunks(*max_records) {
                let r = file::write_batch(folder, dest, *format, *owner_only, chunk).map(|_| ());
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
