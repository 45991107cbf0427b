//! A file delivery killed before its rename leaves a hidden temporary file with payloads in the
//! destination's folder. The next run removes it (and nothing else there), and the payloads
//! reach the folder once, in finished files.

mod common;

use common::*;
use std::collections::BTreeSet;

#[test]
fn a_run_removes_the_unfinished_files_a_killed_delivery_left() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    let folder = cfg.parent().unwrap().join("deliveries/dhhr-program");
    std::fs::create_dir_all(&folder).unwrap();
    // As a delivery killed mid-write leaves it: the destination's temporary name, payload lines.
    let left = folder.join(".dhhr-program-20261127T101500123Z-1.ndjson.tmp");
    let line = r#"{"idempotency_key":"k","destination":"dhhr-program","payload":{"incident":{}}}"#;
    std::fs::write(&left, format!("{line}\n{line}\n{{\"idempotency")).unwrap();
    // Not the gateway's, or not this destination's: kept.
    let others = [
        ".dhhr-program-notes.tmp",
        ".dhhr-program-x-20261127T101500123Z-1.ndjson.tmp",
        "readme.tmp",
    ];
    for o in others {
        std::fs::write(folder.join(o), "ours\n").unwrap();
    }

    success(&cli(&["run", "--once"], &cfg));

    assert!(
        !left.exists(),
        "the unfinished delivery file is still there"
    );
    for o in others {
        assert!(folder.join(o).exists(), "{o} was removed");
    }
    let mut keys = Vec::new();
    for e in std::fs::read_dir(&folder).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") {
            continue;
        }
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            keys.push(v["idempotency_key"].as_str().unwrap().to_string());
        }
    }
    // The demo's eligible incidents, each once.
    assert_eq!(keys.len(), DEMO_ELIGIBLE);
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), DEMO_ELIGIBLE);
}
