//! PRSS imports that keep the good records: each bad one reported with the line an editor shows,
//! the field and the reason (never a value), exit 1; `--atomic` imports nothing; a revocation
//! column; engagements that come before their incident wait, pending, and join it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Values of our own making that must appear in no output: a name, a signature, dates of birth.
const SEEDED: &[&str] = &["quillfeather", "zebediah", "1971-02-03", "1971-02-31"];

/// The demo tree (not run), keys made.
fn demo_tree() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    (d, cfg)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_no_seeded(o: &Output) {
    let (out, err) = text(o);
    let all = format!("{out}{err}").to_lowercase();
    for v in SEEDED {
        assert!(!all.contains(v), "`{v}` in the output:\n{out}\n{err}");
    }
}

fn import(cfg: &Path, what: &str, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![what, "import"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let o = cli(&args, cfg);
    assert_no_seeded(&o);
    o
}

const HEADER: &str = "id,patient_name,patient_dob,disclosing,information,recipients,purpose,right_to_revoke_statement,expires_on,signature,signed_on,tpo,revoked_on";

/// One consent row: `edit` replaces a good value with a bad one.
fn row(id: &str, edit: (&str, &str)) -> String {
    let good = format!(
        "{id},\"QUILLFEATHER, ZEBEDIAH\",1971-02-03,program,identity;referral,prestera,treatment_referral,I may revoke.,2027-12-31,Zebediah Quillfeather,2026-03-01,no,"
    );
    if edit.0.is_empty() {
        good
    } else {
        good.replacen(edit.0, edit.1, 1)
    }
}

/// A consent CSV with good and bad rows; a quoted field spanning three lines comes before the
/// bad ones, so a row number is not a line number. Returns the text and the lines expected in
/// the errors.
fn consents_csv() -> String {
    [
        HEADER.to_string(),   // 1
        row("G-1", ("", "")), // 2
        row(
            "G-2",
            (
                "I may revoke.",
                "\"I may revoke\nthis consent\nin writing.\"",
            ),
        ), // 3-5
        row("B-1", ("1971-02-03", "1971-02-31")), // 6: no such date
        row("G-3", ("no,", "no,2026-06-01")), // 7: revoked
        row("B-2", ("2027-12-31", "QUILLFEATHER")), // 8: a name in a date column
        row("B-3", (",no,", ",ZEBEDIAH,")), // 9: a name in a yes/no column
        row("B-4", (",prestera,", ",Zebediah Quillfeather,")), // 10: no such recipient
        "B-5,1971-02-03,QUILLFEATHER".to_string(), // 11: too few fields
        row("B-6", ("2026-03-01", "2099-01-01")), // 12: signed in the future
        row("G-4", ("", "")), // 13
    ]
    .join("\n")
        + "\n"
}

#[test]
fn consent_csv_imports_the_good_rows_and_reports_each_bad_one_by_editor_line_and_field() {
    let (d, cfg) = demo_tree();
    let f = d.path().join("consents.csv");
    std::fs::write(&f, consents_csv()).unwrap();
    let o = import(&cfg, "consent", &f, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let name = f.display().to_string();
    for want in [
        format!("{name}:6: consent B-1: field `patient_dob`: not a date (YYYY-MM-DD)"),
        format!("{name}:8: consent B-2: field `expires_on`: not a date (YYYY-MM-DD)"),
        format!("{name}:9: consent B-3: field `tpo`: not a yes/no value"),
        format!("{name}:10: consent B-4: field `recipients`: entry 1 of 1 is no destination"),
        format!("{name}:11: expected 13 fields, found 3"),
        format!("{name}:12: consent B-6: field `signed_on`: is in the future"),
    ] {
        assert!(err.contains(&want), "want {want:?} in\n{err}");
    }
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        6,
        "one line per bad row:\n{err}"
    );
    assert!(
        out.contains(
            "imported 4 consent(s), 0 already present, 6 rejected; 1 revocation(s) recorded"
        ),
        "{out}"
    );
    let list = success(&cli(&["consent", "list"], &cfg));
    let ids: Vec<&str> = list
        .lines()
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(ids, ["G-1", "G-2", "G-3", "G-4"], "{list}");
    // The revocation column revokes.
    assert!(list.contains("G-3  revoked 2026-06-01"), "{list}");
    assert!(list.contains("G-1  in force"), "{list}");

    // Again: the good ones are there already, the bad ones still bad.
    let o = import(&cfg, "consent", &f, &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("imported 0 consent(s), 4 already present, 6 rejected"),
        "{out}"
    );

    // Only good rows: exit 0.
    let good: String = consents_csv()
        .lines()
        .filter(|l| !l.starts_with('B'))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&f, good).unwrap();
    let o = import(&cfg, "consent", &f, &[]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn atomic_imports_nothing_when_a_row_is_bad() {
    let (d, cfg) = demo_tree();
    let f = d.path().join("consents.csv");
    std::fs::write(&f, consents_csv()).unwrap();
    let o = import(&cfg, "consent", &f, &["--atomic"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!("{}:12: consent B-6", f.display())),
        "{err}"
    );
    assert!(err.contains("nothing imported (--atomic)"), "{err}");
    assert_eq!(success(&cli(&["consent", "list"], &cfg)), "");
}

#[test]
fn consent_json_reports_the_line_of_each_bad_object() {
    let (d, cfg) = demo_tree();
    let obj = |id: &str, extra: &str| {
        format!(
            r#"{{"id": "{id}", "patient_name": "QUILLFEATHER, ZEBEDIAH", "patient_dob": "1971-02-03", "disclosing": "program", "information": ["identity"], "recipients": ["prestera"], "purpose": "treatment_referral", "right_to_revoke_statement": "I may revoke.", "expires_on": "2027-12-31", "signature": "Zebediah Quillfeather", "signed_on": "2026-03-01"{extra}}}"#
        )
    };
    let text_ = [
        "[".to_string(),                                                      // 1
        format!("  {},", obj("J-1", "")),                                     // 2
        format!("  {},", obj("J-2", "").replace("1971-02-03", "1971-02-31")), // 3
        "".to_string(),                                                       // 4
        format!("  {},", obj("J-3", r#", "tpo": "QUILLFEATHER""#)),           // 5
        format!("  {},", obj("J-4", r#", "revoked_on": "2026-06-01""#)),      // 6
        format!("  {},", obj("J-5", r#", "revoked_on": "ZEBEDIAH""#)),        // 7
        format!("  {}", obj("J-6", r#", "Zebediah": 1"#)),                    // 8
        "]".to_string(),
    ]
    .join("\n");
    let f = d.path().join("consents.json");
    std::fs::write(&f, text_).unwrap();
    let o = import(&cfg, "consent", &f, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let name = f.display().to_string();
    for want in [
        format!("{name}:3: consent J-2: field `patient_dob`: not a date (YYYY-MM-DD)"),
        format!("{name}:5: consent J-3: field `tpo`: wrong type, expected a boolean"),
        format!("{name}:7: consent J-5: field `revoked_on`: not a date (YYYY-MM-DD)"),
        format!("{name}:8: consent J-6: is not a known field"),
    ] {
        assert!(err.contains(&want), "want {want:?} in\n{err}");
    }
    assert!(
        out.contains(
            "imported 2 consent(s), 0 already present, 4 rejected; 1 revocation(s) recorded"
        ),
        "{out}"
    );
    let list = success(&cli(&["consent", "list"], &cfg));
    assert!(list.contains("J-4  revoked 2026-06-01"), "{list}");

    // --atomic: nothing.
    let (_d2, cfg2) = demo_tree();
    let o = import(&cfg2, "consent", &f, &["--atomic"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(success(&cli(&["consent", "list"], &cfg2)), "");

    // A FHIR Bundle: the resource's place and line.
    let bundle = format!(
        "{{\"resourceType\": \"Bundle\", \"type\": \"collection\", \"entry\": [\n{{\"resource\": {}}},\n{{\"resource\": {}}}\n]}}",
        r#"{"resourceType": "Consent", "id": "F-1", "status": "draft", "patient": {"display": "QUILLFEATHER, ZEBEDIAH"}}"#,
        r#"{"resourceType": "Consent", "id": "F-2", "status": "active", "patient": {"display": "QUILLFEATHER, ZEBEDIAH"}, "dateTime": "2026-03-01"}"#,
    );
    let f = d.path().join("bundle.json");
    std::fs::write(&f, bundle).unwrap();
    let o = import(&cfg, "consent", &f, &["--accept-incomplete"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!("{}:2 (resource 1): consent F-1: ", f.display())),
        "{err}"
    );
    assert!(out.contains("imported 1 consent(s)"), "{out}");
}

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            out.push(serde_json::from_str(l).unwrap());
        }
    }
    out
}

#[test]
fn an_engagement_before_its_incident_waits_pending_and_joins_it_when_run_reads_it() {
    let (d, cfg) = demo_tree();
    // The PRSS's records come first; no incident has been read yet.
    let o = import(
        &cfg,
        "consent",
        &prss_file(&cfg, "consents.json"),
        &["--accept-incomplete", "--today", TODAY],
    );
    success(&o);
    let engagements = prss_file(&cfg, "engagements.csv");
    let mut text_ = std::fs::read_to_string(&engagements).unwrap();
    text_.push_str(
        "E-BAD,2026-000101,generic-cad-csv,subject,PRSS-99,C-2026-001,mat,prestera,2026-03-01\n",
    );
    let f = d.path().join("engagements.csv");
    std::fs::write(&f, text_).unwrap();
    let o = import(&cfg, "engagement", &f, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "{}:8: engagement E-BAD: field `prss_id`: is not on the PRSS roster",
            f.display()
        )),
        "{err}"
    );
    assert!(
        out.contains(&format!(
            "{}:2: engagement E-2026-001: pending: incident not read yet",
            f.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("imported 6 engagement(s), 0 already present, 1 rejected; 6 pending: incident not read yet"),
        "{out}"
    );
    let pending = success(&cli(&["engagement", "list", "--pending"], &cfg));
    assert_eq!(pending.lines().count(), 6, "{pending}");
    assert!(
        pending.contains(
            "E-2026-001  incident 2026-000101 (generic-cad-csv)  to prestera  pending: incident not read yet"
        ),
        "{pending}"
    );

    // The export arrives: the incident is read, joined, decided and the referral delivered.
    success(&cli(&["run", "--once"], &cfg));
    let listed = success(&cli(&["engagement", "list"], &cfg));
    assert!(
        listed.contains("E-2026-001  incident 2026-000101 (generic-cad-csv)  to prestera  joined"),
        "{listed}"
    );
    assert_eq!(
        success(&cli(&["engagement", "list", "--pending"], &cfg)),
        ""
    );
    let referrals = lines(&cfg.parent().unwrap().join("deliveries/prestera"));
    assert_eq!(referrals.len(), 1, "{referrals:?}");
    assert_eq!(
        referrals[0]["payload"]["referral"]["engagement"],
        "E-2026-001"
    );
    // Once, not again on the next pass.
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        lines(&cfg.parent().unwrap().join("deliveries/prestera")).len(),
        1
    );

    // Importing them again after the incident: already present, joined.
    let o = import(&cfg, "engagement", &engagements, &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("imported 0 engagement(s), 6 already present, 0 rejected\n"),
        "{out}"
    );
}
