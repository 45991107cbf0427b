//! An incident's canonical JSON written straight into a byte buffer, for `normalize`'s hot path.
//!
//! The text is exactly what serde_json writes for the derived `Serialize` (a test compares the
//! two on incidents with every field set, left out, empty and filled with characters that need
//! escaping), so either may be read back by the other. It is faster because it knows the shape:
//! no serializer state per field, and strings are copied in runs of eight bytes that need no
//! escape instead of one byte at a time (serde_json's escaping alone was about 10% of
//! `normalize`). Values the fast forms do not cover (years outside 0..=9999, fractional seconds)
//! go through serde_json itself.
//!
//! Identifying values leave here as they leave through `Serialize`: this is the same exit, used
//! where an incident's whole canonical form is the output.

use super::{
    Address, Coded, Eligibility, Flags, Identifier, Incident, Location, Name, Person, Sensitive,
    Source, Times,
};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde_json::ser::{CompactFormatter, Formatter};

/// Appends `inc` as one compact JSON object (no newline).
pub fn write_incident(out: &mut Vec<u8>, inc: &Incident) {
    // Destructured in full: a field added to the model is a compile error here, not a silent
    // omission from the output.
    let Incident {
        source,
        incident_id,
        action,
        call_type,
        category,
        eligibility,
        priority,
        times,
        location,
        disposition,
        narrative,
        naloxone_administered,
        flags,
        offenses,
        drugs,
        persons,
    } = inc;
    let mut o = Obj::new(out);
    o.key("source");
    write_source(o.out, source);
    o.str("incident_id", incident_id);
    o.raw_str("action", action.as_str());
    if let Some(c) = call_type {
        o.key("call_type");
        write_coded(o.out, c);
    }
    o.raw_str("category", category.as_str());
    o.key("eligibility");
    let Eligibility { eligible, rule } = eligibility;
    let mut e = Obj::new(o.out);
    e.bool("eligible", *eligible);
    e.str("rule", rule);
    e.end();
    o.opt_str("priority", priority.as_deref());
    if !times.is_empty() {
        o.key("times");
        write_times(o.out, times);
    }
    if !location.is_empty() {
        o.key("location");
        write_location(o.out, location);
    }
    if let Some(c) = disposition {
        o.key("disposition");
        write_coded(o.out, c);
    }
    o.opt_str("narrative", narrative.as_ref().map(|s| s.expose().as_str()));
    if let Some(b) = naloxone_administered {
        o.bool("naloxone_administered", *b);
    }
    if !flags.is_empty() {
        o.key("flags");
        let Flags {
            weapon,
            violence,
            substance_use,
        } = flags;
        let mut f = Obj::new(o.out);
        f.opt_bool("weapon", *weapon);
        f.opt_bool("violence", *violence);
        f.opt_bool("substance_use", *substance_use);
        f.end();
    }
    o.str_list("offenses", offenses.iter().map(String::as_str));
    o.str_list("drugs", drugs.iter().map(String::as_str));
    if !persons.is_empty() {
        o.key("persons");
        o.out.push(b'[');
        for (i, p) in persons.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            write_person(o.out, p);
        }
        o.out.push(b']');
    }
    o.end();
}

fn write_source(out: &mut Vec<u8>, s: &Source) {
    let Source {
        adapter,
        agency_ori,
        system,
        record_id,
    } = s;
    let mut o = Obj::new(out);
    o.str("adapter", adapter);
    o.opt_str("agency_ori", agency_ori.as_deref());
    o.opt_str("system", system.as_deref());
    o.str("record_id", record_id);
    o.end();
}

fn write_coded(out: &mut Vec<u8>, c: &Coded) {
    let Coded { code, text } = c;
    let mut o = Obj::new(out);
    o.str("code", code);
    o.opt_str("text", text.as_deref());
    o.end();
}

fn write_times(out: &mut Vec<u8>, t: &Times) {
    let Times {
        received,
        answered,
        dispatched,
        arrived,
        cleared,
        ambiguous,
    } = t;
    let mut o = Obj::new(out);
    for (k, v) in [
        ("received", received),
        ("answered", answered),
        ("dispatched", dispatched),
        ("arrived", arrived),
        ("cleared", cleared),
    ] {
        if let Some(at) = v {
            o.key(k);
            write_datetime(o.out, at);
        }
    }
    if *ambiguous {
        o.bool("ambiguous", true);
    }
    o.end();
}

fn write_location(out: &mut Vec<u8>, l: &Location) {
    let Location {
        street,
        city,
        county,
        state,
        zip,
        lat,
        lon,
        beat,
    } = l;
    let mut o = Obj::new(out);
    o.opt_str("street", exposed(street));
    o.opt_str("city", city.as_deref());
    o.opt_str("county", county.as_deref());
    o.opt_str("state", state.as_deref());
    o.opt_str("zip", exposed(zip));
    for (k, v) in [("lat", lat), ("lon", lon)] {
        if let Some(v) = v {
            o.key(k);
            write_f64(o.out, *v.expose());
        }
    }
    o.opt_str("beat", beat.as_deref());
    o.end();
}

