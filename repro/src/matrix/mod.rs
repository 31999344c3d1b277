//! The version matrix report: reads the suite runs of several candle versions
//! (`<dir>/<backend>/suite.json` and the per-case JSON) and their sweeps
//! (`<dir>/sweep/<backend>/sweep.json`), and writes `matrix.{md,json}`: case or sweep divergence
//! × version × backend → verdict, plus "fixed in" / "regressed in" derived from the data.
//! A transition is claimed only between two versions that both have a definite answer on the
//! same backend: present in the earlier and absent in the later ("fixed in"), or the reverse.

mod collect;
mod markdown;
mod root_causes;

#[cfg(test)]
mod tests;

pub use collect::collect;
pub use markdown::markdown;
pub use root_causes::RootCauseRow;

use crate::error::Error;
use root_causes::root_cause_rows;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    Present,
    Absent,
    Unknown,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    pub case: String,
    pub version: String,
    pub backend: String,
    pub verdict: String,
    /// The CPU disagreed with the oracle in some variant (a backend-independent or CPU bug).
    pub cpu_diverges: bool,
    pub bug: Bug,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transition {
    pub case: String,
    pub backend: String,
    pub kind: String,
    pub from_version: String,
    pub to_version: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub versions: Vec<String>,
    pub cells: Vec<Cell>,
    pub transitions: Vec<Transition>,
    /// One row per (root cause of repro/bugs/, backend): its ids folded together.
    pub root_causes: Vec<RootCauseRow>,
}

impl Matrix {
    /// Reads a `matrix.json` that `matrix-report` wrote (the upstream texts' version rows).
    pub fn read(p: &Path) -> Result<Matrix, Error> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))
    }
}

/// The pseudo-version of scripts/patched.sh: the pin with patches/ applied, not a release.
pub const PATCHED: &str = "patched";

/// `repro matrix-report --out DIR VERSION=RUNDIR...`: an unreadable run is bad input (exit 2),
/// a failed write is this program's failure (exit 1).
pub fn write(
    out: &Path,
    runs: &[(String, PathBuf)],
    root_causes: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let causes = crate::sweep::known::load_root_causes(root_causes)?;
    let m = collect(runs, &causes)?;
    let io = |p: &Path, e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let md_path = out.join("matrix.md");
    let json_path = out.join("matrix.json");
    harness::report::write_atomic(&md_path, &markdown(&m, runs)).map_err(|e| io(&md_path, e))?;
    harness::report::write_atomic(
        &json_path,
        &(serde_json::to_string_pretty(&m).unwrap() + "\n"),
    )
    .map_err(|e| io(&json_path, e))?;
    Ok(vec![md_path, json_path])
}

/// `repro matrix-report --refold`: the root-cause rows of an existing `matrix.json` folded
/// again from its cells with the current bug files (after bug files merge or split root causes),
/// without the per-version runs; `matrix.md` keeps its list of runs.
pub fn refold(out: &Path, root_causes: &Path) -> Result<Vec<PathBuf>, Error> {
    let causes = crate::sweep::known::load_root_causes(root_causes)?;
    let json_path = out.join("matrix.json");
    let md_path = out.join("matrix.md");
    let mut m = Matrix::read(&json_path)?;
    let old_md = std::fs::read_to_string(&md_path)
        .map_err(|e| Error::BadInput(format!("{}: {e}", md_path.display())))?;
    let runs = old_md
        .find("## Runs\n")
        .map(|i| &old_md[i..])
        .ok_or_else(|| {
            Error::BadInput(format!("{} has no `## Runs` section", md_path.display()))
        })?;
    m.root_causes = root_cause_rows(&m.versions, &m.cells, &causes);
    let md = markdown(&m, &[]);
    let md = format!("{}{runs}", md.trim_end_matches("## Runs\n\n"));
    let io = |p: &Path, e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
    harness::report::write_atomic(&md_path, &md).map_err(|e| io(&md_path, e))?;
    harness::report::write_atomic(
        &json_path,
        &(serde_json::to_string_pretty(&m).unwrap() + "\n"),
    )
    .map_err(|e| io(&json_path, e))?;
    Ok(vec![md_path, json_path])
}
