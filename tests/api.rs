//! The service's HTTPS API (src/service/) against an independent client (tests/peers/api_client.py:
//! Python's http.client, ssl and socket), on `pnp-gateway demo --serve` and `run`: pushes
//! answered after commit and delivered, credentials and scopes, bounds, kill -9 and SIGTERM, and
//! the PRSS's consents, engagements and revocations.

mod common;

use common::service::{Service, prestera_down};
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_pushed_export_is_answered_after_commit_then_decided_and_delivered() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let r = s.push("agency", "march-2026");
    assert_eq!(r["status"], 202, "{r}");
    let accepted = r["body"]["accepted"].as_i64().unwrap();
    assert!(accepted > 0, "{r}");
    // Committed before the answer: the store holds every accepted record right away.
    assert_eq!(s.pushed_incidents(), accepted);
    // Each rejected record with where and why, and no value of the export in any of it.
    let rejected = r["body"]["rejected"].as_array().unwrap();
    assert!(!rejected.is_empty());
    for x in rejected {
        assert!(
            x["line"].as_u64().unwrap() > 1 && x["kind"].is_string(),
            "{x}"
        );
    }
    assert_deidentified(&r["body"].to_string(), "a push's answer");
    // The same key again: the same answer, nothing read twice.
    let again = s.push("agency", "march-2026");
    assert_eq!(again["status"], 202);
    assert_eq!(again["body"]["accepted"], accepted);
    assert_eq!(again["body"]["rejected"], r["body"]["rejected"]);
    assert_eq!(again["body"]["replayed"], true);
    assert_eq!(s.pushed_incidents(), accepted);
    // Pushed incidents flow like dropped files: decided and delivered (the Sandiego export
    // in its folder and the pushed one make the demo's eligible incidents).
    s.wait_for("every eligible incident delivered to DHHR", |s| {
        outbox_count(&s.cfg(), "dhhr-program", "delivered") == DEMO_ELIGIBLE as i64
    });
    let m = s.client(
        "request",
        json!({"path": "/metrics", "token": s.token("admin")}),
    );
    assert_eq!(m["status"], 200);
    assert!(
        m["body"]
            .as_str()
            .unwrap()
            .contains("pnp_records_read_total")
    );
    let ready = s.client(
        "request",
        json!({"path": "/readyz", "token": s.token("admin")}),
    );
    assert_eq!(ready["status"], 200, "{ready}");
    assert_eq!(ready["body"]["components"]["store"]["ready"], true);
}

#[test]
fn an_idempotency_key_reused_for_another_body_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    assert_eq!(s.push("agency", "k-1")["status"], 202);
    let r = s.push_csv("agency", "k-1", "another body");
    assert_eq!(r["status"], 422, "{r}");
}

/// A body of bad rows gets an answer listing the first 100 and counting all of them, not one
/// as large as the body many times over; `quarantine list` has every one.
#[test]
fn an_answer_lists_a_hundred_rejections_and_counts_them_all() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let header = "IncidentNumber,ORI,CallType,CallTypeDesc,Priority,ReceivedTime,DispatchedTime,ArrivedTime,ClearedTime,Address,City,County,State,Zip,Latitude,Longitude,Beat,Disposition,NaloxoneGiven,WeaponInvolved,SubjectName,SubjectDOB,SubjectSex,SubjectRace,SubjectPhone,SubjectSSN,SubjectAddress,CallerName,CallerPhone,Narrative";
    let rows: String = (0..250)
        .map(|i| {
            format!("BAD-{i},WV0200100,OD,OVERDOSE,1,the day before,,,,,,,,,,,,,,,,,,,,,,,,\n")
        })
        .collect();
    let body = format!("{header}\n{rows}");
    let r = s.push_csv("agency", "k-bad-rows", &body);
    assert_eq!(r["status"], 202, "{r}");
    assert_eq!(r["body"]["accepted"], 0);
    assert_eq!(r["body"]["rejected"].as_array().unwrap().len(), 100);
    assert_eq!(r["body"]["rejected_total"], 250);
    assert_eq!(r["body"]["rejected"][0]["kind"], "bad_date");
}

