use super::*;

fn scrubbed(text: &str, mode: Mode) -> String {
    scrub(text, mode)
}

#[test]
fn patterns_mode_removes_names_places_and_shapes_and_keeps_words() {
    let t = "RP JOHN SMITH STATES HIS GIRLFRIEND KAYLEE WAS UNRESPONSIVE AT 1412 QUARRIER ST IN NITRO, 34 YOF";
    let out = scrubbed(t, Mode::Patterns);
    for leak in ["JOHN", "SMITH", "KAYLEE", "1412", "QUARRIER", "NITRO", "34"] {
        assert!(!out.contains(leak), "{leak} left in: {out}");
    }
    for kept in ["RP", "STATES", "GIRLFRIEND", "UNRESPONSIVE"] {
        assert!(out.contains(kept), "{kept} removed: {out}");
    }
}

#[test]
fn safe_words_mode_removes_what_it_does_not_know() {
    let t = "Subject Zebulon Krzyzanowski was given 2 doses of Narcan by Ofc Vandevender.";
    let out = scrubbed(t, Mode::SafeWords);
    assert_eq!(
        out, "Subject [NAME] was given 2 doses of Narcan by Ofc [NAME].",
        "{out}"
    );
    // The patterns mode keeps a word no dictionary knows when nothing marks it as a name.
    let t = "the rig was parked by the wressle";
    assert_eq!(scrubbed(t, Mode::Patterns), t);
    assert_eq!(
        scrubbed(t, Mode::SafeWords),
        "the rig was parked by the [UNKNOWN]"
    );
}

#[test]
fn common_words_that_are_names_need_context() {
    let t = "Capitalized words like Wisdom and Discipline are often mistaken with names.";
    assert_eq!(scrubbed(t, Mode::SafeWords), t);
    let t = "She gave Mark Brown a ride to the hospital.";
    assert_eq!(
        scrubbed(t, Mode::Patterns),
        "She gave [NAME] a ride to the hospital."
    );
    let t = "PT STATES SHE USED HEROIN AND WILL GO TO DETOX";
    assert_eq!(scrubbed(t, Mode::SafeWords), t);
}

#[test]
fn typed_removals() {
    let t = "Pt is a 36 year old male, DOB 04/12/1989, cell (304) 555-0147, lives at PO Box 12, seen Tuesday; card 4111 1111 1111 1111.";
    let spans = find(t, Mode::Patterns);
    let labels: Vec<&str> = spans.iter().map(|s| s.label).collect();
    for l in ["AGE", "DATE", "PHONE", "ADDRESS", "CARD"] {
        assert!(labels.contains(&l), "{l} missing: {labels:?}");
    }
    // A 16-digit number that fails the Luhn check is no card, but still a long number.
    let s = find("ref 4111111111111112", Mode::Patterns);
    assert_eq!(s.first().map(|s| s.label), Some("ID"));
}

#[test]
fn known_values_in_their_spellings() {
    let known = Known {
        names: vec!["ROE, RICHARD M".into()],
        phones: vec!["3045550199".into()],
        ..Known::default()
    };
    let s = Scrubber::new(Mode::Patterns, &known).unwrap();
    let t = "Callback R. Roe at 304.555.0199; Richard agreed.";
    let spans = s.find(t);
    assert_eq!(
        scrub::render(t, &spans),
        "Callback [NAME] at [PHONE]; [NAME] agreed."
    );
}

#[test]
fn offsets_in_characters() {
    let t = "Ústí 12";
    assert_eq!(char_offsets(t, &[0, 6, t.len()]), vec![0, 4, 7]);
}
