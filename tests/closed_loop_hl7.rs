//! The closed loop in HL7 v2 and signed JSON (src/service/rri.rs, src/service/signed.rs,
//! docs/closed-loop.md): a provider answers the REF^I12 the gateway delivered to an independent
//! MLLP receiver (python-hl7 + hl7apy, tests/peers/mllp_peer.py) with an RRI^I12 built and
//! validated by hl7apy and sent by tests/peers/rri_peer.py over the MLLP listener (TLS, its
//! client certificate naming it) or as an HTTPS body; the ACK is parsed by python-hl7. Other
//! senders change nothing. Signed status reports are signed by the same peer with Python's hmac.
//! The Python peers are set up by scripts/test.sh (PNP_PEERS_PYTHON).

mod common;

use common::peers::{mllp_peer, receiver};
use common::service::Service;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn python() -> String {
    std::env::var("PNP_PEERS_PYTHON")
        .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh")
}

fn peer(cmd: &str, args: Value) -> Value {
    common::peers::run_peer("rri_peer.py", cmd, &args)
}

/// A client certificate for `cn` signed by the demo's CA (`state/tls/ca.pem`, `ca-key.pem`),
/// made with the openssl CLI: (cert, key).
fn client_cert(dir: &Path, tls: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join(format!("{cn}.key")),
        dir.join(format!("{cn}.csr")),
        dir.join(format!("{cn}.pem")),
        dir.join("client.ext"),
    );
    std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    for args in [
        vec![
            "req".to_string(),
            "-new".into(),
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
            "-nodes".into(),
            "-keyout".into(),
            p(&key),
            "-out".into(),
            p(&csr),
            "-subj".into(),
            format!("/CN={cn}"),
        ],
        vec![
            "x509".into(),
            "-req".into(),
            "-in".into(),
            p(&csr),
            "-CA".into(),
            p(&tls.join("ca.pem")),
            "-CAkey".into(),
            p(&tls.join("ca-key.pem")),
            "-CAcreateserial".into(),
            "-days".into(),
            "2".into(),
            "-extfile".into(),
            p(&ext),
            "-out".into(),
            p(&cert),
        ],
    ] {
        let o = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (cert, key)
}

/// Consents and engagements of the demo through the API; waits until a referral to Prestera is
/// delivered; the ids of those delivered (as `GET /v1/referrals` lists them).
fn deliver_prestera_referral(s: &Service) -> Vec<String> {
    s.refer_and_deliver_to_prestera();
    let list = s.client(
        "request",
        json!({"path": "/v1/referrals?destination=prestera", "token": s.token("prss")}),
    );
    let rows = list["body"]["referrals"].as_array().unwrap();
    let sent: Vec<String> = rows
        .iter()
        .filter(|r| r["status"] == "sent")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!sent.is_empty(), "{list}");
    sent
}

fn referral(s: &Service, id: &str) -> Value {
    let r = s.client(
        "request",
        json!({"path": format!("/v1/referrals/{id}"), "token": s.token("prss")}),
    );
    assert_eq!(r["status"], 200, "{r}");
    r["body"].clone()
}

