//! Delivery from `run` on the demo config: the outbox (encrypted at rest, purged after delivery),
//! consent re-checked at send time, retries, dead-letter and replay, order per incident.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The demo tree with `edit` applied to its gateway.toml, keys made.
fn demo(edit: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, edit(text)).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    (d, cfg)
}

fn folder(cfg: &Path, name: &str) -> PathBuf {
    cfg.parent().unwrap().join("deliveries").join(name)
}

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            out.push(serde_json::from_str(l).unwrap());
        }
    }
    out
}

/// QRT's one referral was withdrawn for `reason`: payload purged, the withdrawal audited.
fn assert_one_withdrawn(cfg: &Path, reason: &str) {
    assert_eq!(
        store_count(
            cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'qrt-kanawha' AND status = 'withdrawn' AND payload IS NULL"
        ),
        1
    );
    assert_eq!(
        store_count(
            cfg,
            &format!(
                "SELECT count(*) FROM audit WHERE decision = 'withdrawn' AND reasons LIKE '%{reason}%'"
            )
        ),
        1
    );
}

fn db(cfg: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db")).unwrap()
}

#[test]
fn run_delivers_deidentified_data_then_referrals_once_engaged() {
    let (_d, cfg) = demo(|t| t);
    success(&cli(&["run", "--once"], &cfg));
    // DHHR's Safe Harbor drop: every eligible incident, no identifier.
    let dhhr = lines(&folder(&cfg, "dhhr-program"));
    assert_eq!(dhhr.len(), DEMO_ELIGIBLE);
    let text = serde_json::to_string(&dhhr).unwrap();
    assert_deidentified(&text, "DHHR");
    assert!(
        dhhr.iter()
            .all(|l| l["idempotency_key"].as_str().unwrap().len() == 32)
    );
    // No engagement yet: no referral.
    assert!(lines(&folder(&cfg, "prestera")).is_empty());
    // Delivered payloads are purged from the store.
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE status = 'delivered' AND payload IS NULL"
        ),
        DEMO_ELIGIBLE as i64
    );

    // The PRSS's engagement arrives: the incident is decided again, the referral goes out once.
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let referrals = lines(&folder(&cfg, "prestera"));
    assert_eq!(referrals.len(), 1);
    assert_eq!(referrals[0]["payload"]["person"]["name"]["last"], "DOE");
    assert_eq!(
        referrals[0]["payload"]["notice"],
        "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
    );
    // Re-deciding did not send DHHR anything twice.
    assert_eq!(lines(&folder(&cfg, "dhhr-program")).len(), DEMO_ELIGIBLE);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(lines(&folder(&cfg, "prestera")).len(), 1);
    let audit = success(&cli(&["audit", "verify"], &cfg));
    assert!(audit.starts_with("audit trail intact"), "{audit}");
    // DEMO_ELIGIBLE to DHHR, one referral to Prestera, one to the QRT (C-2026-005, not revoked here).
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM audit WHERE decision = 'delivered'"
        ),
        DEMO_ELIGIBLE as i64 + 2
    );
}

