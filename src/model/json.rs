//! An incident's canonical JSON written straight into a byte buffer, for `normalize`'s hot path.
//!
//! The text is exactly what serde_json writes for the derived `Serialize` (a test compares the
//! two on incidents with every field set, left out, empty and filled with characters that need
//! escaping), so either may be read back by the other. It is faster because it knows the shape:
//! no serializer state per field, keys are literals with their separators, and strings are
//! tested and copied a word (eight bytes) at a time instead of one byte at a time (serde_json's
//! escaping alone was about 10% of `normalize`). Values the fast forms do not cover (years outside 0..=9999, fractional seconds)
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

/// A key as its object writes it after another pair: `,"name":`. The first pair of an object
/// leaves the comma out. A literal, so that writing it is a copy of known size, not a call.
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

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
    o.key(k!("source"));
    write_source(o.out, source);
    o.str(k!("incident_id"), incident_id);
    o.raw_str(k!("action"), action.as_str());
    if let Some(c) = call_type {
        o.key(k!("call_type"));
        write_coded(o.out, c);
    }
    o.raw_str(k!("category"), category.as_str());
    o.key(k!("eligibility"));
    let Eligibility { eligible, rule } = eligibility;
    let mut e = Obj::new(o.out);
    e.bool(k!("eligible"), *eligible);
    e.str(k!("rule"), rule);
    e.end();
    o.opt_str(k!("priority"), priority.as_deref());
    if !times.is_empty() {
        o.key(k!("times"));
        write_times(o.out, times);
    }
    if !location.is_empty() {
        o.key(k!("location"));
        write_location(o.out, location);
    }
    if let Some(c) = disposition {
        o.key(k!("disposition"));
        write_coded(o.out, c);
    }
    o.opt_str(
        k!("narrative"),
        narrative.as_ref().map(|s| s.expose().as_str()),
    );
    if let Some(b) = naloxone_administered {
        o.bool(k!("naloxone_administered"), *b);
    }
    if !flags.is_empty() {
        o.key(k!("flags"));
        let Flags {
            weapon,
            violence,
            substance_use,
        } = flags;
        let mut f = Obj::new(o.out);
        f.opt_bool(k!("weapon"), *weapon);
        f.opt_bool(k!("violence"), *violence);
        f.opt_bool(k!("substance_use"), *substance_use);
        f.end();
    }
    o.str_list(k!("offenses"), offenses.iter().map(String::as_str));
    o.str_list(k!("drugs"), drugs.iter().map(String::as_str));
    if !persons.is_empty() {
        o.key(k!("persons"));
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
    o.str(k!("adapter"), adapter);
    o.opt_str(k!("agency_ori"), agency_ori.as_deref());
    o.opt_str(k!("system"), system.as_deref());
    o.str(k!("record_id"), record_id);
    o.end();
}

