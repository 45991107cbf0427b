//! `consent import`, `engagement import` and `engagement list`: the PRSS's records into the
//! store. A bad record does not throw the good ones away: each is reported with the file, the
//! line an editor shows, the field and the reason (never a value: a misplaced column may hold a
//! name), the others are imported, and the exit code is 1. `--atomic` imports nothing when any
//! record is bad.

use anyhow::Result;
use chrono::NaiveDate;
use pnp_gateway::config::Gateway;
use pnp_gateway::ingest::records::{self, At, Bad, Records};
use pnp_gateway::model::Engagement;
use pnp_gateway::policy::consent::missing_elements;
use pnp_gateway::store::registry::{Imported, Refused};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The problems found in one file, as printed: `FILE:LINE: KIND ID: field `F`: REASON`.
struct Report<'a> {
    file: String,
    kind: &'a str,
    errors: Vec<String>,
}

impl Report<'_> {
    fn add(&mut self, at: At, id: Option<&str>, field: Option<&str>, reason: &str) {
        let mut s = format!("{}:{at}: ", self.file);
        if let Some(id) = id.filter(|i| !i.trim().is_empty()) {
            s += &format!("{} {id}: ", self.kind);
        }
        if let Some(f) = field {
            s += &format!("field `{f}`: ");
        }
        s += reason;
        self.errors.push(s);
    }

    fn bad(&mut self, b: &Bad) {
        self.add(b.at, b.id.as_deref(), b.field.as_deref(), &b.reason);
    }

    fn refused(&mut self, at: At, id: &str, rs: &[Refused]) {
        for r in rs {
            self.add(at, Some(id), r.field, &r.reason);
        }
    }

    fn print(&self) {
        for e in &self.errors {
            eprintln!("error: {e}");
        }
    }

    /// With `--atomic` and a bad record: the errors, and nothing imported.
    fn abort(&self) -> ExitCode {
        self.print();
        eprintln!("nothing imported (--atomic)");
        ExitCode::FAILURE
    }

    /// 1 if any record was bad.
    fn code(&self) -> ExitCode {
        if self.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// A file that cannot be read as a whole (unreadable, JSON syntax, CSV header).
fn unreadable(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("nothing imported");
    ExitCode::FAILURE
}

/// Ids that appear more than once in the file, with the lines they appear on: every such
/// record is refused, as nothing says which one is right.
fn duplicates<'a>(ids: impl Iterator<Item = (&'a str, At)>) -> BTreeMap<&'a str, Vec<usize>> {
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (id, at) in ids {
        lines.entry(id).or_default().push(at.line);
    }
    lines.values_mut().for_each(|l| l.sort_unstable());
    lines.retain(|_, l| l.len() > 1);
    lines
}

fn twice(lines: &[usize]) -> String {
    let l: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    format!(
        "the id appears more than once in the file (lines {})",
        l.join(", ")
    )
}

