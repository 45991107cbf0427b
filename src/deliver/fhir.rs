//! The `fhir` destination's encoder: a consented referral as a FHIR R4 transaction Bundle of
//! Patient (the consented fields only), ServiceRequest (the service, and the referral details the
//! consent covers: category, call time, naloxone, narrative), Task (`fulfill`, intent `order`,
//! focus the ServiceRequest, status `requested`) and Consent (scope patient-privacy, category
//! IDSCL, policy 42 CFR Part 2, signed date, disclosing program, a provision naming the recipient,
//! purpose and period), each labelled 42CFRPart2, ETH and R in `meta.security`. Built from the
//! payload the profile produced: the encoder never sees the incident. Validated in tests with
//! Python's `fhir.resources` (R4) and the official R4 JSON Schema.
//!
//! Every entry is a conditional create (`request.ifNoneExist` on the resource's business
//! identifier, see [`identifier`]): a retried Bundle is byte-identical, and a server that
//! committed an earlier attempt (and then failed to answer) must not store the referral twice.

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

/// The system of the Task's (and the ServiceRequest's) business identifier, whose value is the
/// outbox row's idempotency key. Kept as it is: a Task cancellation finds the Task by it.
pub const IDEMPOTENCY_KEY_SYSTEM: &str = "urn:pnp-gateway:idempotency-key";
/// The system of the Patient's business identifier (see [`identifier`]).
pub const REFERRAL_PATIENT_SYSTEM: &str = "urn:pnp-gateway:referral-patient";
/// The system of the Consent's business identifier (see [`identifier`]).
pub const REFERRAL_CONSENT_SYSTEM: &str = "urn:pnp-gateway:referral-consent";

/// The business identifier (system, value) of the resource of type `kind` that the referral with
/// `idempotency_key` creates, on which its entry's conditional create searches.
///
/// All four come from the outbox row's idempotency key: random, made by the gateway, the same on
/// every retry and restart, and new only for a new delivery (a changed payload or a replay),
/// which is exactly when new resources are meant.
/// - Task and ServiceRequest: the key itself (system [`IDEMPOTENCY_KEY_SYSTEM`]): they are the
///   referral, and the key is the gateway's id of it (the placer's order number).
/// - Patient: a UUID derived from the key, never a value of the person (name, birth date, SSN,
///   MRN: a consented referral carries no vault token, by design, and an identifying value as a
///   search key would put it in every server log and URL). A consent may not even cover the
///   identifiers, and a receiver matches the person to its own records (its MPI) from the
///   consented demographics; the gateway asserts only "the person of this referral".
/// - Consent: a UUID derived from the key. Not the consent form's id (kept as a second
///   identifier, `urn:pnp-gateway:consent`): several referrals go under one consent, and servers
///   already hold several Consents with that id from earlier deliveries, so a conditional create
///   on it would match many and fail with 412.
pub fn identifier(kind: &str, idempotency_key: &str) -> (&'static str, String) {
    match kind {
        "Patient" => (
            REFERRAL_PATIENT_SYSTEM,
            uuid(idempotency_key, "Patient")["urn:uuid:".len()..].to_owned(),
        ),
        "Consent" => (
            REFERRAL_CONSENT_SYSTEM,
            uuid(idempotency_key, "Consent")["urn:uuid:".len()..].to_owned(),
        ),
        _ => (IDEMPOTENCY_KEY_SYSTEM, idempotency_key.to_owned()),
    }
}

