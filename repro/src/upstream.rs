//! One upstream text per root cause: `reports/upstream/<root-cause>.md`, generated from the
//! observed runs, never hand-written. A text is a new issue, or a comment for the open upstream
//! issue that already covers the root cause (`upstream` is an issue whose `upstream_status` says
//! it is open). Each carries a minimal repro built from the shrunk sweep cell of one
//! representative id, also written to `repro/upstream-repros/src/bin/<root-cause>.rs` so CI
//! compiles it. The per-id texts under `reports/sweep/<backend>/` stay as the evidence.
//!
//! Inputs: `repro/root-causes.toml` (what was read in candle's source), `repro/sweep-known.toml`
//! and `repro/expected.toml` (what runs observed, per backend), `reports/sweep/*/sweep.json`
//! (the shrunk cells and their evidence), `reports/<backend>/<case>.json` (suite cases) and
//! `reports/matrix.json` (which candle versions show each id). Everything below `load` is a
//! pure function of that data.

use crate::error::Error;
use crate::manifest::Manifest;
use crate::sweep::exec;
use crate::sweep::known::{self, KnownSet, RootCause};
use crate::sweep::ops::{self, Op, Reference};
use crate::sweep::Shrunk;
use harness::host::HostTensor;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the texts go, under the report folder.
pub const TEXT_DIR: &str = "upstream";
/// Where the repros go, as bins of a crate CI builds.
pub const REPRO_DIR: &str = "repro/upstream-repros/src/bin";
/// Where a later step puts a fix per root cause (`<key>.patch`); linked when present.
pub const PATCH_DIR: &str = "patches/candle-0.11.1";
/// The committed texts sit in `reports/upstream/`: links are relative to that folder.
const TO_ROOT: &str = "../../";

/// A sweep report's target device, as `harness::device::DeviceInfo` writes it.
pub type Target = harness::device::DeviceInfo;

#[derive(Clone, Debug, Deserialize)]
pub struct SweepDivergence {
    pub id: String,
    pub op: String,
    pub pass: String,
    pub category: String,
    pub backends: Vec<String>,
    pub dtypes: Vec<String>,
    pub cells: usize,
    pub repro: Option<Shrunk>,
}

/// The parts of `reports/sweep/<backend>/sweep.json` a text uses.
#[derive(Clone, Debug, Deserialize)]
pub struct SweepRun {
    pub candle_version: String,
    pub target: Target,
    pub backends: Vec<String>,
    pub divergences: Vec<SweepDivergence>,
}

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
    pub bug: BTreeMap<(String, String, String), String>,
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
    /// Files a text may link to that exist, relative to the workspace root
    /// (`reports/sweep/cuda/<id>.md`, `patches/candle-0.11.1/<key>.patch`).
    pub files: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------------
// Loading (the only part that reads files).

fn read_json(p: &Path) -> Result<serde_json::Value, Error> {
    let text =
        std::fs::read_to_string(p).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))
}

fn show_tensor(dtype: &str, shape: &[u64], values: &[f64]) -> String {
    let v: Vec<String> = values.iter().take(12).map(|x| format!("{x}")).collect();
    let more = if values.len() > 12 { ", …" } else { "" };
    format!("{dtype} {shape:?} [{}{more}]", v.join(", "))
}

