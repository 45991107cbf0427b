//! Bad input: each bad record is rejected with its line and reason, the rest goes on, nothing
//! panics, and memory stays bounded.

mod common;

use common::*;
use pnp_gateway::config::Adapter;
use std::io::Write;

fn small(dir: &std::path::Path, format: &str) -> Adapter {
    Adapter::load(&write_adapter(dir, "small", format, SMALL_MAPPING)).unwrap()
}

fn kinds(c: &Collect) -> Vec<(u64, &str)> {
    c.rejected.iter().map(|(p, r)| (p.line, r.kind)).collect()
}

const HEADER: &str = "id,when,code,name,note\n";

#[test]
fn wrong_column_count_and_bad_date_are_rejected_with_line() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    std::fs::write(
        &f,
        format!("{HEADER}1,2024-01-01 10:00:00,OD,\"DOE, JANE\",ok\n2,2024-01-01 10:00:00,OD\n3,not a date,MH,A B,x\n4,2024-01-02 10:00:00,MH,C D,y\n"),
    )
    .unwrap();
    let c = read(&a, &f);
    assert_eq!(c.incidents.len(), 2);
    assert_eq!(kinds(&c), vec![(3, "wrong_column_count"), (4, "bad_date")]);
    assert_eq!(c.rejected[1].1.field.as_deref(), Some("times.received"));
}

#[test]
fn unterminated_quote_does_not_swallow_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    std::fs::write(
        &f,
        format!("{HEADER}1,2024-01-01 10:00:00,OD,\"DOE, JANE,oops\n2,2024-01-01 10:00:00,OD,A B,x\n3,2024-01-01 11:00:00,MH,C D,y\n"),
    )
    .unwrap();
    let c = read(&a, &f);
    assert_eq!(kinds(&c)[0], (2, "wrong_column_count"));
    assert!(c.rejected[0].1.reason.contains("unterminated quote"));
    let ids: Vec<_> = c
        .incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect();
    assert_eq!(ids, ["2", "3"], "records after the broken quote are read");
    assert_eq!(c.incidents[0].0.line, 3);
}

#[test]
fn invalid_utf8_names_the_field() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"1,2024-01-01 10:00:00,OD,A B,caf\xe9\n2,2024-01-01 10:00:00,OD,A B,ok\n",
    );
    std::fs::write(&f, bytes).unwrap();
    let c = read(&a, &f);
    assert_eq!(kinds(&c), vec![(2, "invalid_utf8")]);
    assert_eq!(c.rejected[0].1.field.as_deref(), Some("note"));
    assert_eq!(c.incidents.len(), 1);
}

#[test]
fn empty_file_is_one_rejection() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    std::fs::write(&f, b"").unwrap();
    let c = read(&a, &f);
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].1.kind, "empty_file");
}

#[test]
fn missing_columns_reject_the_file_once() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    std::fs::write(&f, "id,when\n1,2024-01-01 10:00:00\n").unwrap();
    let c = read(&a, &f);
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].1.kind, "missing_columns");
    assert!(c.rejected[0].1.reason.contains("`code`"));
}

#[test]
fn a_100_mb_line_is_rejected_and_the_rest_read() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    w.write_all(HEADER.as_bytes()).unwrap();
    w.write_all(b"1,2024-01-01 10:00:00,OD,A B,").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        w.write_all(&chunk).unwrap();
    }
    w.write_all(b"\n2,2024-01-01 10:00:00,MH,C D,fine\n")
        .unwrap();
    drop(w);
    let c = read(&a, &f);
    assert_eq!(kinds(&c), vec![(2, "record_too_long")]);
    assert_eq!(c.incidents.len(), 1);
    assert_eq!(c.incidents[0].0.line, 3);
}

#[test]
fn binary_garbage_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"csv\"");
    let f = d.path().join("x.bin");
    // A deterministic pseudo-random stream (xorshift) with quotes, commas and newlines in it.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 11 {
                0 => b'"',
                1 => b',',
                2 => b'\n',
                _ => (x >> 24) as u8,
            }
        })
        .collect();
    std::fs::write(&f, bytes).unwrap();
    let c = read(&a, &f);
    assert!(c.rejected.len() + c.incidents.len() > 0);
    let nd = small(&d.path().join("nd"), "kind = \"ndjson\"");
    let c = read(&nd, &f);
    assert!(!c.rejected.is_empty());
    let js = small(&d.path().join("js"), "kind = \"json\"");
    let c = read(&js, &f);
    assert_eq!(c.incidents.len(), 0);
}

