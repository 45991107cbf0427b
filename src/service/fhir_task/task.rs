//! The Task as the FHIR channel reads it from a provider and answers it back. Pure: what a
//! Task.status asks of the lifecycle, the codes kept of a Task, and the Task built from a
//! referral's record (never from what was received, so that nothing a provider sent is echoed
//! but the codes the gateway kept).

use super::Fail;
use crate::deliver::fhir::IDEMPOTENCY_KEY_SYSTEM;
use crate::policy::lifecycle::Status;
use crate::store::referrals::{Event, Referral};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What a Task.status asks of the referral's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A lifecycle status (the same again is recorded and changes nothing).
    To(Status),
    /// `requested` or `received`: the Task as the gateway sent it, or a provider that has it but
    /// has not decided. No lifecycle status says so; nothing is recorded while the referral is
    /// `sent`, and it cannot follow anything later.
    Acknowledge,
}

/// The R4 task-status code's step; `draft` and `entered-in-error` are refused (409): a
/// delivered referral is neither, and the gateway keeps no deleted referral (`cancelled` says
/// that a provider will not act on it).
pub fn step_of(code: &str) -> Result<Step, Fail> {
    Ok(match code {
        "requested" | "received" => Step::Acknowledge,
        // `ready`: "used in place of requested/received/accepted/rejected when request
        // assignment and acceptance is a given" (R4): the provider took the referral.
        "ready" | "accepted" => Step::To(Status::Accepted),
        "rejected" => Step::To(Status::Rejected),
        "in-progress" => Step::To(Status::InProgress),
        "on-hold" => Step::To(Status::OnHold),
        "completed" => Step::To(Status::Completed),
        "failed" => Step::To(Status::Failed),
        "cancelled" => Step::To(Status::Cancelled),
        "draft" | "entered-in-error" => {
            return Err(Fail::business_rule(
                "a delivered referral's Task cannot be draft or entered-in-error (cancelled says that it will not be acted on)",
            ));
        }
        _ => {
            return Err(Fail::invalid(
                "Task.status is not a code of the R4 task-status value set",
            ));
        }
    })
}

/// The Task.status that shows a lifecycle status: the gateway's own `queued` and `sent` are the
/// Task as it was sent, `requested`.
pub fn fhir_status(s: Status) -> &'static str {
    match s {
        Status::Queued | Status::Sent => "requested",
        other => other.as_str(),
    }
}

/// What the gateway keeps of a provider's Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The Task.status code (one of the R4 value set's).
    pub status: &'static str,
    pub step: Step,
    /// statusReason's code.
    pub reason: Option<String>,
    /// businessStatus's code.
    pub business: Option<String>,
    /// The referral's id in the identifier of system `urn:pnp-gateway:idempotency-key`.
    pub key: Option<String>,
    /// Task.id, when the Task has one.
    pub id: Option<String>,
}

const STATUSES: [&str; 12] = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

/// Reads a Task: its status, the codes of statusReason and businessStatus, and the referral's
/// id from its identifier. Free text (`text`, a coding's `display`) is not read, and every other
/// element (output, notes, owner, …) is ignored: the lifecycle keeps codes only.
pub fn read(task: &Value) -> Result<Update, Fail> {
    if task.get("resourceType").and_then(Value::as_str) != Some("Task") {
        return Err(Fail::invalid("the body is not a FHIR Task"));
    }
    let code = task
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| Fail::invalid("Task.status is required"))?;
    let status = STATUSES.into_iter().find(|s| *s == code).ok_or_else(|| {
        Fail::invalid("Task.status is not a code of the R4 task-status value set")
    })?;
    let key = match task.get("identifier") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) => ids
            .iter()
            .find(|i| i.get("system").and_then(Value::as_str) == Some(IDEMPOTENCY_KEY_SYSTEM))
            .and_then(|i| i.get("value").and_then(Value::as_str))
            .map(str::to_owned),
        Some(_) => return Err(Fail::invalid("Task.identifier is not a list")),
    };
    let id = match task.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(i)) => Some(i.clone()),
        Some(_) => return Err(Fail::invalid("Task.id is not a string")),
    };
    Ok(Update {
        status,
        step: step_of(status)?,
        reason: code_of(task.get("statusReason"), "Task.statusReason")?,
        business: code_of(task.get("businessStatus"), "Task.businessStatus")?,
        key,
        id,
    })
}

