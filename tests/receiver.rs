//! The reference receiver (`pnp-gateway receive`, src/receiver.rs) against an independent client
//! (tests/peers/signed_post.py, Python's standard library), and the demo's three outlets.

mod common;

use common::*;
use std::process::Command;

fn post(url: &str, ca: &std::path::Path, key: &str, body: &str, extra: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo().join("tests/peers/signed_post.py"))
        .args([url, ca.to_str().unwrap(), SECRET, key, body])
        .args(extra)
        .output()
        .unwrap();
    success(&out).trim().to_string()
}

const SECRET: &str = "a-shared-secret-for-the-receiver-0123456789";

#[test]
fn receiver_checks_signatures_and_drops_repeated_keys() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pnp_gateway::receiver::make_certs(&d.path().join("tls")).unwrap();
    let out = d.path().join("received.ndjson");
    let rx = pnp_gateway::receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        &cert,
        &key,
        SECRET.as_bytes().to_vec(),
        Some(&out),
    )
    .unwrap();
    let url = format!("https://localhost:{}/intake", rx.addr.port());
    assert_eq!(
        post(&url, &ca, "k1", r#"{"v":1}"#, &[]),
        r#"200 {"accepted": 1, "duplicates": 0}"#
    );
    // The same key again: taken once, answered 200 so that the sender stops.
    assert_eq!(
        post(&url, &ca, "k1", r#"{"v":1}"#, &[]),
        r#"200 {"accepted": 0, "duplicates": 1}"#
    );
    assert!(post(&url, &ca, "k2", r#"{"v":2}"#, &["0", "bad"]).starts_with("401 "));
    // Signed for k6, sent under a new key (a replay): refused, so it is not taken twice.
    assert!(post(&url, &ca, "k6", r#"{"v":6}"#, &["0", "key=k7"]).starts_with("401 "));
    // The old scheme, which did not cover the key: refused (no downgrade).
    assert!(post(&url, &ca, "k8", r#"{"v":8}"#, &["0", "v1"]).starts_with("401 "));
    assert!(
        post(&url, &ca, "k3", r#"{"v":3}"#, &["-600"]).starts_with("401 "),
        "stale"
    );
    assert!(post(&url, &ca, "k4", "not json", &[]).starts_with("400 "));
    // A batch: members deduplicated one by one.
    let batch = r#"[{"idempotency_key":"k1","payload":{"v":1}},{"idempotency_key":"k5","payload":{"v":5}}]"#;
    assert_eq!(
        post(&url, &ca, "batch-x", batch, &[]),
        r#"200 {"accepted": 1, "duplicates": 1}"#
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["k1", "k5"]);
    assert_eq!(lines[1]["payload"]["v"], 5);
    let c = rx.counts();
    assert_eq!(
        (c.requests, c.accepted, c.duplicates, c.refused),
        (8, 2, 2, 5)
    );
}

#[test]
fn demo_delivers_to_a_folder_a_file_drop_and_its_https_receiver() {
    let d = tempfile::tempdir().unwrap();
    let out = success(
        &bin()
            .args(["demo", "--out"])
            .arg(d.path().join("demo"))
            .output()
            .unwrap(),
    );
    assert!(
        out.contains(&format!("took {DEMO_ELIGIBLE} payload(s)")),
        "{out}"
    );
    let base = d.path().join("demo/examples/demo/deliveries");
    let received = std::fs::read_to_string(base.join("dhhr-research/received.ndjson")).unwrap();
    assert_eq!(received.lines().count(), DEMO_ELIGIBLE);
    for l in received.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["payload"]["profile"], "limited-data-set");
    }
    let count = |dir: &str| {
        std::fs::read_dir(base.join(dir))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
            .sum::<usize>()
    };
    assert_eq!(count("dhhr-program"), DEMO_ELIGIBLE);
    assert_eq!(count("prestera"), 1);
}
