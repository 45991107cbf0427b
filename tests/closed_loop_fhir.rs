//! The closed loop's FHIR channel (src/service/fhir_task/): a provider's FHIR client, built
//! with `fhir.resources` (R4) in tests/peers/fhir_task_client.py, PUTs and PATCHes the Task of
//! the referral it received; the referral's lifecycle follows, illegal steps and other providers
//! are refused with an OperationOutcome and change nothing, and the answer Task validates
//! against the official R4 JSON Schema. Also: a status reported after the consent's revocation
//! is recorded and sends nothing again, and README's provider lines work on `demo --serve`.
//! The peers are set up by scripts/test.sh (PNP_PEERS_PYTHON, PNP_FHIR_SCHEMA).

mod common;

use common::peers::validate_fhir;
use common::service::Service;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// The demo's referral to Prestera, delivered: (its id as Prestera's intake got it, the service).
fn delivered_referral(d: &Path) -> (String, Service) {
    let s = Service::demo(d);
    s.refer_and_deliver_to_prestera();
    let v: Value = serde_json::from_str(intake(&s).lines().next().unwrap()).unwrap();
    (v["idempotency_key"].as_str().unwrap().to_string(), s)
}

/// Everything in Prestera's intake folder, in file order.
fn intake(s: &Service) -> String {
    let mut files: Vec<_> = std::fs::read_dir(s.base.join("deliveries/prestera"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// The logical id of the Task a `fhir` destination sends for the referral `key`: the UUID of
/// its entry's `fullUrl`, as the encoder makes it.
fn task_id(key: &str) -> String {
    let b = pnp_gateway::deliver::fhir::bundle(&json!({}), key);
    let url = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Task")
        .unwrap()["fullUrl"]
        .as_str()
        .unwrap()
        .to_string();
    url.strip_prefix("urn:uuid:").unwrap().to_string()
}

/// One call of the provider's FHIR client as `client` (no token when `None`).
fn fhir(s: &Service, cmd: &str, client: Option<&str>, mut args: Value) -> Value {
    args["url"] = json!(s.url);
    args["ca"] = json!(s.base.join("state/tls/ca.pem"));
    if let Some(c) = client {
        args["token"] = json!(s.token(c));
    }
    // The peer fails when it cannot parse the answer as FHIR.
    let v = common::peers::run_peer("fhir_task_client.py", cmd, &args);
    assert!(
        v["content_type"]
            .as_str()
            .is_some_and(|c| c.starts_with("application/fhir+json")),
        "{v}"
    );
    v
}

/// An OperationOutcome with this status and issue code.
fn refused(r: &Value, status: u64, code: &str) {
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["outcome"]["resourceType"], "OperationOutcome", "{r}");
    assert_eq!(r["outcome"]["issue"][0]["code"], code, "{r}");
    assert_eq!(r["outcome"]["issue"][0]["severity"], "error", "{r}");
}

/// The referral's status and its number of reported events, as the PRSS reads them.
fn lifecycle(s: &Service, id: &str) -> (String, usize) {
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 200, "{r}");
    (
        r["body"]["referral"]["status"]
            .as_str()
            .unwrap()
            .to_string(),
        r["body"]["events"].as_array().unwrap().len(),
    )
}

/// The answer Task, valid R4 by fhir.resources and the official JSON Schema.
fn valid_task(dir: &Path, name: &str, task: &Value) {
    let bundle =
        json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": task}]});
    if let Err(said) = validate_fhir(dir, name, &bundle, &["Task"]) {
        panic!("{said}");
    }
}

#[test]
fn a_provider_updates_its_task_and_the_referral_follows() {
    let d = tempfile::tempdir().unwrap();
    let (key, s) = delivered_referral(d.path());
    let task = task_id(&key);
    let mut answers = Vec::new();
    assert_eq!(lifecycle(&s, &key), ("sent".into(), 0));

    // Completed straight from sent: refused, nothing changes.
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": task, "status": "completed"}),
    );
    refused(&r, 409, "business-rule");
    assert_eq!(lifecycle(&s, &key), ("sent".into(), 0));
    // Another provider: 403, nothing changes; no token: 401; all OperationOutcomes.
    let r = fhir(
        &s,
        "put",
        Some("qrt-kanawha"),
        json!({"id": task, "status": "accepted"}),
    );
    refused(&r, 403, "forbidden");
    let r = fhir(&s, "get", Some("qrt-kanawha"), json!({"id": key}));
    refused(&r, 403, "forbidden");
    let r = fhir(&s, "put", None, json!({"id": task, "status": "accepted"}));
    refused(&r, 401, "login");
    assert_eq!(lifecycle(&s, &key), ("sent".into(), 0));
    // Malformed, the wrong media type, an unknown Task, a status outside R4's value set.
    let raw = |ct: &str, body: &str| json!({"method": "PUT", "path": format!("/fhir/Task/{task}"), "content_type": ct, "body": body});
    refused(
        &fhir(
            &s,
            "raw",
            Some("prestera"),
            raw("application/fhir+json", "{\"resourceType\": \"Task\""),
        ),
        400,
        "invalid",
    );
    refused(
        &fhir(&s, "raw", Some("prestera"), raw("text/plain", "accepted")),
        415,
        "not-supported",
    );
    let other = |method: &str, path: &str| json!({"method": method, "path": path, "content_type": "application/fhir+json"});
    let r = fhir(
        &s,
        "raw",
        Some("prestera"),
        other("DELETE", &format!("/fhir/Task/{task}")),
    );
    refused(&r, 405, "not-supported");
    let r = fhir(&s, "raw", Some("prestera"), other("GET", "/fhir/Patient/1"));
    refused(&r, 404, "not-found");
    // Over the listener's body limit (declared, refused before a byte is read).
    let r = fhir(
        &s,
        "declared",
        Some("prestera"),
        json!({"id": task, "length": 1u64 << 30}),
    );
    refused(&r, 413, "too-costly");
    let r = fhir(
        &s,
        "raw",
        Some("prestera"),
        raw(
            "application/fhir+json",
            r#"{"resourceType": "Task", "status": "Jane Doe", "intent": "order"}"#,
        ),
    );
    refused(&r, 400, "invalid");
    answers.push(r);
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": "00000000-0000-5000-8000-000000000000", "status": "accepted"}),
    );
    refused(&r, 404, "not-found");
    // Read by an unknown Task id: 404 too; by the Task's id: the referral's Task.
    let r = fhir(
        &s,
        "get",
        Some("prestera"),
        json!({"id": "00000000-0000-5000-8000-000000000001"}),
    );
    refused(&r, 404, "not-found");
    let r = fhir(&s, "get", Some("prestera"), json!({"id": task}));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["task"]["id"], task.as_str(), "{r}");
    assert_eq!(r["task"]["identifier"][0]["value"], key.as_str(), "{r}");
    assert_eq!(lifecycle(&s, &key), ("sent".into(), 0));

    // Received: the provider has it; no lifecycle step, nothing recorded.
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": task, "status": "received"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["task"]["status"], "requested", "{r}");
    assert_eq!(r["task"]["meta"]["versionId"], "1", "{r}");
    // A Task whose id is neither the URL's nor the gateway's: refused.
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": key, "task_id": "another-task", "status": "accepted"}),
    );
    refused(&r, 400, "invalid");
    assert_eq!(lifecycle(&s, &key), ("sent".into(), 0));

    // Accepted, by the Task's id, with a reason code and free text: the code is kept, the text
    // is neither stored nor echoed.
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": task, "task_id": task, "key": key, "status": "accepted",
               "reason": "intake-scheduled", "reason_text": "Jane Doe called back"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    let t = &r["task"];
    assert_eq!(t["id"], task.as_str());
    assert_eq!(t["status"], "accepted");
    assert_eq!(t["intent"], "order");
    assert_eq!(t["meta"]["versionId"], "2");
    assert_eq!(t["statusReason"]["coding"][0]["code"], "intake-scheduled");
    assert_eq!(t["identifier"][0]["value"], key.as_str());
    assert!(t["lastModified"].is_string());
    valid_task(d.path(), "accepted.json", t);
    answers.push(r.clone());
    assert_eq!(lifecycle(&s, &key), ("accepted".into(), 1));

    // A stale version is refused; then completed by a JSON Patch at the referral's id, with a
    // business status.
    let ops = json!([
        {"op": "test", "path": "/status", "value": "accepted"},
        {"op": "replace", "path": "/status", "value": "completed"},
        {"op": "remove", "path": "/statusReason"},
        {"op": "add", "path": "/businessStatus", "value": {"coding": [{"code": "discharged"}]}}
    ]);
    let r = fhir(
        &s,
        "patch",
        Some("prestera"),
        json!({"id": key, "ops": ops, "if_match": "W/\"1\""}),
    );
    refused(&r, 412, "conflict");
    // A patch outside the subset: refused, nothing changes.
    let r = fhir(
        &s,
        "patch",
        Some("prestera"),
        json!({"id": key, "ops": [{"op": "replace", "path": "/for", "value": {"reference": "Patient/1"}}]}),
    );
    refused(&r, 422, "not-supported");
    assert_eq!(lifecycle(&s, &key), ("accepted".into(), 1));
    let r = fhir(
        &s,
        "patch",
        Some("prestera"),
        json!({"id": key, "ops": ops, "if_match": "W/\"2\""}),
    );
    assert_eq!(r["status"], 200, "{r}");
    let t = &r["task"];
    assert_eq!(t["status"], "completed");
    assert_eq!(t["meta"]["versionId"], "3");
    assert_eq!(t["businessStatus"]["coding"][0]["code"], "discharged");
    assert!(t.get("statusReason").is_none(), "{t}");
    valid_task(d.path(), "completed.json", t);
    answers.push(r);
    assert_eq!(lifecycle(&s, &key), ("completed".into(), 2));
    // Nothing follows completed.
    let r = fhir(
        &s,
        "patch",
        Some("prestera"),
        json!({"id": task, "ops": [{"op": "replace", "path": "/status", "value": "in-progress"}]}),
    );
    refused(&r, 409, "business-rule");
    assert_eq!(lifecycle(&s, &key), ("completed".into(), 2));
    let r = fhir(&s, "get", Some("prestera"), json!({"id": task}));
    assert_eq!(r["task"]["status"], "completed", "{r}");
    // Each PUT and PATCH the handlers answered, counted (reads are not answers; what
    // authentication or the body limit refused never reached them).
    let text = s.metrics();
    for (outcome, n) in [("recorded", 2), ("ignored", 1), ("rejected", 10)] {
        let line = format!(
            "pnp_referral_answers_total{{channel=\"fhir\",kind=\"task\",outcome=\"{outcome}\"}} {n}\n"
        );
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }

    // The command line shows it; the audit trail holds each change and still verifies.
    let out = success(&cli(&["referrals", "show", &key], &s.cfg()));
    assert!(
        out.contains("accepted (intake-scheduled), reported by prestera")
            && out.contains("completed, business status discharged, reported by prestera"),
        "{out}"
    );
    success(&cli(&["audit", "verify"], &s.cfg()));
    assert_eq!(
        s.count("SELECT count(*) FROM audit WHERE decision LIKE 'referral-%'"),
        2
    );
    // What was received is never echoed nor stored.
    for a in &answers {
        assert!(!a.to_string().contains("Jane"), "{a}");
    }
    assert_eq!(
        s.count("SELECT count(*) FROM referral_events WHERE reason LIKE '%Jane%' OR business_status LIKE '%Jane%'"),
        0
    );
}

