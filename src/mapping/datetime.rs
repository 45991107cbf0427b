//! Dates and times: a list of formats tried in order, local times placed in an IANA time zone.
//!
//! A local time that does not exist (the spring-forward gap) is an error, never silently shifted
//! to a neighbouring instant. A local time that happens twice (the fall-back hour) is taken with
//! the earlier or the later offset, as the adapter or mapping says (`ambiguous_time`), and
//! flagged (`times.ambiguous`), or rejected: a format without an offset cannot say which, and
//! rejecting it by default lost the incident.
//!
//! The zone is the mapping's `[defaults] timezone` (or a field's own `timezone`), unless the
//! adapter names the agency's zone (`[source] timezone`, or `timezone_by_ori`): a mapping of a
//! national standard (NIBRS) cannot know where the agency is.
//!
//! Errors name the expected form, never the value: a date field can hold a date of birth or an
//! SSN typed into the wrong column, and an incident's own time is a date of the person's.

use chrono::format::{Item, Parsed, StrftimeItems, parse};
use chrono::offset::LocalResult;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;
// The fast `trim`: values reach the parser trimmed, and `str::trim` walked them again.
use super::transform::trim;

pub const DEFAULT_TIMEZONE: &str = "America/New_York";
pub const DEFAULT_DATETIME_FORMATS: &[&str] = &[
    "rfc3339",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
];
pub const DEFAULT_DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"];

/// What a local time that happens twice (the hour repeated when daylight saving time ends)
/// becomes. The default is `earlier`: the first time the clock showed it, the daylight-saving
/// offset; the incident is flagged `times.ambiguous` either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousTime {
    #[default]
    Earlier,
    Later,
    Reject,
}

/// A parsed date-time, and whether its local time happened twice (and an offset was chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub at: DateTime<FixedOffset>,
    pub ambiguous: bool,
}

/// Parses an IANA zone name; the error names the value, which is configuration, not data.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse()
        .map_err(|_| format!("`{name}` is not an IANA time zone (e.g. America/New_York)"))
}

/// The adapter's time settings: they replace the mapping's defaults (not a field's own zone).
#[derive(Debug, Clone, Default)]
pub struct TimeSettings {
    /// The zone of the agency's local times (`[source] timezone`).
    pub zone: Option<Tz>,
    /// Zones by ORI (`[source.timezone_by_ori]`), for a file that carries several agencies: the
    /// ORI is the incident's `source.agency_ori`.
    pub by_ori: std::collections::BTreeMap<String, Tz>,
    /// `[source] ambiguous_time`.
    pub ambiguous: Option<AmbiguousTime>,
}

impl TimeSettings {
    /// The zone for an incident of `ori`: its own in the table, else the adapter's.
    pub fn zone_for(&self, ori: Option<&str>) -> Option<Tz> {
        ori.and_then(|o| self.by_ori.get(trim(o)))
            .copied()
            .or(self.zone)
    }
}

/// One compiled format.
#[derive(Debug, Clone)]
enum Format {
    Rfc3339,
    /// A strftime pattern; `offset` when it carries a UTC offset (`%z`, `%:z`).
    Pattern {
        items: Vec<Item<'static>>,
        offset: bool,
        /// The same pattern read without chrono's general parser, when it is only fixed-width
        /// numbers and literal characters.
        fixed: Option<Fixed>,
    },
}

/// A part of a [`Fixed`] layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Lit(u8),
    /// Year (4 digits), month, day, hour, minute, second (2 digits each): index 0..6.
    Num(usize),
}

/// A layout such as `%m/%d/%Y %H:%M:%S`: every value at a fixed place, read digit by digit.
/// Exports write their times so, and chrono's general parser cost about 6% of `normalize`.
/// It only accepts what chrono accepts with the same result (exact widths, the literal
/// characters as written, a valid date and time); anything else, such as `3/4/2025` or two
/// spaces, goes on to chrono, whose answer stands.
#[derive(Debug, Clone)]
struct Fixed {
    parts: Vec<Part>,
    len: usize,
    /// Whether the layout has a time of day (hour and minute, perhaps second).
    time: bool,
}

impl Fixed {
    fn compile(f: &str) -> Option<Fixed> {
        let mut parts = Vec::new();
        let mut len = 0;
        let mut seen = [false; 6];
        let mut chars = f.bytes();
        while let Some(b) = chars.next() {
            if b != b'%' {
                if !b.is_ascii() || b.is_ascii_digit() {
                    return None;
                }
                parts.push(Part::Lit(b));
                len += 1;
                continue;
            }
            let (i, width) = match chars.next()? {
                b'Y' => (0, 4),
                b'm' => (1, 2),
                b'd' => (2, 2),
                b'H' => (3, 2),
                b'M' => (4, 2),
                b'S' => (5, 2),
                _ => return None,
            };
            if std::mem::replace(&mut seen[i], true) {
                return None;
            }
            parts.push(Part::Num(i));
            len += width;
        }
        // A date, and a time of day as hour and minute (seconds optional), or none of it.
        let time = match seen {
            [true, true, true, false, false, false] => false,
            [true, true, true, true, true, _] => true,
            _ => return None,
        };
        Some(Fixed { parts, len, time })
    }

