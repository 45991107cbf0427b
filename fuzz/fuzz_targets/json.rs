//! NDJSON lines and JSON documents (streamed arrays) over any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::Checkpoint;
use pnp_gateway::formats::json::{NdjsonReader, stream_document};

fuzz_target!(|data: &[u8]| {
    let mut r = NdjsonReader::new(data, 512, Checkpoint::default());
    while let Ok(Some(_)) = r.next_item() {}
    let _ = stream_document(data, 0, &mut |_| true);
});