#[test]
fn after_a_revocation_a_status_is_still_recorded_and_nothing_is_sent_again() {
    let d = tempfile::tempdir().unwrap();
    let (key, s) = delivered_referral(d.path());
    let task = task_id(&key);
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": task, "status": "accepted"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    let consent: String = {
        let c = rusqlite::Connection::open(s.base.join("state/gateway.db")).unwrap();
        c.query_row(
            "SELECT consent_id FROM outbox WHERE idempotency_key = ?1",
            [&key],
            |r| r.get(0),
        )
        .unwrap()
    };
    let before = intake(&s);
    let rows = s.count("SELECT count(*) FROM outbox WHERE destination = 'prestera'");
    let r = s.post(
        "prss",
        &format!("/v1/consents/{consent}/revocation"),
        "application/json",
        "{}",
    );
    assert_eq!(r["status"], 200, "{r}");

    // The provider says it stopped: recorded, with its reason code.
    let r = fhir(
        &s,
        "patch",
        Some("prestera"),
        json!({"id": task, "ops": [
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/statusReason", "value": {"coding": [{"code": "consent-revoked"}]}}
        ]}),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["task"]["status"], "cancelled");
    assert_eq!(lifecycle(&s, &key), ("cancelled".into(), 2));
    // Anything after cancelled: refused, nothing changes.
    let r = fhir(
        &s,
        "put",
        Some("prestera"),
        json!({"id": task, "status": "accepted"}),
    );
    refused(&r, 409, "business-rule");
    assert_eq!(lifecycle(&s, &key), ("cancelled".into(), 2));

    // Several delivery passes later (one a second), Prestera has received nothing more, and
    // nothing new waits for it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(intake(&s), before, "a payload went to Prestera again");
    assert_eq!(
        s.count("SELECT count(*) FROM outbox WHERE destination = 'prestera'"),
        rows
    );
    assert_eq!(outbox_count(&s.cfg(), "prestera", "pending"), 0);
}