    /// The local date and time (midnight for a date alone), or `None` to ask chrono.
    fn read(&self, v: &str) -> Option<NaiveDateTime> {
        let b = v.as_bytes();
        if b.len() != self.len {
            return None;
        }
        let mut n = [0u32; 6];
        let mut at = 0;
        for p in &self.parts {
            match *p {
                Part::Lit(c) => {
                    if b[at] != c {
                        return None;
                    }
                    at += 1;
                }
                Part::Num(i) => {
                    let width = if i == 0 { 4 } else { 2 };
                    let mut x = 0;
                    for &d in &b[at..at + width] {
                        if !d.is_ascii_digit() {
                            return None;
                        }
                        x = x * 10 + u32::from(d - b'0');
                    }
                    n[i] = x;
                    at += width;
                }
            }
        }
        let date = NaiveDate::from_ymd_opt(n[0] as i32, n[1], n[2])?;
        if !self.time {
            return Some(date.and_time(chrono::NaiveTime::MIN));
        }
        date.and_hms_opt(n[3], n[4], n[5])
    }
}

impl Format {
    fn compile(f: &str) -> Result<Format, String> {
        if f.eq_ignore_ascii_case("rfc3339") {
            return Ok(Format::Rfc3339);
        }
        let items = StrftimeItems::new(f)
            .parse_to_owned()
            .map_err(|_| format!("`{f}` is not a valid strftime format"))?;
        if items.is_empty() {
            return Err("an empty date/time format".into());
        }
        Ok(Format::Pattern {
            items,
            offset: f.contains("%z") || f.contains("%:z") || f.contains("%#z"),
            fixed: Fixed::compile(f),
        })
    }
}

/// Parses the date and time values of one mapping field (or the mapping's defaults).
#[derive(Debug, Clone)]
pub struct TimeParser {
    tz: Tz,
    /// The field names its own zone: the adapter's zone does not replace it.
    zone_fixed: bool,
    ambiguous: AmbiguousTime,
    /// Shared: a parser is adjusted to an adapter's zone for each record.
    formats: Arc<Formats>,
}

#[derive(Debug)]
struct Formats {
    datetime: Vec<Format>,
    date: Vec<Format>,
    /// The format strings as written, for error messages.
    datetime_src: Vec<String>,
}

impl Default for TimeParser {
    fn default() -> Self {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        TimeParser::new(
            DEFAULT_TIMEZONE,
            &s(DEFAULT_DATETIME_FORMATS),
            &s(DEFAULT_DATE_FORMATS),
        )
        .expect("built-in formats compile")
    }
}

impl TimeParser {
    pub fn new(tz: &str, datetime: &[String], date: &[String]) -> Result<Self, String> {
        let tz = parse_zone(tz)?;
        let compile = |l: &[String]| {
            l.iter()
                .map(|f| Format::compile(f))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TimeParser {
            tz,
            zone_fixed: false,
            ambiguous: AmbiguousTime::default(),
            formats: Arc::new(Formats {
                datetime: compile(datetime)?,
                date: compile(date)?,
                datetime_src: datetime.to_vec(),
            }),
        })
    }

    /// The zone is the field's own: an adapter's zone does not replace it.
    pub fn fixed_zone(mut self) -> Self {
        self.zone_fixed = true;
        self
    }

    pub fn with_ambiguous(mut self, rule: AmbiguousTime) -> Self {
        self.ambiguous = rule;
        self
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// This parser in the adapter's zone (unless the field names its own) and under the
    /// adapter's ambiguous-time rule; borrowed when nothing changes.
    pub fn adjusted(&self, zone: Option<Tz>, ambiguous: Option<AmbiguousTime>) -> Cow<'_, Self> {
        let zone = zone.filter(|z| !self.zone_fixed && *z != self.tz);
        let ambiguous = ambiguous.filter(|a| *a != self.ambiguous);
        if zone.is_none() && ambiguous.is_none() {
            return Cow::Borrowed(self);
        }
        let mut t = self.clone();
        t.tz = zone.unwrap_or(t.tz);
        t.ambiguous = ambiguous.unwrap_or(t.ambiguous);
        Cow::Owned(t)
    }

    /// A timestamp with offset: parsed with the first format that matches; local times are
    /// placed in the zone.
    pub fn datetime(&self, v: &str) -> Result<DateTime<FixedOffset>, String> {
        self.datetime_placed(v).map(|p| p.at)
    }

