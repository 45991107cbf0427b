//! The closed loop's follow-up (docs/closed-loop.md, "Polling a provider's FHIR server" and
//! "Follow-up"), against independent peers written in Python from the specifications:
//! - a provider's FHIR server (tests/peers/fhir_task_server.py) that keeps the Task the gateway
//!   sent and moves it through accepted and completed as the test says: the gateway follows,
//!   and stops asking once the Task is completed;
//! - a referral left `sent` past its destination's `accept_within` raises one alert: one signed
//!   notice to the PRSS organization's webhook (tests/peers/webhook_receiver.py checks the
//!   HMAC), once, a restart included; `referrals list --overdue` and the API list it; a referral
//!   accepted in time is not overdue.

mod common;

use common::peers::python_peer;
use common::service::Service;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// `referrals list --json` with more arguments.
fn list(s: &Service, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["referrals", "list", "--json"];
    all.extend_from_slice(args);
    success(&cli(&all, &s.cfg()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn status_of(s: &Service, id: &str) -> String {
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 200, "{r}");
    r["body"]["referral"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn polls(dir: &Path, id: &str) -> u64 {
    std::fs::read_to_string(dir.join("counts.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|c| c[id].as_u64())
        .unwrap_or(0)
}

fn wait(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo with Prestera taking referrals as FHIR transactions and keeping the Task on its own
/// server (the Python peer, state in `fhir`), polled every 200 ms; the referrals referred and
/// delivered. The peer process stays alive as long as the returned handle.
fn polled_prestera(d: &Path, fhir: &Path) -> (Service, common::peers::Process) {
    std::fs::create_dir_all(fhir).unwrap();
    let s = Service::demo(d);
    let secret = s.base.join("state/dhhr-research.secret");
    let (server, port) = python_peer("fhir_task_server.py", &[fhir, &secret]);
    let s = s.restart(|text| {
        let edited = text.replace(
            "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
            &format!(
                "deliver = {{ kind = \"fhir\", url = \"http://127.0.0.1:{port}\", secret_file = \"state/dhhr-research.secret\" }}\npoll_status = {{ every = \"200ms\", timeout_ms = 2000 }}"
            ),
        );
        assert_ne!(edited, text);
        edited
    });
    s.refer();
    s.wait_for("the referrals to Prestera delivered", |s| {
        outbox_count(&s.cfg(), "prestera", "delivered") > 0
    });
    (s, server)
}

#[test]
fn a_polled_provider_moves_its_task_and_the_gateway_follows_until_completed() {
    let d = tempfile::tempdir().unwrap();
    let fhir = d.path().join("fhir");
    let (s, _server) = polled_prestera(d.path(), &fhir);
    let id = ids(&list(&s, &["--destination", "prestera"]))[0].clone();
    // Asked for while the Task is `requested`: no answer yet, the referral stays `sent`.
    wait("the Task polled", 20, || polls(&fhir, &id) >= 2);
    assert_eq!(status_of(&s, &id), "sent");
    let control = |status: &str, reason: &str| {
        std::fs::write(
            fhir.join("control.json"),
            json!({ &id: {"status": status, "reason": reason} }).to_string(),
        )
        .unwrap()
    };
    control("accepted", "");
    wait("the acceptance followed", 20, || {
        status_of(&s, &id) == "accepted"
    });
    control("completed", "discharged");
    wait("the completion followed", 20, || {
        status_of(&s, &id) == "completed"
    });
    // Completed is final: no more requests for this Task over several intervals, while the
    // other referrals' Tasks are still asked for.
    let at_completion = polls(&fhir, &id);
    let others: Vec<String> = ids(&list(&s, &["--destination", "prestera"]))
        .into_iter()
        .filter(|o| *o != id)
        .collect();
    let before: u64 = others.iter().map(|o| polls(&fhir, o)).sum();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(polls(&fhir, &id), at_completion, "polled after completed");
    if !others.is_empty() {
        let after: u64 = others.iter().map(|o| polls(&fhir, o)).sum();
        assert!(after > before, "the open referrals are still polled");
    }
    // The timeline: reported by the poll, codes only; the audit trail verifies.
    let out = success(&cli(&["referrals", "show", &id], &s.cfg()));
    assert!(
        out.contains("accepted, reported by poll:prestera")
            && out.contains("completed (discharged), reported by poll:prestera"),
        "{out}"
    );
    assert!(!out.contains("free text"), "{out}");
    assert_deidentified(&out, "referrals show");
    success(&cli(&["audit", "verify"], &s.cfg()));
    // Counted as providers' answers: the two Tasks read that moved the referral.
    let m = s.metrics();
    let line =
        "pnp_referral_answers_total{channel=\"fhir_poll\",kind=\"task\",outcome=\"recorded\"} 2\n";
    assert!(m.contains(line), "no `{line}` in:\n{m}");
    // The poller's state is on /readyz.
    let r = s.client(
        "request",
        json!({"path": "/readyz", "token": s.token("admin")}),
    );
    assert_eq!(
        r["body"]["components"]["source:poll:prestera"]["state"]["state"], "polling",
        "{r}"
    );
}

/// The poller's state on `/readyz` (`polling`, `backing_off`) and its error count in the metrics.
fn poller(s: &Service) -> (String, u64) {
    let r = s.client(
        "request",
        json!({"path": "/readyz", "token": s.token("admin")}),
    );
    let state = r["body"]["components"]["source:poll:prestera"]["state"]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let m = s.metrics();
    let prefix = "pnp_source_errors_total{pipeline=\"poll:prestera\",kind=\"fhir_task_poll\"} ";
    let errors = m
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{m}"))
        .parse()
        .unwrap();
    (state, errors)
}

/// A 404 for one referral's Task is that Task's failure: counted, and the pass goes on to the
/// destination's other referrals without backing off. A 503 is the server's: backed off.
#[test]
fn one_tasks_404_does_not_stop_the_others_and_a_503_backs_off() {
    let d = tempfile::tempdir().unwrap();
    let fhir = d.path().join("fhir");
    let (s, _server) = polled_prestera(d.path(), &fhir);
    // The demo refers one person to Prestera; a second person (incident 2026-000114's subject,
    // whom the demo refers to the QRT) consents to Prestera too: a second referral, with a Task
    // of its own.
    let consent = json!([{
        "id": "C-2026-902", "patient_name": "WHITE, RILEY",
        "disclosing": "Kanawha County Police and Peers program",
        "information": ["identity", "contact", "referral"], "recipients": ["prestera"],
        "purpose": "treatment_referral",
        "right_to_revoke_statement": "I may revoke this consent in writing at any time.",
        "expires_on": "2027-11-02", "signature": "Riley White", "signed_on": "2026-11-02"
    }]);
    let r = s.post(
        "prss",
        "/v1/consents",
        "application/json",
        &consent.to_string(),
    );
    assert_eq!(r["status"], 200, "{r}");
    let csv = "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\n\
               E-2026-902,2026-000114,generic-cad-csv,subject,PRSS-01,C-2026-902,sud_treatment,prestera,2026-11-02\n";
    let r = s.post("prss", "/v1/engagements", "text/csv", csv);
    assert_eq!(r["status"], 200, "{r}");
    s.wait_for("two referrals to Prestera delivered", |s| {
        outbox_count(&s.cfg(), "prestera", "delivered") >= 2
    });
    let all = ids(&list(&s, &["--destination", "prestera"]));
    let (gone, other) = (all[0].clone(), all[1].clone());
    wait("both Tasks polled", 20, || {
        polls(&fhir, &gone) >= 2 && polls(&fhir, &other) >= 2
    });
    let control = |v: Value| std::fs::write(fhir.join("control.json"), v.to_string()).unwrap();
    // The 404 first, for a few passes, so that the failing Task is the one asked longest ago:
    // a pass that ended at it would never reach the other again.
    control(json!({ &gone: {"answer": 404} }));
    let at = polls(&fhir, &gone);
    wait("the 404 answered a few times", 20, || {
        polls(&fhir, &gone) >= at + 3
    });
    control(json!({ &gone: {"answer": 404}, &other: {"status": "accepted"} }));
    wait("the other referral's acceptance followed", 20, || {
        status_of(&s, &other) == "accepted"
    });
    // Warned about once, however many passes answer 404 for it; naming the referral, never the
    // server's address.
    let warned: Vec<String> = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("a polled Task cannot be read"))
        .cloned()
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(&gone), "{warned:?}");
    assert!(!warned[0].contains("127.0.0.1"), "{warned:?}");
    let (state, errors) = poller(&s);
    assert_eq!(
        state, "polling",
        "a 404 for one Task is not the server down"
    );
    assert!(errors >= 3, "the 404s are counted: {errors}");
    assert_eq!(status_of(&s, &gone), "sent");
    // Still asked for in each pass (its Task may come back).
    let at = polls(&fhir, &gone);
    wait("the failing Task asked for again", 20, || {
        polls(&fhir, &gone) > at
    });

    // A Task whose status is not a legal next step (accepted, then rejected): not recorded,
    // counted as a rejected answer once however many passes read it.
    control(json!({ &gone: {"answer": 404}, &other: {"status": "rejected"} }));
    let at = polls(&fhir, &other);
    wait("the refused status read a few times", 20, || {
        polls(&fhir, &other) >= at + 3
    });
    assert_eq!(status_of(&s, &other), "accepted");
    let m = s.metrics();
    let line =
        "pnp_referral_answers_total{channel=\"fhir_poll\",kind=\"task\",outcome=\"rejected\"} 1\n";
    assert!(m.contains(line), "no `{line}` in:\n{m}");

    // The server failing (503): backed off, and polling again once it answers.
    control(json!({ &gone: {"answer": 503}, &other: {"status": "accepted"} }));
    wait("the poller backing off", 20, || {
        poller(&s).0 == "backing_off"
    });
    control(json!({ &other: {"status": "accepted"} }));
    wait("the poller recovered", 20, || poller(&s).0 == "polling");
    assert_eq!(status_of(&s, &gone), "sent");

    // Every Task of a pass failing alike (an endpoint that answers 404 to every search) is
    // the server wrong as a whole: backed off and shown failing, until a Task reads again.
    control(json!({ &gone: {"answer": 404}, &other: {"answer": 404} }));
    wait("the poller backing off when every Task fails", 20, || {
        poller(&s).0 == "backing_off"
    });
    control(json!({ &other: {"status": "accepted"} }));
    wait("the poller recovered again", 20, || {
        poller(&s).0 == "polling"
    });
}

#[test]
fn a_referral_left_sent_raises_one_alert_and_one_signed_notice_even_across_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let hook = d.path().join("hook");
    std::fs::create_dir_all(&hook).unwrap();
    let s = Service::demo(d.path());
    let secret = s.base.join("state/dhhr-research.secret");
    let receiver = common::peers::receiver(&hook, &secret);
    let ca = hook.join("ca.pem");
    // Prestera must accept within 1 s, the QRT within 6 s; the PRSS's organization is told.
    let followup = format!(
        "\n[followup]\nwebhook = \"https://localhost:{}/followup\"\nsecret_file = \"state/dhhr-research.secret\"\nca_file = \"{}\"\n",
        receiver.port,
        ca.display()
    );
    let s = s.restart(|text| {
        let edited = text
            .replace(
                "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
                "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }\naccept_within = \"1s\"",
            )
            .replace(
                "deliver = { kind = \"file\", folder = \"deliveries/qrt-kanawha\" }",
                "deliver = { kind = \"file\", folder = \"deliveries/qrt-kanawha\" }\naccept_within = \"6s\"",
            );
        assert_eq!(edited.matches("accept_within").count(), 2);
        edited + &followup
    });
    s.refer();
    s.wait_for("the referrals delivered", |s| {
        outbox_count(&s.cfg(), "prestera", "delivered") > 0
            && outbox_count(&s.cfg(), "qrt-kanawha", "delivered") > 0
    });
    // The QRT accepts its referrals at once: never overdue.
    let qrt = ids(&list(&s, &["--destination", "qrt-kanawha"]));
    for id in &qrt {
        let r = s.post(
            "qrt-kanawha",
            &format!("/v1/referrals/{id}/status"),
            "application/json",
            &json!({"status": "accepted"}).to_string(),
        );
        assert_eq!(r["status"], 200, "{r}");
    }
    let prestera = ids(&list(&s, &["--destination", "prestera"]));
    // One notice per Prestera referral, signed, naming no one.
    s.wait_for("the notices delivered", |s| {
        outbox_count(&s.cfg(), "followup", "delivered") == prestera.len() as i64
    });
    let notices = receiver.requests();
    assert_eq!(notices.len(), prestera.len(), "{notices:?}");
    for n in &notices {
        assert_eq!(n["signature_ok"], true, "{n}");
        assert_eq!(n["path"], "/followup");
        let b = &n["body"];
        assert_eq!(b["event"], "referral.overdue");
        assert_eq!(b["destination"], "prestera");
        assert_eq!(b["status"], "sent");
        assert!(prestera.contains(&b["referral_id"].as_str().unwrap().to_string()));
        for k in ["sent_at", "overdue_since"] {
            assert!(b[k].as_str().is_some_and(|t| t.ends_with('Z')), "{k}: {b}");
        }
        assert_eq!(b.as_object().unwrap().len(), 6, "{b}");
        assert_deidentified(n["raw"].as_str().unwrap(), "the follow-up notice");
    }
    // Listed as overdue, by the command line and the API; the QRT's are not.
    let overdue = list(&s, &["--overdue"]);
    assert_eq!(ids(&overdue).len(), prestera.len(), "{overdue:?}");
    assert!(overdue.iter().all(|r| r["destination"] == "prestera"
        && r["status"] == "sent"
        && r["overdue_since"].is_string()));
    let r = s.client(
        "request",
        json!({"path": "/v1/referrals?overdue=true", "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        r["body"]["referrals"].as_array().unwrap().len(),
        prestera.len()
    );
    // Counted, and on the status page's alerts.
    let metrics = s.metrics();
    let counted = format!(
        "pnp_referrals_overdue_total{{destination=\"prestera\"}} {}",
        prestera.len()
    );
    assert!(metrics.contains(&counted), "{metrics}");
    let page = s.client(
        "request",
        json!({"path": "/status", "token": s.token("admin")}),
    );
    let page = page["body"].as_str().unwrap();
    assert!(
        page.contains(&format!("referral {} to prestera is overdue", prestera[0])),
        "{page}"
    );
    // ... and awaiting acceptance after the destination's accept_within (not the default 72 h).
    let awaiting = page.split("id=\"awaiting\"").nth(1).unwrap();
    let awaiting = awaiting.split("<h2").next().unwrap();
    assert!(awaiting.contains(&prestera[0]), "{awaiting}");
    // Past the QRT's 6 s: accepted in time, nothing was raised for it.
    std::thread::sleep(Duration::from_secs(6));
    assert!(list(&s, &["--overdue", "--destination", "qrt-kanawha"]).is_empty());
    let alerted = |s: &Service| s.count("SELECT count(*) FROM referral_alerts");
    assert_eq!(alerted(&s), prestera.len() as i64);
    // A restart (kill -9) alerts nothing again.
    let s = s.restart(|t| t);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.requests().len(), prestera.len());
    assert_eq!(alerted(&s), prestera.len() as i64);
    // Once accepted, a referral is no longer overdue.
    let first = &prestera[0];
    let r = s.post(
        "prestera",
        &format!("/v1/referrals/{first}/status"),
        "application/json",
        &json!({"status": "accepted"}).to_string(),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert!(!ids(&list(&s, &["--overdue"])).contains(first));
    success(&cli(&["audit", "verify"], &s.cfg()));
    assert_eq!(
        s.count("SELECT count(*) FROM audit WHERE decision = 'referral-overdue'"),
        prestera.len() as i64
    );
}
