//! NIBRS XML (IEPD 2019.1 and 4.2), streamed with quick-xml's namespace-aware reader: one
//! `nibrs:Report` at a time is gathered into a small tree (see [`super::xml_tree`]) and read into
//! a [`super::Report`]; a multi-gigabyte submission never sits in memory. Entities are never
//! expanded: no entity bomb.
//!
//! Memory is bounded by `max_record_bytes`: the parser reads through a [`Budget`] that stops
//! serving bytes once a report (or the stretch between two reports) passes it, so a 1 GiB
//! attribute or text node is cut off before it is allocated. An over-long report is rejected and
//! skipped up to its end tag, and reading goes on after it. Every file ends as reports, or a
//! rejection saying where and how much could not be read: a document that is not a NIBRS
//! submission, a file cut short (inside a report, or between reports with the submission left
//! open), broken XML.

use super::xml_tree::{Node, Ns, Tree, family, read_report};
use crate::formats::budget::Budget;
use crate::formats::delimited::default_max_record_bytes;
use crate::formats::{FileError, Item, Position, Rejection};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use serde_json::Value;
use std::io::BufRead;

/// Elements one report may hold; the largest real reports hold a few hundred.
const MAX_NODES: usize = 50_000;
/// Nesting depth of a report; NIBRS goes about 8 deep.
const MAX_DEPTH: usize = 64;

/// Why reading stopped short of a report: a rejection, and whether reading can go on after it.
struct Halt {
    pos: Position,
    rejection: Rejection,
    go_on: bool,
}

pub struct NibrsXmlReader<R: BufRead> {
    /// `None` only while a fresh parser is being made after an over-long report.
    reader: Option<NsReader<Budget<R>>>,
    buf: Vec<u8>,
    /// Reports begun so far.
    record: u64,
    done: bool,
    /// Raw start tags of the open elements around the reports (the submission): a fresh parser
    /// is fed them again after an over-long report is skipped, so namespaces still resolve.
    outer: Vec<String>,
    /// Whether the first element is in a NIBRS namespace; `None` before it.
    root_nibrs: Option<bool>,
    /// Where the last complete report ended: what a file cut short loses starts here.
    last_end: u64,
}

fn parser<R: BufRead>(b: Budget<R>) -> NsReader<Budget<R>> {
    let mut reader = NsReader::from_reader(b);
    reader.config_mut().trim_text(true);
    reader
}