/// README's `curl` lines of "The gateway as a service", in order, with continuation lines
/// joined.
fn readme_curl_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## The gateway as a service")
        .nth(1)
        .expect("README's service section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut lines = Vec::new();
    for block in section.split("```sh\n").skip(1) {
        let code = block.split("```").next().unwrap().replace("\\\n", " ");
        lines.extend(
            code.lines()
                .filter(|l| l.starts_with("curl "))
                .map(str::to_string),
        );
    }
    lines
}

/// Runs one of README's lines with curl, `D` being the demo's tree: the HTTP status.
fn run_curl(line: &str, d: &Path, url: &str, id: &str, out: &Path) -> u16 {
    assert!(line.contains("https://localhost:8443/"), "{line}");
    let line = line
        .replace("https://localhost:8443", url)
        .replace("REFERRAL-ID", id);
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{line} -sS -o '{}' -w '%{{http_code}}'",
            out.display()
        ))
        .env("D", d)
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "curl (CI installs it: .ci/run): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Issue 15's "done when": on `demo --serve`, README's lines push the export, post the PRSS's
/// records, and the provider accepts the demo's referral (then reports it in progress in FHIR).
#[test]
fn readme_lines_show_a_provider_accepting_the_demos_referral() {
    let lines = readme_curl_lines();
    let providers: Vec<&String> = lines.iter().filter(|l| l.contains("REFERRAL-ID")).collect();
    assert!(
        providers
            .iter()
            .any(|l| l.contains("/v1/referrals/REFERRAL-ID/status"))
            && providers
                .iter()
                .any(|l| l.contains("/fhir/Task/REFERRAL-ID")),
        "README shows a provider's JSON and FHIR lines: {lines:?}"
    );
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let endpoints: Value = serde_json::from_str(
        &std::fs::read_to_string(s.base.join("state/endpoints.json")).unwrap(),
    )
    .unwrap();
    let url = endpoints["api"].as_str().unwrap();
    let token = std::fs::read_to_string(endpoints["tokens"]["prestera"].as_str().unwrap()).unwrap();
    let out = d.path().join("answer");
    let mut id = None;
    for line in &lines {
        if line.contains("REFERRAL-ID") && id.is_none() {
            // The demo's referral, as its provider lists it.
            let mut found = None;
            s.wait_for("the demo's referral to Prestera delivered", |s| {
                let r = s.client("request", json!({"path": "/v1/referrals", "token": token}));
                found = r["body"]["referrals"]
                    .as_array()
                    .and_then(|rs| rs.iter().find(|r| r["status"] == "sent"))
                    .map(|r| r["id"].as_str().unwrap().to_string());
                found.is_some()
            });
            id = found;
        }
        let status = run_curl(line, &s.base, url, id.as_deref().unwrap_or(""), &out);
        let said = std::fs::read_to_string(&out).unwrap_or_default();
        assert!((200..300).contains(&status), "{status} {said} for {line}");
        if let Some(id) = &id {
            let want = if line.contains("/fhir/Task/") {
                "in-progress"
            } else {
                "accepted"
            };
            assert_eq!(lifecycle(&s, id).0, want, "after {line}");
        }
    }
    assert!(id.is_some(), "README has no provider line");
}
