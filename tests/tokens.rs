//! Tokens are scoped to their recipient: one person (and one incident) keeps one token within a
//! destination, across incidents and runs, and gets another, unlinkable one in every other
//! destination unless both share a `link_group`; the date shift follows the same scope; the
//! tokens come from the vault's random ids, not from the person's data; and the accounting of
//! disclosures finds a person by the token a recipient holds.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const HEADER: &str = "IncidentNumber,ORI,CallType,CallTypeDesc,Priority,ReceivedTime,DispatchedTime,ArrivedTime,ClearedTime,Address,City,County,State,Zip,Latitude,Longitude,Beat,Disposition,NaloxoneGiven,WeaponInvolved,SubjectName,SubjectDOB,SubjectSex,SubjectRace,SubjectPhone,SubjectSSN,SubjectAddress,CallerName,CallerPhone,Narrative";

/// One overdose call of our own making; `subject` is "LAST, FIRST" and `dob` MM/DD/YYYY.
fn row(id: &str, received: &str, subject: &str, dob: &str) -> String {
    format!(
        "{id},WV0000000,OD,OVERDOSE,1,{received},,,,1 TESTING WAY,TESTTOWN,TESTCOUNTY,WV,25999,,,Z9,REF,Y,N,\"{subject}\",{dob},F,W,,,,,,"
    )
}

/// Two calls for the same person a month apart, and one for another person.
fn march() -> String {
    [
        HEADER.to_string(),
        row(
            "T-1",
            "03/01/2026 01:00:00",
            "TOKENTEST, ALPHA",
            "05/06/1977",
        ),
        row(
            "T-2",
            "03/09/2026 02:00:00",
            "OTHERTEST, BETA",
            "08/09/1988",
        ),
        row(
            "T-3",
            "03/30/2026 03:00:00",
            "TOKENTEST, ALPHA",
            "05/06/1977",
        ),
        row(
            "T-4",
            "03/17/2026 04:00:00",
            "THIRDTEST, GAMMA",
            "10/11/1966",
        ),
    ]
    .join("\n")
        + "\n"
}

/// A gateway in `dir` reading `exports/`, with `destinations` (TOML) appended.
fn tree(dir: &Path, destinations: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("exports")).unwrap();
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"adapters_dir = "{}"

[store]
path = "state/gateway.db"

[program]
include = ["overdose", "substance_use", "behavioral_health", "welfare_check", "domestic_nonviolent"]
exclude = ["violent"]
exclude_flags = ["weapon", "violence"]

[[pipeline]]
adapter = "generic-cad-csv"
folder = "exports"

[keys]
vault_key_file = "state/keys/vault.key"
audit_key_file = "state/keys/audit.key"
outbox_key_file = "state/keys/outbox.key"
{destinations}"#,
            repo().join("adapters").display()
        ),
    )
    .unwrap();
    cfg
}

/// A Safe Harbor and a limited-data-set destination, each a file drop.
const TWO: &str = r#"
[[destination]]
id = "sh"
profile = "safe-harbor"
purpose = "program_evaluation"
deliver = { kind = "file", folder = "out/sh" }

[[destination]]
id = "lds"
profile = "limited-data-set"
purpose = "program_evaluation"
dua = "DUA-TEST-1"
deliver = { kind = "file", folder = "out/lds" }
"#;

/// The vault key every tree here shares, so that differences come from the vault's random ids.
const VAULT_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn cmd(args: &[&str], cfg: &Path) -> std::process::Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("PNP_GATEWAY_TODAY", TODAY)
        .env("PNP_GATEWAY_VAULT_KEY", VAULT_KEY)
        .output()
        .unwrap()
}

/// `preview` of `file`: the delivering decisions' payloads by (incident as read, destination).
fn preview(cfg: &Path, file: &Path) -> Vec<(String, String, Value)> {
    success(&cmd(&["keys", "init"], cfg));
    let out = success(&cmd(&["preview", file.to_str().unwrap()], cfg));
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| d["decision"] == "deliver")
        .map(|d| {
            (
                d["incident"].as_str().unwrap().to_string(),
                d["destination"].as_str().unwrap().to_string(),
                d["payload"].clone(),
            )
        })
        .collect()
}

