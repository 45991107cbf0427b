//! Sending a batch of due rows to one destination: its cached clients, concurrent senders beside
//! the bookkeeping, and the group commits of their outcomes.
//!
//! The crash bound: a payload sent and not yet committed as sent is sent again after a crash.
//! Senders take room in a [`Window`] counted in payloads before each send, and get it back only
//! when the outcome is committed, so that at most [`WINDOW`] payloads (or, for a batched
//! webhook, `concurrency × batch_max` if that is more) are ever sent and not yet committed.

use super::{SendError, cancel, fhir, file, hl7out, kafka, limits, mllp_client, webhook};
use crate::config::gateway::{Delivery, DeliveryKind};
use crate::store::outbox::Row;
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

/// A destination's open client, kept from one pass to the next.
pub(super) enum Sink {
    Http(webhook::Webhook),
    Kafka(kafka::KafkaSink),
    /// One connection per concurrent sender.
    Mllp(Vec<mllp_client::MllpClient>),
}

/// Writes an outcome to the store (within the open group commit); an error stops the sending.
pub(super) type Record<'a> =
    dyn FnMut(&mut Store, &Row, Result<(), SendError>) -> Result<(), StoreError> + 'a;

/// At most this many payloads are sent and not yet committed (unless one request carries more).
pub(super) const WINDOW: usize = 64;

/// The outcomes of one dispatch round on their way to the store: each written by `record` as it
/// comes, in group commits.
pub(super) struct Books<'s, 'r, 'c> {
    group: Group<'s>,
    record: &'r mut Record<'c>,
}

impl<'s, 'r, 'c> Books<'s, 'r, 'c> {
    pub(super) fn new(store: &'s mut Store, record: &'r mut Record<'c>) -> Self {
        Books {
            group: Group::new(store),
            record,
        }
    }

    /// Writes one outcome; true when it (and every one before it) is committed.
    fn note(&mut self, row: &Row, r: Result<(), SendError>) -> Result<bool, StoreError> {
        let store = self.group.store()?;
        (self.record)(store, row, r)?;
        self.group.wrote()
    }

    /// The same outcome for several rows (a file, a batched request), committed in one
    /// transaction: the sending is over, so no sender waits for room in the window, and a file
    /// of 500 rows took 16 synced commits when its rows went through [`Books::note`]'s groups.
    fn all_rows(
        &mut self,
        rows: &[(Row, Value)],
        r: Result<(), SendError>,
    ) -> Result<(), StoreError> {
        let store = self.group.store()?;
        for (row, _) in rows {
            (self.record)(store, row, r.clone())?;
        }
        self.commit()
    }

    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        self.group.commit()
    }
}

/// Writes of one dispatch round in group commits (at most [`Group::ROWS`] outcomes or
/// [`Group::MS`] milliseconds per commit), instead of one synced commit per outcome.
struct Group<'s> {
    store: &'s mut Store,
    open: Option<std::time::Instant>,
    writes: usize,
}

impl<'s> Group<'s> {
    /// Half the [`WINDOW`]: senders go on with the other half while a group commits.
    const ROWS: usize = WINDOW / 2;
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

