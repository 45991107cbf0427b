//! HL7 v2.5.1 REF^I12 over MLLP to an independent peer (tests/peers/mllp_peer.py): python-hl7's
//! MLLP server receives, hl7apy validates strictly, and the peer ACKs with AA, AR or AE.
//! The Python peers are set up by scripts/test.sh (PNP_PEERS_PYTHON).

mod common;

use common::peers::mllp_peer;
use common::*;

#[test]
fn referrals_over_mllp_acked_retried_and_dead_lettered() {
    let python = std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
    let d = tempfile::tempdir().unwrap();
    let peer = mllp_peer(d.path(), &python, false);
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        &format!(
            "deliver = {{ kind = \"hl7\", address = \"127.0.0.1:{}\", receiving_application = \"INTAKE\", receiving_facility = \"PRESTERA\" }}\nretry = {{ initial_backoff_ms = 0, max_attempts = 5 }}",
            peer.port
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);

    // AR: rejected for now, retried with the same MSH-10; then AA.
    peer.ack_with("AR");
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'pending' AND attempts = 1"
        ),
        1
    );
    peer.ack_with("AA");
    success(&cli(&["run", "--once"], &cfg));
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    for m in &msgs {
        assert_eq!(
            m["hl7apy_valid"], true,
            "hl7apy refused: {}\n{}",
            m["why"], m["raw"]
        );
        assert_eq!(m["type"], "REF^I12^REF_I12");
        assert_eq!(m["accept_ack"], "", "original mode");
        assert_eq!(m["tls"], false);
    }
    assert_eq!(
        msgs[0]["control_id"], msgs[1]["control_id"],
        "one MSH-10 across retries"
    );
    assert_eq!(msgs[1]["pid_name"], "DOE^JANE^Q");
    assert_eq!(
        msgs[1]["nte"][0],
        "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
    );
    assert_eq!(outbox_count(&cfg, "prestera", "delivered"), 1);
    // Only the consented fields: C-2026-001 covers identity, contact and referral: no SSN.
    assert!(!msgs[1]["raw"].as_str().unwrap().contains("123456789"));

    // AE: an error in the message: dead-lettered at once.
    peer.ack_with("AE");
    let c2 = cfg.parent().unwrap().join("c2.json");
    std::fs::write(&c2, r#"[{"id": "C-2026-008", "patient_name": "WHITE, RILEY", "disclosing": "Kanawha County Police and Peers program", "information": ["identity", "referral"], "recipients": ["prestera"], "purpose": "treatment_referral", "right_to_revoke_statement": "I may revoke this consent in writing at any time.", "expires_on": "2027-11-02", "signature": "Riley White", "signed_on": "2026-11-03"}]"#).unwrap();
    success(&cli(
        &["consent", "import", "--today", TODAY, c2.to_str().unwrap()],
        &cfg,
    ));
    let e2 = cfg.parent().unwrap().join("e2.csv");
    std::fs::write(&e2, "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\nE-2026-008,2026-000114,generic-cad-csv,subject,PRSS-01,C-2026-008,mental_health,prestera,2026-11-03\n").unwrap();
    success(&cli(&["engagement", "import", e2.to_str().unwrap()], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let dead = success(&cli(&["outbox", "dead"], &cfg));
    assert!(
        dead.contains("AE: the receiver found an error in the message"),
        "{dead}"
    );
    let msgs = peer.messages();
    assert_eq!(msgs.last().unwrap()["pid_name"], "WHITE^RILEY");
    assert_eq!(
        msgs.last().unwrap()["hl7apy_valid"],
        true,
        "{}",
        msgs.last().unwrap()["why"]
    );
    success(&cli(&["audit", "verify"], &cfg));
}

#[test]
fn enhanced_mode_over_tls_settles_on_the_commit_ack() {
    let python = std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
    let d = tempfile::tempdir().unwrap();
    let peer = mllp_peer(d.path(), &python, true);
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        &format!(
            "deliver = {{ kind = \"hl7\", address = \"127.0.0.1:{}\", ack_mode = \"enhanced\", tls = true, server_name = \"localhost\", ca_file = \"{}\" }}\nretry = {{ initial_backoff_ms = 0, max_attempts = 5 }}",
            peer.port,
            d.path().join("ca.pem").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);
    // CR: the receiver cannot commit it now: retried; then CA: done.
    peer.ack_with("CR");
    success(&cli(&["run", "--once"], &cfg));
    peer.ack_with("CA");
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'delivered' AND attempts = 2"
        ),
        1
    );
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        assert_eq!(m["tls"], true);
        assert_eq!(m["accept_ack"], "AL");
        assert_eq!(m["app_ack"], "NE");
        assert_eq!(m["hl7apy_valid"], true, "{}\n{}", m["why"], m["raw"]);
    }
    // A certificate the gateway does not trust: no connection, nothing sent.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "server_name = \"localhost\"",
        "server_name = \"intake.example.org\"",
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(peer.messages().len(), 2);
}