/// The framework's own refusals (a path that is not UTF-8, a method the route lacks, no such
/// endpoint) come as the API's JSON errors too, quoting nothing of the request.
#[test]
fn every_refusal_is_a_json_error() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    for (method, path, status) in [
        ("GET", "/v1/referrals/QUANTRELL%FF", 400),
        ("DELETE", "/v1/consents", 405),
        ("GET", "/v1/no-such-thing", 404),
    ] {
        let r = s.client(
            "request",
            json!({"method": method, "path": path, "token": s.token("prss")}),
        );
        assert_eq!(r["status"], status, "{method} {path}: {r}");
        assert!(
            r["body"]["error"].as_str().is_some(),
            "{method} {path}: {r}"
        );
        assert!(!r.to_string().contains("QUANTRELL"), "{r}");
    }
}

#[test]
fn no_credentials_a_wrong_token_or_scope_or_a_body_over_the_limit_store_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let path = "/v1/pipelines/generic-cad-csv/exports";
    let body = |token: Option<String>| {
        let mut a = json!({"method": "POST", "path": path, "body_file": s.sample(),
            "headers": {"Idempotency-Key": "k", "Content-Type": "text/csv"}});
        if let Some(t) = token {
            a["token"] = json!(t);
        }
        s.client("request", a)
    };
    assert_eq!(body(None)["status"], 401);
    assert_eq!(body(Some("pnp_not-a-token".into()))["status"], 401);
    assert_eq!(body(Some(s.token("prss")))["status"], 403);
    assert_eq!(body(Some(s.token("prestera")))["status"], 403);
    let no_pipeline = s.client(
        "request",
        json!({"method": "POST", "path": "/v1/pipelines/nope/exports", "token": s.token("agency"), "body": "x"}),
    );
    assert_eq!(no_pipeline["status"], 403, "no scope names it");
    let consent = s.post("agency", "/v1/consents", "application/json", "[]");
    assert_eq!(consent["status"], 403);
    let metrics = s.client(
        "request",
        json!({"path": "/metrics", "token": s.token("agency")}),
    );
    assert_eq!(metrics["status"], 403);
    assert_eq!(
        s.client("request", json!({"path": "/readyz"}))["status"],
        401
    );
    // Over the body limit (16 MiB): 413 on the head alone.
    let big = s.client(
        "head_only",
        json!({"path": path, "token": s.token("agency"), "length": 64 << 20}),
    );
    assert_eq!(big["status"], 413, "{big}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.count("SELECT count(*) FROM pushes"), 0);
    assert_eq!(s.pushed_incidents(), 0);
    assert_eq!(s.count("SELECT count(*) FROM consents"), 0);
}

#[test]
fn hundreds_of_slow_connections_do_not_stop_a_normal_client() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let r = s.client("slow", json!({"count": 300, "token": s.token("admin")}));
    assert!(r["opened"].as_u64().unwrap() >= 250, "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["seconds"].as_f64().unwrap() < 5.0, "{r}");
}

#[test]
fn kill_9_right_after_a_202_loses_nothing_and_a_cut_body_stores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let r = s.push("agency", "before-kill");
    assert_eq!(r["status"], 202);
    let accepted = r["body"]["accepted"].as_i64().unwrap();
    let s = s.restart(|t| t);
    assert_eq!(s.pushed_incidents(), accepted);
    // The same push again after the restart: answered from the ledger.
    let again = s.push("agency", "before-kill");
    assert_eq!(again["body"]["replayed"], true, "{again}");
    // A body cut off mid-request: nothing of it is stored.
    let pushes = s.count("SELECT count(*) FROM pushes");
    s.client(
        "cut",
        json!({"path": "/v1/pipelines/generic-cad-csv/exports", "token": s.token("agency"), "body_file": s.sample()}),
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(s.count("SELECT count(*) FROM pushes"), pushes);
    assert_eq!(s.pushed_incidents(), accepted);
}

