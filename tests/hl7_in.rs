//! HL7 v2 in, as an interface analyst checks it in the first week of a go-live: the trigger event
//! decides the action, training messages are not incidents, phones and emails where v2.5 puts
//! them, street addresses with their sub-components. Messages of our own making.

mod common;

use common::*;
use pnp_gateway::model::{Action, Incident};

const PID: &str = "PID|1||55501^^^HOSP^MR||QUILLFEATHER^MARISOL||19900704|F|||1000&Hospital Lane^^Charleston^WV^25301||^PRN^PH^^^304^5550199~^NET^Internet^marisol.q@example.org";

fn msg(event: &str, processing: &str, id: &str) -> String {
    format!(
        "MSH|^~\\&|EDIS|HOSP|PNP|GW|20260301101500-0500||{event}|{id}|{processing}|2.5.1\r{PID}\rRF1|A|GRP||||{id}-REF\r"
    )
}

fn read_messages(adapter: &pnp_gateway::config::Adapter, messages: &[String]) -> common::Collect {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("feed.hl7");
    std::fs::write(&f, messages.concat()).unwrap();
    read(adapter, &f)
}

fn only(c: &common::Collect) -> &Incident {
    assert_eq!(c.incidents.len(), 1, "rejected: {:?}", c.rejected);
    &c.incidents[0].1
}

#[test]
fn the_trigger_event_decides_the_action_and_replies_are_not_incidents() {
    let a = adapter("hl7v2");
    for (event, action) in [
        ("REF^I12", Action::New),
        ("REF^I13", Action::Update),
        ("REF^I14", Action::Delete),
        ("ADT^A01", Action::New),
        ("ADT^A08", Action::Update),
        ("ADT^A11", Action::Delete),
        ("ADT^A13", Action::Delete),
    ] {
        let c = read_messages(&a, &[msg(event, "P", "M1")]);
        assert_eq!(only(&c).action, action, "{event}");
        assert_eq!(only(&c).incident_id, "M1-REF", "{event}");
    }
    // A reply returns referral information; it is no new referral.
    let c = read_messages(&a, &[msg("RRI^I12", "P", "M2")]);
    assert!(c.incidents.is_empty());
    assert_eq!(c.rejected[0].1.kind, "not_an_incident");
    // An event the table lacks is read as new and shows among the mapping gaps.
    let c = read_messages(&a, &[msg("ADT^A31", "P", "M3")]);
    assert_eq!(only(&c).action, Action::New);
    assert!(
        c.gaps.iter().any(|g| g.code.contains("ADT^A31")),
        "{:?}",
        c.gaps.iter().map(|g| &g.code).collect::<Vec<_>>()
    );
}

#[test]
fn training_and_debugging_messages_are_quarantined_unless_the_adapter_takes_them() {
    let a = adapter("hl7v2");
    let c = read_messages(
        &a,
        &[
            msg("REF^I12", "T", "M4"),
            msg("REF^I12", "D", "M5"),
            msg("REF^I12", "P", "M6"),
        ],
    );
    assert_eq!(only(&c).incident_id, "M6-REF");
    let kinds: Vec<&str> = c.rejected.iter().map(|(_, r)| r.kind).collect();
    assert_eq!(kinds, ["training_message", "training_message"]);
    assert_eq!(c.rejected[0].1.field.as_deref(), Some("MSH-11"));

    // An adapter for a test feed takes them.
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("adapters/hl7v2.toml"))
        .unwrap()
        .replace(
            "kind = \"hl7v2\"",
            "kind = \"hl7v2\"\nprocessing_ids = [\"P\", \"T\"]",
        )
        .replace(
            "../mappings/hl7v2.toml",
            &repo().join("mappings/hl7v2.toml").display().to_string(),
        );
    let f = d.path().join("hl7-test-feed.toml");
    std::fs::write(&f, text).unwrap();
    let a = pnp_gateway::config::Adapter::load(&f).unwrap();
    let c = read_messages(&a, &[msg("REF^I12", "T", "M7")]);
    assert_eq!(only(&c).incident_id, "M7-REF");
}

#[test]
fn phones_in_xtn_6_and_7_emails_in_xtn_4_and_streets_with_sub_components() {
    let c = read_messages(&adapter("hl7v2"), &[msg("REF^I12", "P", "M8")]);
    let p = &only(&c).persons[0];
    let phones: Vec<&String> = p.phones.iter().map(|v| v.expose()).collect();
    assert_eq!(phones, ["3045550199"]);
    let emails: Vec<&String> = p.emails.iter().map(|v| v.expose()).collect();
    assert_eq!(emails, ["marisol.q@example.org"]);
    assert_eq!(
        p.address.street.as_ref().map(|s| s.expose().as_str()),
        Some("1000 Hospital Lane")
    );
}

/// Values keep no surrounding spaces, in any format: a padded code still finds its table entry,
/// a padded name is the name, and a value of blanks is no value.
#[test]
fn values_are_trimmed_in_every_format() {
    let d = tempfile::tempdir().unwrap();
    let a = write_adapter(d.path(), "padded", "kind = \"csv\"", SMALL_MAPPING);
    let a = pnp_gateway::config::Adapter::load(&a).unwrap();
    let f = d.path().join("padded.csv");
    std::fs::write(
        &f,
        "id,when,code,name,note\n  INC-7 ,2026-03-01 10:00:00, OD ,\"QUILLFEATHER, MARISOL \",   \n",
    )
    .unwrap();
    let c = read(&a, &f);
    let inc = only(&c);
    assert_eq!(inc.incident_id, "INC-7");
    assert_eq!(
        inc.category,
        pnp_gateway::model::Category::Overdose,
        "{:?}",
        c.gaps.len()
    );
    assert_eq!(
        inc.persons[0]
            .name
            .first
            .as_ref()
            .map(|v| v.expose().as_str()),
        Some("MARISOL")
    );
    assert!(inc.narrative.is_none());
    // HL7 too: a padded city.
    let padded = msg("REF^I12", "P", "M9").replace("^^Charleston^", "^^Charleston  ^");
    let c = read_messages(&adapter("hl7v2"), &[padded]);
    assert_eq!(
        only(&c).persons[0]
            .address
            .city
            .as_ref()
            .map(|v| v.expose().as_str()),
        Some("Charleston")
    );
}
