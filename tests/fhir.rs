//! FHIR R4 referrals: the `fhir` destination POSTs a transaction Bundle to an independent HTTPS
//! receiver; the Bundle is then validated with tools that are not ours (tests/peers/
//! fhir_validate.py: Python's fhir.resources 6.4.0 R4 models and the official R4 JSON Schema).
//! The peers are set up by scripts/test.sh (PNP_PEERS_PYTHON, PNP_FHIR_SCHEMA).

mod common;

use common::peers::{certs, demo_with_https};
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Runs tests/peers/fhir_validate.py on `bundle`: `Ok` or the validator's errors.
fn validate(dir: &Path, bundle: &Value) -> Result<(), String> {
    common::peers::validate_fhir(dir, "to-validate.json", bundle, &[])
}

/// The entry of `bundle` holding a resource of type `kind`.
fn resource<'a>(bundle: &'a Value, kind: &str) -> &'a Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {bundle}"))
}

#[test]
fn referral_bundles_validate_as_fhir_r4() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(d.path(), "prestera", "fhir", "/fhir", "");
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0]["content_type"], "application/fhir+json");
    assert_eq!(reqs[0]["signature_ok"], true);
    let bundle = &reqs[0]["body"];
    assert_eq!(bundle["type"], "transaction");
    if let Err(said) = validate(d.path(), bundle) {
        panic!("{said}");
    }
    // Only what C-2026-001 covers (identity, contact, referral): no SSN, no police record.
    let text = bundle.to_string();
    assert!(text.contains("\"family\":\"DOE\""), "{text}");
    for absent in ["123456789", "us-ssn", "2026-000101", "OVERDOSE"] {
        assert!(!text.contains(absent), "{absent} in the Bundle");
    }
}

#[test]
fn a_broken_bundle_is_caught_by_the_validator() {
    // The validator is not a rubber stamp: a Task without its required intent fails.
    let d = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({
        "notice": "42 CFR part 2 prohibits unauthorized use or disclosure of these records.",
        "consent": {"id": "C-1", "information": ["identity"], "purpose": "treatment_referral", "recipient": "prestera", "expires_on": "2027-01-01"},
        "referral": {"engagement": "E-1", "service": "mat", "engaged_on": "2026-03-01", "prss": "PRSS-01"},
        "person": {"name": {"last": "DOE", "first": "JANE"}, "dob": "1990-07-04", "sex": "female"}
    });
    let mut bundle =
        pnp_gateway::deliver::fhir::bundle(&payload, "0123456789abcdef0123456789abcdef");
    if let Err(said) = validate(d.path(), &bundle) {
        panic!("{said}");
    }
    bundle["entry"][2]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("intent");
    bundle["entry"][0]["resource"]["gender"] = serde_json::json!("F");
    let said = validate(d.path(), &bundle).expect_err("an invalid Bundle is refused");
    assert!(said.contains("Task"), "{said}");
    assert!(said.contains("Patient"), "{said}");
}

