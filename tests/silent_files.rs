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

const HEADER: &str = "id,when,code,name,note\n";

fn ids(c: &Collect) -> Vec<&str> {
    c.incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect()
}

fn csv(dir: &std::path::Path) -> Adapter {
    Adapter::load(&write_adapter(
        dir,
        "small",
        "kind = \"csv\"",
        SMALL_MAPPING,
    ))
    .unwrap()
}

/// A quote that never closes, in the last column: csv-core takes the rest of the file as that
/// field, and the record had the right number of fields.
#[test]
fn a_quote_open_to_the_end_of_the_file_is_rejected_and_the_rest_read() {
    let d = tempfile::tempdir().unwrap();
    let a = csv(d.path());
    let f = d.path().join("x.csv");
    let mut text = format!("{HEADER}1,2024-01-01 10:00:00,OD,A B,ok\n");
    text.push_str("2,2024-01-01 10:00:00,OD,A B,\"broken\n");
    for i in 3..200 {
        text.push_str(&format!("{i},2024-01-01 10:00:00,MH,C D,fine\n"));
    }
    std::fs::write(&f, text).unwrap();
    let c = read(&a, &f);
    let got: Vec<_> = c.rejected.iter().map(|(p, r)| (p.line, r.kind)).collect();
    assert_eq!(got, [(3, "unterminated_quote")]);
    assert!(
        c.rejected[0].1.reason.contains("end of the file"),
        "{:?}",
        c.rejected
    );
    assert_eq!(c.incidents.len(), 198, "every record after it is read");
    assert_eq!(ids(&c)[..3], ["1", "3", "4"]);
}

/// Quoted fields on every line: a missing closing quote is closed by the next line's opening
/// quote, and csv-core joined two records into one with the right number of fields.
#[test]
fn a_missing_closing_quote_in_a_big_file_loses_no_record_silently() {
    let d = tempfile::tempdir().unwrap();
    let a = csv(d.path());
    let f = d.path().join("x.csv");
    let mut text = String::from(HEADER);
    for i in 1..=20_000 {
        let close = if i == 5 { "" } else { "\"" };
        text.push_str(&format!(
            "{i},2024-01-01 10:00:00,OD,A B,\"note {i} (quoted){close}\n"
        ));
    }
    std::fs::write(&f, text).unwrap();
    let c = read(&a, &f);
    let got: Vec<_> = c.rejected.iter().map(|(p, r)| (p.line, r.kind)).collect();
    assert_eq!(got, [(6, "unterminated_quote")]);
    assert!(
        c.rejected[0].1.reason.contains("line 6"),
        "{:?}",
        c.rejected
    );
    assert_eq!(c.incidents.len(), 19_999, "every other record is read");
    assert_eq!(ids(&c)[3..6], ["4", "6", "7"]);
}

/// A quoted field across lines that closes properly is one record, as before.
#[test]
fn a_quoted_field_across_lines_is_still_one_record() {
    let d = tempfile::tempdir().unwrap();
    let a = csv(d.path());
    let f = d.path().join("x.csv");
    std::fs::write(
        &f,
        format!("{HEADER}1,2024-01-01 10:00:00,OD,A B,\"two\nlines, \"\"quoted\"\"\"\n2,2024-01-01 10:00:00,OD,A B,ok\r\n3,2024-01-01 10:00:00,OD,A B,\"x\ny\"\r\n"),
    )
    .unwrap();
    let c = read(&a, &f);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!(ids(&c), ["1", "2", "3"]);
    assert_eq!(c.incidents[1].0.line, 4);
}

/// A JSON document broken by a missing closing quote: the records before it are read, and
/// the rejection says from which byte and how much of the file could not be read.
#[test]
fn a_broken_json_document_says_from_where_and_how_much_was_not_read() {
    let d = tempfile::tempdir().unwrap();
    let a = Adapter::load(&write_adapter(
        d.path(),
        "doc",
        "kind = \"json\"",
        SMALL_MAPPING,
    ))
    .unwrap();
    let f = d.path().join("x.json");
    let record = |i: u32, close: &str| {
        format!(
            "{{\"id\": \"{i}\", \"when\": \"2024-01-01 10:00:00\", \"code\": \"OD\", \"name\": \"A B\", \"note\": \"n{close}}}"
        )
    };
    let records: Vec<String> = (1..=100)
        .map(|i| record(i, if i == 5 { "" } else { "\"" }))
        .collect();
    let text = format!("[\n{}\n]\n", records.join(",\n"));
    std::fs::write(&f, &text).unwrap();
    let c = read(&a, &f);
    assert_eq!(ids(&c), ["1", "2", "3", "4"]);
    assert_eq!(c.rejected.len(), 1);
    let (pos, r) = &c.rejected[0];
    assert_eq!(r.kind, "invalid_json");
    // It breaks where record 6 begins (the quote that should have closed record 5's note
    // opened a string that the next quote closes).
    let broke = text.find("{\"id\": \"6\"").unwrap() as u64;
    assert!(
        pos.byte >= broke && pos.byte < broke + 20,
        "{pos:?} vs {broke}"
    );
    let rest = text.len() as u64 - pos.byte;
    assert!(
        r.reason.contains(&format!("(byte {})", pos.byte))
            && r.reason
                .contains(&format!("({rest} of {} bytes)", text.len())),
        "{}",
        r.reason
    );
}
