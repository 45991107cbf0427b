//! The privacy engine end to end: consents withheld for each defect and after revocation, the
//! audit trail's tamper detection, all-or-nothing (`--atomic`) imports, preview on the demo config, and no
//! identifying value in any log line.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Writes the demo into a temp folder (without running it) and returns (tempdir, config).
fn demo_tree() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    (d, cfg)
}

/// The demo tree with its exports read, keys made, and the given consents imported.
fn prepared() -> (tempfile::TempDir, PathBuf) {
    let (d, cfg) = demo_tree();
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    (d, cfg)
}

fn decisions(cfg: &Path, today: &str) -> Vec<serde_json::Value> {
    let export = cfg
        .parent()
        .unwrap()
        .join("exports/generic/cad_export_2026-03.csv");
    let out = bin()
        .args(["preview", "--today", today, "--config"])
        .arg(cfg)
        .arg(&export)
        .output()
        .unwrap();
    success(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decision<'a>(ds: &'a [serde_json::Value], incident: &str, dest: &str) -> &'a serde_json::Value {
    ds.iter()
        .find(|d| d["incident"] == incident && d["destination"] == dest)
        .unwrap_or_else(|| panic!("no decision for {incident} -> {dest}"))
}

fn reason_kinds(d: &serde_json::Value) -> Vec<String> {
    d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().split(':').next().unwrap().to_string())
        .collect()
}

