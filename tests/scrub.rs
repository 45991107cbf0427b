//! The free-text scrubber measured against Presidio's labelled sentences
//! (tests/data/deid/presidio_generated_small.json). Prints per-entity recall and precision;
//! asserts recall >= 0.95 for phones, SSNs, emails and dates (issue 4).

use pnp_gateway::policy::scrub;
use std::collections::BTreeMap;

/// Our labels that count as finding each Presidio entity type.
fn ours(entity: &str) -> &'static [&'static str] {
    match entity {
        "PHONE_NUMBER" => &["PHONE"],
        "US_SSN" => &["SSN"],
        "EMAIL_ADDRESS" => &["EMAIL"],
        "DATE_TIME" => &["DATE"],
        "IP_ADDRESS" => &["IP"],
        "DOMAIN_NAME" => &["URL"],
        "CREDIT_CARD" => &["CARD"],
        "ADDRESS" => &["ADDRESS"],
        "US_DRIVER_LICENSE" => &["SSN", "PHONE", "CARD"],
        _ => &[],
    }
}

#[test]
fn scrubber_recall_and_precision_on_presidio_sentences() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/deid/presidio_generated_small.json"
    );
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // entity -> (labelled, found); label -> (found spans, spans on a labelled entity)
    let mut recall: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut precision: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for s in data.as_array().unwrap() {
        let text = s["full_text"].as_str().unwrap();
        // Presidio positions are character offsets; ours are bytes.
        let byte = |c: u64| {
            text.char_indices()
                .nth(c as usize)
                .map_or(text.len(), |(b, _)| b)
        };
        let labelled: Vec<(String, usize, usize)> = s["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["entity_type"].as_str().unwrap().to_string(),
                    byte(e["start_position"].as_u64().unwrap()),
                    byte(e["end_position"].as_u64().unwrap()),
                )
            })
            .collect();
        let found = scrub::find(text);
        for (entity, start, end) in &labelled {
            let covered: usize = found
                .iter()
                .filter(|f| ours(entity).contains(&f.label))
                .map(|f| f.end.min(*end).saturating_sub(f.start.max(*start)))
                .sum();
            let e = recall.entry(entity.clone()).or_default();
            e.0 += 1;
            if covered * 10 >= (end - start) * 8 {
                e.1 += 1;
            }
        }
        for f in &found {
            let hit = labelled.iter().any(|(_, s, e)| f.start < *e && *s < f.end);
            let p = precision.entry(f.label).or_default();
            p.0 += 1;
            if hit {
                p.1 += 1;
            }
        }
    }
    println!(
        "scrubber on {} Presidio sentences",
        data.as_array().unwrap().len()
    );
    println!(
        "{:<20} {:>9} {:>7} {:>7}",
        "entity", "labelled", "found", "recall"
    );
    for (entity, (n, hit)) in &recall {
        println!(
            "{entity:<20} {n:>9} {hit:>7} {:>7.2}",
            *hit as f64 / *n as f64
        );
    }
    println!(
        "{:<20} {:>9} {:>7} {:>9}",
        "our label", "spans", "on PII", "precision"
    );
    for (label, (n, hit)) in &precision {
        println!(
            "{label:<20} {n:>9} {hit:>7} {:>9.2}",
            *hit as f64 / *n as f64
        );
    }
    for entity in ["PHONE_NUMBER", "US_SSN", "EMAIL_ADDRESS", "DATE_TIME"] {
        let (n, hit) = recall[entity];
        assert!(hit as f64 / n as f64 >= 0.95, "{entity}: recall {hit}/{n}");
    }
}
