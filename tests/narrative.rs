//! Narratives in consented referrals (issue 9 item 4), end to end through `decide`: the other
//! persons' values go in every common spelling, the consenting person's covered values stay, the
//! pattern pass runs under every consent, and the narrative's own words are never "known values".
//! Values of our own making.

use chrono::NaiveDate;
use pnp_gateway::model::*;
use pnp_gateway::policy::disclose::{Destination, Facts, decide};
use pnp_gateway::policy::profile::{Profile, ProfileKind, Pseudonym};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
struct Who {
    last: String,
    first: String,
    middle: String,
    phone: String,
    ssn: String,
    email: String,
    street: String,
    role: Role,
}

fn person(w: &Who) -> Person {
    let s = |v: &str| Some(Sensitive::new(v.to_string()));
    Person {
        role: w.role,
        name: Name {
            last: s(&w.last),
            first: s(&w.first),
            middle: s(&w.middle),
            suffix: None,
        },
        dob: Some(Sensitive::new(NaiveDate::from_ymd_opt(1990, 7, 4).unwrap())),
        phones: vec![Sensitive::new(w.phone.clone())],
        emails: vec![Sensitive::new(w.email.clone())],
        address: Address {
            street: s(&w.street),
            ..Address::default()
        },
        identifiers: vec![Identifier {
            kind: IdentifierKind::Ssn,
            value: Sensitive::new(w.ssn.clone()),
            issuer: None,
        }],
        ..Person::default()
    }
}

fn incident(people: &[Who], narrative: &str) -> Incident {
    let mut inc = Incident::new("narrative");
    inc.incident_id = "INC-424242".into();
    inc.category = Category::Overdose;
    inc.eligibility = Eligibility {
        eligible: true,
        rule: "category:overdose:included".into(),
    };
    inc.location.street = Some(Sensitive::new("77 HOLLOW RD".into()));
    inc.narrative = Some(Sensitive::new(narrative.to_string()));
    inc.persons = people.iter().map(person).collect();
    inc
}

/// The narrative of the referral of `inc`'s first person under a consent listing `classes`.
fn referred_narrative(inc: &Incident, classes: &[InfoClass]) -> String {
    let subject = &inc.persons[0];
    let last = subject.name.last.as_ref().unwrap().expose();
    let consent = json!({
        "consent": {
            "id": "C-1",
            "patient_name": format!("{last}, SOMEONE"),
            "patient_dob": "1990-07-04",
            "disclosing": "program",
            "information": classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "recipients": ["dest"],
            "purpose": "treatment_referral",
            "right_to_revoke_statement": "I may revoke in writing.",
            "expires_on": "2027-01-01",
            "expires_event": null,
            "signature": "signed",
            "signed_on": "2026-03-01",
            "tpo": false,
            "redisclosure_statement": null,
        },
        "revoked_on": null,
    });
    let rec: ConsentRecord = serde_json::from_value(consent).unwrap();
    let e: Engagement = serde_json::from_value(json!({
        "id": "E-1", "incident_id": inc.incident_id, "person_role": "subject", "prss_id": "PRSS-1",
        "consent_id": "C-1", "service": "mat", "provider": "dest", "engaged_on": "2026-03-01",
    }))
    .unwrap();
    let dest = Destination {
        id: "dest".into(),
        profile: Profile::build(ProfileKind::ConsentedReferral, &BTreeMap::new(), None).unwrap(),
        purpose: "treatment_referral".into(),
        designations: vec![],
        require_certified_prss: false,
        link_group: None,
    };
    let pseudo = |t: &str| Pseudonym {
        token: t.into(),
        shift_days: 3,
    };
    let ps: Vec<Pseudonym> = inc.persons.iter().map(|_| pseudo("p-token")).collect();
    let facts = Facts {
        incident: inc,
        engagements: std::slice::from_ref(&e),
        consents: std::slice::from_ref(&rec),
        roster: &[],
        incident_pseudo: &pseudo("i-token"),
        person_pseudo: &ps,
        today: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
    };
    let d = decide(&dest, &facts);
    assert!(d.delivers(), "{:?}", d.reasons);
    d.payload.unwrap()["incident"]["narrative"]
        .as_str()
        .expect("a narrative in the referral")
        .to_string()
}

fn jane() -> Who {
    Who {
        last: "DOE".into(),
        first: "JANE".into(),
        middle: "QUINN".into(),
        phone: "3045550100".into(),
        ssn: "123456789".into(),
        email: "jane.doe@example.org".into(),
        street: "12 EXAMPLE AVE".into(),
        role: Role::Subject,
    }
}

fn richard() -> Who {
    Who {
        last: "ROE".into(),
        first: "RICHARD".into(),
        middle: "MARK".into(),
        phone: "3045550199".into(),
        ssn: "987654321".into(),
        email: "rroe@mail.example.net".into(),
        street: "400 N QUARRY ST".into(),
        role: Role::Caller,
    }
}

#[test]
fn a_callers_callback_number_goes_from_a_referral_under_a_consent_covering_every_class() {
    let text = "Caller Richard M. Roe, callback (304) 555-0199 or 304.555.0199, found Jane Doe \
                unresponsive; Jane's own phone (304) 555-0100.";
    let inc = incident(&[jane(), richard()], text);
    let out = referred_narrative(&inc, &InfoClass::ALL);
    for gone in ["555-0199", "555.0199", "Richard", "Roe"] {
        assert!(!out.contains(gone), "{gone} left in: {out}");
    }
    for stays in ["Jane Doe", "(304) 555-0100", "unresponsive"] {
        assert!(out.contains(stays), "{stays} lost: {out}");
    }
}

