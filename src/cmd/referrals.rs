//! `referrals list` and `referrals show`: the closed loop's record (src/store/referrals.rs).

use anyhow::{Result, bail};
use pnp_gateway::config::Gateway;
use pnp_gateway::policy::lifecycle::Status;
use std::io::Write;
use std::process::ExitCode;

pub fn list(
    gw: &Gateway,
    status: Option<&str>,
    destination: Option<&str>,
    overdue: bool,
    json: bool,
) -> Result<ExitCode> {
    let status = match status.map(|s| (s, Status::parse(s))) {
        Some((s, None)) => bail!("no status `{s}` (see `referrals list --help`)"),
        Some((_, s)) => s,
        None => None,
    };
    let store = super::open_sealed(gw, &gw.store_path)?;
    let mut o = std::io::stdout().lock();
    if overdue {
        // Overdue referrals are `sent` ones: another status lists none.
        if status.is_some_and(|s| s != Status::Sent) {
            return Ok(ExitCode::SUCCESS);
        }
        let now = chrono::Utc::now();
        for r in pnp_gateway::deliver::followup::overdue(&store, gw, now)? {
            if destination.is_some_and(|d| r.destination != d) {
                continue;
            }
            if json {
                writeln!(o, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(
                    o,
                    "{}  to {:<14} sent {}, overdue since {}{}",
                    r.id,
                    r.destination,
                    r.sent_at,
                    r.overdue_since,
                    if r.alerted_at.is_some() {
                        " (alerted)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    for r in store.referrals()? {
        if status.is_some_and(|s| r.status != s) || destination.is_some_and(|d| r.destination != d)
        {
            continue;
        }
        if json {
            writeln!(o, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(
                o,
                "{}  to {:<14} {:<12} since {}",
                r.id,
                r.destination,
                r.status.as_str(),
                r.updated_at
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(gw: &Gateway, id: &str) -> Result<ExitCode> {
    let store = super::open_sealed(gw, &gw.store_path)?;
    let Some(r) = store.referral(id)? else {
        bail!("no referral {id} (see `referrals list`)");
    };
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "referral {} to {}: {}",
        r.id,
        r.destination,
        r.status.as_str()
    )?;
    writeln!(o, "  {}  queued", r.created_at)?;
    for e in store.referral_events(id)? {
        let reason = e.reason.map(|r| format!(" ({r})")).unwrap_or_default();
        // The FHIR channel's Task.businessStatus, a code.
        let business = e
            .business_status
            .map(|b| format!(", business status {b}"))
            .unwrap_or_default();
        writeln!(
            o,
            "  {}  {}{reason}{business}, reported by {} (recorded {})",
            e.reported_at, e.status, e.reported_by, e.recorded_at
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
