//! HL7 v2 messages: segment splitting, MSH-2 checks, hl7-parser structure, our unescape.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::hl7::Hl7Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Hl7Reader::new(data);
    while let Ok(Some(_)) = r.next_item() {}
});
