//! The narrative scrubber measured (issue 17): recall per class and the share of removed
//! characters that lie outside every labelled identifier, in both modes, on Presidio's 100
//! labelled sentences (tests/data/deid/presidio_generated_small.json) and on CAD-style narratives
//! of our own (tests/data/deid/cad_narratives.txt). A labelled span counts as caught when at
//! least half of its characters are removed (any type), as the issue measures.
//! `cargo test --test deid_eval -- --nocapture` prints the tables; `DEID_MISSES=1` also prints
//! every span missed and every removal outside the labels.

use pnp_gateway::policy::deid::{Known, Mode, Scrubber};
use std::collections::BTreeMap;

/// A labelled text: its characters and the labelled spans, in characters.
struct Sample {
    chars: Vec<char>,
    gold: Vec<(String, usize, usize)>,
}

fn presidio() -> Vec<Sample> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/deid/presidio_generated_small.json"
    );
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    data.as_array()
        .unwrap()
        .iter()
        .map(|s| Sample {
            chars: s["full_text"].as_str().unwrap().chars().collect(),
            gold: s["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["entity_type"].as_str().unwrap().to_string(),
                        e["start_position"].as_u64().unwrap() as usize,
                        e["end_position"].as_u64().unwrap() as usize,
                    )
                })
                .collect(),
        })
        .collect()
}

/// Our narratives (`file` in tests/data/deid): `[[CLASS|text]]` marks an identifier; `\n` is a
/// line break.
fn cad(file: &str) -> Vec<Sample> {
    let path = format!("{}/tests/data/deid/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let line = line.replace("\\n", "\n");
        let (mut chars, mut gold) = (Vec::new(), Vec::new());
        let mut rest = line.as_str();
        while let Some(open) = rest.find("[[") {
            chars.extend(rest[..open].chars());
            let close = rest[open..].find("]]").expect("a closed mark") + open;
            let (class, value) = rest[open + 2..close].split_once('|').expect("CLASS|text");
            let start = chars.len();
            chars.extend(value.chars());
            gold.push((class.to_string(), start, chars.len()));
            rest = &rest[close + 2..];
        }
        chars.extend(rest.chars());
        out.push(Sample { chars, gold });
    }
    out
}

struct Figures {
    /// class -> (labelled, caught)
    recall: BTreeMap<String, (u32, u32)>,
    removed: usize,
    outside: usize,
}

impl Figures {
    fn recall(&self, class: &str) -> f64 {
        let (n, hit) = self.recall[class];
        hit as f64 / n as f64
    }

    fn all(&self) -> f64 {
        let (n, hit) = self
            .recall
            .values()
            .fold((0, 0), |(n, h), (a, b)| (n + a, h + b));
        hit as f64 / n as f64
    }

    fn over_removal(&self) -> f64 {
        self.outside as f64 / self.removed.max(1) as f64
    }
}

fn measure(name: &str, samples: &[Sample], mode: Mode) -> Figures {
    let scrubber = Scrubber::new(mode, &Known::default()).unwrap();
    let misses = std::env::var_os("DEID_MISSES").is_some();
    let mut f = Figures {
        recall: BTreeMap::new(),
        removed: 0,
        outside: 0,
    };
    for s in samples {
        let text: String = s.chars.iter().collect();
        // Byte spans to character spans.
        let mut removed = vec![false; s.chars.len()];
        let starts: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        for span in scrubber.find(&text) {
            for (i, b) in starts.iter().enumerate() {
                if span.start <= *b && *b < span.end {
                    removed[i] = true;
                }
            }
        }
        for (class, start, end) in &s.gold {
            let got = removed[*start..*end].iter().filter(|r| **r).count();
            let e = f.recall.entry(class.clone()).or_default();
            e.0 += 1;
            if got * 2 >= end - start {
                e.1 += 1;
            } else if misses {
                let v: String = s.chars[*start..*end].iter().collect();
                println!("  missed {class}: {v:?} in {text:?}");
            }
        }
        let inside = |i: usize| s.gold.iter().any(|(_, a, b)| *a <= i && i < *b);
        for (i, r) in removed.iter().enumerate() {
            if *r && !s.chars[i].is_whitespace() {
                f.removed += 1;
                if !inside(i) {
                    f.outside += 1;
                    if misses && (i == 0 || !removed[i - 1] || inside(i - 1)) {
                        let end = (i..s.chars.len())
                            .find(|&j| !removed[j] || inside(j))
                            .unwrap_or(s.chars.len());
                        let v: String = s.chars[i..end].iter().collect();
                        println!("  over-removed {v:?} in {text:?}");
                    }
                }
            }
        }
    }
    println!("{name}, {mode:?}: {} texts", samples.len());
    println!(
        "{:<20} {:>9} {:>7} {:>7}",
        "class", "labelled", "caught", "recall"
    );
    for (class, (n, hit)) in &f.recall {
        println!(
            "{class:<20} {n:>9} {hit:>7} {:>7.3}",
            *hit as f64 / *n as f64
        );
    }
    println!(
        "{:<20} {:>25.3}\nover-removal: {:.1}% of {} removed characters lie outside every label\n",
        "all spans",
        f.all(),
        100.0 * f.over_removal(),
        f.removed
    );
    f
}