/// The code of a CodeableConcept's first coding that has one; a code that is not code-shaped
/// (letters, digits, `-`, `_`; at most 64) is refused, as it could be a name.
fn code_of(v: Option<&Value>, what: &'static str) -> Result<Option<String>, Fail> {
    let concept = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(Fail::invalid(format!("{what} is not a CodeableConcept"))),
    };
    let codings = match concept.get("coding") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(c)) => c,
        Some(_) => return Err(Fail::invalid(format!("{what}.coding is not a list"))),
    };
    match codings.iter().find_map(|c| c.get("code")) {
        None => Ok(None),
        Some(Value::String(c)) if crate::service::referrals::reason_ok(c) => Ok(Some(c.clone())),
        Some(_) => Err(Fail::invalid(format!(
            "{what}'s code is not a code (letters, digits, - and _; at most 64): free text is not kept"
        ))),
    }
}

/// The logical id of the Task the `fhir` destination sent for the referral `key`: the UUID of
/// the Task entry's `fullUrl` (`deliver::fhir`, which derives it the same way; a test holds
/// the two together).
pub fn task_id(key: &str) -> String {
    let h = Sha256::digest(format!("{key}|Task").as_bytes());
    let mut s = crate::hex::encode(&h[..16]);
    s.replace_range(12..13, "5");
    let variant = ["8", "9", "a", "b"][(h[8] & 3) as usize];
    s.replace_range(16..17, variant);
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// The Task of a referral as its record stands: the gateway's id and identifier, the status, the
/// last report's codes, the time of the last change, and a version that counts the reports.
/// Nothing about the person: the provider holds the referral's resources already.
pub fn task(referral: &Referral, events: &[Event]) -> Value {
    let mut t = json!({
        "resourceType": "Task",
        "id": task_id(&referral.id),
        "meta": {
            "versionId": (events.len() + 1).to_string(),
            "lastUpdated": referral.updated_at,
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"},
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ]
        },
        "identifier": [{"system": IDEMPOTENCY_KEY_SYSTEM, "value": referral.id}],
        "status": fhir_status(referral.status),
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "lastModified": referral.updated_at,
    });
    if let Some(last) = events.last() {
        if let Some(r) = &last.reason {
            t["statusReason"] = json!({"coding": [{"code": r}]});
        }
        if let Some(b) = &last.business_status {
            t["businessStatus"] = json!({"coding": [{"code": b}]});
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_id_is_the_one_the_fhir_destination_sends() {
        for key in ["k-1", "0b7c", "a_b-c"] {
            let b = crate::deliver::fhir::bundle(&json!({}), key);
            let sent = b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["resource"]["resourceType"] == "Task")
                .unwrap()["fullUrl"]
                .clone();
            assert_eq!(sent, format!("urn:uuid:{}", task_id(key)));
        }
    }

    #[test]
    fn codes_are_kept_and_text_is_not() {
        let u = read(&json!({
            "resourceType": "Task", "status": "accepted", "intent": "order",
            "statusReason": {"coding": [{"system": "x", "code": "capacity", "display": "Jane"}], "text": "Jane Doe"},
            "businessStatus": {"text": "waiting for Jane"},
            "identifier": [{"system": IDEMPOTENCY_KEY_SYSTEM, "value": "K"}],
        }))
        .unwrap();
        assert_eq!(u.step, Step::To(Status::Accepted));
        assert_eq!(u.reason.as_deref(), Some("capacity"));
        assert_eq!(u.business, None);
        assert_eq!(u.key.as_deref(), Some("K"));
        let e = read(&json!({"resourceType": "Task", "status": "accepted",
            "statusReason": {"coding": [{"code": "Jane Doe"}]}}))
        .unwrap_err();
        assert!(!e.why.contains("Jane"), "{}", e.why);
        assert!(read(&json!({"resourceType": "Task", "status": "finished"})).is_err());
        assert!(read(&json!({"resourceType": "Patient", "status": "accepted"})).is_err());
        assert_eq!(
            read(&json!({"resourceType": "Task", "status": "received"}))
                .unwrap()
                .step,
            Step::Acknowledge
        );
    }
}
