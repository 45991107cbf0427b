//! No value in any message or plaintext table (docs/privacy.md): identifiers of our own making
//! are typed into every kind of field that can fail (dates, numbers, booleans, actions, code
//! tables that reject, keep or leave empty) and into the standard formats' structural checks.
//! Every output of `normalize`, `run --once`, `quarantine list`, `check` and `preview`, and every
//! file of the store folder, is searched for them: none may appear. A code-shaped unmapped code
//! is still shown, so that operators can fix their tables.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The seeded identifiers, each as typed and in its digits-only form.
const SEEDED: &[&str] = &[
    "219-09-9999",
    "219099999",
    "ZEBEDIAH",
    "QUANTRELL",
    "(304) 555-0199",
    "304-555-0199",
    "555-0199",
    "3045550199",
    "z.quantrell@example.org",
    "07/04/1990",
    "07041990",
    "2025-11-02 01:30",
    "01:30:00",
];

const MAPPING: &str = r#"
[defaults]
timezone = "America/New_York"
# The repeated autumn hour is rejected here, so that its reason is checked too.
ambiguous_time = "reject"
datetime_formats = ["%Y-%m-%d %H:%M:%S"]
date_formats = ["%Y-%m-%d"]

[tables.cat]
ignore_case = true
entries = { OD = "overdose", MH = "behavioral_health" }

[tables.dispo]
entries = { REF = "REFERRED TO PEER" }

[tables.prio]
entries = { "1" = "high", "2" = "low" }

[[field]]
target = "incident_id"
source = "id"

[[field]]
target = "times.received"
source = "when"

[[field]]
target = "call_type.code"
source = "calltype"

# An unmapped call type is kept and is then no category: a gap and a rejection.
[[field]]
target = "category"
source = "calltype"
transforms = [{ op = "table", table = "cat", missing = "keep" }]

[[field]]
target = "disposition.code"
source = "dispo"

# An unmapped disposition is a gap; the record goes on.
[[field]]
target = "disposition.text"
source = "dispo"
transforms = [{ op = "table", table = "dispo" }]

[[field]]
target = "priority"
source = "prio"
transforms = [{ op = "table", table = "prio", missing = "reject" }]

[[field]]
target = "location.lat"
source = "lat"

[[field]]
target = "naloxone_administered"
source = "narcan"

[[field]]
target = "action"
source = "act"

[[person]]
role = "subject"

[[person.field]]
target = "dob"
source = "dob"

[[person.field]]
target = "age"
source = "age"
"#;

const HEADER: &str = "id,when,calltype,dispo,prio,lat,narcan,act,dob,age\n";

