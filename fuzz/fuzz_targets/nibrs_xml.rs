//! NIBRS XML: the streaming, namespace-aware reader over any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::nibrs::xml::NibrsXmlReader;

fuzz_target!(|data: &[u8]| {
    let mut r = NibrsXmlReader::new(data);
    while let Ok(Some(_)) = r.next_item() {}
});
