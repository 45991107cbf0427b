//! The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.
//! The pieces ([`page`], [`table`], the charts in [`super::svg`]) are public so that another
//! page (the operator's status page) renders its tables the same way.

use super::{esc, label, shown, svg, table as find};
use crate::report::build::{FUNNEL, rule};
use crate::report::{Report, Table};
use std::fmt::Write;

/// The page's style: print-friendly, readable without the network.
pub const STYLE: &str = "body{font-family:sans-serif;margin:24px auto;max-width:760px;color:#222}h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right}tr.total td{font-weight:bold;background:#f4f4f4}p.note{font-size:12px;color:#555;margin:2px 0}.rule{border:1px solid #999;padding:8px;background:#fafafa;font-size:13px}";

/// A whole page around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// A table: its title, its rows and total row (`–` for a suppressed count), its footnotes.
pub fn table(t: &Table) -> String {
    let mut s = format!(
        "<h2 id=\"{}\">{}</h2>\n<table><thead><tr><th></th>",
        esc(&t.id),
        esc(&t.title)
    );
    for c in &t.columns {
        let _ = write!(s, "<th>{}</th>", esc(&label(c)));
    }
    s.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        let _ = write!(s, "<tr><td>{}</td>", esc(&label(&r.key)));
        for v in &r.values {
            let _ = write!(s, "<td class=\"n\">{}</td>", shown(*v));
        }
        s.push_str("</tr>");
    }
    s.push_str("<tr class=\"total\"><td>Total</td>");
    for v in &t.total.values {
        let _ = write!(s, "<td class=\"n\">{}</td>", shown(*v));
    }
    s.push_str("</tr></tbody></table>\n");
    for n in &t.notes {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", esc(n));
    }
    s
}

fn column(t: &Table, c: &str) -> Vec<Option<u64>> {
    let j = t
        .columns
        .iter()
        .position(|x| x == c)
        .expect("the column exists");
    t.rows.iter().map(|r| r.values[j]).collect()
}

fn total(t: &Table, c: &str) -> Option<u64> {
    let j = t.columns.iter().position(|x| x == c)?;
    t.total.values[j]
}

/// The monthly report.
pub fn report(r: &Report, program: &str) -> String {
    let mut b = format!(
        "<h1>{} — monthly program report, {}</h1>\n<p>Counts only: no record of a person or an incident is in this report.</p>\n<p class=\"rule\"><b>Small-cell suppression:</b> {}</p>\n",
        esc(program),
        esc(&r.month),
        esc(&rule(r.min_cell))
    );
    if let Some(f) = find(r, "funnel") {
        // The nested stages (naloxone, the last, is of all incidents: not a funnel step).
        let stages: Vec<(String, Option<u64>, String)> = FUNNEL[..FUNNEL.len() - 1]
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let v = total(f, s);
                let note = if k == 0 {
                    String::new()
                } else {
                    Table::percent(v, total(f, FUNNEL[k - 1]))
                        .map(|p| format!("({p:.0}% of {})", label(FUNNEL[k - 1]).to_lowercase()))
                        .unwrap_or_default()
                };
                (label(s), v, note)
            })
            .collect();
        b += &format!("<h2>Funnel, {}</h2>\n", esc(&r.month));
        b += &svg::bars("Program funnel", &stages);
    }
    if let Some(t) = find(r, "category_by_month") {
        b += "<h2>Incidents by call category and month</h2>\n";
        let series: Vec<(String, Vec<Option<u64>>)> = t
            .rows
            .iter()
            .map(|row| (label(&row.key), row.values.clone()))
            .collect();
        b += &svg::columns(&t.title, &t.columns, &series, Some(&t.total.values));
    }
    if let Some(t) = find(r, "services") {
        b += &format!("<h2>Referrals by service, {}</h2>\n", esc(&r.month));
        let items: Vec<(String, Option<u64>, String)> = t
            .rows
            .iter()
            .map(|row| (label(&row.key), row.values[0], String::new()))
            .collect();
        b += &svg::bars(&t.title, &items);
    }
    if let Some(t) = find(r, "linkage_by_month") {
        b += "<h2>Linkage to care by month</h2>\n";
        let months: Vec<String> = t.rows.iter().map(|row| row.key.clone()).collect();
        let series: Vec<(String, Vec<Option<u64>>)> =
            ["eligible", "prss_engaged", "referred", "accepted"]
                .iter()
                .map(|c| (label(c), column(t, c)))
                .collect();
        b += &svg::columns(&t.title, &months, &series, None);
    }
    if !r.times.is_empty() {
        b += &format!(
            "<h2>Time to care, {}</h2>\n<table><thead><tr><th></th><th>Median (hours)</th><th>90th percentile (hours)</th></tr></thead><tbody>",
            esc(&r.month)
        );
        for t in &r.times {
            let h = |v: Option<f64>| v.map_or_else(|| "–".into(), |h| format!("{h:.1}"));
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&label(&t.id)),
                h(t.median_hours),
                h(t.p90_hours)
            );
        }
        let _ = writeln!(
            b,
            "</tbody></table>\n<p class=\"note\">From the call's receipt to the provider's reported time of acceptance, and of the first service (in progress, or completed), over the month's consented referrals; shown only when more than {} referrals were timed (–: fewer).</p>",
            r.min_cell
        );
    }
    b += "<h2>Tables</h2>\n";
    for t in &r.tables {
        b += &table(t);
    }
    let _ = writeln!(
        b,
        "<p class=\"note\">Threshold (min_cell): {}. Generated by pnp-gateway from its store.</p>",
        r.min_cell
    );
    page(&format!("{program} — program report {}", r.month), &b)
}
