//! The report's formats: JSON (the tables as they are), CSV (one line per shown or suppressed
//! cell) and HTML ([`html`]). Every format renders the same [`Table`]s, which hold only shown
//! counts: no format can print what suppression hid.

pub mod html;
pub mod svg;

use super::{Report, Table};

/// `{"month", "min_cell", "tables": [...]}`, `null` for a suppressed count.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report serializes") + "\n"
}

/// `table,title,row,column,value`: one line per cell, the total row as `total`, an empty value
/// for a suppressed count; then the time-to-care figures as table `times` (empty: too few).
pub fn csv(r: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["table", "title", "row", "column", "value"])
        .expect("writing to memory");
    for t in &r.tables {
        let rows = t
            .rows
            .iter()
            .map(|row| (row.key.as_str(), &row.values))
            .chain(std::iter::once(("total", &t.total.values)));
        for (key, values) in rows {
            for (c, v) in t.columns.iter().zip(values) {
                let v = v.map(|n| n.to_string()).unwrap_or_default();
                w.write_record([t.id.as_str(), t.title.as_str(), key, c, &v])
                    .expect("writing to memory");
            }
        }
    }
    for t in &r.times {
        for (c, v) in [("median_hours", t.median_hours), ("p90_hours", t.p90_hours)] {
            let v = v.map(|h| h.to_string()).unwrap_or_default();
            w.write_record(["times", t.title.as_str(), t.id.as_str(), c, &v])
                .expect("writing to memory");
        }
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("UTF-8 in, UTF-8 out")
}

/// A shown count as text, `–` for a suppressed one.
pub fn shown(v: Option<u64>) -> String {
    v.map_or_else(|| "–".into(), |n| n.to_string())
}

/// A column's or row's name for people: `prss_engaged` → `PRSS engaged`. A key that is not a
/// snake_case word (a county, a month, an ORI, an adapter's name) is shown as it is.
pub fn label(key: &str) -> String {
    if !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return key.to_string();
    }
    let words: Vec<String> = key
        .split('_')
        .map(|w| match w {
            "prss" | "sud" | "qrt" | "mat" | "cps" | "start" => w.to_uppercase(),
            _ => w.to_string(),
        })
        .collect();
    let s = words.join(" ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// Text for HTML and SVG: `&`, `<`, `>`, `"` and `'` escaped.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The table with this id.
pub fn table<'a>(r: &'a Report, id: &str) -> Option<&'a Table> {
    r.tables.iter().find(|t| t.id == id)
}
