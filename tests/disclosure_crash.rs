//! The disclosure stage's group commits under SIGKILL: a large backlog of staged incidents, the
//! gateway killed several times while it decides them (groups interrupted part-way), then run to
//! the end. Every incident is decided once per destination, nothing is lost or duplicated, every
//! audited delivery has its outbox row and the reverse, and the audit chain verifies.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// `n` overdose calls in the demo's generic CAD format (incident numbers 2027-000001..), each
/// with the demo's first person: every one eligible.
fn export(n: usize) -> String {
    // The sample is Windows-1252 further down; its first two lines are ASCII.
    let bytes =
        std::fs::read(repo().join("examples/demo/exports/generic/cad_export_2026-03.csv")).unwrap();
    let sample = String::from_utf8_lossy(&bytes);
    let mut lines = sample.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap(); // 2026-000101, an overdose
    let rest = row.strip_prefix("2026-000101,").unwrap();
    let mut out = format!("{header}\n");
    for i in 1..=n {
        out.push_str(&format!("2027-{i:06},{rest}\n"));
    }
    out
}

fn count(cfg: &Path, sql: &str) -> i64 {
    // The store may be mid-write (or locked) while a run goes on: a failed read counts as -1.
    std::panic::catch_unwind(|| store_count(cfg, sql)).unwrap_or(-1)
}

#[test]
fn kill_9_during_the_disclosure_stage_loses_nothing_and_duplicates_nothing() {
    const N: usize = 6_000;
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let full = std::fs::read_to_string(&cfg).unwrap();
    let dir = cfg.parent().unwrap();
    std::fs::write(
        dir.join("exports/generic/cad_export_2027-01.csv"),
        export(N),
    )
    .unwrap();
    // First only read in (no destinations: no disclosure stage), so that the kills below all
    // fall in the disclosure stage or after it.
    let (head, _) = full.split_once("[[destination]]").unwrap();
    std::fs::write(&cfg, head).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let staged = store_count(&cfg, "SELECT count(*) FROM incidents");
    assert!(staged > N as i64, "{staged}");
    std::fs::write(&cfg, &full).unwrap();
    let destinations = full.matches("[[destination]]").count() as i64;

    let disclosed = "SELECT count(*) FROM incidents WHERE id NOT IN (SELECT id FROM undisclosed)";
    let mut kills_mid_stage = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while kills_mid_stage < 4 && Instant::now() < deadline {
        let before = count(&cfg, disclosed);
        let mut child = cli_spawn(&["run", "--once"], &cfg);
        // Kill once the run has moved on by a few groups (a fifth of the rest, at least).
        let target = before + ((staged - before) / 5).max(1);
        loop {
            std::thread::sleep(Duration::from_millis(15));
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if count(&cfg, disclosed) >= target || Instant::now() > deadline {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        child.wait().unwrap();
        let after = count(&cfg, disclosed);
        eprintln!("killed: {before} -> {after} of {staged} incidents through the stage");
        if after > before && after < staged {
            kills_mid_stage += 1;
        } else {
            break; // the stage finished before the kill
        }
    }
    assert!(
        kills_mid_stage >= 2,
        "the kills did not fall in the disclosure stage ({kills_mid_stage})"
    );
    // Restarted for good: it finishes.
    success(&cli(&["run", "--once"], &cfg));

    assert_eq!(store_count(&cfg, "SELECT count(*) FROM undisclosed"), 0);
    // One decision per incident and destination: none lost, none made twice.
    assert_eq!(
        store_count(
            &cfg,
            "SELECT sum(count) FROM audit WHERE decision IN ('deliver', 'withhold')"
        ),
        staged * destinations
    );
    // One outbox row per delivering decision to a destination that delivers, and the reverse.
    let queued_without_audit = store_count(
        &cfg,
        "SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM audit a
           WHERE a.decision = 'deliver' AND a.destination = o.destination
             AND a.payload_digest = o.payload_digest)",
    );
    assert_eq!(queued_without_audit, 0);
    let audited_without_row = store_count(
        &cfg,
        "SELECT count(*) FROM audit a WHERE a.decision = 'deliver'
           AND a.destination IN (SELECT DISTINCT destination FROM outbox)
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.destination = a.destination
             AND o.payload_digest = a.payload_digest)",
    );
    assert_eq!(audited_without_row, 0);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM (SELECT destination, adapter, incident_id FROM outbox
               GROUP BY destination, adapter, incident_id HAVING count(*) > 1)"
        ),
        0,
        "an incident was queued twice for a destination"
    );
    assert!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'dhhr-program'"
        ) >= N as i64
    );
    // The chain holds: a group's audit entries and the chain's head commit together.
    let audit = success(&cli(&["audit", "verify"], &cfg));
    assert!(audit.starts_with("audit trail intact"), "{audit}");
}
