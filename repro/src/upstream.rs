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

use crate::bugs::{Action, Bug, Quote};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::matrix::Bug as MatrixBug;
use crate::sweep::exec;
use crate::sweep::exec::Category;
use crate::sweep::id::Claim;
use crate::sweep::known::{self, KnownSet, RootCause};
use crate::sweep::ops::{self, Op, Reference};
use crate::sweep::Shrunk;
use harness::case::CaseReport;
use harness::compare::Check;
use harness::host::HostTensor;
use harness::observe::{Expected as OracleExpected, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
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

/// `upstream/outputs/cuda.txt`: `# ` header lines (the machine), then per program
/// `=== <name> <hash of its source>`, its output, `=== exit <code>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    pub machine: Vec<String>,
    /// name → (source hash, output, exit code).
    pub programs: BTreeMap<String, (String, String, i32)>,
}

/// FNV-1a, 64 bits, as `repro/upstream-repros/build.rs` hashes each program it embeds.
pub fn fnv1a(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}")
}

impl Outputs {
    pub fn parse(text: &str) -> Result<Outputs, String> {
        let mut o = Outputs::default();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("# ") {
                o.machine.push(h.to_string());
            } else if let Some(code) = line.strip_prefix("=== exit ") {
                let (head, out) = current.take().ok_or("`=== exit` before `=== <name>`")?;
                let (name, hash) = head
                    .split_once(' ')
                    .ok_or_else(|| format!("`=== {head}` names no source hash"))?;
                let code = code
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}: exit {code:?}"))?;
                o.programs
                    .insert(name.to_string(), (hash.to_string(), out, code));
            } else if let Some(head) = line.strip_prefix("=== ") {
                current = Some((head.trim().to_string(), String::new()));
            } else if let Some((_, out)) = current.as_mut() {
                out.push_str(line);
                out.push('\n');
            }
        }
        if current.is_some() {
            return Err("the last program has no `=== exit` line".into());
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading (the only part that reads files).

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

// ---------------------------------------------------------------------------------------------
// What a text says: pure functions of `Data`.

/// `#3253` for an issue or pull request number.
fn issue_link(n: u32) -> String {
    format!("[#{n}]({UPSTREAM}/issues/{n})")
}

pub use crate::bugs::UPSTREAM;

/// The action column of the filing plan and STATUS.md.
pub fn action_cell(b: &Bug) -> String {
    match (b.front.action, b.front.target) {
        (Action::Comment, Some(n)) => format!("comment on {}", issue_link(n)),
        (Action::PrExists, Some(n)) => format!("confirm on PR {}", issue_link(n)),
        (Action::Question, Some(n)) => format!("question on {}", issue_link(n)),
        (Action::Question, None) => "question (new issue)".into(),
        (Action::NotABug, _) => "not a bug: nothing to file".into(),
        _ => "new issue".into(),
    }
}

/// What the person filing does with the text, in one line (above the text, not pasted).
fn filing_line(b: &Bug) -> String {
    match (b.front.action, b.front.target) {
        (Action::Comment, Some(n)) => format!("Post the rest of this file as a comment on {UPSTREAM}/issues/{n} (the evidence stays folded)."),
        (Action::PrExists, Some(n)) => format!("Post the rest of this file as a comment on the pull request {UPSTREAM}/pull/{n} (the evidence stays folded)."),
        (Action::Question, Some(n)) => format!("Ask on {UPSTREAM}/issues/{n}: post the rest of this file as a comment (the evidence stays folded)."),
        (Action::Question, None) => format!("Open a new issue at {UPSTREAM}/issues/new asking the question: the title, then the rest of this file (the evidence stays folded)."),
        (Action::NotABug, _) => "Not for filing: this records why the claim is not a candle bug.".into(),
        _ => format!("Open a new issue at {UPSTREAM}/issues/new: the title, then the rest of this file (the evidence stays folded)."),
    }
}

fn category_rank(c: &Category) -> usize {
    match c {
        Category::WrongResult | Category::NonFinite => 0,
        Category::Crash => 1,
        Category::Unimplemented => 2,
        Category::ErrorMismatch => 3,
    }
}

/// The sweep record of `id` with the most backends observed (a CUDA sweep also runs the CPU).
fn record<'a>(data: &'a Data, id: &str) -> Option<(&'a SweepRun, &'a SweepDivergence)> {
    data.sweeps
        .values()
        .filter_map(|run| {
            run.divergences
                .iter()
                .find(|d| d.id == id && d.repro.is_some())
                .map(|d| (run, d))
        })
        .max_by_key(|(run, _)| run.backends.len())
}

/// The id whose shrunk cell becomes the repro: one that diverged again when re-run, then the
/// most telling category (a wrong result before a crash before a failure), then the one seen on
/// the most backends, then small integer inputs (below 1e6 in magnitude), then the fewest input
/// elements, then the id.
pub fn representative<'a>(
    r: &RootCause,
    data: &'a Data,
) -> Option<(&'a SweepRun, &'a SweepDivergence)> {
    if let Some(rep) = &r.bug.front.representative {
        // `<backend>:<id>` picks the input that backend's run recorded.
        return match rep.split_once(':') {
            Some((backend, id)) => data.sweeps.get(backend).and_then(|run| {
                run.divergences
                    .iter()
                    .find(|d| d.id == id && d.repro.is_some())
                    .map(|d| (run, d))
            }),
            None => record(data, rep),
        };
    }
    r.ids
        .iter()
        .filter(|id| !id.starts_with("case:"))
        .filter_map(|id| record(data, id))
        .min_by_key(|(_, d)| {
            let s = d.repro.as_ref().expect("filtered");
            let values = s.evidence.inputs.iter().flat_map(|i| i.values.iter());
            let integers = values.clone().all(|v| v.fract() == 0.0 && v.abs() < 1e6);
            // Elements by shape: evidence keeps only the first values of a long row.
            let elements: usize = s
                .evidence
                .inputs
                .iter()
                .map(|i| i.shape.iter().product::<usize>())
                .sum();
            (
                !s.reproduced_on_rerun,
                category_rank(&d.category),
                std::cmp::Reverse(d.backends.len()),
                !integers,
                elements,
                d.id.clone(),
            )
        })
}

