//! `pnp-gateway report` on a generated program (tests/common/program.rs): every shown count
//! equals the test's own count of what it generated, no output holds a count from 1 to
//! `min_cell`, CSV carries the JSON's tables, and nothing identifying reaches any format.

mod common;

use chrono::{Datelike, NaiveDate};
use common::program::{Generated, Program, SERVICES, generate};
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const MONTH: &str = "2026-10";
const MIN_CELL: u64 = 10;

fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The 12 months to MONTH.
fn months() -> Vec<String> {
    let mut out = Vec::new();
    let (mut y, mut m) = (2026, 10);
    for _ in 0..12 {
        out.push(format!("{y:04}-{m:02}"));
        if m == 1 {
            (y, m) = (y - 1, 12);
        } else {
            m -= 1;
        }
    }
    out.reverse();
    out
}

fn referred(g: &Generated) -> Option<&'static str> {
    g.engaged
        .as_ref()
        .filter(|e| e.consent_for_provider)
        .map(|e| e.service)
}

/// What the provider reports of a referred incident's referral, as the test decides it, by the
/// incident's number: three in four accepted, half of all then completed.
fn lifecycle(g: &Generated) -> (bool, bool) {
    let k = number(g) % 4;
    (k != 0, k == 1 || k == 2)
}

fn number(g: &Generated) -> u64 {
    g.id.rsplit('-').next().unwrap().parse().unwrap()
}

/// Hours from the call to the acceptance the test reports ([`report_statuses`]); the first
/// service comes a day later.
fn hours_to_acceptance(g: &Generated) -> f64 {
    (number(g) % 40 + 1) as f64
}

/// Records the provider's reports of [`lifecycle`] in the store, as the closed loop's channels
/// record them (`referral_events`, by the referral's id), for every referral in the outbox, at
/// [`hours_to_acceptance`] after the call the disclosure stage noted for it.
fn report_statuses(p: &Program) {
    let c = rusqlite::Connection::open(p.cfg.parent().unwrap().join("state/gateway.db")).unwrap();
    let rows: Vec<(String, String, String)> = c
        .prepare(
            "SELECT o.idempotency_key, o.incident_id, l.called_at FROM outbox o
             JOIN referral_links l ON l.outbox_id = o.id WHERE o.profile = 'consented-referral'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let referrals: i64 = c
        .query_row(
            "SELECT count(*) FROM outbox WHERE profile = 'consented-referral'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(rows.len() > 100, "referrals to report on: {}", rows.len());
    assert_eq!(
        rows.len() as i64,
        referrals,
        "every referral is linked to its incident"
    );
    let by_id: BTreeMap<&str, &Generated> =
        p.incidents.iter().map(|g| (g.id.as_str(), g)).collect();
    for (key, id, called) in rows {
        let g = by_id[id.as_str()];
        let called = chrono::DateTime::parse_from_rfc3339(&called).unwrap();
        let accepted = called + chrono::Duration::hours(hours_to_acceptance(g) as i64);
        let served = accepted + chrono::Duration::hours(24);
        let steps: &[(&str, _)] = match lifecycle(g) {
            (true, true) => &[
                ("accepted", accepted),
                ("in-progress", served),
                ("completed", served),
            ],
            (true, false) => &[("accepted", accepted)],
            _ => &[],
        };
        for (st, at) in steps {
            c.execute(
                "INSERT INTO referral_events (referral, status, reason, reported_at, reported_by, recorded_at)
                 VALUES (?1, ?2, NULL, ?3, 'provider-a', ?3)",
                [&key, &st.to_string(), &at.to_rfc3339()],
            )
            .unwrap();
        }
    }
}

/// The nearest-rank percentile, as the test computes it.
fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.max(1) - 1]
}