#[test]
fn revoked_while_queued_is_withdrawn_and_purged() {
    let (_d, cfg) = demo(|t| t);
    // The provider's folder cannot be created (a file stands in the way): referrals wait.
    std::fs::create_dir_all(folder(&cfg, "")).unwrap();
    std::fs::write(folder(&cfg, "qrt-kanawha"), b"not a folder").unwrap();
    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let pending: i64 = outbox_count(&cfg, "qrt-kanawha", "pending");
    assert_eq!(pending, 1, "C-2026-005's referral waits for the QRT");
    // Encrypted at rest: the queued payload holds no plaintext.
    let blob: Vec<u8> = db(&cfg)
        .query_row(
            "SELECT payload FROM outbox WHERE destination = 'qrt-kanawha'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let s = String::from_utf8_lossy(&blob);
    for plain in ["WHITE", "RILEY", "42 CFR", "suicid"] {
        assert!(!s.contains(plain), "{plain} in the sealed payload");
    }
    // The person revokes: the queued referral is withdrawn and purged at once; when the
    // destination comes back, nothing is sent.
    let out = success(&cli(
        &["consent", "revoke", "C-2026-005", "--on", "2026-11-26"],
        &cfg,
    ));
    assert!(out.contains("withdrew 1 queued referral"), "{out}");
    std::fs::remove_file(folder(&cfg, "qrt-kanawha")).unwrap();
    success(&cli(&["run", "--once"], &cfg));
    assert!(lines(&folder(&cfg, "qrt-kanawha")).is_empty());
    assert_one_withdrawn(&cfg, "consent_revoked");
}

#[test]
fn dead_letter_then_replay() {
    let (_d, cfg) = demo(|t| {
        t.replace(
            "deliver = { kind = \"file\", folder = \"deliveries/dhhr-program\" }",
            "deliver = { kind = \"file\", folder = \"deliveries/dhhr-program\" }\nretry = { max_attempts = 2, initial_backoff_ms = 0 }",
        )
    });
    std::fs::create_dir_all(folder(&cfg, "")).unwrap();
    std::fs::write(folder(&cfg, "dhhr-program"), b"in the way").unwrap();
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts = 1"
        ),
        DEMO_ELIGIBLE as i64
    );
    success(&cli(&["run", "--once"], &cfg));
    let dead = success(&cli(&["outbox", "dead"], &cfg));
    assert!(
        dead.trim_end()
            .ends_with(&format!("{DEMO_ELIGIBLE} row(s)")),
        "{dead}"
    );
    assert!(dead.contains("cannot create the folder"), "{dead}");
    // The other destinations were not held up.
    let ids: Vec<i64> = db(&cfg)
        .prepare("SELECT id FROM outbox WHERE status = 'dead' ORDER BY id LIMIT 2")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    std::fs::remove_file(folder(&cfg, "dhhr-program")).unwrap();
    let out = success(
        &bin()
            .args(["outbox", "replay"])
            .arg(ids[0].to_string())
            .arg(ids[1].to_string())
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert!(out.contains("queued again"), "{out}");
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(lines(&folder(&cfg, "dhhr-program")).len(), 2);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE replay_of IS NOT NULL AND status = 'delivered'"
        ),
        2
    );
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM audit WHERE decision = 'replayed'"
        ),
        2
    );
    let show = success(&cli(&["outbox", "show", &ids[0].to_string()], &cfg));
    assert!(show.contains("\"status\": \"dead\""), "{show}");
    assert!(!show.contains("payload\":{"), "show prints no payload");
    success(&cli(&["audit", "verify"], &cfg));
}