/// Checks consents before import: every element present (unless `accept_incomplete`), signed
/// no later than today, a revocation not before the signature, ids unique in the file,
/// recipients that are destinations or their designations. A revocation in the file
/// (`revoked_on`) is recorded, and what waits under it is withdrawn as `consent revoke` does.
pub fn consent_import(
    gw: &Gateway,
    file: &Path,
    accept_incomplete: bool,
    atomic: bool,
    today: NaiveDate,
) -> Result<ExitCode> {
    let Records { rows, bad } = match records::read_consents(file) {
        Ok(r) => r,
        Err(e) => return Ok(unreadable(&e)),
    };
    let mut report = Report {
        file: file.display().to_string(),
        kind: "consent",
        errors: Vec::new(),
    };
    bad.iter().for_each(|b| report.bad(b));
    let mut rejected = bad.len();
    let dups = duplicates(
        rows.iter()
            .map(|(at, r)| (r.consent.id.as_str(), *at))
            .chain(bad.iter().filter_map(|b| Some((b.id.as_deref()?, b.at)))),
    );
    let mut good = Vec::new();
    for (at, row) in &rows {
        let c = &row.consent;
        let before = report.errors.len();
        let mut fault = |field: Option<&str>, reason: &str| {
            report.add(*at, Some(&c.id), field, reason);
        };
        if c.id.trim().is_empty() {
            fault(Some("id"), "is empty");
        }
        if let Some(lines) = dups.get(c.id.as_str()) {
            fault(Some("id"), &twice(lines));
        }
        let missing = missing_elements(c);
        if !missing.is_empty() && !accept_incomplete {
            fault(
                None,
                &format!(
                    "lacks element(s) {} (42 CFR 2.31(a)); --accept-incomplete records it anyway, and it will permit nothing",
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if c.signed_on.is_some_and(|s| s > today) {
            fault(
                Some("signed_on"),
                &format!("is in the future (after {today})"),
            );
        }
        if let (Some(r), Some(s)) = (row.revoked_on, c.signed_on)
            && r < s
        {
            fault(Some("revoked_on"), "is before `signed_on`");
        }
        for (i, r) in c.recipients.iter().enumerate() {
            let known = gw.destinations.iter().any(|d| {
                d.id == *r
                    || r.strip_prefix("general:")
                        .is_some_and(|g| d.designations.iter().any(|x| x == g))
            });
            if !known {
                fault(
                    Some("recipients"),
                    &format!(
                        "entry {} of {} is no destination id, nor `general:` and a designation of one, in {}",
                        i + 1,
                        c.recipients.len(),
                        gw.path.display()
                    ),
                );
            }
        }
        if report.errors.len() == before {
            good.push((*at, row));
        } else {
            rejected += 1;
        }
    }
    if atomic && rejected > 0 {
        return Ok(report.abort());
    }
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let input: Vec<_> = good
        .iter()
        .map(|(_, r)| (&r.consent, r.revoked_on))
        .collect();
    let outcomes = store.import_consents(&input, atomic)?;
    let (mut added, mut present, mut revoked) = (0, 0, Vec::new());
    for ((at, row), o) in good.iter().zip(&outcomes) {
        match o {
            Ok(i) => {
                match i.imported {
                    Imported::Added => added += 1,
                    Imported::Present => present += 1,
                }
                if i.revocation_recorded {
                    revoked.push((row.consent.id.as_str(), row.revoked_on.unwrap()));
                }
            }
            Err(r) => {
                rejected += 1;
                report.refused(*at, &row.consent.id, r);
            }
        }
    }
    if atomic && rejected > 0 {
        return Ok(report.abort());
    }
    report.print();
    println!(
        "imported {added} consent(s), {present} already present, {rejected} rejected{}",
        if revoked.is_empty() {
            String::new()
        } else {
            format!("; {} revocation(s) recorded", revoked.len())
        }
    );
    for (id, on) in revoked {
        let n = super::privacy::withdraw_queued(gw, &mut store, id, on, today)?;
        if n > 0 {
            println!("consent {id}: withdrew {n} queued referral(s) and purged their payloads");
        }
    }
    Ok(report.code())
}

/// Checks engagements before import: ids unique in the file, a provider that is a destination,
/// a PRSS on the roster; the store checks the consent and the incident. One whose incident has
/// not been read yet is kept pending (not an error) and joins the incident when it is read.
pub fn engagement_import(gw: &Gateway, file: &Path, atomic: bool) -> Result<ExitCode> {
    let Records { rows, bad } = match records::read::<Engagement>(file) {
        Ok(r) => r,
        Err(e) => return Ok(unreadable(&e)),
    };
    let mut report = Report {
        file: file.display().to_string(),
        kind: "engagement",
        errors: Vec::new(),
    };
    bad.iter().for_each(|b| report.bad(b));
    let mut rejected = bad.len();
    let dups = duplicates(
        rows.iter()
            .map(|(at, e)| (e.id.as_str(), *at))
            .chain(bad.iter().filter_map(|b| Some((b.id.as_deref()?, b.at)))),
    );
    let mut good = Vec::new();
    for (at, e) in &rows {
        let before = report.errors.len();
        if let Some(lines) = dups.get(e.id.as_str()) {
            report.add(*at, Some(&e.id), Some("id"), &twice(lines));
        }
        if !gw.destinations.iter().any(|d| d.id == e.provider) {
            let reason = format!("is no destination in {}", gw.path.display());
            report.add(*at, Some(&e.id), Some("provider"), &reason);
        }
        if !gw.roster.iter().any(|p| p.id == e.prss_id) {
            report.add(
                *at,
                Some(&e.id),
                Some("prss_id"),
                "is not on the PRSS roster",
            );
        }
        if report.errors.len() == before {
            good.push((*at, e));
        } else {
            rejected += 1;
        }
    }
    if atomic && rejected > 0 {
        return Ok(report.abort());
    }
    let mut store = super::open_sealed(gw, &gw.store_path)?;
    let input: Vec<&Engagement> = good.iter().map(|(_, e)| *e).collect();
    let outcomes = store.import_engagements(&input, atomic)?;
    let (mut added, mut present, mut pending) = (0, 0, Vec::new());
    for ((at, e), o) in good.iter().zip(&outcomes) {
        match o {
            Ok(i) => {
                match i.imported {
                    Imported::Added => added += 1,
                    Imported::Present => present += 1,
                }
                if !i.joined {
                    pending.push(format!(
                        "{}:{at}: engagement {}: pending: incident not read yet",
                        report.file, e.id
                    ));
                }
            }
            Err(r) => {
                rejected += 1;
                report.refused(*at, &e.id, r);
            }
        }
    }
    if atomic && rejected > 0 {
        return Ok(report.abort());
    }
    report.print();
    let mut o = std::io::stdout().lock();
    for p in &pending {
        writeln!(o, "{p}")?;
    }
    writeln!(
        o,
        "imported {added} engagement(s), {present} already present, {rejected} rejected{}",
        if pending.is_empty() {
            String::new()
        } else {
            format!("; {} pending: incident not read yet", pending.len())
        }
    )?;
    Ok(report.code())
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
