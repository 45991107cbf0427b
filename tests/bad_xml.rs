//! Bad NIBRS XML (issue 10): a giant attribute or text node is a rejection, never an abort, and
//! the reports after it are read; a document that is not NIBRS, and a file cut short anywhere,
//! end as a rejection saying where and how much could not be read, never as silence.
//! Every report here is of our own making.

mod common;

use common::*;
use pnp_gateway::config::Adapter;
use std::io::Write;
use std::path::{Path, PathBuf};

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<nibrs:Submission xmlns:nibrs="http://fbi.gov/cjis/nibrs/2019" xmlns:j="http://release.niem.gov/niem/domains/jxdm/5.2/" xmlns:nc="http://release.niem.gov/niem/niem-core/3.0/" xmlns:s="http://release.niem.gov/niem/structures/3.0/">
"#;
const TAIL: &str = "</nibrs:Submission>\n";
/// Where a test puts its giant attribute or text.
const MARK: &str = "@@";

/// One report of our own; `MARK` in `incident_extra` or `text` is where a test splices bytes in.
fn report(number: &str, action: &str, incident_extra: &str, text: &str) -> String {
    format!(
        r#"  <nibrs:Report>
    <nibrs:ReportHeader>
      <nibrs:NIBRSReportCategoryCode>GROUP A INCIDENT REPORT</nibrs:NIBRSReportCategoryCode>
      <nibrs:ReportActionCategoryCode>{action}</nibrs:ReportActionCategoryCode>
      <nibrs:ReportingAgency><j:OrganizationAugmentation><j:OrganizationORIIdentification><nc:IdentificationID>ZZ0000000</nc:IdentificationID></j:OrganizationORIIdentification></j:OrganizationAugmentation></nibrs:ReportingAgency>
    </nibrs:ReportHeader>
    <nc:Incident{incident_extra}>
      <nc:ActivityIdentification><nc:IdentificationID>{number}</nc:IdentificationID></nc:ActivityIdentification>
      <nc:ActivityDate><nc:DateTime>2026-01-02T10:00:00</nc:DateTime></nc:ActivityDate>
      <nc:ActivityDescriptionText>{text}</nc:ActivityDescriptionText>
    </nc:Incident>
    <j:Offense s:id="O1"><nibrs:OffenseUCRCode>13A</nibrs:OffenseUCRCode></j:Offense>
  </nibrs:Report>
"#
    )
}

/// The shipped NIBRS mapping, with `max_record_bytes` set.
fn nibrs_xml(dir: &Path, max_record_bytes: usize) -> Adapter {
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    let a = dir.join("adapters/x.toml");
    let mapping = repo().join("mappings/nibrs.toml");
    std::fs::write(
        &a,
        format!(
            "mapping = {:?}\n[format]\nkind = \"nibrs_xml\"\nmax_record_bytes = {max_record_bytes}\n",
            mapping.to_str().unwrap()
        ),
    )
    .unwrap();
    Adapter::load(&a).expect("adapter loads")
}

