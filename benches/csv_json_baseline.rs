//! The ingest benchmark's Rust baseline (scripts/bench-ingest.sh): the csv crate and serde_json
//! alone turning a CSV file into JSON lines, one object per row keyed by the header, with no
//! mapping, checks or recovery. It bounds what `pnp-gateway normalize` could reach on the same
//! file with the same libraries, the way `cat` bounds the I/O.
//!
//! Usage: `csv_json_baseline FILE.csv [OUT]` (OUT defaults to stdout). Run by `cargo bench` with
//! no file, it says so and does nothing: the figure only means something beside `normalize`.

use serde::ser::{SerializeMap, Serializer};
use std::io::{BufWriter, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(input) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("csv_json_baseline: no CSV file given; run by scripts/bench-ingest.sh");
        return Ok(());
    };
    let mut rdr = csv::ReaderBuilder::new().from_path(input)?;
    let headers = rdr.headers()?.clone();
    let out: Box<dyn Write> = match args.iter().filter(|a| !a.starts_with("--")).nth(1) {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while rdr.read_record(&mut record)? {
        let mut ser = serde_json::Serializer::new(&mut out);
        let mut map = ser.serialize_map(Some(record.len()))?;
        for (k, v) in headers.iter().zip(record.iter()) {
            map.serialize_entry(k, v)?;
        }
        map.end()?;
        out.write_all(b"\n")?;
        rows += 1;
    }
    out.flush()?;
    eprintln!("{rows} rows");
    Ok(())
}
