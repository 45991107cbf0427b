//! NIBRS flat file: fixed-width segments over any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::nibrs::flat::FlatReader;

fuzz_target!(|data: &[u8]| {
    let mut r = FlatReader::new(data);
    while let Ok(Some(_)) = r.next_item() {}
});