fn write_coded(out: &mut Vec<u8>, c: &Coded) {
    let Coded { code, text } = c;
    let mut o = Obj::new(out);
    o.str(k!("code"), code);
    o.opt_str(k!("text"), text.as_deref());
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
    // One call per field, not a loop over pairs: each key stays a constant, copied inline.
    o.opt_time(k!("received"), received);
    o.opt_time(k!("answered"), answered);
    o.opt_time(k!("dispatched"), dispatched);
    o.opt_time(k!("arrived"), arrived);
    o.opt_time(k!("cleared"), cleared);
    if *ambiguous {
        o.bool(k!("ambiguous"), true);
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
    o.opt_str(k!("street"), exposed(street));
    o.opt_str(k!("city"), city.as_deref());
    o.opt_str(k!("county"), county.as_deref());
    o.opt_str(k!("state"), state.as_deref());
    o.opt_str(k!("zip"), exposed(zip));
    o.opt_f64(k!("lat"), lat.as_ref().map(|v| *v.expose()));
    o.opt_f64(k!("lon"), lon.as_ref().map(|v| *v.expose()));
    o.opt_str(k!("beat"), beat.as_deref());
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
    o.raw_str(k!("role"), role.as_str());
    if !name.is_empty() {
        let Name {
            last,
            first,
            middle,
            suffix,
        } = name;
        o.key(k!("name"));
        let mut n = Obj::new(o.out);
        n.opt_str(k!("last"), exposed(last));
        n.opt_str(k!("first"), exposed(first));
        n.opt_str(k!("middle"), exposed(middle));
        n.opt_str(k!("suffix"), exposed(suffix));
        n.end();
    }
    if let Some(d) = dob {
        o.key(k!("dob"));
        write_date(o.out, *d.expose());
    }
    o.opt_u16(k!("age"), age.as_ref().map(|v| *v.expose()));
    o.opt_u16(k!("age_min"), age_min.as_ref().map(|v| *v.expose()));
    o.opt_u16(k!("age_max"), age_max.as_ref().map(|v| *v.expose()));
    o.opt_str(k!("age_text"), age_text.as_deref());
    o.opt_str(k!("sex"), sex.as_deref());
    o.opt_str(k!("race"), race.as_deref());
    o.opt_str(k!("ethnicity"), ethnicity.as_deref());
    o.str_list(k!("phones"), phones.iter().map(|s| s.expose().as_str()));
    o.str_list(k!("emails"), emails.iter().map(|s| s.expose().as_str()));
    if !address.is_empty() {
        let Address {
            street,
            city,
            state,
            zip,
        } = address;
        o.key(k!("address"));
        let mut a = Obj::new(o.out);
        a.opt_str(k!("street"), exposed(street));
        a.opt_str(k!("city"), exposed(city));
        a.opt_str(k!("state"), state.as_deref());
        a.opt_str(k!("zip"), exposed(zip));
        a.end();
    }
    if !identifiers.is_empty() {
        o.key(k!("identifiers"));
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
            x.raw_str(k!("kind"), kind.as_str());
            x.str(k!("value"), value.expose());
            x.opt_str(k!("issuer"), issuer.as_deref());
            x.end();
        }
        o.out.push(b']');
    }
    o.end();
}

fn exposed(v: &Option<Sensitive<String>>) -> Option<&str> {
    v.as_ref().map(|s| s.expose().as_str())
}

