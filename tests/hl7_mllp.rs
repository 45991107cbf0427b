//! HL7 v2.5.1 REF^I12 over MLLP to an independent peer (tests/peers/mllp_peer.py): python-hl7's
//! MLLP server receives, the peer decodes by MSH-18, hl7apy validates strictly, and the peer ACKs
//! with AA, AR or AE, or closes the connection without an ACK.
//! The Python peers are set up by scripts/test.sh (PNP_PEERS_PYTHON).

mod common;

use common::peers::{MllpPeer, mllp_peer};
use common::*;
use std::path::PathBuf;

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

/// The demo tree with Prestera delivering over MLLP to a fresh peer; `more` adds keys to the
/// deliver table (`, charset = "escape"`), `retry` is the destination's retry table.
fn demo_over_mllp(dir: &std::path::Path, more: &str, retry: &str) -> (MllpPeer, PathBuf) {
    let python = std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
    let peer = mllp_peer(dir, &python, false);
    let cfg = pnp_gateway::demo::write_tree(&dir.join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        &format!(
            "deliver = {{ kind = \"hl7\", address = \"127.0.0.1:{}\"{more} }}\nretry = {retry}",
            peer.port
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    (peer, cfg)
}

/// A CAD export of our own: one overdose call (naloxone given) whose subject is `subject`
/// ("LAST, FIRST"), with a narrative.
fn export(subject: &str, narrative: &str) -> String {
    format!(
        "IncidentNumber,ORI,CallType,CallTypeDesc,Priority,ReceivedTime,DispatchedTime,ArrivedTime,ClearedTime,Address,City,County,State,Zip,Latitude,Longitude,Beat,Disposition,NaloxoneGiven,WeaponInvolved,SubjectName,SubjectDOB,SubjectSex,SubjectRace,SubjectPhone,SubjectSSN,SubjectAddress,CallerName,CallerPhone,Narrative\n\
         2026-000901,WV0200100,OD,OVERDOSE,1,11/20/2026 22:05:10,11/20/2026 22:06:00,11/20/2026 22:12:30,11/20/2026 23:00:00,300 VIRGINIA ST E,CHARLESTON,KANAWHA,WV,25301,38.3500,-81.6300,B2,REF,Y,N,\"{subject}\",1988-05-17,M,W,304-555-0190,,,\"ROE, JOHN\",304-555-0199,\"{narrative}\"\n"
    )
}

/// Reads `export(subject, narrative)` with the demo's exports, then imports the demo's PRSS
/// records and, for the export's subject, a consent covering identity, referral and narrative
/// for Prestera, and an engagement referring them there.
fn with_referral(cfg: &std::path::Path, subject: &str, narrative: &str) {
    let demo = cfg.parent().unwrap();
    std::fs::write(
        demo.join("exports/generic/cad_901.csv"),
        export(subject, narrative),
    )
    .unwrap();
    success(&cli(&["check"], cfg));
    success(&cli(&["keys", "init"], cfg));
    success(&cli(&["run", "--once"], cfg));
    import_demo_records(cfg);
    let consent = demo.join("c901.json");
    std::fs::write(&consent, format!(r#"[{{"id": "C-2026-901", "patient_name": "{subject}", "patient_dob": "1988-05-17", "disclosing": "Kanawha County Police and Peers program", "information": ["identity", "referral", "narrative"], "recipients": ["prestera"], "purpose": "treatment_referral", "right_to_revoke_statement": "I may revoke this consent in writing at any time.", "expires_on": "2027-11-20", "signature": "{subject}", "signed_on": "2026-11-21"}}]"#)).unwrap();
    success(&cli(
        &[
            "consent",
            "import",
            "--today",
            TODAY,
            consent.to_str().unwrap(),
        ],
        cfg,
    ));
    let engagement = demo.join("e901.csv");
    std::fs::write(&engagement, "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\nE-2026-901,2026-000901,generic-cad-csv,subject,PRSS-01,C-2026-901,sud_treatment,prestera,2026-11-21\n").unwrap();
    success(&cli(
        &["engagement", "import", engagement.to_str().unwrap()],
        cfg,
    ));
}

const NARRATIVE: &str = "Found outside the cafe; one dose naloxone, revived, agreed to see a peer.";

/// Issue 11 item 5: a name that is not ASCII goes out as UTF-8 declared in MSH-18, which a
/// receiver decoding by MSH-18 takes (before: raw UTF-8 with MSH-18 empty, which the peer
/// could not decode as ASCII; it closed the connection, and the referral was retried).
#[test]
fn non_ascii_referral_declared_utf8() {
    let d = tempfile::tempdir().unwrap();
    let (peer, cfg) = demo_over_mllp(d.path(), "", "{ initial_backoff_ms = 0, max_attempts = 5 }");
    with_referral(&cfg, "NÚÑEZ, JOSÉ", "Found outside the café.");
    success(&cli(&["run", "--once"], &cfg));
    let msgs = peer.messages();
    assert!(
        msgs.iter().all(|m| m.get("decode_error").is_none()),
        "the peer could not decode a message: {msgs:?}"
    );
    assert_eq!(outbox_count(&cfg, "prestera", "delivered"), 2, "{msgs:?}");
    for m in &msgs {
        assert_eq!(m["hl7apy_valid"], true, "{}\n{}", m["why"], m["raw"]);
    }
    let jose = msgs
        .iter()
        .find(|m| m["pid_name"] == "NÚÑEZ^JOSÉ")
        .expect("José's referral");
    assert_eq!(jose["charset"], "UNICODE UTF-8");
    // Jane Doe's message is ASCII: it names no character set, as before.
    let jane = msgs.iter().find(|m| m["pid_name"] == "DOE^JANE^Q").unwrap();
    assert_eq!(jane["charset"], "");
}

/// Issue 11 item 5, `charset = "escape"`: the same referral as an ASCII message, MSH-18 empty,
/// each character outside ASCII as `\Xhh..\` of its UTF-8 bytes.
#[test]
fn non_ascii_referral_escaped_for_receivers_without_msh18() {
    let d = tempfile::tempdir().unwrap();
    let (peer, cfg) = demo_over_mllp(
        d.path(),
        ", charset = \"escape\"",
        "{ initial_backoff_ms = 0, max_attempts = 5 }",
    );
    with_referral(&cfg, "NÚÑEZ, JOSÉ", "Found outside the café.");
    success(&cli(&["run", "--once"], &cfg));
    let msgs = peer.messages();
    assert_eq!(outbox_count(&cfg, "prestera", "delivered"), 2, "{msgs:?}");
    let jose = msgs
        .iter()
        .find(|m| m["pid_name_text"] == "NÚÑEZ^JOSÉ")
        .expect("José's referral");
    assert_eq!(jose["charset"], "");
    assert_eq!(jose["hl7apy_valid"], true, "{}", jose["why"]);
    let raw = jose["raw"].as_str().unwrap();
    assert!(raw.is_ascii(), "{raw}");
    assert!(raw.contains("N\\XC39A\\\\XC391\\EZ^JOS\\XC389\\"), "{raw}");
    assert!(
        jose["nte_text"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("the café")),
        "{}",
        jose["nte_text"]
    );
}

/// Issue 11 item 10 (HL7): the referral's details travel in RF1 and NTE as the payload carries
/// them, the narrative only where the consent covers it.
#[test]
fn referral_details_in_rf1_and_nte() {
    let d = tempfile::tempdir().unwrap();
    let (peer, cfg) = demo_over_mllp(d.path(), "", "{ initial_backoff_ms = 0, max_attempts = 5 }");
    with_referral(&cfg, "NUNEZ, JOSE", NARRATIVE);
    success(&cli(&["run", "--once"], &cfg));
    let msgs = peer.messages();
    assert_eq!(outbox_count(&cfg, "prestera", "delivered"), 2, "{msgs:?}");
    for m in &msgs {
        assert_eq!(m["hl7apy_valid"], true, "{}\n{}", m["why"], m["raw"]);
    }
    let jose = msgs.iter().find(|m| m["pid_name"] == "NUNEZ^JOSE").unwrap();
    // RF1: active, routine, the service requested, the engagement, its day, the category.
    assert_eq!(jose["rf1"][1], "A^Active^HL70283");
    assert_eq!(jose["rf1"][3], "sud_treatment^sud treatment^L");
    assert_eq!(jose["rf1"][6], "E-2026-901");
    assert_eq!(jose["rf1"][7], "20261121");
    assert_eq!(jose["rf1"][10], "overdose^overdose^L");
    assert_eq!(
        jose["nte_type"],
        serde_json::json!(["", "", "1R^Primary Reason^HL70364", "RE^Remark^HL70364"])
    );
    let details = jose["nte_text"][2].as_str().unwrap();
    for part in [
        "Incident category: overdose",
        "Service requested: sud treatment",
        "Naloxone administered: yes",
        "Call received: 2026-11-20T22:05:10",
    ] {
        assert!(details.contains(part), "{part} not in {details}");
    }
    assert_eq!(jose["nte_text"][3], NARRATIVE);
    // Jane Doe's consent (C-2026-001) covers identity, contact and referral, not the narrative:
    // her details travel, her narrative does not.
    let jane = msgs.iter().find(|m| m["pid_name"] == "DOE^JANE^Q").unwrap();
    assert_eq!(
        jane["nte_type"],
        serde_json::json!(["", "", "1R^Primary Reason^HL70364"])
    );
    assert!(
        jane["nte_text"][2]
            .as_str()
            .unwrap()
            .contains("Naloxone administered: yes")
    );
    assert!(!jane["raw"].as_str().unwrap().contains("unresponsive"));
}

/// Issue 11 item 6: a receiver that closes the connection without an ACK. Two referrals go out
/// on one connection: the first is acknowledged, the second is answered by a close, and so is
/// every later attempt. Each attempt sends the message once and counts (before, the close was
/// taken for an idle one and the message sent again at once, uncounted); after `max_attempts`
/// the referral is dead-lettered with the reason, and later runs do not send it again.
#[test]
fn a_receiver_that_closes_without_an_ack_dead_letters_after_max_attempts() {
    let d = tempfile::tempdir().unwrap();
    let (peer, cfg) = demo_over_mllp(d.path(), "", "{ initial_backoff_ms = 0, max_attempts = 3 }");
    with_referral(&cfg, "NUNEZ, JOSE", NARRATIVE);
    peer.ack_with("AA,CLOSE");
    for _ in 0..5 {
        success(&cli(&["run", "--once"], &cfg));
    }
    let msgs = peer.messages();
    assert_eq!(outbox_count(&cfg, "prestera", "delivered"), 1, "{msgs:?}");
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'dead' AND attempts = 3"
        ),
        1
    );
    let closed: Vec<_> = msgs.iter().filter(|m| m["ack"] == "CLOSE").collect();
    assert_eq!(closed.len(), 3, "one send per attempt: {msgs:?}");
    assert!(
        closed
            .iter()
            .all(|m| m["control_id"] == closed[0]["control_id"])
    );
    let dead = success(&cli(&["outbox", "dead"], &cfg));
    assert!(
        dead.contains("no ACK: the receiver closed the connection without one"),
        "{dead}"
    );
    success(&cli(&["audit", "verify"], &cfg));
}
