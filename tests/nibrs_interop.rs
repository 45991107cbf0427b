//! NIBRS as real submissions use it (issue 11 items 11-14): a delete followed by the incident's
//! resubmission, a zero report, the agency's time zone and the repeated autumn hour, and a
//! state's own codes. Every file here is our own, built segment by segment after the 2019.1
//! specification (the layout of tests/data/nibrs/flatfile_NIBRS_Test_Sample.txt).

mod common;

use common::*;
use pnp_gateway::config::Adapter;
use pnp_gateway::model::{Action, Category};
use std::path::{Path, PathBuf};

/// One flat-file segment: RDW (its own length), level, action, month/year and city indicator,
/// ORI (17-25), incident number (26-37), then `rest` from position 38.
fn seg(level: char, action: char, ori: &str, number: &str, rest: &str) -> String {
    let body = format!("{level}{action}112023    {ori:<9}{number:<12}{rest}");
    format!("{:04}{body}\n", body.len() + 4)
}

/// The administrative segment: date `YYYYMMDD` and hour.
fn admin(action: char, ori: &str, number: &str, date: &str, hour: &str) -> String {
    seg('1', action, ori, number, &format!("{date:<8} {hour:<2}N"))
}

/// An offense segment: 35A (drug/narcotic violation), completed, offender suspected of using
/// drugs (`D`), at a residence (20).
fn drug_offense(ori: &str, number: &str) -> String {
    seg('2', 'I', ori, number, "35ACD  20")
}

/// A victim segment (an individual, 25, female) of `race`.
fn victim(ori: &str, number: &str, race: &str) -> String {
    seg(
        '4',
        'I',
        ori,
        number,
        &format!("001{:30}I25  F{race}NR", "35A"),
    )
}

/// An adapter of the shipped NIBRS mapping with `source` lines of our own.
fn nibrs_adapter(dir: &Path, kind: &str, source: &str) -> PathBuf {
    let path = dir.join(format!("{kind}.toml"));
    std::fs::write(
        &path,
        format!(
            "mapping = {:?}\n[source]\n{source}\n[format]\nkind = \"{kind}\"\n",
            repo().join("mappings/nibrs.toml")
        ),
    )
    .unwrap();
    path
}

