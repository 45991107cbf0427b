//! The monthly report's tables, counted from facts ([`super::facts::Fact`]) and suppressed
//! together. Every table's columns and dimensions are listed in docs/reporting.md.

use super::facts::{Fact, UNKNOWN_COUNTY};
use super::table::{Count, Grid, Table, suppress_all};
use crate::model::{Category, Service};
use chrono::{Datelike, Months, NaiveDate};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A calendar month (`YYYY-MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(NaiveDate);

impl Month {
    /// `YYYY-MM`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1).map(Month)
    }

    pub fn of(day: NaiveDate) -> Month {
        Month(day.with_day(1).expect("day 1 exists"))
    }

    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// The first day of the next month.
    pub fn end(self) -> NaiveDate {
        self.0 + Months::new(1)
    }

    pub fn minus(self, n: u32) -> Month {
        Month(self.0 - Months::new(n))
    }

    pub fn contains(self, day: NaiveDate) -> bool {
        day >= self.0 && day < self.end()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m"))
    }
}

/// How many months the trend tables cover, the report's month the last.
pub const TREND_MONTHS: u32 = 12;
/// The longest look-back of a repeat contact.
pub const REPEAT_DAYS: i64 = 90;
/// The shorter one.
pub const REPEAT_SHORT_DAYS: i64 = 30;

/// The first day whose facts a report of `month` reads.
pub fn facts_from(month: Month) -> NaiveDate {
    month.minus(TREND_MONTHS - 1).first_day() - chrono::Duration::days(REPEAT_DAYS)
}

/// The first day whose facts are kept on `today` when `months` months are kept.
pub fn keep_from(today: NaiveDate, months: u32) -> NaiveDate {
    Month::of(today).minus(months).first_day()
}

/// The monthly report: its tables as shown. Serialized, it is the report's JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub month: String,
    pub min_cell: u64,
    pub tables: Vec<Table>,
    /// Time to care (the store adds it: [`super::times`]).
    pub times: Vec<super::times::Timing>,
}

/// What the lifecycle's columns count (the provider's own reports, docs/closed-loop.md).
pub const LIFECYCLE_NOTE: &str = "Accepted and completed count incidents with a referral the provider reported accepted (or, after accepting, in progress, on hold, completed or failed) and completed, as reported by the time of the report; a later report of the same month may show more.";

/// The suppression rule, as the report's footnote states it.
pub fn rule(min_cell: u64) -> String {
    format!(
        "Counts from 1 to {min_cell} are suppressed (shown as –), and further counts are suppressed where a suppressed one could otherwise be computed from the totals (complementary suppression); zero is shown. Percentages use shown counts only."
    )
}

/// The funnel's stages, each a subset of the one before (naloxone: of the incidents).
pub const FUNNEL: [&str; 8] = [
    "incidents",
    "eligible",
    "prss_engaged",
    "consented",
    "referred",
    "accepted",
    "completed",
    "naloxone",
];

fn stage(f: &Fact, s: &str) -> bool {
    match s {
        "incidents" => true,
        "eligible" => f.eligible,
        "prss_engaged" => f.engaged,
        "consented" => f.consented,
        "referred" => !f.referred.is_empty(),
        // Nested under referred by construction, whatever the store says.
        "accepted" => !f.referred.is_empty() && f.accepted,
        "completed" => !f.referred.is_empty() && f.accepted && f.completed,
        "naloxone" => f.naloxone,
        _ => false,
    }
}

const FUNNEL_NESTED: [(usize, usize); 7] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 7)];
const LINKAGE: [&str; 6] = [
    "eligible",
    "prss_engaged",
    "consented",
    "referred",
    "accepted",
    "completed",
];
/// The columns of the tables by county and by agency, each a subset of the one before.
const BY_PLACE: [&str; 4] = ["incidents", "eligible", "prss_engaged", "referred"];
const BY_PLACE_NESTED: [(usize, usize); 3] = [(0, 1), (1, 2), (2, 3)];
const LINKAGE_NESTED: [(usize, usize); 5] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)];

/// Counts facts into a grid whose rows are `rows` (key, filter) and columns `stages`; cell keys
/// are `stage|period|dimension`.
fn grid(
    (id, title): (&str, String),
    period: &str,
    dimension: &str,
    rows: Vec<(String, Vec<&Fact>)>,
    all: &[&Fact],
    stages: &[&str],
    nested: &[(usize, usize)],
) -> Grid {
    let counts = |fs: &[&Fact], dim: &str| -> Vec<Count> {
        stages
            .iter()
            .map(|s| Count {
                key: format!("{s}|{period}|{dim}"),
                value: fs.iter().filter(|f| stage(f, s)).count() as u64,
            })
            .collect()
    };
    Grid {
        id: id.into(),
        title,
        columns: stages.iter().map(|s| s.to_string()).collect(),
        rows: rows
            .iter()
            .map(|(k, fs)| (k.clone(), counts(fs, &format!("{dimension}={k}"))))
            .collect(),
        total: counts(all, "all"),
        nested: nested.to_vec(),
        notes: Vec::new(),
    }
}

fn by<K: Ord + Clone>(fs: &[&Fact], key: impl Fn(&Fact) -> K) -> BTreeMap<K, Vec<usize>> {
    let mut m: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, f) in fs.iter().enumerate() {
        m.entry(key(f)).or_default().push(i);
    }
    m
}

/// The report of `month` from `facts` (at least those from [`facts_from`] to the month's end;
/// others are ignored).
pub fn build(facts: &[Fact], month: Month, min_cell: u64) -> Report {
    let m = month.to_string();
    let in_month: Vec<&Fact> = facts.iter().filter(|f| month.contains(f.day)).collect();
    let pick = |idx: &[usize]| idx.iter().map(|&i| in_month[i]).collect::<Vec<_>>();
    let mut grids = Vec::new();

    // The funnel, by category.
    let cats = by(&in_month, |f| f.category);
    let rows = Category::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_string(),
                pick(cats.get(c).map_or(&[][..], |v| v)),
            )
        })
        .collect();
    let mut g = grid(
        ("funnel", format!("Program funnel by call category, {m}")),
        &m,
        "category",
        rows,
        &in_month,
        &FUNNEL,
        &FUNNEL_NESTED,
    );
    g.notes.push("Each stage counts incidents of the month: eligible under the program's rules; a PRSS engagement recorded; a consent in force; a consented referral made to a provider; the provider accepted one, and reported one completed (linkage to care); naloxone administered (of all incidents).".into());
    g.notes.push(LIFECYCLE_NOTE.into());
    grids.push(g);

    // By county (every county with an incident this month; unknown last).
    let counties = by(&in_month, |f| {
        (f.county == UNKNOWN_COUNTY, f.county.clone())
    });
    let rows = counties
        .iter()
        .map(|((_, c), idx)| (c.clone(), pick(idx)))
        .collect();
    let mut g = grid(
        ("county", format!("Incidents and linkage by county, {m}")),
        &m,
        "county",
        rows,
        &in_month,
        &BY_PLACE,
        &BY_PLACE_NESTED,
    );
    g.notes.push("County of the incident's location; `unknown` when the export names none of West Virginia's 55 counties.".into());
    grids.push(g);

    // By agency.
    let agencies = by(&in_month, |f| f.agency.clone());
    let rows = agencies
        .iter()
        .map(|(a, idx)| (a.clone(), pick(idx)))
        .collect();
    let mut g = grid(
        ("agency", format!("Incidents and linkage by agency, {m}")),
        &m,
        "agency",
        rows,
        &in_month,
        &BY_PLACE,
        &BY_PLACE_NESTED,
    );
    g.notes
        .push("Agency: its ORI as the export gives it, else the adapter that read it.".into());
    grids.push(g);

    grids.push(services(&in_month, &m));
    grids.push(category_trend(facts, month));
    grids.push(linkage_trend(facts, month));
    grids.push(repeats(facts, month));
    Report {
        month: m,
        min_cell,
        tables: suppress_all(&grids, min_cell),
        times: Vec::new(),
    }
}

/// Referrals by service: a referral is one service decided for one incident.
fn services(in_month: &[&Fact], m: &str) -> Grid {
    let count = |s: Option<Service>| -> u64 {
        in_month
            .iter()
            .map(|f| {
                f.referred
                    .iter()
                    .filter(|r| s.is_none_or(|s| **r == s))
                    .count() as u64
            })
            .sum()
    };
    // When no incident was referred for several services, the referrals are the referred
    // incidents: one count, which must be one unknown with the funnel's, or a total hidden there
    // would be shown here.
    let referred = in_month.iter().filter(|f| !f.referred.is_empty()).count() as u64;
    let total_key = if count(None) == referred {
        format!("referred|{m}|all")
    } else {
        format!("referrals|{m}|all")
    };
    Grid {
        id: "services".into(),
        title: format!("Referrals by service, {m}"),
        columns: vec!["referrals".into()],
        rows: Service::ALL
            .iter()
            .map(|s| {
                let key = format!("referrals|{m}|service={}", s.as_str());
                (s.as_str().to_string(), vec![Count { key, value: count(Some(*s)) }])
            })
            .collect(),
        total: vec![Count {
            key: total_key,
            value: count(None),
        }],
        nested: Vec::new(),
        notes: vec![
            "A referral is one service a PRSS recorded for a person, sent to a provider under the person's consent; an incident may have several. Acceptance by service is not broken down: the funnel and the linkage by month count it per incident.".into(),
        ],
    }
}

fn months(month: Month) -> Vec<Month> {
    (0..TREND_MONTHS).rev().map(|i| month.minus(i)).collect()
}

/// Incidents by category (rows) and month (columns), the last 12 months.
fn category_trend(facts: &[Fact], month: Month) -> Grid {
    let ms = months(month);
    let count = |c: Option<Category>, mo: Month| -> u64 {
        facts
            .iter()
            .filter(|f| mo.contains(f.day) && c.is_none_or(|c| f.category == c))
            .count() as u64
    };
    let dim = |c: Option<Category>| c.map_or("all".into(), |c| format!("category={c}"));
    let cells = |c: Option<Category>| -> Vec<Count> {
        ms.iter()
            .map(|mo| Count {
                key: format!("incidents|{mo}|{}", dim(c)),
                value: count(c, *mo),
            })
            .collect()
    };
    Grid {
        id: "category_by_month".into(),
        title: format!("Incidents by call category and month, 12 months to {month}"),
        columns: ms.iter().map(Month::to_string).collect(),
        rows: Category::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), cells(Some(*c))))
            .collect(),
        total: cells(None),
        nested: Vec::new(),
        notes: vec![
            "Months before the gateway ran, or whose facts were removed, count zero.".into(),
        ],
    }
}

/// Linkage to care by month: eligible, engaged, consented, referred, the last 12 months.
fn linkage_trend(facts: &[Fact], month: Month) -> Grid {
    let ms = months(month);
    let all: Vec<&Fact> = facts
        .iter()
        .filter(|f| ms.iter().any(|m| m.contains(f.day)))
        .collect();
    let rows: Vec<(String, Vec<&Fact>)> = ms
        .iter()
        .map(|mo| {
            (
                mo.to_string(),
                all.iter().copied().filter(|f| mo.contains(f.day)).collect(),
            )
        })
        .collect();
    // Each month's row counts the same as that month's funnel total: one key per month.
    let stages = &LINKAGE;
    let mut g = Grid {
        id: "linkage_by_month".into(),
        title: format!("Linkage to care by month, 12 months to {month}"),
        columns: stages.iter().map(|s| s.to_string()).collect(),
        rows: rows
            .iter()
            .map(|(mo, fs)| {
                let cs = stages
                    .iter()
                    .map(|s| Count {
                        key: format!("{s}|{mo}|all"),
                        value: fs.iter().filter(|f| stage(f, s)).count() as u64,
                    })
                    .collect();
                (mo.clone(), cs)
            })
            .collect(),
        total: stages
            .iter()
            .map(|s| Count {
                key: format!("{s}|12 months to {month}|all"),
                value: all.iter().filter(|f| stage(f, s)).count() as u64,
            })
            .collect(),
        nested: LINKAGE_NESTED.to_vec(),
        notes: vec![LIFECYCLE_NOTE.into()],
    };
    g.notes.insert(
        0,
        "Incidents by the month they were received; each stage a subset of the one before.".into(),
    );
    g
}

/// People seen this month (the subjects of eligible incidents, by the report's own token),
/// by how recently they had been seen before.
fn repeats(facts: &[Fact], month: Month) -> Grid {
    let mut days: BTreeMap<&str, BTreeSet<NaiveDate>> = BTreeMap::new();
    for f in facts.iter().filter(|f| f.eligible && f.day < month.end()) {
        if let Some(p) = &f.person {
            days.entry(p).or_default().insert(f.day);
        }
    }
    let (mut within_short, mut within_long, mut not_again) = (0u64, 0u64, 0u64);
    for ds in days.values() {
        // The shortest gap from a contact this month back to the one before it.
        let mut gap: Option<i64> = None;
        let mut seen = false;
        let mut before: Option<NaiveDate> = None;
        for &d in ds {
            if month.contains(d) {
                seen = true;
                if let Some(b) = before {
                    let g = (d - b).num_days();
                    gap = Some(gap.map_or(g, |x| x.min(g)));
                }
            }
            before = Some(d);
        }
        if !seen {
            continue;
        }
        match gap {
            Some(g) if g <= REPEAT_SHORT_DAYS => within_short += 1,
            Some(g) if g <= REPEAT_DAYS => within_long += 1,
            _ => not_again += 1,
        }
    }
    let m = month.to_string();
    let row = |k: &str, v: u64| {
        (
            k.to_string(),
            vec![Count {
                key: format!("persons|{m}|repeat={k}"),
                value: v,
            }],
        )
    };
    Grid {
        id: "repeat_contacts".into(),
        title: format!("People seen again, {m}"),
        columns: vec!["persons".into()],
        rows: vec![
            row("seen_again_within_30_days", within_short),
            row("seen_again_within_31_to_90_days", within_long),
            row("not_seen_in_the_90_days_before", not_again),
        ],
        total: vec![Count {
            key: format!("persons|{m}|all"),
            value: within_short + within_long + not_again,
        }],
        nested: Vec::new(),
        notes: vec!["People are the subjects of eligible incidents, matched across incidents by the gateway's vault (name and date of birth, or SSN) and counted by a token of the report's own, never listed; a person with several contacts this month is counted once, by the shortest gap. A person with nothing to match on counts as not seen before.".into()],
    }
}
