//! Records the candle-core version this build resolved (from the workspace's Cargo.lock), so every
//! report can name the candle release that produced it without trusting a hand-typed constant.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let lock = manifest.join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| candle_version(&text))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HARNESS_CANDLE_VERSION={version}");
}

fn candle_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"candle-core\"" {
            let next = lines.next()?;
            let v = next
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(v.to_string());
        }
    }
    None
}
