//! FHIR R4 referrals: the `fhir` destination POSTs a transaction Bundle to an independent HTTPS
//! receiver; the Bundle is then validated with tools that are not ours (tests/peers/
//! fhir_validate.py: Python's fhir.resources 6.4.0 R4 models and the official R4 JSON Schema).
//! The peers are set up by scripts/test.sh (PNP_PEERS_PYTHON, PNP_FHIR_SCHEMA).

mod common;

use common::peers::demo_with_https;
use common::*;
use std::process::Command;

fn peers() -> (String, String) {
    let python = std::env::var("PNP_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let schema = std::env::var("PNP_FHIR_SCHEMA")
        .expect("PNP_FHIR_SCHEMA is not set: run the tests with scripts/test.sh, which fetches the R4 schema and the Python peers");
    (python, schema)
}

#[test]
fn referral_bundles_validate_as_fhir_r4() {
    let (python, schema) = peers();
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
    let f = d.path().join("bundle.json");
    std::fs::write(&f, serde_json::to_vec(bundle).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(repo().join("tests/peers/fhir_validate.py"))
        .arg(&f)
        .arg(&schema)
        .output()
        .expect("python");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim() == "valid",
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let (python, schema) = peers();
    let d = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({
        "notice": "42 CFR part 2 prohibits unauthorized use or disclosure of these records.",
        "consent": {"id": "C-1", "information": ["identity"], "purpose": "treatment_referral", "recipient": "prestera", "expires_on": "2027-01-01"},
        "referral": {"engagement": "E-1", "service": "mat", "engaged_on": "2026-03-01", "prss": "PRSS-01"},
        "person": {"name": {"last": "DOE", "first": "JANE"}, "dob": "1990-07-04", "sex": "female"}
    });
    let mut bundle =
        pnp_gateway::deliver::fhir::bundle(&payload, "0123456789abcdef0123456789abcdef");
    let f = d.path().join("good.json");
    std::fs::write(&f, bundle.to_string()).unwrap();
    let ok = Command::new(&python)
        .arg(repo().join("tests/peers/fhir_validate.py"))
        .arg(&f)
        .arg(&schema)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    bundle["entry"][2]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("intent");
    bundle["entry"][0]["resource"]["gender"] = serde_json::json!("F");
    std::fs::write(&f, bundle.to_string()).unwrap();
    let bad = Command::new(&python)
        .arg(repo().join("tests/peers/fhir_validate.py"))
        .arg(&f)
        .arg(&schema)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{said}");
    assert!(said.contains("Task"), "{said}");
    assert!(said.contains("Patient"), "{said}");
}