fn load(path: &Path) -> Adapter {
    Adapter::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn a_delete_then_its_resubmission_is_one_replacement_eligible_by_its_data() {
    let d = tempfile::tempdir().unwrap();
    let ori = "HI0020000";
    let text = [
        // An incident left alone, before.
        admin('I', ori, "A-1", "20230601", "10"),
        drug_offense(ori, "A-1"),
        // The deletion and the resubmission of B-2, as state systems send a correction.
        admin('D', ori, "B-2", "", ""),
        admin('I', ori, "B-2", "20230602", "11"),
        drug_offense(ori, "B-2"),
        victim(ori, "B-2", "W"),
        // A plain delete stays a delete.
        admin('D', ori, "C-3", "", ""),
    ]
    .concat();
    let f = write(d.path(), "resubmission.txt", &text);
    let c = read(&adapter("nibrs-flat"), &f);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    let got: Vec<(&str, Action)> = c
        .incidents
        .iter()
        .map(|(_, i)| (i.incident_id.as_str(), i.action))
        .collect();
    assert_eq!(
        got,
        [
            ("A-1", Action::New),
            ("B-2", Action::Update),
            ("C-3", Action::Delete)
        ]
    );
    let b = &c.incidents[1].1;
    assert_eq!(b.offenses, ["35A"], "the resubmitted data, once");
    assert_eq!(b.category, Category::SubstanceUse);
    assert!(b.eligibility.eligible, "{}", b.eligibility.rule);
    assert_eq!(b.persons.len(), 1);
    assert_eq!(
        c.incidents[1].0.line, 4,
        "the replacement is where the resubmission begins"
    );
}

/// The XML twin does not merge: each `nibrs:Report` is a record, so a delete report and the
/// resubmitted incident's report are a delete and a new incident, in that order (the delete
/// withdraws what was queued, the new one is taken by its data).
#[test]
fn in_xml_a_delete_then_a_resubmission_are_two_records_in_order() {
    let d = tempfile::tempdir().unwrap();
    let report = |action: &str, offense: &str| {
        format!(
            r#"  <nibrs:Report>
    <nibrs:ReportHeader>
      <nibrs:NIBRSReportCategoryCode>GROUP A INCIDENT REPORT</nibrs:NIBRSReportCategoryCode>
      <nibrs:ReportActionCategoryCode>{action}</nibrs:ReportActionCategoryCode>
      <nibrs:ReportingAgency><j:OrganizationAugmentation><j:OrganizationORIIdentification><nc:IdentificationID>HI0020000</nc:IdentificationID></j:OrganizationORIIdentification></j:OrganizationAugmentation></nibrs:ReportingAgency>
    </nibrs:ReportHeader>
    <nc:Incident>
      <nc:ActivityIdentification><nc:IdentificationID>B-2</nc:IdentificationID></nc:ActivityIdentification>
      <nc:ActivityDate><nc:DateTime>2023-06-02T11:00:00</nc:DateTime></nc:ActivityDate>
    </nc:Incident>
    {offense}
  </nibrs:Report>
"#
        )
    };
    let xml = format!(
        "{}{}{}</nibrs:Submission>\n",
        XML_HEAD,
        report("D", ""),
        report(
            "I",
            r#"<j:Offense s:id="O1"><nibrs:OffenseUCRCode>35A</nibrs:OffenseUCRCode><j:OffenseFactor><j:OffenseFactorCode>D</j:OffenseFactorCode></j:OffenseFactor></j:Offense>"#
        )
    );
    let f = write(d.path(), "resubmission.xml", &xml);
    let c = read(&adapter("nibrs-xml"), &f);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    let got: Vec<Action> = c.incidents.iter().map(|(_, i)| i.action).collect();
    assert_eq!(got, [Action::Delete, Action::New]);
    assert!(c.incidents[1].1.eligibility.eligible);
}

const XML_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<nibrs:Submission xmlns:nibrs="http://fbi.gov/cjis/nibrs/2019" xmlns:j="http://release.niem.gov/niem/domains/jxdm/5.2/" xmlns:nc="http://release.niem.gov/niem/niem-core/3.0/" xmlns:s="http://release.niem.gov/niem/structures/3.0/">
"#;

/// A zero report (the agency had no incident this month) is a NIBRS submission: silent, no
/// incident and no rejection, in both forms.
#[test]
fn a_zero_report_stays_silent() {
    let d = tempfile::tempdir().unwrap();
    let xml = format!(
        r#"{XML_HEAD}  <nibrs:Report>
    <nibrs:ReportHeader>
      <nibrs:NIBRSReportCategoryCode>ZERO REPORT</nibrs:NIBRSReportCategoryCode>
      <nibrs:ReportActionCategoryCode>A</nibrs:ReportActionCategoryCode>
      <nibrs:ReportDate><nc:YearMonthDate>2023-11</nc:YearMonthDate></nibrs:ReportDate>
      <nibrs:ReportingAgency><j:OrganizationAugmentation><j:OrganizationORIIdentification><nc:IdentificationID>HI0020000</nc:IdentificationID></j:OrganizationORIIdentification></j:OrganizationAugmentation></nibrs:ReportingAgency>
    </nibrs:ReportHeader>
  </nibrs:Report>
</nibrs:Submission>
"#
    );
    let c = read(&adapter("nibrs-xml"), &write(d.path(), "zero.xml", &xml));
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert!(c.incidents.is_empty());
    // The flat file's zero-report segment (level 0): ORI, a zero incident number, the month.
    let flat = seg('0', 'A', "HI0020000", "000000000000", "112023");
    let c = read(&adapter("nibrs-flat"), &write(d.path(), "zero.txt", &flat));
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert!(c.incidents.is_empty());
    assert_eq!(c.checkpoints.last().map(|c| c.1), Some(true));
}

#[test]
fn the_agency_zone_comes_from_the_adapter_one_zone_or_by_ori() {
    let d = tempfile::tempdir().unwrap();
    let text = [
        admin('I', "HI0020000", "H-1", "20230701", "12"),
        drug_offense("HI0020000", "H-1"),
        admin('I', "AK0010100", "K-1", "20230701", "12"),
        drug_offense("AK0010100", "K-1"),
    ]
    .concat();
    let f = write(d.path(), "two-agencies.txt", &text);
    let received = |a: &Adapter| -> Vec<String> {
        let c = read(a, &f);
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        c.incidents
            .iter()
            .map(|(_, i)| i.times.received.unwrap().to_rfc3339())
            .collect()
    };
    // One zone for the adapter: a Hawaii agency's 12:00 is 12:00-10:00, not -04:00.
    let hawaii = load(&nibrs_adapter(
        d.path(),
        "nibrs_flat",
        "timezone = \"Pacific/Honolulu\"",
    ));
    assert_eq!(
        received(&hawaii),
        ["2023-07-01T12:00:00-10:00", "2023-07-01T12:00:00-10:00"]
    );
    // A state's submission: the zone by ORI, the adapter's zone for the others.
    let by_ori = load(&nibrs_adapter(
        d.path(),
        "nibrs_flat",
        "timezone = \"Pacific/Honolulu\"\n[source.timezone_by_ori]\nAK0010100 = \"America/Anchorage\"",
    ));
    assert_eq!(
        received(&by_ori),
        ["2023-07-01T12:00:00-10:00", "2023-07-01T12:00:00-08:00"]
    );
    // The mapping's examples still hold (they run in the mapping's own zone).
    let errors = by_ori
        .mapping
        .run_examples(&by_ori.provenance, &Default::default());
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn an_unknown_zone_is_a_config_error_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = nibrs_adapter(
        d.path(),
        "nibrs_flat",
        "system = \"RMS\"\ntimezone = \"Pacific/Honollulu\"",
    );
    let e = Adapter::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{}:4: field `source.timezone`", p.display())),
        "{e}"
    );
    assert!(e.contains("not an IANA time zone"), "{e}");
    let p = nibrs_adapter(
        d.path(),
        "nibrs_flat",
        "[source.timezone_by_ori]\nHI0020000 = \"Hawaii/Honolulu\"",
    );
    let e = Adapter::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(":4: field `source.timezone_by_ori.HI0020000`"),
        "{e}"
    );
    // And in a mapping's defaults.
    let m = d.path().join("m.toml");
    std::fs::write(
        &m,
        "[defaults]\ntimezone = \"Mars/Olympus\"\n[[field]]\ntarget = \"incident_id\"\nsource = \"id\"\n",
    )
    .unwrap();
    let e = pnp_gateway::mapping::Mapping::load(&m)
        .unwrap_err()
        .to_string();
    assert!(e.contains(":2: field `defaults.timezone`"), "{e}");
}

