//! NENA EIDO documents: JSON, the `$ref` graph, and the XML inside JSON strings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::eido::{EidoReader, normalize};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = EidoReader::new(data) {
        while let Ok(Some(_)) = r.next_item() {}
    }
    // Also straight into the graph, past the JSON syntax.
    if let Ok(v) = serde_json::from_slice(data) {
        let _ = normalize(&v);
    }
});
