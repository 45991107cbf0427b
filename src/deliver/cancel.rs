//! Cancellations out. A destination that received a consented referral is told when the
//! referral is cancelled: its incident deleted at the source (an HL7 cancel such as REF^I14 or
//! ADT^A11/A13, a NIBRS delete) or its consent revoked. A referral still queued is withdrawn
//! instead (it never reached the destination, so there is nothing to take back); a delivered
//! one is owed a cancellation, and so is one withdrawn after an attempt that may have reached
//! the destination (written, and no answer settled it: `SendError::may_have_arrived`). A
//! FHIR server that holds no Task for such a referral creates one, cancelled, from the
//! conditional update: the provider learns of a referral it may never have taken, by its key
//! and id only. The cancellation is an outbox row of its own after the
//! referral's (see `store::cancellations`), with minimum data: the referral's idempotency key
//! (what the destination already holds: the webhook's `Idempotency-Key`, the FHIR Task's
//! identifier, the REF^I12's MSH-10), the referral's id (the engagement, as RF1-6 and PID-3 of
//! the REF^I12 carry it), a reason code and the time. Never person data: it discloses nothing
//! new, so it is sent under a revoked consent too (dispatch skips the consent check for it).
//!
//! Per destination kind: `hl7` gets a REF^I14, `fhir` a transaction Bundle that updates the
//! Task to `cancelled`, `webhook` a `referral.cancelled` event (signed like every request).
//! File and Kafka destinations, and every de-identified destination (a de-identified payload
//! names no referral; a delete there withdraws what is queued), get none.

use super::hl7out::{Receiver, control_id, escape};
use crate::config::Gateway;
use crate::config::gateway::DeliveryKind;
use crate::policy::profile::ProfileKind;
use crate::store::cancellations::NewCancellation;
use crate::store::outbox::{Row, SealKey};
use crate::store::{Store, StoreError};
use chrono::NaiveDate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The webhook event's name (`event` in the body).
pub const EVENT: &str = "referral.cancelled";

/// Why a referral was cancelled: the `reason` code a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The agency deleted (or cancelled) the incident at its source.
    IncidentDeleted,
    /// The person revoked the consent the referral was disclosed under.
    ConsentRevoked,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::IncidentDeleted => "incident_deleted",
            Reason::ConsentRevoked => "consent_revoked",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Reason::IncidentDeleted => "Incident deleted at its source",
            Reason::ConsentRevoked => "Consent revoked",
        }
    }

    fn from_code(code: &str) -> Reason {
        match code {
            "consent_revoked" => Reason::ConsentRevoked,
            _ => Reason::IncidentDeleted,
        }
    }
}