/// Whether `g` is at `stage` (the report's column names).
fn at(g: &Generated, stage: &str) -> bool {
    match stage {
        "incidents" => true,
        "eligible" => g.eligible,
        "prss_engaged" => g.engaged.is_some(),
        "consented" => g.engaged.as_ref().is_some_and(|e| e.consent_in_force),
        "referred" => referred(g).is_some(),
        "accepted" => referred(g).is_some() && lifecycle(g).0,
        "completed" => referred(g).is_some() && lifecycle(g).1,
        "naloxone" => g.naloxone,
        other => panic!("unknown column {other}"),
    }
}

/// The test's own count of one cell of one table.
fn expected(p: &Program, table: &str, row: &str, column: &str) -> u64 {
    let in_month = |g: &&Generated| month_of(g.day) == MONTH;
    let count = |f: &dyn Fn(&Generated) -> bool| p.incidents.iter().filter(|g| f(g)).count() as u64;
    let total = row == "total";
    match table {
        "funnel" => count(&|g| in_month(&g) && (total || g.category == row) && at(g, column)),
        "county" => count(&|g| in_month(&g) && (total || g.county == row) && at(g, column)),
        "agency" => count(&|g| in_month(&g) && (total || g.agency == row) && at(g, column)),
        "services" => count(&|g| in_month(&g) && referred(g).is_some_and(|s| total || s == row)),
        "category_by_month" => {
            count(&|g| month_of(g.day) == column && (total || g.category == row))
        }
        "linkage_by_month" => count(&|g| {
            let m = month_of(g.day);
            (if total {
                months().contains(&m)
            } else {
                m == row
            }) && at(g, column)
        }),
        "repeat_contacts" => {
            // People: subjects of eligible incidents; the gap from a contact this month back to
            // the person's last contact on an earlier day.
            let mut days: BTreeMap<usize, BTreeSet<NaiveDate>> = BTreeMap::new();
            for g in p.incidents.iter().filter(|g| g.eligible) {
                days.entry(g.person).or_default().insert(g.day);
            }
            let mut n = [0u64; 3];
            for ds in days.values() {
                let here: Vec<&NaiveDate> = ds.iter().filter(|d| month_of(**d) == MONTH).collect();
                if here.is_empty() {
                    continue;
                }
                let gap = here
                    .iter()
                    .filter_map(|d| ds.range(..**d).next_back().map(|b| (**d - *b).num_days()))
                    .min();
                n[match gap {
                    Some(g) if g <= 30 => 0,
                    Some(g) if g <= 90 => 1,
                    _ => 2,
                }] += 1;
            }
            match row {
                "seen_again_within_30_days" => n[0],
                "seen_again_within_31_to_90_days" => n[1],
                "not_seen_in_the_90_days_before" => n[2],
                "total" => n.iter().sum(),
                other => panic!("unknown row {other}"),
            }
        }
        other => panic!("unknown table {other}"),
    }
}

fn report(p: &Program, format: &str) -> String {
    success(&cli(
        &["report", "--month", MONTH, "--format", format],
        &p.cfg,
    ))
}