fn payload<'a>(ds: &'a [(String, String, Value)], incident: &str, dest: &str) -> &'a Value {
    &ds.iter()
        .find(|(i, d, _)| i == incident && d == dest)
        .unwrap_or_else(|| panic!("no delivery of {incident} to {dest}"))
        .2
}

fn person_token(p: &Value) -> String {
    p["persons"][0]["token"].as_str().unwrap().to_string()
}

fn incident_token(p: &Value) -> String {
    p["incident"]["incident_id"].as_str().unwrap().to_string()
}

fn write_march(cfg: &Path) -> PathBuf {
    let f = cfg.parent().unwrap().join("exports/cad_export_2026-03.csv");
    std::fs::write(&f, march()).unwrap();
    f
}

#[test]
fn a_person_keeps_one_token_per_destination_and_another_in_each_other_destination() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tree(d.path(), TWO);
    let f = write_march(&cfg);
    let ds = preview(&cfg, &f);
    for dest in ["sh", "lds"] {
        // The same person across incidents: one token within the destination (longitudinal).
        let (a, b) = (payload(&ds, "T-1", dest), payload(&ds, "T-3", dest));
        assert_eq!(person_token(a), person_token(b), "{dest}");
        assert!(person_token(a).starts_with("P-"), "{a}");
        // Another person, another token; another incident, another incident token.
        assert_ne!(person_token(a), person_token(payload(&ds, "T-2", dest)));
        assert_ne!(incident_token(a), incident_token(b));
    }
    for id in ["T-1", "T-2", "T-3", "T-4"] {
        let (sh, lds) = (payload(&ds, id, "sh"), payload(&ds, id, "lds"));
        assert_ne!(person_token(sh), person_token(lds), "{id}: {sh} {lds}");
        assert_ne!(incident_token(sh), incident_token(lds), "{id}: {sh} {lds}");
        let text = sh.to_string();
        assert!(!text.contains(&person_token(lds)) && !text.contains(&incident_token(lds)));
    }

    // A fresh vault (same key, same person, same data) gives other tokens everywhere: they come
    // from the vault's random ids, not from the person's name, birth date or incident number.
    let d2 = tempfile::tempdir().unwrap();
    let cfg2 = tree(d2.path(), TWO);
    let ds2 = preview(&cfg2, &write_march(&cfg2));
    for dest in ["sh", "lds"] {
        let (a, b) = (payload(&ds, "T-1", dest), payload(&ds2, "T-1", dest));
        assert_ne!(person_token(a), person_token(b), "{dest}");
        assert_ne!(incident_token(a), incident_token(b), "{dest}");
    }
}