/// 2023-11-05 01:00 happened twice in New York; 2023-03-12 02:00 never did.
#[test]
fn the_repeated_hour_is_taken_by_the_rule_and_flagged_the_gap_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let ori = "NY0300000";
    let text = [
        admin('I', ori, "F-1", "20231105", "01"),
        drug_offense(ori, "F-1"),
        admin('I', ori, "S-1", "20230312", "02"),
        drug_offense(ori, "S-1"),
        admin('I', ori, "N-1", "20231105", "03"),
        drug_offense(ori, "N-1"),
    ]
    .concat();
    let f = write(d.path(), "dst.txt", &text);
    let run = |rule: &str| {
        let a = load(&nibrs_adapter(
            d.path(),
            "nibrs_flat",
            &format!("timezone = \"America/New_York\"\n{rule}"),
        ));
        read(&a, &f)
    };
    let times = |c: &Collect| -> Vec<(String, String, bool)> {
        c.incidents
            .iter()
            .map(|(_, i)| {
                (
                    i.incident_id.clone(),
                    i.times.received.unwrap().to_rfc3339(),
                    // Through the JSON form, which is what every later stage reads.
                    serde_json::to_value(&i.times).unwrap()["ambiguous"] == true,
                )
            })
            .collect()
    };
    let gap_only = |c: &Collect| {
        let r: Vec<_> = c
            .rejected
            .iter()
            .map(|(_, r)| (r.kind, r.field.clone()))
            .collect();
        assert_eq!(
            r,
            [("ambiguous_local_time", Some("times.received".to_string()))]
        );
        assert!(c.rejected[0].1.reason.contains("does not exist"));
    };
    // The default: the earlier offset, flagged.
    let c = run("");
    gap_only(&c);
    let s = |x: &str| x.to_string();
    assert_eq!(
        times(&c),
        [
            (s("F-1"), s("2023-11-05T01:00:00-04:00"), true),
            (s("N-1"), s("2023-11-05T03:00:00-05:00"), false)
        ]
    );
    let json = serde_json::to_value(&c.incidents[0].1).unwrap();
    assert_eq!(json["times"]["ambiguous"], true);
    assert!(
        serde_json::to_value(&c.incidents[1].1).unwrap()["times"]
            .get("ambiguous")
            .is_none()
    );
    assert!(c.incidents[0].1.eligibility.eligible);
    // `later`: the standard offset.
    let c = run("ambiguous_time = \"later\"");
    gap_only(&c);
    assert_eq!(
        times(&c)[0],
        (s("F-1"), s("2023-11-05T01:00:00-05:00"), true)
    );
    // `reject`: as before, the record is rejected.
    let c = run("ambiguous_time = \"reject\"");
    let kinds: Vec<_> = c.rejected.iter().map(|(_, r)| r.kind).collect();
    assert_eq!(kinds, ["ambiguous_local_time", "ambiguous_local_time"]);
    assert!(c.rejected[0].1.reason.contains("happens twice"));
    assert_eq!(times(&c).len(), 1);
}

