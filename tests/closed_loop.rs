//! The closed loop over the API (src/service/referrals.rs, src/store/referrals.rs,
//! src/policy/lifecycle.rs): a provider reports what became of the referral it received, by the
//! id it received it under; illegal steps and other providers' referrals are refused and change
//! nothing; the PRSS reads the lifecycle, and `referrals list`/`show` print it.

mod common;

use common::service::Service;
use common::*;
use serde_json::{Value, json};

/// The demo's referral to Prestera, delivered: (its id as Prestera's intake got it, the service).
fn delivered_referral(d: &std::path::Path) -> (String, Service) {
    let s = Service::demo(d);
    s.refer_and_deliver_to_prestera();
    // The id is the one in Prestera's intake folder.
    let folder = s.base.join("deliveries/prestera");
    let line = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .next()
        .expect("a delivered referral");
    let v: Value = serde_json::from_str(&line).unwrap();
    (v["idempotency_key"].as_str().unwrap().to_string(), s)
}

fn report(s: &Service, client: &str, id: &str, body: Value) -> Value {
    s.post(
        client,
        &format!("/v1/referrals/{id}/status"),
        "application/json",
        &body.to_string(),
    )
}

fn status_of(s: &Service, id: &str) -> Value {
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 200, "{r}");
    r["body"]["referral"]["status"].clone()
}

#[test]
fn a_provider_moves_its_referral_through_the_lifecycle_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let (id, s) = delivered_referral(d.path());
    assert_eq!(status_of(&s, &id), "sent");
    // Completed before accepted: refused with the reason; nothing changes.
    let r = report(&s, "prestera", &id, json!({"status": "completed"}));
    assert_eq!(r["status"], 409, "{r}");
    assert_eq!(r["body"]["kind"], "illegal_transition");
    assert_eq!(status_of(&s, &id), "sent");
    // Another provider: 403, nothing changes.
    let r = report(&s, "qrt-kanawha", &id, json!({"status": "accepted"}));
    assert_eq!(r["status"], 403, "{r}");
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("qrt-kanawha")}),
    );
    assert_eq!(r["status"], 403);
    // Free text as a reason could name someone: refused.
    let r = report(
        &s,
        "prestera",
        &id,
        json!({"status": "accepted", "reason": "Jane Doe called"}),
    );
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(status_of(&s, &id), "sent");
    // A body that is no report, or whose fields are of the wrong kind or unknown: refused in
    // words of our own, quoting nothing of it (serde's message would).
    for body in [
        json!("Jane Doe 219-09-9999"),
        json!({"status": 3045550199u64}),
        json!({"status": "accepted", "Jane Doe": 1}),
    ] {
        let r = report(&s, "prestera", &id, body);
        assert_eq!(r["status"], 400, "{r}");
        let text = r["body"].to_string();
        assert!(r["body"]["error"].as_str().is_some(), "{r}");
        for seeded in ["Jane", "219-09-9999", "3045550199"] {
            assert!(!text.contains(seeded), "{text}");
        }
    }
    assert_eq!(status_of(&s, &id), "sent");
    // Accepted, then completed.
    let r = report(
        &s,
        "prestera",
        &id,
        json!({"status": "accepted", "at": "2026-03-02T09:00:00-05:00"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"]["status"], "accepted");
    let r = report(
        &s,
        "prestera",
        &id,
        json!({"status": "completed", "reason": "discharged"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    // Anything after a final status: refused.
    assert_eq!(
        report(&s, "prestera", &id, json!({"status": "failed"}))["status"],
        409
    );
    // The provider sees its own timeline; the PRSS lists them.
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("prestera")}),
    );
    assert_eq!(r["body"]["events"].as_array().unwrap().len(), 2, "{r}");
    let list = s.client(
        "request",
        json!({"path": "/v1/referrals?status=completed", "token": s.token("prss")}),
    );
    let rows = list["body"]["referrals"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["id"] == id.as_str()), "{list}");
    assert!(rows.iter().all(|r| r["status"] == "completed"));
    // The command line, and the audit trail still verifies.
    let out = success(&cli(
        &["referrals", "list", "--json", "--destination", "prestera"],
        &s.cfg(),
    ));
    let mine: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["id"] == id.as_str())
        .collect();
    assert_eq!(mine[0]["status"], "completed");
    for k in ["id", "destination", "status", "updated_at"] {
        assert!(mine[0].get(k).is_some(), "{k}");
    }
    let out = success(&cli(&["referrals", "show", &id], &s.cfg()));
    assert!(
        out.contains("accepted, reported by prestera") && out.contains("completed (discharged)"),
        "{out}"
    );
    assert_deidentified(&out, "referrals show");
    success(&cli(&["audit", "verify"], &s.cfg()));
    let audited = store_count(
        &s.cfg(),
        "SELECT count(*) FROM audit WHERE decision LIKE 'referral-%'",
    );
    assert_eq!(audited, 2);
}
