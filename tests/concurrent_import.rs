//! Imports while the gateway runs: an `engagement import` waits for another process's write
//! transaction instead of failing with "database is locked", and matches engagements to staged
//! incidents through an index (benchmark: `cargo test --test concurrent_import -- --ignored
//! --nocapture`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The demo read once (incidents staged), keys made, the PRSS's consents imported.
fn demo_with_consents(dir: &Path) -> PathBuf {
    let cfg = pnp_gateway::demo::write_tree(&dir.join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let consents = prss_file(&cfg, "consents.json");
    success(&cli(
        &[
            "consent",
            "import",
            "--accept-incomplete",
            "--today",
            TODAY,
            consents.to_str().unwrap(),
        ],
        &cfg,
    ));
    cfg
}

fn db(cfg: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db")).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c
}

#[test]
fn an_import_waits_for_another_writer_instead_of_failing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = demo_with_consents(d.path());
    // Another process (a busy `run`) holds a write transaction for 3 s and commits a write.
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder = {
        let c = db(&cfg);
        std::thread::spawn(move || {
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            c.execute(
                "INSERT INTO purged_incidents VALUES ('test-holder', 'T-HOLD-1', '2026-11-27T00:00:00.000Z')",
                [],
            )
            .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            c.execute_batch("COMMIT").unwrap();
        })
    };
    locked.recv().unwrap();
    let started = Instant::now();
    let engagements = prss_file(&cfg, "engagements.csv");
    let out = cli(
        &["engagement", "import", engagements.to_str().unwrap()],
        &cfg,
    );
    holder.join().unwrap();
    let text = success(&out);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the import did not wait for the writer"
    );
    assert!(text.contains("imported "), "{text}");
    let rows = std::fs::read_to_string(&engagements)
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(
        store_count(&cfg, "SELECT count(*) FROM engagements"),
        rows as i64
    );
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM purged_incidents WHERE adapter = 'test-holder'"
        ),
        1
    );
}

/// Benchmark, not a check: 1,200 engagements against 50,000 staged incidents, without and with
/// the index on the incident id.
#[test]
#[ignore]
fn bench_engagement_import_against_many_incidents() {
    const INCIDENTS: usize = 50_000;
    const ENGAGEMENTS: usize = 1_200;
    let d = tempfile::tempdir().unwrap();
    let cfg = demo_with_consents(d.path());
    {
        let mut c = db(&cfg);
        let tx = c.transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO incidents (at, adapter, file, record, line, incident_id, action, category, eligible, rule, body)
                     VALUES ('2026-11-27T00:00:00.000Z', 'generic-cad-csv', 'bench.csv', ?1, ?1, ?2, 'new', 'overdose', 1, 'bench', x'00')",
                )
                .unwrap();
            for i in 0..INCIDENTS {
                st.execute(rusqlite::params![i as i64, format!("B-{i:06}")])
                    .unwrap();
            }
        }
        // All of them through the disclosure stage already.
        tx.execute_batch(
            "INSERT OR IGNORE INTO disclosed (id, at) SELECT id, '2026-11-27T00:00:00.000Z' FROM incidents",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let import = |tag: &str| {
        let file = d.path().join(format!("engagements-{tag}.csv"));
        let mut text = String::from(
            "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\n",
        );
        for i in 0..ENGAGEMENTS {
            // Spread over the staged incidents; every one joins an incident.
            let n = (i * 37 + tag.len() * 7) % INCIDENTS;
            text.push_str(&format!(
                "E-{tag}-{i:05},B-{n:06},generic-cad-csv,subject,PRSS-01,C-2026-001,mat,prestera,2026-03-01\n"
            ));
        }
        std::fs::write(&file, text).unwrap();
        let t = Instant::now();
        success(&cli(
            &["engagement", "import", file.to_str().unwrap()],
            &cfg,
        ));
        t.elapsed()
    };
    let c = db(&cfg);
    c.execute_batch(
        "DROP INDEX IF EXISTS incidents_by_incident_id; DROP INDEX IF EXISTS purged_by_incident_id;",
    )
    .unwrap();
    let without = import("without");
    c.execute_batch(
        "CREATE INDEX incidents_by_incident_id ON incidents (incident_id, adapter);
         CREATE INDEX purged_by_incident_id ON purged_incidents (incident_id);",
    )
    .unwrap();
    let with = import("with");
    eprintln!(
        "{ENGAGEMENTS} engagements against {INCIDENTS} staged incidents: {:.2} s without the index, {:.2} s with it",
        without.as_secs_f64(),
        with.as_secs_f64()
    );
}
