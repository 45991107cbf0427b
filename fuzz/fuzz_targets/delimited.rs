//! The delimited reader over any bytes: records or rejections, never a panic. The first byte
//! picks the delimiter and whether there is a header; the limit is small so that the oversize
//! path is exercised.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pnp_gateway::formats::delimited::{DelimitedOptions, DelimitedReader, Row};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let opts = DelimitedOptions {
        delimiter: [',', '\t', '|', ';'][(first & 3) as usize],
        header: first & 4 == 0,
        columns: (first & 4 != 0).then(|| vec!["a".into(), "b".into(), "c".into()]),
        max_record_bytes: 256,
        ..DelimitedOptions::default()
    };
    let Ok(mut r) = DelimitedReader::new(std::io::Cursor::new(rest), opts, None) else { return };
    let mut row = Row::default();
    let mut n = 0;
    while let Ok(Some(_)) = r.next_item(&mut row) {
        n += 1;
        assert!(n <= rest.len() + 1, "more records than bytes: the reader does not advance");
    }
});
