//! Cancellations out (issue 11 item 7), on a small tree of our own: four HL7 referrals for one
//! consented-referral destination (and a de-identified one beside it). INC-9001 is delivered, then
//! cancelled at its source (REF^I14); INC-9002 is delivered, then its consent is revoked by an
//! import; INC-9003 is queued and cancelled in the same file, before any send; INC-9004 stays. Each destination
//! kind is checked against an independent peer: the REF^I14 by python-hl7's MLLP server and
//! hl7apy (strict v2.5.1), the FHIR Task update by fhir.resources and the R4 JSON Schema, the
//! webhook event by the Python receiver that verifies signatures.

mod common;

use common::peers::{mllp_peer, receiver, validate_fhir};
use common::*;
use std::path::{Path, PathBuf};

/// The destination under test is `intake`; `dhhr` is de-identified and gets no cancellation.
fn tree(dir: &Path, deliver: &str) -> PathBuf {
    let cfg = dir.join("gateway.toml");
    std::fs::create_dir_all(dir.join("exports/hl7")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"adapters_dir = "{adapters}"
[store]
path = "state/gateway.db"
[program]
include = ["overdose", "substance_use", "behavioral_health"]
[[pipeline]]
adapter = "hl7v2"
folder = "exports/hl7"
[keys]
vault_key_file = "state/keys/vault.key"
audit_key_file = "state/keys/audit.key"
outbox_key_file = "state/keys/outbox.key"
[[prss]]
id = "PRSS-09"
certification = "WVCBAPP-PRSS-0909"
certified_until = "2030-01-01"
[[destination]]
id = "intake"
profile = "consented-referral"
purpose = "treatment_referral"
{deliver}
retry = {{ initial_backoff_ms = 0, max_attempts = 5 }}
[[destination]]
id = "dhhr"
profile = "safe-harbor"
purpose = "program_evaluation"
deliver = {{ kind = "file", folder = "deliveries/dhhr" }}
"#,
            adapters = repo().join("adapters").display()
        ),
    )
    .unwrap();
    cfg
}

const PEOPLE: [(&str, &str, &str, &str); 4] = [
    ("9001", "RIVERS", "TAYLOR", "19910203"),
    ("9002", "BROOK", "SAM", "19880512"),
    ("9003", "STONE", "ALEX", "19790930"),
    ("9004", "FIELD", "JORDAN", "19950617"),
];

fn consent(n: &str, last: &str, first: &str, revoked: &str) -> String {
    format!(
        r#"{{"id": "C-{n}", "patient_name": "{last}, {first}", "disclosing": "Our County Police and Peers program", "information": ["identity", "contact", "referral"], "recipients": ["intake"], "purpose": "treatment_referral", "right_to_revoke_statement": "I may revoke this consent in writing at any time.", "expires_on": "2027-12-31", "signature": "{first} {last}", "signed_on": "2026-10-01"{revoked}}}"#
    )
}

fn hl7(event: &str, n: &str, last: &str, first: &str, dob: &str) -> String {
    [
        format!("MSH|^~\\&|EDIS|HOSP|GW|PNP|20261120101500-0500||REF^{event}^REF_I12|M{event}{n}|P|2.5.1"),
        format!("RF1|A^Active|R^Routine|MED^Medical||I^Inpatient|INC-{n}"),
        format!("PID|1||555{n}^^^HOSP^MR||{last}^{first}||{dob}|F"),
        "DG1|1||F11.20^Opioid dependence^I10|||A".to_string(),
    ]
    .join("\r")
        + "\r"
}

fn import(cfg: &Path, what: &str, file: &Path) -> String {
    let mut args = vec![what, "import"];
    if what == "consent" {
        args.extend(["--today", TODAY]);
    }
    args.push(file.to_str().unwrap());
    success(&cli(&args, cfg))
}

