//! `demo`: the embedded default run end to end, with a summary of who got what.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use std::path::Path;
use std::process::ExitCode;

/// The date the demo decides as of, so that its consents (valid until 2027) and their defects
/// show the same way whenever it runs.
const DEMO_TODAY: &str = "2026-11-27";

pub(crate) fn demo(out: &Path) -> Result<ExitCode> {
    let config = pnp_gateway::demo::write_tree(out)
        .with_context(|| format!("writing the demo into {}", out.display()))?;
    let receiver = pnp_gateway::demo::with_receiver(&config)
        .context("starting the demo's local HTTPS receiver")?;
    let gw = crate::load_gateway(&config)?;
    for f in [&gw.vault_key_file, &gw.audit_key_file, &gw.outbox_key_file]
        .into_iter()
        .flatten()
    {
        super::privacy::ensure_key_file(f)?;
    }
    println!(
        "pnp-gateway demo: {} pipeline(s) from {}",
        gw.pipelines.len(),
        config.display()
    );
    for p in &gw.pipelines {
        println!("  {} <- {}", p.adapter.name, p.folder.display());
    }
    let (stats, _) = super::run::run(&gw, None, false)?;
    println!();
    super::run::print_summary(&gw, &stats, None)?;

    // The PRSS's records: consents (some defective on purpose) and engagements.
    let today: NaiveDate = DEMO_TODAY.parse()?;
    let prss = config.parent().unwrap_or(Path::new(".")).join("prss");
    println!();
    println!("PRSS records (as of {today}):");
    print!("  consents:     ");
    super::imports::consent_import(&gw, &prss.join("consents.json"), true, false, today)?;
    print!("  engagements:  ");
    super::imports::engagement_import(&gw, &prss.join("engagements.csv"), false)?;
    let mut store = super::open_sealed(&gw, &gw.store_path)?;
    store.revoke_consent("C-2026-005", "2026-11-20".parse()?)?;
    println!("  revoked:      C-2026-005 as of 2026-11-20 (a written revocation)");

    // Who would get what: the disclosure stage over every staged incident, then a dispatch.
    let mut per_dest: std::collections::BTreeMap<
        String,
        (u64, std::collections::BTreeMap<String, u64>),
    > = Default::default();
    let mut referrals = Vec::new();
    let mut observe = |dec: &pnp_gateway::policy::disclose::Decision| {
        let e = per_dest.entry(dec.destination.clone()).or_default();
        if dec.delivers() {
            e.0 += 1;
            if dec.profile == "consented-referral" {
                referrals.push(format!(
                    "{} -> {}: {}",
                    dec.incident,
                    dec.destination,
                    dec.fields.join(", ")
                ));
            }
        } else {
            let kind = dec
                .reasons
                .first()
                .and_then(|r| r.split(':').next())
                .unwrap_or("?")
                .to_string();
            *e.1.entry(kind).or_default() += 1;
        }
    };
    let (_, sent) = super::run::disclose_and_dispatch(
        &gw,
        &mut store,
        today,
        &mut Default::default(),
        &mut observe,
    )?;
    let incidents: u64 = store.incident_counts()?.iter().map(|(_, _, n)| n).sum();
    println!();
    println!(
        "who would get what ({} incidents x {} destinations; every decision is in the audit trail):",
        incidents,
        gw.destinations.len()
    );
    for dest in &gw.destinations {
        let (n, withheld) = per_dest.get(&dest.id).cloned().unwrap_or_default();
        println!(
            "  {:<14} {:<19} deliver {:>4}",
            dest.id,
            dest.profile.kind.as_str(),
            n
        );
        for (k, c) in withheld {
            println!("  {:<34} withhold {:>4}  {k}", "", c);
        }
    }
    println!("consented referrals (fields sent, never values in logs):");
    for r in &referrals {
        println!("  {r}");
    }
    println!("delivered now (outbox, then the destinations):");
    for (dest, d) in &gw.deliveries {
        let n = sent.delivered.get(dest).copied().unwrap_or(0);
        let to = d.kind.target();
        println!("  {dest:<14} {n:>4} payload(s) -> {to}");
    }
    let got = receiver.counts();
    println!(
        "  the local HTTPS receiver checked {} signed request(s) and took {} payload(s) into {}",
        got.requests,
        got.accepted,
        gw.path
            .parent()
            .unwrap_or(Path::new("."))
            .join("deliveries/dhhr-research/received.ndjson")
            .display()
    );
    let cfg = gw.path.display();
    println!("next:");
    let base = gw.path.parent().unwrap_or(Path::new("."));
    println!(
        "  pnp-gateway receive --listen {} --cert {} --key {} --secret-file {} --out {}   (the demo's receiver stops with the demo; this starts it again for `run`)",
        receiver.addr,
        base.join("state/tls/cert.pem").display(),
        base.join("state/tls/key.pem").display(),
        base.join("state/dhhr-research.secret").display(),
        base.join("deliveries/dhhr-research/received.ndjson")
            .display()
    );
    println!(
        "  pnp-gateway preview --config {cfg} {}",
        gw.pipelines
            .iter()
            .find(|p| p.id == "generic-cad-csv")
            .map(|p| p
                .folder
                .join("cad_export_2026-03.csv")
                .display()
                .to_string())
            .unwrap_or_default()
    );
    println!("  pnp-gateway audit verify --config {cfg}");
    println!("  pnp-gateway consent list --config {cfg}");
    Ok(ExitCode::SUCCESS)
}
