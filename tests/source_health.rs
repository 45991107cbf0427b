//! What a live source's operator sees: `/readyz` names each source's state, and `/metrics`
//! counts what it took in and how it runs — against `demo --serve`'s MLLP listener, fed by
//! python-hl7's MLLP client (an independent sender). Neither ever shows a record's value.

mod common;

use common::service::Service;
use common::*;
use serde_json::json;

/// The value of the series `name{labels}`, if shown.
fn series(text: &str, name_labels: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_labels)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn readyz_and_metrics_show_each_source_and_what_it_took_in() {
    let d = tempfile::tempdir().unwrap();
    let s = Service::demo(d.path());
    let sample = |f: &str| {
        repo()
            .join("tests/data/hl7v2")
            .join(f)
            .display()
            .to_string()
    };
    let acks = s.mllp_send(json!({"files": [
        sample("hl7v2ex_ref_i12_v251.hl7"),
        sample("fhirconverter_REF-I12-01.hl7"),
    ]}));
    assert!(acks.iter().all(|a| a["code"] == "AA"), "{acks:?}");
    let broken = "MSH|^~\\&|EMS|WVEMS|PNP|WV|20260301||ADT^A01|B-1|P|2.5.1\rPID|1||77^^^MRN||QUILLFEATHER^ZEBEDIAH||19710231\r";
    let acks = s.mllp_send(json!({"messages": [broken]}));
    assert_eq!(acks[0]["code"], "AE", "{acks:?}");

    let ready = s.client(
        "request",
        json!({"path": "/readyz", "token": s.token("admin")}),
    );
    assert_eq!(ready["status"], 200, "{ready}");
    let src = &ready["body"]["components"]["source:hl7v2"];
    assert_eq!(src["ready"], true, "{ready}");
    assert_eq!(src["state"]["kind"], "mllp", "{ready}");
    assert_eq!(src["state"]["state"], "listening", "{ready}");
    assert_eq!(src["state"]["errors"], 0, "{ready}");

    let text = s.metrics();
    let hl7 = "pipeline=\"hl7v2\"";
    assert_eq!(
        series(&text, &format!("pnp_source_up{{{hl7},kind=\"mllp\"}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!("pnp_source_errors_total{{{hl7},kind=\"mllp\"}}")
        ),
        Some(0)
    );
    assert_eq!(
        series(
            &text,
            &format!("pnp_pushed_records_total{{{hl7},outcome=\"accepted\"}}")
        ),
        Some(2),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!("pnp_pushed_records_total{{{hl7},outcome=\"rejected\"}}")
        ),
        Some(1),
        "{text}"
    );
    assert!(!text.contains("QUILLFEATHER") && !text.contains("19710231"));

    // The demo's consented referral, once its consent and engagement are in, is delivered to its
    // provider: the referrals gauge counts it by destination and status (recounted every 15 s).
    s.refer();
    let start = std::time::Instant::now();
    loop {
        let text = s.metrics();
        let sent: u64 = text
            .lines()
            .filter(|l| {
                l.starts_with("pnp_referrals{destination=\"prestera\"")
                    && l.contains("status=\"sent\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        if sent > 0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(40),
            "no sent referral counted: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