/// The referral rows' and cancellation rows' idempotency keys, by incident.
fn key_of(cfg: &Path, sql: &str) -> String {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn referral_key(cfg: &Path, n: &str) -> String {
    key_of(
        cfg,
        &format!(
            "SELECT idempotency_key FROM outbox WHERE destination = 'intake' AND incident_id = 'INC-{n}' AND cancels IS NULL"
        ),
    )
}

/// Consents of `people` to `intake`, and an engagement referring each one's incident there.
fn consent_and_engage(cfg: &Path, dir: &Path, people: &[(&str, &str, &str, &str)]) {
    let consents = dir.join("consents.json");
    let all: Vec<String> = people
        .iter()
        .map(|(n, l, f, _)| consent(n, l, f, ""))
        .collect();
    std::fs::write(&consents, format!("[{}]", all.join(",\n"))).unwrap();
    import(cfg, "consent", &consents);
    let engagements = dir.join("engagements.csv");
    let mut csv =
        "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\n"
            .to_string();
    for (n, ..) in people {
        csv += &format!("E-{n},INC-{n},hl7v2,subject,PRSS-09,C-{n},mat,intake,2026-11-20\n");
    }
    std::fs::write(&engagements, csv).unwrap();
    import(cfg, "engagement", &engagements);
}

/// An import of `PEOPLE[i]`'s consent revoked as of the day before [`TODAY`]; what it printed.
fn revoke_by_import(cfg: &Path, dir: &Path, i: usize) -> String {
    let (n, l, f, _) = PEOPLE[i];
    let revoked = dir.join("revoked.json");
    std::fs::write(
        &revoked,
        format!("[{}]", consent(n, l, f, r#", "revoked_on": "2026-11-26""#)),
    )
    .unwrap();
    import(cfg, "consent", &revoked)
}

/// Runs the whole story against the configured destination; returns the config.
fn story(dir: &Path, deliver: &str) -> PathBuf {
    let cfg = tree(dir, deliver);
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    consent_and_engage(&cfg, dir, &PEOPLE);

    // Four referrals; the third is cancelled in the same file, while it is still queued.
    let mut first: String = PEOPLE
        .iter()
        .map(|(n, l, f, d)| hl7("I12", n, l, f, d))
        .collect();
    let (n, l, f, d) = PEOPLE[2];
    first += &hl7("I14", n, l, f, d);
    std::fs::write(dir.join("exports/hl7/a.hl7"), first).unwrap();
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "intake", "delivered"), 3);
    assert_eq!(
        outbox_count(&cfg, "intake", "withdrawn"),
        1,
        "INC-9003 withdrawn"
    );

    // INC-9001 is cancelled at its source after delivery.
    let (n, l, f, d) = PEOPLE[0];
    std::fs::write(dir.join("exports/hl7/b.hl7"), hl7("I14", n, l, f, d)).unwrap();
    success(&cli(&["run", "--once"], &cfg));

    // C-9002 is revoked, by an import, after delivery.
    let imported = revoke_by_import(&cfg, dir, 1);
    success(&cli(&["run", "--once"], &cfg));

    // One cancellation per delivered referral, each after its referral and sent (the revoked
    // consent does not withdraw it); none for the referral withdrawn before any send, none for
    // the de-identified destination.
    let count = |sql: &str| store_count(&cfg, sql);
    assert_eq!(
        count(
            "SELECT count(*) FROM outbox c JOIN outbox r ON r.id = c.cancels WHERE c.destination = 'intake' AND c.status = 'delivered' AND c.id > r.id AND r.status = 'delivered' AND c.idempotency_key <> r.idempotency_key"
        ),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE cancels IS NOT NULL"),
        2
    );
    assert!(imported.contains("queued 1 cancellation"), "{imported}");
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE cancels IS NOT NULL AND incident_id = 'INC-9003'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE cancels IS NOT NULL AND destination = 'dhhr'"),
        0
    );
    // Audited: queued and delivered, with the reason code; no value of the person anywhere in
    // the trail.
    for (decision, reason) in [
        ("cancellation-queued", "incident_deleted"),
        ("cancellation-queued", "consent_revoked"),
        ("cancellation-delivered", ""),
    ] {
        let n = count(&format!(
            "SELECT count(*) FROM audit WHERE destination = 'intake' AND decision = '{decision}' AND reasons LIKE '%{reason}%'"
        ));
        assert!(n >= 1, "{decision} {reason}");
    }
    assert_eq!(
        count("SELECT count(*) FROM audit WHERE decision = 'cancellation-delivered'"),
        2
    );
    let db = rusqlite::Connection::open(dir.join("state/gateway.db")).unwrap();
    let trail: String = db
        .query_row(
            "SELECT group_concat(destination || profile || decision || reasons || coalesce(consent_id, '') || fields, '\n') FROM audit",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for (_, last, first, dob) in PEOPLE {
        for v in [last, first, dob] {
            assert!(!trail.contains(v), "{v} in the audit trail");
        }
    }
    success(&cli(&["audit", "verify"], &cfg));
    cfg
}

/// The Python receiver that verifies signatures, and the `deliver` line that sends `intake`'s
/// rows to it over HTTPS (`kind` webhook or fhir, at `path`).
fn https_receiver(dir: &Path, kind: &str, path: &str) -> (common::peers::Receiver, String) {
    let secret = dir.join("intake.secret");
    std::fs::write(&secret, "a-shared-secret-for-the-receiver-0123456789\n").unwrap();
    let rx = receiver(dir, &secret);
    let deliver = format!(
        "deliver = {{ kind = \"{kind}\", url = \"https://localhost:{}{path}\", secret_file = \"{}\", ca_file = \"{}\" }}",
        rx.port,
        secret.display(),
        dir.join("ca.pem").display()
    );
    (rx, deliver)
}

/// The tree with `intake` a webhook to the Python receiver (`more` added to its `deliver`
/// table), keys made, and the first `people` of [`PEOPLE`] consented and engaged.
fn webhook_tree(dir: &Path, more: &str, people: usize) -> (common::peers::Receiver, PathBuf) {
    let (rx, deliver) = https_receiver(dir, "webhook", "/hook");
    let cfg = tree(dir, &deliver.replace(" }", &format!("{more} }}")));
    success(&cli(&["keys", "init"], &cfg));
    consent_and_engage(&cfg, dir, &PEOPLE[..people]);
    (rx, cfg)
}

/// The story with `intake` delivering over HTTPS to the Python receiver.
fn https_story(dir: &Path, kind: &str, path: &str) -> (common::peers::Receiver, PathBuf) {
    let (rx, deliver) = https_receiver(dir, kind, path);
    let cfg = story(dir, &deliver);
    (rx, cfg)
}

#[test]
fn a_cancelled_or_revoked_referral_goes_out_as_a_ref_i14() {
    let python = std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
    let d = tempfile::tempdir().unwrap();
    let peer = mllp_peer(d.path(), &python, false);
    let cfg = story(
        d.path(),
        &format!(
            "deliver = {{ kind = \"hl7\", address = \"127.0.0.1:{}\", receiving_application = \"INTAKE\", receiving_facility = \"OURS\" }}",
            peer.port
        ),
    );
    let msgs = peer.messages();
    let types: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "REF^I12^REF_I12",
            "REF^I12^REF_I12",
            "REF^I12^REF_I12",
            "REF^I14^REF_I12",
            "REF^I14^REF_I12"
        ]
    );
    for (m, (n, reason)) in msgs[3..]
        .iter()
        .zip([("9001", "incident_deleted"), ("9002", "consent_revoked")])
    {
        let raw = m["raw"].as_str().unwrap();
        assert_eq!(
            m["hl7apy_valid"], true,
            "hl7apy refused: {}\n{raw}",
            m["why"]
        );
        assert_eq!(m["ack"], "AA");
        // The referral as the REF^I12 named it (RF1-6, PID-3), its key, the reason; no person.
        assert!(raw.contains(&format!("RF1||||||E-{n}|")), "{raw}");
        assert!(
            raw.contains(&format!("PID|1||E-{n}^^^PNP-GATEWAY^RI||^^^^^^S")),
            "{raw}"
        );
        assert!(raw.contains(&referral_key(&cfg, n)), "{raw}");
        assert!(raw.contains(reason), "{raw}");
        for (_, last, first, dob) in PEOPLE {
            for v in [last, first, dob] {
                assert!(!raw.contains(v), "{v} in the REF^I14");
            }
        }
        assert_ne!(m["control_id"], msgs[0]["control_id"]);
    }
}