#[test]
fn each_consent_defect_withholds_with_its_reason_and_revocation_stops_delivery() {
    let (_d, cfg) = prepared();
    import_demo_records(&cfg);
    let ds = decisions(&cfg, "2026-11-27");
    let valid = decision(&ds, "2026-000101", "prestera");
    assert_eq!(valid["decision"], "deliver", "{valid}");
    let payload = &valid["payload"];
    assert_eq!(
        payload["notice"],
        "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
    );
    assert_eq!(payload["consent"]["id"], "C-2026-001");
    assert_eq!(payload["person"]["name"]["last"], "DOE");
    // The consent covers identity, contact and referral: no police details, no narrative, no SSN.
    let text = payload.to_string();
    for absent in [
        "2026-000101",
        "REF",
        "narrative",
        "123456789",
        "OVERDOSE",
        "ROE",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000102", "prestera")),
        ["consent_expired"]
    );
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000105", "prestera")),
        ["prss_not_certified", "consent_other_recipient"]
    );
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000107", "qrt-kanawha")),
        ["consent_incomplete"]
    );
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000101", "qrt-kanawha")),
        ["consent_other_purpose"]
    );
    // C-2026-005 is valid until revoked.
    assert_eq!(
        decision(&ds, "2026-000114", "qrt-kanawha")["decision"],
        "deliver"
    );
    success(
        &bin()
            .args([
                "consent",
                "revoke",
                "C-2026-005",
                "--on",
                "2026-11-20",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    let ds = decisions(&cfg, "2026-11-27");
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000114", "qrt-kanawha")),
        ["consent_revoked"]
    );
    // The valid consent expires in time too (and so does the PRSS's certification).
    let later = decisions(&cfg, "2028-01-01");
    assert_eq!(
        reason_kinds(decision(&later, "2026-000101", "prestera")),
        ["prss_not_certified", "consent_expired"]
    );
    // De-identified destinations get eligible incidents whatever the consents say.
    assert_eq!(
        decision(&ds, "2026-000102", "dhhr-program")["decision"],
        "deliver"
    );
    assert_eq!(
        reason_kinds(decision(&ds, "2026-000104", "dhhr-program")),
        ["not_eligible"]
    );
}

#[test]
fn imports_are_all_or_nothing_with_clear_errors() {
    let (d, cfg) = prepared();
    let dir = d.path();
    let consent = |id: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","patient_name":"DOE, JANE Q","disclosing":"program","information":["identity"],"recipients":["prestera"],"purpose":"treatment_referral","right_to_revoke_statement":"I may revoke.","expires_on":"2027-01-01","signature":"J","signed_on":"2026-03-01"{extra}}}"#
        )
    };
    let cases = [
        (
            format!(
                "[{}]",
                consent("A", "").replace(r#","right_to_revoke_statement":"I may revoke.""#, "")
            ),
            "lacks element(s) `right_to_revoke_statement`",
        ),
        (
            format!(
                "[{}]",
                consent("A", "").replace(r#"["prestera"]"#, r#"["nobody-clinic"]"#)
            ),
            "field `recipients`: entry 1 of 1 is no destination id",
        ),
        (
            format!("[{}]", consent("A", "").replace("2026-03-01", "2099-01-01")),
            "field `signed_on`: is in the future",
        ),
        (
            format!("[{},{}]", consent("A", ""), consent("A", "")),
            "field `id`: the id appears more than once in the file (lines 1, 1)",
        ),
        (
            format!("[{}]", consent("A", r#","colour":"blue""#)),
            "field `colour`: is not a known field",
        ),
        // A name and a phone number shifted into the id: refused, and never quoted.
        (
            format!("[{}]", consent("QUANTRELL, ZEBEDIAH 304-555-0199", "")),
            "field `id`: is not an id",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        // A good consent first in the same file: with --atomic it must not be imported either.
        let body = body.replacen('[', &format!("[{},", consent(&format!("GOOD-{i}"), "")), 1);
        let f = dir.join(format!("c{i}.json"));
        std::fs::write(&f, body).unwrap();
        let out = bin()
            .args([
                "consent",
                "import",
                "--atomic",
                "--today",
                "2026-11-27",
                "--config",
            ])
            .arg(&cfg)
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{want}: {err}");
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(err.contains("nothing imported"));
        assert!(
            !err.contains("QUANTRELL") && !err.contains("555-0199"),
            "{err}"
        );
    }
    let list = success(&cli(&["consent", "list"], &cfg));
    assert_eq!(list, "", "nothing was imported: {list}");

    // One engagement row, imported: its exit code and stderr.
    let engagement = |name: &str, consent: &str| {
        let f = dir.join(name);
        std::fs::write(&f, format!("id,incident_id,prss_id,consent_id,service,provider,engaged_on\nE1,{},PRSS-01,{consent},mat,prestera,2026-03-01\n", if name == "e1.csv" { "QUANTRELL 219-09-9999" } else { "NO-SUCH-INCIDENT" })).unwrap();
        let out = bin()
            .args(["engagement", "import", "--config"])
            .arg(&cfg)
            .arg(&f)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // An engagement whose consent_id holds a name and a phone number: refused, never quoted.
    let (code, err) = engagement("e0.csv", "QUANTRELL 304-555-0199");
    assert_eq!(code, Some(1));
    assert!(err.contains("field `consent_id`: is not an id"), "{err}");
    assert!(
        !err.contains("QUANTRELL") && !err.contains("555-0199"),
        "{err}"
    );

    // One whose incident_id holds a name and an SSN: refused, never quoted nor kept.
    let (code, err) = engagement("e1.csv", "C-9");
    assert_eq!(code, Some(1));
    assert!(err.contains("field `incident_id`: is not an id"), "{err}");
    assert!(
        !err.contains("QUANTRELL") && !err.contains("219-09"),
        "{err}"
    );
    let listed = success(&cli(&["engagement", "list"], &cfg));
    assert!(!listed.contains("QUANTRELL"), "{listed}");

    let (code, err) = engagement("e.csv", "C-9");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(
            "e.csv:2: engagement E1: field `consent_id`: consent C-9 is not in the registry"
        ),
        "{err}"
    );

    let out = bin()
        .args(["consent", "revoke", "C-404", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no consent C-404"));
}

#[test]
fn audit_verify_detects_edits_removals_and_reordering() {
    let (_d, cfg) = prepared();
    decisions(&cfg, "2026-11-27"); // preview writes only to its temporary copy
    let out = success(
        &bin()
            .arg("demo")
            .arg("--out")
            .arg(
                cfg.parent()
                    .unwrap()
                    .parent()
                    .unwrap()
                    .parent()
                    .unwrap()
                    .join("demo2"),
            )
            .output()
            .unwrap(),
    );
    assert!(out.contains("who would get what"));
    let cfg = cfg
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("demo2/examples/demo/gateway.toml");
    let db = cfg.parent().unwrap().join("state/gateway.db");
    let verify = || {
        bin()
            .args(["audit", "verify", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let good = success(&verify());
    // 310 incidents x 4 destinations decided, then the deliveries; a group's anonymous
    // withholds are one entry per destination and reason.
    let figure = |after: &str| -> usize {
        good.split(after)
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (entries, decisions) = (figure("intact: "), figure("entries recording "));
    assert!(decisions > 1240, "{good}");
    assert!(entries < decisions, "{good}");
    let sql = |q: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(q)
            .unwrap()
    };
    let copy = db.with_extension("bak");
    std::fs::copy(&db, &copy).unwrap();
    let restore = || std::fs::copy(&copy, &db).unwrap();
    let broken = |what: &str| {
        let o = verify();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        err
    };
    sql("UPDATE audit SET destination = 'elsewhere' WHERE seq = 7");
    assert!(broken("edit").contains("entry 7 was altered"));
    restore();
    // A counted entry's count is covered too.
    sql(
        "UPDATE audit SET count = count + 1 WHERE seq = (SELECT min(seq) FROM audit WHERE count > 1)",
    );
    assert!(broken("count").contains("was altered"));
    restore();
    sql("DELETE FROM audit WHERE seq = 100");
    assert!(broken("delete").contains("entry 100 is missing"));
    restore();
    sql(
        "UPDATE audit SET seq = -1 WHERE seq = 10; UPDATE audit SET seq = 10 WHERE seq = 11; UPDATE audit SET seq = 11 WHERE seq = -1;",
    );
    broken("reorder");
    restore();
    sql("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)");
    assert!(broken("truncate").contains("removed from the end"));
    restore();
    success(&verify());
    // A person's accounting of disclosures.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let token: String = conn
        .query_row("SELECT person_token FROM audit WHERE destination = 'prestera' AND decision = 'deliver'", [], |r| r.get(0))
        .unwrap();
    let acc = success(
        &bin()
            .args(["audit", "disclosures", "--person", &token, "--config"])
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    let dests: Vec<serde_json::Value> = acc
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        dests
            .iter()
            .any(|d| d["destination"] == "prestera" && d["consent_id"] == "C-2026-001"),
        "{acc}"
    );
    assert!(
        dests.iter().all(
            |d| d["decision"] == "deliver" && d["payload_digest"].as_str().unwrap().len() == 64
        )
    );
    // With another key the chain does not verify.
    let o = bin()
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .env(
            "PNP_GATEWAY_AUDIT_KEY",
            "a-different-key-that-is-long-enough-0123456789",
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn no_identifying_value_in_any_log_line() {
    let (_d, cfg) = demo_tree();
    let seeded = [
        "DOE",
        "JANE",
        "Jane",
        "SMITH",
        "BACON",
        "Bacon",
        "123-45-6789",
        "123456789",
        "555-0100",
        "3045550100",
        "EXAMPLE AVE",
        "07/04/1990",
        "1990-07-04",
        "1985-02-11",
        "13/45/1990",
        "unresponsive",
        "CAPITOL",
        "38.3498",
        "Caf",
    ];
    let mut logs = String::new();
    let mut run = |args: &[&str], extra: &[&Path]| {
        let out = bin()
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };
    run(&["keys", "init"], &[]);
    run(&["run", "--once"], &[]);
    let consents = prss_file(&cfg, "consents.json");
    let engagements = prss_file(&cfg, "engagements.csv");
    run(
        &[
            "consent",
            "import",
            "--accept-incomplete",
            "--today",
            "2026-11-27",
        ],
        &[&consents],
    );
    run(&["engagement", "import"], &[&engagements]);
    let export = cfg
        .parent()
        .unwrap()
        .join("exports/generic/cad_export_2026-03.csv");
    let preview = run(&["preview", "--today", "2026-11-27"], &[&export]);
    run(&["quarantine", "list"], &[]);
    // The payloads (stdout of preview) do carry the consented values: that is the product.
    assert!(String::from_utf8_lossy(&preview.stdout).contains("DOE"));
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG") || logs.contains("INFO"),
        "no logs captured: {logs}"
    );
    for v in seeded {
        assert!(!logs.contains(v), "log output contains `{v}`:\n{logs}");
    }
}

#[test]
fn fhir_r4_consents_import() {
    use pnp_gateway::ingest::records;
    // The official R4 example lacks most 42 CFR 2.31 elements: refused, each element named.
    let (_d, cfg) = prepared();
    let example = repo().join("tests/data/fhir/r4core_Consent-consent-example-basic.json");
    let out = bin()
        .args(["consent", "import", "--today", "2026-11-27", "--config"])
        .arg(&cfg)
        .arg(&example)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    for m in [
        "`information`",
        "`recipients`",
        "`purpose`",
        "`right_to_revoke_statement`",
        "`signature`",
    ] {
        assert!(err.contains(m), "{m} not named in {err}");
    }
    let c = &records::read_consents(&example).unwrap().rows[0].1.consent;
    assert_eq!(c.id, "consent-example-basic");
    assert_eq!(c.signed_on, "2016-05-11".parse().ok());
    assert_eq!(c.expires_on, "2016-01-01".parse().ok());
    assert_eq!(c.disclosing.as_deref(), Some("f001"));

    // A complete one, as a Bundle, imports and permits.
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": {
            "resourceType": "Consent", "id": "FHIR-1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
            "patient": {"display": "DOE, JANE Q"},
            "dateTime": "2026-03-01",
            "organization": [{"display": "Kanawha County Police and Peers program"}],
            "extension": [{"url": records::EXT_RIGHT_TO_REVOKE, "valueString": "I may revoke this consent in writing."}],
            "verification": [{"verified": true, "verifiedWith": {"display": "Jane Q Doe"}}],
            "provision": {
                "type": "permit",
                "period": {"start": "2026-03-01", "end": "2027-03-01"},
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": "Organization/prestera"}}],
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
                "class": [{"code": "identity"}, {"code": "referral"}]
            }
        }}]
    });
    let f = cfg.parent().unwrap().join("bundle.json");
    std::fs::write(&f, bundle.to_string()).unwrap();
    success(
        &bin()
            .args(["consent", "import", "--today", "2026-11-27", "--config"])
            .arg(&cfg)
            .arg(&f)
            .output()
            .unwrap(),
    );
    let list = success(&cli(&["consent", "list", "--today", "2026-11-27"], &cfg));
    assert!(
        list.contains(
            "FHIR-1  in force  to prestera  for treatment_referral  [identity, referral]"
        ),
        "{list}"
    );
}

/// Names, dates of birth and numbers typed into the code columns of the demo's export (sex,
/// race, call type, disposition) never reach the de-identified DHHR file, `run`'s output, or
/// the store's list of mapping gaps; a code still does.
#[test]
fn identifiers_in_code_columns_never_reach_a_de_identified_recipient() {
    let (d, cfg) = demo_tree();
    let header = "IncidentNumber,ORI,CallType,CallTypeDesc,Priority,ReceivedTime,DispatchedTime,ArrivedTime,ClearedTime,Address,City,County,State,Zip,Latitude,Longitude,Beat,Disposition,NaloxoneGiven,WeaponInvolved,SubjectName,SubjectDOB,SubjectSex,SubjectRace,SubjectPhone,SubjectSSN,SubjectAddress,CallerName,CallerPhone,Narrative";
    // (sex, race, disposition) per row; the call type is a code and eligible throughout.
    let typed = [
        ("\"ZQXALPHA,QWYLLA\"", "17MAR1981", "QWYLLA.ZQXALPHA"),
        ("03/17", "SSN4329", "ZQXALPHA-QWYLLA"),
        ("031781", "https://x.example", "4187ZQXBRIDGE"),
        ("MAR171981", "DOB031781", "1981-03-17"),
        // Codes, which go.
        ("M", "W", "REF"),
    ];
    let mut csv = format!("{header}\n");
    for (i, (sex, race, disp)) in typed.iter().enumerate() {
        csv += &format!(
            "2026-70000{i},WV0200100,OD,OVERDOSE,1,03/20/2026 0{i}:00:00,,,,,CHARLESTON,KANAWHA,WV,25301,,,B2,{disp},Y,N,\"ZQXALPHA, QWYLLA\",03/17/1981,{sex},{race},,,,,,\n"
        );
    }
    let exports = cfg.parent().unwrap().join("exports/generic");
    for e in std::fs::read_dir(&exports).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(exports.join("typed_2026-03.csv"), csv).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    let out = cli(&["run", "--once"], &cfg);
    let printed = format!("{}{}", success(&out), String::from_utf8_lossy(&out.stderr));
    // This export's lines (the demo's other pipelines deliver California's sample beside it).
    let mut delivered = String::new();
    for e in std::fs::read_dir(cfg.parent().unwrap().join("deliveries/dhhr-program")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| l.contains("\"state\":\"WV\"")) {
            delivered += line;
            delivered.push('\n');
        }
    }
    assert_eq!(delivered.lines().count(), typed.len(), "{delivered}");
    let gaps: Vec<String> = {
        let db =
            rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db")).unwrap();
        let mut st = db.prepare("SELECT code FROM mapping_gaps").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let gaps = gaps.join("\n");
    for seeded in [
        "ZQXALPHA", "QWYLLA", "17MAR", "03/17", "4329", "031781", "https", "4187", "1981-03",
    ] {
        for (what, text) in [
            ("DHHR's file", &delivered),
            ("run's output", &printed),
            ("mapping_gaps", &gaps),
        ] {
            assert!(!text.contains(seeded), "{what} holds `{seeded}`:\n{text}");
        }
    }
    // The codes of the last row still go.
    assert_eq!(
        delivered.matches("\"sex\":\"male\"").count(),
        1,
        "{delivered}"
    );
    assert_eq!(
        delivered.matches("\"race\":\"W\"").count(),
        1,
        "{delivered}"
    );
    drop(d);
}
