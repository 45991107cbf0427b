//! Consent checks (42 CFR 2.31). Pure: the caller passes the consent, the destination and the
//! date; the answer is "permitted" or the reasons it is not, each naming what is wrong.

use crate::model::{Consent, ConsentRecord};
use chrono::NaiveDate;

/// What a destination is, as far as consent is concerned.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub id: &'a str,
    /// General designations this recipient falls under (e.g. `sud_treatment_provider`).
    pub designations: &'a [String],
    /// The purpose this destination receives data for.
    pub purpose: &'a str,
}

/// The elements a consent must carry, in the order of 42 CFR 2.31(a), with their names as the
/// reasons show them.
pub fn missing_elements(c: &Consent) -> Vec<&'static str> {
    let empty = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut missing = Vec::new();
    if c.patient_name
        .as_ref()
        .is_none_or(|n| n.expose().trim().is_empty())
    {
        missing.push("patient_name");
    }
    if empty(&c.disclosing) {
        missing.push("disclosing");
    }
    if c.information.is_empty() {
        missing.push("information");
    }
    if c.recipients.iter().all(|r| r.trim().is_empty()) {
        missing.push("recipients");
    }
    if empty(&c.purpose) {
        missing.push("purpose");
    }
    if empty(&c.right_to_revoke_statement) {
        missing.push("right_to_revoke_statement");
    }
    if c.expires_on.is_none() && empty(&c.expires_event) {
        missing.push("expiry");
    }
    if c.signature
        .as_ref()
        .is_none_or(|s| s.expose().trim().is_empty())
    {
        missing.push("signature");
    }
    if c.signed_on.is_none() {
        missing.push("signed_on");
    }
    if c.tpo && empty(&c.redisclosure_statement) {
        missing.push("redisclosure_statement");
    }
    missing
}

/// Whether the consent names this recipient, by id or by a general designation.
pub fn names_recipient(c: &Consent, r: &Recipient) -> bool {
    c.recipients.iter().any(|x| {
        let x = x.trim();
        x == r.id
            || x.strip_prefix("general:")
                .is_some_and(|d| r.designations.iter().any(|g| g == d.trim()))
    })
}

/// Empty when the consent permits disclosing to `r` on `today`; otherwise every reason, each
/// `kind: explanation`.
pub fn check(rec: &ConsentRecord, r: &Recipient, today: NaiveDate) -> Vec<String> {
    let c = &rec.consent;
    let id = &c.id;
    let mut reasons = Vec::new();
    for m in missing_elements(c) {
        reasons.push(format!(
            "consent_incomplete: consent {id} lacks the element `{m}` (42 CFR 2.31(a))"
        ));
    }
    if let Some(signed) = c.signed_on
        && signed > today
    {
        reasons.push(format!(
            "consent_not_yet_signed: consent {id} is dated {signed}, after {today}"
        ));
    }
    if let Some(exp) = c.expires_on
        && exp < today
    {
        reasons.push(format!("consent_expired: consent {id} expired on {exp}"));
    }
    if let Some(rev) = rec.revoked_on
        && rev <= today
    {
        reasons.push(format!(
            "consent_revoked: consent {id} was revoked on {rev}"
        ));
    }
    if !c.recipients.is_empty() && !names_recipient(c, r) {
        reasons.push(format!(
            "consent_other_recipient: consent {id} does not name `{}`",
            r.id
        ));
    }
    if let Some(p) = c.purpose.as_deref().filter(|p| !p.trim().is_empty())
        && p.trim() != r.purpose
    {
        reasons.push(format!(
            "consent_other_purpose: consent {id} is for `{}`, not `{}`",
            p.trim(),
            r.purpose
        ));
    }
    reasons
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{InfoClass, Sensitive};

    pub fn valid() -> Consent {
        Consent {
            id: "C-1".into(),
            patient_name: Some(Sensitive::new("DOE, JANE".into())),
            patient_dob: None,
            disclosing: Some("Kanawha Police and Peers".into()),
            information: vec![
                InfoClass::Identity.into(),
                InfoClass::Contact.into(),
                InfoClass::Referral.into(),
            ],
            recipients: vec!["prestera".into()],
            purpose: Some("treatment_referral".into()),
            right_to_revoke_statement: Some(
                "I may revoke this consent in writing at any time.".into(),
            ),
            expires_on: Some(NaiveDate::from_ymd_opt(2027, 3, 1).unwrap()),
            expires_event: None,
            signature: Some(Sensitive::new("Jane Doe".into())),
            signed_on: Some(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
            tpo: false,
            redisclosure_statement: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn reasons(c: Consent, revoked: Option<&str>, today: &str) -> Vec<String> {
        let rec = ConsentRecord {
            consent: c,
            revoked_on: revoked.map(day),
        };
        let d = vec!["sud_treatment_provider".to_string()];
        let r = Recipient {
            id: "prestera",
            designations: &d,
            purpose: "treatment_referral",
        };
        check(&rec, &r, day(today))
    }

    fn kinds(v: Vec<String>) -> Vec<String> {
        v.into_iter()
            .map(|r| r.split(':').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_valid_consent_permits() {
        assert!(reasons(valid(), None, "2026-04-01").is_empty());
        let mut general = valid();
        general.recipients = vec!["general:sud_treatment_provider".into()];
        assert!(reasons(general, None, "2026-04-01").is_empty());
    }

    #[test]
    fn each_defect_gives_its_reason() {
        let mut c = valid();
        c.right_to_revoke_statement = None;
        let r = reasons(c, None, "2026-04-01");
        assert_eq!(kinds(r.clone()), ["consent_incomplete"]);
        assert!(r[0].contains("right_to_revoke_statement"));

        assert_eq!(
            kinds(reasons(valid(), None, "2027-03-02")),
            ["consent_expired"]
        );
        assert_eq!(
            kinds(reasons(valid(), Some("2026-03-15"), "2026-04-01")),
            ["consent_revoked"]
        );
        // A revocation dated later does not act yet.
        assert!(reasons(valid(), Some("2026-05-01"), "2026-04-01").is_empty());
        assert_eq!(
            kinds(reasons(valid(), None, "2026-02-01")),
            ["consent_not_yet_signed"]
        );

        let mut other = valid();
        other.recipients = vec!["some-other-clinic".into()];
        assert_eq!(
            kinds(reasons(other, None, "2026-04-01")),
            ["consent_other_recipient"]
        );
        let mut purpose = valid();
        purpose.purpose = Some("employment".into());
        assert_eq!(
            kinds(reasons(purpose, None, "2026-04-01")),
            ["consent_other_purpose"]
        );

        let mut tpo = valid();
        tpo.tpo = true;
        assert!(reasons(tpo, None, "2026-04-01")[0].contains("redisclosure_statement"));
        let mut no_expiry = valid();
        no_expiry.expires_on = None;
        assert!(reasons(no_expiry.clone(), None, "2026-04-01")[0].contains("`expiry`"));
        no_expiry.expires_event = Some("end of treatment".into());
        assert!(reasons(no_expiry, None, "2026-04-01").is_empty());
    }
}
