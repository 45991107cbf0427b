//! The operator's status page (src/service/status.rs) on a running `demo --serve` whose
//! Prestera intake is down: fetched with the admin's token by an independent client, rendered in
//! headless Chromium (a screenshot and the DOM), it shows Prestera failing with what waits, and
//! no identifying value.

mod common;

use common::browser::chromium;
use common::service::{Service, prestera_down};
use common::*;
use serde_json::json;

#[test]
fn the_status_page_shows_a_failing_destination_and_no_identifying_value() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path()).restart(prestera_down);
    assert_eq!(s.push("agency", "march")["status"], 202);
    let consents = std::fs::read_to_string(prss_file(&s.cfg(), "consents.json")).unwrap();
    s.post(
        "prss",
        "/v1/consents?accept_incomplete=true",
        "application/json",
        &consents,
    );
    let engagements = std::fs::read_to_string(prss_file(&s.cfg(), "engagements.csv")).unwrap();
    s.post("prss", "/v1/engagements", "text/csv", &engagements);
    s.wait_for("Prestera failing", |s| {
        let r = s.client(
            "request",
            json!({"path": "/status", "token": s.token("admin")}),
        );
        r["body"].as_str().is_some_and(|b| b.contains("FAILING"))
    });
    // Only the admin sees it.
    let r = s.client(
        "request",
        json!({"path": "/status", "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 403);
    let r = s.client(
        "request",
        json!({"path": "/status", "token": s.token("admin")}),
    );
    assert_eq!(r["status"], 200);
    let html = r["body"].as_str().unwrap().to_string();
    assert_deidentified(&html, "the status page");
    assert!(!html.contains("<script"), "no script");
    let page = d.path().join("status.html");
    std::fs::write(&page, &html).unwrap();
    let shot = d.path().join("status.png");
    chromium(
        &page,
        &d.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display())],
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "a screenshot"
    );
    let dom = chromium(
        &page,
        &d.path().join("profile-dom"),
        &["--dump-dom".to_string()],
    );
    for title in [
        "Pipelines",
        "Live sources",
        "Destinations",
        "Referrals awaiting acceptance",
        "Alerts",
    ] {
        assert!(dom.contains(title), "{title}");
    }
    // Prestera's row: failing, with its referral waiting.
    let row = dom
        .split("<tr>")
        .find(|r| r.contains("<td>prestera</td>"))
        .expect("a row for prestera");
    assert!(row.contains("FAILING"), "{row}");
    assert!(
        row.contains("<td>1</td>") || row.contains("<td>2</td>"),
        "pending referrals: {row}"
    );
    let dhhr = dom
        .split("<tr>")
        .find(|r| r.contains("<td>dhhr-program</td>"))
        .unwrap();
    assert!(dhhr.contains("<td>ok</td>"), "{dhhr}");
    assert!(dom.contains("destination prestera is failing"));
    assert_deidentified(&dom, "the rendered status page");
}
