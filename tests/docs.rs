//! The documentation stays in step with the code.

mod common;

use chrono::{DateTime, NaiveDate};
use pnp_gateway::mapping::target::{INCIDENT_FIELDS, PERSON_FIELDS};
use pnp_gateway::model::*;

fn full_incident() -> Incident {
    let s = |v: &str| Some(Sensitive::new(v.to_string()));
    let t = |v: &str| Some(DateTime::parse_from_rfc3339(v).unwrap());
    let mut inc = Incident::new("generic-cad-csv");
    inc.source.agency_ori = Some("WV0200100".into());
    inc.source.system = Some("CAD export".into());
    inc.source.record_id = "2026-000123".into();
    inc.incident_id = "2026-000123".into();
    inc.call_type = Some(Coded {
        code: "OD".into(),
        text: Some("OVERDOSE".into()),
    });
    inc.category = Category::Overdose;
    inc.eligibility = Eligibility {
        eligible: true,
        rule: "category:overdose:included".into(),
    };
    inc.priority = Some("1".into());
    inc.times = Times {
        received: t("2026-03-14T22:15:09-04:00"),
        answered: t("2026-03-14T22:15:20-04:00"),
        dispatched: t("2026-03-14T22:16:00-04:00"),
        arrived: t("2026-03-14T22:21:30-04:00"),
        cleared: t("2026-03-14T23:05:00-04:00"),
        ambiguous: true,
    };
    inc.location = Location {
        street: s("100 CAPITOL ST"),
        city: Some("Charleston".into()),
        county: Some("Kanawha".into()),
        state: Some("WV".into()),
        zip: s("25301"),
        lat: Some(Sensitive::new(38.3498)),
        lon: Some(Sensitive::new(-81.6326)),
        beat: Some("B2".into()),
    };
    inc.disposition = Some(Coded {
        code: "REF".into(),
        text: Some("REFERRED TO PEER".into()),
    });
    inc.narrative = s("Caller reports female unresponsive; naloxone given.");
    inc.naloxone_administered = Some(true);
    inc.flags = Flags {
        weapon: Some(false),
        violence: Some(false),
        substance_use: Some(true),
    };
    inc.offenses = vec!["35A".into()];
    inc.drugs = vec!["E".into()];
    inc.persons.push(Person {
        role: Role::Subject,
        name: Name {
            last: s("DOE"),
            first: s("JANE"),
            middle: s("Q"),
            suffix: s("JR"),
        },
        dob: Some(Sensitive::new(NaiveDate::from_ymd_opt(1990, 7, 4).unwrap())),
        age: Some(Sensitive::new(35)),
        age_min: Some(Sensitive::new(30)),
        age_max: Some(Sensitive::new(39)),
        age_text: Some("about 35".into()),
        sex: Some("female".into()),
        race: Some("W".into()),
        ethnicity: Some("N".into()),
        phones: vec![Sensitive::new("3045550100".into())],
        emails: vec![Sensitive::new("jane@example.org".into())],
        address: Address {
            street: s("12 EXAMPLE AVE"),
            city: s("Charleston"),
            state: Some("WV".into()),
            zip: s("25301"),
        },
        identifiers: vec![
            Identifier {
                kind: IdentifierKind::Ssn,
                value: Sensitive::new("123456789".into()),
                issuer: None,
            },
            Identifier {
                kind: IdentifierKind::DriversLicense,
                value: Sensitive::new("A123456".into()),
                issuer: Some("WV".into()),
            },
        ],
    });
    inc
}

fn json_block(doc: &str) -> serde_json::Value {
    let start = doc.find("```json").expect("a json block") + 7;
    let end = start + doc[start..].find("```").unwrap();
    serde_json::from_str(&doc[start..end]).expect("the example is JSON")
}

