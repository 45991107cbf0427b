//! The poison-file guard: a file whose reading stops the process twice at the same place is
//! set aside (one quarantine entry for the whole file) and the other pipelines run.
//!
//! The abort comes from the debug builds' test hook `PNP_GATEWAY_FAULT_ABORT_ON` (see
//! `ingest::fault_hook`), standing in for a reader that runs out of memory.
#![cfg(debug_assertions)]

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Two pipelines, `a` over `drop_a/` (configured first) and `b` over `drop_b/`.
fn gateway(dir: &Path) -> PathBuf {
    for name in ["a", "b"] {
        write_adapter(
            dir,
            name,
            "kind = \"csv\"\n[transport]\npattern = \"*.csv\"",
            SMALL_MAPPING,
        );
        std::fs::create_dir_all(dir.join(format!("drop_{name}"))).unwrap();
    }
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        "[store]\npath = \"state/gateway.db\"\n\
         [[pipeline]]\nadapter = \"a\"\nfolder = \"drop_a\"\n\
         [[pipeline]]\nadapter = \"b\"\nfolder = \"drop_b\"\n",
    )
    .unwrap();
    cfg
}

fn rows(ids: std::ops::Range<u32>) -> String {
    let mut s = String::from("id,when,code,name,note\n");
    for i in ids {
        s.push_str(&format!("{i},2024-01-01 10:00:00,OD,A B,note {i}\n"));
    }
    s
}

fn run_aborting_on(cfg: &Path, name: &str) -> std::process::Output {
    bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .env("PNP_GATEWAY_FAULT_ABORT_ON", name)
        .output()
        .unwrap()
}

#[test]
fn a_file_that_aborts_the_reader_twice_is_set_aside_and_the_other_pipeline_runs() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path());
    std::fs::write(d.path().join("drop_a/poison.csv"), rows(1..4)).unwrap();
    std::fs::write(d.path().join("drop_b/good.csv"), rows(100..103)).unwrap();
    let incidents = "SELECT count(*) FROM incidents";

    // Twice: the process aborts while reading it; pipeline `b` (after it) never runs.
    for _ in 0..2 {
        let o = run_aborting_on(&cfg, "poison.csv");
        assert!(!o.status.success(), "the test hook aborts the run");
        assert_eq!(store_count(&cfg, incidents), 0);
    }

    // The third start sets it aside and reads pipeline `b`'s file in the same pass.
    let o = run_aborting_on(&cfg, "poison.csv");
    let out = success(&o);
    assert!(out.contains("poison_file"), "{out}");
    assert_eq!(store_count(&cfg, incidents), 3);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM incidents WHERE file LIKE '%good.csv'"
        ),
        3
    );
    let list = success(&cli(&["quarantine", "list"], &cfg));
    let line = list
        .lines()
        .find(|l| l.contains("poison.csv"))
        .unwrap_or_else(|| panic!("`quarantine list` names the file:\n{list}"));
    assert!(line.contains("[a] poison_file:"), "{line}");
    assert!(line.contains("set aside"), "{line}");
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM quarantine WHERE kind = 'poison_file'"
        ),
        1,
        "one entry for the whole file"
    );

    // Not read again (it would abort again), and not quarantined twice.
    success(&run_aborting_on(&cfg, "poison.csv"));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM quarantine WHERE kind = 'poison_file'"
        ),
        1
    );

    // Its content changed: another file, read.
    std::fs::write(d.path().join("drop_a/poison.csv"), rows(1..5)).unwrap();
    success(&cli(&["run", "--once"], &cfg));
    let poison_incidents = "SELECT count(*) FROM incidents WHERE file LIKE '%poison.csv'";
    assert_eq!(store_count(&cfg, poison_incidents), 4);

    // Replaced by another file that aborts twice: set aside again, then released by the
    // operator and read from its start.
    std::fs::write(d.path().join("drop_a/poison.csv"), rows(10..13)).unwrap();
    for aborts in [true, true, false] {
        let o = run_aborting_on(&cfg, "poison.csv");
        assert_eq!(o.status.success(), !aborts);
    }
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM quarantine WHERE kind = 'poison_file'"
        ),
        2
    );
    let o = cli(&["quarantine", "release", "nothing-set-aside.csv"], &cfg);
    assert!(!o.status.success(), "only a file set aside is released");
    let path = line.split(':').next().unwrap().to_owned();
    success(&cli(&["quarantine", "release", &path], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(store_count(&cfg, poison_incidents), 4 + 3);
}
