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
    let from = pnp_gateway::report::build::keep_from(today, gw.report_keep_months);
    let facts = store.purge_facts(from)?;
    if facts > 0 {
        tracing::info!(
            facts,
            months = gw.report_keep_months,
            "report facts past their retention removed"
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
        // An aggregate destination's monthly report, from the first day of the next month.
        pnp_gateway::deliver::report::queue_due(store, gw, &seal, &keys.audit, today)?;
        // Referrals overdue now: their alerts (and follow-up notices, sent in this pass).
        pnp_gateway::deliver::followup::alert_overdue(
            store,
            gw,
            Some(&seal),
            &keys.audit,
            chrono::Utc::now(),
        )?;
        sent = pnp_gateway::deliver::dispatch(store, gw, &seal, &keys.audit, today, state)?;
        sent.log();
    }
    Ok((tally, sent))
}

/// What a `run --once` pass decided and sent, for its summary.
pub(crate) type Pass = (Tally, pnp_gateway::deliver::DispatchStats);

pub(crate) fn run(
    gw: &Gateway,
    max_records: Option<u64>,
    disclose: bool,
) -> Result<(Stats, Option<Pass>)> {
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let mut stats = Stats::default();
    let mut progress = Progress::new();
    let mut limit = max_records;
    for p in &gw.pipelines {
        std::fs::create_dir_all(&p.folder)
            .with_context(|| format!("creating drop folder {}", p.folder.display()))?;
    }
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
    Ok((stats, Some(pass)))
}

/// Watch mode: the service (src/service/) until SIGTERM or SIGINT.
pub(crate) fn serve(gw: Gateway, metrics_listen: Option<std::net::SocketAddr>) -> Result<()> {
    let running = pnp_gateway::service::start(
        std::sync::Arc::new(gw),
        pnp_gateway::service::Options { metrics_listen },
    )?;
    if let Some(a) = running.metrics {
        eprintln!("metrics on http://{a}/metrics");
    }
    if let Some(a) = running.api {
        eprintln!("API on https://{a}");
    }
    for s in &running.sources {
        if let Some(a) = s.addr {
            eprintln!("{} for pipeline {} on {a}", s.kind, s.pipeline);
        }
    }
    running.run_until_signal();
    Ok(())
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
