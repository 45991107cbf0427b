//! `report`: the monthly program report from the store, as HTML, CSV or JSON.

use anyhow::{Context, Result, bail};
use pnp_gateway::config::Gateway;
use pnp_gateway::report::{Month, render};
use pnp_gateway::store::Store;
use std::path::Path;
use std::process::ExitCode;

/// The report's formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Json,
}

pub(crate) fn report(
    gw: &Gateway,
    month: &str,
    format: Format,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let Some(month) = Month::parse(month) else {
        bail!("--month must be YYYY-MM (a calendar month)");
    };
    if !gw.store_path.exists() {
        bail!(
            "no store at {}: `pnp-gateway run` fills it first",
            gw.store_path.display()
        );
    }
    let store = Store::open(&gw.store_path)
        .with_context(|| format!("opening the store {}", gw.store_path.display()))?;
    let r = store.report(month, gw.report_min_cell)?;
    let text = match format {
        Format::Html => render::html::report(&r, "Police and Peers"),
        Format::Csv => render::csv(&r),
        Format::Json => render::json(&r),
    };
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "report {month}: {} tables, counts 1-{} suppressed -> {}",
                r.tables.len(),
                r.min_cell,
                p.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
