//! A consent of our own making, every element there, in our JSON and as a FHIR R4 Consent:
//! the API's and the imports' tests check that both are the same record.

use serde_json::json;

/// A consent of our own making, every element there, in our JSON ...
pub const OURS: &str = r#"[{
  "id": "API-1",
  "patient_name": "QUILLFEATHER, ZEBEDIAH",
  "disclosing": "program",
  "information": ["identity", "contact", "referral"],
  "recipients": ["prestera", "general:qrt"],
  "purpose": "treatment_referral",
  "right_to_revoke_statement": "I may revoke this consent in writing.",
  "expires_on": "2027-12-31",
  "expires_event": "the end of my QRT follow-up",
  "signature": "Zebediah Quillfeather",
  "signed_on": "2026-03-01",
  "tpo": true,
  "redisclosure_statement": "42 CFR part 2 prohibits unauthorized redisclosure."
}]"#;

/// ... and the same consent as a FHIR R4 Consent (docs/privacy.md's mapping).
pub fn fhir() -> String {
    use pnp_gateway::ingest::records::{EXT_EXPIRY_EVENT, EXT_REDISCLOSURE, EXT_RIGHT_TO_REVOKE};
    let ircp = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]});
    json!({
        "resourceType": "Consent", "id": "API-1", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
        "patient": {"display": "QUILLFEATHER, ZEBEDIAH"},
        "dateTime": "2026-03-01",
        "organization": [{"display": "program"}],
        "extension": [
            {"url": EXT_RIGHT_TO_REVOKE, "valueString": "I may revoke this consent in writing."},
            {"url": EXT_EXPIRY_EVENT, "valueString": "the end of my QRT follow-up"},
            {"url": EXT_REDISCLOSURE, "valueString": "42 CFR part 2 prohibits unauthorized redisclosure."}
        ],
        "verification": [{"verified": true, "verifiedWith": {"display": "Zebediah Quillfeather"}}],
        "provision": {
            "type": "permit",
            "period": {"start": "2026-03-01", "end": "2027-12-31"},
            "actor": [
                {"role": ircp, "reference": {"reference": "Organization/prestera"}},
                {"role": ircp, "reference": {"display": "general:qrt"}}
            ],
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
            "class": [{"code": "identity"}, {"code": "contact"}, {"code": "referral"}]
        }
    })
    .to_string()
}