fn identifier_json(kind: &str, idempotency_key: &str) -> Value {
    let (system, value) = identifier(kind, idempotency_key);
    json!({"system": system, "value": value})
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
    let mut ids = vec![identifier_json("Patient", idempotency_key)];
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
    patient.insert("identifier".into(), json!(ids));

    let service = r["service"].as_str().unwrap_or("unspecified");
    let authored = r["engaged_on"].as_str();
    let mut service_request = json!({
        "resourceType": "ServiceRequest",
        "meta": {"security": security()},
        "identifier": [identifier_json("ServiceRequest", idempotency_key)],
        "status": "active",
        "intent": "order",
        "category": [{"text": "Police and Peers referral"}],
        "code": {"coding": [{"system": "https://pnp-gateway.example/fhir/CodeSystem/referral-service", "code": service}], "text": service.replace('_', " ")},
        "subject": {"reference": pat},
        "requester": {"display": format!("Peer Recovery Support Specialist {}", r["prss"].as_str().unwrap_or("?"))},
        "note": referral_notes(payload),
    });
    if let Some(d) = authored {
        service_request["authoredOn"] = json!(d);
    }
    if let Some(reason) = reason_code(&payload["incident"]) {
        service_request["reasonCode"] = json!([reason]);
    }
    let mut task = json!({
        "resourceType": "Task",
        "meta": {"security": security()},
        "identifier": [identifier_json("Task", idempotency_key)],
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
    let mut consent = json!({
        "resourceType": "Consent",
        "meta": {"security": security()},
        "identifier": [
            identifier_json("Consent", idempotency_key),
            {"system": "urn:pnp-gateway:consent", "value": c["id"].as_str().unwrap_or_default()},
        ],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": ACT_CODE, "code": "IDSCL"}]}],
        "patient": {"reference": pat},
        "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
        "provision": provision,
    });
    // When the person signed (2.31(a)(9)) and who may disclose (2.31(a)(2)): the consent's own
    // metadata, carried in the payload's `consent` part.
    if let Some(d) = c["signed_on"].as_str() {
        consent["dateTime"] = json!(d);
    }
    if let Some(o) = c["disclosing"].as_str().filter(|o| !o.trim().is_empty()) {
        consent["organization"] = json!([{"display": o}]);
    }
    // A conditional create on the business identifier: a server that already holds the
    // resource (an earlier attempt committed) creates nothing and resolves the entry's fullUrl
    // to what it holds, so references between the entries still hold.
    let entry = |url: &str, resource: Value| {
        let kind = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (system, value) = identifier(&kind, idempotency_key);
        json!({
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "POST", "url": kind, "ifNoneExist": format!("identifier={system}|{value}")},
        })
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

/// The ServiceRequest's notes: the 42 CFR 2.32 notice first, then what the payload's `incident`
/// carries of the referral (only what the consent covers reaches the payload): the time of the
/// call, whether naloxone was given, the narrative (already limited by the profile to the
/// consenting person's covered values).
///
/// The call time is a note, not `occurrence[x]`: in R4 that is when the requested service should
/// happen, and the call is what led to the referral, not an appointment; a worklist sorting by
/// it would show every referral as overdue since the overdose.
fn referral_notes(payload: &Value) -> Vec<Value> {
    let inc = &payload["incident"];
    let mut notes = vec![json!({"text": payload["notice"].as_str().unwrap_or_default()})];
    if let Some(t) = inc["times"]["received"].as_str() {
        notes.push(json!({"text": format!("Call received: {t}")}));
    }
    if let Some(n) = inc["naloxone_administered"].as_bool() {
        let said = if n { "yes" } else { "no" };
        notes.push(json!({"text": format!("Naloxone administered: {said}")}));
    }
    if let Some(n) = inc["narrative"].as_str().filter(|n| !n.trim().is_empty()) {
        notes.push(json!({"text": format!("Narrative: {n}")}));
    }
    notes
}

/// The incident's category (the program's code for what the referral is for) as the
/// ServiceRequest's `reasonCode`, when the consent covers it.
fn reason_code(inc: &Value) -> Option<Value> {
    let cat = inc["category"].as_str()?;
    Some(json!({
        "coding": [{"system": "https://pnp-gateway.example/fhir/CodeSystem/incident-category", "code": cat}],
        "text": cat.replace('_', " "),
    }))
}
