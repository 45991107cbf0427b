//! The imports as the library does them for the HTTPS API (`POST /v1/consents`,
//! `/v1/consents/{id}/revocation`, `/v1/engagements`): the same records taken and refused, for
//! the same reasons, as `consent import` and `engagement import` on the command line; a FHIR R4
//! Consent stored exactly as the same consent in our JSON; a revocation withdraws what waits.

mod common;

use common::*;
use pnp_gateway::config::Gateway;
use pnp_gateway::imports::{self, ConsentOptions, Content, ImportError, ImportReport, Input};
use pnp_gateway::store::Store;
use std::path::{Path, PathBuf};

/// Values of our own making that must appear in no report: a name, a signature, dates of birth.
const SEEDED: &[&str] = &["quillfeather", "zebediah", "1971-02-03", "1971-02-31"];

fn demo_tree() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    (d, cfg)
}

/// The store as the commands open it: incidents and consents sealed with the outbox key.
fn open(gw: &Gateway) -> Store {
    let mut s = Store::open(&gw.store_path).unwrap();
    if let Some(k) = gw.keys().unwrap().outbox {
        s.seal_incidents_with(pnp_gateway::store::outbox::SealKey::from_secret(&k));
    }
    s
}

fn today() -> chrono::NaiveDate {
    TODAY.parse().unwrap()
}

fn opts() -> ConsentOptions {
    ConsentOptions {
        accept_incomplete: false,
        atomic: false,
        today: today(),
    }
}

use common::consents::{OURS, fhir};