    /// Counts a write; true when it committed the group.
    fn wrote(&mut self) -> Result<bool, StoreError> {
        self.writes += 1;
        if self.writes >= Self::ROWS
            || self
                .open
                .is_some_and(|t| t.elapsed().as_millis() >= Self::MS)
        {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
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

/// Room for payloads sent and not yet committed, shared by the senders: a sender takes room
/// before it sends, the bookkeeping gives it back once the outcomes are committed.
struct Window {
    state: Mutex<Room>,
    changed: Condvar,
    max: usize,
}

#[derive(Default)]
struct Room {
    used: usize,
    /// Senders waiting for room: the bookkeeping commits rather than let them wait.
    waiting: usize,
}

impl Window {
    fn new(max: usize) -> Window {
        Window {
            state: Mutex::new(Room::default()),
            changed: Condvar::new(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Room> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes room for `n` payloads (a unit larger than the window goes alone); `nudge` is called
    /// once, outside the lock, when the sender has to wait. False when `stop` was set meanwhile.
    fn take(&self, n: usize, stop: &AtomicBool, nudge: impl FnOnce()) -> bool {
        let fits = |r: &Room| r.used == 0 || r.used + n <= self.max;
        let mut room = self.lock();
        if !fits(&room) {
            room.waiting += 1;
            drop(room);
            nudge();
            room = self.lock();
            while !fits(&room) && !stop.load(SeqCst) {
                room = self
                    .changed
                    .wait_timeout(room, std::time::Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            room.waiting -= 1;
        }
        if stop.load(SeqCst) {
            return false;
        }
        room.used += n;
        true
    }

    fn give(&self, n: usize) {
        let mut room = self.lock();
        room.used = room.used.saturating_sub(n);
        drop(room);
        self.changed.notify_all();
    }

    fn waiting(&self) -> bool {
        self.lock().waiting > 0
    }

    fn wake(&self) {
        self.changed.notify_all();
    }
}

/// What a sender tells the bookkeeping.
enum Note {
    /// The outcome of unit `i`.
    Sent(usize, Result<(), SendError>),
    /// A sender waits for room: commit what was recorded.
    Waiting,
}

/// Sends row by row over `clients` (see [`concurrently`]).
fn one_by_one<C: Send>(
    batch: &[(Row, Value)],
    clients: &mut [C],
    pace: Option<&limits::Pace>,
    books: &mut Books<'_, '_, '_>,
    send: impl Fn(&mut C, &Row, &Value) -> Result<(), SendError> + Sync,
) -> Result<(), StoreError> {
    concurrently(
        batch,
        std::slice::from_ref,
        WINDOW,
        clients,
        pace,
        books,
        |c, (row, payload)| send(c, row, payload),
    )
}

/// Sends `units` (rows, or chunks of rows: `rows_of`) over `clients`, one worker thread per
/// client, and records each outcome on this thread as it comes: the bookkeeping of one send
/// overlaps the next send, within a [`Window`] of `window` payloads sent and not yet committed
/// (the crash bound). Rows of one batch are of different incidents (the outbox hands out one row
/// per incident at a time), so sending them concurrently keeps each incident's order. After a
/// failure that may pass (the destination is down), the workers stop and the rest waits for the
/// next pass instead of timing out one by one.
fn concurrently<U: Sync, C: Send>(
    units: &[U],
    rows_of: impl Fn(&U) -> &[(Row, Value)],
    window: usize,
    clients: &mut [C],
    pace: Option<&limits::Pace>,
    books: &mut Books<'_, '_, '_>,
    send: impl Fn(&mut C, &U) -> Result<(), SendError> + Sync,
) -> Result<(), StoreError> {
    // One unit (or none): no thread to start.
    match (clients.first_mut(), units) {
        (_, []) | (None, _) => return Ok(()),
        (Some(client), [u]) => {
            if let Some(p) = pace {
                p.wait();
            }
            let r = send(client, u);
            return books.all_rows(rows_of(u), r);
        }
        _ => {}
    }
    let workers = clients.len();
    let down = AtomicBool::new(false);
    let room = Window::new(window);
    let sizes: Vec<usize> = units.iter().map(|u| rows_of(u).len()).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel(workers * 2);
    std::thread::scope(|scope| {
        for (w, client) in clients.iter_mut().enumerate() {
            let (tx, down, send, room, sizes) = (tx.clone(), &down, &send, &room, &sizes);
            scope.spawn(move || {
                for (i, u) in units.iter().enumerate().skip(w).step_by(workers) {
                    if down.load(SeqCst)
                        || !room.take(sizes[i], down, || {
                            let _ = tx.send(Note::Waiting);
                        })
                    {
                        break;
                    }
                    if let Some(p) = pace {
                        p.wait();
                    }
                    let r = send(client, u);
                    if matches!(&r, Err(e) if e.retryable) {
                        down.store(true, SeqCst);
                        room.wake();
                    }
                    if tx.send(Note::Sent(i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        // Payloads whose outcome is written and not yet committed.
        let mut unsettled = 0;
        let settle = |books: &mut Books<'_, '_, '_>, unsettled: &mut usize| {
            let r = books.commit();
            room.give(std::mem::take(unsettled));
            r
        };
        loop {
            let note = match rx.try_recv() {
                Ok(n) => n,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    // Nothing more to write now: a sender waiting for room gets it committed.
                    if unsettled > 0
                        && first_error.is_none()
                        && room.waiting()
                        && let Err(e) = settle(books, &mut unsettled)
                    {
                        down.store(true, SeqCst);
                        room.wake();
                        first_error = Some(e);
                    }
                    match rx.recv() {
                        Ok(n) => n,
                        Err(_) => break,
                    }
                }
            };
            let Note::Sent(i, r) = note else { continue };
            if first_error.is_some() {
                room.give(sizes[i]);
                continue;
            }
            let mut noted = Ok(());
            for (row, _) in rows_of(&units[i]) {
                unsettled += 1;
                match books.note(row, r.clone()) {
                    Ok(true) => room.give(std::mem::take(&mut unsettled)),
                    Ok(false) => {}
                    Err(e) => {
                        noted = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = noted {
                down.store(true, SeqCst);
                room.give(unsettled);
                room.wake();
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
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
            may_have_arrived: false,
        })?;
        sinks.insert(dest.to_string(), sink);
    }
    sinks.get_mut(dest).ok_or_else(|| SendError {
        retryable: true,
        message: "no client".into(),
        retry_after: None,
        may_have_arrived: false,
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
    books: &mut Books<'_, '_, '_>,
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
                books.all_rows(chunk, r)?;
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
                    Some(t) => Some(mllp_client::MllpTls::new(
                        &t.server_name,
                        t.ca_file.as_deref(),
                        t.identity_file.as_deref(),
                    )?),
                };
                let timeout = std::time::Duration::from_millis(*timeout_ms);
                Ok(Sink::Mllp(
                    (0..*concurrency)
                        .map(|_| mllp_client::MllpClient::new(address, tls.clone(), timeout))
                        .collect(),
                ))
            });
            let clients = match built {
                Ok(Sink::Mllp(c)) => c,
                Ok(_) => return Ok(()),
                Err(e) => return books.all_rows(batch, Err(e)),
            };
            one_by_one(batch, clients, pace, books, |client, row, payload| {
                let now = chrono::Utc::now().fixed_offset();
                let msg = match row.cancels {
                    Some(_) => cancel::ref_i14(payload, &row.idempotency_key, dest, receiver, now),
                    None => hl7out::ref_i12(payload, &row.idempotency_key, receiver, now),
                };
                client.send(&msg, &hl7out::control_id(&row.idempotency_key))
            })
        }
        DeliveryKind::Kafka {
            brokers,
            topic,
            timeout_ms,
            properties,
            sasl_password,
        } => {
            let built = client(sinks, dest, || {
                let timeout = std::time::Duration::from_millis(*timeout_ms);
                kafka::KafkaSink::new(brokers, topic, timeout, properties, sasl_password)
                    .map(Sink::Kafka)
            });
            let k = match built {
                Ok(Sink::Kafka(k)) => k,
                Ok(_) => return Ok(()),
                Err(e) => return books.all_rows(batch, Err(e)),
            };
            for ((row, _), r) in batch.iter().zip(k.send(batch)) {
                books.note(row, r)?;
            }
            books.commit()
        }
        DeliveryKind::Webhook { http, fhir } => {
            let hook = match client(sinks, dest, || {
                webhook::Webhook::from_delivery(http).map(Sink::Http)
            }) {
                Ok(Sink::Http(h)) => h,
                Ok(_) => return Ok(()),
                Err(e) => return books.all_rows(batch, Err(e)),
            };
            // The client's connection pool is shared by the concurrent senders.
            let mut senders = vec![&*hook; http.concurrency];
            if http.batch_max > 1 && !*fhir {
                let chunks: Vec<&[(Row, Value)]> = batch.chunks(http.batch_max).collect();
                // Each request's outcome is committed before more than the window (or the
                // requests in flight, if more) are sent.
                return concurrently(
                    &chunks,
                    |chunk| *chunk,
                    WINDOW.max(http.batch_max * http.concurrency),
                    &mut senders,
                    pace,
                    books,
                    |hook, chunk| hook.send_batch(chunk),
                );
            }
            one_by_one(batch, &mut senders, pace, books, |hook, row, payload| {
                let (body, content_type) = if *fhir {
                    let b = match row.cancels {
                        Some(_) => cancel::task_bundle(payload),
                        None => fhir::bundle(payload, &row.idempotency_key),
                    };
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
