//! `pnp-gateway scrub` as documented (issue 17): stdin lines, JSON `{"text"}` or plain text, one
//! JSON line out each with character offsets; `--mode`, `--known`. Values of our own making.

use std::io::Write;
use std::process::{Command, Stdio};

fn scrub(args: &[&str], input: &str) -> (Vec<serde_json::Value>, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pnp-gateway"))
        .arg("scrub")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    )
}

#[test]
fn one_json_line_per_input_line_with_character_offsets() {
    let input = concat!(
        "{\"text\": \"Señora Zbigniewa Quillfeather called from 304-555-0147.\"}\n",
        "RP ADV HER BF KAYLEE IS UNRESP AT 418 BULLITT ST\n",
        "{\"note\": \"no text here\"}\n",
    );
    let (lines, _, ok) = scrub(&[], input);
    assert!(ok);
    assert_eq!(lines.len(), 3);
    let first = &lines[0];
    let text = "Señora Zbigniewa Quillfeather called from 304-555-0147.";
    let chars: Vec<char> = text.chars().collect();
    let spans = first["spans"].as_array().unwrap();
    let cut = |s: &serde_json::Value| -> String {
        let (a, b) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        chars[a..b].iter().collect()
    };
    let found: Vec<(String, &str)> = spans
        .iter()
        .map(|s| (cut(s), s["type"].as_str().unwrap()))
        .collect();
    // `ñ` is one character (two bytes): the offsets count characters.
    assert_eq!(
        found,
        vec![
            ("Señora Zbigniewa Quillfeather".to_string(), "NAME"),
            ("304-555-0147".to_string(), "PHONE")
        ]
    );
    assert_eq!(spans[0]["end"], 29);
    let out = first["text"].as_str().unwrap();
    assert!(out.ends_with("called from [PHONE]."), "{out}");
    assert!(!out.contains("Quillfeather"), "{out}");
    // Plain text: the name and the address go, CAD words stay.
    let second = lines[1]["text"].as_str().unwrap();
    assert_eq!(second, "RP ADV HER BF [NAME] IS UNRESP AT [ADDRESS]");
    // An object without `text` is named by its line, never quoted.
    let err = lines[2]["error"].as_str().unwrap();
    assert!(
        err.contains("line 3") && !err.contains("no text here"),
        "{err}"
    );
}

#[test]
fn modes_and_known_values() {
    let t = "the rig was parked by the wressle near Doe's place\n";
    let (safe, _, _) = scrub(&["--mode", "safe-words"], t);
    let (patterns, _, _) = scrub(&["--mode", "patterns"], t);
    assert!(!safe[0]["text"].as_str().unwrap().contains("wressle"));
    assert!(patterns[0]["text"].as_str().unwrap().contains("wressle"));
    let d = tempfile::tempdir().unwrap();
    let known = d.path().join("known.json");
    std::fs::write(
        &known,
        r#"{"names": ["DOE, JANE Q"], "phones": ["3045550100"]}"#,
    )
    .unwrap();
    let (lines, _, ok) = scrub(
        &["--mode", "patterns", "--known", known.to_str().unwrap()],
        "Jane Q. Doe left; call J. Doe at (304) 555-0100 or Doe's sister\n",
    );
    assert!(ok);
    assert_eq!(
        lines[0]["text"].as_str().unwrap(),
        "[NAME] left; call [NAME] at [PHONE] or [NAME]'s sister"
    );
    // A bad known file is refused by position and kind, its values never quoted.
    std::fs::write(&known, r#"{"names": "QUILLFEATHER"}"#).unwrap();
    let (_, err, ok) = scrub(&["--known", known.to_str().unwrap()], "x\n");
    assert!(!ok);
    assert!(
        err.contains("line 1") && !err.contains("QUILLFEATHER"),
        "{err}"
    );
}
