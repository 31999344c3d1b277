//! Where candle's sources and this workspace are (`cargo metadata`), and reading a source file.

use crate::error::Error;
use std::path::{Path, PathBuf};

pub(super) fn read(p: &Path) -> Result<String, Error> {
    std::fs::read_to_string(p).map_err(|e| Error::unreadable(p, e))
}

/// Where candle's sources and this workspace are, from `cargo metadata` run in `dir`.
#[derive(Debug)]
pub struct Sources {
    pub core_version: String,
    pub nn_version: String,
    pub core_src: PathBuf,
    pub nn_src: PathBuf,
    pub workspace_root: PathBuf,
}

pub fn locate(dir: &Path) -> Result<Sources, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(dir)
        .output()
        .map_err(|e| Error::input(format!("cannot run `cargo metadata`: {e}")))?;
    if !out.status.success() {
        return Err(Error::input(format!(
            "`cargo metadata` failed in {} (run from the checkout): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::internal(format!("`cargo metadata` output: {e}")))?;
    let package = |name: &str| -> Result<(String, PathBuf), Error> {
        let p = meta["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .ok_or_else(|| Error::input(format!("`cargo metadata` lists no package {name}")))?;
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let src = manifest.parent().unwrap_or(Path::new(".")).join("src");
        Ok((p["version"].as_str().unwrap_or("?").to_string(), src))
    };
    let (core_version, core_src) = package("candle-core")?;
    let (nn_version, nn_src) = package("candle-nn")?;
    Ok(Sources {
        core_version,
        nn_version,
        core_src,
        nn_src,
        workspace_root: PathBuf::from(meta["workspace_root"].as_str().unwrap_or(".")),
    })
}
