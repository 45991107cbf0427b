//! Property tests over random incidents: a `safe-harbor` payload never contains any of the
//! incident's identifying values, searched as raw substrings of the serialized payload; a
//! `consented-referral` payload contains nothing outside the consent's information classes (each a set of elements).

use chrono::{NaiveDate, TimeZone};
use pnp_gateway::model::*;
use pnp_gateway::policy::disclose::{Destination, Facts, decide};
use pnp_gateway::policy::fields;
use pnp_gateway::policy::profile::{Profile, ProfileKind, Pseudonym};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Uppercase words of 4+ letters: never a JSON key or a value the profiles write themselves.
fn word() -> impl Strategy<Value = String> {
    "[A-Z]{4,10}"
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|v| v.into_iter().map(|d| char::from(b'0' + d)).collect())
}

#[derive(Debug, Clone)]
struct Seed {
    last: String,
    first: String,
    middle: String,
    street: String,
    phone: String,
    email: String,
    ssn: String,
    plate: String,
    zip: String,
    dob: NaiveDate,
    role: Role,
}

fn seed() -> impl Strategy<Value = Seed> {
    (
        (word(), word(), word(), word()),
        (digits(10), word(), digits(9), "[A-Z]{3}[0-9]{4}", digits(5)),
        (1920i32..2010, 1u32..13, 1u32..29),
        prop_oneof![
            Just(Role::Subject),
            Just(Role::Caller),
            Just(Role::Victim),
            Just(Role::Witness)
        ],
    )
        .prop_map(
            |((last, first, middle, street), (phone, mail, ssn, plate, zip), (y, m, d), role)| {
                Seed {
                    last,
                    first,
                    middle,
                    street: format!("{street} RIDGE RD"),
                    phone,
                    email: format!("{}@MAILHOST.ORG", mail),
                    ssn,
                    plate,
                    zip,
                    dob: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
                    role,
                }
            },
        )
}

fn incident(seeds: &[Seed], id: &str, street: &str, zip: &str) -> Incident {
    let s = |v: &str| Some(Sensitive::new(v.to_string()));
    let mut inc = Incident::new("props");
    inc.incident_id = id.to_string();
    inc.category = Category::Overdose;
    inc.eligibility = Eligibility {
        eligible: true,
        rule: "category:overdose:included".into(),
    };
    inc.times.received = Some(
        chrono_tz::America::New_York
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .unwrap()
            .fixed_offset(),
    );
    inc.location.street = s(street);
    inc.location.zip = s(zip);
    inc.location.state = Some("WV".into());
    inc.location.lat = Some(Sensitive::new(38.123456));
    inc.location.lon = Some(Sensitive::new(-81.654321));
    inc.call_type = Some(Coded {
        code: "OD".into(),
        text: Some("OVERDOSE".into()),
    });
    inc.disposition = Some(Coded {
        code: "ZZARREST".into(),
        text: None,
    });
    let mut narrative = String::from("Narrative:");
    for (i, p) in seeds.iter().enumerate() {
        narrative.push_str(&format!(
            " {} {} at {} tel {};",
            p.first, p.last, p.street, p.phone
        ));
        inc.persons.push(Person {
            role: if i == 0 { Role::Subject } else { p.role },
            name: Name {
                last: s(&p.last),
                first: s(&p.first),
                middle: s(&p.middle),
                suffix: None,
            },
            dob: Some(Sensitive::new(p.dob)),
            age: None,
            age_min: None,
            age_max: None,
            age_text: None,
            sex: Some("female".into()),
            race: None,
            ethnicity: None,
            phones: vec![Sensitive::new(p.phone.clone())],
            emails: vec![Sensitive::new(p.email.clone())],
            address: Address {
                street: s(&p.street),
                city: s("HOLLOWVILLE"),
                state: Some("WV".into()),
                zip: s(&p.zip),
            },
            identifiers: vec![
                Identifier {
                    kind: IdentifierKind::Ssn,
                    value: Sensitive::new(p.ssn.clone()),
                    issuer: None,
                },
                Identifier {
                    kind: IdentifierKind::Plate,
                    value: Sensitive::new(p.plate.clone()),
                    issuer: Some("WV".into()),
                },
            ],
        });
    }
    inc.narrative = s(&narrative);
    inc
}

/// Every identifying value the test put in, as the raw text it was given.
fn identifying(seeds: &[Seed], id: &str, street: &str, zip: &str) -> Vec<String> {
    let mut v = vec![
        id.to_string(),
        street.to_string(),
        zip.to_string(),
        "38.123456".into(),
        "81.654321".into(),
        "HOLLOWVILLE".into(),
    ];
    for p in seeds {
        v.extend([
            p.last.clone(),
            p.first.clone(),
            p.middle.clone(),
            p.street.clone(),
            p.phone.clone(),
            p.email.clone(),
            p.ssn.clone(),
            p.plate.clone(),
            p.zip.clone(),
            p.dob.to_string(),
        ]);
    }
    v
}

/// `needle` as a whole word of `hay` (random names may be parts of other random words).
fn has_word(hay: &str, needle: &str) -> bool {
    regex::Regex::new(&format!(r"\b{}\b", regex::escape(needle)))
        .unwrap()
        .is_match(hay)
}

