//! `run`: drains or watches the drop folders, then the disclosure stage and a dispatch pass.

use super::progress::Progress;
use anyhow::{Context, Result};
use chrono::NaiveDate;
use pnp_gateway::config::Gateway;
use pnp_gateway::ingest;
use pnp_gateway::pipeline::Stats;
use pnp_gateway::pipeline::disclosure::Tally;
use pnp_gateway::progress::{Observer, Stage};
use pnp_gateway::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// After ingest: the disclosure stage (decisions, audit, outbox) and a dispatch pass, when the
/// config has destinations, as of `today`. `observe` sees each decision (its payload already
/// sealed and dropped). Returns what the stage did, counted, and what was sent.
pub(crate) fn disclose_and_dispatch(
    gw: &Gateway,
    store: &mut Store,
    today: NaiveDate,
    state: &mut pnp_gateway::deliver::Dispatcher,
    observe: &mut dyn FnMut(&pnp_gateway::policy::disclose::Decision),
) -> Result<(Tally, pnp_gateway::deliver::DispatchStats)> {
    if gw.destinations.is_empty() {
        return Ok(Default::default());
    }
    let keys = gw.keys().map_err(anyhow::Error::msg)?;
    let mut tally = Tally::default();
    let staged = pnp_gateway::pipeline::disclosure::disclose_staged(
        store, gw, &keys, today, &mut tally, observe,
    );
    if tally.incidents > 0 {
        tracing::info!(
            incidents = tally.incidents,
            decisions = tally.decisions_total(),
            queued = tally.queued_total(),
            "disclosure decisions made"
        );
    }
    staged?;
    let purged = store.purge_incidents(gw.incident_retention_days)?;
    if purged > 0 {
        tracing::info!(
            incidents = purged,
            days = gw.incident_retention_days,
            "staged incidents past their retention removed"
        );
    }
    let mut sent = pnp_gateway::deliver::DispatchStats::default();
    if let Some(secret) = &keys.outbox {
        let seal = pnp_gateway::store::outbox::SealKey::from_secret(secret);
        // Referrals delivered under a consent revoked by now are cancelled (a revocation dated
        // ahead, or recorded while the referral was being sent).
        let cancelled = pnp_gateway::deliver::cancel::queue_for_revoked(
            store,
            gw,
            Some(&seal),
            &keys.audit,
            today,
        )?;
        if cancelled > 0 {
            tracing::info!(
                cancellations = cancelled,
                "cancellations queued for revoked consents"
            );
        }
        sent = pnp_gateway::deliver::dispatch(store, gw, &seal, &keys.audit, today, state)?;
        let n = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
        if n(&sent.delivered) + n(&sent.retried) + n(&sent.dead) + n(&sent.withdrawn) > 0 {
            tracing::info!(
                delivered = n(&sent.delivered),
                retried = n(&sent.retried),
                dead = n(&sent.dead),
                withdrawn = n(&sent.withdrawn),
                "dispatch pass"
            );
        }
    }
    Ok((tally, sent))
}

/// What a `run --once` pass decided and sent, for its summary.
pub(crate) type Pass = (Tally, pnp_gateway::deliver::DispatchStats);

