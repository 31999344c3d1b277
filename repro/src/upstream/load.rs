//! Loading (the only part that reads files): the bug files, the manifests, the sweep and suite
//! reports, the version matrix, the patches, the recorded outputs and candle's sources.

use super::{CaseRun, CaseStep, Data, Outputs, SweepRun, VersionMatrix, OUTPUTS, PATCH_DIR};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::sweep::known::{self, KnownSet};
use harness::case::CaseReport;
use harness::compare::Check;
use harness::observe::{Expected as OracleExpected, Outcome};
use std::collections::BTreeMap;
use std::path::Path;

fn show_tensor(dtype: &str, shape: &[usize], values: &[f64]) -> String {
    let v: Vec<String> = values.iter().take(12).map(|x| format!("{x}")).collect();
    let more = if values.len() > 12 { ", …" } else { "" };
    format!("{dtype} {shape:?} [{}{more}]", v.join(", "))
}

fn show_expected(e: &OracleExpected) -> String {
    match e {
        OracleExpected::Tensor(t) => {
            show_tensor(harness::host::dtype_name(t.dtype), &t.shape, &t.values)
        }
        OracleExpected::Rejected(r) => format!("rejects the call: {}", r.reason),
    }
}

/// A backend's outcome of a case step in one line (`null` where the step did not run there).
fn show_outcome(o: Option<&Outcome>) -> String {
    match o {
        Some(Outcome::Tensor(t)) => show_tensor(
            harness::host::dtype_name(t.meta.dtype),
            &t.meta.shape,
            &t.values,
        ),
        Some(Outcome::Error { message }) => format!("error: {message}"),
        Some(Outcome::Panic { message }) => format!("panic: {message}"),
        None => "null".into(),
    }
}

fn case_run(r: &CaseReport) -> CaseRun {
    let env = &r.environment;
    let mut differing = Vec::new();
    for variant in &r.variants {
        for step in &variant.steps {
            let off = |c: Option<&Check>| c.is_some_and(|c| *c != Check::Agrees);
            if off(Some(&step.reference_vs_oracle)) || off(step.target_vs_oracle.as_ref()) {
                differing.push(CaseStep {
                    variant: variant.name.clone(),
                    about: variant.about.clone(),
                    code: step.code.clone(),
                    expected: show_expected(&step.expected),
                    cpu: show_outcome(Some(&step.reference)),
                    target: show_outcome(step.target.as_ref()),
                });
            }
        }
    }
    CaseRun {
        verdict: r.verdict.as_str().into(),
        candle_version: env.candle_version.clone(),
        os: Some(env.os.clone()),
        arch: Some(env.arch.clone()),
        target: env.target.clone(),
        differing,
    }
}

/// Reads every input. `root` is the workspace root (manifests, bug files, patches),
/// `report_dir` the folder holding `sweep/`, `<backend>/` and `matrix.json`. Refuses (one line,
/// before anything is written) a report folder that lacks the sweep of a backend the manifest
/// observed divergences on, a sweep of another candle release than the pinned one, or a
/// missing version matrix: texts generated from a partial set would be wrong, and writing them
/// would delete the committed repros as stale.
pub fn load(root: &Path, report_dir: &Path) -> Result<Data, Error> {
    let root_causes = known::load_root_causes(&root.join(known::ROOT_CAUSES_PATH))?;
    let known_set = KnownSet::load(&root.join(known::DEFAULT_PATH))?;
    let case_names: Vec<&str> = crate::cases::all().iter().map(|c| c.name).collect();
    let suite = Manifest::load(&root.join(crate::manifest::DEFAULT_PATH), &case_names)?.entries;
    let pinned = harness::device::CANDLE_VERSION.to_string();
    let mut sweeps = BTreeMap::new();
    let mut cases = BTreeMap::new();
    for b in crate::manifest::BACKENDS {
        let p = report_dir.join("sweep").join(b).join("sweep.json");
        let observed_here = known_set
            .entries
            .values()
            .any(|k| k.observed && k.backends.iter().any(|x| x == b));
        if p.is_file() {
            let run = SweepRun::read(&p).map_err(Error::BadInput)?;
            if run.candle_version != pinned {
                return Err(Error::BadInput(format!(
                    "{} is a run of candle {}, the texts are about the pinned {pinned}: nothing written",
                    p.display(),
                    run.candle_version
                )));
            }
            sweeps.insert(b.to_string(), run);
        } else if observed_here {
            return Err(Error::BadInput(format!(
                "{} is missing, and repro/sweep-known.toml holds divergences observed on {b}: give the report folder of a complete run (default `reports`); nothing written",
                p.display()
            )));
        }
        for case in &case_names {
            let json = report_dir.join(b).join(format!("{case}.json"));
            if json.is_file() {
                cases.insert(
                    (case.to_string(), b.to_string()),
                    case_run(&CaseReport::read(&json).map_err(Error::BadInput)?),
                );
            }
        }
    }
    let mut patches = BTreeMap::new();
    for r in root_causes.values() {
        for p in &r.bug.front.patches {
            let path = root.join(PATCH_DIR).join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::BadInput(format!(
                    "repro/bugs/{}.md names the patch {p}: {e}",
                    r.bug.key
                ))
            })?;
            patches.insert(p.clone(), text);
        }
    }
    let mut matrix = VersionMatrix::default();
    let mp = report_dir.join("matrix.json");
    if !mp.is_file() {
        return Err(Error::BadInput(format!(
            "{} is missing (the versions that show each bug); nothing written",
            mp.display()
        )));
    }
    let m = crate::matrix::Matrix::read(&mp)?;
    matrix.versions = m.versions;
    for c in m.cells {
        matrix.bug.insert((c.case, c.backend, c.version), c.bug);
    }
    let op = report_dir.join(OUTPUTS);
    let outputs = if op.is_file() {
        let text = std::fs::read_to_string(&op)
            .map_err(|e| Error::BadInput(format!("{}: {e}", op.display())))?;
        Some(Outputs::parse(&text).map_err(|e| Error::BadInput(format!("{}: {e}", op.display())))?)
    } else {
        None
    };
    let sources = crate::bugs::Sources::find(&pinned)?;
    let candle_commit = sources
        .commit("candle-core/src/lib.rs")
        .map_err(Error::BadInput)?;
    let mut elided = BTreeMap::new();
    for r in root_causes.values() {
        for q in r.bug.front.quote.iter().chain(&r.bug.front.contract) {
            if let Ok(text) = sources.elided(q) {
                elided.insert(q.code.clone(), text);
            }
        }
    }
    Ok(Data {
        root_causes,
        known: known_set,
        suite,
        sweeps,
        cases,
        matrix,
        pinned,
        candle_commit,
        patches,
        outputs,
        elided,
    })
}