#[test]
fn a_cancelled_or_revoked_referral_cancels_its_fhir_task() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = https_story(d.path(), "fhir", "/fhir");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    assert!(reqs.iter().all(|r| r["signature_ok"] == true));
    for (r, n) in reqs[3..].iter().zip(["9001", "9002"]) {
        let key = referral_key(&cfg, n);
        // The Task the referral created carries the key the update finds it by.
        let created = reqs[..3]
            .iter()
            .find(|c| c["idempotency_key"] == key.as_str())
            .expect("the referral was sent");
        let task = created["body"]["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Task")
            .unwrap();
        assert_eq!(
            task["resource"]["identifier"][0]["system"],
            "urn:pnp-gateway:idempotency-key"
        );
        assert_eq!(task["resource"]["identifier"][0]["value"], key.as_str());
        let b = &r["body"];
        assert_eq!(b["type"], "transaction");
        let e = &b["entry"][0];
        assert_eq!(e["request"]["method"], "PUT");
        assert_eq!(
            e["request"]["url"],
            format!("Task?identifier=urn:pnp-gateway:idempotency-key|{key}")
        );
        assert_eq!(e["resource"]["status"], "cancelled");
        assert_ne!(r["idempotency_key"], key.as_str(), "a key of its own");
        if let Err(said) = validate_fhir(d.path(), &format!("cancel-{n}.json"), b, &["Task"]) {
            panic!("{said}");
        }
        let text = b.to_string();
        for (_, last, first, _) in PEOPLE {
            assert!(!text.contains(last) && !text.contains(first), "{text}");
        }
    }
}

