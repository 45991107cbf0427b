//! Safe Harbor's ages (45 CFR 164.514(b)(2)(i)(C)): "all ages over 89 and all elements of dates
//! (including year) indicative of such age" go, or become the single category `90+`. Judged at
//! the disclosure date, not the call's: a person 89 at the call may be 90 when the data leaves.

use crate::model::{Person, Sensitive};
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

/// The two dates an age is judged at: the call (the age the program data reports) and the
/// disclosure (whether the person is over 89 when the data leaves: a person 89 at the call may
/// be 90 by then).
pub(super) struct Ages {
    pub(super) call: Option<NaiveDate>,
    pub(super) disclosure: NaiveDate,
}

/// Whole years from `from` to `to`.
fn years_between(from: NaiveDate, to: NaiveDate) -> i64 {
    let mut years = i64::from(to.year() - from.year());
    if (to.month(), to.day()) < (from.month(), from.day()) {
        years -= 1;
    }
    years
}

/// The person's age at the call: the given age, else from the date of birth.
fn age_at_call(p: &Person, when: &Ages) -> Option<i64> {
    if let Some(a) = &p.age {
        return Some(i64::from(*a.expose()));
    }
    let dob = *p.dob.as_ref()?.expose();
    Some(years_between(dob, when.call.unwrap_or(when.disclosure)))
}

/// Whether the person is, or may be, over 89 at the disclosure date: from the date of birth;
/// else from the age at the call, which may have grown by one more year than the whole years
/// since (the birthday is unknown); else from the lower bound of an age range.
pub(super) fn over_89(p: &Person, when: &Ages) -> bool {
    if let Some(dob) = &p.dob {
        return years_between(*dob.expose(), when.disclosure) > 89;
    }
    let at_least = |a: &Option<Sensitive<u16>>| {
        a.as_ref()
            .is_some_and(|a| i64::from(*a.expose()) + years_since_call(when) > 89)
    };
    at_least(&p.age) || at_least(&p.age_min)
}

/// How many years an age given at the call may have grown by the disclosure: the whole years
/// since, plus one when any day has passed (the birthday may have been among them).
fn years_since_call(when: &Ages) -> i64 {
    match when.call {
        Some(c) if when.disclosure > c => years_between(c, when.disclosure).max(0) + 1,
        _ => 0,
    }
}

/// Safe Harbor's ages: numeric under 90, `"90+"` for anyone over 89 at the disclosure date, and
/// nothing else (an age given only as text never leaves). An age range is kept while every age
/// in it is under 90 at disclosure; one reaching past 89 becomes `"{min}+"`, or `"90+"`.
pub(super) fn generalized_age(p: &Person, field: &str, when: &Ages) -> Option<Value> {
    if field == "age_range" {
        let (lo, hi) = (p.age_min.as_ref()?, p.age_max.as_ref());
        let since = years_since_call(when);
        let lo = i64::from(*lo.expose());
        return Some(match hi.map(|h| i64::from(*h.expose())) {
            _ if lo + since > 89 => json!("90+"),
            Some(hi) if hi + since <= 89 => json!(format!("{lo}-{hi}")),
            _ => json!(format!("{lo}+")),
        });
    }
    if over_89(p, when) {
        return Some(json!("90+"));
    }
    age_at_call(p, when)
        .filter(|a| (0..90).contains(a))
        .map(|a| json!(a))
}