fn assert_clean(report: &ImportReport, added: usize, present: usize) {
    assert_eq!(
        (
            report.added,
            report.present,
            report.rejected,
            report.aborted
        ),
        (added, present, 0, false),
        "{report:?}"
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_fhir_consent_posted_is_stored_exactly_as_the_same_consent_imported_from_the_cli() {
    // The command line imports our JSON into one tree ...
    let (_a, cfg_a) = demo_tree();
    let file = cfg_a.parent().unwrap().join("api-1.json");
    std::fs::write(&file, OURS).unwrap();
    let out = success(&cli(
        &[
            "consent",
            "import",
            "--today",
            TODAY,
            file.to_str().unwrap(),
        ],
        &cfg_a,
    ));
    assert!(
        out.contains("imported 1 consent(s), 0 already present, 0 rejected"),
        "{out}"
    );

    // ... the API's path posts the FHIR Consent into another.
    let (_b, cfg_b) = demo_tree();
    let gw_b = Gateway::load(&cfg_b).unwrap();
    let body = fhir();
    let input = Input {
        name: "request body",
        text: &body,
        content: Content::Fhir,
    };
    let mut store_b = open(&gw_b);
    let report = imports::import_consents(&gw_b, &mut store_b, None, &input, opts()).unwrap();
    assert_clean(&report, 1, 0);

    // The same record in both registries, and it is the consent of our JSON.
    let gw_a = Gateway::load(&cfg_a).unwrap();
    let mut store_a = open(&gw_a);
    let a = store_a
        .consent("API-1")
        .unwrap()
        .expect("in the CLI's registry");
    let b = store_b
        .consent("API-1")
        .unwrap()
        .expect("in the API's registry");
    assert_eq!(a, b);
    let ours: Vec<pnp_gateway::model::Consent> = serde_json::from_str(OURS).unwrap();
    assert_eq!(b.consent, ours[0]);
    assert_eq!(b.revoked_on, None);
    // Byte for byte: the registry compares stored bodies, and finds the FHIR consent already
    // there in the CLI's registry (present, not a conflict); posting it again is idempotent.
    let again = imports::import_consents(&gw_a, &mut store_a, None, &input, opts()).unwrap();
    assert_clean(&again, 0, 1);
    let again = imports::import_consents(&gw_b, &mut store_b, None, &input, opts()).unwrap();
    assert_clean(&again, 0, 1);
    drop((store_a, store_b));
    assert_eq!(
        success(&cli(&["consent", "list"], &cfg_a)),
        success(&cli(&["consent", "list"], &cfg_b))
    );
}

/// `error: FILE:LINE: WHAT ID: field `F`: REASON` for each problem, as the command prints them.
fn printed(file: &str, what: &str, report: &ImportReport) -> Vec<String> {
    report
        .problems
        .iter()
        .map(|p| {
            let mut s = format!("error: {file}:{}: ", p.at());
            if let Some(id) = &p.record {
                s += &format!("{what} {id}: ");
            }
            if let Some(f) = &p.field {
                s += &format!("field `{f}`: ");
            }
            s + &p.reason
        })
        .collect()
}

fn errors(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_owned)
        .collect()
}

const HEADER: &str = "id,patient_name,patient_dob,disclosing,information,recipients,purpose,right_to_revoke_statement,expires_on,signature,signed_on,tpo,revoked_on";

fn row(id: &str, edit: (&str, &str)) -> String {
    let good = format!(
        "{id},\"QUILLFEATHER, ZEBEDIAH\",1971-02-03,program,identity;referral,prestera,treatment_referral,I may revoke.,2027-12-31,Zebediah Quillfeather,2026-03-01,no,"
    );
    good.replacen(edit.0, edit.1, 1)
}

#[test]
fn the_library_takes_and_refuses_what_the_cli_does_for_the_same_reasons() {
    let consents = [
        HEADER.to_string(),
        row("G-1", ("", "")),
        row("B-1", ("1971-02-03", "1971-02-31")), // no such date
        row("B-2", (",prestera,", ",zebediah,")), // no such recipient
        row("B-3", ("2026-03-01", "2099-01-01")), // signed in the future
        row("B-4", ("no,", "no,2026-01-01")),     // revoked before signed
        row("B-5", ("I may revoke.", "")),        // lacks an element
        row("B-6", ("", "")),
        row("B-6", ("", "")),             // twice
        row("B-7", ("no,", "zebediah,")), // not yes/no
        "B-8,1971-02-03".to_string(),     // too few fields
    ]
    .join("\n");
    let engagements = [
        "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on",
        "E-1,2026-000101,generic-cad-csv,subject,PRSS-01,G-1,mat,prestera,2026-03-01", // pending
        "E-2,2026-000101,generic-cad-csv,subject,PRSS-01,G-1,mat,nowhere,2026-03-01",
        "E-3,2026-000101,generic-cad-csv,subject,PRSS-99,G-1,mat,prestera,2026-03-01",
        "E-4,2026-000101,generic-cad-csv,subject,PRSS-01,C-404,mat,prestera,2026-03-01",
        "E-5,2026-000101,generic-cad-csv,subject,PRSS-01,G-1,mat,prestera,2026-03-01",
        "E-5,2026-000101,generic-cad-csv,subject,PRSS-01,G-1,mat,prestera,2026-03-01",
    ]
    .join("\n");
    // One tree per way in; the files named alike in both, so that the messages are too.
    let (_a, cfg_a) = demo_tree();
    let (_b, cfg_b) = demo_tree();
    let shared = tempfile::tempdir().unwrap();
    let (cf, ef) = (
        shared.path().join("consents.csv"),
        shared.path().join("engagements.csv"),
    );
    std::fs::write(&cf, &consents).unwrap();
    std::fs::write(&ef, &engagements).unwrap();
    let gw = Gateway::load(&cfg_b).unwrap();
    let mut store = open(&gw);

    let o = cli(
        &["consent", "import", "--today", TODAY, cf.to_str().unwrap()],
        &cfg_a,
    );
    assert_eq!(o.status.code(), Some(1));
    let name = cf.display().to_string();
    let input = Input {
        name: &name,
        text: &consents,
        content: Content::Guess,
    };
    let report = imports::import_consents(&gw, &mut store, None, &input, opts()).unwrap();
    // The config's path is named where a recipient or provider is unknown: the trees' differ.
    let same = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.replace(&cfg_b.display().to_string(), &cfg_a.display().to_string()))
            .collect()
    };
    assert_eq!(errors(&o), same(printed(&name, "consent", &report)));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "imported {} consent(s), {} already present, {} rejected",
            report.added, report.present, report.rejected
        )),
        "{report:?}"
    );
    assert_eq!((report.added, report.rejected), (1, 9), "{report:?}");
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    for k in [
        "invalid",
        "unknown_recipient",
        "future_signature",
        "revoked_before_signed",
        "missing_elements",
        "duplicate_id",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }

    let o = cli(&["engagement", "import", ef.to_str().unwrap()], &cfg_a);
    assert_eq!(o.status.code(), Some(1));
    let name = ef.display().to_string();
    let input = Input {
        name: &name,
        text: &engagements,
        content: Content::Csv,
    };
    let report = imports::import_engagements(&gw, &mut store, &input, false).unwrap();
    assert_eq!(errors(&o), same(printed(&name, "engagement", &report)));
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            "unknown_provider",
            "not_on_roster",
            "duplicate_id",
            "duplicate_id",
            "unknown_consent"
        ]
    );
    assert_eq!(report.pending.len(), 1);
    assert_eq!(
        (report.pending[0].line, report.pending[0].record.as_str()),
        (2, "E-1")
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!(
        "{name}:2: engagement E-1: pending: incident not read yet"
    )));

    // The answer the API gives: JSON naming record, line, field and kind, no value.
    let json = serde_json::to_string(&report).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["problems"][0]["record"], "E-2");
    assert_eq!(v["problems"][0]["line"], 3);
    assert_eq!(v["problems"][0]["field"], "provider");
    assert_eq!(v["problems"][0]["kind"], "unknown_provider");
    let all = json.to_lowercase();
    for s in SEEDED {
        assert!(!all.contains(s), "`{s}` in {json}");
    }
}

