//! The real San Diego CAD export (tests/data/cad_csv, see PROVENANCE.md) through its adapter.

mod common;

use common::*;
use pnp_gateway::model::Category;
use std::collections::BTreeMap;

const SAMPLE: &str = "tests/data/cad_csv/sandiego_pd_calls_for_service_2023_first300.csv";

#[test]
fn every_row_is_an_incident_or_a_precise_rejection() {
    let a = adapter("sandiego-cfs");
    let out = read(&a, &repo().join(SAMPLE));
    assert_eq!(out.incidents.len() + out.rejected.len(), 300);
    for (pos, r) in &out.rejected {
        assert!(
            pos.line >= 2 && pos.record >= 1,
            "rejection without a position: {r:?}"
        );
        assert!(!r.reason.is_empty());
    }
    // This export is clean: every row maps.
    assert_eq!(out.rejected.len(), 0, "{:?}", out.rejected);
    // Record n is on line n + 1 (the header is line 1).
    for (pos, inc) in &out.incidents {
        assert_eq!(pos.line, pos.record + 1, "{}", inc.incident_id);
    }
    let first = &out.incidents[0].1;
    assert_eq!(first.incident_id, "E23010000001");
    assert_eq!(first.source.agency_ori.as_deref(), Some("CA0371100"));
    assert_eq!(
        first.times.received.unwrap().to_rfc3339(),
        "2023-01-01T00:00:05-08:00"
    );
    assert_eq!(first.location.beat.as_deref(), Some("523"));
}

#[test]
fn program_call_types_land_in_program_categories() {
    let a = adapter("sandiego-cfs");
    let out = read(&a, &repo().join(SAMPLE));
    let mut by_code: BTreeMap<String, (Category, bool, usize)> = BTreeMap::new();
    for (_, inc) in &out.incidents {
        let code = inc.call_type.as_ref().unwrap().code.clone();
        let e = by_code
            .entry(code)
            .or_insert((inc.category, inc.eligibility.eligible, 0));
        e.2 += 1;
        assert_eq!(e.0, inc.category);
    }
    let want = [
        ("1140OD", Category::Overdose),
        ("5150", Category::BehavioralHealth),
        ("647F", Category::SubstanceUse),
        ("11-8", Category::WelfareCheck),
        ("CW", Category::WelfareCheck),
    ];
    for (code, cat) in want {
        let (got, eligible, n) = by_code
            .get(code)
            .unwrap_or_else(|| panic!("{code} not in sample"));
        assert_eq!(*got, cat, "{code}");
        assert!(*eligible, "{code} should be eligible");
        assert!(*n >= 1);
    }
    // Violent calls are excluded; codes our table lacks are unmapped and reported as gaps.
    assert_eq!(by_code["245"].0, Category::Violent);
    assert!(!by_code["245"].1);
    assert!(!out.gaps.is_empty());
    for g in &out.gaps {
        assert_eq!(g.table, "calltype_category");
        assert_eq!(by_code[&g.code].0, Category::Unmapped);
    }
}

#[test]
fn normalize_cli_writes_json_lines_and_a_summary() {
    let out = bin()
        .current_dir(repo())
        .args(["normalize", "--adapter", "sandiego-cfs", SAMPLE])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 300);
    assert!(
        lines
            .iter()
            .all(|l| l["source"]["adapter"] == "sandiego-cfs")
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["incidents"], 300);
}
