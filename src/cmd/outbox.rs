//! `outbox` commands: metadata only, never payloads.

use anyhow::Result;
use pnp_gateway::config::Gateway;
use pnp_gateway::store::Store;
use pnp_gateway::store::outbox::Row;
use std::io::Write;
use std::process::ExitCode;

fn print(rows: &[Row]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    for r in rows {
        writeln!(
            o,
            "{:>6}  {:<9}  {:<14}  {:<18}  attempts {:<3} next {}  {}{}",
            r.id,
            r.status,
            r.destination,
            r.profile,
            r.attempts,
            r.next_attempt_at,
            r.last_error.as_deref().unwrap_or(""),
            r.replay_of
                .map(|o| format!(" (replay of {o})"))
                .unwrap_or_default()
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

pub fn purge(gw: &Gateway) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    let n = store.purge(None)?;
    println!("purged the payloads of {n} delivered or withdrawn row(s)");
    Ok(ExitCode::SUCCESS)
}
