//! The MLLP listener (src/service/sources/mllp.rs) against an independent sender: python-hl7's
//! MLLP client sends the shared HL7 samples to `demo --serve`'s HL7 pipeline; every ACK comes
//! after the commit and says what became of the message.

mod common;

use common::service::Service;
use common::*;
use serde_json::json;

fn samples() -> Vec<String> {
    [
        "hl7v2ex_ref_i12_v251.hl7",
        "fhirconverter_REF-I12-01.hl7",
        "fhirconverter_ADT01-23.hl7",
    ]
    .iter()
    .map(|f| {
        repo()
            .join("tests/data/hl7v2")
            .join(f)
            .display()
            .to_string()
    })
    .collect()
}

/// Accepted: AA, or CA for the ADT sample, which asks for enhanced mode (its MSH-15 is set).
fn accepted(a: &serde_json::Value) -> bool {
    a["code"] == "AA" || (a["code"] == "CA" && a["control"] == "599102")
}

fn hl7_incidents(s: &Service) -> i64 {
    s.count("SELECT count(*) FROM incidents WHERE adapter = 'hl7v2'")
}

#[test]
fn each_message_is_acked_after_commit_a_broken_one_gets_ae_and_a_resent_one_is_stored_once() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let acks = s.mllp_send(json!({"files": samples()}));
    assert_eq!(acks.len(), 3, "{acks:?}");
    assert!(acks.iter().all(accepted), "{acks:?}");
    assert_eq!(acks[2]["code"], "CA", "enhanced mode: a commit ACK");
    assert_eq!(acks[0]["control"], "MSG016");
    // Committed before the ACK: the store holds them now.
    assert_eq!(hl7_incidents(&s), 3);
    // The same messages again (a lost ACK): ACKed again, stored once.
    let again = s.mllp_send(json!({"files": samples()}));
    assert!(again.iter().all(accepted), "{again:?}");
    assert_eq!(hl7_incidents(&s), 3);
    assert_eq!(
        s.count("SELECT count(*) FROM pushes WHERE client LIKE 'mllp:%'"),
        3
    );
    // A message whose every record is rejected: AE, the field and kind named, no value.
    let broken = "MSH|^~\\&|EMS|WVEMS|PNP|WV|20260301||ADT^A01|B-1|P|2.5.1\rPID|1||77^^^MRN||QUILLFEATHER^ZEBEDIAH||19710231\r";
    let no_id = "MSH|^~\\&|EMS|WVEMS|PNP|WV|20260301||ADT^A01||P|2.5.1\rPID|1\r";
    let acks = s.mllp_send(json!({"messages": [broken, no_id]}));
    assert_eq!(acks[0]["code"], "AE", "{acks:?}");
    let err = acks[0]["err"].as_str().unwrap();
    assert!(
        err.contains("field ") && !err.contains("QUILLFEATHER") && !err.contains("19710231"),
        "{err}"
    );
    assert_eq!(acks[1]["code"], "AR", "no control id: {acks:?}");
    assert!(s.count("SELECT count(*) FROM quarantine WHERE adapter = 'hl7v2'") > 0);
}

#[test]
fn over_tls_too() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path()).restart(|text| {
        let tls = text.replacen(
            "source = { kind = \"mllp\", listen = \"127.0.0.1:0\" }",
            "source = { kind = \"mllp\", listen = \"127.0.0.1:0\", tls_cert = \"state/tls/cert.pem\", tls_key = \"state/tls/key.pem\" }",
            1,
        );
        assert_ne!(tls, text);
        tls
    });
    let ca = s.base.join("state/tls/ca.pem");
    let acks = s.mllp_send(json!({"files": samples(), "ca": ca}));
    assert!(acks.len() == 3 && acks.iter().all(accepted), "{acks:?}");
    assert_eq!(hl7_incidents(&s), 3);
    // Plain MLLP to a TLS listener gets no ACK.
    let plain = s.mllp_send(json!({"files": samples()}));
    assert!(plain[0].get("error").is_some(), "{plain:?}");
}

#[cfg(debug_assertions)]
#[test]
fn kill_between_receipt_and_commit_gets_no_ack_and_the_resent_message_is_stored_once() {
    let d = tempfile::tempdir().unwrap();
    // The gateway aborts once MSG016 is received and spooled, before it is read.
    let s = Service::demo_with(d.path(), &[("PNP_GATEWAY_FAULT_ABORT_ON_PUSH", "MSG016")]);
    let acks = s.mllp_send(json!({"files": samples()}));
    assert!(
        acks[0].get("error").is_some(),
        "no ACK for a message not committed: {acks:?}"
    );
    let base = s.base.clone();
    drop(s);
    let s = Service::run(&base);
    let acks = s.mllp_send(json!({"files": samples()}));
    assert!(acks.len() == 3 && acks.iter().all(accepted), "{acks:?}");
    assert_eq!(hl7_incidents(&s), 3, "nothing lost, nothing doubled");
}

