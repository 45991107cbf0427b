//! The narrative indicators measured on the held-out CAD narratives against what a reader
//! wrote down for each (tests/data/deid/indicators_holdout.txt, written before the indicators
//! were run on them): substance codes found and missed, naloxone and dose agreement.
//! `cargo test --test indicators_eval -- --nocapture` prints the figures and each disagreement.

use pnp_gateway::policy::indicators;
use std::collections::BTreeSet;

fn narratives() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/deid/cad_narratives_holdout.txt"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            // The identifier marks out: `[[CLASS|text]]` is `text`.
            let mut out = String::new();
            let mut rest = l;
            while let Some(open) = rest.find("[[") {
                out.push_str(&rest[..open]);
                let close = rest[open..].find("]]").unwrap() + open;
                out.push_str(rest[open + 2..close].split_once('|').unwrap().1);
                rest = &rest[close + 2..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[test]
fn indicators_on_held_out_narratives() {
    let texts = narratives();
    let expected = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/deid/indicators_holdout.txt"
    ))
    .unwrap();
    let (mut true_pos, mut false_pos, mut false_neg) = (0, 0, 0);
    let (mut naloxone_ok, mut doses_ok, mut n) = (0, 0, 0);
    for line in expected.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        let text = &texts[cols[0].parse::<usize>().unwrap() - 1];
        let want: BTreeSet<&str> = cols[1].split(',').filter(|c| *c != "-").collect();
        let got = indicators::from_narrative(text);
        let got_codes: BTreeSet<&str> = got.substances.iter().map(|s| s.as_str()).collect();
        true_pos += want.intersection(&got_codes).count();
        false_pos += got_codes.difference(&want).count();
        false_neg += want.difference(&got_codes).count();
        let naloxone = got.naloxone.map_or("-".to_string(), |b| b.to_string());
        let doses = got
            .naloxone_doses
            .map_or("-".to_string(), |d| d.to_string());
        n += 1;
        naloxone_ok += usize::from(naloxone == cols[2]);
        doses_ok += usize::from(doses == cols[3]);
        if want != got_codes || naloxone != cols[2] || doses != cols[3] {
            println!(
                "narrative {}: expected {:?} {} {}, got {:?} {naloxone} {doses}",
                cols[0], want, cols[2], cols[3], got_codes
            );
        }
    }
    let recall = true_pos as f64 / (true_pos + false_neg) as f64;
    let precision = true_pos as f64 / (true_pos + false_pos) as f64;
    println!(
        "substances: recall {recall:.3}, precision {precision:.3} ({true_pos} found, {false_neg} missed, {false_pos} wrong); naloxone {naloxone_ok}/{n}, doses {doses_ok}/{n}"
    );
    assert_eq!(n, texts.len());
    assert!(
        recall >= 0.85 && precision >= 0.9,
        "{recall:.3} {precision:.3}"
    );
    assert!(
        naloxone_ok == n && doses_ok == n,
        "{naloxone_ok} {doses_ok}"
    );
}
