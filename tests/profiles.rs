//! The disclosure profiles' rules over field natures and consent elements: ages judged at the
//! disclosure date (Safe Harbor's 90+), no free text in de-identified profiles, consent scope by
//! element. Library-level, over incidents built here with values of our own making.

use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use pnp_gateway::model::*;
use pnp_gateway::policy::disclose::{Destination, Facts, decide};
use pnp_gateway::policy::fields::{FIELDS, Nature};
use pnp_gateway::policy::profile::{Method, Profile, ProfileKind, Pseudonym};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn sens<T>(v: T) -> Option<Sensitive<T>> {
    Some(Sensitive::new(v))
}

fn person(role: Role) -> Person {
    Person {
        role,
        name: Name {
            last: sens("QUILLFEATHER".into()),
            first: sens("MARISOL".into()),
            middle: None,
            suffix: None,
        },
        dob: None,
        age: None,
        age_min: None,
        age_max: None,
        age_text: None,
        sex: Some("F".into()),
        race: Some("W".into()),
        ethnicity: Some("N".into()),
        phones: vec![Sensitive::new("3045550147".into())],
        emails: vec![Sensitive::new("marisol.q@example.org".into())],
        address: Address {
            street: sens("41 LANTERN HOLLOW RD".into()),
            city: sens("TYGART".into()),
            state: Some("WV".into()),
            zip: sens("26354".into()),
        },
        identifiers: vec![Identifier {
            kind: IdentifierKind::Ssn,
            value: Sensitive::new("219-09-9999".into()),
            issuer: None,
        }],
    }
}

fn incident(call: NaiveDate, persons: Vec<Person>) -> Incident {
    let mut inc = Incident::new("profiles");
    inc.incident_id = "INC-424242".into();
    inc.category = Category::Overdose;
    inc.eligibility = Eligibility {
        eligible: true,
        rule: "category:overdose:included".into(),
    };
    inc.times.received = Some(
        chrono_tz::America::New_York
            .from_local_datetime(&call.and_hms_opt(12, 0, 0).unwrap())
            .unwrap()
            .fixed_offset(),
    );
    inc.location.state = Some("WV".into());
    inc.location.zip = sens("25301".into());
    inc.call_type = Some(Coded {
        code: "OD".into(),
        text: Some("OVERDOSE AT HOME".into()),
    });
    inc.persons = persons;
    inc
}

fn dest(kind: ProfileKind, overrides: &[(&str, Method)]) -> Destination {
    let o: BTreeMap<String, Method> = overrides.iter().map(|(k, m)| (k.to_string(), *m)).collect();
    Destination {
        id: "dest".into(),
        profile: Profile::build(kind, &o, None).unwrap(),
        purpose: "treatment_referral".into(),
        designations: vec![],
        require_certified_prss: false,
        link_group: None,
    }
}

fn pseudo(t: &str) -> Pseudonym {
    Pseudonym {
        token: t.into(),
        shift_days: 5,
    }
}

/// The payload a de-identified destination gets for `inc`, disclosed on `today`.
fn deidentified(d: &Destination, inc: &Incident, today: NaiveDate) -> Value {
    let ip = pseudo("i-token");
    let ps: Vec<Pseudonym> = inc.persons.iter().map(|_| pseudo("p-token")).collect();
    let facts = Facts {
        incident: inc,
        engagements: &[],
        consents: &[],
        roster: &[],
        incident_pseudo: &ip,
        person_pseudo: &ps,
        today,
    };
    let d = decide(d, &facts);
    assert!(d.delivers(), "{:?}", d.reasons);
    d.payload.unwrap()
}

/// The Safe Harbor payload's first person, disclosed on `today`.
fn safe_harbor_person(inc: &Incident, today: NaiveDate) -> Value {
    deidentified(&dest(ProfileKind::SafeHarbor, &[]), inc, today)["persons"][0].clone()
}

#[test]
fn eighty_nine_at_the_call_ninety_at_disclosure_is_90_plus_without_a_year() {
    let mut p = person(Role::Subject);
    p.dob = sens(day("1936-06-15"));
    let inc = incident(day("2026-03-01"), vec![p]);
    // 89 at the call, 90 at disclosure: 90+, no year.
    let after = safe_harbor_person(&inc, day("2026-07-01"));
    assert_eq!(after["age"], "90+", "{after}");
    assert!(after.get("dob").is_none(), "{after}");
    // Disclosed before the birthday: 89, but 1936 is a year that reaches 90 in 2026: no year.
    let before = safe_harbor_person(&inc, day("2026-04-01"));
    assert_eq!(before["age"], 89, "{before}");
    assert!(before.get("dob").is_none(), "{before}");
    // A year later born: 88 and the year.
    let mut p = person(Role::Subject);
    p.dob = sens(day("1937-06-15"));
    let inc = incident(day("2026-03-01"), vec![p]);
    let young = safe_harbor_person(&inc, day("2026-04-01"));
    assert_eq!((&young["age"], &young["dob"]), (&88.into(), &1937.into()));

    // A numeric age at the call (no DOB) ages too: 89 in 2024, disclosed in 2026.
    let mut p = person(Role::Subject);
    p.age = sens(89);
    let inc = incident(day("2024-02-01"), vec![p]);
    assert_eq!(
        safe_harbor_person(&inc, day("2026-03-01"))["age"],
        "90+",
        "an 89-year-old of 2024 is over 89 in 2026"
    );
}

