//! Dates and times: a list of formats tried in order, local times placed in an IANA time zone.
//!
//! A local time that does not exist (the spring-forward gap) or happens twice (the fall-back
//! hour) is an error naming which, never silently shifted to a neighbouring instant.
//!
//! Errors name the expected form, never the value: a date field can hold a date of birth or an
//! SSN typed into the wrong column, and an incident's own time is a date of the person's.

use chrono::format::{Item, Parsed, StrftimeItems, parse};
use chrono::offset::LocalResult;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

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

/// One compiled format.
#[derive(Debug, Clone)]
enum Format {
    Rfc3339,
    /// A strftime pattern; `offset` when it carries a UTC offset (`%z`, `%:z`).
    Pattern {
        items: Vec<Item<'static>>,
        offset: bool,
    },
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
        })
    }
}

/// Parses the date and time values of one mapping field (or the mapping's defaults).
#[derive(Debug, Clone)]
pub struct TimeParser {
    tz: Tz,
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
        let tz: Tz = tz
            .parse()
            .map_err(|_| format!("`{tz}` is not an IANA time zone (e.g. America/New_York)"))?;
        let compile = |l: &[String]| {
            l.iter()
                .map(|f| Format::compile(f))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TimeParser {
            tz,
            datetime: compile(datetime)?,
            date: compile(date)?,
            datetime_src: datetime.to_vec(),
        })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// A timestamp with offset: parsed with the first format that matches; local times are
    /// placed in the zone.
    pub fn datetime(&self, v: &str) -> Result<DateTime<FixedOffset>, String> {
        let v = v.trim();
        for f in &self.datetime {
            match f {
                Format::Rfc3339 => {
                    if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
                        return Ok(dt);
                    }
                }
                Format::Pattern { items, offset } => {
                    let mut p = Parsed::new();
                    if parse(&mut p, v, items.iter()).is_err() {
                        continue;
                    }
                    if *offset {
                        if let Ok(dt) = p.to_datetime() {
                            return Ok(dt);
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
            self.datetime_src.join(", ")
        ))
    }

    fn place(&self, local: NaiveDateTime) -> Result<DateTime<FixedOffset>, String> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(dt) => Ok(dt.fixed_offset()),
            LocalResult::Ambiguous(a, b) => Err(format!(
                "the local time happens twice in {} (daylight saving time ends: {} or {}); the export must carry an offset",
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
        let v = v.trim();
        for f in &self.date {
            if let Format::Pattern { items, .. } = f {
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
            self.date.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dst_gap_and_overlap_are_errors() {
        let gap = ny().datetime("2023-03-12 02:30:00").unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        let twice = ny().datetime("2023-11-05 01:30:00").unwrap_err();
        assert!(twice.contains("happens twice"), "{twice}");
    }

    #[test]
    fn garbage_and_bad_formats() {
        let e = ny().datetime("219-09-9999").unwrap_err();
        assert!(
            !e.contains("219"),
            "a time error must not quote the value: {e}"
        );
        let e = ny().datetime("2023-11-05 01:30:00").unwrap_err();
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