#[test]
fn one_incident_in_order_and_a_stuck_incident_blocks_no_other() {
    use pnp_gateway::store::Store;
    use pnp_gateway::store::outbox::{NewRow, SealKey};
    let d = tempfile::tempdir().unwrap();
    let mut store = Store::open(&d.path().join("s.db")).unwrap();
    let key = SealKey::from_secret(b"0123456789abcdef0123456789abcdef");
    let mut add = |incident: &str, digest: &str| {
        store
            .enqueue(
                &key,
                &NewRow {
                    destination: "x",
                    adapter: "a",
                    incident_id: incident,
                    profile: "safe-harbor",
                    consent_id: None,
                    person_token: None,
                    fields: &[],
                    payload: &serde_json::json!({"v": digest}),
                    payload_digest: digest,
                },
            )
            .unwrap()
    };
    let a1 = add("A", "1").unwrap();
    let a2 = add("A", "2").unwrap();
    let b1 = add("B", "1").unwrap();
    assert!(add("A", "1").is_none(), "the same payload is queued once");
    let now = "2099-01-01T00:00:00.000Z";
    let due_ids = |store: &Store, now: &str| -> Vec<i64> {
        store
            .due("x", now, 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    let due = due_ids(&store, now);
    assert_eq!(due, [a1, b1], "A's update waits behind A's first payload");
    // A's first payload fails and waits: A's update still waits, B goes on.
    store
        .mark_failed(a1, "down", Some("2099-01-01T01:00:00.000Z"), false)
        .unwrap();
    let due = due_ids(&store, now);
    assert_eq!(due, [b1]);
    store.mark_delivered(a1, false).unwrap();
    let due = due_ids(&store, now);
    assert_eq!(due, [a2, b1]);
    assert_eq!(store.payload(&key, a2).unwrap().unwrap()["v"], "2");
    assert!(
        store.payload(&key, a1).unwrap().is_none(),
        "purged once delivered"
    );
    let other = SealKey::from_secret(b"another key, also long enough.....");
    assert!(
        store.payload(&other, a2).is_err(),
        "a wrong key does not open a payload"
    );
}

#[test]
fn expired_while_queued_is_withdrawn_at_send_time() {
    let (_d, cfg) = demo(|t| {
        t.replace("deliver = { kind = \"file\", folder = \"deliveries/qrt-kanawha\" }", "deliver = { kind = \"file\", folder = \"deliveries/qrt-kanawha\" }\nretry = { initial_backoff_ms = 0 }")
    });
    std::fs::create_dir_all(folder(&cfg, "")).unwrap();
    std::fs::write(folder(&cfg, "qrt-kanawha"), b"not a folder").unwrap();
    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "qrt-kanawha", "pending"), 1);
    // A year later the destination is back, but C-2026-005 expired on 2027-11-02.
    std::fs::remove_file(folder(&cfg, "qrt-kanawha")).unwrap();
    let later = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("PNP_GATEWAY_TODAY", "2027-12-01")
        .output()
        .unwrap();
    success(&later);
    assert!(lines(&folder(&cfg, "qrt-kanawha")).is_empty());
    assert_one_withdrawn(&cfg, "consent_expired");
}

#[test]
fn staged_incidents_and_consents_are_sealed_at_rest_and_incidents_removed_after_their_retention() {
    let (_d, cfg) = demo(|t| t);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM incidents WHERE typeof(body) <> 'blob'"
        ),
        0,
        "every staged incident sealed"
    );
    // Nothing identifying in the store's files, the write-ahead log included.
    let state = cfg.parent().unwrap().join("state");
    for f in ["gateway.db", "gateway.db-wal"] {
        let bytes = std::fs::read(state.join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for v in [
            "EXAMPLE AVE",
            "(304) 555-0100",
            "123-45-6789",
            "unresponsive",
        ] {
            assert!(!text.contains(v), "{v} in {f}");
        }
    }
    // The PRSS's records still find their incidents (read back with the key); the consents,
    // which name the person, are sealed too.
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(lines(&folder(&cfg, "prestera")).len(), 1);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM consents WHERE typeof(body) <> 'blob'"
        ),
        0
    );
    let listed = success(&cli(&["consent", "list"], &cfg));
    assert!(listed.contains("C-2026-001"), "{listed}");
    for f in ["gateway.db", "gateway.db-wal"] {
        let bytes = std::fs::read(state.join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for v in ["DOE, JANE", "Jane Q Doe", "EXAMPLE AVE", "unresponsive"] {
            assert!(!text.contains(v), "{v} in {f}");
        }
    }

    // With a retention of 0 days, decided incidents are removed at once: an engagement that
    // comes afterwards is refused.
    let (_d2, cfg2) = demo(|t| {
        t.replace(
            "path = \"state/gateway.db\"",
            "path = \"state/gateway.db\"\nincident_retention_days = 0",
        )
    });
    success(&cli(&["run", "--once"], &cfg2));
    assert_eq!(store_count(&cfg2, "SELECT count(*) FROM incidents"), 0);
    let out = cli(
        &[
            "engagement",
            "import",
            prss_file(&cfg2, "engagements.csv").to_str().unwrap(),
        ],
        &cfg2,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("engagement E-2026-001: field `incident_id`: its incident was read and removed after its retention"),
        "{err}"
    );
}