pub(crate) fn run(
    gw: &Gateway,
    once: bool,
    max_records: Option<u64>,
    disclose: bool,
    metrics_listen: Option<std::net::SocketAddr>,
) -> Result<(Stats, Option<Pass>)> {
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let mut stats = Stats::default();
    let mut progress = Progress::new();
    let mut limit = max_records;
    for p in &gw.pipelines {
        std::fs::create_dir_all(&p.folder)
            .with_context(|| format!("creating drop folder {}", p.folder.display()))?;
    }
    if once || max_records.is_some() {
        // A pipeline whose files fail does not keep the pipelines after it from running; the
        // first error is returned once every pipeline had its turn.
        let mut first_error = None;
        for p in &gw.pipelines {
            let drained = ingest::drain_folder(
                &mut store,
                p,
                &gw.program,
                &mut limit,
                &mut |_| true,
                &mut |f, r, t| progress.update(f, r, t),
                &mut stats,
            );
            progress.end(Stage::Reading);
            match drained {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    first_error.get_or_insert(e);
                    if limit == Some(0) {
                        break;
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        if !disclose {
            return Ok((stats, None));
        }
        if !gw.destinations.is_empty() {
            let decisions = store.undisclosed_count()? * gw.destinations.len() as u64;
            progress.begin(Stage::Deciding, decisions);
        }
        let mut dispatcher = pnp_gateway::deliver::Dispatcher::default();
        dispatcher.progress = Some(Box::new(progress.clone()));
        let pass = disclose_and_dispatch(
            gw,
            &mut store,
            super::privacy::today(),
            &mut dispatcher,
            &mut |_| progress.advance(Stage::Deciding, 1),
        )?;
        return Ok((stats, Some(pass)));
    }
    let metrics = match metrics_listen {
        Some(addr) => {
            let m = std::sync::Arc::new(pnp_gateway::metrics::Metrics::default());
            let bound = pnp_gateway::metrics::serve(addr, m.clone())
                .with_context(|| format!("serving metrics on {addr}"))?;
            eprintln!("metrics on http://{bound}/metrics");
            Some(m)
        }
        None => None,
    };
    watch(gw, &mut store, &mut stats, metrics.as_deref())?;
    Ok((stats, None))
}

/// After a pass: the cumulative ingest counts, this pass's decisions and outcomes, and the
/// outbox and destinations as they are now.
fn record_pass(
    m: &pnp_gateway::metrics::Metrics,
    stats: &Stats,
    pass: Option<&(Tally, pnp_gateway::deliver::DispatchStats)>,
    store: &Store,
    dispatcher: &pnp_gateway::deliver::Dispatcher,
) {
    let outbox = store.outbox_counts().unwrap_or_default();
    m.update(|s| {
        s.passes += 1;
        s.files = stats.files;
        s.records = stats.records;
        s.bytes = stats.bytes;
        s.incidents = stats.incidents;
        s.eligible = stats.eligible.values().sum();
        s.rejected = stats.rejected.clone();
        if let Some((tally, sent)) = pass {
            for (k, n) in &tally.decisions {
                *s.decisions.entry(k.clone()).or_default() += n;
            }
            for (outcome, counts) in [
                ("delivered", &sent.delivered),
                ("retried", &sent.retried),
                ("dead", &sent.dead),
                ("withdrawn", &sent.withdrawn),
            ] {
                for (dest, n) in counts {
                    *s.deliveries
                        .entry((dest.clone(), outcome.to_string()))
                        .or_default() += n;
                }
            }
        }
        s.failing = outbox.iter().map(|(d, _, _)| (d.clone(), false)).collect();
        s.failing.extend(dispatcher.alerts.failing());
        s.outbox = outbox.into_iter().map(|(d, st, n)| ((d, st), n)).collect();
    });
}

/// How long a new file's size must stay the same before it is read.
const SETTLE: Duration = Duration::from_millis(200);

/// Watches the drop folders until killed. A file is read once its size has stayed the same
/// across two scans [`SETTLE`] apart (so a file still being written is not read half-way);
/// every commit is durable, so stopping the process at any moment loses nothing.
fn watch(
    gw: &Gateway,
    store: &mut Store,
    stats: &mut Stats,
    metrics: Option<&pnp_gateway::metrics::Metrics>,
) -> Result<()> {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        if wakes(&event) {
            let _ = tx.send(());
        }
    })?;
    for p in &gw.pipelines {
        watcher.watch(&p.folder, RecursiveMode::NonRecursive)?;
    }
    tracing::info!(pipelines = gw.pipelines.len(), "watching drop folders");
    let mut sizes: std::collections::HashMap<PathBuf, u64> = Default::default();
    let mut progress = Progress::new();
    let mut dispatcher = pnp_gateway::deliver::Dispatcher::default();
    loop {
        let mut waiting = false;
        for p in &gw.pipelines {
            let mut settled = |path: &Path| {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let same = sizes.insert(path.to_owned(), size) == Some(size);
                waiting |= !same;
                same
            };
            let mut none = None;
            if let Err(e) = ingest::drain_folder(
                store,
                p,
                &gw.program,
                &mut none,
                &mut settled,
                &mut |f, r, t| progress.update(f, r, t),
                stats,
            ) {
                tracing::error!(adapter = %p.adapter.name, error = %e, "pipeline error; retrying at the next scan");
            }
            progress.clear();
        }
        let pass = match disclose_and_dispatch(
            gw,
            store,
            super::privacy::today(),
            &mut dispatcher,
            &mut |_| {},
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, "disclosure or delivery failed; retrying at the next scan");
                None
            }
        };
        if let Some(m) = metrics {
            record_pass(m, stats, pass.as_ref(), store, &dispatcher);
        }
        // A file seen for the first time (or still growing) is looked at again after SETTLE;
        // otherwise wake on a change, or rescan after a second anyway (and retry deliveries).
        if waiting {
            std::thread::sleep(SETTLE);
        } else {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        while rx.try_recv().is_ok() {}
    }
}