    /// As [`TimeParser::datetime`], saying whether the local time happened twice.
    pub fn datetime_placed(&self, v: &str) -> Result<Placed, String> {
        let v = trim(v);
        let exact = |at| Placed {
            at,
            ambiguous: false,
        };
        for f in &self.formats.datetime {
            match f {
                Format::Rfc3339 => {
                    if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
                        return Ok(exact(dt));
                    }
                }
                Format::Pattern {
                    items,
                    offset,
                    fixed,
                } => {
                    if let Some(local) = fixed.as_ref().and_then(|f| f.read(v)) {
                        return self.place(local);
                    }
                    let mut p = Parsed::new();
                    if parse(&mut p, v, items.iter()).is_err() {
                        continue;
                    }
                    if *offset {
                        if let Ok(dt) = p.to_datetime() {
                            return Ok(exact(dt));
                        }
                        continue;
                    }
                    // A format with no time of day (`%Y-%m-%d`) gives local midnight.
                    let local = match p.to_naive_datetime_with_offset(0) {
                        Ok(l) => l,
                        Err(_) => match p.to_naive_date() {
                            Ok(d) if p.hour_div_12.is_none() => d.and_time(chrono::NaiveTime::MIN),
                            _ => continue,
                        },
                    };
                    return self.place(local);
                }
            }
        }
        Err(format!(
            "not a date and time in any of the formats [{}]",
            self.formats.datetime_src.join(", ")
        ))
    }

    /// Places a local time in the zone: from the cache of uniform days when its day is one
    /// (see [`super::tzcache`]), else as chrono-tz says.
    pub(super) fn place(&self, local: NaiveDateTime) -> Result<Placed, String> {
        if let Some(at) = super::tzcache::uniform_day_offset(self.tz, &local)
            .and_then(FixedOffset::east_opt)
            .and_then(|o| local.and_local_timezone(o).single())
        {
            return Ok(Placed {
                at,
                ambiguous: false,
            });
        }
        self.place_uncached(local)
    }

    pub(super) fn place_uncached(&self, local: NaiveDateTime) -> Result<Placed, String> {
        let twice = |at: DateTime<Tz>| Placed {
            at: at.fixed_offset(),
            ambiguous: true,
        };
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(dt) => Ok(Placed {
                at: dt.fixed_offset(),
                ambiguous: false,
            }),
            LocalResult::Ambiguous(a, _) if self.ambiguous == AmbiguousTime::Earlier => {
                Ok(twice(a))
            }
            LocalResult::Ambiguous(_, b) if self.ambiguous == AmbiguousTime::Later => Ok(twice(b)),
            LocalResult::Ambiguous(a, b) => Err(format!(
                "the local time happens twice in {} (daylight saving time ends: {} or {}) and `ambiguous_time` is `reject`; the export must carry an offset",
                self.tz,
                a.fixed_offset().offset(),
                b.fixed_offset().offset()
            )),
            LocalResult::None => Err(format!(
                "the local time does not exist in {} (skipped when daylight saving time starts)",
                self.tz
            )),
        }
    }

    /// A calendar date (date of birth). Errors never quote the value: dates of birth identify.
    pub fn date(&self, v: &str) -> Result<NaiveDate, String> {
        let v = trim(v);
        for f in &self.formats.date {
            if let Format::Pattern { items, fixed, .. } = f {
                if let Some(at) = fixed.as_ref().and_then(|f| f.read(v)) {
                    return Ok(at.date());
                }
                let mut p = Parsed::new();
                if parse(&mut p, v, items.iter()).is_ok()
                    && let Ok(d) = p.to_naive_date()
                {
                    return Ok(d);
                }
            }
        }
        Err(format!(
            "not a date in any of the {} configured formats",
            self.formats.date.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the fixed-layout reader accepts, chrono reads the same; it declines the rest.
    #[test]
    fn the_fixed_layout_reader_agrees_with_chrono() {
        let formats = [
            "%m/%d/%Y %H:%M:%S",
            "%m/%d/%Y %H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%m/%d/%Y",
            "%Y%m%d",
        ];
        let values = [
            "03/14/2025 22:15:09",
            "3/14/2025 22:15:09",
            "03/14/2025  22:15:09",
            "02/30/2025 10:00:00",
            "12/31/1999 23:59:60",
            "12/31/1999 24:00:00",
            "13/01/2025 00:00:00",
            "03/14/2025 22:15",
            "2025-03-14T22:15:09",
            "2025-03-14T22:15:09Z",
            "03/14/2025",
            "20250314",
            "2025031",
            "0a/14/2025",
            "+3/14/2025",
            "03-14-2025",
            "02/29/2024",
            "02/29/2023",
        ];
        for f in formats {
            let fixed = Fixed::compile(f).expect("a fixed layout");
            let items = StrftimeItems::new(f).parse_to_owned().unwrap();
            for v in values {
                let mut p = Parsed::new();
                let chrono = parse(&mut p, v, items.iter()).ok().and_then(|()| {
                    p.to_naive_datetime_with_offset(0).ok().or_else(|| {
                        p.to_naive_date()
                            .ok()
                            .map(|d| d.and_time(chrono::NaiveTime::MIN))
                    })
                });
                if let Some(ours) = fixed.read(v) {
                    assert_eq!(Some(ours), chrono, "{f} on {v}");
                }
            }
        }
        assert!(Fixed::compile("%Y-%m-%d %H:%M:%S%.f").is_none());
        assert!(Fixed::compile("%Y-%m-%dT%H:%M:%S%z").is_none());
        assert!(Fixed::compile("%m/%d/%Y %H").is_none());
        assert_eq!(
            Fixed::compile("%m/%d/%Y %H:%M:%S")
                .unwrap()
                .read("03/14/2025 22:15:09"),
            NaiveDate::from_ymd_opt(2025, 3, 14)
                .unwrap()
                .and_hms_opt(22, 15, 9)
        );
    }

    fn ny() -> TimeParser {
        TimeParser::default()
    }

    #[test]
    fn local_times_get_the_zone_offset_of_their_date() {
        assert_eq!(
            ny().datetime("2023-01-01 00:00:05").unwrap().to_rfc3339(),
            "2023-01-01T00:00:05-05:00"
        );
        assert_eq!(
            ny().datetime("2023-07-01 12:00:00").unwrap().to_rfc3339(),
            "2023-07-01T12:00:00-04:00"
        );
        assert_eq!(
            ny().datetime("03/12/2023 14:05").unwrap().to_rfc3339(),
            "2023-03-12T14:05:00-04:00"
        );
    }

    #[test]
    fn offsets_in_the_value_are_kept() {
        assert_eq!(
            ny().datetime("2023-07-01T12:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2023-07-01T12:00:00+02:00"
        );
    }

    #[test]
    fn the_dst_gap_is_an_error_and_the_repeated_hour_follows_the_rule() {
        let gap = ny().datetime("2023-03-12 02:30:00").unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        let at = |rule| {
            ny().with_ambiguous(rule)
                .datetime_placed("2023-11-05 01:30:00")
        };
        let earlier = at(AmbiguousTime::Earlier).unwrap();
        assert_eq!(earlier.at.to_rfc3339(), "2023-11-05T01:30:00-04:00");
        assert!(earlier.ambiguous);
        let later = at(AmbiguousTime::Later).unwrap();
        assert_eq!(later.at.to_rfc3339(), "2023-11-05T01:30:00-05:00");
        let twice = at(AmbiguousTime::Reject).unwrap_err();
        assert!(twice.contains("happens twice"), "{twice}");
        assert!(
            !ny()
                .datetime_placed("2023-11-05 02:30:00")
                .unwrap()
                .ambiguous
        );
    }

    #[test]
    fn the_adapter_zone_replaces_the_mapping_default_but_not_a_field_zone() {
        let hi: Tz = "Pacific/Honolulu".parse().unwrap();
        let v = "2023-07-01 12:00:00";
        let t = ny();
        assert_eq!(
            t.adjusted(Some(hi), None).datetime(v).unwrap().to_rfc3339(),
            "2023-07-01T12:00:00-10:00"
        );
        let fixed = ny().fixed_zone();
        assert_eq!(
            fixed
                .adjusted(Some(hi), None)
                .datetime(v)
                .unwrap()
                .to_rfc3339(),
            "2023-07-01T12:00:00-04:00"
        );
        assert!(matches!(t.adjusted(None, None), Cow::Borrowed(_)));
    }

    #[test]
    fn garbage_and_bad_formats() {
        let e = ny().datetime("219-09-9999").unwrap_err();
        assert!(
            !e.contains("219"),
            "a time error must not quote the value: {e}"
        );
        let e = ny()
            .with_ambiguous(AmbiguousTime::Reject)
            .datetime("2023-11-05 01:30:00")
            .unwrap_err();
        assert!(!e.contains("01:30"), "nor the local time: {e}");
        assert!(ny().datetime("yesterday").is_err());
        assert!(ny().datetime("2023-02-30 10:00:00").is_err());
        assert!(TimeParser::new("Mars/Olympus", &[], &[]).is_err());
        assert!(TimeParser::new("UTC", &["%Q".into()], &[]).is_err());
        let e = ny().date("1985-13-45").unwrap_err();
        assert!(
            !e.contains("1985"),
            "a DOB error must not quote the value: {e}"
        );
    }
}