#[cfg(unix)]
#[test]
fn sigterm_during_pushes_answers_202_only_for_what_is_stored_and_exits_0_in_time() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Service::demo(d.path());
    let args = json!({
        "url": s.url, "ca": s.base.join("state/tls/ca.pem"),
        "path": "/v1/pipelines/generic-cad-csv/exports", "token": s.token("agency"),
        "body_file": s.sample(), "count": 200, "prefix": "term",
    });
    let python = std::env::var("PNP_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pusher = std::process::Command::new(python)
        .arg(repo().join("tests/peers/api_client.py"))
        .arg("pushes")
        .arg(args.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pusher.stdout.take().unwrap()).lines();
    // A few answered, then SIGTERM while the next ones are under way.
    let mut results: Vec<Value> = Vec::new();
    for _ in 0..3 {
        results.push(serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap());
    }
    let stopped = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let code = loop {
        if let Some(c) = s.child.try_wait().unwrap() {
            break c;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(12),
            "not stopped within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit {code:?}");
    let _ = pusher.kill();
    results.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok()),
    );
    let _ = pusher.wait();
    // Every 202 is in the store, with its answer; the pushes refused or cut off need not be.
    let ok: Vec<&Value> = results.iter().filter(|r| r["status"] == 202).collect();
    assert!(ok.len() >= 3, "{results:?}");
    for r in &ok {
        let key = r["key"].as_str().unwrap();
        let answered = s.count(&format!(
            "SELECT count(*) FROM pushes WHERE key = '{key}' AND answer IS NOT NULL"
        ));
        assert_eq!(answered, 1, "a 202 for {key} that is not stored");
    }
    assert!(
        results.iter().any(|r| r["status"] != 202),
        "SIGTERM came after every push: {results:?}"
    );
}

#[test]
fn the_prss_posts_consents_as_fhir_engagements_and_a_revocation_that_withdraws() {
    let d = tempfile::tempdir().unwrap();
    // Prestera's intake is down, so its referrals wait in the outbox.
    let s = Service::demo(d.path()).restart(prestera_down);

    // The demo's consents in our JSON, then one consent as a FHIR R4 Consent that the CLI,
    // importing the same consent in our JSON, finds already present: the same record.
    let consents = std::fs::read_to_string(prss_file(&s.cfg(), "consents.json")).unwrap();
    let r = s.post(
        "prss",
        "/v1/consents?accept_incomplete=true",
        "application/json",
        &consents,
    );
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["body"]["added"].as_u64().unwrap() > 0, "{r}");
    let fhir = common::consents::fhir();
    let r = s.post("prss", "/v1/consents", "application/fhir+json", &fhir);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"]["added"], 1, "{r}");
    let ours = s.base.join("api-1.json");
    std::fs::write(&ours, common::consents::OURS).unwrap();
    let out = success(&cli(
        &[
            "consent",
            "import",
            "--today",
            TODAY,
            ours.to_str().unwrap(),
        ],
        &s.cfg(),
    ));
    assert!(
        out.contains("imported 0 consent(s), 1 already present, 0 rejected"),
        "{out}"
    );
    // A bad record is named by line, field and kind; the good ones are taken.
    let bad = s.post(
        "prss",
        "/v1/engagements",
        "text/csv",
        "id,incident_id,prss_id,consent_id,provider,service,engaged_on\nE-X,2026-000101,PRSS-99,C-2026-001,prestera,sud_treatment,2026-03-02\n",
    );
    assert_eq!(bad["status"], 200, "{bad}");
    let p = &bad["body"]["problems"][0];
    assert_eq!(
        (p["line"].as_u64(), p["kind"].as_str()),
        (Some(2), Some("not_on_roster")),
        "{bad}"
    );
    assert_eq!(bad["body"]["problems_total"], 1, "{bad}");
    // A file of 150 such rows: the first 100 listed, all 150 counted.
    let rows: String = (0..150)
        .map(|i| {
            format!("E-X{i},2026-000101,PRSS-99,C-2026-001,prestera,sud_treatment,2026-03-02\n")
        })
        .collect();
    let many = s.post(
        "prss",
        "/v1/engagements",
        "text/csv",
        &format!("id,incident_id,prss_id,consent_id,provider,service,engaged_on\n{rows}"),
    );
    assert_eq!(many["status"], 200, "{many}");
    assert_eq!(many["body"]["problems"].as_array().unwrap().len(), 100);
    assert_eq!(many["body"]["problems_total"], 150);

    // The export and the engagements: Jane Doe's referral to Prestera waits (Prestera is down).
    assert_eq!(s.push("agency", "march")["status"], 202);
    let engagements = std::fs::read_to_string(prss_file(&s.cfg(), "engagements.csv")).unwrap();
    let r = s.post("prss", "/v1/engagements", "text/csv", &engagements);
    assert_eq!(r["status"], 200, "{r}");
    s.wait_for("a referral to Prestera waiting", |s| {
        s.count("SELECT count(*) FROM outbox WHERE destination = 'prestera' AND consent_id = 'C-2026-001' AND status = 'pending'") > 0
    });
    let r = s.post(
        "prss",
        "/v1/consents/C-2026-001/revocation",
        "application/json",
        "{}",
    );
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["body"]["withdrawn"].as_u64().unwrap() >= 1, "{r}");
    // Withdrawn before the answer: nothing waits under it any more.
    assert_eq!(
        s.count(
            "SELECT count(*) FROM outbox WHERE consent_id = 'C-2026-001' AND status = 'pending'"
        ),
        0
    );
    let unknown = s.post(
        "prss",
        "/v1/consents/NOPE/revocation",
        "application/json",
        "",
    );
    assert_eq!(unknown["status"], 404);
}