/// `dtype shape [values]` with every value up to 64 of them; a longer output keeps its first 12
/// and `…`.
fn full(h: &HostTensor) -> String {
    let shown = if h.values.len() > 64 {
        12
    } else {
        h.values.len()
    };
    let v: Vec<String> = h.values[..shown].iter().map(|x| format!("{x}")).collect();
    let more = if shown < h.values.len() { ", …" } else { "" };
    format!(
        "{} {:?} [{}{more}]",
        h.dtype.as_str(),
        h.shape,
        v.join(", ")
    )
}

/// The expected answer for the representative's pass, computed again from the cell (the
/// oracle is plain Rust), in one line. A gradient (central differences, good to about 1e-8 of
/// its terms) is shown to nine significant digits, as `≈ …` (1.5, not 1.4999999999876221).
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub line: String,
}

pub fn expected_answer(op: &Op, s: &Shrunk) -> Result<Expected, Error> {
    let pass = &s.finding.pass;
    let recorded = s
        .evidence
        .reference
        .get(pass)
        .ok_or_else(|| Error::BadInput(format!("{}: no reference for {pass}", s.id)))?;
    let inputs = exec::prepare(op, &s.cell);
    // (the full answer, what the text shows)
    let (full_line, shown) = match pass.strip_prefix("backward ") {
        None => {
            let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
            let line = match (op.oracle)(&s.cell, &hosts) {
                Reference::Values(v) => full(&v),
                Reference::Rejected(r) => format!("rejects the call: {}", r.reason),
                Reference::Unspecified(w) => format!("unspecified: {w}"),
            };
            (line.clone(), line)
        }
        Some(role) => {
            let which = exec::grad_inputs(op, &s.cell, &inputs);
            let w = s
                .evidence
                .loss_weights
                .as_ref()
                .ok_or_else(|| Error::BadInput(format!("{}: no loss weights", s.id)))?;
            let grads = exec::reference_grads(op, &s.cell, &inputs, &which, w)
                .ok_or_else(|| Error::BadInput(format!("{}: no reference gradient", s.id)))?;
            let at = which
                .iter()
                .position(|&i| inputs[i].role == role)
                .ok_or_else(|| Error::BadInput(format!("{}: {role} has no gradient", s.id)))?;
            let mut g = grads[at].clone();
            let line = full(&g);
            for v in &mut g.values {
                if v.is_finite() && *v != 0.0 {
                    *v = format!("{v:.8e}")
                        .parse()
                        .expect("a formatted float parses");
                }
            }
            (line, format!("≈ {}", full(&g)))
        }
    };
    let head = recorded.trim_end_matches("…]").trim_end_matches(", ");
    if !full_line.starts_with(head) {
        return Err(Error::BadInput(format!(
            "{}: the oracle now gives `{full_line}` where the run recorded `{recorded}`",
            s.id
        )));
    }
    Ok(Expected { line: shown })
}

/// The cell regenerated from its seed must give the inputs the run recorded.
fn check_inputs(op: &Op, s: &Shrunk) -> Result<(), Error> {
    let inputs = exec::prepare(op, &s.cell);
    let same = inputs.len() == s.evidence.inputs.len()
        && inputs.iter().zip(&s.evidence.inputs).all(|(a, b)| {
            let kept = b.values.len() == exec::KEPT && a.host.values.len() > exec::KEPT;
            a.host.shape == b.shape
                && (a.host.values.len() == b.values.len() || kept)
                && a.host
                    .values
                    .iter()
                    .zip(&b.values)
                    .all(|(x, y)| exec::same_value(*x, *y))
        });
    if same {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{}: its cell (seed {}) no longer regenerates the inputs the run recorded",
            s.id, s.cell.seed
        )))
    }
}

/// A standalone program and what it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Repro {
    /// The representative id.
    pub id: String,
    /// `main.rs` (before formatting).
    pub source: String,
    pub uses_nn: bool,
    pub uses_cuda: bool,
    /// The program tries CUDA only to compare (the bug does not show there).
    pub compares_on_cuda: bool,
    pub expected: Expected,
    pub candle_version: String,
}

impl Repro {
    /// The dependency lines a `cargo new` project adds.
    pub fn dependencies(&self) -> String {
        let features = if self.uses_cuda {
            ", features = [\"cuda\"]"
        } else {
            ""
        };
        let mut deps = format!(
            "candle-core = {{ version = \"={}\"{features} }}",
            self.candle_version
        );
        if self.uses_nn {
            let _ = write!(
                deps,
                "\ncandle-nn = {{ version = \"={}\"{features} }}",
                self.candle_version
            );
        }
        deps
    }
}

/// The repro of a root cause from its representative's shrunk cell.
pub fn repro(r: &RootCause, data: &Data) -> Result<Option<Repro>, Error> {
    let Some((run, d)) = representative(r, data) else {
        return Ok(None);
    };
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op)
        .ok_or_else(|| Error::BadInput(format!("{}: unknown op {}", d.id, d.op)))?;
    check_inputs(op, s)?;
    let expected = expected_answer(op, s)?;
    // Every backend whose answer the text shows: the program prints what the table says.
    let devices: Vec<&str> = s
        .evidence
        .observed
        .get(&s.finding.pass)
        .into_iter()
        .flat_map(|per| per.keys())
        .map(String::as_str)
        .filter(|b| *b != "cpu")
        .collect();
    let out_dtype = expected
        .line
        .trim_start_matches("≈ ")
        .split(' ')
        .next()
        .unwrap_or("");
    let optional: Vec<&str> = devices
        .iter()
        .copied()
        .filter(|d| !r.backends.iter().any(|b| b == d))
        .collect();
    let p = crate::sweep::emit::program(
        op,
        s,
        &devices,
        &optional,
        out_dtype,
        r.bug.front.later_call,
    );
    Ok(Some(Repro {
        id: d.id.clone(),
        source: p.source,
        uses_nn: p.uses_nn,
        uses_cuda: p.uses_cuda,
        compares_on_cuda: optional.contains(&"cuda"),
        expected,
        candle_version: run.candle_version.clone(),
    }))
}

