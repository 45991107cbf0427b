//! The `fhir` destination's encoder: a consented referral as a FHIR R4 transaction Bundle of
//! Patient (the consented fields only), ServiceRequest, Task (`fulfill`, intent `order`, focus the
//! ServiceRequest, status `requested`) and Consent (scope patient-privacy, category IDSCL, policy
//! 42 CFR Part 2, a provision naming the recipient, purpose and period), each labelled
//! 42CFRPart2, ETH and R in `meta.security`. Built from the payload the profile produced: the
//! encoder never sees the incident. Validated in tests with Python's `fhir.resources` (R4) and the
//! official R4 JSON Schema.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// The labels every resource carries (the cancellation's Task too: `cancel.rs`).
pub(super) fn security() -> Value {
    json!([
        {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
        {"system": ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R", "display": "restricted"}
    ])
}

/// A UUID (RFC 4122 layout, version 5-like) derived from the idempotency key, so that a retried
/// Bundle has the same entry ids.
fn uuid(key: &str, what: &str) -> String {
    let h = Sha256::digest(format!("{key}|{what}").as_bytes());
    let mut s = crate::hex::encode(&h[..16]);
    s.replace_range(12..13, "5");
    let variant = ["8", "9", "a", "b"][(h[8] & 3) as usize];
    s.replace_range(16..17, variant);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The Bundle for one consented-referral payload.
pub fn bundle(payload: &Value, idempotency_key: &str) -> Value {
    let p = &payload["person"];
    let c = &payload["consent"];
    let r = &payload["referral"];
    let (pat, sr, task_url, cons) = (
        uuid(idempotency_key, "Patient"),
        uuid(idempotency_key, "ServiceRequest"),
        uuid(idempotency_key, "Task"),
        uuid(idempotency_key, "Consent"),
    );

    let mut patient = Map::new();
    patient.insert("resourceType".into(), json!("Patient"));
    patient.insert("meta".into(), json!({"security": security()}));
    let mut name = Map::new();
    if let Some(l) = p["name"]["last"].as_str() {
        name.insert("family".into(), json!(l));
    }
    let given: Vec<&str> = ["first", "middle"]
        .iter()
        .filter_map(|k| p["name"][k].as_str())
        .collect();
    if !given.is_empty() {
        name.insert("given".into(), json!(given));
    }
    if let Some(s) = p["name"]["suffix"].as_str() {
        name.insert("suffix".into(), json!([s]));
    }
    if !name.is_empty() {
        patient.insert("name".into(), json!([name]));
    }
    if let Some(d) = p["dob"].as_str() {
        patient.insert("birthDate".into(), json!(d));
    }
    if let Some(g) = p["sex"]
        .as_str()
        .filter(|g| ["male", "female", "other", "unknown"].contains(g))
    {
        patient.insert("gender".into(), json!(g));
    }
    let mut telecom: Vec<Value> = strs(&p["phones"])
        .into_iter()
        .map(|v| json!({"system": "phone", "value": v}))
        .collect();
    telecom.extend(
        strs(&p["emails"])
            .into_iter()
            .map(|v| json!({"system": "email", "value": v})),
    );
    if !telecom.is_empty() {
        patient.insert("telecom".into(), json!(telecom));
    }
    let a = &p["address"];
    let mut addr = Map::new();
    if let Some(s) = a["street"].as_str() {
        addr.insert("line".into(), json!([s]));
    }
    for (k, f) in [("city", "city"), ("state", "state"), ("zip", "postalCode")] {
        if let Some(v) = a[k].as_str() {
            addr.insert(f.into(), json!(v));
        }
    }
    if !addr.is_empty() {
        patient.insert("address".into(), json!([addr]));
    }
    let mut ids = Vec::new();
    for (k, system) in [
        ("ssn", "http://hl7.org/fhir/sid/us-ssn"),
        ("drivers_license", "urn:pnp-gateway:drivers-license"),
        ("mrn", "urn:pnp-gateway:mrn"),
        ("other", "urn:pnp-gateway:other-id"),
    ] {
        ids.extend(
            strs(&p["id"][k])
                .into_iter()
                .map(|v| json!({"system": system, "value": v})),
        );
    }
    if !ids.is_empty() {
        patient.insert("identifier".into(), json!(ids));
    }

    let service = r["service"].as_str().unwrap_or("unspecified");
    let authored = r["engaged_on"].as_str();
    let mut service_request = json!({
        "resourceType": "ServiceRequest",
        "meta": {"security": security()},
        "status": "active",
        "intent": "order",
        "category": [{"text": "Police and Peers referral"}],
        "code": {"coding": [{"system": "https://pnp-gateway.example/fhir/CodeSystem/referral-service", "code": service}], "text": service.replace('_', " ")},
        "subject": {"reference": pat},
        "requester": {"display": format!("Peer Recovery Support Specialist {}", r["prss"].as_str().unwrap_or("?"))},
        "note": [{"text": payload["notice"].as_str().unwrap_or_default()}],
    });
    if let Some(d) = authored {
        service_request["authoredOn"] = json!(d);
    }
    let mut task = json!({
        "resourceType": "Task",
        "meta": {"security": security()},
        "identifier": [{"system": "urn:pnp-gateway:idempotency-key", "value": idempotency_key}],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": sr},
        "for": {"reference": pat},
    });
    if let Some(d) = authored {
        task["authoredOn"] = json!(d);
    }
    let mut provision = json!({
        "type": "permit",
        "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
            "reference": {"display": c["recipient"].as_str().unwrap_or_default()}
        }],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": if c["purpose"] == "treatment_referral" { "TREAT" } else { "HOPERAT" }}],
        "class": strs(&c["information"]).into_iter().map(|i| json!({"system": "https://pnp-gateway.example/fhir/CodeSystem/information-class", "code": i})).collect::<Vec<_>>(),
    });
    if let Some(e) = c["expires_on"].as_str() {
        provision["period"] = json!({"end": e});
    }
    let consent = json!({
        "resourceType": "Consent",
        "meta": {"security": security()},
        "identifier": [{"system": "urn:pnp-gateway:consent", "value": c["id"].as_str().unwrap_or_default()}],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": ACT_CODE, "code": "IDSCL"}]}],
        "patient": {"reference": pat},
        "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
        "provision": provision,
    });
    let entry = |url: &str, resource: Value| {
        let kind = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        json!({"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": kind}})
    };
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(&pat, Value::Object(patient)),
            entry(&sr, service_request),
            entry(&task_url, task),
            entry(&cons, consent),
        ]
    })
}
