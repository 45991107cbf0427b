//! RFC 3339 output for timestamps without going through `fmt` (the ingest hot path writes four
//! per incident). Same text as chrono's own serializer; unusual values fall back to chrono.

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Timelike};
use serde::Serializer;

pub fn serialize<S: Serializer>(
    v: &Option<DateTime<FixedOffset>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(dt) => {
            let mut buf = [0u8; 25];
            match write(dt, &mut buf) {
                Some(text) => s.serialize_str(text),
                None => s.serialize_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS±HH:MM` (or `Z`), or `None` when chrono's fuller form is needed (fractional
/// seconds, years outside 0..=9999, offsets with seconds).
pub(super) fn write<'b>(dt: &DateTime<FixedOffset>, buf: &'b mut [u8; 25]) -> Option<&'b str> {
    let n = format(dt, buf)?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// [`write`]'s text as bytes, and how many of the 25 it takes (20 or 25): the JSON writer copies
/// the bytes without checking again that digits and separators are UTF-8.
pub(super) fn format(dt: &DateTime<FixedOffset>, buf: &mut [u8; 25]) -> Option<usize> {
    let off = dt.offset().local_minus_utc();
    let dt = dt.naive_local();
    let year = dt.year();
    if dt.nanosecond() != 0 || !(0..=9999).contains(&year) || off % 60 != 0 {
        return None;
    }
    let two = |b: &mut [u8], v: u32| {
        b[0] = b'0' + (v / 10) as u8;
        b[1] = b'0' + (v % 10) as u8;
    };
    let y = year as u32;
    two(&mut buf[0..2], y / 100);
    two(&mut buf[2..4], y % 100);
    buf[4] = b'-';
    two(&mut buf[5..7], dt.month());
    buf[7] = b'-';
    two(&mut buf[8..10], dt.day());
    buf[10] = b'T';
    two(&mut buf[11..13], dt.hour());
    buf[13] = b':';
    two(&mut buf[14..16], dt.minute());
    buf[16] = b':';
    two(&mut buf[17..19], dt.second());
    if off == 0 {
        // chrono writes a zero offset as `Z`.
        buf[19] = b'Z';
        return Some(20);
    }
    buf[19] = if off < 0 { b'-' } else { b'+' };
    let m = off.unsigned_abs() / 60;
    two(&mut buf[20..22], m / 60);
    buf[22] = b':';
    two(&mut buf[23..25], m % 60);
    Some(25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_as_chrono() {
        for t in [
            "2023-01-01T00:00:05-08:00",
            "2026-03-14T22:15:09+05:30",
            "0999-12-31T23:59:59+00:00",
            "2024-02-29T12:00:00.250-05:00",
        ] {
            let dt = DateTime::parse_from_rfc3339(t).unwrap();
            let ours = serde_json::to_string(&SerWrap(Some(dt))).unwrap();
            let chrono = serde_json::to_string(&dt).unwrap();
            assert_eq!(ours, chrono);
        }
    }

    struct SerWrap(Option<DateTime<FixedOffset>>);
    impl serde::Serialize for SerWrap {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }
}