/// Consecutive versions as ranges: `0.9.2–0.11.1`, or a list where a version is missing.
fn version_span(all: &[String], shown: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let flush = |run: &mut Vec<&str>, parts: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 | 2 => parts.extend(run.iter().map(|v| v.to_string())),
            _ => parts.push(format!("{}–{}", run[0], run[run.len() - 1])),
        }
        run.clear();
    };
    for v in all {
        if shown.contains(&v.as_str()) {
            run.push(v);
        } else {
            flush(&mut run, &mut parts);
        }
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

/// Which candle releases show the root cause, per backend, in one line: from the version
/// matrix, every claimed id folded together (shows where any did, absent where none did and one
/// ran). Then whether the patched pin still shows it.
pub fn versions_line(r: &RootCause, data: &Data) -> String {
    let releases: Vec<String> = data
        .matrix
        .versions
        .iter()
        .filter(|v| v.as_str() != crate::matrix::PATCHED)
        .cloned()
        .collect();
    if releases.is_empty() {
        return "no version matrix was recorded".into();
    }
    let mut parts = Vec::new();
    let mut patched: BTreeSet<&str> = BTreeSet::new();
    for b in &r.backends {
        let state = |v: &str| -> &str {
            let mut any_absent = false;
            for id in &r.ids {
                match data.matrix.bug.get(&(
                    Claim::parse(id).matrix_row(),
                    b.clone(),
                    v.to_string(),
                )) {
                    Some(MatrixBug::Present) => return "present",
                    Some(MatrixBug::Absent) => any_absent = true,
                    _ => {}
                }
            }
            if any_absent {
                "absent"
            } else {
                "unknown"
            }
        };
        let shows: Vec<&str> = releases
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "present")
            .collect();
        let absent: Vec<&str> = releases
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "absent")
            .collect();
        let ran = shows.len() + absent.len();
        let mut text = if shows.is_empty() {
            format!("{b}: not shown in the {ran} releases that ran")
        } else {
            format!("{b}: shows in {}", version_span(&releases, &shows))
        };
        let first = releases.iter().position(|v| state(v) == "present");
        let before: Vec<&str> = releases[..first.unwrap_or(0)]
            .iter()
            .map(String::as_str)
            .filter(|v| state(v) == "absent")
            .collect();
        if !before.is_empty() {
            let _ = write!(text, " (not in {})", version_span(&releases, &before));
        } else if !shows.is_empty() && absent.is_empty() {
            let oldest_run = releases
                .iter()
                .position(|v| state(v) != "unknown")
                .unwrap_or(0);
            if oldest_run == 0 {
                let _ = write!(text, " (every release tested)");
            } else {
                let _ = write!(text, " (the oldest release run on {b})");
            }
        }
        let after: Vec<&str> = match first {
            Some(f) => releases[f..]
                .iter()
                .map(String::as_str)
                .filter(|v| state(v) == "absent")
                .collect(),
            None => vec![],
        };
        if !after.is_empty() {
            let _ = write!(text, "; absent again in {}", after.join(", "));
        }
        parts.push(text);
        let p = state(crate::matrix::PATCHED);
        patched.insert(p);
    }
    let mut line = parts.join("; ");
    let has_patch = !r.bug.front.patches.is_empty();
    if has_patch
        && data
            .matrix
            .versions
            .iter()
            .any(|v| v == crate::matrix::PATCHED)
    {
        let _ = write!(
            line,
            "; 0.11.1 with the patches applied: {}",
            if patched.len() == 1 && patched.contains("absent") {
                "gone"
            } else if patched.contains("present") {
                "still shows"
            } else {
                "not run"
            }
        );
    }
    line
}

/// Compute capability is a property of the chip; stated for the GPUs this project ran on when a
/// run did not record it.
fn known_compute_capability(name: &str) -> Option<&'static str> {
    (name.contains("H100") || name.contains("H200")).then_some("9.0")
}

/// The environment of a run, in one line.
pub fn environment_line(run: &SweepRun, data: &Data) -> String {
    let t = &run.target;
    let os = t.os.clone().or_else(|| {
        // The suite, run on the same device model and driver, records its OS.
        data.cases
            .values()
            .find(|c| {
                c.target.backend == t.backend
                    && c.target.name == t.name
                    && c.target.driver == t.driver
            })
            .and_then(|c| c.os.clone())
    });
    let mut parts = vec![format!("candle {}", run.candle_version)];
    if let Some(os) = os {
        parts.push(os);
    }
    if let Some(r) = &t.rustc {
        parts.push(r.split(" (").next().unwrap_or(r).to_string());
    }
    if t.backend == "cuda" {
        let cc = t
            .compute_capability
            .clone()
            .or_else(|| known_compute_capability(&t.name).map(str::to_string));
        let mut gpu = t.name.clone();
        if let Some(cc) = cc {
            let _ = write!(gpu, " (compute capability {cc})");
        }
        parts.push(gpu);
        if let Some(d) = &t.driver {
            parts.push(format!("driver {d}"));
        }
        match (&t.cuda_driver_api, &t.cuda_toolkit) {
            (Some(a), Some(b)) if a == b => parts.push(format!("CUDA {a} (driver and toolkit)")),
            (a, b) => {
                if let Some(a) = a {
                    parts.push(format!("CUDA driver API {a}"));
                }
                if let Some(b) = b {
                    parts.push(format!("CUDA toolkit {b}"));
                }
            }
        }
    } else {
        parts.push(t.name.clone());
    }
    parts.join(" · ")
}

