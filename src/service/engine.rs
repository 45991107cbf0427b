//! The engine thread: the service's one writer of staged records. It takes the API's commands
//! from a bounded channel and answers each after its commit, reads the drop folders when the
//! watcher wakes it (or every second, as a safety net), and after anything new runs the
//! disclosure stage and wakes the dispatcher.

use super::Health;
use super::push::{PushAnswer, PushError};
use crate::config::Gateway;
use crate::config::destination::Keys;
use crate::imports::{ImportError, ImportReport, Input};
use crate::pipeline::Stats;
use crate::pipeline::disclosure::Tally;
use crate::store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Commands the API queues for the engine; each carries where its answer goes.
pub enum Command {
    /// An export pushed into pipeline number `pipeline`.
    /// (Also what a live source hands over: an MLLP message under its sender and control id, a
    /// poll page under its cursor, which then moves in the answer's transaction.)
    Push {
        pipeline: usize,
        client: String,
        key: String,
        body: axum::body::Bytes,
        cursor: Option<String>,
        reply: oneshot::Sender<Result<PushAnswer, PushError>>,
    },
    /// Consents (`consent import`'s JSON or CSV, or FHIR R4 Consent resources).
    Consents {
        text: String,
        content: crate::imports::Content,
        atomic: bool,
        accept_incomplete: bool,
        reply: oneshot::Sender<Result<ImportReport, ImportError>>,
    },
    /// A consent's revocation taking effect `on`; what waits under it is withdrawn first.
    Revoke {
        id: String,
        on: chrono::NaiveDate,
        reply: oneshot::Sender<Result<crate::imports::Revocation, ImportError>>,
    },
    /// Engagements (`engagement import`'s JSON or CSV).
    Engagements {
        text: String,
        content: crate::imports::Content,
        atomic: bool,
        reply: oneshot::Sender<Result<ImportReport, ImportError>>,
    },
    /// Work on the engine's store that needs no command of its own (the closed loop's reports
    /// and reads): run in order with the rest, answering through its own channel.
    Store(StoreWork),
    /// The watcher saw a drop folder change.
    FilesChanged,
}

/// Work run on the engine's store (see [`Command::Store`]).
pub type StoreWork = Box<dyn FnOnce(&mut Store, &Keys) + Send>;

/// Commands waiting at most; beyond, the API answers 503 and `Retry-After`.
pub const QUEUE: usize = 16;

/// Commands taken per turn of the engine, beyond the first, before it scans and discloses.
const COMMANDS_PER_TURN: usize = 8;

/// How long a new file's size must stay the same before it is read.
const SETTLE: Duration = Duration::from_millis(200);

pub(super) fn spawn(
    gw: Arc<Gateway>,
    keys: Arc<Keys>,
    store: Store,
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(SyncSender<Command>, std::thread::JoinHandle<()>), super::ServiceError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let watcher = watch_folders(&gw, tx.clone())?;
    let spool = super::push::spool_dir(&gw);
    let engine = Engine {
        gw,
        keys,
        store,
        wake,
        stop,
        health,
        metrics,
        spool,
        stats: Stats::default(),
        sizes: HashMap::new(),
        last_tick: None,
    };
    let handle = std::thread::Builder::new()
        .name("pnp-engine".into())
        .spawn(move || {
            let _watcher = watcher;
            engine.run(rx)
        })
        .map_err(|source| super::ServiceError::Io {
            what: "starting the engine".into(),
            source,
        })?;
    Ok((tx, handle))
}

/// Watches every drop folder; a change queues [`Command::FilesChanged`] (dropped when the queue
/// is full: the engine rescans every second anyway).
fn watch_folders(
    gw: &Gateway,
    tx: SyncSender<Command>,
) -> Result<Option<notify::RecommendedWatcher>, super::ServiceError> {
    use notify::{RecursiveMode, Watcher};
    if gw.pipelines.is_empty() {
        return Ok(None);
    }
    let io = |e: notify::Error| super::ServiceError::Io {
        what: "watching the drop folders".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut watcher = notify::recommended_watcher(move |event| {
        if wakes(&event) {
            let _ = tx.try_send(Command::FilesChanged);
        }
    })
    .map_err(io)?;
    for p in &gw.pipelines {
        watcher
            .watch(&p.folder, RecursiveMode::NonRecursive)
            .map_err(io)?;
    }
    tracing::info!(pipelines = gw.pipelines.len(), "watching drop folders");
    Ok(Some(watcher))
}

/// Whether a watcher event can mean a new, grown, renamed or finished export. Every scan opens
/// the folder and hashes the head of each file in it, and inotify reports those opens (and
/// closes) as `Access` events: waking on them made watch mode wake itself thousands of times a
/// second with nothing to do. Attribute changes say nothing about content either. What remains:
/// creation, data written, a close after writing, renames, removals, and the watcher's own
/// errors and rescan requests (a lost event queue), on which the folder is scanned again.
pub fn wakes(event: &notify::Result<notify::Event>) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match event {
        Err(_) => true,
        Ok(e) => match e.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
            _ => true,
        },
    }
}