/// One record per failure, then records that pass with unmapped dispositions.
fn rows() -> String {
    let base = [
        "ID",
        "2026-03-01 10:00:00",
        "OD",
        "REF",
        "1",
        "",
        "",
        "",
        "1990-01-01",
        "",
    ];
    let edits: &[(usize, &str)] = &[
        (1, "219-09-9999"),             // a date and time
        (1, "2025-11-02 01:30:00"),     // a local time that happens twice
        (8, "219-09-9999"),             // a date of birth
        (5, "219-09-9999"),             // a number
        (9, "07/04/1990"),              // an age
        (6, "ZEBEDIAH QUANTRELL"),      // a yes/no value
        (7, "z.quantrell@example.org"), // an action
        (4, "z.quantrell@example.org"), // a table that rejects
        (4, "07/04/1990"),
        (2, "ZEBEDIAH QUANTRELL"), // a category table that keeps: gap and rejection
        (2, "(304) 555-0199"),
        (2, "219-09-9999"),
        (2, "XQ9"),                // code-shaped: shown
        (3, "ZEBEDIAH QUANTRELL"), // a table that leaves it empty: a gap only
        (3, "304-555-0199"),
        (3, "219-09-9999"),
        (3, "z.quantrell@example.org"),
        (3, "07/04/1990"),
        (3, "XQ8"),
    ];
    let mut out = String::from(HEADER);
    for (i, (col, v)) in edits.iter().enumerate() {
        let mut r: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        r[0] = format!("2026-{:06}", 900 + i);
        r[*col] = format!("\"{v}\"");
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write_adapter(root, "seeded", "kind = \"csv\"", MAPPING);
    let cfg = root.join("gateway.toml");
    std::fs::write(
        &cfg,
        r#"adapters_dir = "adapters"
[store]
path = "state/gateway.db"
[program]
include = ["overdose", "behavioral_health"]
[[pipeline]]
adapter = "seeded"
folder = "drop"
[keys]
vault_key_file = "keys/vault.key"
audit_key_file = "keys/audit.key"
outbox_key_file = "keys/outbox.key"
[[destination]]
id = "dhhr-program"
name = "DHHR program reporting"
profile = "safe-harbor"
purpose = "program_evaluation"
deliver = { kind = "file", folder = "deliveries/dhhr-program" }
"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.join("drop")).unwrap();
    let csv = root.join("drop/seeded.csv");
    std::fs::write(&csv, rows()).unwrap();
    (d, cfg, csv)
}

/// Every seeded value found in `text` (case-insensitive).
fn leaks(text: &str) -> Vec<&'static str> {
    let lower = text.to_lowercase();
    SEEDED
        .iter()
        .filter(|s| lower.contains(&s.to_lowercase()))
        .copied()
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    let found = leaks(text);
    assert!(found.is_empty(), "{what} shows {found:?}:\n{text}");
}

fn output(what: &str, o: &std::process::Output) -> (String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed:\n{out}\n{err}");
    (out, err)
}

/// Every file under `dir`, as bytes (lossy text: the seeded values are ASCII).
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

#[test]
fn no_seeded_value_in_any_output_or_store_file() {
    let (d, cfg, csv) = setup();
    let csv_arg = csv.to_str().unwrap();
    success(&cli(&["keys", "init"], &cfg));

    // normalize: stdout holds the canonical incidents (the data itself); stderr the
    // rejections and the summary.
    let o = bin()
        .args(["normalize", "--adapter", "seeded", "--config"])
        .arg(&cfg)
        .arg(&csv)
        .output()
        .unwrap();
    let (_, err) = output("normalize", &o);
    assert_clean("normalize's stderr", &err);
    let summary: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    let codes = summary["summary"]["unmapped_codes"].to_string();
    assert!(
        codes.contains("\"XQ9\"") && codes.contains("\"XQ8\""),
        "{codes}"
    );
    assert!(codes.contains("<18 chars, #"), "{codes}");
    assert!(err.contains("\"kind\":\"bad_boolean\""), "{err}");

    // run: the summary lists the unmapped codes.
    let (out, err) = output("run", &cli(&["run", "--once"], &cfg));
    assert_clean("run's stdout", &out);
    assert_clean("run's stderr", &err);
    assert!(out.contains("`XQ9`") && out.contains("`XQ8`"), "{out}");
    assert!(out.contains("<18 chars, #"), "{out}");

    let (out, err) = output("quarantine list", &cli(&["quarantine", "list"], &cfg));
    assert_clean("quarantine list", &out);
    assert_clean("quarantine list's stderr", &err);
    for kind in [
        "bad_date",
        "ambiguous_local_time",
        "bad_number",
        "bad_boolean",
        "bad_action",
        "unmapped_code",
        "bad_category",
    ] {
        assert!(out.contains(kind), "no {kind} in:\n{out}");
    }
    let (out, _) = output(
        "quarantine list --json",
        &cli(&["quarantine", "list", "--json"], &cfg),
    );
    assert_clean("quarantine list --json", &out);
    assert!(out.contains("\"field\":\"times.received\""), "{out}");

    let (out, err) = output("check", &cli(&["check"], &cfg));
    assert_clean("check", &out);
    assert_clean("check's stderr", &err);
    assert!(out.contains("mapping gaps seen"), "{out}");
    assert!(
        out.contains("code `XQ9`") && out.contains("code `XQ8`"),
        "{out}"
    );

    let o = bin()
        .args([
            "preview",
            "--adapter",
            "seeded",
            "--today",
            TODAY,
            "--config",
        ])
        .arg(&cfg)
        .arg(csv_arg)
        .output()
        .unwrap();
    let (out, err) = output("preview", &o);
    assert!(out.contains("\"decision\":\"deliver\""), "{out}");
    assert_clean("preview's stdout", &out);
    assert_clean("preview's stderr", &err);

    // Every file of the store folder: the database, its WAL and shared memory.
    let mut files = Vec::new();
    files_under(&d.path().join("state"), &mut files);
    assert!(files.iter().any(|(p, _)| p.ends_with("gateway.db")));
    for (p, text) in &files {
        assert_clean(&p.display().to_string(), text);
    }
}

/// The standard formats' structural checks quote nothing of the record either.
#[test]
fn parsers_quote_no_field_content() {
    let d = tempfile::tempdir().unwrap();
    let hl7 = d.path().join("m.hl7");
    std::fs::write(
        &hl7,
        "MSH|^~\\&|CAD|WV|||20260301101500||ADT^A01|1|P|2.5.1\rZEBEDIAH QUANTRELL|219-09-9999\r",
    )
    .unwrap();
    let eido = d.path().join("e.json");
    std::fs::write(
        &eido,
        r#"{"$id": "urn:x", "incidentComponent": [{"$id": "c1", "lastUpdateTimeStamp": "219-09-9999"}]}"#,
    )
    .unwrap();
    let eido_ref = d.path().join("r.json");
    std::fs::write(
        &eido_ref,
        r#"{"$id": "urn:y", "incidentComponent": [{"$id": "c1", "lastUpdateTimeStamp": "2026-03-01T10:00:00Z", "personReference": {"$ref": "ZEBEDIAH QUANTRELL"}}]}"#,
    )
    .unwrap();
    // NENA's sample with a `<` typed into the vCard's name: the embedded XML breaks there.
    let eido_xml = d.path().join("x.json");
    let sample =
        std::fs::read_to_string(repo().join("tests/data/eido/nena_sample_call_transfer_eido.json"))
            .unwrap();
    let broken = sample.replacen(
        "Tschofenig</text></fn>",
        "<ZEBEDIAH> Tschofenig</text></fn>",
        1,
    );
    assert_ne!(broken, sample);
    std::fs::write(&eido_xml, broken).unwrap();
    for (adapter, file, kind) in [
        ("hl7v2", &hl7, "bad_hl7"),
        ("nena-eido", &eido, "not_eido"),
        ("nena-eido", &eido_ref, "not_eido"),
        ("nena-eido", &eido_xml, "not_eido"),
    ] {
        let o = bin()
            .current_dir(repo())
            .args(["normalize", "--adapter", adapter])
            .arg(file)
            .output()
            .unwrap();
        let (_, err) = output("normalize", &o);
        assert!(err.contains(kind), "{adapter}: {err}");
        assert_clean(&format!("{adapter}'s rejection"), &err);
    }
}