/// tests/peers/fhir_server.py, a FHIR server that implements conditional create as the
/// specification describes; killed when dropped.
struct FhirServer {
    child: Child,
    port: u16,
    log: PathBuf,
    mode: PathBuf,
    store: PathBuf,
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FhirServer {
    fn start(dir: &Path, secret: &Path) -> FhirServer {
        let (_, cert, key) = certs(dir);
        let (log, mode, store) = (
            dir.join("fhir.ndjson"),
            dir.join("fhir.mode"),
            dir.join("fhir-store.json"),
        );
        std::fs::write(&mode, "200").unwrap();
        let mut child = Command::new("python3")
            .arg(repo().join("tests/peers/fhir_server.py"))
            .args([&cert, &key, &secret.to_path_buf(), &log, &mode, &store])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the FHIR server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        FhirServer {
            child,
            port,
            log,
            mode,
            store,
        }
    }

    fn set(&self, mode: &str) {
        std::fs::write(&self.mode, mode).unwrap();
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The stored resources of type `kind`.
    fn stored(&self, kind: &str) -> Vec<Value> {
        let store: Value =
            serde_json::from_slice(&std::fs::read(&self.store).unwrap_or(b"{}".to_vec())).unwrap();
        store[kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r["resource"].clone())
            .collect()
    }
}

/// The demo tree with prestera delivering to a fresh [`FhirServer`], `extra` more TOML for it.
fn demo_with_fhir_server(dir: &Path, extra: &str) -> (FhirServer, PathBuf) {
    let secret = dir.join("prestera.secret");
    std::fs::write(&secret, "a-shared-secret-for-the-fhir-server-0123456789\n").unwrap();
    let srv = FhirServer::start(dir, &secret);
    let cfg = pnp_gateway::demo::write_tree(&dir.join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        &format!(
            "deliver = {{ kind = \"fhir\", url = \"https://localhost:{}/fhir\", secret_file = \"{}\", ca_file = \"{}\" }}\n{extra}",
            srv.port,
            secret.display(),
            dir.join("ca.pem").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    (srv, cfg)
}

#[test]
fn a_retried_transaction_stores_each_resource_once() {
    // The server commits the first attempt and then answers 500 (or its answer is lost): the
    // gateway retries the byte-identical Bundle, and the server, doing conditional creates,
    // must end with one Patient, ServiceRequest, Task and Consent, linked to one another.
    let d = tempfile::tempdir().unwrap();
    let (srv, cfg) = demo_with_fhir_server(
        d.path(),
        "retry = { initial_backoff_ms = 0, max_backoff_ms = 0, max_attempts = 5 }",
    );
    import_demo_records(&cfg);
    srv.set("commit-then-500");
    success(&cli(&["run", "--once"], &cfg));
    for kind in ["Patient", "ServiceRequest", "Task", "Consent"] {
        assert_eq!(srv.stored(kind).len(), 1, "{kind} after the first attempt");
    }
    srv.set("200");
    success(&cli(&["run", "--once"], &cfg));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0]["status"], 500);
    assert_eq!(reqs[1]["status"], 200, "{reqs:?}");
    assert!(reqs.iter().all(|r| r["signature_ok"] == true));
    assert_eq!(reqs[0]["raw"], reqs[1]["raw"], "a retry is byte-identical");
    assert_eq!(reqs[0]["idempotency_key"], reqs[1]["idempotency_key"]);
    for kind in ["Patient", "ServiceRequest", "Task", "Consent"] {
        assert_eq!(srv.stored(kind).len(), 1, "{kind} stored more than once");
    }
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'delivered'"
        ),
        1
    );
    // The stored resources reference one another, not a duplicate.
    let id = |kind: &str| format!("{kind}/{}", srv.stored(kind)[0]["id"].as_str().unwrap());
    let (sr, task, consent) = (
        &srv.stored("ServiceRequest")[0],
        &srv.stored("Task")[0],
        &srv.stored("Consent")[0],
    );
    assert_eq!(sr["subject"]["reference"], id("Patient"));
    assert_eq!(task["for"]["reference"], id("Patient"));
    assert_eq!(task["focus"]["reference"], id("ServiceRequest"));
    assert_eq!(consent["patient"]["reference"], id("Patient"));
    // The Task keeps the identifier a cancellation finds it by: the row's idempotency key.
    assert_eq!(
        task["identifier"][0],
        json!({"system": "urn:pnp-gateway:idempotency-key", "value": reqs[0]["idempotency_key"]})
    );
    // The Patient's business identifier is no value of the person.
    let bundle: Value = serde_json::from_str(reqs[1]["raw"].as_str().unwrap()).unwrap();
    let patient_id = &resource(&bundle, "Patient")["identifier"][0];
    assert_eq!(patient_id["system"], "urn:pnp-gateway:referral-patient");
    let v = patient_id["value"].as_str().unwrap();
    assert!(
        !["DOE", "JANE", "1990", "0704", "3045550100"]
            .iter()
            .any(|x| v.contains(x)),
        "a value of the person in the Patient's business identifier"
    );
    validate(d.path(), &bundle).unwrap();
}