fn write_person(out: &mut Vec<u8>, p: &Person) {
    let Person {
        role,
        name,
        dob,
        age,
        age_min,
        age_max,
        age_text,
        sex,
        race,
        ethnicity,
        phones,
        emails,
        address,
        identifiers,
    } = p;
    let mut o = Obj::new(out);
    o.raw_str("role", role.as_str());
    if !name.is_empty() {
        let Name {
            last,
            first,
            middle,
            suffix,
        } = name;
        o.key("name");
        let mut n = Obj::new(o.out);
        n.opt_str("last", exposed(last));
        n.opt_str("first", exposed(first));
        n.opt_str("middle", exposed(middle));
        n.opt_str("suffix", exposed(suffix));
        n.end();
    }
    if let Some(d) = dob {
        o.key("dob");
        write_date(o.out, *d.expose());
    }
    for (k, v) in [("age", age), ("age_min", age_min), ("age_max", age_max)] {
        if let Some(v) = v {
            o.key(k);
            // Writing to a Vec cannot fail.
            let _ = CompactFormatter.write_u16(o.out, *v.expose());
        }
    }
    o.opt_str("age_text", age_text.as_deref());
    o.opt_str("sex", sex.as_deref());
    o.opt_str("race", race.as_deref());
    o.opt_str("ethnicity", ethnicity.as_deref());
    o.str_list("phones", phones.iter().map(|s| s.expose().as_str()));
    o.str_list("emails", emails.iter().map(|s| s.expose().as_str()));
    if !address.is_empty() {
        let Address {
            street,
            city,
            state,
            zip,
        } = address;
        o.key("address");
        let mut a = Obj::new(o.out);
        a.opt_str("street", exposed(street));
        a.opt_str("city", exposed(city));
        a.opt_str("state", state.as_deref());
        a.opt_str("zip", exposed(zip));
        a.end();
    }
    if !identifiers.is_empty() {
        o.key("identifiers");
        o.out.push(b'[');
        for (i, id) in identifiers.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            let Identifier {
                kind,
                value,
                issuer,
            } = id;
            let mut x = Obj::new(o.out);
            x.raw_str("kind", kind.as_str());
            x.str("value", value.expose());
            x.opt_str("issuer", issuer.as_deref());
            x.end();
        }
        o.out.push(b']');
    }
    o.end();
}

fn exposed(v: &Option<Sensitive<String>>) -> Option<&str> {
    v.as_ref().map(|s| s.expose().as_str())
}

/// A JSON object being written: `{`, then `"key":value` pairs with commas, then `}`.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"k":` (after a comma unless first). Keys are ours: plain ASCII, no escapes.
    fn key(&mut self, k: &str) {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }

    /// A value of ours that needs no escape (an enum's name).
    fn raw_str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    fn opt_bool(&mut self, k: &str, v: Option<bool>) {
        if let Some(v) = v {
            self.bool(k, v);
        }
    }

    /// A list of strings, left out when empty.
    fn str_list<'s>(&mut self, k: &str, items: impl ExactSizeIterator<Item = &'s str>) {
        if items.len() == 0 {
            return;
        }
        self.key(k);
        self.out.push(b'[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, s);
        }
        self.out.push(b']');
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// A number as serde_json writes it (`null` when not finite).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        // Writing to a Vec cannot fail.
        let _ = CompactFormatter.write_f64(out, v);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// `"YYYY-MM-DD"`, or chrono's own form for other years.
fn write_date(out: &mut Vec<u8>, d: NaiveDate) {
    let y = d.year();
    if !(0..=9999).contains(&y) {
        let _ = serde_json::to_writer(&mut *out, &d);
        return;
    }
    let mut b = *b"\"0000-00-00\"";
    let y = y as u32;
    two(&mut b[1..3], y / 100);
    two(&mut b[3..5], y % 100);
    two(&mut b[6..8], d.month());
    two(&mut b[9..11], d.day());
    out.extend_from_slice(&b);
}

fn two(b: &mut [u8], v: u32) {
    b[0] = b'0' + (v / 10) as u8;
    b[1] = b'0' + (v % 10) as u8;
}

fn write_datetime(out: &mut Vec<u8>, at: &DateTime<FixedOffset>) {
    let mut buf = [0u8; 25];
    match super::rfc3339::write(at, &mut buf) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => {
            let text = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
            write_str(out, &text);
        }
    }
}

/// Whether any byte of the eight in `x` must be escaped: a control character (below 0x20), a
/// quote or a backslash. The classic word-at-a-time zero-byte test, applied three times.
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // Below 0x20: subtracting 0x20 borrows into the high bit of a byte that had it clear.
    let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    low | zero(x ^ (ONES * b'"' as u64)) | zero(x ^ (ONES * b'\\' as u64)) != 0
}

/// A JSON string, escaped as serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Runs of whole words in which no byte needs an escape are copied at once; a word that has
    // one is gone through byte by byte, and the scan by words goes on after it (a narrative with
    // quoted speech has a few escapes, not one per word).
    let (mut run, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(w) = bytes.get(at..at + 8) {
            let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            if !needs_escape(x) {
                at += 8;
                continue;
            }
        }
        let end = (at + 8).min(bytes.len());
        for i in at..end {
            if let Some(esc) = escape(bytes[i]) {
                out.extend_from_slice(&bytes[run..i]);
                out.extend_from_slice(esc.as_slice());
                run = i + 1;
            }
        }
        at = end;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// A byte's escape (`\"`, `\n`, `\u001f`...), or `None` when it stands for itself.
fn escape(b: u8) -> Option<Escape> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0..=0x1f => {
            let hex = [HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]];
            return Some(Escape([b'\\', b'u', b'0', b'0', hex[0], hex[1]], 6));
        }
        _ => return None,
    };
    Some(Escape([b'\\', short, 0, 0, 0, 0], 2))
}

/// An escape sequence: its bytes and how many of them are used.
struct Escape([u8; 6], usize);

impl Escape {
    fn as_slice(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
