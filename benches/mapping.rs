//! Micro-benchmarks of the ingest hot path (divan): one CAD row mapped to a canonical incident,
//! and the incident written as JSON. Whole-file figures come from scripts/bench-ingest.sh.

use pnp_gateway::config::Adapter;
use pnp_gateway::formats::RecordView;
use pnp_gateway::mapping::unmapped::GapKey;
use pnp_gateway::mapping::{Binding, Scratch};
use pnp_gateway::policy::ProgramRules;
use std::path::Path;

fn main() {
    divan::main();
}

fn setup() -> (Adapter, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let a = Adapter::load(&root.join("adapters/generic-cad-csv.toml")).expect("adapter");
    let row = serde_json::json!({
        "IncidentNumber": "2025-00000001", "ORI": "WV0200100", "CallType": "OD", "CallTypeDesc": "OVERDOSE",
        "Priority": "1", "ReceivedTime": "03/14/2025 22:15:09", "DispatchedTime": "03/14/2025 22:16:00",
        "ArrivedTime": "03/14/2025 22:21:30", "ClearedTime": "03/14/2025 23:05:00",
        "Address": "100 CAPITOL ST", "City": "CHARLESTON", "County": "KANAWHA", "State": "WV", "Zip": "25301",
        "Latitude": "38.3498", "Longitude": "-81.6326", "Beat": "B2", "Disposition": "REF",
        "NaloxoneGiven": "Y", "WeaponInvolved": "N", "SubjectName": "DOE, JANE Q", "SubjectDOB": "07/04/1990",
        "SubjectSex": "F", "SubjectRace": "W", "SubjectPhone": "(304) 555-0100", "SubjectSSN": "123-45-6789",
        "SubjectAddress": "12 EXAMPLE AVE", "CallerName": "ROE, JOHN", "CallerPhone": "304-555-0199",
        "Narrative": "Caller reports female unresponsive; naloxone given, revived, agreed to talk to peer."
    });
    (a, row)
}

#[divan::bench]
fn map_one_record(bencher: divan::Bencher) {
    let (a, row) = setup();
    let rules = ProgramRules::default();
    let b = Binding::default();
    let key = GapKey::ephemeral();
    let mut gaps = Vec::new();
    bencher.bench_local(|| {
        let mut inc = a
            .mapping
            .apply(
                &a.provenance,
                &RecordView::Json(divan::black_box(&row)),
                &b,
                &key,
                &mut gaps,
                &mut Scratch::default(),
            )
            .expect("maps");
        rules.apply(&mut inc);
        inc
    });
}

#[divan::bench]
fn write_one_incident_as_json(bencher: divan::Bencher) {
    let (a, row) = setup();
    let mut gaps = Vec::new();
    let inc = a
        .mapping
        .apply(
            &a.provenance,
            &RecordView::Json(&row),
            &Binding::default(),
            &GapKey::ephemeral(),
            &mut gaps,
            &mut Scratch::default(),
        )
        .expect("maps");
    let mut out = Vec::with_capacity(4096);
    bencher.bench_local(|| {
        out.clear();
        serde_json::to_writer(&mut out, divan::black_box(&inc)).unwrap();
        out.len()
    });
}

/// One HL7 v2 ADT message (as in scripts/gen_hl7.py) read into its JSON form: the parse alone,
/// to set beside Python's `hl7.parse` of the same message (scripts/bench-standards.sh).
#[divan::bench]
fn hl7_read_one_message(bencher: divan::Bencher) {
    let msg = "MSH|^~\\&|EDIS|CAMC|PNP|WV|20260301101500||ADT^A04^ADT_A01|MSG00000001|P|2.5.1\r\
        EVN|A04|20260301101500\r\
        PID|1||100001^^^CAMC^MR~101-11-1001^^^SSA^SS||DOE^JANE^Q^^^^L||19900704|F||W|12 EXAMPLE AVE^^CHARLESTON^WV^25301||(304)555-0001|||||||||N\r\
        NK1|1|DOE^JOHN|SPO|12 EXAMPLE AVE^^CHARLESTON^WV^25301|(304)555-0199\r\
        PV1|1|E|ED^01^01||||1234^WELBY^MARCUS|||||||||||V00000001|||||||||||||||||||||||||20260301101500\r\
        DG1|1||T40.1X1A^Poisoning by heroin, accidental^I10|||A\r\
        NTE|1||Brought in by EMS after naloxone \\T\\ peer contacted\r";
    bencher.bench_local(|| {
        let mut r = pnp_gateway::formats::hl7::Hl7Reader::new(divan::black_box(msg.as_bytes()));
        r.next_item().unwrap().is_some()
    });
}
