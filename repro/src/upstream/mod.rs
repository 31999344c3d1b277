//! One upstream text per bug file: `reports/upstream/<root-cause>.md`. The prose (lead, cause,
//! fix, quotes, what to do upstream) comes from `repro/bugs/<root-cause>.md`, written by a person
//! who read candle's source; everything a run knows is added here: a short repro built from the
//! shrunk sweep cell of one representative id (also written to
//! `repro/upstream-repros/src/bin/<root-cause>.rs`, which CI compiles and runs on the CPU), the
//! answer each backend gave with a label computed by judging that answer again, the
//! environment, and the releases that show it. The part to paste ends at a `<details>` fold
//! under which the evidence goes.
//!
//! Inputs: the bug files, `repro/sweep-known.toml` and `repro/expected.toml` (what runs
//! observed, per backend), `reports/sweep/*/sweep.json` (the shrunk cells and their evidence),
//! `reports/<backend>/<case>.json` (suite cases) and `reports/matrix.json` (which candle versions
//! show each id). `load` refuses a report folder without those runs; everything below it is a
//! pure function of the data.

mod checks;
mod evidence;
mod files;
mod index;
mod load;
mod outputs;
mod program;
mod results;
mod text;
mod versions;

#[cfg(test)]
mod tests;

pub use checks::{
    broken_code_span, check, contradiction, summary_promises_missing_part, PASTE_MAX,
    REPRO_LINES_MAX,
};
pub use evidence::environment_line;
pub use files::{rustfmt, write};
pub use index::{action_cell, index};
pub use load::load;
pub use outputs::{fnv1a, Outputs};
pub use program::{expected_answer, representative, repro, Expected, Repro};
pub use results::{labelled, Label};
pub use text::{pasteable, render, FOLD};
pub use versions::versions_line;

use crate::error::Error;
use crate::matrix::Bug as MatrixBug;
use crate::sweep::known::{KnownSet, RootCause};
use program::better_representative;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the texts go, under the report folder.
pub const TEXT_DIR: &str = "upstream";
/// Where the repros go, as bins of a crate CI builds.
pub const REPRO_DIR: &str = "repro/upstream-repros/src/bin";
/// Where a later step puts a fix per root cause (`<key>.patch`); linked when present.
pub const PATCH_DIR: &str = "patches/candle-0.11.1";

/// A sweep report's target device, as `harness::device::DeviceInfo` writes it.
pub type Target = harness::device::DeviceInfo;

/// A sweep report and one of its divergences, as the sweep wrote them (`SweepReport::read`).
pub type SweepRun = crate::sweep::report::SweepReport;
pub type SweepDivergence = crate::sweep::report::Divergence;

/// One step of a suite case where a backend disagrees with the oracle.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseStep {
    pub variant: String,
    pub about: String,
    pub code: String,
    pub expected: String,
    /// What the CPU (the suite's reference backend) returned.
    pub cpu: String,
    pub target: String,
}

/// The parts of `reports/<backend>/<case>.json` a text uses.
#[derive(Clone, Debug)]
pub struct CaseRun {
    pub verdict: String,
    pub candle_version: String,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub target: Target,
    pub differing: Vec<CaseStep>,
}

/// `reports/matrix.json`: versions, and per (case or `sweep:<id>`, backend, version) whether the
/// bug showed.
#[derive(Clone, Debug, Default)]
pub struct VersionMatrix {
    pub versions: Vec<String>,
    pub bug: BTreeMap<(String, String, String), MatrixBug>,
}

/// Everything the texts are generated from.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub root_causes: BTreeMap<String, RootCause>,
    pub known: KnownSet,
    pub suite: BTreeMap<String, BTreeMap<String, crate::manifest::Expectation>>,
    /// backend → its sweep report.
    pub sweeps: BTreeMap<String, SweepRun>,
    /// (case, backend) → its suite report.
    pub cases: BTreeMap<(String, String), CaseRun>,
    pub matrix: VersionMatrix,
    /// The candle release the texts are about (the workspace's pin).
    pub pinned: String,
    /// The commit candle's pinned crates were published from: quotes link there.
    pub candle_commit: String,
    /// `patches/candle-0.11.1/<file>` → its text, for every patch a bug file names.
    pub patches: BTreeMap<String, String>,
    /// What the repro programs printed when run on a GPU machine (`OUTPUTS`), if recorded.
    pub outputs: Option<Outputs>,
    /// A quote's code (as written in its bug file) → the same lines with `…` where lines of the
    /// source are left out between them.
    pub elided: BTreeMap<String, String>,
}

/// The review of the texts, kept beside them (not generated).
pub const REVIEW: &str = "REVIEW.md";

/// Where the recorded output of the repro programs lives, under the report folder.
pub const OUTPUTS: &str = "upstream/outputs/cuda.txt";

pub use crate::bugs::UPSTREAM;

/// Every generated file: texts (file name under the text folder) and repros (file name under
/// the repro folder). `format` formats a repro's source (rustfmt), so the committed bins are
/// what `cargo fmt` leaves them.
pub struct Generated {
    pub texts: BTreeMap<String, String>,
    pub repros: BTreeMap<String, String>,
    /// Texts whose repro shows the bug on fewer backends than another claimed input would.
    pub partial: Vec<String>,
}

pub fn generate(
    data: &Data,
    format: &dyn Fn(&str) -> Result<String, Error>,
) -> Result<Generated, Error> {
    let mut texts = BTreeMap::new();
    let mut repros = BTreeMap::new();
    let mut partial = Vec::new();
    for (key, r) in &data.root_causes {
        // A representative the bug file names was chosen by its author; otherwise the automatic
        // choice must show the bug on as many backends as any claimed input does.
        let automatic = r.bug.is_bug() && r.bug.front.representative.is_none();
        if let Some(id) = automatic.then(|| better_representative(r, data)).flatten() {
            partial.push(format!(
                "{key}.md: its repro shows the bug on fewer backends than the input of `{id}` would (set `representative = \"{id}\"`)"
            ));
        }
        let repro = if r.bug.is_bug() {
            repro(r, data)?
        } else {
            None
        };
        let source = match &repro {
            Some(rp) => Some(format(&rp.source)?),
            None => None,
        };
        let md = render(key, data, repro.as_ref().zip(source.as_deref()))?;
        if let Some(src) = source {
            repros.insert(format!("{key}.rs"), src);
        }
        texts.insert(format!("{key}.md"), md);
    }
    texts.insert("README.md".into(), index(data));
    Ok(Generated {
        texts,
        repros,
        partial,
    })
}

/// `repro upstream`: loads the data (workspace root = the current folder), generates and checks
/// every text, then writes the texts to `out` (default `<report_dir>/upstream`) and the repros
/// to `repro_dir`. Any refusal comes before the first write.
pub fn run_command(
    report_dir: &Path,
    out: Option<&Path>,
    repro_dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let root = Path::new(".");
    let data = load(root, report_dir)?;
    let g = generate(&data, &rustfmt(root))?;
    check(&g)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| report_dir.join(TEXT_DIR));
    write(&g, &out, repro_dir)
}

/// `repro upstream --draft OUT`: while writing a bug file, every text as it would be, written to
/// `OUT` (never the committed folders) even when some fail the checks, which are printed.
pub fn draft(report_dir: &Path, out: &Path) -> Result<Vec<PathBuf>, Error> {
    let root = Path::new(".");
    let data = load(root, report_dir)?;
    let g = generate(&data, &rustfmt(root))?;
    if let Err(e) = check(&g) {
        eprintln!("{e}");
    }
    write(&g, &out.join("texts"), &out.join("bin"))
}
