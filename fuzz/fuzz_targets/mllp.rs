//! MLLP framing from a peer: any bytes, in any split, give frames or a size error, never a panic
//! or unbounded growth; each frame read as an ACK gives an outcome, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::deliver::mllp::FrameReader;
use pnp_gateway::deliver::mllp_client::settle;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut r = FrameReader::new(256);
    let cut = (split as usize).min(rest.len());
    for part in [&rest[..cut], &rest[cut..]] {
        r.push(part);
        while let Ok(Some(frame)) = r.take_frame() {
            assert!(frame.len() <= rest.len());
            let _ = settle(&String::from_utf8_lossy(&frame), "PNP0001");
        }
    }
});