/// With the shipped adapter (no setting of our own), the repeated hour is an incident, no
/// longer a rejection that lost it.
#[test]
fn the_shipped_adapter_takes_the_repeated_hour() {
    let d = tempfile::tempdir().unwrap();
    let ori = "NY0300000";
    let text = [
        admin('I', ori, "F-1", "20231105", "01"),
        drug_offense(ori, "F-1"),
    ]
    .concat();
    let c = read(&adapter("nibrs-flat"), &write(d.path(), "fall.txt", &text));
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    let json = serde_json::to_value(&c.incidents[0].1).unwrap();
    assert_eq!(json["times"]["received"], "2023-11-05T01:00:00-04:00");
    assert_eq!(json["times"]["ambiguous"], true);
}

/// A state's own race code (`X`, no federal code) and drug category (`Z`) are kept and listed
/// among the unmapped codes, never passed on unnoticed; the federal codes are no gaps.
#[test]
fn state_extended_codes_show_in_the_unmapped_codes() {
    let d = tempfile::tempdir().unwrap();
    let ori = "HI0020000";
    // The property segment's first drug category is at position 233.
    let drug = format!("{:195}Z", "");
    let text = [
        admin('I', ori, "E-1", "20230601", "10"),
        drug_offense(ori, "E-1"),
        seg('3', 'I', ori, "E-1", &drug),
        victim(ori, "E-1", "X"),
        admin('I', ori, "E-2", "20230601", "10"),
        drug_offense(ori, "E-2"),
        victim(ori, "E-2", "W"),
    ]
    .concat();
    let f = write(d.path(), "state-codes.txt", &text);
    let c = read(&adapter("nibrs-flat"), &f);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!(c.incidents[0].1.persons[0].race.as_deref(), Some("X"));
    assert_eq!(c.incidents[0].1.drugs, ["Z"]);
    let mut gaps: Vec<(String, String)> = c
        .gaps
        .iter()
        .map(|g| (g.table.clone(), g.code.clone()))
        .collect();
    gaps.sort();
    assert_eq!(
        gaps,
        [
            ("drug_category".to_string(), "Z".to_string()),
            ("race".to_string(), "X".to_string())
        ]
    );
    // And in `normalize`'s summary.
    let out = bin()
        .args(["normalize", "--adapter"])
        .arg(repo().join("adapters/nibrs-flat.toml"))
        .arg(&f)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v.get("summary").is_some())
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let codes = &summary["summary"]["unmapped_codes"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["table"] == "race" && g["code"] == "X"),
        "{codes}"
    );
}
