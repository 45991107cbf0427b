//! `outbox` commands: metadata only, never payloads.

use anyhow::Result;
use pnp_gateway::config::Gateway;
use pnp_gateway::policy::profile::ProfileKind;
use pnp_gateway::store::Store;
use pnp_gateway::store::outbox::Row;
use std::io::Write;
use std::process::ExitCode;

fn print(rows: &[Row]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    for r in rows {
        writeln!(
            o,
            "{:>6}  {:<9}  {:<14}  {:<18}  attempts {:<3} next {}  {}{}{}{}",
            r.id,
            r.status,
            r.destination,
            r.profile,
            r.attempts,
            r.next_attempt_at,
            r.last_error.as_deref().unwrap_or(""),
            r.replay_of
                .map(|o| format!(" (replay of {o})"))
                .unwrap_or_default(),
            r.cancels
                .map(|c| format!(" (cancels {c})"))
                .unwrap_or_default(),
            if r.may_have_arrived {
                " (may have arrived)"
            } else {
                ""
            }
        )?;
    }
    writeln!(o, "{} row(s)", rows.len())?;
    Ok(())
}

pub fn list(gw: &Gateway, status: Option<&str>, destination: Option<&str>) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    print(&store.outbox_rows(status, destination)?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn show(gw: &Gateway, id: i64) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    match store.outbox_row(id)? {
        Some(r) => {
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("error: no outbox row {id}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn replay(gw: &Gateway, ids: &[i64], to: Option<&str>) -> Result<ExitCode> {
    if let Some(t) = to
        && !gw.deliveries.contains_key(t)
    {
        eprintln!(
            "error: `{t}` is no delivering destination in {}",
            gw.path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut store = Store::open(&gw.store_path)?;
    let keys = gw.keys().map_err(anyhow::Error::msg)?;
    let mut code = ExitCode::SUCCESS;
    for &id in ids {
        if let Some(t) = to
            && let Some(why) = store
                .outbox_row(id)?
                .and_then(|row| elsewhere(gw, &row.destination, t))
        {
            eprintln!("error: row {id} cannot go to `{t}`: {why}");
            code = ExitCode::FAILURE;
            continue;
        }
        match store.replay(id, to) {
            Ok(new) => {
                let row = store.outbox_row(new)?.expect("just inserted");
                store.audit_append(
                    &keys.audit,
                    &row.audit_entry(
                        "replayed",
                        vec![format!("replay of outbox row {id} as row {new}")],
                    ),
                )?;
                println!(
                    "row {id} queued again as row {new} (to {})",
                    row.destination
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// Why a payload made for `from` may not be replayed to `to`, if it may not: it was made for
/// `from`'s profile and carries the tokens of `from`'s token scope, which another scope must
/// not see (they would link the two recipients' rows).
fn elsewhere(gw: &Gateway, from: &str, to: &str) -> Option<String> {
    let find = |id: &str| gw.destinations.iter().find(|d| d.id == id);
    let (Some(a), Some(b)) = (find(from), find(to)) else {
        return Some(format!("`{from}` is no longer a destination in the config"));
    };
    if a.profile.kind != b.profile.kind {
        return Some(format!(
            "its payload was made for the {} profile of `{from}`, `{to}` has {}",
            a.profile.kind.as_str(),
            b.profile.kind.as_str()
        ));
    }
    let deidentified = a.profile.kind != ProfileKind::ConsentedReferral;
    if deidentified && a.token_scope() != b.token_scope() {
        return Some(format!(
            "its tokens are those `{from}` holds; `{to}` is no destination of its link_group"
        ));
    }
    None
}

pub fn purge(gw: &Gateway) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    let n = store.purge(None)?;
    println!("purged the payloads of {n} delivered or withdrawn row(s)");
    Ok(ExitCode::SUCCESS)
}