#[test]
fn every_shown_count_is_the_independent_count_and_none_is_small() {
    let p = generate(16, 2400, 400);
    report_statuses(&p);
    let json: Value = serde_json::from_str(&report(&p, "json")).unwrap();
    assert_eq!(json["month"], MONTH);
    assert_eq!(json["min_cell"], MIN_CELL);
    let tables = json["tables"].as_array().unwrap();
    // The lifecycle's columns carry counts (12 months of them are above the threshold).
    let linkage = &tables[5];
    let col = |c: &str| {
        let j = linkage["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|x| x == c)
            .unwrap();
        linkage["total"]["values"][j].as_u64()
    };
    assert!(col("accepted").is_some_and(|n| n > MIN_CELL), "{linkage}");
    assert!(col("completed").is_some_and(|n| n > MIN_CELL), "{linkage}");
    // Time to care, from the test's own hours over the month's accepted referrals.
    let accepted: Vec<f64> = p
        .incidents
        .iter()
        .filter(|g| month_of(g.day) == MONTH && at(g, "accepted"))
        .map(hours_to_acceptance)
        .collect();
    let served: Vec<f64> = p
        .incidents
        .iter()
        .filter(|g| month_of(g.day) == MONTH && at(g, "completed"))
        .map(|g| hours_to_acceptance(g) + 24.0)
        .collect();
    let times = json["times"].as_array().unwrap();
    assert_eq!(times[0]["id"], "call_to_acceptance");
    let shown =
        |xs: &Vec<f64>, q: f64| (xs.len() as u64 > MIN_CELL).then(|| percentile(xs.clone(), q));
    for (t, xs) in times.iter().zip([&accepted, &served]) {
        assert_eq!(
            t["median_hours"].as_f64(),
            shown(xs, 50.0),
            "{t} {}",
            xs.len()
        );
        assert_eq!(t["p90_hours"].as_f64(), shown(xs, 90.0), "{t}");
    }
    assert!(
        times[0]["median_hours"].is_number(),
        "{times:?}: {}",
        accepted.len()
    );
    let ids: Vec<&str> = tables.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "funnel",
            "county",
            "agency",
            "services",
            "category_by_month",
            "linkage_by_month",
            "repeat_contacts"
        ]
    );
    let (mut shown, mut suppressed, mut zero) = (0, 0, 0);
    for t in tables {
        let id = t["id"].as_str().unwrap();
        let obj = t.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, ["columns", "id", "rows", "title", "total"], "{id}");
        let columns: Vec<&str> = t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let rows = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap(), &r["values"]))
            .chain(std::iter::once(("total", &t["total"]["values"])));
        for (row, values) in rows {
            let values = values.as_array().unwrap();
            assert_eq!(values.len(), columns.len(), "{id} {row}");
            for (c, v) in columns.iter().zip(values) {
                let truth = expected(&p, id, row, c);
                match v.as_u64() {
                    Some(n) => {
                        assert_eq!(n, truth, "{id} / {row} / {c}");
                        assert!(!(1..=MIN_CELL).contains(&n), "{id} / {row} / {c}: {n}");
                        shown += 1;
                        zero += (n == 0) as u32;
                    }
                    None => {
                        assert!(v.is_null(), "{id} / {row} / {c}: {v}");
                        assert!(truth > 0, "a zero is shown: {id} / {row} / {c}");
                        suppressed += 1;
                    }
                }
            }
        }
    }
    // One count shown in several tables is shown in all or in none (else the one would give
    // the other back): the report month's totals and rows that several tables carry.
    let mut same: BTreeMap<String, BTreeSet<bool>> = BTreeMap::new();
    for t in tables {
        let id = t["id"].as_str().unwrap();
        let columns = t["columns"].as_array().unwrap();
        let rows = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap(), &r["values"]))
            .chain(std::iter::once(("total", &t["total"]["values"])));
        for (row, values) in rows {
            for (c, v) in columns.iter().zip(values.as_array().unwrap()) {
                let c = c.as_str().unwrap();
                let identity = match (id, row, c) {
                    ("funnel" | "county" | "agency", "total", c) => Some(format!("{c} total")),
                    ("linkage_by_month", MONTH, c) => Some(format!("{c} total")),
                    ("category_by_month", "total", MONTH) => Some("incidents total".into()),
                    ("category_by_month", r, MONTH) => Some(format!("incidents {r}")),
                    ("funnel", r, "incidents") => Some(format!("incidents {r}")),
                    // Every generated referral has one service: referrals = referred incidents.
                    ("services", "total", _) => Some("referred total".into()),
                    _ => None,
                };
                if let Some(k) = identity {
                    same.entry(k).or_default().insert(v.is_null());
                }
            }
        }
    }
    for (k, states) in &same {
        assert_eq!(
            states.len(),
            1,
            "`{k}` is shown in one table and suppressed in another"
        );
    }
    assert!(same.len() >= 14, "{same:?}");

    // The generated program is big enough that most counts are shown, and some are not.
    eprintln!("shown {shown} (zero {zero}), suppressed {suppressed}");
    assert!(
        shown > 150 && suppressed > 10 && zero > 5,
        "shown {shown}, suppressed {suppressed}, zero {zero}"
    );
    // Every row the test expects is there: the services and categories are listed in full.
    let services = &tables[3]["rows"];
    assert_eq!(services.as_array().unwrap().len(), SERVICES.len());

    // CSV: the same cells (an empty value for a suppressed one).
    let csv = report(&p, "csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("table,title,row,column,value"));
    let mut from_csv = BTreeMap::new();
    let mut r = ::csv::Reader::from_reader(csv.as_bytes());
    let mut times_csv = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        if &rec[0] == "times" {
            let v = (!rec[4].is_empty()).then(|| rec[4].parse::<f64>().unwrap());
            times_csv.insert((rec[2].to_string(), rec[3].to_string()), v);
            continue;
        }
        let v = (!rec[4].is_empty()).then(|| rec[4].parse::<u64>().unwrap());
        if let Some(n) = v {
            assert!(!(1..=MIN_CELL).contains(&n));
        }
        from_csv.insert(
            (rec[0].to_string(), rec[2].to_string(), rec[3].to_string()),
            v,
        );
    }
    let mut from_json = BTreeMap::new();
    for t in tables {
        let cols = t["columns"].as_array().unwrap();
        for row in t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap(), &r["values"]))
            .chain(std::iter::once(("total", &t["total"]["values"])))
        {
            for (c, v) in cols.iter().zip(row.1.as_array().unwrap()) {
                from_json.insert(
                    (
                        t["id"].as_str().unwrap().to_string(),
                        row.0.to_string(),
                        c.as_str().unwrap().to_string(),
                    ),
                    v.as_u64(),
                );
            }
        }
    }
    assert_eq!(from_csv, from_json);
    let mut times_json = BTreeMap::new();
    for t in json["times"].as_array().unwrap() {
        for c in ["median_hours", "p90_hours"] {
            times_json.insert(
                (t["id"].as_str().unwrap().to_string(), c.to_string()),
                t[c].as_f64(),
            );
        }
    }
    assert_eq!(times_csv, times_json);

    // Nothing identifying in any format.
    let html = report(&p, "html");
    for text in [&csv, &html, &serde_json::to_string(&json).unwrap()] {
        for v in &p.identifying {
            assert!(
                !text.contains(v.as_str()),
                "an identifying value reached the report"
            );
        }
    }
}