#[test]
fn canonical_model_doc_matches_the_types() {
    let doc = std::fs::read_to_string(common::repo().join("docs/canonical-model.md")).unwrap();
    let documented = json_block(&doc);
    let inc = full_incident();
    assert_eq!(
        serde_json::to_value(&inc).unwrap(),
        documented,
        "update docs/canonical-model.md"
    );
    // And the documented JSON reads back into the same incident (unknown keys are refused).
    let back: Incident = serde_json::from_value(documented).unwrap();
    assert_eq!(back, inc);
    // Debug of the whole incident shows no identifying value.
    let dbg = format!("{inc:?}");
    for secret in [
        "DOE",
        "123456789",
        "3045550100",
        "CAPITOL",
        "1990",
        "naloxone given",
        "38.3498",
    ] {
        assert!(!dbg.contains(secret), "Debug leaks {secret}");
    }
}

#[test]
fn mapping_doc_lists_every_target() {
    let doc = std::fs::read_to_string(common::repo().join("docs/mapping.md")).unwrap();
    let names = INCIDENT_FIELDS
        .iter()
        .map(|(n, _)| *n)
        .chain(PERSON_FIELDS.iter().map(|(n, _)| *n));
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/mapping.md does not list `{name}`"
        );
    }
}

/// docs/delivery.md's string to sign and worked example: what the gateway signs, and what
/// Python, given only the documented template (`str.format`) and the trimmed secret, computes.
#[test]
fn delivery_doc_gives_the_exact_signature_string() {
    let doc = std::fs::read_to_string(common::repo().join("docs/delivery.md")).unwrap();
    let after = &doc[doc
        .find("of this exact string:")
        .expect("the string to sign")..];
    let start = after.find("```text\n").unwrap() + 8;
    let template = after[start..start + after[start..].find('\n').unwrap()].to_string();
    assert_eq!(template, "{timestamp}.{idempotency_key}.{body}");
    let (secret_file, ts, key, body) = (
        "an-example-secret-of-our-own-making-0123\n",
        "1767225600",
        "3f9a0c2e7b514d6a8e1f0b2c4d6e8fa1",
        r#"{"profile":"safe-harbor"}"#,
    );
    for v in [secret_file.trim(), ts, key, body] {
        assert!(doc.contains(&format!("`{v}`")), "the example names {v}");
    }
    let line = doc
        .lines()
        .find(|l| l.starts_with("X-PNP-Signature: v2="))
        .expect("the example's header");
    let documented = line.trim_start_matches("X-PNP-Signature: ");
    let ours = pnp_gateway::deliver::webhook::signature(
        secret_file.trim().as_bytes(),
        ts.parse().unwrap(),
        key,
        body.as_bytes(),
    );
    assert_eq!(ours, documented);
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, hmac, sys\n\
             t, secret, ts, key, body = sys.argv[1:]\n\
             s = t.format(timestamp=ts, idempotency_key=key, body=body)\n\
             print('v2=' + hmac.new(secret.strip().encode(), s.encode(), hashlib.sha256).hexdigest())",
            &template,
            secret_file,
            ts,
            key,
            body,
        ])
        .output()
        .unwrap();
    assert_eq!(common::success(&py).trim(), documented);
}

/// The repository stands alone: every relative link in README.md and docs/ names a file of the
/// repository, and none leads out of it.
#[test]
fn relative_links_stay_inside_the_repository() {
    let root = common::repo();
    let mut docs = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        docs.push(e.unwrap().path());
    }
    let link = regex::Regex::new(r"\]\(([^)#\s]+)(#[^)]*)?\)").unwrap();
    for doc in docs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(doc).unwrap();
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = doc.parent().unwrap().join(target);
            let resolved = path
                .canonicalize()
                .unwrap_or_else(|_| panic!("{}: link to missing {target}", doc.display()));
            assert!(
                resolved.starts_with(root.canonicalize().unwrap()),
                "{}: link {target} leads out of the repository",
                doc.display()
            );
        }
    }
}
