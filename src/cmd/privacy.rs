//! `consent revoke` and `list`, `audit`, `preview` and `keys` commands (the imports are in
//! `imports.rs`).

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use pnp_gateway::config::destination::Keys;
use pnp_gateway::config::{Adapter, Gateway, adapter::glob_match};
use pnp_gateway::imports;
use pnp_gateway::model::Incident;
use pnp_gateway::pipeline::disclosure::Disclosure;
use pnp_gateway::pipeline::sinks::Each;
use pnp_gateway::pipeline::{FileRun, SinkError, Stats};
use pnp_gateway::policy::consent::missing_elements;
use pnp_gateway::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Today in West Virginia; `PNP_GATEWAY_TODAY` (YYYY-MM-DD) overrides it, to re-run decisions as
/// of a past date or to pin a test's date.
pub fn today() -> NaiveDate {
    std::env::var("PNP_GATEWAY_TODAY")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| {
            chrono::Utc::now()
                .with_timezone(&chrono_tz::America::New_York)
                .date_naive()
        })
}

fn keys(gw: &Gateway) -> Result<Keys> {
    gw.keys().map_err(anyhow::Error::msg)
}

pub fn consent_revoke(gw: &Gateway, id: &str, on: NaiveDate) -> Result<ExitCode> {
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    // The library's `revoke` in its two halves, so that the revocation is reported before
    // anything is withdrawn (and stands if withdrawing fails).
    match imports::record_revocation(&mut store, id, on) {
        Ok(()) => {
            println!("consent {id} revoked as of {on}");
            let done = imports::withdraw(gw, &mut store, None, id, on, today())?;
            print_cancelled(done.cancelled);
            if done.withdrawn > 0 {
                println!(
                    "withdrew {} queued referral(s) and purged their payloads",
                    done.withdrawn
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The line a revocation prints for the cancellations it queued, if any.
pub(crate) fn print_cancelled(cancelled: usize) {
    if cancelled > 0 {
        println!(
            "queued {cancelled} cancellation(s) of referrals delivered (or perhaps received) under revoked consents"
        );
    }
}

pub fn consent_list(gw: &Gateway, today: NaiveDate) -> Result<ExitCode> {
    let store = super::open_sealed(gw, &gw.store_path)?;
    let mut o = std::io::stdout().lock();
    for rec in store.consents()? {
        let c = &rec.consent;
        let missing = missing_elements(c);
        let state = if !missing.is_empty() {
            format!("incomplete (lacks {})", missing.join(", "))
        } else if rec.revoked_on.is_some_and(|r| r <= today) {
            format!("revoked {}", rec.revoked_on.unwrap())
        } else if c.expires_on.is_some_and(|e| e < today) {
            format!("expired {}", c.expires_on.unwrap())
        } else {
            "in force".into()
        };
        let classes: Vec<&str> = c.information.iter().map(|i| i.as_str()).collect();
        writeln!(
            o,
            "{}  {}  to {}  for {}  [{}]",
            c.id,
            state,
            c.recipients.join(", "),
            c.purpose.as_deref().unwrap_or("?"),
            classes.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit_verify(gw: &Gateway) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    match store.audit_verify(&keys(gw)?.audit)? {
        Ok(n) => {
            println!(
                "audit trail intact: {} entries recording {} decisions and events",
                n.entries, n.decisions
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            eprintln!("audit trail BROKEN at entry {}: {}", b.seq, b.what);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn audit_disclosures(gw: &Gateway, person: &str) -> Result<ExitCode> {
    let store = Store::open(&gw.store_path)?;
    let mut o = std::io::stdout().lock();
    for row in store.audit_disclosures(person)? {
        writeln!(o, "{}", serde_json::to_string(&row)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the configured key files (random, 64 hex characters, owner-only) if absent.
pub fn keys_init(gw: &Gateway) -> Result<ExitCode> {
    for (what, f) in [
        ("vault", &gw.vault_key_file),
        ("audit", &gw.audit_key_file),
        ("outbox", &gw.outbox_key_file),
    ] {
        let Some(f) = f else {
            if what == "outbox" {
                continue; // only needed when a destination delivers
            }
            bail!("[keys] names no {what}_key_file in {}", gw.path.display());
        };
        if ensure_key_file(f)? {
            println!("created {what} key {}", f.display());
        } else {
            println!("{what} key {} exists; left as it is", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates a key file (random, 64 hex characters) 0600, its missing folders 0700, unless it
/// exists. Returns whether it made one.
pub fn ensure_key_file(f: &Path) -> Result<bool> {
    if f.exists() {
        return Ok(false);
    }
    if let Some(d) = f.parent() {
        pnp_gateway::owner_only::create_dir_all(d)?;
    }
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let hex = pnp_gateway::hex::encode(&b);
    let mut file = pnp_gateway::owner_only::options()
        .write(true)
        .create_new(true)
        .open(f)
        .with_context(|| format!("creating {}", f.display()))?;
    writeln!(file, "{hex}")?;
    Ok(true)
}

/// The adapter for a preview input: the named one; else the pipeline whose drop folder holds
/// the file; else the only pipeline whose pattern matches its name.
fn adapter_for(gw: &Gateway, named: Option<&Adapter>, input: &Path) -> Result<Adapter> {
    if let Some(a) = named {
        return Ok(a.clone());
    }
    let dir = input.parent().and_then(|d| {
        std::fs::canonicalize(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        })
        .ok()
    });
    if let Some(p) = gw
        .pipelines
        .iter()
        .find(|p| dir.is_some() && std::fs::canonicalize(&p.folder).ok() == dir)
    {
        return Ok(p.adapter.clone());
    }
    let name = input.file_name().unwrap_or_default().to_string_lossy();
    let matching: Vec<_> = gw
        .pipelines
        .iter()
        .filter(|p| glob_match(&p.pattern, &name))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.adapter.clone()),
        [] => bail!("no pipeline's pattern matches {name}; give --adapter"),
        _ => bail!("several pipelines' patterns match {name}; give --adapter"),
    }
}

/// For every incident × destination, one JSON line: the decision, its reasons and the payload.
/// Works on a copy of the store in a temporary folder: nothing is sent, the real store is not
/// written.
pub fn preview(
    gw: &Gateway,
    adapter: Option<&str>,
    inputs: &[PathBuf],
    today: NaiveDate,
) -> Result<ExitCode> {
    let keys = keys(gw)?;
    let tmp = tempdir()?;
    let copy = tmp.join("preview.db");
    if gw.store_path.exists() {
        let src = Store::open(&gw.store_path)?;
        src.copy_to(&copy)?;
    }
    let mut store = super::open_sealed(gw, &copy)?;
    let named = match adapter {
        Some(a) => Some(
            Adapter::load(
                &Adapter::resolve(a, std::slice::from_ref(&gw.adapters_dir))
                    .map_err(anyhow::Error::msg)?,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let gap_key = store.gap_key()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Incidents are decided as they are read: the reading bar is the preview's progress.
    let mut bars = super::progress::Progress::new();
    for input in inputs {
        let a = adapter_for(gw, named.as_ref(), input)?;
        let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        let mut shown = |read: u64| bars.update(input, read, size);
        // Each incident is decided and printed as it is read; the copy's writes (pseudonyms,
        // audit entries) commit at each checkpoint, a group at a time.
        store.begin()?;
        let mut d = Disclosure {
            store: &mut store,
            keys: &keys,
            destinations: &gw.destinations,
            roster: &gw.roster,
            today,
            withheld: &mut Default::default(),
        };
        let mut sink = Each {
            file: input.display().to_string(),
            f: |inc: Option<Incident>| -> Result<(), SinkError> {
                match inc {
                    Some(inc) => {
                        for decision in d.decide(&a.name, &inc)? {
                            serde_json::to_writer(&mut out, &decision)?;
                            out.write_all(b"\n")?;
                        }
                    }
                    None => {
                        d.store.commit()?;
                        d.store.begin()?;
                    }
                }
                Ok(())
            },
            err: std::io::stderr(),
        };
        FileRun {
            adapter: &a,
            rules: &gw.program,
            gap_key: &gap_key,
            resume: None,
            limit: None,
            progress: Some(&mut shown),
        }
        .run(input, &mut sink, &mut Stats::default())?;
        store.commit()?;
    }
    pnp_gateway::progress::Observer::end(&mut bars, pnp_gateway::progress::Stage::Reading);
    out.flush()?;
    drop(store);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ExitCode::SUCCESS)
}

fn tempdir() -> Result<PathBuf> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let d = std::env::temp_dir().join(format!("pnp-preview-{}", pnp_gateway::hex::encode(&b)));
    // The copy of the store holds what the store holds.
    pnp_gateway::owner_only::create_dir_all(&d)?;
    Ok(d)
}