fn status_of(s: &Service, id: &str) -> String {
    referral(s, id)["referral"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_provider_answers_its_ref_i12_with_rri_over_mllp_and_https_and_others_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let intake = mllp_peer(d.path(), &python(), false);
    let s = Service::demo(d.path());
    let tls = s.base.join("state/tls");
    let (prestera, prestera_key) = client_cert(d.path(), &tls, "prestera-intake");
    let (qrt, qrt_key) = client_cert(d.path(), &tls, "qrt-intake");
    let (vendor, vendor_key) = client_cert(d.path(), &tls, "cad-vendor");
    let port = intake.port;
    let s = s.restart(|text| {
        let text = text
            .replace(
                "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
                &format!(
                    "deliver = {{ kind = \"hl7\", address = \"127.0.0.1:{port}\", receiving_application = \"INTAKE\", receiving_facility = \"PRESTERA\" }}"
                ),
            )
            .replace(
                "tls_key = \"state/tls/key.pem\"\n",
                "tls_key = \"state/tls/key.pem\"\nclient_ca = \"state/tls/ca.pem\"\n",
            );
        // The HL7 pipeline's listener: TLS, client certificates, providers' answers taken.
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("source = { kind = \"mllp\"") {
                    l.trim_end_matches('}').to_string()
                        + ", tls_cert = \"state/tls/cert.pem\", tls_key = \"state/tls/key.pem\", client_ca = \"state/tls/ca.pem\", referral_answers = true }"
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("referral_answers = true"));
        text + "\n[[client]]\nid = \"prestera-intake\"\nscopes = [\"provider:prestera\"]\ncert_subject = \"prestera-intake\"\n\
                [[client]]\nid = \"qrt-intake\"\nscopes = [\"provider:qrt-kanawha\"]\ncert_subject = \"qrt-intake\"\n\
                [[client]]\nid = \"cad-vendor\"\nscopes = [\"push:generic-cad-csv\"]\ncert_subject = \"cad-vendor\"\n"
    });
    let ids = deliver_prestera_referral(&s);
    // The REF^I12 as the provider's MLLP receiver got it: its MSH-10 is the referral's control id.
    let sent = intake.messages();
    let ref_i12 = sent
        .iter()
        .find(|m| m["type"] == "REF^I12^REF_I12")
        .expect("a REF^I12 delivered");
    let control = ref_i12["control_id"].as_str().unwrap().to_string();
    // What a provider echoes: RF1-6 (required in an RRI's RF1) and PID-3's first repetition.
    let raw = ref_i12["raw"].as_str().unwrap();
    let field = |seg: &str, n: usize| {
        raw.split(['\r', '\n'])
            .find(|l| l.starts_with(&format!("{seg}|")))
            .and_then(|l| l.split('|').nth(n))
            .unwrap()
            .to_string()
    };
    let rf1_6 = field("RF1", 6).split('^').next().unwrap().to_string();
    let pid3 = field("PID", 3).split('~').next().unwrap().to_string();
    let id = ids
        .iter()
        .find(|i| i.starts_with(&control))
        .unwrap_or_else(|| panic!("MSH-10 {control} names none of {ids:?}"))
        .clone();
    assert_eq!(status_of(&s, &id), "sent");

    let mllp = s.mllp.unwrap();
    let ca = tls.join("ca.pem");
    let over_mllp = |msg: Value, cert: Option<(&Path, &Path)>| {
        let mut a = json!({"via": "mllp", "host": mllp.ip().to_string(), "port": mllp.port(),
                           "ca": ca, "msg": msg});
        if let Some((c, k)) = cert {
            a["cert"] = json!(c);
            a["key"] = json!(k);
        }
        peer("hl7", a)
    };
    let rri = |n: &str, acked: &str, status: &str| {
        json!({"type": "RRI", "control": n, "acked": acked, "status": status,
               "rf1_6": rf1_6, "pid3": pid3})
    };
    let events = |s: &Service| referral(s, &id)["events"].as_array().unwrap().len();

    // Without a client certificate: refused in the TLS handshake; nothing changes.
    let r = over_mllp(rri("RRI-0", &control, "A"), None);
    assert!(r.get("error").is_some(), "{r}");
    // A client that is not a provider: AR, nothing changes.
    let r = over_mllp(rri("RRI-1", &control, "A"), Some((&vendor, &vendor_key)));
    assert_eq!(
        (r["code"].as_str(), r["control"].as_str()),
        (Some("AR"), Some("RRI-1")),
        "{r}"
    );
    assert_eq!(r["err_kind"], "not_a_provider");
    // Another provider: AE naming MSA-2, nothing changes.
    let r = over_mllp(rri("RRI-2", &control, "A"), Some((&qrt, &qrt_key)));
    assert_eq!(r["code"], "AE", "{r}");
    assert_eq!(r["err_kind"], "not_yours");
    assert_eq!(r["err_location"], "MSA^1^2");
    assert_eq!(status_of(&s, &id), "sent");
    // An unknown referral: AE 204 on MSA-2, and the ERR never quotes the value sent.
    let r = over_mllp(
        rri("RRI-3", "ffffeeeeddddccccbbbb", "A"),
        Some((&prestera, &prestera_key)),
    );
    assert_eq!(r["code"], "AE", "{r}");
    assert_eq!(
        (r["err_code"].as_str(), r["err_kind"].as_str()),
        (Some("204"), Some("unknown_referral"))
    );
    assert!(!r["err_text"].as_str().unwrap().contains("ffffeeee"), "{r}");
    // Pending, and the provider system's application accept: AA, nothing recorded.
    let r = over_mllp(
        rri("RRI-4", &control, "P"),
        Some((&prestera, &prestera_key)),
    );
    assert_eq!(r["code"], "AA", "{r}");
    let ack = json!({"type": "ACK", "control": "ACK-1", "acked": control, "ack_code": "AA"});
    let r = over_mllp(ack, Some((&prestera, &prestera_key)));
    assert_eq!(r["code"], "AA", "{r}");
    assert_eq!((status_of(&s, &id).as_str(), events(&s)), ("sent", 0));

    // Accepted: AA answering the RRI's control id, after the commit.
    let r = over_mllp(
        rri("RRI-5", &control, "A"),
        Some((&prestera, &prestera_key)),
    );
    assert_eq!(
        (r["code"].as_str(), r["control"].as_str()),
        (Some("AA"), Some("RRI-5")),
        "{r}"
    );
    let body = referral(&s, &id);
    assert_eq!(body["referral"]["status"], "accepted");
    assert_eq!(body["events"][0]["reported_by"], "prestera-intake");
    // The same again: AA. Rejected after accepted: AE on RF1-1, nothing changes.
    let r = over_mllp(
        rri("RRI-6", &control, "A"),
        Some((&prestera, &prestera_key)),
    );
    assert_eq!(r["code"], "AA", "{r}");
    let r = over_mllp(
        rri("RRI-7", &control, "R"),
        Some((&prestera, &prestera_key)),
    );
    assert_eq!(r["code"], "AE", "{r}");
    assert_eq!(
        (r["err_kind"].as_str(), r["err_location"].as_str()),
        (Some("illegal_transition"), Some("RF1^1^1"))
    );
    assert_eq!(status_of(&s, &id), "accepted");

    // As an HTTPS body, with the provider's token.
    let over_https = |client: &str, msg: Value, ct: &str| {
        peer(
            "hl7",
            json!({"via": "https", "url": s.url, "ca": ca, "token": s.token(client),
                   "path": "/v1/referrals/hl7", "content_type": ct, "msg": msg}),
        )
    };
    let er7 = "x-application/hl7-v2+er7";
    let r = over_https("qrt-kanawha", rri("H-1", &control, "E"), er7);
    assert_eq!(
        (r["http"].as_i64(), r["code"].as_str()),
        (Some(403), Some("AE")),
        "{r}"
    );
    let r = over_https("prss", rri("H-2", &control, "E"), er7);
    assert_eq!(
        (r["http"].as_i64(), r["code"].as_str()),
        (Some(403), Some("AR")),
        "{r}"
    );
    let r = over_https("prestera", rri("H-3", "ffffeeeeddddccccbbbb", "E"), er7);
    assert_eq!(
        (r["http"].as_i64(), r["code"].as_str()),
        (Some(404), Some("AE")),
        "{r}"
    );
    let r = over_https("prestera", rri("H-4", &control, "E"), "application/json");
    assert_eq!(r["http"], 415, "{r}");
    assert_eq!(status_of(&s, &id), "accepted");
    // The provider system's application error: a note, not a step.
    let ack = json!({"type": "ACK", "control": "H-5", "acked": control, "ack_code": "AE"});
    let r = over_https("prestera", ack, er7);
    assert_eq!(
        (r["http"].as_i64(), r["code"].as_str()),
        (Some(200), Some("AA")),
        "{r}"
    );
    assert_eq!(r["content_type"], er7);
    let body = referral(&s, &id);
    assert_eq!(body["referral"]["status"], "accepted");
    let last = body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["status"].as_str(), last["reason"].as_str()),
        (Some("accepted"), Some("hl7-application-error"))
    );
    // Expired: cancelled, with the reason; over text/plain.
    let r = over_https("prestera", rri("H-6", &control, "E"), "text/plain");
    assert_eq!(
        (r["http"].as_i64(), r["code"].as_str()),
        (Some(200), Some("AA")),
        "{r}"
    );
    assert_eq!(r["control"], "H-6");
    let body = referral(&s, &id);
    assert_eq!(body["referral"]["status"], "cancelled");
    let last = body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["reason"].as_str(), last["reported_by"].as_str()),
        (Some("expired"), Some("prestera"))
    );

    // Every answer counted by channel, kind and outcome (the TLS refusal never reached the
    // listener); no value of any message in the metrics.
    let text = s.metrics();
    for (labels, n) in [
        ("channel=\"hl7_mllp\",kind=\"rri\",outcome=\"rejected\"", 4),
        ("channel=\"hl7_mllp\",kind=\"rri\",outcome=\"ignored\"", 1),
        ("channel=\"hl7_mllp\",kind=\"ack\",outcome=\"ignored\"", 1),
        ("channel=\"hl7_mllp\",kind=\"rri\",outcome=\"recorded\"", 2),
        ("channel=\"hl7_http\",kind=\"rri\",outcome=\"rejected\"", 4),
        ("channel=\"hl7_http\",kind=\"ack\",outcome=\"recorded\"", 1),
        ("channel=\"hl7_http\",kind=\"rri\",outcome=\"recorded\"", 1),
    ] {
        let line = format!("pnp_referral_answers_total{{{labels}}} {n}\n");
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
    assert_eq!(
        text.matches("pnp_referral_answers_total{").count(),
        7,
        "{text}"
    );
    for value in [
        control.as_str(),
        &id,
        &rf1_6,
        &pid3,
        "RRI-5",
        "H-6",
        "ffffeeee",
        "PRESTERA",
    ] {
        assert!(!text.contains(value), "a value in the metrics:\n{text}");
    }
    success(&cli(&["audit", "verify"], &s.cfg()));
}

