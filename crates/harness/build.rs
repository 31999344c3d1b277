//! Records the candle-core version this build resolved (from the workspace's Cargo.lock), so every
//! report can name the candle release that produced it without trusting a hand-typed constant;
//! the rustc that compiles it; and, in a CUDA build, the release of the nvcc on the PATH (the
//! toolkit candle-kernels compiles its PTX with), so reports name the toolchain too.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let lock = manifest.join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| candle_version(&text))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HARNESS_CANDLE_VERSION={version}");

    // Cargo gives build scripts the compiler it builds with; a new rustc rebuilds everything.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_default();
    println!("cargo:rustc-env=HARNESS_RUSTC_VERSION={rustc_version}");

    let nvcc = if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        output("nvcc", &["--version"])
            .and_then(|s| nvcc_release(&s))
            .unwrap_or_default()
    } else {
        String::new()
    };
    println!("cargo:rustc-env=HARNESS_NVCC_RELEASE={nvcc}");
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `12.4` from nvcc's `Cuda compilation tools, release 12.4, V12.4.131`.
fn nvcc_release(text: &str) -> Option<String> {
    let rest = text.split("release ").nth(1)?;
    let v = rest.split([',', ' ', '\n']).next()?.trim();
    (!v.is_empty()).then(|| v.to_string())
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