impl<R: BufRead> NibrsXmlReader<R> {
    /// A reader with the default `max_record_bytes` (1 MiB).
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, default_max_record_bytes())
    }

    /// A reader that holds at most `max_record_bytes` of one report (or of what lies between
    /// two reports) at a time.
    pub fn with_limit(inner: R, max_record_bytes: usize) -> Self {
        NibrsXmlReader {
            reader: Some(parser(Budget::new(inner, max_record_bytes))),
            buf: Vec::new(),
            record: 0,
            done: false,
            outer: Vec::new(),
            root_nibrs: None,
            last_end: 0,
        }
    }

    /// The parser, borrowing only its own field (the event read borrows `buf` meanwhile).
    fn xml_of(reader: &mut Option<NsReader<Budget<R>>>) -> &mut NsReader<Budget<R>> {
        reader
            .as_mut()
            .expect("the parser is put back as soon as it is replaced")
    }

    fn budget(&mut self) -> &mut Budget<R> {
        Self::xml_of(&mut self.reader).get_mut()
    }

    /// The position in the file: bytes of it consumed so far.
    fn at(&mut self) -> u64 {
        self.budget().pos()
    }

    /// The next report (zero reports are skipped), a rejection, or the end.
    pub fn next_item(&mut self) -> Result<Option<Item<Value>>, FileError> {
        while !self.done {
            match self.next_report() {
                Ok(Some((pos, tree))) => match read_report(&tree) {
                    Ok(Some(r)) => return Ok(Some(Item::Record(pos, r.to_json()))),
                    Ok(None) => continue, // a zero report: no incident
                    Err(why) => {
                        return Ok(Some(Item::Rejected(pos, Rejection::new("bad_report", why))));
                    }
                },
                Ok(None) => self.done = true,
                Err(h) => {
                    self.done = !h.go_on;
                    return Ok(Some(Item::Rejected(h.pos, h.rejection)));
                }
            }
        }
        Ok(None)
    }

    /// A rejection that ends the file, for `record` (the report open, or the next one): reads
    /// the rest without keeping it, to say how much it was.
    fn tail(&mut self, kind: &'static str, what: String, from: u64, record: u64) -> Halt {
        let _ = self.budget().drain();
        let lost = self.at().saturating_sub(from);
        Halt {
            pos: Position {
                byte: from,
                line: 0,
                record,
            },
            rejection: Rejection::new(
                kind,
                format!("{what}: the {lost} bytes from byte {from} could not be read"),
            ),
            go_on: false,
        }
    }

    /// The budget ran out. Inside a report: skip to its end tag and go on with a fresh parser
    /// (fed the submission's start tags again), or, with no end tag, reject the rest of the file.
    /// Outside a report there is no end to look for: the rest of the file is rejected.
    fn over_long(&mut self, report: Option<(Position, String)>) -> Halt {
        let max = self.budget().max();
        let Some((pos, name)) = report else {
            let from = self.last_end;
            return self.tail(
                "record_too_long",
                format!(
                    "more than max_record_bytes ({max} bytes) outside any report, from byte {from}"
                ),
                from,
                self.record + 1,
            );
        };
        let n = pos.record;
        match self.budget().skip_past_end_tag(name.as_bytes()) {
            Ok(true) => {
                let to = self.at();
                let mut budget = self.reader.take().map(NsReader::into_inner);
                if let Some(b) = budget.as_mut() {
                    b.replay(self.outer.concat().into_bytes());
                    b.reset();
                }
                self.reader = budget.map(parser);
                self.outer.clear();
                self.last_end = to;
                Halt {
                    pos,
                    rejection: Rejection::new(
                        "record_too_long",
                        format!(
                            "report {n} is longer than max_record_bytes ({max} bytes): its {} bytes from byte {} to byte {to} were skipped",
                            to - pos.byte,
                            pos.byte
                        ),
                    ),
                    go_on: true,
                }
            }
            Ok(false) => self.tail(
                "record_too_long",
                format!(
                    "report {n} is longer than max_record_bytes ({max} bytes) and has no end tag"
                ),
                pos.byte,
                n,
            ),
            Err(e) => self.tail(
                "unreadable_xml",
                format!("report {n} could not be read ({e})"),
                pos.byte,
                n,
            ),
        }
    }

    /// The input ended (or ended inside markup) with no report open: what that means.
    fn ended(
        &mut self,
        report: Option<(Position, String)>,
    ) -> Result<Option<(Position, Tree)>, Halt> {
        let end = self.at();
        if let Some((pos, _)) = report {
            return Err(self.tail(
                "truncated_xml",
                format!(
                    "the file is cut short at byte {end} inside report {}",
                    pos.record
                ),
                pos.byte,
                pos.record,
            ));
        }
        let file_level = |why: &str| Halt {
            pos: Position {
                byte: 0,
                line: 0,
                record: 1,
            },
            rejection: Rejection::new("not_nibrs", why),
            go_on: false,
        };
        match self.root_nibrs {
            None => Err(file_level(
                "the file holds no XML element; a NIBRS submission was expected",
            )),
            Some(false) if self.record == 0 => Err(file_level(
                "not a NIBRS submission: the root element is not in a NIBRS namespace and no nibrs:Report was found",
            )),
            _ if !self.outer.is_empty() => {
                let from = self.last_end;
                Err(self.tail(
                    "truncated_xml",
                    format!(
                        "the file is cut short at byte {end} after report {}: the submission is not closed",
                        self.record
                    ),
                    from,
                    self.record + 1,
                ))
            }
            Some(true) if self.record == 0 => {
                Err(file_level("a NIBRS submission holding no nibrs:Report"))
            }
            _ => Ok(None),
        }
    }

    /// Reads up to the next `nibrs:Report` and gathers it.
    fn next_report(&mut self) -> Result<Option<(Position, Tree)>, Halt> {
        let mut tree = Tree::default();
        let mut stack: Vec<usize> = Vec::new();
        // The open report: where it began and its qualified name (to find its end tag).
        let mut report: Option<(Position, String)> = None;
        loop {
            self.buf.clear();
            let at = self.at();
            let xml = Self::xml_of(&mut self.reader);
            let read = xml
                .read_resolved_event_into(&mut self.buf)
                .map(|(res, ev)| {
                    let ns = match res {
                        ResolveResult::Bound(n) => Some(family(n.as_ref())),
                        _ => None,
                    };
                    (ns, ev)
                });
            let hit = xml.get_ref().hit();
            let after = xml.get_ref().pos();
            let (ns, ev) = match read {
                _ if hit => return Err(self.over_long(report)),
                Ok(x) => x,
                Err(quick_xml::Error::Syntax(_)) => {
                    // Every syntax error of quick-xml is markup the input ended inside.
                    return self.ended(report);
                }
                Err(e) => {
                    let kind = if matches!(e, quick_xml::Error::IllFormed(_)) {
                        "invalid_xml"
                    } else {
                        "unreadable_xml"
                    };
                    let (from, n) = report
                        .as_ref()
                        .map_or((at, self.record + 1), |(p, _)| (p.byte, p.record));
                    let what = crate::formats::xml_error::described(&e);
                    return Err(self.tail(kind, format!("{what} (near byte {at})"), from, n));
                }
            };
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    let name = e.local_name().as_ref().to_string();
                    self.root_nibrs.get_or_insert(ns == Some(Ns::Nibrs));
                    if report.is_none() {
                        if ns == Some(Ns::Nibrs) && name == "Report" && !empty {
                            self.record += 1;
                            let pos = Position {
                                // `at` is before the whitespace the parser skipped: `<` is here.
                                byte: after.saturating_sub(e.len() as u64 + 2),
                                line: 0,
                                record: self.record,
                            };
                            report = Some((pos, e.name().as_ref().to_string()));
                            Self::xml_of(&mut self.reader).get_mut().reset();
                        } else {
                            if !empty {
                                let tag = format!("<{}>", &**e);
                                let held: usize = self.outer.iter().map(String::len).sum();
                                if self.outer.len() >= MAX_DEPTH
                                    || (held + tag.len()) as u64 > self.budget().max()
                                {
                                    let from = self.last_end;
                                    return Err(self.tail(
                                        "record_too_long",
                                        format!("the elements around the reports are nested more than {MAX_DEPTH} deep or longer than max_record_bytes"),
                                        from,
                                        self.record + 1,
                                    ));
                                }
                                self.outer.push(tag);
                            }
                            continue;
                        }
                    }
                    if tree.nodes.len() >= MAX_NODES || stack.len() >= MAX_DEPTH {
                        return Err(self.tail(
                            "record_too_long",
                            format!(
                                "report {} has more than {MAX_NODES} elements or {MAX_DEPTH} levels",
                                self.record
                            ),
                            report.map_or(at, |(p, _)| p.byte),
                            self.record,
                        ));
                    }
                    let mut node = Node {
                        ns,
                        name,
                        ..Node::default()
                    };
                    for a in e.attributes().flatten() {
                        let (ares, local) = Self::xml_of(&mut self.reader)
                            .resolver_mut()
                            .resolve_attribute(a.key);
                        let is_s =
                            matches!(ares, ResolveResult::Bound(n) if family(n.as_ref()) == Ns::S);
                        if !is_s {
                            continue;
                        }
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map(|v| v.into_owned())
                            .unwrap_or_default();
                        match local.as_ref() {
                            "id" => node.id = Some(v),
                            "ref" => node.r#ref = Some(v),
                            _ => {}
                        }
                    }
                    let idx = tree.nodes.len();
                    tree.nodes.push(node);
                    if let Some(&parent) = stack.last() {
                        tree.nodes[parent].children.push(idx);
                    }
                    if !empty {
                        stack.push(idx);
                    }
                }
                Event::Text(t) if report.is_some() => {
                    if let Some(&top) = stack.last() {
                        tree.nodes[top].text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(t) if report.is_some() => {
                    if let Some(&top) = stack.last() {
                        tree.nodes[top].text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) if report.is_some() => {
                    let ch = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        _ => match &*r {
                            "amp" => Some('&'),
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "quot" => Some('"'),
                            "apos" => Some('\''),
                            _ => None,
                        },
                    };
                    match (ch, stack.last()) {
                        (Some(c), Some(&top)) => tree.nodes[top].text.push(c),
                        (None, _) => {
                            let (from, n) =
                                report.map_or((at, self.record + 1), |(p, _)| (p.byte, p.record));
                            return Err(self.tail(
                                "invalid_xml",
                                // Its name is not quoted: it stands inside a value.
                                format!(
                                    "an entity that XML does not predefine; entities are never expanded (near byte {at})"
                                ),
                                from,
                                n,
                            ));
                        }
                        _ => {}
                    }
                }
                Event::End(_) if report.is_some() => {
                    stack.pop();
                    if stack.is_empty() {
                        self.last_end = self.at();
                        self.budget().reset();
                        return Ok(report.map(|(pos, _)| (pos, tree)));
                    }
                }
                Event::End(_) => {
                    self.outer.pop();
                }
                Event::Eof => return self.ended(report),
                _ => {}
            }
        }
    }
}