/// A case step's `expected` / `reference` / `target` value in one line.
fn show_value(v: &serde_json::Value) -> String {
    match v["kind"].as_str() {
        Some("tensor") => {
            let values: Vec<f64> = v["values"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default();
            let shape: Vec<u64> = v["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default();
            show_tensor(v["dtype"].as_str().unwrap_or("?"), &shape, &values)
        }
        Some("error") => format!("error: {}", v["message"].as_str().unwrap_or("")),
        Some("panic") => format!("panic: {}", v["message"].as_str().unwrap_or("")),
        Some("rejected") => format!("rejects the call: {}", v["reason"].as_str().unwrap_or("")),
        _ => v.to_string(),
    }
}

fn target_of(v: &serde_json::Value) -> Target {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn case_run(v: &serde_json::Value) -> CaseRun {
    let env = &v["environment"];
    let mut differing = Vec::new();
    for variant in v["variants"].as_array().into_iter().flatten() {
        for step in variant["steps"].as_array().into_iter().flatten() {
            let off = |k: &str| step[k]["check"].as_str().is_some_and(|c| c != "agrees");
            if off("reference_vs_oracle") || off("target_vs_oracle") {
                differing.push(CaseStep {
                    variant: variant["name"].as_str().unwrap_or("").into(),
                    about: variant["about"].as_str().unwrap_or("").into(),
                    code: step["code"].as_str().unwrap_or("").into(),
                    expected: show_value(&step["expected"]),
                    cpu: show_value(&step["reference"]),
                    target: show_value(&step["target"]),
                });
            }
        }
    }
    CaseRun {
        verdict: v["verdict"].as_str().unwrap_or("").into(),
        candle_version: env["candle_version"].as_str().unwrap_or("").into(),
        os: env["os"].as_str().map(str::to_string),
        arch: env["arch"].as_str().map(str::to_string),
        target: target_of(&env["target"]),
        differing,
    }
}

/// Reads every input. `root` is the workspace root (manifests, patches), `report_dir` the
/// folder holding `sweep/`, `<backend>/` and `matrix.json`.
pub fn load(root: &Path, report_dir: &Path) -> Result<Data, Error> {
    let root_causes = known::load_root_causes(&root.join(known::ROOT_CAUSES_PATH))?;
    let known_set = KnownSet::load(&root.join(known::DEFAULT_PATH))?;
    let case_names: Vec<&str> = crate::cases::all().iter().map(|c| c.name).collect();
    let suite = Manifest::load(&root.join(crate::manifest::DEFAULT_PATH), &case_names)?.entries;
    let mut sweeps = BTreeMap::new();
    let mut cases = BTreeMap::new();
    let mut files = BTreeSet::new();
    for b in crate::manifest::BACKENDS {
        let p = report_dir.join("sweep").join(b).join("sweep.json");
        if p.is_file() {
            let run: SweepRun = serde_json::from_value(read_json(&p)?)
                .map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
            sweeps.insert(b.to_string(), run);
        }
        for id in known_set.entries.keys() {
            if report_dir
                .join("sweep")
                .join(b)
                .join(format!("{id}.md"))
                .is_file()
            {
                files.insert(format!("reports/sweep/{b}/{id}.md"));
            }
        }
        for case in &case_names {
            let json = report_dir.join(b).join(format!("{case}.json"));
            if json.is_file() {
                cases.insert(
                    (case.to_string(), b.to_string()),
                    case_run(&read_json(&json)?),
                );
            }
            if report_dir.join(b).join(format!("{case}.md")).is_file() {
                files.insert(format!("reports/{b}/{case}.md"));
            }
        }
    }
    for key in root_causes.keys() {
        let patch = format!("{PATCH_DIR}/{key}.patch");
        if root.join(&patch).is_file() {
            files.insert(patch);
        }
    }
    let mut matrix = VersionMatrix::default();
    let mp = report_dir.join("matrix.json");
    if mp.is_file() {
        let m = read_json(&mp)?;
        matrix.versions = m["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for c in m["cells"].as_array().into_iter().flatten() {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            matrix
                .bug
                .insert((s("case"), s("backend"), s("version")), s("bug"));
        }
    }
    Ok(Data {
        root_causes,
        known: known_set,
        suite,
        sweeps,
        cases,
        matrix,
        files,
    })
}

// ---------------------------------------------------------------------------------------------
// What a text says: pure functions of `Data`.

/// The backends runs observed a root cause on: the manifest's backends of its sweep ids; for a
/// suite case, the backends whose verdict is `reproduced` (and the CPU where it disagrees with
/// the oracle).
pub fn observed_backends(r: &RootCause, data: &Data) -> Vec<String> {
    let mut out = BTreeSet::new();
    for id in &r.ids {
        match id.strip_prefix("case:") {
            Some(case) => {
                for (b, e) in data.suite.get(case).into_iter().flatten() {
                    if e.verdict == "reproduced" {
                        out.insert(b.clone());
                    }
                    if e.cpu_vs_oracle.as_deref() == Some("disagrees") {
                        out.insert("cpu".to_string());
                    }
                }
            }
            None => {
                if let Some(k) = data.known.entries.get(id) {
                    out.extend(k.backends.iter().cloned());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The issue title: `[cuda] ` in front where only CUDA shows it (a leading "CUDA " then goes).
pub fn title(key: &str, r: &RootCause, backends: &[String]) -> String {
    if RootCause::is_bug(key) && backends == ["cuda"] {
        format!(
            "[cuda] {}",
            r.title.strip_prefix("CUDA ").unwrap_or(&r.title)
        )
    } else {
        r.title.clone()
    }
}

/// The open upstream issue a text comments on instead of filing a new one: `upstream` is an
/// issue (not a pull request) and `upstream_status` says it is open ("open (…)" or "#N open (…)")
/// without saying that part of the root cause has no issue ("No issue found for …": then the
/// issue covers only part of it and the text is a new issue that cites it).
pub fn comment_target(r: &RootCause) -> Option<&str> {
    if !r.upstream.contains("/issues/") {
        return None;
    }
    let status = r.upstream_status.trim();
    let status = match status.strip_prefix('#') {
        Some(rest) => rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start(),
        None => status,
    };
    let partial = r.upstream_status.to_lowercase().contains("no issue found");
    (status.starts_with("open") && !partial).then_some(r.upstream.as_str())
}

/// `#3253` for an issue or pull request URL.
fn short_ref(url: &str) -> String {
    match url.rsplit('/').next() {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => format!("#{n}"),
        _ => url.to_string(),
    }
}

fn category_rank(c: &str) -> usize {
    match c {
        "wrong-result" | "non-finite" => 0,
        "crash" => 1,
        "unimplemented" => 2,
        _ => 3,
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

/// `dtype shape [values]` with every value (the sweep's evidence keeps the first 12), up to 64
/// of them; a longer output (a softmax over a 4,085-element row) keeps its first 12 and `…`.
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

/// The oracle's answer for the representative's pass, complete: the recorded one unless it was
/// cut at 12 values, else computed again from the cell (the oracle is plain Rust).
pub fn expected_answer(op: &Op, s: &Shrunk) -> Result<String, Error> {
    let pass = &s.finding.pass;
    let recorded = s
        .evidence
        .reference
        .get(pass)
        .ok_or_else(|| Error::BadInput(format!("{}: no reference for {pass}", s.id)))?;
    if !recorded.contains('…') {
        return Ok(recorded.clone());
    }
    let inputs = exec::prepare(op, &s.cell);
    let again = match pass.strip_prefix("backward ") {
        None => {
            let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
            match (op.oracle)(&s.cell, &hosts) {
                Reference::Values(v) => full(&v),
                Reference::Rejected(r) => format!("rejects the call: {}", r.reason),
                Reference::Unspecified(w) => format!("unspecified: {w}"),
            }
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
            full(&grads[at])
        }
    };
    let head = recorded.trim_end_matches("…]").trim_end_matches(", ");
    if !again.starts_with(head) {
        return Err(Error::BadInput(format!(
            "{}: the oracle now gives `{again}` where the run recorded `{recorded}`",
            s.id
        )));
    }
    Ok(again)
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

/// A standalone program and the `Cargo.toml` it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Repro {
    /// The representative id.
    pub id: String,
    /// `main.rs` (before formatting).
    pub source: String,
    pub cargo_toml: String,
    pub uses_nn: bool,
    pub expected: String,
}

/// The repro of a root cause from its representative's shrunk cell.
pub fn repro(key: &str, r: &RootCause, data: &Data) -> Result<Option<Repro>, Error> {
    let Some((run, d)) = representative(r, data) else {
        return Ok(None);
    };
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op)
        .ok_or_else(|| Error::BadInput(format!("{}: unknown op {}", d.id, d.op)))?;
    check_inputs(op, s)?;
    let expected = expected_answer(op, s)?;
    let body = crate::sweep::emit::run_body(op, s);
    let uses_nn = body.code.contains("candle_nn::");
    let var = if body.uses_var { ", Var" } else { "" };
    let deps = if uses_nn {
        "candle-core and candle-nn"
    } else {
        "candle-core"
    };
    let backends = observed_backends(r, data);
    let source = format!(
        r#"//! {title}
//!
//! Minimal repro for the root cause
//! `{key}`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `{id}` (seed {seed});
//! regenerate rather than edit. Depends on {deps}.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{{DType, Device, Tensor{var}}};

/// The expected answer ({pass}): {how}.
const EXPECTED: &str = {expected:?};

fn device() -> candle_core::Result<Device> {{
    match std::env::args().nth(1).as_deref() {{
        Some("cpu") => Ok(Device::Cpu),
        Some("metal") => Device::new_metal(0),
        _ => Device::new_cuda(0),
    }}
}}

/// dtype, shape and values (read on the CPU as f64).
fn flat(t: &Tensor) -> candle_core::Result<(String, Vec<f64>)> {{
    let desc = format!("{{}} {{:?}}", t.dtype().as_str(), t.dims());
    let v = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((desc, v))
}}

fn run(dev: &Device) -> candle_core::Result<(String, Vec<f64>)> {{
{code}}}

/// What `run` gave on `dev`, in one line: the result, the error, or a panic.
fn outcome(dev: &Device) -> String {{
    // AssertUnwindSafe: on macOS `Device` holds a `MetalDevice`, which is not `RefUnwindSafe`.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(dev))) {{
        Ok(Ok((desc, v))) if v.is_empty() && desc == "no gradient" => desc,
        Ok(Ok((desc, v))) => {{
            let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            format!("{{desc}} [{{}}]", v.join(", "))
        }}
        // The first line: candle appends a backtrace when RUST_BACKTRACE is set.
        Ok(Err(e)) => format!("error: {{}}", e.to_string().lines().next().unwrap_or("")),
        Err(_) => "panicked".to_string(),
    }}
}}

fn main() -> candle_core::Result<()> {{
    let dev = device()?;
    println!("cpu:      {{}}", outcome(&Device::Cpu));
    if !dev.is_cpu() {{
        let tag = format!("{{}}:", if dev.is_cuda() {{ "cuda" }} else {{ "metal" }});
        println!("{{tag:<10}}{{}}", outcome(&dev));
    }}
    println!("expected: {{EXPECTED}}");
    Ok(())
}}
"#,
        title = title(key, r, &backends),
        id = d.id,
        seed = s.cell.seed,
        pass = s.finding.pass,
        how = if s.finding.pass.starts_with("backward ") {
            "central finite differences of the plain-Rust oracle, in f64"
        } else {
            "the plain-Rust oracle, in f64, rounded once to the output dtype"
        },
        code = body.code,
    );
    let nn = if uses_nn {
        format!("candle-nn = \"={}\"\n", run.candle_version)
    } else {
        String::new()
    };
    let cuda = if uses_nn {
        r#"["candle-core/cuda", "candle-nn/cuda"]"#
    } else {
        r#"["candle-core/cuda"]"#
    };
    let cargo_toml = format!(
        "[package]\nname = \"candle-repro\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncandle-core = \"={v}\"\n{nn}\n[features]\ncuda = {cuda}\n",
        v = run.candle_version
    );
    Ok(Some(Repro {
        id: d.id.clone(),
        source,
        cargo_toml,
        uses_nn,
        expected,
    }))
}

/// Matrix key of an id: a case's name, or `sweep:<id>`.
fn matrix_key(id: &str) -> String {
    match id.strip_prefix("case:") {
        Some(case) => case.to_string(),
        None => format!("sweep:{id}"),
    }
}

/// Which candle versions show the root cause: one line per distinct pattern over the versions.
pub fn versions_section(r: &RootCause, data: &Data) -> String {
    // Releases only: `patched` (the pin with patches/ applied) is reported on its own line.
    let versions: &Vec<String> = &data
        .matrix
        .versions
        .iter()
        .filter(|v| v.as_str() != crate::matrix::PATCHED)
        .cloned()
        .collect();
    if versions.is_empty() {
        return "No version matrix was recorded (reports/matrix.json).\n".into();
    }
    let patched_run = data
        .matrix
        .versions
        .iter()
        .any(|v| v == crate::matrix::PATCHED);
    // (id, backend) → its bug with the patches applied.
    let mut with_patches: Vec<(String, String)> = Vec::new();
    // (id, backend) pairs the runs observed → their bug per version.
    let mut patterns: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for id in &r.ids {
        let backends: Vec<String> = match id.strip_prefix("case:") {
            Some(_) => observed_backends(
                &RootCause {
                    ids: vec![id.clone()],
                    ..r.clone()
                },
                data,
            ),
            None => data
                .known
                .entries
                .get(id)
                .map(|k| k.backends.clone())
                .unwrap_or_default(),
        };
        for b in backends {
            if patched_run {
                let bug = data
                    .matrix
                    .bug
                    .get(&(
                        matrix_key(id),
                        b.clone(),
                        crate::matrix::PATCHED.to_string(),
                    ))
                    .cloned()
                    .unwrap_or_else(|| "not run".into());
                with_patches.push((format!("`{}` on {b}", id.trim_start_matches("case:")), bug));
            }
            let p: Vec<String> = versions
                .iter()
                .map(|v| {
                    data.matrix
                        .bug
                        .get(&(matrix_key(id), b.clone(), v.clone()))
                        .cloned()
                        .unwrap_or_else(|| "not run".into())
                })
                .collect();
            patterns
                .entry(p)
                .or_default()
                .push(format!("`{}` on {b}", id.trim_start_matches("case:")));
        }
    }
    let all = versions.join(", ");
    if patterns.is_empty() {
        return "No run observed it, so no version shows it.\n".into();
    }
    if patterns.len() == 1 && patterns.keys().all(|p| p.iter().all(|b| b == "present")) {
        return format!(
            "Shows in every version tested ({all}) on every backend it was observed on: introduced before {}.\n{}",
            versions[0],
            patched_line(&with_patches)
        );
    }
    let mut md = String::new();
    for (p, who) in &patterns {
        let present: Vec<&str> = versions
            .iter()
            .zip(p)
            .filter(|(_, b)| *b == "present")
            .map(|(v, _)| v.as_str())
            .collect();
        let absent: Vec<&str> = versions
            .iter()
            .zip(p)
            .filter(|(_, b)| *b == "absent")
            .map(|(v, _)| v.as_str())
            .collect();
        let what = if present.len() == versions.len() {
            format!("shows in every version tested ({all})")
        } else if let Some(first) = p.iter().position(|b| b == "present") {
            let before: Vec<&str> = versions[..first]
                .iter()
                .zip(p)
                .filter(|(_, b)| *b == "absent")
                .map(|(v, _)| v.as_str())
                .collect();
            if !before.is_empty() && first > 0 {
                format!(
                    "regression: {} computed it, {} fails",
                    before.join(" and "),
                    present.join(" and ")
                )
            } else {
                format!(
                    "fails in {}; computed in {}",
                    present.join(", "),
                    if absent.is_empty() {
                        "none".to_string()
                    } else {
                        absent.join(", ")
                    }
                )
            }
        } else {
            let shown: Vec<String> = versions
                .iter()
                .zip(p)
                .map(|(v, b)| format!("{v}: {b}"))
                .collect();
            format!("not shown in the matrix ({})", shown.join(", "))
        };
        let _ = writeln!(md, "- {what}: {}", who.join(", "));
    }
    md.push_str(&patched_line(&with_patches));
    md
}

/// The `patched` column of the matrix for a root cause's ids, in one line.
fn patched_line(with_patches: &[(String, String)]) -> String {
    if with_patches.is_empty() {
        return String::new();
    }
    let of = |bug: &str| -> Vec<&str> {
        with_patches
            .iter()
            .filter(|(_, b)| b == bug)
            .map(|(w, _)| w.as_str())
            .collect()
    };
    let mut parts = Vec::new();
    for (bug, words) in [
        ("absent", "gone"),
        ("present", "still shows"),
        ("not run", "not run"),
        ("unknown", "not swept"),
    ] {
        let who = of(bug);
        if !who.is_empty() {
            parts.push(format!("{words}: {}", who.join(", ")));
        }
    }
    format!(
        "- with every patch of `patches/` applied to the pinned release (`{}`, `scripts/patched.sh`): {}\n",
        crate::matrix::PATCHED,
        parts.join("; ")
    )
}

/// Compute capability is a property of the chip; stated for the GPUs this project ran on when a
/// run did not record it.
fn known_compute_capability(name: &str) -> Option<&'static str> {
    (name.contains("H100") || name.contains("H200")).then_some("9.0")
}

const NOT_RECORDED: &str = "not recorded by this run";

/// Environment lines for the sweep runs whose evidence the text cites.
pub fn environment_section(runs: &[&SweepRun], data: &Data) -> String {
    let mut md = String::new();
    let versions = if data.matrix.versions.is_empty() {
        String::new()
    } else {
        format!(
            "; the Versions section compares {}",
            data.matrix.versions.join(", ")
        )
    };
    let candle: BTreeSet<&str> = runs.iter().map(|r| r.candle_version.as_str()).collect();
    let candle: Vec<&str> = candle.into_iter().collect();
    let _ = writeln!(
        md,
        "- candle {} (candle-core and candle-nn) for the runs below{versions}",
        candle.join(", ")
    );
    for run in runs {
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
                .and_then(|c| {
                    c.os.as_ref().map(|os| {
                        format!(
                            "not recorded by the sweep; the suite run on the same {} and driver recorded {os}{}",
                            if t.backend == "cpu" { "CPU" } else { "device model" },
                            c.arch.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
                        )
                    })
                })
        });
        let os = os.unwrap_or_else(|| NOT_RECORDED.into());
        let rustc = t.rustc.clone().unwrap_or_else(|| NOT_RECORDED.into());
        match t.backend.as_str() {
            "cuda" => {
                let cc =
                    t.compute_capability
                        .clone()
                        .unwrap_or_else(|| match known_compute_capability(&t.name) {
                            Some(cc) => format!("{cc} (a property of the chip; {NOT_RECORDED})"),
                            None => NOT_RECORDED.into(),
                        });
                let _ = writeln!(
                    md,
                    "- {} sweep: {} ({}), driver {}, compute capability {cc}; CUDA version supported by the driver: {}; CUDA toolkit the kernels were built with: {}; the CPU reference ran on the same host",
                    t.backend,
                    t.name,
                    t.location,
                    t.driver.as_deref().unwrap_or(NOT_RECORDED),
                    t.cuda_driver_api.as_deref().unwrap_or(NOT_RECORDED),
                    t.cuda_toolkit.as_deref().unwrap_or(NOT_RECORDED),
                );
            }
            "metal" => {
                let _ = writeln!(md, "- {} sweep: {} ({})", t.backend, t.name, t.location);
            }
            _ => {
                let _ = writeln!(md, "- {} sweep: {}", t.backend, t.name);
            }
        }
        let _ = writeln!(md, "  - OS: {os}; rustc: {rustc}");
    }
    md
}

fn link(data: &Data, path: &str, label: &str) -> Option<String> {
    data.files
        .contains(path)
        .then(|| format!("[{label}]({TO_ROOT}{path})"))
}

/// The table of ids a root cause covers, each linked to its per-id evidence.
pub fn ids_section(r: &RootCause, data: &Data) -> String {
    let mut md = String::from(
        "| id | category | observed on | first seen | evidence |\n|---|---|---|---|---|\n",
    );
    for id in &r.ids {
        let (category, backends, first, evidence) = match id.strip_prefix("case:") {
            Some(case) => {
                let bs = observed_backends(
                    &RootCause {
                        ids: vec![id.clone()],
                        ..r.clone()
                    },
                    data,
                );
                let first = data
                    .matrix
                    .versions
                    .iter()
                    .find(|v| {
                        bs.iter().any(|b| {
                            data.matrix
                                .bug
                                .get(&(case.to_string(), b.clone(), (*v).clone()))
                                == Some(&"present".to_string())
                        })
                    })
                    .cloned()
                    .unwrap_or_else(|| "—".into());
                let verdicts: Vec<String> = data
                    .suite
                    .get(case)
                    .into_iter()
                    .flatten()
                    .map(|(b, e)| format!("{b}: {}", e.verdict))
                    .collect();
                let links: Vec<String> = crate::manifest::BACKENDS
                    .iter()
                    .filter_map(|b| link(data, &format!("reports/{b}/{case}.md"), b))
                    .collect();
                (
                    format!("suite case ({})", verdicts.join(", ")),
                    bs,
                    first,
                    links,
                )
            }
            None => {
                let k = data.known.entries.get(id);
                let bs = k.map(|k| k.backends.clone()).unwrap_or_default();
                let links: Vec<String> = crate::manifest::BACKENDS
                    .iter()
                    .filter_map(|b| link(data, &format!("reports/sweep/{b}/{id}.md"), b))
                    .collect();
                (
                    k.map(|k| k.category.clone()).unwrap_or_default(),
                    bs,
                    k.map(|k| k.first_seen.clone()).unwrap_or_default(),
                    links,
                )
            }
        };
        let _ = writeln!(
            md,
            "| `{}` | {category} | {} | {first} | {} |",
            id.trim_start_matches("case:"),
            if backends.is_empty() {
                "—".to_string()
            } else {
                backends.join(", ")
            },
            if evidence.is_empty() {
                "—".to_string()
            } else {
                evidence.join(" · ")
            }
        );
    }
    md
}

fn quote_block(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_string()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Backends:` line: where runs showed it, where the CPU computes it, Metal predictions.
fn backends_line(r: &RootCause, data: &Data, backends: &[String]) -> String {
    let ran: BTreeSet<&str> = data
        .sweeps
        .values()
        .flat_map(|s| s.backends.iter().map(String::as_str))
        .collect();
    let fine: Vec<&str> = ran
        .iter()
        .copied()
        .filter(|b| !backends.iter().any(|x| x == b))
        .collect();
    let mut s = format!(
        "Observed on: {}",
        if backends.is_empty() {
            "no backend".to_string()
        } else {
            backends.join(", ")
        }
    );
    if !fine.is_empty() {
        let _ = write!(
            s,
            "; {} {} the expected answer",
            fine.join(" and "),
            if fine.len() == 1 {
                "computes"
            } else {
                "compute"
            }
        );
    }
    let predicted = r
        .ids
        .iter()
        .filter_map(|id| data.known.entries.get(id))
        .filter(|k| k.predicted.get("metal").is_some_and(|p| p.open()))
        .count();
    if !ran.contains("metal") {
        if predicted > 0 {
            let _ = write!(
                s,
                ". Metal: not run; reading candle's Metal backend predicts {predicted} of these ids there too (repro/sweep-known.toml)"
            );
        } else {
            s.push_str(". Metal: not run");
        }
    }
    s.push('.');
    s
}

fn all_zero(o: &exec::Obs) -> bool {
    match o {
        exec::Obs::Values { values, .. } => values.iter().all(|v| *v == 0.0),
        _ => false,
    }
}

/// Expected against what each backend did, for the representative's pass only.
fn expected_vs_actual(run: &SweepRun, d: &SweepDivergence, repro: &Repro, data: &Data) -> String {
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op).map(|o| o.call).unwrap_or(&d.op);
    let diverging = data
        .known
        .entries
        .get(&d.id)
        .map(|k| k.backends.clone())
        .unwrap_or_else(|| d.backends.clone());
    let mut md = format!(
        "`{op}`, {pass} pass, on the shrunk cell of `{id}` (candle {v}):\n\n| input | dtype | shape | layout | values |\n|---|---|---|---|---|\n",
        pass = s.finding.pass,
        id = d.id,
        v = run.candle_version,
    );
    for i in &s.evidence.inputs {
        let _ = writeln!(
            md,
            "| {} | {} | {:?} | {} | {} |",
            i.role,
            i.dtype,
            i.shape,
            i.layout.as_str(),
            exec::values_text(&i.values, i.shape.iter().product())
        );
    }
    let floats = s
        .evidence
        .inputs
        .iter()
        .any(|i| i.values.iter().any(|v| v.is_finite() && v.fract() != 0.0));
    if floats {
        md.push_str("\nThe input values are those of the shrunk cell (random floats drawn from its seed; the shrink ended before reaching small integers). They are not replaced here: no device was available to confirm that other values still show the bug.\n");
    }
    let backward = s.finding.pass.starts_with("backward ");
    let _ = write!(
        md,
        "\n- expected ({}): `{}`\n",
        if backward {
            "central finite differences of the plain-Rust oracle, in f64"
        } else {
            "plain-Rust oracle, in f64, rounded once to the output dtype"
        },
        repro.expected
    );
    if let Some(per) = s.evidence.observed.get(&s.finding.pass) {
        for (b, o) in per {
            let verdict = if diverging.contains(b) {
                "differs"
            } else {
                "agrees with the oracle"
            };
            let _ = writeln!(md, "- {b}: `{}` — {verdict}", o.short());
        }
    }
    let observed = s.evidence.observed.get(&s.finding.pass);
    let none_is_zero = backward && observed.is_some_and(|per| per.values().any(all_zero));
    if none_is_zero {
        md.push_str("\nThe sweep reads a missing gradient (`grads.get(..)` is `None`) as zeros; the repro prints `no gradient` then.\n");
    }
    if !s.reproduced_on_rerun {
        let what = match d.category.as_str() {
            "wrong-result" => "a wrong result",
            "non-finite" => "a wrong result on NaN or ±inf",
            "crash" => "a crash",
            "unimplemented" => "a failure on a valid call",
            _ => "an error unlike the CPU's",
        };
        let _ = write!(
            md,
            "\n**Nondeterministic.** During the sweep this cell showed {what} on {}; run once more, it gave the lines above. The detail recorded with the finding comes from the cell the shrink started from: {}.\n",
            d.backends.join(", "),
            s.finding
                .detail
                .iter()
                .map(|(b, t)| format!("{b}: {t}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    } else {
        md.push_str("\nWhat differs:\n\n");
        for (b, t) in &s.finding.detail {
            let _ = writeln!(md, "- {b}: {t}");
        }
    }
    md
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
            "\nSuite case `{case}` (verdict on {backend}: `{}`, candle {}); the steps where a backend disagrees with the oracle:\n",
            run.verdict, run.candle_version
        );
        if run.differing.is_empty() {
            md.push_str("- none: every step agrees with the oracle on every backend\n");
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

fn fenced(lang: &str, body: &str) -> String {
    let body = body.trim_end_matches('\n');
    format!("```{lang}\n{body}\n```\n")
}

/// The Markdown text of one root cause. `source` is the repro's formatted `main.rs`.
pub fn render(key: &str, data: &Data, repro: Option<(&Repro, &str)>) -> String {
    let r = &data.root_causes[key];
    let backends = observed_backends(r, data);
    let title = title(key, r, &backends);
    let comment = comment_target(r);
    let bug = RootCause::is_bug(key);
    let h = if comment.is_some() { "###" } else { "##" };
    let rep = representative(r, data);
    let mut md = String::new();
    match (bug, comment) {
        (false, _) => {
            let _ = write!(
                md,
                "# {title}\n\n**Not for filing.** Root cause `{key}`: the runs show no candle bug here; this text records why.\n"
            );
        }
        (true, Some(url)) => {
            let on: Vec<String> = backends
                .iter()
                .map(|b| match data.sweeps.get(b) {
                    Some(run) if b != "cpu" => format!("{b} ({})", run.target.name),
                    _ => b.clone(),
                })
                .collect();
            let candle = rep
                .map(|(run, _)| run.candle_version.clone())
                .unwrap_or_default();
            let _ = write!(
                md,
                "Comment for {url}\n\nAlso reproduces with candle {candle} on {}: {}. Minimal repro below.\n\n",
                on.join(" and "),
                lowercase_first(&r.title),
            );
        }
        (true, None) => {
            let _ = write!(md, "# {title}\n\n");
        }
    }
    if bug {
        let _ = writeln!(md, "{}", backends_line(r, data, &backends));
        let _ = writeln!(
            md,
            "\n{h} Versions\n\n{}",
            versions_section(r, data).trim_end()
        );
    }
    if !r.contract.is_empty() {
        let _ = write!(
            md,
            "\n{h} Documented contract\n\nThe call is valid according to candle's documentation:\n\n{}\n",
            quote_block(&r.contract)
        );
    }
    if let (Some((run, d)), Some((repro, source))) = (rep, repro) {
        let file = format!("{}.rs", key);
        let _ = write!(
            md,
            "\n{h} Minimal repro\n\nBuilt from the shrunk sweep cell of `{id}`. `Cargo.toml`:\n\n{toml}\n`src/main.rs` (also [repro/upstream-repros/src/bin/{file}]({TO_ROOT}{REPRO_DIR}/{file}), compiled by CI):\n\n{src}\nRun `cargo run --release --features cuda -- cuda`: it prints the CPU's result, the device's and the expected answer, one line each.\n",
            id = d.id,
            toml = fenced("toml", &repro.cargo_toml),
            src = fenced("rust", source),
        );
        let _ = write!(
            md,
            "\n{h} Expected vs actual\n\n{}",
            expected_vs_actual(run, d, repro, data)
        );
    }
    md.push_str(&cases_section(r, data));
    let mut runs: Vec<&SweepRun> = Vec::new();
    if let Some((run, _)) = rep {
        runs.push(run);
    }
    for run in data.sweeps.values() {
        let cited = r.ids.iter().any(|id| {
            run.divergences.iter().any(|d| &d.id == id)
                && data
                    .known
                    .entries
                    .get(id)
                    .is_some_and(|k| k.backends.contains(&run.target.backend))
        });
        if cited && !runs.iter().any(|x| std::ptr::eq(*x, run)) {
            runs.push(run);
        }
    }
    if !runs.is_empty() {
        let _ = write!(
            md,
            "\n{h} Environment\n\n{}",
            environment_section(&runs, data)
        );
    }
    let _ = write!(
        md,
        "\n{h} Root cause (from reading source)\n\n`{}`\n\n{}\n{}\n",
        r.source,
        fenced("rust", r.quote.trim_start_matches('\n')),
        r.explanation
    );
    let patch = format!("{PATCH_DIR}/{key}.patch");
    let patch_line = link(data, &patch, &patch)
        .map(|l| format!("\n\nPatch against candle 0.11.1: {l}"))
        .unwrap_or_default();
    if !r.fix.is_empty() {
        let _ = write!(md, "\n{h} Suggested fix\n\n{}{patch_line}\n", r.fix);
    }
    // A comment goes to the issue the status describes: nothing to add about it.
    if comment.is_none() && (!r.upstream.is_empty() || !r.upstream_status.is_empty()) {
        let lead = match (comment, r.upstream.is_empty()) {
            (Some(_), _) => String::new(),
            (None, false) => format!("Related: {} — ", r.upstream),
            (None, true) => String::new(),
        };
        let _ = write!(md, "\n{h} Upstream\n\n{lead}{}\n", r.upstream_status);
    }
    let _ = write!(
        md,
        "\n{h} Ids covered\n\nEach id is one symptom the op-consistency sweep (or the suite) shrank and recorded; the links are the per-id evidence.\n\n{}",
        ids_section(r, data)
    );
    let _ = write!(
        md,
        "\n<!-- Generated by `cargo run -p repro -- upstream` from repro/root-causes.toml (`{key}`), repro/sweep-known.toml, repro/expected.toml, reports/sweep/*/sweep.json, reports/<backend>/<case>.json and reports/matrix.json. Regenerate rather than edit. -->\n"
    );
    md
}

fn lowercase_first(s: &str) -> String {
    // Keep acronyms and identifiers ("CUDA", "candle_nn::…") as written.
    let first = s.split_whitespace().next().unwrap_or("");
    if first
        .chars()
        .skip(1)
        .any(|c| c.is_uppercase() || c == '_' || c == ':')
        || first.chars().all(|c| !c.is_lowercase())
    {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `reports/upstream/README.md`: one row per root cause.
pub fn index(data: &Data) -> String {
    let mut md = String::from(
        "# Upstream texts\n\nOne text per root cause in `repro/root-causes.toml`, generated by `cargo run -p repro -- upstream` from the observed runs (regenerate rather than edit; a test fails when these files differ from what the data gives). A text is a new issue, or a comment for the open upstream issue that already covers the root cause. The per-id evidence stays in `reports/sweep/<backend>/<id>.md`.\n\n| root cause | backends | ids | upstream | file |\n|---|---|---|---|---|\n",
    );
    for (key, r) in &data.root_causes {
        let backends = observed_backends(r, data);
        let upstream = if !RootCause::is_bug(key) {
            "not a bug: nothing to file".to_string()
        } else if let Some(url) = comment_target(r) {
            format!("comment on [{}]({url})", short_ref(url))
        } else if r.upstream.is_empty() {
            "new issue".to_string()
        } else {
            format!(
                "new issue (related: [{}]({}))",
                short_ref(&r.upstream),
                r.upstream
            )
        };
        let _ = writeln!(
            md,
            "| `{key}`<br>{} | {} | {} | {upstream} | [{key}.md]({key}.md) |",
            title(key, r, &backends),
            if backends.is_empty() {
                "—".to_string()
            } else {
                backends.join(", ")
            },
            r.ids.len(),
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
}

pub fn generate(
    data: &Data,
    format: &dyn Fn(&str) -> Result<String, Error>,
) -> Result<Generated, Error> {
    let mut texts = BTreeMap::new();
    let mut repros = BTreeMap::new();
    for (key, r) in &data.root_causes {
        let repro = repro(key, r, data)?;
        let source = match &repro {
            Some(rp) => Some(format(&rp.source)?),
            None => None,
        };
        let md = render(key, data, repro.as_ref().zip(source.as_deref()));
        if let Some(src) = source {
            repros.insert(format!("{key}.rs"), src);
        }
        texts.insert(format!("{key}.md"), md);
    }
    texts.insert("README.md".into(), index(data));
    Ok(Generated { texts, repros })
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

/// Writes every generated file atomically and removes the stale ones (`*.md` in `text_dir`,
/// `*.rs` in `repro_dir` that no root cause generates any more).
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
            if p.extension().is_some_and(|e| e == ext) && !files.contains_key(name) {
                std::fs::remove_file(&p)
                    .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
            }
        }
    }
    Ok(written)
}

/// `repro upstream`: loads the data (workspace root = the current folder), writes the texts to
/// `out` (default `<report_dir>/upstream`) and the repros to `repro_dir`.
pub fn run_command(
    report_dir: &Path,
    out: Option<&Path>,
    repro_dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let root = Path::new(".");
    let data = load(root, report_dir)?;
    let g = generate(&data, &rustfmt(root))?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| report_dir.join(TEXT_DIR));
    write(&g, &out, repro_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(upstream: &str, status: &str) -> RootCause {
        RootCause {
            title: "CUDA thing fails".into(),
            backends: vec!["cuda".into()],
            ids: vec![],
            source: String::new(),
            quote: String::new(),
            explanation: String::new(),
            contract: String::new(),
            upstream: upstream.into(),
            upstream_status: status.into(),
            fix: String::new(),
        }
    }

    #[test]
    fn only_an_open_issue_that_covers_it_gets_a_comment() {
        let issue = "https://github.com/huggingface/candle/issues/2373";
        let pr = "https://github.com/huggingface/candle/pull/2921";
        assert_eq!(
            comment_target(&cause(issue, "open (2024-07): same")),
            Some(issue)
        );
        assert_eq!(
            comment_target(&cause(issue, "#2373 open (2025-12): asks")),
            Some(issue)
        );
        assert_eq!(comment_target(&cause(issue, "closed (2024-07)")), None);
        assert_eq!(comment_target(&cause(pr, "open")), None);
        assert_eq!(
            comment_target(&cause(
                issue,
                "#2373 open: ids only. No issue found for gather"
            )),
            None
        );
        assert_eq!(comment_target(&cause("", "none found")), None);
    }

    #[test]
    fn cuda_only_titles_get_the_prefix() {
        let r = cause("", "");
        assert_eq!(title("k", &r, &["cuda".into()]), "[cuda] thing fails");
        assert_eq!(
            title("k", &r, &["cpu".into(), "cuda".into()]),
            "CUDA thing fails"
        );
        assert_eq!(
            title("not-a-bug-k", &r, &["cuda".into()]),
            "CUDA thing fails"
        );
    }

    #[test]
    fn versions_name_a_regression_and_a_constant_bug() {
        let mut data = Data::default();
        data.matrix.versions = vec!["0.9.2".into(), "0.10.2".into(), "0.11.1".into()];
        let mut known = |id: &str, pattern: [&str; 3]| {
            data.known.entries.insert(
                id.into(),
                known::Known {
                    backends: vec!["cuda".into()],
                    first_seen: "0.9.2".into(),
                    ..known::Known::first_observed("unimplemented", "0.11.1")
                },
            );
            for (v, b) in ["0.9.2", "0.10.2", "0.11.1"].iter().zip(pattern) {
                data.matrix.bug.insert(
                    (format!("sweep:{id}"), "cuda".into(), v.to_string()),
                    b.into(),
                );
            }
        };
        known("a", ["present", "present", "present"]);
        known("b", ["absent", "absent", "present"]);
        let mut r = cause("", "");
        r.ids = vec!["a".into()];
        assert_eq!(
            versions_section(&r, &data),
            "Shows in every version tested (0.9.2, 0.10.2, 0.11.1) on every backend it was observed on: introduced before 0.9.2.\n"
        );
        r.ids = vec!["a".into(), "b".into()];
        let s = versions_section(&r, &data);
        assert!(
            s.contains("- regression: 0.9.2 and 0.10.2 computed it, 0.11.1 fails: `b` on cuda"),
            "{s}"
        );
        assert!(
            s.contains("- shows in every version tested (0.9.2, 0.10.2, 0.11.1): `a` on cuda"),
            "{s}"
        );
    }

    #[test]
    fn quotes_keep_blank_lines_inside_the_quote() {
        assert_eq!(quote_block("a\n\nb"), "> a\n>\n> b");
    }

    #[test]
    fn first_word_case_is_kept_for_identifiers() {
        assert_eq!(lowercase_first("CUDA matmul fails"), "CUDA matmul fails");
        assert_eq!(
            lowercase_first("candle_nn::ops::rms_norm has no backward"),
            "candle_nn::ops::rms_norm has no backward"
        );
        assert_eq!(
            lowercase_first("Regression in 0.11.1"),
            "regression in 0.11.1"
        );
    }

    fn committed() -> Data {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        load(&root, &root.join("reports")).expect("committed data loads")
    }

    /// The texts are generated from the committed data with no formatting step: every root
    /// cause gets one, the five whose open issue already covers them are comments, the repros
    /// print three lines, and no text names a machine-local path.
    #[test]
    fn the_committed_data_gives_one_text_per_root_cause() {
        let data = committed();
        let g = generate(&data, &|s| Ok(s.to_string())).expect("generates");
        assert_eq!(g.texts.len(), data.root_causes.len() + 1);
        let bugs = data
            .root_causes
            .keys()
            .filter(|k| RootCause::is_bug(k))
            .count();
        assert_eq!(g.repros.len(), bugs, "one repro per bug");
        let comments: Vec<&String> = data
            .root_causes
            .iter()
            .filter(|(k, r)| RootCause::is_bug(k) && comment_target(r).is_some())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            comments,
            [
                "candle-nn-rms-norm-has-no-backward",
                "candle-nn-rope-has-no-backward",
                "candle-nn-softmax-last-dim-has-no-backward",
                "cuda-matmul-rejects-padded-leading-dim",
                "cuda-matmul-rejects-stride0-operand",
            ]
        );
        for (name, text) in g.texts.iter().chain(&g.repros) {
            for local in ["/root/", "/tmp/", "/work/", "/home/", "~/"] {
                assert!(!text.contains(local), "{name} names a local path ({local})");
            }
        }
        for k in &comments {
            assert!(
                g.texts[&format!("{k}.md")].starts_with("Comment for https://"),
                "{k}"
            );
        }
        for src in g.repros.values() {
            assert!(
                src.contains("println!(\"cpu:      {}\"")
                    && src.contains("println!(\"expected: {EXPECTED}\")")
            );
        }
        let sel = &g.texts["cuda-index-select-applies-index-strides-to-source.md"];
        assert!(sel.starts_with("# [cuda] index_select"), "{sel}");
    }

    /// Where the sweep kept only 12 values of the oracle's answer, the answer is computed again
    /// from the cell, and it begins with what the run recorded.
    #[test]
    fn a_cut_reference_is_completed_from_the_oracle() {
        let data = committed();
        let run = &data.sweeps["cuda"];
        let d = run
            .divergences
            .iter()
            .find(|d| d.id == "index-select-fwd-wrong-result-indexes-broadcast")
            .expect("recorded");
        let s = d.repro.as_ref().unwrap();
        let op = ops::find(&d.op).unwrap();
        let full = expected_answer(op, s).expect("recomputed");
        assert!(!full.contains('…'));
        assert_eq!(full.matches(", ").count(), 14 + 1, "{full}");
    }
}