#[test]
fn scrubber_on_presidio_sentences() {
    let samples = presidio();
    let safe = measure("Presidio's 100 sentences", &samples, Mode::SafeWords);
    let patterns = measure("Presidio's 100 sentences", &samples, Mode::Patterns);
    for (class, min) in [
        ("PERSON", 0.95),
        ("ADDRESS", 0.90),
        ("LOCATION", 0.80),
        ("PHONE_NUMBER", 0.95),
        ("CREDIT_CARD", 1.0),
        ("US_SSN", 1.0),
        ("DATE_TIME", 1.0),
        ("EMAIL_ADDRESS", 1.0),
    ] {
        let r = safe.recall(class);
        assert!(r >= min, "safe-words {class}: recall {r:.3} < {min}");
    }
    assert!(safe.all() >= 0.90, "safe-words all spans {:.3}", safe.all());
    assert!(safe.over_removal() <= 0.15, "{:.3}", safe.over_removal());
    assert!(
        patterns.recall("PERSON") >= 0.5,
        "{:.3}",
        patterns.recall("PERSON")
    );
    assert!(
        patterns.over_removal() <= 0.05,
        "{:.3}",
        patterns.over_removal()
    );
}

#[test]
fn scrubber_on_cad_narratives() {
    let samples = cad("cad_narratives.txt");
    assert!(samples.len() >= 50, "{}", samples.len());
    let safe = measure("CAD narratives", &samples, Mode::SafeWords);
    let patterns = measure("CAD narratives", &samples, Mode::Patterns);
    for (class, min) in [
        ("PERSON", 0.95),
        ("STREET_ADDRESS", 0.90),
        ("GPE", 0.85),
        ("AGE", 0.90),
        ("DATE_TIME", 0.90),
        ("PHONE_NUMBER", 1.0),
    ] {
        let r = safe.recall(class);
        assert!(r >= min, "safe-words {class}: recall {r:.3} < {min}");
    }
    assert!(safe.all() >= 0.95, "safe-words all spans {:.3}", safe.all());
    assert!(safe.over_removal() <= 0.15, "{:.3}", safe.over_removal());
    assert!(
        patterns.recall("PERSON") >= 0.8,
        "{:.3}",
        patterns.recall("PERSON")
    );
    assert!(
        patterns.over_removal() <= 0.10,
        "{:.3}",
        patterns.over_removal()
    );
}

/// Narratives written after the rules and measured once without changing them (see
/// tests/data/deid/PROVENANCE.md): the figures nearest to what a new agency's text would give.
#[test]
fn scrubber_on_held_out_cad_narratives() {
    let samples = cad("cad_narratives_holdout.txt");
    assert!(samples.len() >= 20, "{}", samples.len());
    let safe = measure("held-out CAD narratives", &samples, Mode::SafeWords);
    let patterns = measure("held-out CAD narratives", &samples, Mode::Patterns);
    // Measured blind 0.955 (safe words) and 0.955 (patterns), PERSON 0.969, over-removal 1.7%
    // and 1.2% (0.3% since the substances' street names became safe words): the thresholds
    // leave room for a narrative or two, not for a regression.
    for f in [&safe, &patterns] {
        assert!(f.all() >= 0.90, "all spans {:.3}", f.all());
        assert!(
            f.recall("PERSON") >= 0.90,
            "PERSON {:.3}",
            f.recall("PERSON")
        );
        assert!(f.over_removal() <= 0.10, "{:.3}", f.over_removal());
    }
}
