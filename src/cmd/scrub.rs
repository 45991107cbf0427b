//! `pnp-gateway scrub`: stdin lines in, one JSON line out each (the library does the work,
//! `pnp_gateway::policy::deid`).

use anyhow::{Context, Result, bail};
use pnp_gateway::policy::deid::{Known, Mode, Scrubber};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

pub fn scrub(mode: &str, known: Option<&Path>) -> Result<ExitCode> {
    let Some(mode) = Mode::parse(mode) else {
        bail!("--mode is safe-words or patterns");
    };
    let known: Known = match known {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the known values {}", p.display()))?;
            // serde's own message may quote a value: only the position and the kind of fault.
            serde_json::from_str(&text).map_err(|e| {
                let kind = match e.classify() {
                    serde_json::error::Category::Data => {
                        "not an object of string lists (names, phones, emails, streets, dates, ids, places)"
                    }
                    _ => "not JSON",
                };
                anyhow::anyhow!("{}: line {} column {}: {kind}", p.display(), e.line(), e.column())
            })?
        }
        None => Known::default(),
    };
    let scrubber = Scrubber::new(mode, &known).context("the known values")?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (i, line) in stdin.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {} of stdin", i + 1))?;
        writeln!(out, "{}", scrubber.scrub_line(&line, i + 1))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
