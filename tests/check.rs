//! `pnp-gateway check`: configuration errors name file, line and field; examples run.

mod common;

use common::*;

/// `check --adapters-dir DIR/adapters`: exit code and stderr.
fn check_dir(dir: &std::path::Path) -> (Option<i32>, String) {
    let out = bin()
        .args(["check", "--adapters-dir"])
        .arg(dir.join("adapters"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_adapters_and_examples_pass() {
    let out = bin().current_dir(repo()).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("example(s) checked"));
}

#[test]
fn demo_config_checks() {
    success(
        &bin()
            .current_dir(repo())
            .args(["check", "--config", "examples/demo/gateway.toml"])
            .output()
            .unwrap(),
    );
}

#[test]
fn unknown_canonical_field_is_reported_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let mapping = SMALL_MAPPING.replace("target = \"narrative\"", "target = \"narative\"");
    write_adapter(d.path(), "typo", "kind = \"csv\"", &mapping);
    let (code, stderr) = check_dir(d.path());
    assert_eq!(code, Some(1));
    let line = mapping
        .lines()
        .position(|l| l.contains("narative"))
        .unwrap()
        + 1;
    let want =
        format!("mappings/typo.toml:{line}: field `narative`: unknown canonical field `narative`");
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
}

#[test]
fn unknown_keys_bad_tables_and_failing_examples_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let mapping = format!(
        "{SMALL_MAPPING}\n[[field]]\ntarget = \"location.city\"\nsource = \"x\"\ntransforms = [{{ op = \"table\", table = \"nope\" }}]\n\n[[example]]\ninput = {{ id = \"9\", when = \"2024-01-01 10:00:00\", code = \"OD\" }}\nexpect = {{ category = \"behavioral_health\" }}\n"
    );
    write_adapter(d.path(), "m", "kind = \"csv\"", &mapping);
    let (code, stderr) = check_dir(d.path());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no table named `nope`"), "{stderr}");

    // Fix the table: now the example runs, and its wrong expectation is reported.
    let mapping = mapping.replace("table = \"nope\"", "table = \"cat\"");
    write_adapter(d.path(), "m", "kind = \"csv\"", &mapping);
    let (code, stderr) = check_dir(d.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("`category`: expected \"behavioral_health\", got \"overdose\""),
        "{stderr}"
    );

    // An unknown key in the adapter file.
    std::fs::write(
        d.path().join("adapters/m.toml"),
        "mapping = \"../mappings/m.toml\"\nformat = { kind = \"csv\", delimter = \";\" }\n",
    )
    .unwrap();
    let (code, stderr) = check_dir(d.path());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("adapters/m.toml:2"), "{stderr}");
    assert!(stderr.contains("delimter"), "{stderr}");
}

#[test]
fn category_tables_must_name_categories() {
    let d = tempfile::tempdir().unwrap();
    let mapping = SMALL_MAPPING.replace("MH = \"behavioral_health\"", "MH = \"mental\"");
    write_adapter(d.path(), "c", "kind = \"csv\"", &mapping);
    let (code, stderr) = check_dir(d.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("not program categories: `mental`"),
        "{stderr}"
    );
}

#[test]
fn forbidden_methods_are_refused_with_destination_field_and_line() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("gateway.toml");
    let text = format!(
        r#"adapters_dir = "{}"

[store]
path = "state/gateway.db"

[[destination]]
id = "dhhr-program"
profile = "safe-harbor"
purpose = "program_evaluation"

[destination.fields]
"call_type.text" = "keep"
narrative = "scrub"

[[destination]]
id = "dhhr-research"
profile = "limited-data-set"
purpose = "program_evaluation"
dua = "DUA-1"
fields = {{ age_text = "keep" }}
"#,
        repo().join("adapters").display()
    );
    std::fs::write(&cfg, &text).unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (dest, field, needle) in [
        (
            "dhhr-program",
            "call_type.text",
            "\"call_type.text\" = \"keep\"",
        ),
        ("dhhr-program", "narrative", "narrative = \"scrub\""),
        ("dhhr-research", "age_text", "age_text = \"keep\""),
    ] {
        let want = format!(
            "gateway.toml:{}: destination `{dest}`: field `{field}`: free text",
            line(needle)
        );
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
}
