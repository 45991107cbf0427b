//! The standard formats through their adapters: every sample in tests/data/{nibrs,eido,hl7v2}
//! (see tests/data/PROVENANCE-standards.md), the NIBRS XML/flat twins, and the bad inputs of
//! issue 3, each quarantined with a reason, never a panic, never unbounded memory.

mod common;

use common::*;
use pnp_gateway::model::{Action, Category, IdentifierKind, Role};
use std::io::Write;

fn data(p: &str) -> std::path::PathBuf {
    repo().join("tests/data").join(p)
}

#[test]
fn every_nibrs_sample_normalizes() {
    let xml = adapter("nibrs-xml");
    for (file, action, incidents) in [
        ("iepd2019_nibrs_AllFields_Sample.xml", Some(Action::New), 1),
        (
            "iepd2019_nibrs_GroupAIncident_Sample.xml",
            Some(Action::New),
            1,
        ),
        (
            "iepd2019_nibrs_GroupAReplace_Sample.xml",
            Some(Action::Update),
            1,
        ),
        (
            "iepd2019_nibrs_IncidentDelete_Sample.xml",
            Some(Action::Delete),
            1,
        ),
        ("iepd2019_nibrs_ZeroReport_Sample.xml", None, 0),
        ("xml_NIBRS_Test_Sample.xml", Some(Action::New), 1),
    ] {
        let c = read(&xml, &data(&format!("nibrs/{file}")));
        assert_eq!(c.rejected.len(), 0, "{file}: {:?}", c.rejected);
        assert_eq!(c.incidents.len(), incidents, "{file}");
        if let Some(a) = action {
            assert_eq!(c.incidents[0].1.action, a, "{file}");
        }
    }
    let group_a = &read(
        &xml,
        &data("nibrs/iepd2019_nibrs_GroupAIncident_Sample.xml"),
    )
    .incidents[0]
        .1;
    assert_eq!(group_a.incident_id, "000054236732");
    assert_eq!(group_a.source.agency_ori.as_deref(), Some("WVNDX0100"));
    assert_eq!(
        group_a.category,
        Category::Violent,
        "13A aggravated assault"
    );
    assert!(!group_a.eligibility.eligible);
    // The delete yields a delete, which is never eligible: it retracts, it does not refer.
    let del = &read(
        &xml,
        &data("nibrs/iepd2019_nibrs_IncidentDelete_Sample.xml"),
    )
    .incidents[0]
        .1;
    assert_eq!(del.eligibility.rule, "action:delete");
    let drugs = &read(&xml, &data("nibrs/xml_NIBRS_Test_Sample.xml")).incidents[0].1;
    assert_eq!(drugs.offenses, ["35A"]);
    assert_eq!(drugs.category, Category::SubstanceUse);
    assert_eq!(drugs.drugs, ["L"]);
    let roles: Vec<Role> = drugs.persons.iter().map(|p| p.role).collect();
    assert_eq!(roles, [Role::Victim, Role::Subject, Role::Subject]);
}

#[test]
fn nibrs_xml_and_flat_twins_normalize_alike() {
    let x = read(
        &adapter("nibrs-xml"),
        &data("nibrs/xml_NIBRS_Test_Sample.xml"),
    );
    let f = read(
        &adapter("nibrs-flat"),
        &data("nibrs/flatfile_NIBRS_Test_Sample.txt"),
    );
    assert_eq!(f.rejected.len(), 0, "{:?}", f.rejected);
    let (mut xi, mut fi) = (x.incidents[0].1.clone(), f.incidents[0].1.clone());
    // The sources differ in one value: the offender's age is 32 in the flat file (positions
    // 40-43: "32  ") and the range 25-32 in the XML. Checked, then set aside.
    let (xo, fo) = (&mut xi.persons[1], &mut fi.persons[1]);
    assert_eq!(
        (
            xo.age_min.as_ref().map(|a| *a.expose()),
            xo.age_max.as_ref().map(|a| *a.expose())
        ),
        (Some(25), Some(32))
    );
    assert_eq!(fo.age.as_ref().map(|a| *a.expose()), Some(32));
    for p in [xo, fo] {
        p.age = None;
        p.age_min = None;
        p.age_max = None;
    }
    // And the adapters that read them.
    xi.source.adapter = "nibrs".into();
    fi.source.adapter = "nibrs".into();
    xi.source.system = None;
    fi.source.system = None;
    assert_eq!(xi, fi);
    assert_eq!(
        xi.times.received.unwrap().to_rfc3339(),
        "2019-05-01T15:00:00-04:00"
    );
    let arrestee = &xi.persons[2];
    assert_eq!(
        (arrestee.sex.as_deref(), arrestee.race.as_deref()),
        (Some("M"), Some("P"))
    );
}