#[test]
fn the_consent_carries_when_it_was_signed_and_who_discloses() {
    // C-2026-001 was signed on 2026-03-01 for the Kanawha County Police and Peers program.
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(d.path(), "prestera", "fhir", "/fhir", "");
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let reqs = rx.requests();
    let bundle = &reqs[0]["body"];
    let consent = resource(bundle, "Consent");
    assert_eq!(consent["dateTime"], "2026-03-01", "{consent}");
    assert_eq!(
        consent["organization"],
        json!([{"display": "Kanawha County Police and Peers program"}]),
        "{consent}"
    );
    validate(d.path(), bundle).unwrap();
}

#[test]
fn the_service_request_carries_the_consented_referral_details() {
    // C-2026-001 covers identity, contact and referral (category, call time, naloxone), not the
    // narrative: the ServiceRequest carries the first, never the second.
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(d.path(), "prestera", "fhir", "/fhir", "");
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    let reqs = rx.requests();
    let bundle = &reqs[0]["body"];
    let sr = resource(bundle, "ServiceRequest");
    assert_eq!(sr["code"]["coding"][0]["code"], "mat", "{sr}");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "overdose", "{sr}");
    let notes: Vec<&str> = sr["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert!(
        notes.contains(&"Call received: 2026-03-01T01:12:40-05:00"),
        "{notes:?}"
    );
    assert!(notes.contains(&"Naloxone administered: yes"), "{notes:?}");
    assert!(
        !notes.iter().any(|n| n.starts_with("Narrative")),
        "{notes:?}"
    );
    validate(d.path(), bundle).unwrap();

    // A consent that covers the narrative: it travels, as the profile left it.
    let payload = json!({
        "notice": "42 CFR part 2 prohibits unauthorized use or disclosure of these records.",
        "consent": {"id": "C-1", "information": ["identity", "referral", "narrative"], "purpose": "treatment_referral", "recipient": "prestera", "expires_on": "2027-01-01", "signed_on": "2026-02-27", "disclosing": "A program"},
        "referral": {"engagement": "E-1", "service": "sud_treatment", "engaged_on": "2026-03-01", "prss": "PRSS-01"},
        "incident": {"category": "substance_use", "naloxone_administered": false, "times": {"received": "2026-02-28T23:05:00-05:00"}, "narrative": "Subject asked for help with treatment."},
        "person": {"name": {"last": "ROE", "first": "RAY"}}
    });
    let bundle = pnp_gateway::deliver::fhir::bundle(&payload, "fedcba9876543210fedcba9876543210");
    let sr = resource(&bundle, "ServiceRequest");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "substance_use");
    assert_eq!(sr["reasonCode"][0]["text"], "substance use");
    let notes = sr["note"].to_string();
    for want in [
        "Narrative: Subject asked for help with treatment.",
        "Naloxone administered: no",
        "Call received: 2026-02-28T23:05:00-05:00",
    ] {
        assert!(notes.contains(want), "{want} not in {notes}");
    }
    assert_eq!(resource(&bundle, "Consent")["dateTime"], "2026-02-27");
    validate(d.path(), &bundle).unwrap();

    // Without a consented `incident` part, none of it: only the notice.
    let mut bare = payload.clone();
    bare.as_object_mut().unwrap().remove("incident");
    let bundle = pnp_gateway::deliver::fhir::bundle(&bare, "fedcba9876543210fedcba9876543210");
    let sr = resource(&bundle, "ServiceRequest");
    assert!(sr.get("reasonCode").is_none(), "{sr}");
    assert_eq!(sr["note"].as_array().unwrap().len(), 1, "{sr}");
    validate(d.path(), &bundle).unwrap();
}