fn pseudos(n: usize) -> Vec<Pseudonym> {
    // Letters only, so that a token can never contain a seeded number by chance.
    (0..n)
        .map(|i| Pseudonym {
            token: format!("p-token-{}", char::from(b'a' + i as u8)),
            shift_days: 7,
        })
        .collect()
}

fn dest(kind: ProfileKind) -> Destination {
    Destination {
        id: "dest".into(),
        profile: Profile::build(kind, &BTreeMap::new(), None).unwrap(),
        purpose: "treatment_referral".into(),
        designations: vec![],
        require_certified_prss: false,
        link_group: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn safe_harbor_payload_holds_no_identifier(
        seeds in proptest::collection::vec(seed(), 1..4),
        id in "INC-[0-9]{6}",
        street_no in 100u32..9999,
        zip in digits(5),
    ) {
        let street = format!("{street_no} QUARRY ST");
        let inc = incident(&seeds, &id, &street, &zip);
        let incident_pseudo = Pseudonym { token: "i-token".into(), shift_days: 3 };
        let ps = pseudos(inc.persons.len());
        let facts = Facts { incident: &inc, engagements: &[], consents: &[], roster: &[], incident_pseudo: &incident_pseudo, person_pseudo: &ps, today: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap() };
        for kind in [ProfileKind::SafeHarbor] {
            let d = decide(&dest(kind), &facts);
            prop_assert!(d.delivers());
            let text = serde_json::to_string(&d.payload).unwrap();
            for v in identifying(&seeds, &id, &street, &zip) {
                prop_assert!(!text.contains(&v), "{v} found in {text}");
            }
            // Nor do the incident's exact times or birth dates: years only.
            prop_assert!(!text.contains("2026-03-01"));
        }
    }

    #[test]
    fn consented_referral_stays_inside_the_consent_classes(
        seeds in proptest::collection::vec(seed(), 1..3),
        classes in proptest::sample::subsequence(InfoClass::ALL.to_vec(), 1..=InfoClass::ALL.len()),
    ) {
        let inc = incident(&seeds, "INC-000001", "77 QUARRY ST", "25301");
        let consent = Consent {
            id: "C-1".into(),
            patient_name: Some(Sensitive::new(format!("{}, {}", seeds[0].last, seeds[0].first))),
            patient_dob: Some(Sensitive::new(seeds[0].dob)),
            disclosing: Some("program".into()),
            information: classes.iter().map(|c| Information::Class(*c)).collect(),
            recipients: vec!["dest".into()],
            purpose: Some("treatment_referral".into()),
            right_to_revoke_statement: Some("I may revoke in writing.".into()),
            expires_on: NaiveDate::from_ymd_opt(2027, 1, 1),
            expires_event: None,
            signature: Some(Sensitive::new("signed".into())),
            signed_on: NaiveDate::from_ymd_opt(2026, 3, 1),
            tpo: false,
            redisclosure_statement: None,
        };
        let e = Engagement {
            id: "E-1".into(), incident_id: "INC-000001".into(), adapter: None, person_role: Role::Subject,
            prss_id: "PRSS-1".into(), consent_id: "C-1".into(), service: Service::Mat, provider: "dest".into(),
            engaged_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        };
        let rec = ConsentRecord { consent, revoked_on: None };
        let incident_pseudo = Pseudonym { token: "i-token".into(), shift_days: 3 };
        let ps = pseudos(inc.persons.len());
        let facts = Facts { incident: &inc, engagements: std::slice::from_ref(&e), consents: std::slice::from_ref(&rec), roster: &[], incident_pseudo: &incident_pseudo, person_pseudo: &ps, today: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap() };
        let d = decide(&dest(ProfileKind::ConsentedReferral), &facts);
        prop_assert!(d.delivers(), "{:?}", d.reasons);
        // Every disclosed field is of an element the consent's classes stand for.
        for f in &d.fields {
            let name = f.split_once('.').unwrap().1;
            let def = fields::def(name).unwrap();
            prop_assert!(classes.iter().any(|c| c.elements().contains(&def.element)), "{f} ({:?}) outside {classes:?}", def.element);
        }
        // And the raw values of the classes left out are nowhere in the payload, nor is anything
        // about the other persons (callers, family).
        let parts = serde_json::to_string(&(&d.payload.as_ref().unwrap()["incident"], &d.payload.as_ref().unwrap()["person"])).unwrap();
        let s0 = &seeds[0];
        let absent: Vec<(InfoClass, &str)> = vec![
            (InfoClass::Identity, s0.last.as_str()),
            (InfoClass::Contact, s0.phone.as_str()),
            (InfoClass::Contact, s0.email.as_str()),
            (InfoClass::Identifiers, s0.ssn.as_str()),
            (InfoClass::PoliceRecord, s0.plate.as_str()),
            (InfoClass::PoliceRecord, "ZZARREST"),
            (InfoClass::PoliceRecord, "INC-000001"),
            (InfoClass::Location, "77 QUARRY ST"),
            (InfoClass::Narrative, "Narrative:"),
        ];
        for (class, v) in absent {
            if !classes.contains(&class) {
                prop_assert!(!has_word(&parts, v), "{v} ({class}) in {parts}");
            }
        }
        for other in &seeds[1..] {
            for v in [&other.last, &other.first, &other.phone, &other.ssn, &other.email] {
                prop_assert!(!has_word(&parts, v), "another person's {v} in {parts}");
            }
        }
    }
}
