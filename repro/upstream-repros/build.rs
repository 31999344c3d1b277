//! Writes `$OUT_DIR/all.rs`: every program of `src/bin/` as a module, so one executable runs any
//! of them (`all-upstream-repros <name>`). A GPU run then carries one executable instead of one
//! per program, each of which embeds all of candle's CUDA kernels.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let bins = manifest.join("src").join("bin");
    println!("cargo:rerun-if-changed=src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&bins)
        .expect("src/bin is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    names.sort();
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        let path = bins.join(format!("{name}.rs"));
        let _ = writeln!(
            out,
            "mod p{i} {{\n    include!({path:?});\n    pub fn entry() -> candle_core::Result<()> {{\n        main()\n    }}\n}}"
        );
    }
    // Each program with the FNV-1a hash of its source, so a recorded output names the exact
    // program that printed it.
    out.push_str("/// One program: its name, the hash of its source, its `main`.\npub type Program = (&'static str, &'static str, fn() -> candle_core::Result<()>);\npub const PROGRAMS: &[Program] = &[\n");
    for (i, name) in names.iter().enumerate() {
        let src = std::fs::read(bins.join(format!("{name}.rs"))).expect("readable");
        let _ = writeln!(
            out,
            "    ({name:?}, \"{:016x}\", p{i}::entry),",
            fnv1a(&src)
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("all.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// FNV-1a, 64 bits (also in repro's `upstream.rs`, which checks recorded outputs against it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