/// A client certificate for `cn` signed by the CA in `ca_dir` (`ca.pem`, `ca-key.pem`), made
/// with the openssl CLI: (cert, key).
fn client_cert(dir: &Path, ca_dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join(format!("{cn}.key")),
        dir.join(format!("{cn}.csr")),
        dir.join(format!("{cn}.pem")),
        dir.join("client.ext"),
    );
    std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let p = |p: &Path| p.to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        &format!("/CN={cn}"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca_dir.join("ca.pem")),
        "-CAkey",
        &p(&ca_dir.join("ca-key.pem")),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (cert, key)
}

#[test]
fn mutual_tls_clients_are_named_by_their_certificate_and_strangers_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let tls = s.base.join("state/tls");
    let (good, good_key) = client_cert(d.path(), &tls, "cad-vendor");
    let (unknown, unknown_key) = client_cert(d.path(), &tls, "somebody-else");
    // A CA of its own: the same name, not signed by the client CA.
    let other_ca = d.path().join("other-ca");
    std::fs::create_dir_all(&other_ca).unwrap();
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=other-ca",
            "-keyout",
        ])
        .arg(other_ca.join("ca-key.pem"))
        .arg("-out")
        .arg(other_ca.join("ca.pem"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let stranger_dir = d.path().join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let (stranger, stranger_key) = client_cert(&stranger_dir, &other_ca, "cad-vendor");
    let s = s.restart(|text| {
        text.replace(
            "tls_key = \"state/tls/key.pem\"\n",
            "tls_key = \"state/tls/key.pem\"\nclient_ca = \"state/tls/ca.pem\"\n",
        ) + "\n[[client]]\nid = \"cad-vendor\"\nscopes = [\"push:generic-cad-csv\"]\ncert_subject = \"cad-vendor\"\n"
    });
    let push = |cert: &Path, key: &Path| {
        s.client(
            "request",
            json!({
                "method": "POST", "path": "/v1/pipelines/generic-cad-csv/exports",
                "cert": cert, "key": key, "body_file": s.sample(),
                "headers": {"Idempotency-Key": "mtls", "Content-Type": "text/csv"},
            }),
        )
    };
    let r = push(&good, &good_key);
    assert_eq!(r["status"], 202, "{r}");
    assert_eq!(
        s.count("SELECT count(*) FROM pushes WHERE client = 'cad-vendor'"),
        1
    );
    assert_eq!(push(&unknown, &unknown_key)["status"], 401);
    let r = push(&stranger, &stranger_key);
    assert!(
        r["status"].is_null(),
        "a certificate of another CA is refused in the handshake: {r}"
    );
    // Token clients need no certificate.
    assert_eq!(s.push("agency", "token-client")["status"], 202);
    assert_eq!(s.count("SELECT count(*) FROM pushes"), 2);
}

#[test]
fn a_client_over_its_rate_is_told_to_wait_and_others_are_not() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    // The demo's clients may make 50 requests a second with a burst of 100.
    let r = s.client(
        "burst",
        json!({"path": "/healthz", "token": s.token("admin"), "count": 600}),
    );
    let limited = r["statuses"]["429"].as_u64().unwrap_or(0);
    assert!(limited > 0, "{r}");
    assert!(r["statuses"]["200"].as_u64().unwrap() >= 100, "{r}");
    let other = s.client(
        "request",
        json!({"path": "/healthz", "token": s.token("prss")}),
    );
    assert_eq!(other["status"], 200);
}