/// The cancellation a destination receives (the webhook body; the HL7 and FHIR encoders read
/// it). `referral_id` is the engagement's id when it is known.
pub fn payload(
    referral_key: &str,
    referral_id: Option<&str>,
    reason: Reason,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut referral = json!({ "idempotency_key": referral_key });
    if let Some(id) = referral_id {
        referral["id"] = json!(id);
    }
    json!({
        "event": EVENT,
        "referral": referral,
        "reason": reason.code(),
        "cancelled_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// The names of the fields a cancellation carries (for the audit trail: names, never values).
fn fields(p: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(o) = p.as_object() {
        for (k, v) in o {
            match v.as_object() {
                Some(inner) => out.extend(inner.keys().map(|i| format!("{k}.{i}"))),
                None => out.push(k.clone()),
            }
        }
    }
    out.sort();
    out
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

/// The REF^I14 (cancel patient referral) for a cancellation, in the REF_I12 structure: RF1 with
/// the referral's id (RF1-6, as the REF^I12 sent it), the time (RF1-9), the reason as a local
/// code (RF1-10) and the referral's idempotency key (RF1-11); PRD for the referred-to provider;
/// PID with the referral's id only and a pseudo-name (XPN-7 `S`: PID-5 is required, and no
/// person data is sent); NTE with the reason. Segments end with CR.
pub fn ref_i14(
    payload: &Value,
    idempotency_key: &str,
    destination: &str,
    to: &Receiver,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> String {
    let e = escape;
    let key = s(payload, "/referral/idempotency_key");
    let id = match s(payload, "/referral/id") {
        "" => key,
        id => id,
    };
    let reason = Reason::from_code(s(payload, "/reason"));
    let when = chrono::DateTime::parse_from_rfc3339(s(payload, "/cancelled_at")).unwrap_or(now);
    let body = [
        format!(
            "RF1||||||{}|||{}|{}^{}^L|{}^PNP-GATEWAY",
            e(id),
            when.format("%Y%m%d%H%M%S%z"),
            reason.code(),
            reason.text(),
            e(key)
        ),
        format!("PRD|RT^Referred to Provider^HL70286|{}", e(destination)),
        format!("PID|1||{}^^^PNP-GATEWAY^RI||^^^^^^S", e(id)),
        format!("NTE|1||Referral cancelled: {}", reason.code()),
    ];
    // The same MSH as the REF^I12's (MSH-15/16 by ack mode, MSH-18 or escapes by charset).
    super::hl7out::message(
        to,
        now,
        &control_id(idempotency_key),
        "REF^I14^REF_I12",
        &body,
    )
}

/// The FHIR transaction Bundle for a cancellation: a conditional update of the referral's Task
/// (found by the identifier it was created with, the referral's idempotency key) to status
/// `cancelled`, with the reason in `statusReason` and the time in `lastModified`, labelled like
/// the referral's resources. The Task is replaced by this one: it carries no `for` or `focus`,
/// as a cancellation sends nothing about the person.
pub fn task_bundle(payload: &Value) -> Value {
    let key = s(payload, "/referral/idempotency_key");
    let reason = Reason::from_code(s(payload, "/reason"));
    let identifier = "urn:pnp-gateway:idempotency-key";
    let mut task = json!({
        "resourceType": "Task",
        "meta": {"security": super::fhir::security()},
        "identifier": [{"system": identifier, "value": key}],
        "status": "cancelled",
        "statusReason": {
            "coding": [{"system": "https://pnp-gateway.example/fhir/CodeSystem/cancellation-reason", "code": reason.code(), "display": reason.text()}],
            "text": reason.text()
        },
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    });
    if let Some(at) = payload.pointer("/cancelled_at").and_then(Value::as_str) {
        task["lastModified"] = json!(at);
    }
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{
            "resource": task,
            "request": {"method": "PUT", "url": format!("Task?identifier={identifier}|{key}")}
        }]
    })
}

/// Whether a destination is told of cancellations: a consented-referral destination delivering
/// over HL7, FHIR or a webhook.
pub fn is_told(gw: &Gateway, destination: &str) -> bool {
    let referral = gw
        .destinations
        .iter()
        .any(|d| d.id == destination && d.profile.kind == ProfileKind::ConsentedReferral);
    let kind = gw.deliveries.get(destination).map(|d| &d.kind);
    referral
        && matches!(
            kind,
            Some(DeliveryKind::Hl7 { .. } | DeliveryKind::Webhook { .. })
        )
}

/// After a delete of an incident (its queued rows withdrawn first): a cancellation after each
/// of its referrals that a destination may hold (delivered, or withdrawn after an attempt that
/// may have arrived). Returns how many were queued.
pub fn queue_for_incident(
    store: &mut Store,
    gw: &Gateway,
    seal: Option<&SealKey>,
    audit_key: &[u8],
    adapter: &str,
    incident_id: &str,
) -> Result<usize, StoreError> {
    let rows = store.held_for_incident(adapter, incident_id)?;
    queue(store, gw, seal, audit_key, rows, Reason::IncidentDeleted)
}

/// What still waits under a consent revoked as of `today` is withdrawn (with its audit entry),
/// then a cancellation is queued after each referral the destination may hold (delivered, or
/// withdrawn after an attempt that may have arrived) under such a consent that has none yet.
/// Run after a revocation is recorded, and before each dispatch pass (which catches a
/// revocation that takes effect later, dead-lettered rows included, and a referral whose send
/// was under way while the revocation was recorded). Returns how many cancellations were queued.
pub fn queue_for_revoked(
    store: &mut Store,
    gw: &Gateway,
    seal: Option<&SealKey>,
    audit_key: &[u8],
    today: NaiveDate,
) -> Result<usize, StoreError> {
    for (row, consent, on) in store.queued_under_revoked(&today.to_string())? {
        withdraw_revoked(store, audit_key, &row, &consent, &on)?;
    }
    let mut queued = 0;
    for dest in gw.deliveries.keys().filter(|d| is_told(gw, d)) {
        let rows = store.held_under_revoked(dest, &today.to_string())?;
        queued += queue(store, gw, seal, audit_key, rows, Reason::ConsentRevoked)?;
    }
    Ok(queued)
}

/// Withdraws `row`, still queued under `consent` revoked `on`, and purges its payload, with
/// its audit entry, in one transaction.
pub fn withdraw_revoked(
    store: &mut Store,
    audit_key: &[u8],
    row: &Row,
    consent: &str,
    on: &str,
) -> Result<(), StoreError> {
    let reason = format!("consent_revoked: consent {consent} was revoked on {on}");
    store.write(|s| {
        s.withdraw(row.id, &reason)?;
        s.audit_append(
            audit_key,
            &row.audit_entry("withdrawn", vec![reason.clone()]),
        )
        .map(|_| ())
    })
}

/// Whether [`queue_for_revoked`] has anything to queue (it needs the keys; this does not).
/// Rows still waiting under a revoked consent are the caller's to withdraw first.
pub fn owed_for_revoked(store: &Store, gw: &Gateway, today: NaiveDate) -> Result<bool, StoreError> {
    for dest in gw.deliveries.keys().filter(|d| is_told(gw, d)) {
        if !store
            .held_under_revoked(dest, &today.to_string())?
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn queue(
    store: &mut Store,
    gw: &Gateway,
    seal: Option<&SealKey>,
    audit_key: &[u8],
    rows: Vec<Row>,
    reason: Reason,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    for row in rows.iter().filter(|r| is_told(gw, &r.destination)) {
        let seal = seal.ok_or_else(|| {
            StoreError::Invalid(
                "no outbox key: set PNP_GATEWAY_OUTBOX_KEY or [keys] outbox_key_file".into(),
            )
        })?;
        // The referral's id as its payload carried it: the engagement that referred the
        // incident to this destination under this consent.
        let referral_id = store
            .engagements_for(&row.incident_id, &row.adapter)?
            .into_iter()
            .find(|e| {
                e.provider == row.destination && Some(&e.consent_id) == row.consent_id.as_ref()
            })
            .map(|e| e.id);
        let p = payload(
            &row.idempotency_key,
            referral_id.as_deref(),
            reason,
            chrono::Utc::now(),
        );
        let digest = crate::hex::encode(&Sha256::digest(serde_json::to_vec(&p)?));
        let fields = fields(&p);
        let new = NewCancellation {
            referral: row,
            payload: &p,
            payload_digest: &digest,
            fields: &fields,
        };
        // The row and its audit entry are written together.
        let added = store.write(|s| {
            let Some(id) = s.enqueue_cancellation(seal, &new)? else {
                return Ok(false);
            };
            let mut entry = row.audit_entry("queued", vec![reason.code().to_string()]);
            entry.decision = "cancellation-queued".into();
            entry.fields = fields.clone();
            entry.payload_digest = Some(digest.clone());
            s.audit_append(audit_key, &entry)?;
            tracing::debug!(destination = %row.destination, outbox = id, cancels = row.id, reason = reason.code(), "cancellation queued");
            Ok(true)
        })?;
        queued += usize::from(added);
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T15:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn the_payload_carries_ids_reason_and_time_only() {
        let p = payload("k0", Some("E-1"), Reason::ConsentRevoked, at());
        assert_eq!(
            p,
            json!({"event": "referral.cancelled", "referral": {"idempotency_key": "k0", "id": "E-1"}, "reason": "consent_revoked", "cancelled_at": "2026-12-01T15:04:05Z"})
        );
        assert_eq!(
            fields(&p),
            [
                "cancelled_at",
                "event",
                "reason",
                "referral.id",
                "referral.idempotency_key"
            ]
        );
    }

    #[test]
    fn ref_i14_names_the_referral_and_no_person() {
        let p = payload(
            "0123456789abcdef0123456789abcdef",
            Some("E-1|x"),
            Reason::IncidentDeleted,
            at(),
        );
        let to = Receiver {
            application: "INTAKE".into(),
            facility: "PRESTERA".into(),
            enhanced: false,
            charset: Default::default(),
        };
        let m = ref_i14(
            &p,
            "fedcba9876543210fedcba9876543210",
            "prestera",
            &to,
            at().fixed_offset(),
        );
        let segs: Vec<&str> = m.trim_end().split('\r').collect();
        assert_eq!(
            segs[0],
            "MSH|^~\\&|PNP-GATEWAY|WV-PNP|INTAKE|PRESTERA|20261201150405+0000||REF^I14^REF_I12|fedcba9876543210fedc|P|2.5.1"
        );
        assert_eq!(
            segs[1],
            "RF1||||||E-1\\F\\x|||20261201150405+0000|incident_deleted^Incident deleted at its source^L|0123456789abcdef0123456789abcdef^PNP-GATEWAY"
        );
        assert_eq!(segs[3], "PID|1||E-1\\F\\x^^^PNP-GATEWAY^RI||^^^^^^S");
    }

    #[test]
    fn the_task_update_is_conditional_on_the_referral_key() {
        let b = task_bundle(&payload("k0", None, Reason::IncidentDeleted, at()));
        let e = &b["entry"][0];
        assert_eq!(e["request"]["method"], "PUT");
        assert_eq!(
            e["request"]["url"],
            "Task?identifier=urn:pnp-gateway:idempotency-key|k0"
        );
        assert_eq!(e["resource"]["status"], "cancelled");
        assert_eq!(e["resource"]["identifier"][0]["value"], "k0");
        assert!(e["resource"].get("for").is_none());
    }
}
