//! Nothing vanishes without a trace: every file read ends as incidents or as a rejection that
//! says what is wrong and where, whatever its format. (The XML cases are in their own tests.)

mod common;

use common::*;
use pnp_gateway::config::Adapter;

/// An adapter of each non-XML format.
fn adapters(dir: &std::path::Path) -> Vec<(&'static str, Adapter)> {
    let own = |format: &str, name: &str| {
        Adapter::load(&write_adapter(dir, name, format, SMALL_MAPPING)).unwrap()
    };
    vec![
        ("csv", own("kind = \"csv\"", "csv")),
        ("tsv", own("kind = \"tsv\"", "tsv")),
        ("ndjson", own("kind = \"ndjson\"", "ndjson")),
        ("json", own("kind = \"json\"", "json")),
        ("hl7v2", adapter("hl7v2")),
        ("nibrs-flat", adapter("nibrs-flat")),
        ("nena-eido", adapter("nena-eido")),
    ]
}

/// Reads `bytes` with every adapter: each gives exactly one rejection of `kind`, no incident.
fn each_format_rejects(bytes: &[u8], kind: &str, reason_has: &str) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("export.dat");
    std::fs::write(&f, bytes).unwrap();
    for (name, a) in adapters(d.path()) {
        let c = read(&a, &f);
        let got: Vec<_> = c.rejected.iter().map(|(_, r)| r.kind).collect();
        assert_eq!(got, [kind], "{name}: {:?}", c.rejected);
        assert!(
            c.rejected[0].1.reason.contains(reason_has),
            "{name}: {}",
            c.rejected[0].1.reason
        );
        assert!(c.incidents.is_empty(), "{name}");
        assert_eq!(
            c.checkpoints.last().map(|c| c.1),
            Some(true),
            "{name}: done"
        );
    }
}

#[test]
fn a_whitespace_only_file_is_rejected_as_no_data() {
    each_format_rejects(b" \r\n\t\n   \n", "no_data", "no data");
}

#[test]
fn a_nul_only_file_is_rejected_as_no_data() {
    each_format_rejects(&[0u8; 10_000], "no_data", "NUL");
}

#[test]
fn a_bom_only_file_is_rejected_as_no_data() {
    each_format_rejects(b"\xEF\xBB\xBF", "no_data", "byte-order mark");
    each_format_rejects(b"\xEF\xBB\xBF\n", "no_data", "byte-order mark");
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

#[test]
fn utf16_without_a_bom_is_rejected_as_bad_encoding() {
    let text = "id,when,code,name,note\n1,2024-01-01 10:00:00,OD,A B,x\n";
    each_format_rejects(&utf16le(text), "bad_encoding", "UTF-16LE");
    let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    each_format_rejects(&be, "bad_encoding", "UTF-16BE");
}

#[test]
fn utf16_with_a_bom_is_rejected_as_bad_encoding() {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(utf16le("id,when,code,name,note\n"));
    each_format_rejects(&bytes, "bad_encoding", "UTF-16");
}