#[test]
fn a_cancelled_or_revoked_referral_is_a_signed_webhook_event() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = https_story(d.path(), "webhook", "/hook");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 5, "{reqs:?}");
    for (r, (n, reason)) in reqs[3..]
        .iter()
        .zip([("9001", "incident_deleted"), ("9002", "consent_revoked")])
    {
        assert_eq!(r["signature_ok"], true, "{r}");
        assert_eq!(r["content_type"], "application/json");
        let b = &r["body"];
        assert_eq!(b["event"], "referral.cancelled");
        assert_eq!(b["reason"], reason);
        assert_eq!(b["referral"]["id"], format!("E-{n}"));
        let key = referral_key(&cfg, n);
        assert_eq!(b["referral"]["idempotency_key"], key.as_str());
        assert!(
            reqs[..3]
                .iter()
                .any(|q| q["idempotency_key"] == key.as_str()),
            "the key the referral was sent under"
        );
        assert_ne!(r["idempotency_key"], key.as_str());
        assert!(b["cancelled_at"].as_str().unwrap().ends_with('Z'));
        let mut names: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["cancelled_at", "event", "reason", "referral"],
            "minimum data"
        );
    }
}

/// A revocation dated ahead takes effect at send time: the referral delivered before it is
/// cancelled by the first run on or after its date, once.
#[test]
fn a_revocation_dated_ahead_cancels_when_its_day_comes() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = https_story(d.path(), "webhook", "/hook");
    // C-9004 is revoked as of a day after TODAY; C-9001 too, whose referral is cancelled
    // already (its incident was deleted).
    for id in ["C-9004", "C-9001"] {
        success(&cli(&["consent", "revoke", id, "--on", "2026-11-28"], &cfg));
    }
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(rx.requests().len(), 5, "not yet");
    let later = |args: &[&str]| {
        success(
            &bin()
                .args(args)
                .arg("--config")
                .arg(&cfg)
                .env("PNP_GATEWAY_TODAY", "2026-11-28")
                .output()
                .unwrap(),
        )
    };
    later(&["run", "--once"]);
    later(&["run", "--once"]);
    let reqs = rx.requests();
    // One cancellation per referral: INC-9004's now, none more for INC-9001.
    assert_eq!(reqs.len(), 6, "{reqs:?}");
    assert_eq!(reqs[5]["body"]["referral"]["id"], "E-9004");
    assert_eq!(reqs[5]["body"]["reason"], "consent_revoked");
    assert_eq!(reqs[5]["signature_ok"], true);
}

