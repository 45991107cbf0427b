//! The scrubber on arbitrary text (issue 17): it never panics, and its spans are sorted, apart,
//! on character boundaries and inside the text, in both modes, with and without known values;
//! the indicators never panic either. A panic here would stop a disclosure, so random text of
//! the kinds a narrative mixes (letters with accents, digits, CAD punctuation, apostrophes,
//! line breaks) is thrown at it.

use pnp_gateway::policy::deid::{Known, Mode, Scrubber};
use pnp_gateway::policy::{indicators, scrub};
use proptest::prelude::*;

fn narrative() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[A-Za-z]{1,9}",
        "[A-ZÉÑÜ][a-zéñüßø]{1,8}",
        "[0-9]{1,12}",
        "[0-9]{3}-[0-9]{3}-[0-9]{4}",
        Just("RP".to_string()),
        Just("SUBJ".to_string()),
        Just("Dr.".to_string()),
        Just("ST".to_string()),
        Just("Apt".to_string()),
        Just("O’Brien's".to_string()),
        Just("narcan x2".to_string()),
        Just("no".to_string()),
        "[,.;:()/#'’\"-]",
        Just("\n".to_string()),
        Just("Ústí".to_string()),
        Just("名字".to_string()),
    ];
    prop::collection::vec(word, 0..40).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn spans_are_sorted_apart_and_on_boundaries(text in narrative()) {
        let known = Known {
            names: vec!["DOE, JANE Q".into(), "Ñuñez".into()],
            phones: vec!["3045550100".into()],
            streets: vec!["12 Example Ave".into()],
            ..Known::default()
        };
        for mode in [Mode::SafeWords, Mode::Patterns] {
            for k in [Known::default(), known.clone()] {
                let s = Scrubber::new(mode, &k).unwrap();
                let spans = s.find(&text);
                for w in spans.windows(2) {
                    prop_assert!(w[0].end <= w[1].start, "{:?} in {text:?}", w);
                }
                for sp in &spans {
                    prop_assert!(sp.start < sp.end && sp.end <= text.len());
                    prop_assert!(text.is_char_boundary(sp.start) && text.is_char_boundary(sp.end));
                }
                let out = scrub::render(&text, &spans);
                let line = s.scrub_line(&text, 1);
                prop_assert!(line.starts_with('{'), "{line}");
                prop_assert!(!out.contains("3045550100"));
            }
        }
        let _ = indicators::from_narrative(&text);
    }
}