/// Writes `parts` to a file, with `giant` bytes of `fill` in place of each `MARK`.
fn write_with_giant(path: &Path, parts: &str, fill: u8, giant: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let chunk = vec![fill; 1 << 20];
    let mut pieces = parts.split(MARK).peekable();
    while let Some(p) = pieces.next() {
        f.write_all(p.as_bytes()).unwrap();
        if pieces.peek().is_some() {
            let mut left = giant;
            while left > 0 {
                let n = left.min(chunk.len());
                f.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
        }
    }
    f.flush().unwrap();
}

fn ids(c: &Collect) -> Vec<&str> {
    c.incidents
        .iter()
        .map(|(_, i)| i.incident_id.as_str())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GIANT: usize = 64 << 20;
const LIMIT: usize = 256 << 10;

#[test]
fn a_giant_attribute_is_a_rejection_and_the_next_report_is_read() {
    let d = tempfile::tempdir().unwrap();
    let body = format!(
        "{HEAD}{}{}{}{TAIL}",
        report("T-1", "I", "", "a"),
        report("T-2", "D", &format!(" note=\"{MARK}\""), "b"),
        report("T-3", "I", "", "c"),
    );
    let f = d.path().join("giant-attribute.xml");
    write_with_giant(&f, &body, b'a', GIANT);
    let c = read(&nibrs_xml(d.path(), LIMIT), &f);
    assert_eq!(ids(&c), ["T-1", "T-3"]);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    let (pos, r) = &c.rejected[0];
    assert_eq!((r.kind, pos.record), ("record_too_long", 2));
    let start = body.find("  <nibrs:Report>\n    <nibrs:ReportHeader>\n      <nibrs:NIBRSReportCategoryCode>GROUP A INCIDENT REPORT</nibrs:NIBRSReportCategoryCode>\n      <nibrs:ReportActionCategoryCode>D").unwrap() as u64 + 2;
    assert_eq!(pos.byte, start, "{}", r.reason);
    assert!(
        r.reason
            .contains("longer than max_record_bytes (262144 bytes)")
            && r.reason.contains(&format!("from byte {start}"))
            && r.reason.contains("were skipped"),
        "{}",
        r.reason
    );
}

#[test]
fn a_giant_text_node_is_a_rejection_and_the_next_report_is_read() {
    let d = tempfile::tempdir().unwrap();
    let body = format!(
        "{HEAD}{}{}{}{TAIL}",
        report("T-1", "I", "", "a"),
        report("T-2", "I", "", MARK),
        report("T-3", "I", "", "c"),
    );
    let f = d.path().join("giant-text.xml");
    write_with_giant(&f, &body, b'x', GIANT);
    let c = read(&nibrs_xml(d.path(), LIMIT), &f);
    assert_eq!(ids(&c), ["T-1", "T-3"]);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    assert_eq!(c.rejected[0].1.kind, "record_too_long");
    assert_eq!(c.rejected[0].0.record, 2);
}

#[test]
fn a_giant_report_without_an_end_is_one_rejection_for_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let body = format!(
        "{HEAD}{}{}",
        report("T-1", "I", "", "a"),
        report("T-2", "I", "", MARK)
    );
    let cut = &body[..body.find(MARK).unwrap() + MARK.len()];
    let f = d.path().join("giant-tail.xml");
    write_with_giant(&f, cut, b'x', 2 << 20);
    let c = read(&nibrs_xml(d.path(), LIMIT), &f);
    assert_eq!(ids(&c), ["T-1"]);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    let r = &c.rejected[0].1;
    assert_eq!(r.kind, "record_too_long");
    assert!(
        r.reason.contains("no end tag") && r.reason.contains("could not be read"),
        "{}",
        r.reason
    );
}

#[test]
fn xml_that_is_not_nibrs_is_a_rejection() {
    let d = tempfile::tempdir().unwrap();
    let a = nibrs_xml(d.path(), LIMIT);
    let rss = "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Our feed</title>\
               <item><title>One</title><description>Two</description></item></channel></rss>\n";
    let c = read(&a, &write(d.path(), "feed.xml", rss));
    assert_eq!(c.incidents.len(), 0);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    assert_eq!(c.rejected[0].1.kind, "not_nibrs");
    assert!(c.rejected[0].1.reason.contains("not a NIBRS submission"));
    // A NIBRS submission with no report in it is not silent either.
    let c = read(&a, &write(d.path(), "none.xml", &format!("{HEAD}{TAIL}")));
    assert_eq!(c.incidents.len(), 0);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
}

#[test]
fn a_file_cut_mid_report_keeps_the_reports_before_and_says_from_where() {
    let d = tempfile::tempdir().unwrap();
    let a = nibrs_xml(d.path(), LIMIT);
    let first = format!("{HEAD}{}", report("T-1", "I", "", "a"));
    let full = format!("{first}{}{TAIL}", report("T-2", "D", "", "b"));
    let cut = &full[..full.find(">T-2<").unwrap()];
    let c = read(&a, &write(d.path(), "cut.xml", cut));
    assert_eq!(ids(&c), ["T-1"]);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    let (pos, r) = &c.rejected[0];
    assert_eq!((r.kind, pos.record), ("truncated_xml", 2));
    let from = first.len() + 2; // the second report's `<`
    assert_eq!(pos.byte, from as u64);
    assert!(
        r.reason
            .contains(&format!("cut short at byte {}", cut.len()))
            && r.reason.contains(&format!(
                "{} bytes from byte {from} could not be read",
                cut.len() - from
            )),
        "{}",
        r.reason
    );
}

/// A delete cut off anywhere, even between two reports, never vanishes in silence: every cut
/// yields the reports before it and exactly one rejection.
#[test]
fn a_file_cut_anywhere_after_a_report_is_never_silent() {
    let d = tempfile::tempdir().unwrap();
    let a = nibrs_xml(d.path(), LIMIT);
    let first = format!("{HEAD}{}", report("T-1", "I", "", "a"));
    let second = report("T-2", "D", "", "b");
    let full = format!("{first}{second}{TAIL}");
    let c = read(&a, &write(d.path(), "full.xml", &full));
    assert_eq!((ids(&c), c.rejected.len()), (vec!["T-1", "T-2"], 0));
    // Cut after its end tag, the delete is read, and the cut submission still said.
    let whole = first.len() + second.trim_end().len();
    for at in first.len()..full.len() - 1 {
        let c = read(&a, &write(d.path(), "cut.xml", &full[..at]));
        let read_whole: &[&str] = if at < whole {
            &["T-1"]
        } else {
            &["T-1", "T-2"]
        };
        assert_eq!(ids(&c), read_whole, "cut at {at}");
        assert_eq!(c.rejected.len(), 1, "cut at {at}: {:?}", c.rejected);
        assert_eq!(c.rejected[0].1.kind, "truncated_xml", "cut at {at}");
        let unread = if at < whole { 2 } else { 3 };
        assert_eq!(c.rejected[0].0.record, unread, "cut at {at}");
        assert!(
            c.rejected[0]
                .1
                .reason
                .contains(&format!("cut short at byte {at}")),
            "cut at {at}: {}",
            c.rejected[0].1.reason
        );
    }
}

/// A `<` typed into a report's text (`Sam <ZEBEDIAH>`) breaks the markup: the report is a
/// rejection whose reason says what is wrong and quotes nothing of the text, quick-xml's
/// message naming the "tag" being the name itself.
#[test]
fn broken_markup_in_a_value_is_rejected_without_quoting_it() {
    let d = tempfile::tempdir().unwrap();
    let body = format!(
        "{HEAD}{}{}{TAIL}",
        report("T-1", "I", "", "Sam <ZEBEDIAH> called"),
        report("T-2", "I", "", "b"),
    );
    let f = d.path().join("lt.xml");
    std::fs::write(&f, &body).unwrap();
    let c = read(&nibrs_xml(d.path(), LIMIT), &f);
    assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
    let r = &c.rejected[0].1;
    assert_eq!(r.kind, "invalid_xml");
    assert!(
        r.reason.contains("does not match its start tag") && !r.reason.contains("ZEBEDIAH"),
        "{}",
        r.reason
    );
}