/// A referral whose failed attempt may have reached the receiver (an HTTP 500: the receiver
/// may have kept the request before it failed) is cancelled when it is withdrawn, although it
/// was never delivered: by a delete of its incident, or by a revocation dated ahead once its day
/// comes (the referral dead-lettered meanwhile). One the receiver refused (a 400) is withdrawn
/// with nothing sent.
#[test]
fn a_referral_that_may_have_arrived_is_cancelled_when_withdrawn() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (rx, cfg) = webhook_tree(dir, "", 3);
    let referral = |file: &str, event: &str, i: usize| {
        let (n, l, f, dob) = PEOPLE[i];
        std::fs::write(dir.join("exports/hl7").join(file), hl7(event, n, l, f, dob)).unwrap();
        success(&cli(&["run", "--once"], &cfg));
    };
    let cancellations = || -> Vec<serde_json::Value> {
        rx.requests()
            .into_iter()
            .filter(|r| r["status"] == 200 && r["body"]["event"] == "referral.cancelled")
            .map(|r| r["body"].clone())
            .collect()
    };

    // INC-9001's referral meets a 500, then a 400 (dead-lettered); INC-9002's only a 400;
    // INC-9003's a 500 (still pending).
    rx.set(500);
    referral("a.hl7", "I12", 0);
    rx.set(400);
    referral("b.hl7", "I12", 1);
    rx.set(500);
    referral("c.hl7", "I12", 2);
    assert_eq!(outbox_count(&cfg, "intake", "dead"), 2);
    assert_eq!(outbox_count(&cfg, "intake", "pending"), 1);
    assert_eq!(outbox_count(&cfg, "intake", "delivered"), 0);
    // `outbox list` says which may have arrived: INC-9001's and INC-9003's.
    let listed = success(&cli(&["outbox", "list", "--destination", "intake"], &cfg));
    assert_eq!(listed.matches("(may have arrived)").count(), 2, "{listed}");
    let keys: Vec<String> = ["9001", "9002", "9003"]
        .iter()
        .map(|n| referral_key(&cfg, n))
        .collect();

    // INC-9003 deleted at its source: withdrawn, and cancelled.
    rx.set(200);
    referral("d.hl7", "I14", 2);
    let got = cancellations();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["referral"]["idempotency_key"], keys[2].as_str());
    assert_eq!(got[0]["reason"], "incident_deleted");

    // C-9002 revoked now: withdrawn, nothing sent. C-9001 revoked as of tomorrow: nothing yet.
    let imported = revoke_by_import(&cfg, dir, 1);
    assert!(!imported.contains("cancellation"), "{imported}");
    success(&cli(
        &["consent", "revoke", "C-9001", "--on", "2026-11-28"],
        &cfg,
    ));
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "intake", "dead"), 1, "INC-9001's waits");
    assert_eq!(cancellations().len(), 1);

    // Its day: the dead-lettered referral is withdrawn, and cancelled, once.
    for _ in 0..2 {
        success(
            &bin()
                .args(["run", "--once", "--config"])
                .arg(&cfg)
                .env("PNP_GATEWAY_TODAY", "2026-11-28")
                .output()
                .unwrap(),
        );
    }
    assert_eq!(outbox_count(&cfg, "intake", "withdrawn"), 3);
    let got = cancellations();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["referral"]["idempotency_key"], keys[0].as_str());
    assert_eq!(got[1]["referral"]["id"], "E-9001");
    assert_eq!(got[1]["reason"], "consent_revoked");
    assert!(
        rx.requests()
            .iter()
            .all(|r| r["body"]["referral"]["idempotency_key"] != keys[1].as_str()),
        "nothing for the referral the receiver refused"
    );
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM audit WHERE decision = 'cancellation-delivered'"
        ),
        2
    );
    success(&cli(&["audit", "verify"], &cfg));
}

