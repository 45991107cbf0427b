//! The HTML report in a browser: headless Chromium (Debian's `chromium`; .ci/run installs it)
//! renders the page without network, takes a screenshot and dumps the DOM. The page's text
//! holds each table's title and total row; no identifying value of the generated export is in
//! the page or its SVG; the page fetches and runs nothing.

mod common;

use common::browser::chromium;
use common::program::generate;
use common::*;

/// Text of markup: tags become spaces, whitespace runs one space.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_report_renders_in_chromium_with_every_table_and_no_identifying_value() {
    let p = generate(16, 1600, 300);
    let dir = p.dir.path();
    let page = dir.join("report.html");
    success(&cli(
        &[
            "report",
            "--month",
            "2026-10",
            "--format",
            "html",
            "--out",
            page.to_str().unwrap(),
        ],
        &p.cfg,
    ));
    let json: serde_json::Value = serde_json::from_str(&success(&cli(
        &["report", "--month", "2026-10", "--format", "json"],
        &p.cfg,
    )))
    .unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    assert!(!html.contains("<script"), "a script");
    for attr in ["src=", "href=", "@import", "url(http"] {
        assert!(!html.contains(attr), "{attr} in the page");
    }
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );

    let shot = dir.join("report.png");
    chromium(
        &page,
        &dir.join("profile-shot"),
        &[format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    let keep = repo().join("target/report-screenshot.png");
    let _ = std::fs::copy(&shot, &keep);

    let dom = chromium(&page, &dir.join("profile-dom"), &["--dump-dom".to_string()]);
    assert!(
        dom.matches("<svg").count() >= 4,
        "the charts are in the DOM"
    );
    let t = text(&dom);
    // Time to care: too few referrals timed in this program, so its figures are not shown.
    assert!(
        t.contains("Time to care, 2026-10") && t.contains("Call to acceptance – –"),
        "the time to care section"
    );
    for table in json["tables"].as_array().unwrap() {
        let title = table["title"].as_str().unwrap();
        assert!(t.contains(title), "the title {title} is on the page");
        let total: Vec<String> = table["total"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().map_or("–".to_string(), |n| n.to_string()))
            .collect();
        let row = format!("{title} ");
        let at = t.find(&row).unwrap();
        let after = &t[at..];
        let line = format!("Total {}", total.join(" "));
        assert!(after.contains(&line), "{title}: `{line}` on the page");
    }
    for v in &p.identifying {
        assert!(
            !dom.contains(v.as_str()),
            "an identifying value is in the page"
        );
        assert!(
            !html.contains(v.as_str()),
            "an identifying value is in the file"
        );
    }
}