#[test]
fn the_official_eido_sample_yields_an_incident() {
    let c = read(
        &adapter("nena-eido"),
        &data("eido/nena_sample_call_transfer_eido.json"),
    );
    assert_eq!(c.rejected.len(), 0, "{:?}", c.rejected);
    let inc = &c.incidents[0].1;
    assert_eq!(
        inc.incident_id,
        "urn:emergency:uid:incidentid:a56e556d871:bcf.state.pa.us"
    );
    assert_eq!(
        inc.times.received.unwrap().to_rfc3339(),
        "2021-04-30T14:40:00-04:00"
    );
    // `answerDate` is when the call was answered; no unit was dispatched in this document.
    assert_eq!(
        inc.times.answered.unwrap().to_rfc3339(),
        "2021-04-30T14:42:00-04:00"
    );
    assert_eq!(inc.times.dispatched, None);
    assert_eq!(
        inc.location.street.as_ref().unwrap().expose(),
        "42 W Cellular Street"
    );
    assert_eq!(inc.location.city.as_deref(), Some("Wilmington"));
    assert_eq!(inc.location.state.as_deref(), Some("DE"));
    assert_eq!(
        inc.narrative.as_ref().unwrap().expose(),
        "This is an example text."
    );
    let caller = &inc.persons[0];
    assert_eq!(caller.role, Role::Caller);
    assert_eq!(
        caller
            .phones
            .iter()
            .map(|p| p.expose().as_str())
            .collect::<Vec<_>>(),
        ["8195551212"]
    );
    assert_eq!(
        inc.category,
        Category::Unmapped,
        "`emergency` is no incident type the table knows"
    );
    assert_eq!(c.gaps[0].code, "emergency");
}

#[test]
fn every_hl7_sample_normalizes_or_is_rejected_precisely() {
    let a = adapter("hl7v2");
    let adt = read(&a, &data("hl7v2/fhirconverter_ADT01-23.hl7"));
    assert_eq!(adt.rejected.len(), 0, "{:?}", adt.rejected);
    let p = &adt.incidents[0].1.persons[0];
    assert_eq!(
        p.name.last.as_ref().unwrap().expose(),
        "DUCK",
        "the UTF-8 BOM does not stick to MSH"
    );
    assert_eq!(p.dob.as_ref().unwrap().expose().to_string(), "1924-10-10");
    let ssn = ssns(p);
    assert_eq!(ssn, ["123121234"], "PID-19");
    assert_eq!(
        adt.incidents[0].1.persons[1]
            .name
            .first
            .as_ref()
            .unwrap()
            .expose(),
        "HUEY",
        "NK1"
    );

    let refi12 = read(&a, &data("hl7v2/fhirconverter_REF-I12-01.hl7"));
    let p = &refi12.incidents[0].1.persons[0];
    let ssn = ssns(p);
    assert_eq!(
        ssn,
        ["220917255", "123456789"],
        "PID-19 and the PID-3 repetition"
    );
    assert_eq!(p.name.suffix.as_ref().unwrap().expose(), "III");

    let simple = read(&a, &data("hl7v2/hl7v2ex_ref_i12_v251.hl7"));
    assert_eq!(simple.incidents[0].1.incident_id, "REF001", "RF1-6");
    assert_eq!(
        simple.incidents[0].1.narrative.as_ref().unwrap().expose(),
        "Referral for cardiology evaluation"
    );

    let ack = read(&a, &data("hl7v2/hl7v2ex_ack_aa_v251.hl7"));
    assert_eq!(ack.incidents.len(), 0);
    assert_eq!(ack.rejected[0].1.kind, "not_an_incident");
    assert!(ack.rejected[0].1.reason.contains("ACK"));
}

/// A person's SSNs, in order.
fn ssns(p: &pnp_gateway::model::Person) -> Vec<&str> {
    p.identifiers
        .iter()
        .filter(|i| i.kind == IdentifierKind::Ssn)
        .map(|i| i.value.expose().as_str())
        .collect()
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn kinds(c: &Collect) -> Vec<&'static str> {
    c.rejected.iter().map(|(_, r)| r.kind).collect()
}