/// How one backend's answer compares with the expected one: computed from the value itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Agrees,
    /// Refuses a call the contract forbids, as expected.
    Refuses,
    Differs,
    Errors,
    Panics,
    /// Accepts a call the contract forbids, or refuses it unlike the other backend.
    ErrorMismatch,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Agrees => "agrees",
            Label::Refuses => "refuses, as expected",
            Label::Differs => "differs",
            Label::Errors => "errors",
            Label::Panics => "panics",
            Label::ErrorMismatch => "answers an invalid call differently",
        }
    }

    pub fn of(judged: Option<exec::Category>) -> Label {
        match judged {
            None => Label::Agrees,
            Some(exec::Category::Crash) => Label::Panics,
            Some(exec::Category::Unimplemented) => Label::Errors,
            Some(exec::Category::ErrorMismatch) => Label::ErrorMismatch,
            Some(exec::Category::WrongResult | exec::Category::NonFinite) => Label::Differs,
        }
    }
}

/// Each backend's recorded answer for the representative's pass, labelled by judging it again.
pub fn labelled(d: &SweepDivergence) -> Result<Vec<(String, String, Label)>, Error> {
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op)
        .ok_or_else(|| Error::BadInput(format!("{}: unknown op {}", d.id, d.op)))?;
    let mut out = Vec::new();
    for (b, o) in s
        .evidence
        .observed
        .get(&s.finding.pass)
        .into_iter()
        .flatten()
    {
        let judged = exec::rejudge(
            op,
            &s.cell,
            &s.finding.pass,
            s.evidence.loss_weights.as_deref(),
            o,
        )
        .map_err(|e| Error::BadInput(format!("{}: {e}", d.id)))?;
        let label = match (Label::of(judged.map(|(c, _)| c)), o) {
            (Label::Agrees, exec::Obs::Error { .. }) => Label::Refuses,
            (l, _) => l,
        };
        out.push((b.clone(), o.short(), label));
    }
    Ok(out)
}

fn all_zero(o: &str) -> bool {
    o.rsplit_once(" [")
        .map(|(_, v)| v.trim_end_matches(']').split(", ").all(|x| x == "0"))
        .unwrap_or(false)
}

/// The table of what each backend returned on the repro's input.
fn results_table(
    run: &SweepRun,
    d: &SweepDivergence,
    repro: &Repro,
    program_output: Option<&str>,
) -> Result<String, Error> {
    let s = d.repro.as_ref().expect("representative has a repro");
    // A run records a gradient the backward pass does not produce as zeros; whether there is
    // one is asked again here on the CPU, and read from the program's own output on the GPU.
    let role = s.finding.pass.strip_prefix("backward ");
    let missing_on_cpu = match (role, ops::find(&d.op), &s.evidence.loss_weights) {
        (Some(role), Some(op), Some(w)) => exec::gradient_missing_on_cpu(op, &s.cell, role, w),
        _ => None,
    };
    let missing_on_gpu = program_output.map(|o| {
        o.lines()
            .any(|l| l.starts_with("Cuda") && l.contains("error: no gradient for"))
    });
    let mut md = format!(
        "| | {} |\n|---|---|\n| expected | {} |\n",
        if s.finding.pass == "forward" {
            "result".to_string()
        } else {
            format!(
                "gradient of {}",
                s.finding.pass.trim_start_matches("backward ")
            )
        },
        code_span(&repro.expected.line)
    );
    let backward = s.finding.pass.starts_with("backward ");
    for (b, value, label) in labelled(d)? {
        let name = match (b.as_str(), run.target.backend.as_str()) {
            ("cpu", _) => "cpu".to_string(),
            (b, t) if b == t => format!("{b} ({})", run.target.name),
            (b, _) => b.to_string(),
        };
        let missing = if b == "cpu" {
            missing_on_cpu
        } else {
            missing_on_gpu
        };
        let value = match (backward && all_zero(&value), missing) {
            (true, Some(true)) => "no gradient (`grads.get(..)` is `None`)".to_string(),
            (true, Some(false)) => format!("{} (a zero gradient)", code_span(&value)),
            (true, None) => format!(
                "{} (zeros, or no gradient: not told apart)",
                code_span(&value)
            ),
            (false, _) => code_span(&value),
        };
        let _ = writeln!(md, "| {name}: **{}** | {value} |", label.as_str());
    }
    // The program's later valid call on the GPU, where it makes one: its label is read from
    // what it printed.
    for line in program_output.into_iter().flat_map(str::lines) {
        if let Some(value) = line
            .strip_prefix("Cuda")
            .and_then(|l| l.split_once(": a later valid call: "))
            .map(|(_, v)| v)
        {
            let label = if value.starts_with("error:") {
                "fails too"
            } else {
                "succeeds"
            };
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                md,
                "| cuda, a later valid call: **{label}** | {} |",
                code_span(&value)
            );
        }
    }
    if !s.reproduced_on_rerun {
        md.push_str("\nNondeterministic: the same input did not fail on every run.\n");
    }
    Ok(md)
}

