//! Files that hold a secret or an identifying value are the owner's only (0600 in 0700 folders,
//! src/owner_only.rs), and `check` warns about existing ones others can read.
#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn store_keys_and_referral_files_are_owner_only() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let base = cfg.parent().unwrap().to_path_buf();
    success(&cli(&["keys", "init"], &cfg));
    for k in ["vault", "audit", "outbox"] {
        assert_eq!(
            mode(&base.join(format!("state/keys/{k}.key"))),
            0o600,
            "{k}"
        );
    }
    assert_eq!(mode(&base.join("state/keys")), 0o700);
    assert_eq!(mode(&base.join("state")), 0o700);

    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let db = base.join("state/gateway.db");
    assert_eq!(mode(&db), 0o600);
    // While the store is open, SQLite's write-ahead log and shared memory exist: the same mode.
    let store = pnp_gateway::store::Store::open(&db).unwrap();
    store.quarantine().unwrap();
    for side in ["gateway.db-wal", "gateway.db-shm"] {
        assert_eq!(mode(&base.join("state").join(side)), 0o600, "{side}");
    }
    drop(store);

    // prestera is a consented-referral destination: its folder and files are the owner's only.
    let folder = base.join("deliveries/prestera");
    assert_eq!(mode(&folder), 0o700);
    let files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "a referral was delivered");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn check_warns_about_files_others_can_read() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let base = cfg.parent().unwrap().to_path_buf();
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let warnings = |cfg: &Path| {
        let out = cli(&["check"], cfg);
        success(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(!warnings(&cfg).contains("warning"));

    let db = base.join("state/gateway.db");
    let key = base.join("state/keys/vault.key");
    chmod(&db, 0o644);
    chmod(&key, 0o640);
    let err = warnings(&cfg);
    assert!(
        err.contains(&format!(
            "warning: {} (the store) can be read by group or others (mode 644)",
            db.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: {} (a key file)", key.display())),
        "{err}"
    );
    assert!(!err.contains("audit.key"), "{err}");
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(!err.contains(secret.trim()), "a path, never the contents");
    chmod(&db, 0o600);
    chmod(&key, 0o600);
    assert!(!warnings(&cfg).contains("warning"));
}