#[test]
fn bad_standard_inputs_are_quarantined() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Truncated XML: the reports before the break are kept.
    let full = std::fs::read_to_string(data("nibrs/xml_NIBRS_Test_Sample.xml")).unwrap();
    let cut = &full[..full.len() * 2 / 3];
    let c = read(
        &adapter("nibrs-xml"),
        &write(dir, "cut.xml", cut.as_bytes()),
    );
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].1.kind, "truncated_xml", "{:?}", c.rejected);
    assert!(c.rejected[0].1.reason.contains("cut short at byte"));
    // An XML bomb: entities are never expanded.
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<nibrs:Submission xmlns:nibrs="http://fbi.gov/cjis/nibrs/2019"><nibrs:Report><nibrs:ReportHeader>&lol2;</nibrs:ReportHeader></nibrs:Report></nibrs:Submission>"#;
    let c = read(
        &adapter("nibrs-xml"),
        &write(dir, "bomb.xml", bomb.as_bytes()),
    );
    assert_eq!(kinds(&c), ["invalid_xml"]);
    assert!(c.rejected[0].1.reason.contains("never expanded"));
    // Invalid UTF-8 inside an XML report.
    let mut bad = full.clone().into_bytes();
    let at = full.find("HI0020000").unwrap();
    bad[at] = 0xFF;
    let c = read(&adapter("nibrs-xml"), &write(dir, "utf8.xml", &bad));
    assert_eq!(c.incidents.len(), 0);
    assert_eq!(c.rejected.len(), 1);

    // A flat-file line of the wrong length, a bad RDW, garbage: rejected, the rest read.
    let flat = std::fs::read_to_string(data("nibrs/flatfile_NIBRS_Test_Sample.txt")).unwrap();
    let mut lines: Vec<String> = flat.lines().map(String::from).collect();
    lines.insert(
        1,
        format!("{}EXTRA DATA BEYOND THE SEGMENT LENGTH", lines[1]),
    );
    lines.push("XXXX garbage".into());
    lines.push("0046".into());
    let c = read(
        &adapter("nibrs-flat"),
        &write(dir, "bad.txt", lines.join("\r\n").as_bytes()),
    );
    assert_eq!(c.incidents.len(), 1);
    assert_eq!(kinds(&c), ["bad_segment", "bad_segment", "bad_segment"]);
    assert!(
        c.rejected[0]
            .1
            .reason
            .contains("its segment length says 63"),
        "{:?}",
        c.rejected
    );
    assert_eq!(c.rejected[0].0.line, 2);

    // EIDO: a $ref that points nowhere, a cycle, nesting 10,000 deep, a placeholder document.
    let eido = adapter("nena-eido");
    let sample = std::fs::read_to_string(data("eido/nena_sample_call_transfer_eido.json")).unwrap();
    let dangling = sample.replacen(
        "\"$ref\": \"123e4567-e89b-1234-a456-426614174000\"",
        "\"$ref\": \"no-such-component\"",
        1,
    );
    let c = read(&eido, &write(dir, "dangling.json", dangling.as_bytes()));
    assert_eq!(kinds(&c), ["not_eido"]);
    let reason = &c.rejected[0].1.reason;
    assert!(reason.contains("points to no component"), "{reason}");
    assert!(
        !reason.contains("no-such-component"),
        "the `$ref` is not quoted: {reason}"
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let c = read(&eido, &write(dir, "deep.json", deep.as_bytes()));
    assert_eq!(kinds(&c), ["invalid_json"]);
    let placeholder = r#"{"$id": "string", "callComponent": [{"$id": "string", "lastUpdateTimeStamp": "string"}]}"#;
    let c = read(
        &eido,
        &write(dir, "placeholder.json", placeholder.as_bytes()),
    );
    assert_eq!(kinds(&c), ["not_eido"]);
    let c = read(
        &eido,
        &write(
            dir,
            "truncated.json",
            &sample.as_bytes()[..sample.len() / 2],
        ),
    );
    assert_eq!(kinds(&c), ["truncated_json"]);

    // HL7: 10,000 segments, a 50 MB segment, invalid UTF-8, a short MSH-2; the good message after
    // each is still read.
    let hl7 = adapter("hl7v2");
    let good = "MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|OK1|P|2.5.1\rPID|1||X^^^^MR||DOE^JANE\r";
    let mut big = String::from("MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|BIG|P|2.5.1\r");
    for i in 0..10_000 {
        big.push_str(&format!("NTE|{i}||note\r"));
    }
    big.push_str(good);
    let c = read(&hl7, &write(dir, "many.hl7", big.as_bytes()));
    assert_eq!(kinds(&c), ["record_too_long"]);
    assert_eq!(c.incidents.len(), 1);
    let f = dir.join("long.hl7");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    w.write_all(b"MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|LONG|P|2.5.1\rNTE|1||")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        w.write_all(&chunk).unwrap();
    }
    w.write_all(b"\r").unwrap();
    w.write_all(good.as_bytes()).unwrap();
    drop(w);
    let c = read(&hl7, &f);
    assert_eq!(kinds(&c), ["record_too_long"]);
    assert_eq!(c.incidents.len(), 1);
    let mut bytes =
        b"MSH|^~\\&|A|B|C|D|20260101120000||ADT^A01|BAD|P|2.5.1\rPID|1||X||D\xC3\x28E\r".to_vec();
    bytes.extend_from_slice(good.as_bytes());
    let c = read(&hl7, &write(dir, "utf8.hl7", &bytes));
    assert_eq!(kinds(&c), ["invalid_utf8"]);
    let c = read(
        &hl7,
        &write(dir, "msh2.hl7", format!("MSH|^~|A|B\r{good}").as_bytes()),
    );
    assert_eq!(kinds(&c), ["bad_hl7"]);
    assert!(c.rejected[0].1.reason.contains("MSH-2 has 2"));
    assert_eq!(c.incidents.len(), 1);
    // A v2.7 truncation character does not shift MSH fields.
    let c = read(
        &hl7,
        &write(
            dir,
            "v27.hl7",
            b"MSH|^~\\&#|A|B|C|D|20260101120000||ADT^A01|V27|P|2.7\rPID|1||X^^^^MR||DOE^JANE\r",
        ),
    );
    assert_eq!(c.incidents[0].1.incident_id, "V27");
    assert_eq!(c.incidents[0].1.call_type.as_ref().unwrap().code, "ADT^A01");
}