/// A run stopped (kill -9) while a referral's request was with the receiver, before the answer:
/// the receiver may hold the referral, and what the store says of the attempt must say so. Its
/// consent revoked, the referral is withdrawn (not sent again) and the receiver told.
#[test]
fn a_referral_whose_send_a_crash_interrupted_is_cancelled_when_withdrawn() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (rx, cfg) = webhook_tree(dir, "", 1);
    let (n, l, f, dob) = PEOPLE[0];
    std::fs::write(dir.join("exports/hl7/a.hl7"), hl7("I12", n, l, f, dob)).unwrap();

    rx.hold();
    let mut run = cli_spawn(&["run", "--once"], &cfg);
    let start = std::time::Instant::now();
    while rx.requests().is_empty() {
        assert!(
            start.elapsed().as_secs() < 60,
            "the referral never reached the receiver"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run.kill().unwrap(); // SIGKILL: nothing after the send is recorded
    run.wait().unwrap();
    let key = referral_key(&cfg, n);
    assert_eq!(rx.requests()[0]["idempotency_key"], key.as_str());
    assert_eq!(outbox_count(&cfg, "intake", "pending"), 1);
    let listed = success(&cli(&["outbox", "list", "--destination", "intake"], &cfg));
    assert!(listed.contains("(may have arrived)"), "{listed}");

    rx.set(200);
    revoke_by_import(&cfg, dir, 0);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "intake", "withdrawn"), 1);
    let sent: Vec<serde_json::Value> = rx.requests().into_iter().skip(1).collect();
    assert_eq!(
        sent.len(),
        1,
        "one cancellation, and the referral not again: {sent:?}"
    );
    assert_eq!(sent[0]["status"], 200);
    assert_eq!(sent[0]["body"]["event"], "referral.cancelled");
    assert_eq!(sent[0]["body"]["referral"]["idempotency_key"], key.as_str());
    assert_eq!(sent[0]["body"]["reason"], "consent_revoked");
    success(&cli(&["audit", "verify"], &cfg));
}

/// A referral the senders never took (the destination failed on the one before it) never left:
/// it is not listed as one that may have arrived, and withdrawn, it gets no cancellation.
#[test]
fn a_referral_never_sent_gets_no_cancellation() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (rx, cfg) = webhook_tree(dir, ", concurrency = 1", 2);
    for (i, file) in ["a.hl7", "b.hl7"].iter().enumerate() {
        let (n, l, f, dob) = PEOPLE[i];
        std::fs::write(dir.join("exports/hl7").join(file), hl7("I12", n, l, f, dob)).unwrap();
    }
    rx.set(503);
    success(&cli(&["run", "--once"], &cfg));
    let first = referral_key(&cfg, PEOPLE[0].0);
    let never = referral_key(&cfg, PEOPLE[1].0);
    let keys: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, [first], "the 503 stops the pass before the second");
    let listed = success(&cli(&["outbox", "list", "--destination", "intake"], &cfg));
    assert_eq!(listed.matches("(may have arrived)").count(), 1, "{listed}");

    rx.set(200);
    let imported = revoke_by_import(&cfg, dir, 1);
    assert!(!imported.contains("cancellation"), "{imported}");
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "intake", "delivered"), 1);
    assert_eq!(outbox_count(&cfg, "intake", "withdrawn"), 1);
    assert!(
        rx.requests().iter().all(
            |r| r["body"]["referral"]["idempotency_key"] != never.as_str()
                && r["idempotency_key"] != never.as_str()
        ),
        "nothing of or about the referral that never left"
    );
    success(&cli(&["audit", "verify"], &cfg));
}
