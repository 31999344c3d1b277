//! Writing reports to disk: atomically, one file at a time, and as a `.txt`/`.json`/`.md` set.

use super::{issue_markdown, json, text};
use crate::case::CaseReport;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted run never leaves a half-written report.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `<dir>/<backend>/<name>.{txt,json,md}` from contents rendered beforehand, each file
/// atomically; returns the paths written.
pub fn write_report_set(
    dir: &Path,
    backend: &str,
    name: &str,
    txt: String,
    json: String,
    md: String,
) -> std::io::Result<Vec<PathBuf>> {
    let folder = dir.join(backend);
    std::fs::create_dir_all(&folder)?;
    let files = [("txt", txt), ("json", json), ("md", md)]
        .map(|(ext, c)| (folder.join(format!("{name}.{ext}")), c));
    for (path, contents) in &files {
        write_atomic(path, contents)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// Writes `<dir>/<backend>/<case>.{txt,json,md}`; returns the paths written.
pub fn write_reports(dir: &Path, r: &CaseReport, snippet: &str) -> std::io::Result<Vec<PathBuf>> {
    write_report_set(
        dir,
        r.target_backend(),
        &r.case,
        text(r),
        json(r),
        issue_markdown(r, snippet),
    )
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn atomic_write_replaces_whole_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("harness-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.txt");
        write_atomic(&p, "first version, longer than the second").unwrap();
        write_atomic(&p, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["r.txt".to_string()]);
        // A write that cannot happen leaves nothing behind.
        assert!(write_atomic(&dir.join("missing/r.txt"), "x").is_err());
        assert!(!dir.join("missing").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
