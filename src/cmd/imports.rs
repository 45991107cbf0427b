//! `consent import`, `engagement import` and `engagement list`: the PRSS's records into the
//! store. A bad record does not throw the good ones away: each is reported with the file, the
//! line an editor shows, the field and the reason (never a value: a misplaced column may hold a
//! name), the others are imported, and the exit code is 1. `--atomic` imports nothing when any
//! record is bad.

use anyhow::Result;
use chrono::NaiveDate;
use pnp_gateway::config::Gateway;
use pnp_gateway::imports::{self, ConsentOptions, Content, ImportError, ImportReport, Input};
use pnp_gateway::ingest::records;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Prints the problems of one file: `error: FILE:LINE: WHAT ID: field `F`: REASON`.
fn print_problems(file: &str, what: &str, report: &ImportReport) {
    for p in &report.problems {
        let mut s = format!("{file}:{}: ", p.at());
        if let Some(id) = &p.record {
            s += &format!("{what} {id}: ");
        }
        if let Some(f) = &p.field {
            s += &format!("field `{f}`: ");
        }
        s += &p.reason;
        eprintln!("error: {s}");
    }
}

/// With `--atomic` and a bad record: the errors, and nothing imported.
fn abort(file: &str, what: &str, report: &ImportReport) -> ExitCode {
    print_problems(file, what, report);
    eprintln!("nothing imported (--atomic)");
    ExitCode::FAILURE
}

/// 1 if any record was bad.
fn code(report: &ImportReport) -> ExitCode {
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A file that cannot be read as a whole (unreadable, JSON syntax, CSV header).
fn unreadable(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("nothing imported");
    ExitCode::FAILURE
}

/// The library's result for a whole input: `Unreadable` is the file's fault (exit 1), anything
/// else the gateway's.
fn or_unreadable<T>(r: Result<T, ImportError>) -> Result<Result<T, ExitCode>> {
    match r {
        Ok(t) => Ok(Ok(t)),
        Err(ImportError::Unreadable(e)) => Ok(Err(unreadable(&e))),
        Err(e) => Err(e.into()),
    }
}

/// `consent import`: see [`imports::check_consents`]. A revocation in the file (`revoked_on`)
/// is recorded, and what waits under it is withdrawn as `consent revoke` does.
pub fn consent_import(
    gw: &Gateway,
    file: &Path,
    accept_incomplete: bool,
    atomic: bool,
    today: NaiveDate,
) -> Result<ExitCode> {
    let (name, text) = match records::load(file) {
        Ok(t) => t,
        Err(e) => return Ok(unreadable(&e)),
    };
    let input = Input {
        name: &name,
        text: &text,
        content: Content::Guess,
    };
    let opts = ConsentOptions {
        accept_incomplete,
        atomic,
        today,
    };
    let checked = match or_unreadable(imports::check_consents(gw, &input, opts))? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if checked.report().aborted {
        return Ok(abort(&name, "consent", checked.report()));
    }
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let report = checked.commit(&mut store)?;
    if report.aborted {
        return Ok(abort(&name, "consent", &report));
    }
    print_problems(&name, "consent", &report);
    println!(
        "imported {} consent(s), {} already present, {} rejected{}",
        report.added,
        report.present,
        report.rejected,
        if report.revocations.is_empty() {
            String::new()
        } else {
            format!("; {} revocation(s) recorded", report.revocations.len())
        }
    );
    for r in &report.revocations {
        let done = imports::withdraw(gw, &mut store, None, &r.record, r.on, today)?;
        super::privacy::print_cancelled(done.cancelled);
        if done.withdrawn > 0 {
            println!(
                "consent {}: withdrew {} queued referral(s) and purged their payloads",
                r.record, done.withdrawn
            );
        }
    }
    Ok(code(&report))
}

/// `engagement import`: see [`imports::check_engagements`]. One whose incident has not been
/// read yet is kept pending (not an error) and joins the incident when it is read.
pub fn engagement_import(gw: &Gateway, file: &Path, atomic: bool) -> Result<ExitCode> {
    let (name, text) = match records::load(file) {
        Ok(t) => t,
        Err(e) => return Ok(unreadable(&e)),
    };
    let input = Input {
        name: &name,
        text: &text,
        content: Content::Guess,
    };
    let checked = match or_unreadable(imports::check_engagements(gw, &input, atomic))? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if checked.report().aborted {
        return Ok(abort(&name, "engagement", checked.report()));
    }
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let report = checked.commit(&mut store)?;
    if report.aborted {
        return Ok(abort(&name, "engagement", &report));
    }
    print_problems(&name, "engagement", &report);
    let mut o = std::io::stdout().lock();
    for p in &report.pending {
        writeln!(
            o,
            "{name}:{}: engagement {}: pending: incident not read yet",
            p.line, p.record
        )?;
    }
    writeln!(
        o,
        "imported {} engagement(s), {} already present, {} rejected{}",
        report.added,
        report.present,
        report.rejected,
        if report.pending.is_empty() {
            String::new()
        } else {
            format!("; {} pending: incident not read yet", report.pending.len())
        }
    )?;
    Ok(code(&report))
}

/// Every engagement (or the pending ones): id, incident id, provider, state. No person data.
pub fn engagement_list(gw: &Gateway, pending_only: bool) -> Result<ExitCode> {
    let store = super::open_sealed(gw, &gw.store_path)?;
    let mut o = std::io::stdout().lock();
    for e in store.engagement_states(pending_only)? {
        let incident = match &e.adapter {
            Some(a) => format!("{} ({a})", e.incident_id),
            None => e.incident_id.clone(),
        };
        let state = if e.joined {
            "joined"
        } else {
            "pending: incident not read yet"
        };
        writeln!(
            o,
            "{}  incident {incident}  to {}  {state}",
            e.id, e.provider
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