/// Whether a watcher event can mean a new, grown, renamed or finished export. Every scan opens
/// the folder and hashes the head of each file in it, and inotify reports those opens (and
/// closes) as `Access` events: waking on them made watch mode wake itself thousands of times a
/// second with nothing to do. Attribute changes say nothing about content either. What remains:
/// creation, data written, a close after writing, renames, removals, and the watcher's own
/// errors and rescan requests (a lost event queue), on which the folder is scanned again.
fn wakes(event: &notify::Result<notify::Event>) -> bool {
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

/// The ingest counts, then (after `run --once`) what was decided and delivered where.
pub(crate) fn print_summary(gw: &Gateway, stats: &Stats, pass: Option<&Pass>) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "files read:     {}", stats.files)?;
    writeln!(o, "records read:   {}", stats.records)?;
    writeln!(o, "incidents:      {}", stats.incidents)?;
    let eligible: u64 = stats.eligible.values().sum();
    writeln!(o, "eligible:       {eligible}")?;
    for (c, n) in &stats.by_category {
        writeln!(
            o,
            "  {:<20} {:>6} incidents, {:>6} eligible",
            c.as_str(),
            n,
            stats.eligible.get(c).copied().unwrap_or(0)
        )?;
    }
    writeln!(o, "rejected:       {}", stats.rejected_total())?;
    for (k, n) in &stats.rejected {
        writeln!(o, "  {k:<20} {n:>6}")?;
    }
    if !stats.gaps.is_empty() {
        writeln!(o, "unmapped codes (add them to the mapping's tables):")?;
        for (g, n) in &stats.gaps {
            writeln!(
                o,
                "  table `{}`: {} ({} records)",
                g.table,
                pnp_gateway::mapping::unmapped::shown(&g.code),
                n
            )?;
        }
    }
    if let Some((tally, sent)) = pass.filter(|_| !gw.destinations.is_empty()) {
        print_pass(&mut o, gw, tally, sent)?;
    }
    let cfg = gw.path.display();
    writeln!(o, "results:        staged in {}", gw.store_path.display())?;
    writeln!(
        o,
        "  incidents:    sqlite3 {} 'SELECT incident_id, category, eligible, rule FROM incidents'",
        gw.store_path.display()
    )?;
    writeln!(
        o,
        "  rejections:   pnp-gateway quarantine list --config {cfg}"
    )?;
    Ok(())
}

/// Per destination: the decisions, what was queued, and what the dispatch pass did with it
/// (delivered, retrying, dead-lettered, withdrawn), and where it goes.
fn print_pass(
    o: &mut impl Write,
    gw: &Gateway,
    tally: &Tally,
    sent: &pnp_gateway::deliver::DispatchStats,
) -> Result<()> {
    writeln!(
        o,
        "decided:        {} incidents, {} decisions, {} payloads queued",
        tally.incidents,
        tally.decisions_total(),
        tally.queued_total()
    )?;
    writeln!(o, "delivered:")?;
    let n = |m: &std::collections::BTreeMap<String, u64>, d: &str| m.get(d).copied().unwrap_or(0);
    for dest in &gw.destinations {
        let id = dest.id.as_str();
        let decided = |what: &str| {
            tally
                .decisions
                .get(&(id.to_string(), what.to_string()))
                .copied()
                .unwrap_or(0)
        };
        let mut line = format!(
            "  {id:<20} {:>8} delivered of {} to deliver ({} withheld)",
            n(&sent.delivered, id),
            decided("deliver"),
            decided("withhold"),
        );
        for (what, m) in [
            ("retrying", &sent.retried),
            ("dead-lettered", &sent.dead),
            ("withdrawn", &sent.withdrawn),
        ] {
            if n(m, id) > 0 {
                line.push_str(&format!(", {} {what}", n(m, id)));
            }
        }
        match gw.deliveries.get(id) {
            Some(d) => line.push_str(&format!(" -> {}", d.kind.target())),
            None => line.push_str(" (no delivery configured)"),
        }
        writeln!(o, "{line}")?;
    }
    Ok(())
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