#[test]
fn a_consent_lacking_a_class_keeps_the_narratives_ordinary_words() {
    let text = "Subject agreed to talk to a peer about treatment options; call 304-555-0100.";
    let inc = incident(&[jane(), richard()], text);
    let classes: Vec<InfoClass> = InfoClass::ALL
        .into_iter()
        .filter(|c| *c != InfoClass::Identifiers)
        .collect();
    assert_eq!(
        referred_narrative(&inc, &classes),
        "Subject agreed to talk to a peer about treatment options; call 304-555-0100."
    );
    // Without `contact`, the subject's own phone goes too, in any spelling.
    let classes: Vec<InfoClass> = InfoClass::ALL
        .into_iter()
        .filter(|c| *c != InfoClass::Contact)
        .collect();
    assert_eq!(
        referred_narrative(&inc, &classes),
        "Subject agreed to talk to a peer about treatment options; call [PHONE]."
    );
}

/// Random people: names of letters only, ten-digit phones not starting with 1, nine-digit SSNs.
fn who(role: Role) -> impl Strategy<Value = Who> {
    (
        ("[A-Z]{4,9}", "[A-Z]{4,9}", "[A-Z]{4,9}"),
        (
            "[2-9][0-9]{9}",
            "[0-9]{9}",
            "[a-z]{2}[0-9]{2,4}",
            100u32..9999,
        ),
    )
        .prop_map(move |((last, first, middle), (phone, ssn, mail, no))| Who {
            email: format!("{mail}@mailhost.example"),
            street: format!("{no} {middle} AVE"),
            last,
            first,
            middle,
            phone,
            ssn,
            role,
        })
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_string() + &c.as_str().to_lowercase())
        .unwrap_or_default()
}

/// The person's values as an officer might type them; `k` picks the spelling.
fn spelled(w: &Who, k: usize) -> Vec<String> {
    let p = &w.phone;
    let phone = [
        format!("({}) {}-{}", &p[..3], &p[3..6], &p[6..]),
        format!("{}.{}.{}", &p[..3], &p[3..6], &p[6..]),
        p.clone(),
        format!("1-{}-{}-{}", &p[..3], &p[3..6], &p[6..]),
    ];
    let s = &w.ssn;
    let ssn = [
        format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..]),
        s.clone(),
        format!("{} {} {}", &s[..3], &s[3..5], &s[5..]),
    ];
    let (l, f, m) = (&w.last, &w.first, &w.middle);
    let name = [
        format!("{l}, {f}"),
        format!("{} {}", title(f), title(l)),
        format!("{} {}. {}", title(f), &m[..1], title(l)),
        format!("{}. {}", &f[..1], title(l)),
        title(l),
        title(f),
    ];
    let email = [w.email.to_uppercase(), w.email.clone()];
    let no = w.street.split(' ').next().unwrap();
    let street = [
        format!("{no} {} Avenue", title(m)),
        format!("{no} {} AVE.", m),
        format!("{no} {} Ave", title(m)),
    ];
    vec![
        phone[k % phone.len()].clone(),
        ssn[k % ssn.len()].clone(),
        name[k % name.len()].clone(),
        email[k % email.len()].clone(),
        street[k % street.len()].clone(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_other_persons_value_survives_in_any_spelling(
        subject in who(Role::Subject),
        others in proptest::collection::vec(
            prop_oneof![who(Role::Caller), who(Role::Witness), who(Role::Victim), who(Role::Other)],
            1..4,
        ),
        ks in proptest::collection::vec(0usize..12, 4),
        classes in proptest::sample::subsequence(InfoClass::ALL.to_vec(), 0..InfoClass::ALL.len()),
    ) {
        let mut classes = classes;
        classes.push(InfoClass::Narrative);
        let mut text = String::from("Narrative:");
        let mut theirs = Vec::new();
        for (i, o) in others.iter().enumerate() {
            let v = spelled(o, ks[i]);
            text.push_str(&format!(" other {};", v.join(" / ")));
            theirs.extend(v);
        }
        let own = spelled(&subject, ks[3]);
        text.push_str(&format!(" subject {}; agreed to treatment.", own.join(" / ")));
        let mut people = vec![subject.clone()];
        people.extend(others.iter().cloned());
        let inc = incident(&people, &text);
        let out = referred_narrative(&inc, &classes);
        for v in &theirs {
            prop_assert!(!out.to_lowercase().contains(&v.to_lowercase()), "{v} left in: {out}");
        }
        prop_assert!(out.contains("agreed to treatment."), "{out}");
        // The subject's phone stays when the consent covers contacts (and no one shares it).
        let shared = others.iter().any(|o| o.phone == subject.phone);
        if classes.contains(&InfoClass::Contact) && !shared {
            prop_assert!(out.contains(&own[0]), "{} lost: {out}", own[0]);
        } else {
            prop_assert!(!out.contains(&own[0]), "{} left in: {out}", own[0]);
        }
    }
}