/// A sender whose counter restarted sends another message under a control id it used before:
/// stored too, not ACKed and dropped. The first one sent again with a new MSH-7 time (some
/// senders stamp each try) is a resend: ACKed, stored once. A message in ISO 8859-1 is rejected
/// as not UTF-8 (AE, quarantined), not refused for want of a control id (AR, resent for ever).
#[test]
fn a_reused_control_id_is_another_message_and_a_resend_is_not() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let msg = |time: &str, visit: &str, last: &str| {
        format!(
            "MSH|^~\\&|EDIS|HOSP|PNP|WV|{time}||REF^I12^REF_I12|R-1|P|2.5.1\rRF1|A^Active|R^Routine|MED^Medical||I^Inpatient|{visit}\rPID|1||4242^^^HOSP^MR||{last}^SAM||19900101|M\rDG1|1||F11.20^Opioid dependence^I10|||A\r"
        )
    };
    let before = hl7_incidents(&s);
    let acks = s.mllp_send(json!({"messages": [
        msg("20260301101500", "VISIT-A", "BROOK"),
        msg("20260301111500", "VISIT-B", "FIELD"),
        msg("20260301121500", "VISIT-A", "BROOK"),
        // The same resent with LF for its segment ends and without the last one.
        msg("20260301131500", "VISIT-A", "BROOK").replace('\r', "\n").trim_end().to_string(),
    ]}));
    assert_eq!(acks.len(), 4, "{acks:?}");
    assert!(acks.iter().all(|a| a["code"] == "AA"), "{acks:?}");
    assert_eq!(
        hl7_incidents(&s),
        before + 2,
        "both messages stored, the resend once"
    );
    for visit in ["VISIT-A", "VISIT-B"] {
        assert_eq!(
            s.count(&format!(
                "SELECT count(*) FROM incidents WHERE adapter = 'hl7v2' AND incident_id = '{visit}'"
            )),
            1
        );
    }

    let quarantined = s.count("SELECT count(*) FROM quarantine WHERE adapter = 'hl7v2'");
    let acks = s.mllp_send(json!({
        "messages": [msg("20260301131500", "VISIT-C", "NU\u{f1}EZ").replace("R-1", "L-1")],
        "encoding": "latin-1",
    }));
    assert_eq!(acks[0]["code"], "AE", "{acks:?}");
    assert_eq!(acks[0]["control"], "L-1", "{acks:?}");
    assert_eq!(
        s.count("SELECT count(*) FROM quarantine WHERE adapter = 'hl7v2'"),
        quarantined + 1
    );
}

/// Strangers cannot wear the listener down: a frame trickled in is answered AR once its
/// `frame_timeout_secs` is up, however often a byte comes; unfinished frames over
/// `max_inflight_bytes` (all connections together) get AR `busy` and their connection closed;
/// a sender with a whole message is still served.
#[test]
fn a_trickled_frame_times_out_and_unfinished_frames_have_a_budget() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let base = Service::demo(d.path()).base.clone();
    let cfg = base.join("gateway.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let at = text.find("kind = \"mllp\", listen = \"").unwrap();
    let end = at + text[at..].find(" }").unwrap();
    let text = format!(
        "{}kind = \"mllp\", listen = \"127.0.0.1:0\", frame_timeout_secs = 1, max_frame_bytes = 1000, max_inflight_bytes = 2000{}",
        &text[..at],
        &text[end..]
    );
    std::fs::write(&cfg, text).unwrap();
    let s = Service::run(&base);
    let addr = s.mllp.unwrap();
    let answer = |c: &mut std::net::TcpStream| {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !got.ends_with(b"\x1c\r") {
            match c.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        String::from_utf8_lossy(&got).to_string()
    };

    // A frame trickled a byte every 200 ms: AR within a couple of seconds, then closed.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    c.write_all(b"\x0bMSH|").unwrap();
    let t = Instant::now();
    let mut got = String::new();
    while t.elapsed() < Duration::from_secs(6) && !got.contains("MSA|") {
        let _ = c.write_all(b"x");
        let mut b = [0u8; 4096];
        if let Ok(n) = c.read(&mut b) {
            got += &String::from_utf8_lossy(&b[..n]);
        }
    }
    assert!(
        got.contains("MSA|AR") && got.contains("frame_timeout"),
        "{got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Two connections hold 900 bytes each of frames they never finish; a third's 500 bytes
    // would pass the budget of 2000.
    let hold = |n: usize| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut bytes = b"\x0b".to_vec();
        bytes.resize(n, b'x');
        c.write_all(&bytes).unwrap();
        c
    };
    let _a = hold(900);
    let _b = hold(900);
    std::thread::sleep(Duration::from_millis(300));
    let mut third = hold(500);
    let busy = answer(&mut third);
    assert!(busy.contains("MSA|AR") && busy.contains("busy"), "{busy:?}");
    // A whole small message still goes through.
    let acks = s.mllp_send(json!({"messages": [
        "MSH|^~\\&|EDIS|HOSP|PNP|WV|20260301101500||REF^I12^REF_I12|S-1|P|2.5.1\rRF1|A^Active|R^Routine|MED^Medical||I^Inpatient|SMALL-1\r"
    ]}));
    assert_eq!(acks[0]["code"], "AA", "{acks:?}");
}