#[test]
fn destinations_in_one_link_group_share_tokens_and_date_shifts_others_do_not() {
    let d = tempfile::tempdir().unwrap();
    // Three limited data sets that shift dates: two for one recipient under one agreement.
    let lds = |id: &str, group: &str| {
        format!(
            "\n[[destination]]\nid = \"{id}\"\nprofile = \"limited-data-set\"\npurpose = \"program_evaluation\"\ndua = \"DUA-TEST-1\"\n{group}fields = {{ \"times.received\" = \"date-shift\", dob = \"date-shift\" }}\n"
        )
    };
    let cfg = tree(
        d.path(),
        &[
            lds("eval-a", "link_group = \"dhhr-eval\"\n"),
            lds("eval-b", "link_group = \"dhhr-eval\"\n"),
            lds("other", ""),
        ]
        .concat(),
    );
    let f = write_march(&cfg);
    let ds = preview(&cfg, &f);
    let received = |p: &Value| {
        p["incident"]["times"]["received"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let dob = |p: &Value| p["persons"][0]["dob"].as_str().unwrap().to_string();
    let mut shifted_alike = 0;
    for id in ["T-1", "T-2", "T-3", "T-4"] {
        let (a, b, o) = (
            payload(&ds, id, "eval-a"),
            payload(&ds, id, "eval-b"),
            payload(&ds, id, "other"),
        );
        // One group: the same tokens and the same shifts.
        assert_eq!(person_token(a), person_token(b), "{id}");
        assert_eq!(incident_token(a), incident_token(b), "{id}");
        assert_eq!(received(a), received(b), "{id}");
        assert_eq!(dob(a), dob(b), "{id}");
        // Outside it: other tokens, and (but for a chance equal shift) other shifted dates.
        assert_ne!(person_token(a), person_token(o), "{id}");
        assert_ne!(incident_token(a), incident_token(o), "{id}");
        if received(a) == received(o) && dob(a) == dob(o) {
            shifted_alike += 1;
        }
    }
    assert!(
        shifted_alike < 2,
        "the shifted dates link the two scopes: {shifted_alike} of 4 alike"
    );
}

#[test]
fn the_accounting_finds_a_person_by_the_token_any_recipient_holds() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tree(d.path(), TWO);
    success(&cmd(&["keys", "init"], &cfg));
    // March, then April in a later run: the same person keeps their token at each recipient.
    write_march(&cfg);
    success(&cmd(&["run", "--once"], &cfg));
    std::fs::write(
        cfg.parent().unwrap().join("exports/cad_export_2026-04.csv"),
        format!(
            "{HEADER}\n{}\n",
            row(
                "T-9",
                "04/02/2026 05:00:00",
                "TOKENTEST, ALPHA",
                "05/06/1977"
            )
        ),
    )
    .unwrap();
    success(&cmd(&["run", "--once"], &cfg));
    let delivered = |dest: &str| -> Vec<Value> {
        let dir = cfg.parent().unwrap().join("out").join(dest);
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                let line: Value = serde_json::from_str(l).unwrap();
                out.push(line["payload"].clone());
            }
        }
        out
    };
    let (sh, lds) = (delivered("sh"), delivered("lds"));
    assert_eq!((sh.len(), lds.len()), (5, 5));
    // ALPHA is the person of T-1 and T-3 in March and T-9 in April; the limited data set keeps
    // the exact birth date, Safe Harbor its year.
    let alpha_lds: Vec<&Value> = lds
        .iter()
        .filter(|p| p["persons"][0]["dob"] == "1977-05-06")
        .collect();
    assert_eq!(alpha_lds.len(), 3);
    let lds_token = person_token(alpha_lds[0]);
    assert!(alpha_lds.iter().all(|p| person_token(p) == lds_token));
    let alpha_sh: Vec<&Value> = sh
        .iter()
        .filter(|p| p["persons"][0]["dob"] == 1977)
        .collect();
    assert_eq!(alpha_sh.len(), 3);
    let sh_token = person_token(alpha_sh[0]);
    assert!(alpha_sh.iter().all(|p| person_token(p) == sh_token));
    assert_ne!(sh_token, lds_token);

    // Each recipient's token gives the person's whole accounting: the six disclosures.
    let accounting = |token: &str| -> Vec<Value> {
        success(&cmd(&["audit", "disclosures", "--person", token], &cfg))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let by_sh = accounting(&sh_token);
    assert_eq!(by_sh.len(), 6, "{by_sh:?}");
    assert_eq!(by_sh.iter().filter(|r| r["destination"] == "sh").count(), 3);
    assert_eq!(accounting(&lds_token), by_sh);
    // ... and so does the vault's own id, which the audit trail records and no recipient gets.
    let master = by_sh[0]["person_token"].as_str().unwrap().to_string();
    assert_ne!(master, sh_token);
    assert_ne!(master, lds_token);
    assert_eq!(accounting(&master), by_sh);
    for p in sh.iter().chain(&lds) {
        assert!(
            !p.to_string().contains(&master),
            "the vault id was sent: {p}"
        );
    }
    // Another person's token gives only theirs; an unknown token nothing.
    let beta = person_token(sh.iter().find(|p| p["persons"][0]["dob"] == 1988).unwrap());
    assert_eq!(accounting(&beta).len(), 2);
    assert!(accounting("P-00000000000000000000000000000000").is_empty());
}

