//! HL7 v2 answers from providers (RRI^I12, ACK): the listener's message-type sniff and the
//! reader of MSA, RF1 and the referral identifiers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::hl7_reply::{is_reply, message_type, read};

fuzz_target!(|data: &[u8]| {
    if let Some(t) = message_type(data) {
        let _ = is_reply(&t);
    }
    let _ = read(data);
});
