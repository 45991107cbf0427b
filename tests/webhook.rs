//! The webhook destination against an independent HTTPS receiver written in Python
//! (tests/peers/webhook_receiver.py), over TLS with a private CA: signatures verified by the
//! receiver, idempotency keys kept across retries, 5xx retried, 4xx dead-lettered.

mod common;

use common::peers::demo_with_https;
use common::*;

#[test]
fn referrals_over_https_with_signatures_retries_and_dead_letters() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(
        d.path(),
        "prestera",
        "webhook",
        "/referrals",
        "retry = { initial_backoff_ms = 0, max_attempts = 5 }",
    );
    import_demo_records(&cfg);

    // The provider is down (503): the referral waits, same idempotency key on every attempt.
    rx.set(503);
    success(&cli(&["run", "--once"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'pending' AND attempts = 2"
        ),
        1
    );
    // It comes back: delivered.
    rx.set(200);
    success(&cli(&["run", "--once"], &cfg));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r["signature_ok"] == true), "{reqs:?}");
    assert!(
        reqs.iter()
            .all(|r| r["idempotency_key"] == reqs[0]["idempotency_key"]),
        "one key across retries"
    );
    assert_eq!(reqs[2]["path"], "/referrals");
    assert_eq!(reqs[2]["content_type"], "application/json");
    assert_eq!(reqs[2]["body"]["person"]["name"]["last"], "DOE");
    assert_eq!(reqs[2]["body"]["consent"]["id"], "C-2026-001");
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'prestera' AND status = 'delivered' AND payload IS NULL"
        ),
        1
    );

    // A refusal (400) is not retried: dead-lettered with the reason, then replayed once fixed.
    // (A new referral: the delivered one's payload is already purged.)
    rx.set(400);
    let e2 = cfg.parent().unwrap().join("e2.csv");
    std::fs::write(&e2, "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\nE-2026-007,2026-000114,generic-cad-csv,subject,PRSS-01,C-2026-005,mental_health,prestera,2026-11-03\n").unwrap();
    let c2 = cfg.parent().unwrap().join("c2.json");
    std::fs::write(&c2, r#"[{"id": "C-2026-007", "patient_name": "WHITE, RILEY", "disclosing": "Kanawha County Police and Peers program", "information": ["identity", "referral"], "recipients": ["prestera"], "purpose": "treatment_referral", "right_to_revoke_statement": "I may revoke this consent in writing at any time.", "expires_on": "2027-11-02", "signature": "Riley White", "signed_on": "2026-11-03"}]"#).unwrap();
    success(
        &bin()
            .args(["consent", "import", "--today", TODAY, "--config"])
            .arg(&cfg)
            .arg(&c2)
            .output()
            .unwrap(),
    );
    let e2_text = std::fs::read_to_string(&e2)
        .unwrap()
        .replace("C-2026-005", "C-2026-007");
    std::fs::write(&e2, e2_text).unwrap();
    success(
        &bin()
            .args(["engagement", "import", "--config"])
            .arg(&cfg)
            .arg(&e2)
            .output()
            .unwrap(),
    );
    success(&cli(&["run", "--once"], &cfg));
    let dead = success(&cli(&["outbox", "dead"], &cfg));
    assert!(dead.contains("HTTP 400: refused by the receiver"), "{dead}");
    let dead_id: i64 = store_count(&cfg, "SELECT id FROM outbox WHERE status = 'dead'");
    rx.set(200);
    success(&cli(&["outbox", "replay", &dead_id.to_string()], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let reqs = rx.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last["status"], 200);
    assert_eq!(last["body"]["person"]["name"]["last"], "WHITE");
    assert_ne!(
        last["idempotency_key"],
        reqs[reqs.len() - 2]["idempotency_key"],
        "a replay is a new delivery"
    );
    success(&cli(&["audit", "verify"], &cfg));
}

#[test]
fn a_webhook_needs_https_and_a_secret() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        "deliver = { kind = \"webhook\", url = \"http://provider.example/intake\" }",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = cli(&["check"], &cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("must be https://"), "{err}");
    assert!(err.contains("`secret_file` or `secret_env`"), "{err}");
}