#[test]
fn check_validates_link_groups_with_file_and_line_and_warns_when_one_relinks_profiles() {
    let d = tempfile::tempdir().unwrap();
    let bad = tree(
        d.path(),
        r#"
[[destination]]
id = "sh"
profile = "safe-harbor"
purpose = "program_evaluation"
link_group = " "

[[destination]]
id = "clinic"
profile = "consented-referral"
link_group = "dhhr"
"#,
    );
    let text = std::fs::read_to_string(&bad).unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    let out = cmd(&["check"], &bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let sh_line = line_of("id = \"sh\"") - 1;
    let clinic_line = line_of("id = \"clinic\"") - 1;
    assert!(
        err.contains(&format!(
            "gateway.toml:{sh_line}: field `destination `sh``: `link_group` must be a non-empty word"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "gateway.toml:{clinic_line}: field `destination `clinic``: `link_group` applies to de-identified profiles"
        )),
        "{err}"
    );

    let d = tempfile::tempdir().unwrap();
    let relinked = tree(
        d.path(),
        &TWO.replace(
            "purpose = \"program_evaluation\"\n",
            "purpose = \"program_evaluation\"\nlink_group = \"dhhr\"\n",
        ),
    );
    let out = cmd(&["check"], &relinked);
    let stdout = success(&out);
    assert!(stdout.starts_with("ok"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&relinked).unwrap();
    let lds_line = text
        .lines()
        .position(|l| l.contains("id = \"lds\""))
        .unwrap();
    assert!(
        err.contains(&format!("warning: {}:{lds_line}", relinked.display()))
            && err.contains(
                "`lds` (limited-data-set) shares link_group `dhhr` with `sh` (safe-harbor)"
            ),
        "{err}"
    );
}

#[test]
fn a_payload_is_not_replayed_to_a_destination_of_another_token_scope() {
    let d = tempfile::tempdir().unwrap();
    let keep = "deliver = { kind = \"file\", folder = \"out/sh\" }\nretention_hours = 24\n";
    let cfg = tree(
        d.path(),
        &format!(
            "{}\n[[destination]]\nid = \"sh-copy\"\nprofile = \"safe-harbor\"\npurpose = \"program_evaluation\"\ndeliver = {{ kind = \"file\", folder = \"out/sh-copy\" }}\n",
            TWO.replace("deliver = { kind = \"file\", folder = \"out/sh\" }\n", keep)
        ),
    );
    success(&cmd(&["keys", "init"], &cfg));
    write_march(&cfg);
    success(&cmd(&["run", "--once"], &cfg));
    let row: i64 = rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .unwrap()
        .query_row(
            "SELECT min(id) FROM outbox WHERE destination = 'sh' AND payload IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let replay = |to: &str| cmd(&["outbox", "replay", &row.to_string(), "--to", to], &cfg);
    // Another Safe Harbor destination of its own scope would receive `sh`'s tokens.
    let out = replay("sh-copy");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its tokens are those `sh` holds"), "{err}");
    let out = replay("lds");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("safe-harbor profile"));
    assert_eq!(outbox_pending(&cfg), 0);
    // Once both are in one link group, the replay goes.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "id = \"sh-copy\"\n",
        "id = \"sh-copy\"\nlink_group = \"dhhr\"\n",
    );
    let text = text.replacen("id = \"sh\"\n", "id = \"sh\"\nlink_group = \"dhhr\"\n", 1);
    std::fs::write(&cfg, text).unwrap();
    success(&replay("sh-copy"));
    assert_eq!(outbox_pending(&cfg), 1);
}

fn outbox_pending(cfg: &Path) -> i64 {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM outbox WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}
