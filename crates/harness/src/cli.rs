//! The command-line plumbing every binary of the workspace shares (the repro runner, the case and
//! perf binaries, moe_bench): open a device from its spec, check a report folder before anything
//! runs, write a report's files, and say what went wrong in one line. Messages are plain strings
//! here; `repro::error` types them for the repro crate.

use std::path::{Path, PathBuf};

/// Parses and opens a device spec (`auto`, `cpu`, `cuda[:N]`, `metal[:N]`), or says why not.
pub fn open_device(spec: &str) -> Result<candle_core::Device, String> {
    let spec: crate::DeviceSpec = spec.parse()?;
    crate::device::open(spec).map_err(|e| e.to_string())
}

/// Fails unless `dir/<backend>` can be created and written, before anything runs, so a bad
/// report folder costs nothing and leaves nothing behind.
pub fn check_report_dir(dir: &Path, backend: &str) -> Result<(), String> {
    let folder = dir.join(backend);
    let probe = folder.join(format!(".write-probe-{}", std::process::id()));
    std::fs::create_dir_all(&folder)
        .and_then(|_| std::fs::write(&probe, b""))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write reports under {}: {e}", dir.display()))
}

/// Writes `files` (name, contents) into `dir/<backend>/`, each atomically; returns their paths.
pub fn write_report_files(
    dir: &Path,
    backend: &str,
    files: &[(&str, &str)],
) -> Result<Vec<PathBuf>, String> {
    let folder = dir.join(backend);
    let mut written = Vec::new();
    for (name, contents) in files {
        let p = folder.join(name);
        crate::report::write_atomic(&p, contents)
            .map_err(|e| format!("cannot write reports under {}: {e}", dir.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// One `error: ...` line on stderr and the given exit code.
pub fn fail(code: u8, message: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("error: {message}");
    std::process::ExitCode::from(code)
}