#[test]
fn free_text_ages_never_reach_safe_harbor_as_text() {
    // NIBRS-style: "over 98" as text with its lower bound, a baby, an unknown age.
    for (text, min) in [("over 98", Some(99)), ("BABY", None), ("UNKNOWN", None)] {
        let mut p = person(Role::Subject);
        p.age_text = Some(text.into());
        p.age_min = min.and_then(sens);
        let inc = incident(day("2026-03-01"), vec![p]);
        let out = safe_harbor_person(&inc, day("2026-04-01"));
        let s = out.to_string();
        assert!(!s.contains(text), "age text `{text}` in {s}");
        match min {
            Some(_) => assert_eq!(out["age"], "90+", "{s}"),
            None => assert!(out.get("age").is_none(), "{s}"),
        }
    }
    // An age range reaching past 89 is not kept as a range.
    let mut p = person(Role::Subject);
    p.age_min = sens(85);
    p.age_max = sens(95);
    let inc = incident(day("2026-03-01"), vec![p]);
    assert_eq!(
        safe_harbor_person(&inc, day("2026-04-01"))["age_range"],
        "85+"
    );
    // And `keep` of `age_text` is refused in both de-identified profiles.
    for kind in [ProfileKind::SafeHarbor, ProfileKind::LimitedDataSet] {
        let o = BTreeMap::from([("age_text".to_string(), Method::Keep)]);
        let e = Profile::build(kind, &o, None).unwrap_err();
        assert_eq!(e[0].field, "age_text", "{e:?}");
        assert!(e[0].message.contains("free text"), "{e:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For any date of birth, call date and later disclosure date: the age sent is a number under
    /// 90 or `90+`; `90+` exactly when the person is over 89 at disclosure; never a birth year
    /// with it, nor a year from which an age over 89 at disclosure follows.
    #[test]
    fn safe_harbor_ages_are_judged_at_disclosure(
        dob_days in 0i64..(110 * 366),
        call_after in 0i64..(100 * 366),
        disclose_after in 0i64..(8 * 366),
        given_age in proptest::bool::ANY,
    ) {
        let dob = day("1915-01-01") + Duration::days(dob_days);
        let call = dob + Duration::days(call_after);
        prop_assume!(call <= day("2030-12-31"));
        let today = call + Duration::days(disclose_after);
        let years = |from: NaiveDate, to: NaiveDate| {
            let mut y = to.year() - from.year();
            if (to.month(), to.day()) < (from.month(), from.day()) { y -= 1; }
            y
        };
        let mut p = person(Role::Subject);
        if given_age {
            // Only the age at the call is known.
            p.age = sens(years(dob, call) as u16);
        } else {
            p.dob = sens(dob);
        }
        let inc = incident(call, vec![p]);
        let out = safe_harbor_person(&inc, today);
        let at_disclosure = years(dob, today);
        match &out["age"] {
            Value::String(s) => {
                prop_assert_eq!(s.as_str(), "90+");
                if !given_age { prop_assert!(at_disclosure > 89, "90+ at {at_disclosure}"); }
            }
            Value::Number(n) => {
                let n = n.as_i64().unwrap();
                prop_assert!(n < 90);
                prop_assert!(at_disclosure <= 89, "{n} sent for someone {at_disclosure} at disclosure");
                prop_assert_eq!(n, i64::from(years(dob, call)));
            }
            other => prop_assert!(false, "age {other}"),
        }
        if let Some(y) = out.get("dob") {
            let y = y.as_i64().unwrap() as i32;
            prop_assert!(out["age"] != "90+");
            prop_assert!(today.year() - y < 90, "birth year {y} disclosed in {}", today.year());
        }
    }
}

#[test]
fn every_field_is_classified_once_and_free_text_is_refused_in_deidentified_profiles() {
    let mut names: Vec<&str> = FIELDS.iter().map(|d| d.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), FIELDS.len(), "a field classified twice");
    let free: Vec<&str> = FIELDS
        .iter()
        .filter(|d| d.nature == Nature::FreeText)
        .map(|d| d.name)
        .collect();
    for f in [
        "call_type.text",
        "disposition.text",
        "narrative",
        "age_text",
    ] {
        assert!(free.contains(&f), "{f} is not classified free text");
    }
    for kind in [ProfileKind::SafeHarbor, ProfileKind::LimitedDataSet] {
        for f in &free {
            for m in [Method::Keep, Method::Scrub] {
                let o = BTreeMap::from([(f.to_string(), m)]);
                let e = Profile::build(kind, &o, None)
                    .expect_err(&format!("{f} = {m:?} accepted by {kind:?}"));
                assert_eq!(e[0].field, *f);
            }
        }
    }
    // A consented referral may carry them (the narrative is scrubbed under the consent).
    let o = BTreeMap::from([("call_type.text".to_string(), Method::Keep)]);
    assert!(Profile::build(ProfileKind::ConsentedReferral, &o, None).is_ok());
}

#[test]
fn an_agency_code_that_is_not_code_shaped_stays_out_of_deidentified_payloads() {
    // A mapping that routes a name into the call-type code column: Safe Harbor may keep codes,
    // but not this one.
    let mut inc = incident(day("2026-03-01"), vec![person(Role::Subject)]);
    let d = dest(ProfileKind::SafeHarbor, &[("call_type.code", Method::Keep)]);
    let payload = |inc: &Incident| deidentified(&d, inc, day("2026-04-01")).to_string();
    assert!(payload(&inc).contains("\"OD\""));
    for v in [
        "QUILLFEATHER MARISOL",
        "304-555-0147",
        "219099999",
        "1990-07-04",
    ] {
        inc.call_type = Some(Coded {
            code: v.into(),
            text: None,
        });
        let p = payload(&inc);
        assert!(!p.contains(v), "{v} in {p}");
    }
    assert!(pnp_gateway::model::shape::is_code_shaped("11-8"));
    assert!(pnp_gateway::model::shape::is_code_shaped("1140OD"));
    assert!(!pnp_gateway::model::shape::is_code_shaped("03/01/1990"));
}

#[test]
fn deidentified_payloads_carry_the_narratives_codes_never_its_text() {
    let mut inc = incident(day("2026-03-01"), vec![person(Role::Subject)]);
    inc.narrative = sens(
        "RP QUILLFEATHER STATES SUBJ DENIES HEROIN, ADMITS FENTANYL AND XANAX. NARCAN X2 BY EMS."
            .into(),
    );
    for kind in [ProfileKind::SafeHarbor, ProfileKind::LimitedDataSet] {
        let p = deidentified(&dest(kind, &[]), &inc, day("2026-04-01"));
        let i = &p["incident"]["indicators"];
        assert_eq!(
            i["substances"],
            serde_json::json!(["fentanyl", "benzodiazepine"]),
            "{p}"
        );
        assert_eq!(i["naloxone"], true);
        assert_eq!(i["naloxone_doses"], 2);
        let text = p.to_string();
        assert!(
            !text.contains("QUILLFEATHER") && !text.contains("NARCAN"),
            "{text}"
        );
    }
    // No narrative, no indicators.
    inc.narrative = None;
    let p = deidentified(&dest(ProfileKind::SafeHarbor, &[]), &inc, day("2026-04-01"));
    assert!(p["incident"].get("indicators").is_none(), "{p}");
}

/// A consent for `information` on the demo-like subject, decided for a consented referral.
fn referral(information: Vec<Information>) -> Value {
    let mut p = person(Role::Subject);
    p.dob = sens(day("1990-07-04"));
    let mut inc = incident(day("2026-03-01"), vec![p, person(Role::Caller)]);
    inc.narrative = sens("Subject found responsive.".into());
    let consent = Consent {
        id: "C-9".into(),
        patient_name: sens("QUILLFEATHER, MARISOL".into()),
        patient_dob: sens(day("1990-07-04")),
        disclosing: Some("program".into()),
        information,
        recipients: vec!["dest".into()],
        purpose: Some("treatment_referral".into()),
        right_to_revoke_statement: Some("I may revoke in writing.".into()),
        expires_on: Some(day("2027-01-01")),
        expires_event: None,
        signature: sens("signed".into()),
        signed_on: Some(day("2026-03-01")),
        tpo: false,
        redisclosure_statement: None,
    };
    let e = Engagement {
        id: "E-9".into(),
        incident_id: "INC-424242".into(),
        adapter: None,
        person_role: Role::Subject,
        prss_id: "PRSS-1".into(),
        consent_id: "C-9".into(),
        service: Service::Mat,
        provider: "dest".into(),
        engaged_on: day("2026-03-01"),
    };
    let rec = ConsentRecord {
        consent,
        revoked_on: None,
    };
    let ip = pseudo("i-token");
    let ps = vec![pseudo("p-a"), pseudo("p-b")];
    let facts = Facts {
        incident: &inc,
        engagements: std::slice::from_ref(&e),
        consents: std::slice::from_ref(&rec),
        roster: &[],
        incident_pseudo: &ip,
        person_pseudo: &ps,
        today: day("2026-04-01"),
    };
    let d = decide(&dest(ProfileKind::ConsentedReferral, &[]), &facts);
    assert!(d.delivers(), "{:?}", d.reasons);
    let mut v = serde_json::to_value(&d).unwrap();
    v["payload"]["_elements"] = v["elements"].clone();
    v["payload"].clone()
}

#[test]
fn a_consent_for_name_and_phone_sends_name_and_phone_only() {
    let p = referral(vec![
        Information::parse("name").unwrap(),
        Information::parse("phone").unwrap(),
    ]);
    let person = &p["person"];
    assert_eq!(person["name"]["last"], "QUILLFEATHER", "{p}");
    assert_eq!(person["phones"][0], "3045550147", "{p}");
    for absent in [
        "dob",
        "age",
        "sex",
        "race",
        "ethnicity",
        "emails",
        "address",
        "id",
    ] {
        assert!(person.get(absent).is_none(), "{absent} sent: {person}");
    }
    let s = p["incident"].to_string() + &person.to_string();
    for v in ["1990", "marisol.q@", "LANTERN", "219-09-9999", "INC-424242"] {
        assert!(!s.contains(v), "{v} sent: {s}");
    }
    assert_eq!(p["_elements"], serde_json::json!(["name", "phone"]), "{p}");
    assert_eq!(
        p["consent"]["elements"],
        serde_json::json!(["name", "phone"])
    );

    // The classes stay shorthands: `identity` is name, date of birth, sex, race and ethnicity.
    let p = referral(vec![InfoClass::Identity.into()]);
    let person = &p["person"];
    assert_eq!(person["dob"], "1990-07-04");
    assert_eq!(person["sex"], "F");
    assert!(person.get("phones").is_none() && person.get("emails").is_none());
    // Every field belongs to one element, and every class stands for a set of them.
    for d in FIELDS {
        assert!(
            InfoClass::ALL
                .iter()
                .any(|c| c.elements().contains(&d.element)),
            "{} in no class",
            d.name
        );
    }
    for e in Element::ALL {
        assert_eq!(Element::parse(e.as_str()), Some(e));
        assert_eq!(Information::Element(e).elements(), &[e]);
    }
}

#[test]
fn consents_import_elements_from_csv_json_and_fhir() {
    use pnp_gateway::ingest::records;
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("c.csv");
    std::fs::write(
        &csv,
        "id,patient_name,information,recipients,purpose\nC-1,\"DOE, J\",name;phone;referral,dest,treatment_referral\n",
    )
    .unwrap();
    let c = &records::read_consents(&csv).unwrap().rows[0].1.consent;
    assert_eq!(
        covered_elements(&c.information)
            .into_iter()
            .collect::<Vec<_>>(),
        [
            Element::Name,
            Element::Phone,
            Element::Category,
            Element::IncidentDetails
        ]
    );
    let json = d.path().join("c.json");
    std::fs::write(
        &json,
        r#"[{"id":"C-2","information":["date_of_birth","email","narrative"]}]"#,
    )
    .unwrap();
    let c = &records::read_consents(&json).unwrap().rows[0].1.consent;
    assert_eq!(
        covered_elements(&c.information)
            .into_iter()
            .collect::<Vec<_>>(),
        [Element::DateOfBirth, Element::Email, Element::Narrative]
    );
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, r#"[{"id":"C-3","information":["everything"]}]"#).unwrap();
    let r = records::read_consents(&bad).unwrap();
    assert!(r.rows.is_empty());
    assert_eq!(
        r.bad[0].field.as_deref(),
        Some("information"),
        "{:?}",
        r.bad
    );
    assert!(r.bad[0].reason.contains("date_of_birth"), "{:?}", r.bad);

    let fhir = serde_json::json!({
        "resourceType": "Consent", "id": "F-1", "status": "active",
        "provision": {
            "type": "permit",
            "class": [{"code": "contact"}],
            "code": [{"coding": [{"system": "https://pnp-gateway.example/fhir/CodeSystem/information-element", "code": "ssn"}]}]
        }
    });
    let c = records::fhir_consent(&fhir).unwrap();
    assert_eq!(
        covered_elements(&c.information)
            .into_iter()
            .collect::<Vec<_>>(),
        [
            Element::Phone,
            Element::Email,
            Element::HomeAddress,
            Element::Ssn
        ]
    );
}
