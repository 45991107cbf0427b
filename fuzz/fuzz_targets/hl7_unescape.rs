//! HL7 unescaping over any text and any separator set: never a panic (the crate's own panics on
//! non-ASCII before an escape).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::hl7::{Seps, unescape};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut chars = text.chars();
    let mut next = |d| chars.next().unwrap_or(d);
    let seps = Seps {
        field: next('|'),
        component: next('^'),
        repetition: next('~'),
        escape: next('\\'),
        subcomponent: next('&'),
    };
    let rest: String = chars.collect();
    let out = unescape(&rest, &seps);
    // Escapes only shrink text, except \Xhh\ bytes that are not UTF-8 (each becomes U+FFFD).
    assert!(out.len() <= rest.len() * 3 + 3);
});