struct Engine {
    gw: Arc<Gateway>,
    keys: Arc<Keys>,
    store: Store,
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    metrics: Arc<crate::metrics::Metrics>,
    spool: PathBuf,
    stats: Stats,
    /// Each drop-folder file's size at the last scan: a file is read once it stopped growing.
    sizes: HashMap<PathBuf, u64>,
    last_tick: Option<std::time::Instant>,
}

impl Engine {
    fn run(mut self, rx: Receiver<Command>) {
        let mut scan = true;
        let mut waiting = false;
        // Staged incidents wait for the disclosure stage: it runs one group commit per turn,
        // between the commands, until none remain.
        let mut staged = true;
        loop {
            Health::beat(&self.health.engine);
            let wait = if staged {
                Duration::ZERO
            } else if waiting {
                SETTLE
            } else {
                Duration::from_millis(200)
            };
            match rx.recv_timeout(wait) {
                Ok(Command::FilesChanged) => scan = true,
                Ok(cmd) => staged |= self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // A few more of what is queued (pushes wait on their answers), but never so many
            // that a steady stream of commands keeps the folders and the disclosure stage
            // waiting.
            for _ in 0..COMMANDS_PER_TURN {
                let Ok(cmd) = rx.try_recv() else { break };
                match cmd {
                    Command::FilesChanged => scan = true,
                    cmd => staged |= self.handle(cmd),
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                // What is still queued is answered before the engine stops.
                while let Ok(cmd) = rx.try_recv() {
                    self.handle(cmd);
                }
                return;
            }
            let periodic = self.tick();
            if scan || waiting || periodic {
                scan = false;
                let before = self.stats.records;
                waiting = self.scan();
                staged |= self.stats.records > before;
            }
            if staged || periodic {
                staged = self.disclose();
            }
        }
    }

    /// True once a second: the rescan and disclosure pass that run even when nothing woke us.
    fn tick(&mut self) -> bool {
        let due = self
            .last_tick
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            self.last_tick = Some(std::time::Instant::now());
        }
        due
    }

    /// Handles one command; true when it may have staged something for the disclosure stage.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Push {
                pipeline,
                client,
                key,
                body,
                cursor,
                reply,
            } => {
                let Some(p) = self.gw.pipelines.get(pipeline) else {
                    return false;
                };
                let answer = super::push::push(
                    &mut self.store,
                    p,
                    &self.gw.program,
                    &self.spool,
                    &client,
                    &key,
                    &body,
                    cursor.as_deref(),
                    &mut self.stats,
                );
                self.store_outcome(answer.as_ref().err().and_then(PushError::store_failure));
                if let Ok(a) = &answer
                    && !a.replayed
                {
                    self.metrics.update(|s| {
                        for (outcome, n) in
                            [("accepted", a.accepted), ("rejected", a.rejected_count())]
                        {
                            *s.pushed.entry((p.id.clone(), outcome.into())).or_default() += n;
                        }
                    });
                }
                let staged = answer.as_ref().is_ok_and(|a| a.accepted > 0);
                // The client may have gone; what was committed stays committed.
                let _ = reply.send(answer);
                self.record_ingest();
                staged
            }
            Command::Consents {
                text,
                content,
                atomic,
                accept_incomplete,
                reply,
            } => {
                let input = Input {
                    name: "request body",
                    text: &text,
                    content,
                };
                let opts = crate::imports::ConsentOptions {
                    accept_incomplete,
                    atomic,
                    today: super::today(),
                };
                let keys = self.keys_if_delivering();
                let r = crate::imports::import_consents(
                    &self.gw,
                    &mut self.store,
                    keys.as_deref(),
                    &input,
                    opts,
                );
                self.import_outcome(&r);
                let _ = reply.send(r);
                true
            }
            Command::Revoke { id, on, reply } => {
                let keys = self.keys_if_delivering();
                let r = crate::imports::revoke(
                    &self.gw,
                    &mut self.store,
                    keys.as_deref(),
                    &id,
                    on,
                    super::today(),
                );
                self.import_outcome(&r);
                let _ = reply.send(r);
                // The dispatcher queues the cancellations owed.
                let _ = self.wake.try_send(());
                false
            }
            Command::Engagements {
                text,
                content,
                atomic,
                reply,
            } => {
                let input = Input {
                    name: "request body",
                    text: &text,
                    content,
                };
                let r =
                    crate::imports::import_engagements(&self.gw, &mut self.store, &input, atomic);
                self.import_outcome(&r);
                let _ = reply.send(r);
                true
            }
            Command::Store(f) => {
                f(&mut self.store, &self.keys);
                false
            }
            Command::FilesChanged => false,
        }
    }

    fn keys_if_delivering(&self) -> Option<Arc<Keys>> {
        (!self.gw.destinations.is_empty()).then(|| self.keys.clone())
    }

    fn import_outcome<T>(&self, r: &Result<T, ImportError>) {
        match r {
            Err(ImportError::Store(_)) => {
                self.store_outcome(Some("an import could not be committed".into()))
            }
            _ => self.store_outcome(None),
        }
    }

    fn store_outcome(&self, failure: Option<String>) {
        self.health.store_failed(failure);
    }

    /// One pass over the drop folders; true while a file is still growing.
    fn scan(&mut self) -> bool {
        let mut waiting = false;
        let gw = self.gw.clone();
        for p in &gw.pipelines {
            let sizes = &mut self.sizes;
            let mut settled = |path: &Path| {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let same = sizes.insert(path.to_owned(), size) == Some(size);
                waiting |= !same;
                same
            };
            let health = self.health.clone();
            let mut none = None;
            if let Err(e) = crate::ingest::drain_folder(
                &mut self.store,
                p,
                &gw.program,
                &mut none,
                &mut settled,
                &mut |_, _, _| Health::beat(&health.engine),
                &mut self.stats,
            ) {
                tracing::error!(pipeline = %p.id, error = %e, "pipeline error; retrying at the next scan");
            }
        }
        self.record_ingest();
        waiting
    }

    /// One group commit of the disclosure stage, then the dispatcher is woken. Returns whether
    /// staged incidents may remain.
    fn disclose(&mut self) -> bool {
        if self.gw.destinations.is_empty() {
            return false;
        }
        let mut tally = Tally::default();
        let today = super::today();
        let done = crate::pipeline::disclosure::disclose_groups(
            &mut self.store,
            &self.gw,
            &self.keys,
            today,
            &mut tally,
            &mut |_| {},
            1,
        );
        let more = match &done {
            Ok(more) => {
                self.store_outcome(None);
                *more
            }
            Err(e) => {
                tracing::error!(error = %e, "disclosure stage failed; retrying in a second");
                self.store_outcome(Some("the disclosure stage cannot commit".into()));
                false
            }
        };
        if more {
            // Purging and the retention work wait for the backlog's end.
            self.after_group(&tally);
            return true;
        }
        if let Err(e) = self.store.purge_incidents(self.gw.incident_retention_days) {
            tracing::warn!(error = %e, "cannot remove staged incidents past their retention");
        }
        let from = crate::report::build::keep_from(today, self.gw.report_keep_months);
        if let Err(e) = self.store.purge_facts(from) {
            tracing::warn!(error = %e, "cannot remove report facts past their retention");
        }
        self.after_group(&tally);
        false
    }

    /// What a group's decisions tell: logged, counted, and the dispatcher woken when something
    /// was queued.
    fn after_group(&self, tally: &Tally) {
        if tally.incidents > 0 {
            tracing::info!(
                incidents = tally.incidents,
                decisions = tally.decisions_total(),
                queued = tally.queued_total(),
                "disclosure decisions made"
            );
            self.metrics.update(|s| {
                for (k, n) in &tally.decisions {
                    *s.decisions.entry(k.clone()).or_default() += n;
                }
            });
        }
        if tally.queued_total() > 0 {
            match self.wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    fn record_ingest(&self) {
        let stats = &self.stats;
        self.metrics.update(|s| {
            s.passes += 1;
            s.files = stats.files;
            s.records = stats.records;
            s.bytes = stats.bytes;
            s.incidents = stats.incidents;
            s.eligible = stats.eligible.values().sum();
            s.rejected = stats.rejected.clone();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::wakes;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, MetadataKind, ModifyKind,
        RemoveKind, RenameMode,
    };

    fn kind(k: EventKind) -> bool {
        wakes(&Ok(notify::Event::new(k)))
    }

    #[test]
    fn the_gateways_own_reads_do_not_wake_the_watcher() {
        assert!(!kind(EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!kind(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!kind(EventKind::Access(AccessKind::Read)));
        assert!(!kind(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }

    #[test]
    fn new_grown_renamed_finished_or_removed_files_wake_it() {
        assert!(kind(EventKind::Create(CreateKind::File)));
        assert!(kind(EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(kind(EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(kind(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(kind(EventKind::Remove(RemoveKind::File)));
        assert!(kind(EventKind::Other));
        assert!(wakes(&Err(notify::Error::generic("queue overflow"))));
    }
}
