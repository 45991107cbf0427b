//! Charts as inline SVG: no script, no font or file from elsewhere. A chart draws shown counts
//! only; a suppressed one is drawn as a hatched mark labelled `–`, never as a bar of its size.

use super::esc;
use std::fmt::Write;

const W: f64 = 720.0;
const LABEL_W: f64 = 190.0;
const BAR_H: f64 = 22.0;
/// The series' colours (colour-blind safe, Okabe–Ito).
pub const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
];
const HATCH: &str = r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="3"/></pattern></defs>"##;

fn open(h: f64, title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {W} {h}" width="{W}" height="{h}" font-family="sans-serif" font-size="12"><title>{}</title>{HATCH}"##,
        esc(title)
    )
}

/// One horizontal bar per item: (label, count, note after the count).
pub fn bars(title: &str, items: &[(String, Option<u64>, String)]) -> String {
    let h = items.len() as f64 * (BAR_H + 6.0) + 10.0;
    let max = items.iter().filter_map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    let span = W - LABEL_W - 150.0;
    let mut s = open(h, title);
    for (k, (label, v, note)) in items.iter().enumerate() {
        let y = 5.0 + k as f64 * (BAR_H + 6.0);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + 15.0,
            esc(label)
        );
        let (w, fill, text) = match v {
            Some(n) => (span * *n as f64 / max, COLOURS[0], n.to_string()),
            None => (24.0, "url(#hatch)", "–".into()),
        };
        let _ = write!(
            s,
            r#"<rect x="{LABEL_W}" y="{y}" width="{w:.1}" height="{BAR_H}" fill="{fill}"/><text x="{:.1}" y="{}">{} {}</text>"#,
            LABEL_W + w + 6.0,
            y + 15.0,
            esc(&text),
            esc(note)
        );
    }
    s + "</svg>"
}

/// Vertical bars per column (`x_labels`), one series per entry of `series` (name, one count per
/// column): `stacked` stacks them on the column's `totals` (the part of a shown total that is in
/// suppressed cells is drawn hatched); otherwise they stand side by side.
pub fn columns(
    title: &str,
    x_labels: &[String],
    series: &[(String, Vec<Option<u64>>)],
    totals: Option<&[Option<u64>]>,
) -> String {
    let (plot_h, top, left) = (220.0, 10.0, 50.0);
    let legend_rows = series.len().div_ceil(4) as f64;
    let h = top + plot_h + 40.0 + legend_rows * 18.0;
    let stacked = totals.is_some();
    let max = match totals {
        Some(t) => t.iter().flatten().copied().max(),
        None => series
            .iter()
            .flat_map(|s| s.1.iter().flatten())
            .copied()
            .max(),
    }
    .unwrap_or(0)
    .max(1) as f64;
    let n = x_labels.len().max(1) as f64;
    let slot = (W - left - 10.0) / n;
    let y_of = |v: f64| top + plot_h - plot_h * v / max;
    let mut s = open(h, title);
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"##,
        top + plot_h,
        W - 10.0,
        top + plot_h,
        left - 4.0,
        top + 10.0,
        max as u64,
        left - 4.0,
        top + plot_h
    );
    for (j, x_label) in x_labels.iter().enumerate() {
        let x0 = left + j as f64 * slot;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"#,
            x0 + slot / 2.0,
            top + plot_h + 14.0,
            esc(x_label)
        );
        if stacked {
            let mut base = 0u64;
            for (k, (_, vs)) in series.iter().enumerate() {
                if let Some(v) = vs[j].filter(|v| *v > 0) {
                    let (y1, y0) = (y_of((base + v) as f64), y_of(base as f64));
                    let _ = write!(
                        s,
                        r#"<rect x="{:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                        x0 + slot * 0.15,
                        slot * 0.7,
                        y0 - y1,
                        COLOURS[k % COLOURS.len()]
                    );
                    base += v;
                }
            }
            match totals.and_then(|t| t[j]) {
                Some(t) if t > base => {
                    let (y1, y0) = (y_of(t as f64), y_of(base as f64));
                    let _ = write!(
                        s,
                        r#"<rect x="{:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="url(#hatch)"/>"#,
                        x0 + slot * 0.15,
                        slot * 0.7,
                        y0 - y1
                    );
                }
                Some(_) => {}
                None => {
                    let _ = write!(
                        s,
                        r#"<text x="{:.1}" y="{}" text-anchor="middle">–</text>"#,
                        x0 + slot / 2.0,
                        top + plot_h - 4.0
                    );
                }
            }
        } else {
            let bw = slot * 0.8 / series.len().max(1) as f64;
            for (k, (_, vs)) in series.iter().enumerate() {
                let x = x0 + slot * 0.1 + k as f64 * bw;
                match vs[j] {
                    Some(v) => {
                        let y1 = y_of(v as f64);
                        let _ = write!(
                            s,
                            r#"<rect x="{x:.1}" y="{y1:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/>"#,
                            top + plot_h - y1,
                            COLOURS[k % COLOURS.len()]
                        );
                    }
                    None => {
                        let _ = write!(
                            s,
                            r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="6" fill="url(#hatch)"/>"#,
                            top + plot_h - 6.0
                        );
                    }
                }
            }
        }
    }
    for (k, (name, _)) in series.iter().enumerate() {
        let (col, row) = (k % 4, k / 4);
        let (x, y) = (
            left + col as f64 * 170.0,
            top + plot_h + 34.0 + row as f64 * 18.0,
        );
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLOURS[k % COLOURS.len()],
            x + 16.0,
            esc(name)
        );
    }
    s + "</svg>"
}
