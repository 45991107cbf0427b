//! The narrative scrubber's throughput (issue 17 asks for at least 10,000 sentences/s on one
//! core): every sentence of Presidio's 100 and of our CAD narratives, scrubbed in each mode.
//! `cargo bench --bench deid` prints the time per pass and the sentences (items) per second.

use pnp_gateway::policy::deid::{Known, Mode, Scrubber, dict};

fn main() {
    dict::load();
    divan::main();
}

/// The evaluation texts: Presidio's sentences and our narratives with their marks taken out.
fn sentences() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let presidio: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/tests/data/deid/presidio_generated_small.json"
        ))
        .expect("presidio sentences"),
    )
    .expect("JSON");
    let mut out: Vec<String> = presidio
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["full_text"].as_str().expect("text").to_string())
        .collect();
    let cad = std::fs::read_to_string(format!("{root}/tests/data/deid/cad_narratives.txt"))
        .expect("narratives");
    for line in cad.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut plain = String::new();
        let mut rest = line;
        while let Some(open) = rest.find("[[") {
            plain.push_str(&rest[..open]);
            let close = rest[open..].find("]]").expect("closed") + open;
            let inner = &rest[open + 2..close];
            plain.push_str(inner.split_once('|').map_or(inner, |(_, v)| v));
            rest = &rest[close + 2..];
        }
        plain.push_str(rest);
        out.push(plain);
    }
    out
}

fn run(bencher: divan::Bencher, mode: Mode) {
    let texts = sentences();
    let s = Scrubber::new(mode, &Known::default()).expect("scrubber");
    bencher
        .counter(divan::counter::ItemsCount::new(texts.len()))
        .bench_local(|| {
            for t in &texts {
                divan::black_box(s.find(t));
            }
        });
}

#[divan::bench]
fn safe_words(bencher: divan::Bencher) {
    run(bencher, Mode::SafeWords);
}

#[divan::bench]
fn patterns(bencher: divan::Bencher) {
    run(bencher, Mode::Patterns);
}