#[test]
fn atomic_and_unreadable_bodies_store_nothing() {
    let (_b, cfg) = demo_tree();
    let gw = Gateway::load(&cfg).unwrap();
    let mut store = open(&gw);
    let body = [
        HEADER.to_string(),
        row("G-1", ("", "")),
        row("B-1", ("2026-03-01", "2099-01-01")),
    ]
    .join("\n");
    let atomic = ConsentOptions {
        atomic: true,
        ..opts()
    };
    let input = Input {
        name: "request body",
        text: &body,
        content: Content::Csv,
    };
    let r = imports::import_consents(&gw, &mut store, None, &input, atomic).unwrap();
    assert!(r.aborted, "{r:?}");
    assert_eq!((r.added, r.rejected, r.problems.len()), (0, 1, 1));
    assert!(store.consent("G-1").unwrap().is_none());

    let unreadable = |text: &str, content: Content| {
        let input = Input {
            name: "request body",
            text,
            content,
        };
        match imports::import_consents(&gw, &mut open(&gw), None, &input, opts()) {
            Err(e @ ImportError::Unreadable(_)) => {
                assert_eq!(e.kind(), "unreadable");
                e.to_string()
            }
            other => panic!("{other:?}"),
        }
    };
    let e = unreadable(
        "[{\"id\": \"X\", \"patient_name\": \"QUILLFEATHER\"",
        Content::Json,
    );
    assert!(e.starts_with("request body:1: JSON syntax error"), "{e}");
    assert!(!e.to_lowercase().contains("quillfeather"), "{e}");
    // Announced as FHIR, our JSON is not taken for it.
    unreadable(OURS, Content::Fhir);
    let input = Input {
        name: "request body",
        text: "[]",
        content: Content::Fhir,
    };
    assert!(matches!(
        imports::import_engagements(&gw, &mut store, &input, false),
        Err(ImportError::Unreadable(_))
    ));
    assert!(store.consents().unwrap().is_empty());
}

/// The QRT's destination cannot be written (a file stands where its folder goes): its referral
/// waits in the outbox.
fn blocked(cfg: &Path) {
    let d = cfg.parent().unwrap().join("deliveries");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("qrt-kanawha"), b"not a folder").unwrap();
}

#[test]
fn a_revocation_withdraws_what_waits_and_an_unknown_consent_is_named() {
    let (_d, cfg) = demo_tree();
    blocked(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    import_demo_records(&cfg);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(outbox_count(&cfg, "qrt-kanawha", "pending"), 1);

    let gw = Gateway::load(&cfg).unwrap();
    let keys = gw.keys().unwrap();
    let mut store = open(&gw);
    let on = "2026-11-26".parse().unwrap();
    match imports::revoke(&gw, &mut store, Some(&keys), "C-404", on, today()) {
        Err(e @ ImportError::UnknownConsent(_)) => {
            assert_eq!(e.kind(), "unknown_consent");
            assert_eq!(e.to_string(), "no consent C-404 in the registry");
        }
        other => panic!("{other:?}"),
    }
    let done = imports::revoke(&gw, &mut store, Some(&keys), "C-2026-005", on, today()).unwrap();
    assert_eq!((done.withdrawn, done.cancelled), (1, 0));
    assert_eq!(
        store.consent("C-2026-005").unwrap().unwrap().revoked_on,
        Some(on)
    );
    drop(store);
    assert_eq!(outbox_count(&cfg, "qrt-kanawha", "pending"), 0);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'qrt-kanawha' AND status = 'withdrawn' AND payload IS NULL"
        ),
        1
    );
    let audit = success(&cli(&["audit", "verify"], &cfg));
    assert!(audit.starts_with("audit trail intact"), "{audit}");
}
