//! Stopping `run` mid-file (cleanly or with SIGKILL) and restarting it: no record read twice,
//! none skipped. Growing, replaced and moved exports.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A gateway in `dir` with one pipeline over `drop/`, using the small test mapping.
fn gateway(dir: &Path, after: &str) -> PathBuf {
    write_adapter(
        dir,
        "small",
        "kind = \"csv\"\n[transport]\npattern = \"*.csv\"",
        SMALL_MAPPING,
    );
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!("[store]\npath = \"state/g.db\"\n[[pipeline]]\nadapter = \"small\"\nfolder = \"drop\"\nafter = \"{after}\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("drop")).unwrap();
    cfg
}

fn write_rows(path: &Path, from: u64, to: u64, header: bool) {
    let mut w = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    );
    if header {
        w.write_all(b"id,when,code,name,note\n").unwrap();
    }
    for i in from..to {
        let code = ["OD", "MH", "X", "ZZ"][(i % 4) as usize];
        writeln!(
            w,
            "{i},2024-01-01 10:00:00,{code},\"DOE, JANE {i}\",note {i}"
        )
        .unwrap();
    }
}

/// (records staged, distinct records, rejections) from the store.
fn counts(dir: &Path) -> (u64, u64, u64) {
    let c = rusqlite::Connection::open(dir.join("state/g.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    let d: i64 = c
        .query_row(
            "SELECT count(DISTINCT file || ':' || record) FROM incidents",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let q: i64 = c
        .query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))
        .unwrap();
    (n as u64, d as u64, q as u64)
}

fn run(cfg: &Path, extra: &[&str]) -> std::process::Output {
    let out = bin()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    success(&out);
    out
}

#[test]
fn stop_mid_file_and_restart_reads_every_record_once() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "keep");
    write_rows(&d.path().join("drop/a.csv"), 1, 2501, true);
    write_rows(&d.path().join("drop/b.csv"), 1, 301, true);
    run(&cfg, &["--max-records", "1234"]);
    assert_eq!(counts(d.path()), (1234, 1234, 0));
    run(&cfg, &["--max-records", "1500"]);
    assert_eq!(counts(d.path()), (2734, 2734, 0));
    run(&cfg, &[]);
    assert_eq!(counts(d.path()), (2800, 2800, 0));
    // A further run reads nothing.
    run(&cfg, &[]);
    assert_eq!(counts(d.path()).0, 2800);
    // Every record of a.csv is there exactly once, in order.
    let c = rusqlite::Connection::open(d.path().join("state/g.db")).unwrap();
    let ids: Vec<String> = c
        .prepare("SELECT incident_id FROM incidents WHERE file LIKE '%a.csv' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<String> = (1..2501).map(|i| i.to_string()).collect();
    assert_eq!(ids, want);
}

#[test]
fn sigkill_during_run_loses_nothing_and_duplicates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "keep");
    let total = 200_000;
    write_rows(&d.path().join("drop/big.csv"), 0, total, true);
    let mut kills = 0;
    for _attempt in 0..3 {
        let mut child = bin()
            .args(["run", "--once", "--config"])
            .arg(&cfg)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until some batches are committed, then kill without warning.
        let start = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            let staged = std::panic::catch_unwind(|| counts(d.path()).0).unwrap_or(0);
            if staged > (kills + 1) * 20_000 || start.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
        }
        child.wait().unwrap();
    }
    assert!(kills >= 1, "the run finished before it could be killed");
    run(&cfg, &[]);
    let (n, distinct, q) = counts(d.path());
    assert_eq!(q, 0);
    assert_eq!(distinct, total);
    assert_eq!(n, total, "a record was stored twice");
}

#[test]
fn grown_export_is_read_on_and_replaced_export_read_again() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "keep");
    let f = d.path().join("drop/feed.csv");
    write_rows(&f, 1, 11, true);
    run(&cfg, &[]);
    assert_eq!(counts(d.path()).0, 10);
    write_rows(&f, 11, 16, false);
    run(&cfg, &[]);
    assert_eq!(counts(d.path()), (15, 15, 0));
    // Replaced with different content under the same name: read from the start.
    std::fs::remove_file(&f).unwrap();
    std::fs::write(
        &f,
        "id,when,code,name,note\n99,2024-01-01 10:00:00,OD,A B,new\n",
    )
    .unwrap();
    run(&cfg, &[]);
    assert_eq!(counts(d.path()).0, 16);
}

#[test]
fn exports_are_kept_unless_the_adapter_says_move() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "keep");
    let f = d.path().join("drop/a.csv");
    write_rows(&f, 1, 5, true);
    let before = std::fs::read(&f).unwrap();
    run(&cfg, &[]);
    assert_eq!(
        std::fs::read(&f).unwrap(),
        before,
        "the export is untouched"
    );

    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "move");
    write_rows(&d.path().join("drop/a.csv"), 1, 5, true);
    run(&cfg, &[]);
    assert!(!d.path().join("drop/a.csv").exists());
    assert!(d.path().join("drop/processed/a.csv").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(d.path().join("drop/processed")).unwrap();
        assert_eq!(
            m.permissions().mode() & 0o777,
            0o700,
            "exports moved aside: owner-only"
        );
    }
    assert_eq!(counts(d.path()).0, 4);
}

#[test]
fn watched_folder_picks_up_a_dropped_file() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "keep");
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Written under a name the pattern ignores, then renamed: how exports should be dropped.
    let tmp = d.path().join("drop/late.csv.part");
    write_rows(&tmp, 1, 8, true);
    std::fs::rename(&tmp, d.path().join("drop/late.csv")).unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        n = std::panic::catch_unwind(|| counts(d.path()).0).unwrap_or(0);
        if n == 7 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(n, 7);
}