#[test]
fn tsv_pipe_bom_and_crlf() {
    let d = tempfile::tempdir().unwrap();
    let tsv = small(&d.path().join("t"), "kind = \"tsv\"");
    let f = d.path().join("x.tsv");
    std::fs::write(
        &f,
        "\u{feff}id\twhen\tcode\tname\tnote\r\n1\t2024-01-01 10:00:00\tOD\tDOE, JANE\t\"multi\r\nline\"\r\n",
    )
    .unwrap();
    let c = read(&tsv, &f);
    assert_eq!(c.rejected.len(), 0, "{:?}", c.rejected);
    let inc = &c.incidents[0].1;
    assert_eq!(inc.incident_id, "1");
    assert_eq!(inc.narrative.as_ref().unwrap().expose(), "multi\r\nline");
    let psv = small(&d.path().join("p"), "kind = \"psv\"");
    let f = d.path().join("x.psv");
    std::fs::write(
        &f,
        "id|when|code|name|note\n7|2024-01-01 10:00:00|MH|X Y|z\n",
    )
    .unwrap();
    assert_eq!(read(&psv, &f).incidents[0].1.incident_id, "7");
}

#[test]
fn ndjson_and_json_documents() {
    let d = tempfile::tempdir().unwrap();
    let nd = small(&d.path().join("n"), "kind = \"ndjson\"");
    let f = d.path().join("x.ndjson");
    let deep = "[".repeat(10_000);
    std::fs::write(
        &f,
        format!("{{\"id\":\"1\",\"when\":\"2024-01-01 10:00:00\",\"code\":\"OD\"}}\n\n{{\"id\":2,\"when\":\n[1,2]\n{deep}\n{{\"id\":\"3\",\"code\":\"MH\",\"when\":\"2024-01-01 10:00:00\"}}\n"),
    )
    .unwrap();
    let c = read(&nd, &f);
    let ids: Vec<_> = c
        .incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "3"]);
    assert_eq!(
        kinds(&c),
        vec![
            (3, "truncated_json"),
            (4, "not_an_object"),
            (5, "invalid_json")
        ]
    );

    let js = small(&d.path().join("j"), "kind = \"json\"");
    let f = d.path().join("x.json");
    std::fs::write(
        &f,
        "[{\"id\":\"1\",\"when\":\"2024-01-01 10:00:00\",\"code\":\"OD\"}, 5, {\"id\":\"2\",\"code\":\"Q\"}, {\"id\": ",
    )
    .unwrap();
    let c = read(&js, &f);
    let ids: Vec<_> = c
        .incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    let k: Vec<_> = c.rejected.iter().map(|(_, r)| r.kind).collect();
    assert_eq!(k, ["not_an_object", "invalid_json"]);
    assert_eq!(c.gaps.len(), 1, "code Q is a mapping gap");
}

/// Found by the `delimited` fuzz target: two fields whose bytes are each invalid UTF-8 but form a
/// valid character once the delimiter between them is removed. The header check sliced a string
/// inside that character and panicked; a data row would have been misread. Now each field is
/// checked on its own.
#[test]
fn fuzz_regression_utf8_split_across_fields() {
    let d = tempfile::tempdir().unwrap();
    let a = small(d.path(), "kind = \"tsv\"");
    let crash = std::fs::read(repo().join("tests/data/fuzz/delimited-split-utf8")).unwrap();
    // The fuzz target's first byte selects the options; the rest is the file.
    let f = d.path().join("x.tsv");
    std::fs::write(&f, &crash[1..]).unwrap();
    let c = read(&a, &f);
    assert_eq!(c.rejected.len(), 1);
    assert_eq!(c.rejected[0].1.kind, "bad_header");
    // The same shape in a data row: rejected, not silently emptied.
    std::fs::write(
        &f,
        b"id\twhen\tcode\tname\tnote\n1\t2024-01-01 10:00:00\tOD\t\xC9\t\x89\n",
    )
    .unwrap();
    let c = read(&a, &f);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.incidents);
    assert_eq!(c.rejected[0].1.kind, "invalid_utf8");
    assert_eq!(c.rejected[0].1.field.as_deref(), Some("name"));
}
