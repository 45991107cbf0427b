//! examples/delivery/gateway.toml, every destination kind in one config, run end to end by
//! `pnp-gateway run` against independent peers on their own ports: the Python HTTPS receiver
//! (JSON referrals and FHIR Bundles, validated by fhir.resources and the R4 schema), the
//! python-hl7 MLLP peer (hl7apy strict validation), librdkafka's mock cluster, and a folder of
//! CSV files read back with Python's csv module.

mod common;

use common::peers::{mllp_peer, receiver, validate_fhir};
use common::*;
use std::path::Path;
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn every_destination_kind_from_the_example_config() {
    let python = std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
    let d = tempfile::tempdir().unwrap();
    // The demo tree (adapters, mappings, the exports this example reads), then the example.
    pnp_gateway::demo::write_tree(&d.path().join("tree")).unwrap();
    let ex = d.path().join("tree/examples/delivery");
    copy_dir(&repo().join("examples/delivery"), &ex);
    let cfg = ex.join("gateway.toml");

    // The peers, on ports of their own.
    std::fs::create_dir_all(ex.join("state")).unwrap();
    let secret = ex.join("state/prestera.secret");
    std::fs::write(&secret, "a-shared-secret-for-the-receiver-0123456789\n").unwrap();
    let peers = d.path().join("peers");
    std::fs::create_dir_all(&peers).unwrap();
    let rx = receiver(&peers, &secret);
    std::fs::create_dir_all(ex.join("receiver-tls")).unwrap();
    std::fs::copy(peers.join("ca.pem"), ex.join("receiver-tls/ca.pem")).unwrap();
    let mllp_dir = d.path().join("mllp");
    std::fs::create_dir_all(&mllp_dir).unwrap();
    let mllp = mllp_peer(&mllp_dir, &python, false);
    let kafka = rdkafka::mocking::MockCluster::new(1).unwrap();
    kafka.create_topic("pnp.program", 1, 1).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("localhost:8443", &format!("localhost:{}", rx.port))
        .replace("127.0.0.1:2575", &format!("127.0.0.1:{}", mllp.port))
        .replace("127.0.0.1:9092", &kafka.bootstrap_servers());
    std::fs::write(&cfg, text).unwrap();

    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let prss = ex.join("prss");
    success(&cli(
        &[
            "consent",
            "import",
            "--today",
            TODAY,
            prss.join("consents.json").to_str().unwrap(),
        ],
        &cfg,
    ));
    success(&cli(
        &[
            "engagement",
            "import",
            prss.join("engagements.csv").to_str().unwrap(),
        ],
        &cfg,
    ));
    success(&cli(&["run", "--once"], &cfg));

    for (dest, n) in [
        ("prestera", 1),
        ("prestera-fhir", 1),
        ("prestera-hl7", 1),
        // The generic export's 8 eligible incidents (one in the repeated autumn hour).
        ("dhhr-stream", 8),
        ("dhhr-drop", 8),
    ] {
        assert_eq!(outbox_count(&cfg, dest, "delivered"), n, "{dest}");
    }
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE status <> 'delivered'"
        ),
        0
    );

    // HTTPS: one JSON referral, one FHIR Bundle that validates as R4.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs.iter().all(|r| r["signature_ok"] == true));
    let json = reqs.iter().find(|r| r["path"] == "/referrals").unwrap();
    assert_eq!(json["body"]["person"]["name"]["last"], "DOE");
    let fhir = reqs.iter().find(|r| r["path"] == "/fhir").unwrap();
    if let Err(said) = validate_fhir(d.path(), "bundle.json", &fhir["body"], &[]) {
        panic!("{said}");
    }

    // MLLP: one REF^I12, valid for hl7apy.
    let msgs = mllp.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["hl7apy_valid"], true, "{}", msgs[0]["why"]);
    assert_eq!(msgs[0]["pid_name"], "DOE^JANE^Q");

    // The CSV drop: files of at most 10 records, read back by Python's csv module.
    let drop = ex.join("deliveries/dhhr-drop");
    let files: Vec<_> = std::fs::read_dir(&drop).unwrap().flatten().collect();
    assert_eq!(files.len(), 2, "8 records in files of at most 5");
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import csv, glob, json, sys\n\
             rows = [r for f in sorted(glob.glob(sys.argv[1] + '/*.csv')) for r in csv.DictReader(open(f, newline=''))]\n\
             print(json.dumps(rows))",
        )
        .arg(&drop)
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 8);
    for r in &rows {
        assert_eq!(r["idempotency_key"].as_str().unwrap().len(), 32);
        assert_eq!(r["profile"], "safe-harbor");
        assert!(
            r["incident.incident_id"]
                .as_str()
                .unwrap()
                .starts_with("I-")
        );
    }
    let text = serde_json::to_string(&rows).unwrap();
    assert_deidentified(&text, "DHHR's drop");
}