#[test]
fn an_aggregate_destination_gets_no_row_and_a_bad_month_or_threshold_is_refused() {
    let p = generate(7, 60, 30);
    // The aggregate destination has no per-incident decision: nothing queued, nothing audited.
    assert_eq!(
        store_count(
            &p.cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'dhhr-counts'"
        ),
        0
    );
    assert_eq!(
        store_count(
            &p.cfg,
            "SELECT count(*) FROM audit WHERE destination = 'dhhr-counts'"
        ),
        0
    );
    assert_eq!(store_count(&p.cfg, "SELECT count(*) FROM report_facts"), 60);
    let o = cli(&["report", "--month", "2026-13"], &p.cfg);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("YYYY-MM"));
    let text = std::fs::read_to_string(&p.cfg).unwrap();
    std::fs::write(
        &p.cfg,
        text.replace("min_cell = 10", "min_cell = 0\nkeep_months = 14"),
    )
    .unwrap();
    let o = cli(&["check"], &p.cfg);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("keep_months"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("min_cell"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&p.cfg, text.replace("[report]\nmin_cell = 10", "[report]\nmin_cell = 10\n[[destination]]\nid = \"x\"\nprofile = \"aggregate\"\nfields = { category = \"keep\" }")).unwrap();
    let o = cli(&["check"], &p.cfg);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("counts, never a field"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_aggregate_destination_is_sent_last_months_report_once_audited() {
    let p = generate(3, 300, 60);
    let text = std::fs::read_to_string(&p.cfg).unwrap();
    std::fs::write(
        &p.cfg,
        text.replace(
            "id = \"dhhr-counts\"\nprofile = \"aggregate\"",
            "id = \"dhhr-counts\"\nprofile = \"aggregate\"\ndeliver = { kind = \"file\", folder = \"deliveries/dhhr-counts\" }",
        ),
    )
    .unwrap();
    // TODAY is in 2026-11: October's report is owed.
    success(&cli(&["run", "--once"], &p.cfg));
    success(&cli(&["run", "--once"], &p.cfg));
    let folder = p.cfg.parent().unwrap().join("deliveries/dhhr-counts");
    let mut lines = Vec::new();
    for e in std::fs::read_dir(&folder).unwrap() {
        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
        lines.extend(t.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    assert_eq!(lines.len(), 1, "one report, sent once");
    let json: Value = serde_json::from_str(&report(&p, "json")).unwrap();
    assert_eq!(
        lines[0]["payload"], json,
        "the destination gets what `report` prints"
    );
    assert_eq!(
        store_count(
            &p.cfg,
            "SELECT count(*) FROM audit WHERE destination = 'dhhr-counts' AND decision = 'deliver' AND fields LIKE '%report.funnel%' AND payload_digest IS NOT NULL"
        ),
        1
    );
    assert_eq!(outbox_count(&p.cfg, "dhhr-counts", "delivered"), 1);
    success(&cli(&["audit", "verify"], &p.cfg));

    // Facts older than `keep_months` (counted back from TODAY's month, 2026-11) are removed.
    let text = std::fs::read_to_string(&p.cfg).unwrap();
    std::fs::write(
        &p.cfg,
        text.replace("min_cell = 10", "min_cell = 10\nkeep_months = 15"),
    )
    .unwrap();
    let kept = p
        .incidents
        .iter()
        .filter(|g| g.day >= NaiveDate::from_ymd_opt(2025, 8, 1).unwrap())
        .count() as i64;
    assert!(kept < 300, "some generated incidents are older");
    assert_eq!(
        store_count(&p.cfg, "SELECT count(*) FROM report_facts"),
        300
    );
    success(&cli(&["run", "--once"], &p.cfg));
    assert_eq!(
        store_count(&p.cfg, "SELECT count(*) FROM report_facts"),
        kept
    );
    assert_eq!(
        store_count(
            &p.cfg,
            "SELECT count(*) FROM report_facts WHERE day < '2025-08-01'"
        ),
        0
    );
}

/// docs/reporting.md names every table, column and fixed row of the report.
#[test]
fn the_reporting_doc_lists_every_table_column_and_dimension() {
    let doc = std::fs::read_to_string(repo().join("docs/reporting.md")).unwrap();
    let month = pnp_gateway::report::Month::parse(MONTH).unwrap();
    let r = pnp_gateway::report::build(&[], month, MIN_CELL);
    assert_eq!(r.tables.len(), 7);
    for t in &r.tables {
        assert!(doc.contains(&format!("`{}`", t.id)), "table {}", t.id);
        for c in t
            .columns
            .iter()
            .filter(|c| pnp_gateway::report::Month::parse(c).is_none())
        {
            assert!(doc.contains(&format!("`{c}`")), "column {c} of {}", t.id);
        }
        if !["county", "agency", "linkage_by_month"].contains(&t.id.as_str()) {
            for row in &t.rows {
                assert!(
                    doc.contains(&format!("`{}`", row.key)),
                    "row {} of {}",
                    row.key,
                    t.id
                );
            }
        }
    }
    for word in ["min_cell", "complementary", "Zero is shown", "Percentages"] {
        assert!(doc.contains(word), "{word}");
    }
}
