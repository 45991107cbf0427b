//! Embeds the demo (examples/demo), the adapters and the mappings into the binary, so that
//! `pnp-gateway demo` runs anywhere, from any folder.

use std::fmt::Write;
use std::path::Path;

fn walk(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let mut files = Vec::new();
    for d in ["adapters", "mappings", "examples/demo"] {
        println!("cargo:rerun-if-changed={d}");
        walk(&Path::new(&root).join(d), &mut files);
    }
    let mut src = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&format!("{root}/")).unwrap_or(f);
        writeln!(src, "    ({rel:?}, include_bytes!({f:?})),").unwrap();
    }
    src.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(Path::new(&out).join("embedded.rs"), src).unwrap();
}
