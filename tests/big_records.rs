//! A giant value in the JSON document and HL7 readers (issue 10): a rejection naming the record,
//! never an abort, and memory bounded by the record limit. (NIBRS XML: tests/bad_xml.rs; CSV and
//! NDJSON lines: tests/bad_input.rs.) Every value here is of our own making.

mod common;

use common::*;
use pnp_gateway::config::Adapter;
use std::io::Write;

/// Writes `head`, `giant` bytes of `fill`, then `tail`.
fn write_giant(path: &std::path::Path, head: &[u8], fill: u8, giant: usize, tail: &[u8]) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(head).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = giant;
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    w.write_all(tail).unwrap();
    w.flush().unwrap();
}

#[test]
fn a_giant_string_in_a_json_document_is_a_rejection() {
    let d = tempfile::tempdir().unwrap();
    let a = Adapter::load(&write_adapter(
        d.path(),
        "j",
        "kind = \"json\"\nmax_record_bytes = 262144",
        SMALL_MAPPING,
    ))
    .unwrap();
    let f = d.path().join("x.json");
    let head = b"[{\"id\":\"1\",\"when\":\"2024-01-01 10:00:00\",\"code\":\"OD\"},\n{\"id\":\"2\",\"when\":\"2024-01-01 10:00:00\",\"code\":\"OD\",\"note\":\"";
    let tail = b"\"},\n{\"id\":\"3\",\"when\":\"2024-01-01 10:00:00\",\"code\":\"OD\"}]\n";
    write_giant(&f, head, b'x', 64 << 20, tail);
    let c = read(&a, &f);
    let ids: Vec<_> = c
        .incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect();
    assert_eq!(ids, ["1"]);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    let (pos, r) = &c.rejected[0];
    assert_eq!((r.kind, pos.record), ("record_too_long", 2), "{}", r.reason);
    assert!(
        r.reason.contains("max_record_bytes (262144 bytes)")
            && r.reason.contains("could not be read"),
        "{}",
        r.reason
    );
}

#[test]
fn an_hl7_message_past_its_size_limit_is_a_rejection_and_the_next_is_read() {
    let a = adapter("hl7v2");
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.hl7");
    let msh = |id: &str| format!("MSH|^~\\&|OURS|OURS|GW|GW|20260101120000||ADT^A01|{id}|P|2.5\r");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    w.write_all(msh("M1").as_bytes()).unwrap();
    // 20 segments just under the segment limit: each allowed, together past the message limit.
    let note = vec![b'x'; 1_000_000];
    for _ in 0..20 {
        w.write_all(b"NTE|1||").unwrap();
        w.write_all(&note).unwrap();
        w.write_all(b"\r").unwrap();
    }
    w.write_all(msh("M2").as_bytes()).unwrap();
    w.write_all(b"PID|1||T-2^^^OURS||ROE^ANN\r").unwrap();
    drop(w);
    let c = read(&a, &f);
    let first = c
        .rejected
        .iter()
        .find(|(p, _)| p.record == 1)
        .expect("message 1 is rejected");
    assert_eq!(first.1.kind, "record_too_long", "{}", first.1.reason);
    assert!(first.1.reason.contains("longer than 16777216 bytes"));
    assert!(
        c.incidents.iter().all(|(p, _)| p.record == 2),
        "message 1 yields no incident"
    );
    assert_eq!(
        c.incidents.len() + c.rejected.len(),
        2,
        "message 2 is read: {:?}",
        c.rejected
    );
}
