//! A cache of the UTC offset of whole local days, so that placing a local time in its zone is
//! not a binary search over the zone's transitions for every timestamp (about 5% of
//! `normalize`'s CPU time on a CAD export with four times per record).
//!
//! Only a day whose every second has one offset and is neither skipped nor repeated is cached;
//! any other day (a daylight-saving change, a zone's odd historical shift) is never cached and
//! goes through chrono-tz every time, so the spring gap's error and the repeated hour's rule stay
//! exactly as [`super::datetime`] decides them. A day is taken as uniform when its first and last
//! second are each a single local time of the same offset, and the offset of every half hour of
//! UTC between them is that offset too: a zone would have to change its offset and back within
//! half an hour to fool that, and the tests compare both paths over every hour and half hour of
//! several decades in zones with odd transitions.
//!
//! The table is global and lock-free: each slot is one atomic word holding its whole key (zone
//! and day) beside the offset, so a reader either finds its own key or computes; threads that
//! race on a slot can only replace one correct entry with another.

use chrono::offset::LocalResult;
use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;
static DAYS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// Offsets are within a day either way (chrono-tz's are under 24 h): 18 bits with this bias.
const OFFSET_BIAS: i32 = 1 << 17;
/// Days from the common era fit in 28 bits for every date chrono represents.
const DAY_BITS: u32 = 28;
const ZONE_BITS: u32 = 10;

/// The key of (zone, day), or `None` when it does not fit the packing (never for chrono-tz's
/// 597 zones and chrono's dates; the caller then computes).
fn key(tz: Tz, day: NaiveDate) -> Option<u64> {
    let zone = tz as u64;
    if zone >= 1 << ZONE_BITS {
        return None;
    }
    let day = u64::from(day.num_days_from_ce() as u32) & ((1 << DAY_BITS) - 1);
    Some(day << ZONE_BITS | zone)
}

fn slot(key: u64) -> &'static AtomicU64 {
    &DAYS[(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize]
}

/// The offset (seconds east of UTC) of `local` in `tz` when its whole day has one offset and
/// no skipped or repeated time; `None` otherwise (the caller asks chrono-tz).
pub fn uniform_day_offset(tz: Tz, local: &NaiveDateTime) -> Option<i32> {
    let day = local.date();
    let key = key(tz, day)?;
    let slot = slot(key);
    let entry = slot.load(Ordering::Relaxed);
    if entry & 1 == 1 && entry >> 19 == key {
        return Some(((entry >> 1) & ((1 << 18) - 1)) as i32 - OFFSET_BIAS);
    }
    let offset = compute(tz, day)?;
    slot.store(
        key << 19 | ((offset + OFFSET_BIAS) as u64) << 1 | 1,
        Ordering::Relaxed,
    );
    Some(offset)
}

/// The one offset of the whole day, if it has one (see the module's comment).
fn compute(tz: Tz, day: NaiveDate) -> Option<i32> {
    let single = |t: NaiveDateTime| match tz.offset_from_local_datetime(&t) {
        LocalResult::Single(o) => Some(o.fix().local_minus_utc()),
        _ => None,
    };
    let first = day.and_time(NaiveTime::MIN);
    let last = day.and_hms_opt(23, 59, 59)?;
    let offset = single(first)?;
    if single(last)? != offset || !(-OFFSET_BIAS < offset && offset < OFFSET_BIAS) {
        return None;
    }
    let shift = chrono::TimeDelta::try_seconds(i64::from(offset))?;
    let (from, to) = (
        first.checked_sub_signed(shift)?,
        last.checked_sub_signed(shift)?,
    );
    let step = chrono::TimeDelta::try_minutes(30)?;
    let mut utc = from;
    while utc < to {
        if tz.offset_from_utc_datetime(&utc).fix().local_minus_utc() != offset {
            return None;
        }
        utc = utc.checked_add_signed(step)?;
    }
    // The day after must exist for the packing's day arithmetic to be meaningful.
    day.checked_add_days(Days::new(1))?;
    Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::datetime::{AmbiguousTime, Placed, TimeParser};

    /// Every hour and half hour of 1970–2040 through the cached path and chrono-tz alone: the
    /// same result or the same error. A day the cache declines is also tried a minute either
    /// side of each, under each ambiguous-time rule (St John's changed at 00:01 until 2011).
    #[test]
    fn the_cached_offsets_agree_with_chrono_tz_in_every_hour() {
        let zones = [
            "America/New_York",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Pacific/Chatham",
            "Europe/Dublin",
            "Pacific/Honolulu",
        ];
        // The offset too: `DateTime` equality compares instants only.
        let shown = |r: Result<Placed, String>| r.map(|p| (p.at.to_rfc3339(), p.ambiguous));
        let (mut cached_days, mut other_days) = (0, 0);
        for name in zones {
            let tz: Tz = name.parse().unwrap();
            let parsers = [
                AmbiguousTime::Earlier,
                AmbiguousTime::Later,
                AmbiguousTime::Reject,
            ]
            .map(|rule| {
                let p = TimeParser::new(name, &["%Y-%m-%d %H:%M:%S".to_string()], &[]).unwrap();
                (rule, p.with_ambiguous(rule))
            });
            let mut day = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let end = NaiveDate::from_ymd_opt(2040, 12, 31).unwrap();
            while day <= end {
                let midnight = day.and_time(NaiveTime::MIN);
                let cached = uniform_day_offset(tz, &midnight).is_some();
                let (deltas, rules) = if cached {
                    cached_days += 1;
                    (&[0i64][..], &parsers[..1])
                } else {
                    other_days += 1;
                    (&[-1i64, 0, 1][..], &parsers[..])
                };
                for minute in (0..24 * 60).step_by(30) {
                    for delta in deltas {
                        let t = midnight + chrono::TimeDelta::try_minutes(minute + delta).unwrap();
                        for (rule, p) in rules {
                            assert_eq!(
                                shown(p.place(t)),
                                shown(p.place_uncached(t)),
                                "{name} at {t} ({rule:?})"
                            );
                        }
                    }
                }
                day = day.succ_opt().unwrap();
            }
        }
        // Both paths are exercised: most days of a zone have one offset, and each change is a
        // day the cache leaves to chrono-tz.
        assert!(cached_days > 6 * 25_000, "{cached_days}");
        assert!(other_days > 5 * 2 * 30, "{other_days}");
    }

    /// The days of a daylight-saving change are never cached, and a cached day reads its offset.
    #[test]
    fn transition_days_are_not_cached() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let at = |y, m, d| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
        };
        assert_eq!(uniform_day_offset(ny, &at(2025, 3, 9)), None);
        assert_eq!(uniform_day_offset(ny, &at(2025, 11, 2)), None);
        assert_eq!(uniform_day_offset(ny, &at(2025, 3, 8)), Some(-5 * 3600));
        assert_eq!(uniform_day_offset(ny, &at(2025, 3, 10)), Some(-4 * 3600));
        // Twice: the second answer comes from the table.
        assert_eq!(uniform_day_offset(ny, &at(2025, 3, 10)), Some(-4 * 3600));
        let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        // Lord Howe moves its clocks by half an hour, at 02:00 in October.
        assert_eq!(uniform_day_offset(lord_howe, &at(2025, 10, 5)), None);
        assert_eq!(
            uniform_day_offset(lord_howe, &at(2025, 10, 6)),
            Some(11 * 3600)
        );
    }
}