#[test]
fn an_rri_on_a_listener_that_takes_no_answers_is_refused_and_not_ingested() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let before = s.count("SELECT count(*) FROM quarantine");
    let msg = "MSH|^~\\&|INTAKE|PRESTERA|PNP-GATEWAY|WV-PNP|20261202101500||RRI^I12^RRI_I12|R-9|P|2.5.1\rMSA|AA|0123456789abcdef0123\rRF1|A\r";
    let acks = s.mllp_send(json!({"messages": [msg]}));
    assert_eq!(acks[0]["code"], "AR", "{acks:?}");
    assert_eq!(acks[0]["control"], "R-9");
    assert_eq!(s.count("SELECT count(*) FROM quarantine"), before);
    assert_eq!(s.count("SELECT count(*) FROM referral_events"), 0);
    let text = s.metrics();
    let line =
        "pnp_referral_answers_total{channel=\"hl7_mllp\",kind=\"rri\",outcome=\"rejected\"} 1\n";
    assert!(text.contains(line), "{text}");
    assert!(!text.contains("R-9"), "{text}");
}

#[test]
fn a_signed_status_report_is_checked_against_the_destinations_secret() {
    let d = tempfile::tempdir().unwrap();
    let rx_dir = d.path().join("receiver");
    std::fs::create_dir_all(&rx_dir).unwrap();
    let secret_file = rx_dir.join("prestera.secret");
    let secret = "a-shared-secret-for-the-receiver-0123456789";
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let rx = receiver(&rx_dir, &secret_file);
    let s = Service::demo(d.path());
    let s = s.restart(|text| {
        text.replace(
            "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
            &format!(
                "deliver = {{ kind = \"webhook\", url = \"https://localhost:{}/intake\", secret_file = \"{}\", ca_file = \"{}\" }}",
                rx.port,
                secret_file.display(),
                rx_dir.join("ca.pem").display()
            ),
        )
    });
    let id = deliver_prestera_referral(&s)[0].clone();
    let signed = |client: &str, body: Value, tamper: &str, with_secret: &str| {
        peer(
            "signed",
            json!({"url": s.url, "ca": s.base.join("state/tls/ca.pem"), "token": s.token(client),
                   "path": format!("/v1/referrals/{id}/status"), "secret": with_secret,
                   "key": id, "body": body.to_string(), "tamper": tamper}),
        )
    };
    let accepted = json!({"status": "accepted"});
    // A bad signature, a stale one, one under another secret: 401 with the kind; nothing changes.
    let r = signed("prestera", accepted.clone(), "bad", secret);
    assert_eq!(
        (r["status"].as_i64(), r["body"]["kind"].as_str()),
        (Some(401), Some("bad_signature")),
        "{r}"
    );
    let r = signed("prestera", accepted.clone(), "stale", secret);
    assert_eq!(
        (r["status"].as_i64(), r["body"]["kind"].as_str()),
        (Some(401), Some("stale_signature")),
        "{r}"
    );
    let r = signed("prestera", accepted.clone(), "", "not-the-secret");
    assert_eq!(r["status"], 401, "{r}");
    // Another provider's token with a good signature: still 403.
    let r = signed("qrt-kanawha", accepted.clone(), "", secret);
    assert_eq!(r["status"], 403, "{r}");
    assert_eq!(status_of(&s, &id), "sent");
    assert_eq!(referral(&s, &id)["events"].as_array().unwrap().len(), 0);
    // Signed right: taken, once. The very same request again (a replay), and again with the
    // signature's hex in capitals (the same signature spelled otherwise): 409, nothing changes.
    let r = peer(
        "signed",
        json!({"url": s.url, "ca": s.base.join("state/tls/ca.pem"), "token": s.token("prestera"),
               "path": format!("/v1/referrals/{id}/status"), "secret": secret,
               "key": id, "body": accepted.to_string(), "times": 3, "respell": true}),
    );
    let answers = r["answers"].as_array().unwrap();
    assert_eq!(answers[0]["status"], 200, "{r}");
    for a in &answers[1..] {
        assert_eq!(
            (a["status"].as_i64(), a["body"]["kind"].as_str()),
            (Some(409), Some("replayed_signature")),
            "{r}"
        );
    }
    assert_eq!(status_of(&s, &id), "accepted");
    assert_eq!(referral(&s, &id)["events"].as_array().unwrap().len(), 1);
    // Unsigned: the bearer token alone, as before.
    let r = s.post(
        "prestera",
        &format!("/v1/referrals/{id}/status"),
        "application/json",
        &json!({"status": "in-progress"}).to_string(),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(status_of(&s, &id), "in-progress");
    // Counted on the JSON channel: the six refused (the replays among them), the two taken.
    let text = s.metrics();
    for (outcome, n) in [("rejected", 6), ("recorded", 2)] {
        let line = format!(
            "pnp_referral_answers_total{{channel=\"json\",kind=\"status\",outcome=\"{outcome}\"}} {n}\n"
        );
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
}