#[test]
fn batching_sends_several_referrals_per_signed_request_each_with_its_key() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(
        d.path(),
        "dhhr-program",
        "webhook, batch_max = 10",
        "/program",
        "",
    );
    // 30 payloads: three signed requests of 10.
    let reqs = rx.requests();
    let mut sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r["body"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable(); // up to 4 requests in flight: any order
    assert_eq!(sizes, [10, 10, 10]);
    assert!(reqs.iter().all(|r| r["signature_ok"] == true));
    assert!(reqs.iter().all(|r| r["content_type"] == "application/json"));
    assert!(
        reqs.iter()
            .all(|r| r["idempotency_key"].as_str().unwrap().starts_with("batch-"))
    );
    let members: std::collections::BTreeSet<String> = reqs
        .iter()
        .flat_map(|r| r["body"].as_array().unwrap().clone())
        .map(|m| {
            assert_eq!(m["payload"]["profile"], "safe-harbor");
            m["idempotency_key"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        members.len(),
        DEMO_ELIGIBLE,
        "every referral once, with its own key"
    );
    assert_eq!(
        outbox_count(&cfg, "dhhr-program", "delivered"),
        DEMO_ELIGIBLE as i64
    );
}

#[test]
fn rate_per_second_spaces_the_requests() {
    let d = tempfile::tempdir().unwrap();
    let (rx, _cfg) = demo_with_https(
        d.path(),
        "dhhr-program",
        "webhook",
        "/program",
        "rate_per_second = 5",
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), DEMO_ELIGIBLE);
    let at: Vec<f64> = reqs.iter().map(|r| r["at"].as_f64().unwrap()).collect();
    let spread =
        at.iter().cloned().fold(f64::MIN, f64::max) - at.iter().cloned().fold(f64::MAX, f64::min);
    // 30 requests at 5/s: the last 29/5 = 5.8 s after the first. The receiver stamps a request
    // when it gets to it, and on a loaded machine it may get to the first ones late: a second of
    // slack (unpaced, the 30 go out in well under one).
    assert!(spread >= 4.8, "30 requests within {spread:.2} s");
}

#[test]
fn retry_after_is_honoured() {
    let d = tempfile::tempdir().unwrap();
    let (rx, cfg) = demo_with_https(
        d.path(),
        "prestera",
        "webhook",
        "/referrals",
        "retry = { initial_backoff_ms = 0, max_backoff_ms = 0 }",
    );
    import_demo_records(&cfg);
    // 429 with Retry-After: 600: the referral waits ten minutes, not the (zero) backoff.
    rx.set_retry_after(429, 600);
    success(&cli(&["run", "--once"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(rx.requests().len(), 1, "not retried before the time asked");
    let next = store_count(
        &cfg,
        "SELECT CAST(strftime('%s', next_attempt_at) - strftime('%s', 'now') AS INTEGER) FROM outbox WHERE destination = 'prestera'",
    );
    assert!((590..=600).contains(&next), "next attempt in {next} s");
}

/// A request the gateway signed, captured and sent again: as it was, both receivers take it (the
/// capture is valid and fresh); under a new `Idempotency-Key`, the Python peer (which verifies
/// from docs/delivery.md alone) and the reference receiver refuse it with 401.
#[test]
fn a_signed_request_replayed_under_a_new_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (rx, _cfg) = demo_with_https(d.path(), "dhhr-program", "webhook", "/program", "");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), DEMO_ELIGIBLE);
    assert!(
        reqs.iter().all(|r| r["signature_ok"] == true),
        "{}",
        reqs[0]["signature"]
    );
    let captured = &reqs[0];
    let key = captured["idempotency_key"].as_str().unwrap();
    let replay = |ca: &std::path::Path, url: &str, key: &str| {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        reqwest::blocking::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap()
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .header("X-PNP-Timestamp", captured["timestamp"].as_str().unwrap())
            .header("X-PNP-Signature", captured["signature"].as_str().unwrap())
            .body(captured["raw"].as_str().unwrap().to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let python = format!("https://localhost:{}/program", rx.port);
    let ca = d.path().join("ca.pem");
    assert_eq!(replay(&ca, &python, key), 200);
    assert_eq!(replay(&ca, &python, "a-new-key-of-our-own-0001"), 401);
    assert_eq!(rx.requests().last().unwrap()["signature_ok"], false);

    let (ours_ca, cert, tls_key) =
        pnp_gateway::receiver::make_certs(&d.path().join("receiver-tls")).unwrap();
    let ours = pnp_gateway::receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        &cert,
        &tls_key,
        b"a-shared-secret-for-the-receiver-0123456789".to_vec(),
        None,
    )
    .unwrap();
    let url = format!("https://localhost:{}/program", ours.addr.port());
    assert_eq!(replay(&ours_ca, &url, key), 200);
    assert_eq!(replay(&ours_ca, &url, "a-new-key-of-our-own-0001"), 401);
    let c = ours.counts();
    assert_eq!((c.accepted, c.refused), (1, 1));
}

/// A CA of this test's making, written to `dir/NAME-ca.pem`, and a leaf certificate signed by it
/// for `names`, valid from `not_before` to `not_after` (years), written to `dir/NAME-cert.pem`
/// and `dir/NAME-key.pem`.
fn ca_and_leaf(
    dir: &std::path::Path,
    name: &str,
    names: &[&str],
    years: (i32, i32),
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut leaf_params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    leaf_params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    leaf_params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let write = |what: &str, text: String| {
        let p = dir.join(format!("{name}-{what}.pem"));
        std::fs::write(&p, text).unwrap();
        p
    };
    (
        write("ca", ca.pem()),
        write("cert", leaf.pem()),
        write("key", leaf_key.serialize_pem()),
    )
}

/// A webhook send to a receiver serving `cert`, trusting `ca`, at `host`: the error's message.
fn webhook_error(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    host: &str,
) -> String {
    let rx = pnp_gateway::receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        cert,
        key,
        b"a-shared-secret-for-the-receiver-0123456789".to_vec(),
        None,
    )
    .unwrap();
    let hook = pnp_gateway::deliver::webhook::Webhook::new(
        &format!("https://{host}:{}/intake", rx.addr.port()),
        b"a-shared-secret-for-the-receiver-0123456789".to_vec(),
        Some(ca),
        None,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let e = hook
        .send("k-0001", b"{}", "application/json")
        .expect_err("the handshake fails");
    assert!(e.retryable, "{e:?}");
    e.message
}

#[test]
fn tls_failures_say_what_is_wrong_with_the_certificate() {
    let d = tempfile::tempdir().unwrap();
    let until = chrono_year() + 5;
    // Trusted CA, but the receiver's certificate is from another one.
    let (ours, _, _) = ca_and_leaf(d.path(), "ours", &["localhost"], (2020, until));
    let (_, cert, key) = ca_and_leaf(d.path(), "theirs", &["localhost"], (2020, until));
    let m = webhook_error(&ours, &cert, &key, "localhost");
    assert!(m.contains("untrusted certificate"), "{m}");

    // Trusted, but for another name than the one connected to.
    let (ca, cert, key) = ca_and_leaf(d.path(), "named", &["elsewhere.example"], (2020, until));
    let m = webhook_error(&ca, &cert, &key, "localhost");
    assert!(m.contains("name mismatch"), "{m}");

    // Trusted and for this name, but expired.
    let (ca, cert, key) = ca_and_leaf(d.path(), "old", &["localhost"], (2020, 2021));
    let m = webhook_error(&ca, &cert, &key, "localhost");
    assert!(m.contains("expired"), "{m}");

    // The same words over MLLP with TLS (the handshake fails before any MLLP frame).
    let rx = pnp_gateway::receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        &cert_of(d.path(), "theirs"),
        &d.path().join("theirs-key.pem"),
        b"a-shared-secret-for-the-receiver-0123456789".to_vec(),
        None,
    )
    .unwrap();
    let tls =
        pnp_gateway::deliver::mllp_client::MllpTls::new("localhost", Some(&ours), None).unwrap();
    let mut client = pnp_gateway::deliver::mllp_client::MllpClient::new(
        &rx.addr.to_string(),
        Some(tls),
        std::time::Duration::from_secs(5),
    );
    let e = client
        .send("MSH|^~\\&|A||B||20260101||REF^I12^REF_I12|1|P|2.5.1\r", "1")
        .expect_err("the handshake fails");
    assert!(e.message.contains("untrusted certificate"), "{e:?}");
}

fn cert_of(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}-cert.pem"))
}

/// This year, so that the "valid" certificates stay valid whenever the test runs.
fn chrono_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}