/// A JSON object being written: `{`, then `"key":value` pairs with commas, then `}`. Keys are
/// given as [`k!`] literals; the methods are inlined so that they stay constants.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    #[inline(always)]
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"k":` (after a comma unless first). Keys are ours: plain ASCII, no escapes.
    #[inline(always)]
    fn key(&mut self, k: &'static str) {
        if std::mem::replace(&mut self.first, false) {
            self.out.extend_from_slice(&k.as_bytes()[1..]);
        } else {
            self.out.extend_from_slice(k.as_bytes());
        }
    }

    #[inline(always)]
    fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }

    /// A value of ours that needs no escape (an enum's name); [`write_str`] copies it as fast
    /// as a plain copy would, and without a call of unknown size.
    #[inline(always)]
    fn raw_str(&mut self, k: &'static str, v: &str) {
        self.str(k, v);
    }

    #[inline(always)]
    fn opt_str(&mut self, k: &'static str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    #[inline(always)]
    fn bool(&mut self, k: &'static str, v: bool) {
        self.key(k);
        if v {
            self.out.extend_from_slice(b"true");
        } else {
            self.out.extend_from_slice(b"false");
        }
    }

    #[inline(always)]
    fn opt_bool(&mut self, k: &'static str, v: Option<bool>) {
        if let Some(v) = v {
            self.bool(k, v);
        }
    }

    #[inline(always)]
    fn opt_f64(&mut self, k: &'static str, v: Option<f64>) {
        if let Some(v) = v {
            self.key(k);
            write_f64(self.out, v);
        }
    }

    #[inline(always)]
    fn opt_u16(&mut self, k: &'static str, v: Option<u16>) {
        if let Some(v) = v {
            self.key(k);
            // Writing to a Vec cannot fail.
            let _ = CompactFormatter.write_u16(self.out, v);
        }
    }

    #[inline(always)]
    fn opt_time(&mut self, k: &'static str, v: &Option<DateTime<FixedOffset>>) {
        if let Some(at) = v {
            self.key(k);
            write_datetime(self.out, at);
        }
    }

    /// A list of strings, left out when empty.
    #[inline(always)]
    fn str_list<'s>(&mut self, k: &'static str, items: impl ExactSizeIterator<Item = &'s str>) {
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

    #[inline(always)]
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

/// A timestamp in quotes: written whole into a fixed buffer, copied whole and cut back to its
/// length (20 or 25 bytes with a `Z` or an offset).
fn write_datetime(out: &mut Vec<u8>, at: &DateTime<FixedOffset>) {
    let mut buf = [b'"'; 27];
    let (text, _) = buf[1..]
        .split_first_chunk_mut::<25>()
        .expect("25 bytes after the quote");
    match super::rfc3339::format(at, text) {
        Some(n) => {
            buf[n + 1] = b'"';
            let start = out.len();
            out.extend_from_slice(&buf);
            out.truncate(start + n + 2);
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
///
/// Most values are short and need no escape, so the work per string is what counts: bytes are
/// tested and copied a word (eight bytes) at a time, and a string shorter than a word is loaded
/// into one, so that a clean string costs a few word tests and fixed-size copies instead of a
/// byte loop and a `memcpy` call of unknown length. Words are written whole and the output cut
/// back to the string's length. A word that holds an escape is gone through byte by byte.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 10);
    out.push(b'"');
    if b.len() < 8 {
        write_short(out, b);
    } else {
        write_long(out, b);
    }
    out.push(b'"');
}

/// A string of 0 to 7 bytes: read as two overlapping halves, written as one word cut back.
fn write_short(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    let w = match n {
        0 => return,
        1 => u64::from(b[0]),
        2 | 3 => {
            let lo = u64::from(u16::from_le_bytes([b[0], b[1]]));
            let hi = u64::from(u16::from_le_bytes([b[n - 2], b[n - 1]]));
            // The halves overlap on equal bytes, so or-ing them is the string itself.
            lo | hi << (8 * (n - 2))
        }
        _ => {
            let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
            lo | hi << (8 * (n - 4))
        }
    };
    // The bytes past the string are zero in `w`: spaces there for the test.
    const SPACES: u64 = 0x2020_2020_2020_2020;
    if needs_escape(w | SPACES << (8 * n)) {
        escape_bytes(out, b);
        return;
    }
    let at = out.len();
    out.extend_from_slice(&w.to_le_bytes());
    out.truncate(at + n);
}

/// A string of 8 bytes or more: word by word; the bytes after the last whole word are written
/// as the string's last word (which overlaps the word before) when both need no escape.
fn write_long(out: &mut Vec<u8>, b: &[u8]) {
    let mut words = b.chunks_exact(8);
    let mut last_clean = true;
    for w in &mut words {
        let w: [u8; 8] = w.try_into().expect("eight bytes");
        last_clean = !needs_escape(u64::from_le_bytes(w));
        if last_clean {
            out.extend_from_slice(&w);
        } else {
            escape_bytes(out, &w);
        }
    }
    let rest = words.remainder();
    if rest.is_empty() {
        return;
    }
    let tail: [u8; 8] = b[b.len() - 8..].try_into().expect("eight bytes");
    if last_clean && !needs_escape(u64::from_le_bytes(tail)) {
        // The word before was written as is: its last bytes are the tail's first ones.
        let len = out.len() - (8 - rest.len());
        out.truncate(len);
        out.extend_from_slice(&tail);
    } else {
        escape_bytes(out, rest);
    }
}

/// Bytes written one at a time, each escaped if it must be.
fn escape_bytes(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &c in b {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => {
                let (hi, lo) = (HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]);
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
                continue;
            }
            _ => {
                out.push(c);
                continue;
            }
        };
        out.extend_from_slice(&[b'\\', short]);
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