/// Inline code for a table cell: a value that holds a backtick (a panic message quoting code)
/// is delimited by two, as Markdown requires.
fn code_span(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

fn fenced(lang: &str, body: &str) -> String {
    let body = body.trim_end_matches('\n');
    format!("```{lang}\n{body}\n```\n")
}

/// A quote as a fenced block headed by its file and lines, linked at candle's commit.
fn quote_md(q: &Quote, data: &Data) -> String {
    let lang = if q.file.ends_with(".rs") { "rust" } else { "c" };
    let link = format!(
        "{UPSTREAM}/blob/{}/{}#L{}",
        data.candle_commit,
        q.file,
        q.lines.replace('-', "-L")
    );
    let code = dedent(data.elided.get(&q.code).unwrap_or(&q.code));
    format!(
        "[`{}` L{}]({link}):\n{}",
        q.file,
        q.lines,
        fenced(lang, &code)
    )
}

/// Removes the indentation every non-blank line shares.
fn dedent(code: &str) -> String {
    let n = code
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    code.trim_matches('\n')
        .lines()
        .map(|l| {
            if l.len() >= n {
                &l[n..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The suite cases among the ids: the steps where a backend disagrees with the oracle.
fn cases_section(r: &RootCause, data: &Data) -> String {
    let mut md = String::new();
    for id in &r.ids {
        let Some(case) = id.strip_prefix("case:") else {
            continue;
        };
        // The accelerator's report carries the CPU's answer too.
        let Some(((_, backend), run)) = data
            .cases
            .iter()
            .filter(|((c, _), _)| c == case)
            .max_by_key(|((_, b), _)| b.as_str() != "cpu")
        else {
            continue;
        };
        let _ = writeln!(
            md,
            "\nThe case `{case}` (verdict on {backend}: `{}`, candle {}); the steps where a backend disagrees with the expected answer:\n",
            run.verdict, run.candle_version
        );
        if run.differing.is_empty() {
            md.push_str("- none: every step agrees on every backend\n");
        }
        for st in &run.differing {
            let _ = writeln!(
                md,
                "- `{}` ({}): `{}`\n  - expected: `{}`\n  - cpu: `{}`\n  - {backend}: `{}`",
                st.variant, st.about, st.code, st.expected, st.cpu, st.target
            );
        }
    }
    md
}

/// What each claimed id is, where it showed and since when, for the evidence fold.
fn claims_table(r: &RootCause, data: &Data) -> String {
    let mut titles: BTreeMap<&str, &str> = BTreeMap::new();
    for run in data.sweeps.values() {
        for d in &run.divergences {
            titles.entry(d.id.as_str()).or_insert(d.title.as_str());
        }
    }
    let mut md = String::from("| symptom | category | backends |\n|---|---|---|\n");
    for id in &r.ids {
        let (what, category, backends) = match id.strip_prefix("case:") {
            Some(case) => (
                format!("the case `{case}`"),
                "suite case".to_string(),
                // A suite run on the CPU alone has no device to compare and says
                // "inconclusive", which would read as a verdict on the CPU: left out.
                data.suite
                    .get(case)
                    .into_iter()
                    .flatten()
                    .filter(|(_, e)| e.verdict != "inconclusive")
                    .map(|(b, e)| format!("{b}: {}", e.verdict))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => {
                let k = data.known.entries.get(id);
                (
                    // A run's title ends with the backends that run saw; the column has them all.
                    titles
                        .get(id.as_str())
                        .map(|t| {
                            t.rsplit_once(" on ").map_or(*t, |(w, _)| w).replace(
                                "propagates them unlike PyTorch",
                                "does not handle them as PyTorch does",
                            )
                        })
                        .unwrap_or_else(|| format!("`{id}`")),
                    k.map(|k| k.category.clone()).unwrap_or_default(),
                    k.map(|k| k.backends.join(", ")).unwrap_or_default(),
                )
            }
        };
        let _ = writeln!(md, "| {what} | {category} | {backends} |");
    }
    md
}

fn recorded_output_of<'a>(
    data: &'a Data,
    key: &str,
    repro: Option<(&Repro, &str)>,
) -> Option<(&'a str, i32, String)> {
    repro.and_then(|(_, src)| recorded_output(data, key, src))
}

/// What exactly this program (by the hash of its source) printed on the GPU machine, its exit
/// code and the machine.
fn recorded_output<'a>(data: &'a Data, key: &str, source: &str) -> Option<(&'a str, i32, String)> {
    let o = data.outputs.as_ref()?;
    let (hash, text, exit) = o.programs.get(key)?;
    (*hash == fnv1a(source.as_bytes())).then(|| (text.as_str(), *exit, o.machine.join("; ")))
}

fn program_output<'a>(data: &'a Data, key: &str, source: &str) -> Option<&'a str> {
    recorded_output(data, key, source).map(|(t, _, _)| t)
}

/// Heads the program's recorded GPU output in the details.
const OUTPUT_HEAD: &str = "The program above, run on a GPU machine";

/// What the details' summary line names, and the line that begins each in the details.
const DETAILS_PARTS: [(&str, &str); 3] = [
    ("the program's output on a GPU machine", OUTPUT_HEAD),
    ("the patch", "\nPatch `"),
    ("the searches", "\nSearched candle's issues"),
];

/// Where the pasteable part of a text ends.
pub const FOLD: &str = "<details>";
/// The most characters the pasteable part may take.
pub const PASTE_MAX: usize = 4000;
/// The most lines a repro may take.
pub const REPRO_LINES_MAX: usize = 40;

/// The Markdown text of one root cause. `source` is the repro's formatted `main.rs`.
pub fn render(key: &str, data: &Data, repro: Option<(&Repro, &str)>) -> Result<String, Error> {
    let r = &data.root_causes[key];
    let b = &r.bug;
    let f = &b.front;
    let rep = representative(r, data);
    let mut md = format!(
        "<!-- {} Generated by `cargo run -p repro -- upstream` from repro/bugs/{key}.md and the recorded runs; regenerate rather than edit. -->\n\n",
        filing_line(b)
    );
    if !matches!(f.action, Action::Comment | Action::PrExists) || f.target.is_none() {
        let _ = write!(md, "# {}\n\n", f.title);
    }
    let _ = writeln!(md, "{}", b.lead);
    if let (Some((run, d)), Some((repro, source))) = (rep, repro) {
        let _ = write!(
            md,
            "\n**Repro** (`cargo new`, then in `[dependencies]`: {}{}):\n\n{}\n{}",
            repro
                .dependencies()
                .lines()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            if repro.compares_on_cuda {
                "; with `features = [\"cuda\"]` it also prints the CUDA row"
            } else {
                ""
            },
            fenced("rust", source),
            results_table(run, d, repro, program_output(data, key, source))?
        );
    } else if r.ids.iter().any(|id| id.starts_with("case:")) && !b.is_bug() {
        md.push_str(&cases_section(r, data));
    }
    if !f.contract.is_empty() {
        md.push_str("\n**Documented contract**: ");
        for q in &f.contract {
            md.push_str(&quote_md(q, data));
        }
    }
    if !b.cause.is_empty() {
        let _ = write!(md, "\n**Cause.** {}\n\n", b.cause);
        for q in &f.quote {
            md.push_str(&quote_md(q, data));
        }
    }
    if !b.fix.is_empty() {
        let patch = match (f.patches.is_empty(), f.action) {
            (true, _) => "",
            (false, Action::PrExists) => " The details below hold a test this pull request can take.",
            (false, _) => " A patch against 0.11.1 with a test is in the details below, ready to open as a pull request.",
        };
        let _ = write!(md, "\n**Fix.** {}{patch}\n", b.fix);
    }
    if b.is_bug() {
        let _ = write!(md, "\n**Versions**: {}.\n", versions_line(r, data));
    }
    if !f.related.is_empty() {
        let rel: Vec<String> = f.related.iter().map(|x| issue_link(x.n)).collect();
        let _ = write!(md, "\n**Related**: {}.\n", rel.join(", "));
    }
    if let Some((run, _)) = rep {
        // The machine of the repro's run and, for a CPU run, of every other backend the text
        // says the bug shows on (the lead or the Versions line may state a CUDA result). A GPU
        // run computed its CPU rows on its own host, which its line already names.
        let mut envs = vec![environment_line(run, data)];
        let others = if run.target.backend == "cpu" {
            r.backends.as_slice()
        } else {
            &[]
        };
        for b in others {
            if let Some(other) = data
                .sweeps
                .get(b)
                .filter(|o| o.target.backend != run.target.backend)
            {
                let line = environment_line(other, data);
                let same_candle = format!("candle {} · ", run.candle_version);
                envs.push(format!(
                    "{b}: {}",
                    line.strip_prefix(&same_candle).unwrap_or(&line)
                ));
            }
        }
        let _ = write!(md, "\n**Environment**: {}.\n", envs.join("; "));
    }
    let mut parts = vec!["every symptom observed"];
    if recorded_output_of(data, key, repro).is_some() {
        parts.push("the program's output on a GPU machine");
    }
    if !f.patches.is_empty() {
        parts.push("the patch");
    }
    if !f.searched.is_empty() {
        parts.push("the searches");
    }
    let _ = write!(
        md,
        "\n{FOLD}<summary>Details: {}</summary>\n\n",
        parts.join(", ")
    );
    let _ = write!(
        md,
        "Symptoms of this one cause, observed on candle {}:\n\n{}",
        data.pinned,
        claims_table(r, data)
    );
    if b.is_bug() {
        md.push_str(&cases_section(r, data));
    }
    if let Some((output, exit, machine)) = recorded_output_of(data, key, repro) {
        // A program whose table shows the CPU alone opens no GPU: say so beside its output.
        let opens_gpu = repro.is_some_and(|(_, src)| src.contains("Device::new_cuda"));
        let cpu_only = if opens_gpu {
            ""
        } else {
            "; the program opens no GPU, so it prints the CPU's answer only"
        };
        let _ = write!(
            md,
            "\n{OUTPUT_HEAD} ({machine}; exit code {exit}{cpu_only}):\n\n{}",
            fenced("text", output)
        );
    }
    if !f.related.is_empty() {
        md.push_str("\nRelated:\n\n");
        for x in &f.related {
            let _ = writeln!(md, "- {}: {}", issue_link(x.n), x.why);
        }
    }
    for p in &f.patches {
        if let Some(text) = data.patches.get(p) {
            let _ = write!(md, "\nPatch `{p}` (applies to candle-core/candle-nn 0.11.1 with `git apply` in the crate):\n\n{}", fenced("diff", text));
        }
    }
    if !f.searched.is_empty() {
        let q: Vec<String> = f.searched.iter().map(|s| format!("\"{s}\"")).collect();
        let _ = write!(
            md,
            "\nSearched candle's issues and pull requests for: {}.\n",
            q.join(", ")
        );
    }
    md.push_str("\n</details>\n");
    Ok(md)
}

/// The part of a text a person pastes: everything above the fold, without the header comment.
pub fn pasteable(text: &str) -> &str {
    let start = text.find("-->\n\n").map(|i| i + 5).unwrap_or(0);
    let end = text.find(FOLD).unwrap_or(text.len());
    &text[start..end]
}

/// `reports/upstream/README.md`: the filing plan, worst first.
pub fn index(data: &Data) -> String {
    let mut md = String::from(
        "# Filing plan\n\nOne text per bug file of `repro/bugs/`, generated by `cargo run -p repro -- upstream` from the recorded runs (regenerate rather than edit; a test fails when these files differ from what the data gives). Each text begins with a comment saying where it goes; what is above its `<details>` fold is what a maintainer reads first (at most 4,000 characters), the evidence below it is posted folded.\n\nOrder: silent wrong values or missing gradients in training first, then silent wrong values in inference, then crashes, then refused valid calls, then the rest; within a severity, by the bug file's `rank` (the size of the effect, as its author judged it; smaller first), then new issues and comments before questions. Review: [REVIEW.md](REVIEW.md).\n\n| # | root cause | severity | action | patch | backends | by-design risk |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rows: Vec<(&String, &RootCause)> = data.root_causes.iter().collect();
    rows.sort_by_key(|(k, r)| {
        (
            r.bug.front.severity,
            r.bug.front.rank,
            r.bug.front.action == Action::Question,
            r.bug.front.action == Action::NotABug,
            (*k).clone(),
        )
    });
    for (i, (key, r)) in rows.iter().enumerate() {
        let f = &r.bug.front;
        let _ = writeln!(
            md,
            "| {} | [{}]({key}.md) | {} | {} | {} | {} | {} |",
            i + 1,
            f.title,
            f.severity.describe(),
            action_cell(&r.bug),
            if f.patches.is_empty() { "—" } else { "yes" },
            if r.backends.is_empty() {
                "—".to_string()
            } else {
                r.backends.join(", ")
            },
            f.by_design_risk
                .as_deref()
                .map(|_| "yes: see its bug file")
                .unwrap_or("—"),
        );
    }
    md
}

/// Every generated file: texts (file name under the text folder) and repros (file name under
/// the repro folder). `format` formats a repro's source (rustfmt), so the committed bins are
/// what `cargo fmt` leaves them.
pub struct Generated {
    pub texts: BTreeMap<String, String>,
    pub repros: BTreeMap<String, String>,
    /// Texts whose repro shows the bug on fewer backends than another claimed input would.
    pub partial: Vec<String>,
}

/// The backends among `r.backends` on which this recorded input shows the bug.
fn shows_on(r: &RootCause, d: &SweepDivergence) -> BTreeSet<String> {
    labelled(d)
        .unwrap_or_default()
        .into_iter()
        .filter(|(b, _, l)| *l != Label::Agrees && r.backends.contains(b))
        .map(|(b, _, _)| b)
        .collect()
}

/// A claimed input that shows the bug on more of its backends than the representative does.
fn better_representative(r: &RootCause, data: &Data) -> Option<String> {
    let (_, rep) = representative(r, data)?;
    let have = shows_on(r, rep).len();
    r.ids
        .iter()
        .filter_map(|id| record(data, id))
        .filter(|(_, d)| d.repro.as_ref().is_some_and(|s| s.reproduced_on_rerun))
        .map(|(_, d)| (shows_on(r, d).len(), d.id.clone()))
        .filter(|(n, _)| *n > have)
        .max_by_key(|(n, id)| (*n, std::cmp::Reverse(id.clone())))
        .map(|(_, id)| id)
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

/// What every text must satisfy before anything is written: the pasteable part fits one
/// screen, the repro fits 40 lines, no link leaves candle's repository, and no label contradicts
/// the value beside it.
pub fn check(g: &Generated) -> Result<(), Error> {
    let mut wrong = g.partial.clone();
    for (name, text) in &g.texts {
        // Not-a-bug texts are records, not for pasting.
        if name == "README.md" || text.contains("Not for filing") {
            continue;
        }
        let paste = pasteable(text);
        let n = paste.chars().count();
        if n > PASTE_MAX {
            wrong.push(format!(
                "{name}: the part to paste has {n} characters (at most {PASTE_MAX})"
            ));
        }
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            if !target.starts_with(UPSTREAM) {
                wrong.push(format!(
                    "{name}: a link leaves {UPSTREAM}: `{}`",
                    target.lines().next().unwrap_or("")
                ));
            }
        }
        if let Some(why) = summary_promises_missing_part(text) {
            wrong.push(format!("{name}: {why}"));
        }
        for line in paste.lines() {
            if let Some(why) = contradiction(line).or_else(|| broken_code_span(line)) {
                wrong.push(format!("{name}: {why}: `{line}`"));
            }
        }
    }
    for (name, src) in &g.repros {
        let lines = src.lines().count();
        if lines > REPRO_LINES_MAX {
            wrong.push(format!(
                "{name}: the repro has {lines} lines (at most {REPRO_LINES_MAX})"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{} problem(s), nothing written: {}",
            wrong.len(),
            wrong.join("; ")
        )))
    }
}

/// The details' summary names a part (the patch, the program's GPU output, the searches) that
/// the details do not hold (review H, round 2, and P, round 3, each found one).
pub fn summary_promises_missing_part(text: &str) -> Option<String> {
    let start = text.find("<summary>Details: ")?;
    let summary = &text[start..text[start..].find("</summary>")? + start];
    let details = &text[start + summary.len()..];
    DETAILS_PARTS
        .iter()
        .find(|(named, head)| summary.contains(named) && !details.contains(head))
        .map(|(named, _)| format!("the details' summary names {named}, which the details lack"))
}

/// A results-table value in single backticks that itself holds a backtick: Markdown ends the
/// code span early and the row renders broken.
pub fn broken_code_span(line: &str) -> Option<&'static str> {
    let value = line.strip_prefix('|')?.split(" | ").nth(1)?;
    (value.starts_with('`') && !value.starts_with("``") && value.matches('`').count() > 2)
        .then_some("a value holding a backtick is delimited by single backticks")
}

/// A results-table row whose label cannot be right for its value: an error or a panic called
/// anything but what it is.
pub fn contradiction(line: &str) -> Option<&'static str> {
    let (label, value) = line.split_once(": **")?;
    let _ = label;
    let (label, value) = value.split_once("** | ")?;
    let value = value.trim_start_matches('`').trim_start();
    let error = value.starts_with("error:");
    let panic = value.starts_with("panic:");
    match label {
        "agrees" | "differs" if error => Some("an error is labelled as a value"),
        "refuses, as expected" if !error => Some("a value is labelled as a refusal"),
        "agrees" | "differs" if panic => Some("a panic is labelled as a value"),
        "errors" if !error => Some("a value is labelled as an error"),
        "panics" if !panic => Some("a value is labelled as a panic"),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda_sweep() -> SweepRun {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/sweep/cuda/sweep.json");
        SweepRun::read(&p).unwrap()
    }

    fn divergence(run: &SweepRun, id: &str) -> SweepDivergence {
        run.divergences
            .iter()
            .find(|d| d.id == id && d.repro.is_some())
            .unwrap_or_else(|| panic!("{id} is recorded with a repro"))
            .clone()
    }

    fn labels(d: &SweepDivergence) -> BTreeMap<String, Label> {
        labelled(d)
            .unwrap()
            .into_iter()
            .map(|(b, _, l)| (b, l))
            .collect()
    }

    /// The contradictions the review found, planted: a CPU error next to "agrees", CUDA's
    /// f32-precision answer in f64 next to "agrees", an expected NaN next to "differs". Each
    /// label comes from judging the value beside it again.
    #[test]
    fn each_label_is_computed_from_its_own_value() {
        let run = cuda_sweep();
        let rms = divergence(&run, "rms-norm-fwd-wrong-result");
        let l = labels(&rms);
        assert_eq!(l["cpu"], Label::Errors, "the CPU refuses f64 rms_norm");
        assert_eq!(
            l["cuda"],
            Label::Differs,
            "1.99999737739563 is not 1.9999975000047505 in f64"
        );

        let nan = divergence(&run, "max-keepdim-fwd-non-finite-nan-middle");
        let l = labels(&nan);
        assert_eq!(l["cpu"], Label::Agrees, "NaN where NaN is expected");
        assert_eq!(l["cuda"], Label::Differs);

        // The same cell with the answer replaced: the label follows the value.
        let mut planted = rms.clone();
        let s = planted.repro.as_mut().unwrap();
        let per = s.evidence.observed.get_mut("forward").unwrap();
        per.insert(
            "cuda".into(),
            exec::Obs::Values {
                dtype: "f64".into(),
                shape: vec![1, 1],
                values: vec![1.9999975000047505],
            },
        );
        per.insert(
            "cpu".into(),
            exec::Obs::Panic {
                message: "boom".into(),
            },
        );
        let l = labels(&planted);
        assert_eq!(l["cuda"], Label::Agrees);
        assert_eq!(l["cpu"], Label::Panics);
    }

    #[test]
    fn a_row_whose_label_contradicts_its_value_is_caught() {
        let bad = [
            "| cpu: **agrees** | `error: unsupported dtype for rmsnorm F64` |",
            "| cuda (NVIDIA H200): **differs** | `panic: called `Option::unwrap()` on a `None` value` |",
            "| cpu: **errors** | `f32 [1] [2]` |",
            "| cpu: **panics** | `f32 [1] [2]` |",
        ];
        for line in bad {
            assert!(contradiction(line).is_some(), "{line}");
        }
        for line in [
            "| cpu: **errors** | `error: unsupported dtype for rmsnorm F64` |",
            "| cuda: **differs** | `f64 [1, 1] [1.99999737739563]` |",
            "| cpu: **agrees** | `f32 [1, 1] [NaN]` |",
        ] {
            assert_eq!(contradiction(line), None, "{line}");
        }
    }

    #[test]
    fn a_summary_naming_a_missing_part_is_caught() {
        let text = "x\n<details><summary>Details: every symptom observed, the program's output on a GPU machine, the searches</summary>\n\nSymptoms\n\nSearched candle's issues and pull requests for: \"a\".\n</details>\n";
        assert!(summary_promises_missing_part(text).is_some());
        let text = text.replace("Symptoms", &format!("{OUTPUT_HEAD} (m; exit code 0):"));
        assert_eq!(summary_promises_missing_part(&text), None);
        let text = text.replace(", the searches", ", the patch");
        assert!(summary_promises_missing_part(&text).is_some());
    }

    /// Review J (round 3): a panic message quoting code, in single backticks, rendered as
    /// broken code spans.
    #[test]
    fn a_value_holding_a_backtick_gets_double_backticks() {
        let broken = "| cpu: **panics** | `panic: called `Option::unwrap()` on a `None` value` |";
        assert!(broken_code_span(broken).is_some());
        let value = "panic: called `Option::unwrap()` on a `None` value";
        let fixed = format!("| cpu: **panics** | {} |", code_span(value));
        assert_eq!(broken_code_span(&fixed), None, "{fixed}");
        assert_eq!(contradiction(&fixed), None, "{fixed}");
        assert_eq!(
            broken_code_span("| cpu: **agrees** | `f32 [1] [2]` |"),
            None
        );
    }

    #[test]
    fn recorded_outputs_name_their_program_and_exit_code() {
        let o =
            Outputs::parse("# gpu: X\n=== a 00ff\ncpu: 1\n=== exit 0\n=== b 0001\n=== exit 101\n")
                .unwrap();
        assert_eq!(o.machine, ["gpu: X"]);
        assert_eq!(o.programs["a"], ("00ff".into(), "cpu: 1\n".into(), 0));
        assert_eq!(o.programs["b"].2, 101);
        assert!(Outputs::parse("=== a 00ff\nx\n").is_err(), "no exit line");
        assert!(Outputs::parse("=== a\n=== exit 0\n").is_err(), "no hash");
    }

    #[test]
    fn versions_are_written_as_ranges() {
        let all: Vec<String> = ["0.9.2", "0.10.0", "0.10.1", "0.11.0", "0.11.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            version_span(&all, &["0.10.0", "0.10.1", "0.11.0"]),
            "0.10.0–0.11.0"
        );
        assert_eq!(version_span(&all, &["0.9.2", "0.11.1"]), "0.9.2, 0.11.1");
        assert_eq!(version_span(&all, &["0.10.1", "0.11.0"]), "0.10.1, 0.11.0");
    }
}
