//! Writing the generated files: repro sources formatted with rustfmt, every file written
//! atomically, stale ones removed.

use super::{Generated, REVIEW};
use crate::error::Error;
use std::path::{Path, PathBuf};

/// Formats Rust source with the `rustfmt` on the PATH (edition 2021, the workspace's), run in
/// `root` so it reads the workspace's rustfmt configuration if there is one.
pub fn rustfmt(root: &Path) -> impl Fn(&str) -> Result<String, Error> + '_ {
    move |src: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new("rustfmt")
            .args(["--edition", "2021", "--emit", "stdout"])
            .current_dir(root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot run rustfmt (rustup component add rustfmt): {e}"
                ))
            })?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(src.as_bytes())
            .map_err(|e| Error::Internal(format!("rustfmt: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Internal(format!("rustfmt: {e}")))?;
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "rustfmt rejected a generated repro: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        String::from_utf8(out.stdout).map_err(|e| Error::Internal(format!("rustfmt: {e}")))
    }
}

/// Writes every generated file atomically and removes the stale ones (`*.md` in `text_dir`,
/// `*.rs` in `repro_dir` that no root cause generates any more). Called only with a complete,
/// checked generation.
pub fn write(g: &Generated, text_dir: &Path, repro_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (dir, files, ext) in [(text_dir, &g.texts, "md"), (repro_dir, &g.repros, "rs")] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
        for (name, text) in files {
            let p = dir.join(name);
            harness::report::write_atomic(&p, text)
                .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
            written.push(p);
        }
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?
        {
            let p = entry.map_err(|e| Error::Internal(e.to_string()))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // REVIEW.md is the hand-kept record of the texts' independent review.
            let kept = name == REVIEW;
            if p.extension().is_some_and(|e| e == ext) && !files.contains_key(name) && !kept {
                std::fs::remove_file(&p)
                    .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
            }
        }
    }
    Ok(written)
}
