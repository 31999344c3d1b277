//! Running one cell three ways (oracle, CPU, target), forward and backward, and turning the
//! differences into findings; and shrinking a cell while its finding still holds.

use super::cell::{self, Cell, Hazard, Input, Kind, Layout, Rng, LAYOUTS};
use super::ops::{Op, OutputCheck, Reference};
use candle_core::{DType, Device};
use harness::compare::{compare_within, tolerance, unit_roundoff, Tolerance};
use harness::host::{read_back, HostTensor};
use harness::oracle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What one backend did with one pass of a cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Obs {
    Values {
        dtype: String,
        shape: Vec<usize>,
        values: Vec<f64>,
    },
    Error {
        message: String,
    },
    Panic {
        message: String,
    },
}

impl Obs {
    fn values(h: HostTensor) -> Self {
        Obs::Values {
            dtype: h.dtype.as_str().to_string(),
            shape: h.shape,
            values: h.values,
        }
    }

    pub fn short(&self) -> String {
        match self {
            Obs::Values {
                dtype,
                shape,
                values,
            } => {
                let v: Vec<String> = values.iter().take(12).map(|x| format!("{x}")).collect();
                let more = if values.len() > 12 { ", …" } else { "" };
                format!("{dtype} {shape:?} [{}{more}]", v.join(", "))
            }
            Obs::Error { message } => format!("error: {message}"),
            Obs::Panic { message } => format!("panic: {message}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Values (or dtype, or shape) differ from the oracle's.
    WrongResult,
    /// A call within the op's contract fails on the backend.
    Unimplemented,
    /// A call the contract forbids succeeds, or two backends refuse one call differently.
    ErrorMismatch,
    /// The backend panicked or the process died.
    Crash,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::WrongResult => "wrong-result",
            Category::Unimplemented => "unimplemented",
            Category::ErrorMismatch => "error-mismatch",
            Category::Crash => "crash",
        }
    }
}

/// One divergence seen in one cell: which pass, what kind, on which backends, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// `forward`, or `backward <role>` for the gradient of one input.
    pub pass: String,
    pub category: Category,
    pub backends: Vec<String>,
    /// backend → what it did against what the oracle says.
    pub detail: BTreeMap<String, String>,
}

/// One input as a report shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvidenceInput {
    pub role: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    pub layout: Layout,
}

/// Everything a report needs to show for one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub inputs: Vec<EvidenceInput>,
    pub reference: BTreeMap<String, String>,
    pub observed: BTreeMap<String, BTreeMap<String, Obs>>,
    /// The weights of the loss `sum(out * w)` whose gradient the backward pass checks.
    pub loss_weights: Option<Vec<f64>>,
}

/// The op's inputs for a cell as drawn from its seed (roles, kinds, shapes, values), before
/// layouts and hazards touch them.
pub fn generate(op: &Op, cell: &Cell) -> Vec<Input> {
    (op.inputs)(cell, &mut Rng(cell.seed))
}

/// The cell's inputs with layout constraints and the hazard applied.
pub fn prepare(op: &Op, cell: &Cell) -> Vec<Input> {
    let mut inputs = generate(op, cell);
    for (input, layout) in inputs.iter_mut().zip(&cell.layouts) {
        cell::fit_to_layout(&mut input.host, *layout);
    }
    if let Some(h) = cell.hazard {
        if let Some(ix) = inputs
            .iter_mut()
            .find(|i| matches!(i.kind, Kind::Index { .. }))
        {
            let Kind::Index { bound } = ix.kind else {
                unreachable!()
            };
            let bad = match (h, ix.host.dtype) {
                (Hazard::PastEnd, _) => bound as f64,
                (Hazard::DtypeMax, DType::U8) => u8::MAX as f64,
                (Hazard::DtypeMax, DType::U32) => u32::MAX as f64,
                (Hazard::DtypeMax, _) => i64::MAX as f64,
                (Hazard::Negative, _) => -1.0,
            };
            if let Some(v) = ix.host.values.first_mut() {
                *v = bad;
            }
        }
    }
    inputs
}

fn first_line(e: &candle_core::Error) -> String {
    harness::device::first_line(&e.to_string())
}

/// Runs `f` catching errors and panics (candle's CPU backend panics on some bad indexes).
fn observe(f: impl FnOnce() -> candle_core::Result<HostTensor>) -> Obs {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(h)) => Obs::values(h),
        Ok(Err(e)) => Obs::Error {
            message: first_line(&e),
        },
        Err(p) => Obs::Panic {
            message: harness::observe::panic_message(&*p),
        },
    }
}

pub fn forward(op: &Op, cell: &Cell, inputs: &[Input], device: &Device) -> Obs {
    observe(|| {
        let ts = inputs
            .iter()
            .zip(&cell.layouts)
            .map(|(i, l)| cell::materialize(&i.host, *l, device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        read_back(&(op.candle)(cell, &ts)?)
    })
}

/// The inputs whose gradient this cell checks.
pub fn grad_inputs(op: &Op, cell: &Cell, inputs: &[Input]) -> Vec<usize> {
    // Gradients stop at an integer output (to_dtype to an integer type has no gradient).
    if cell.aux().is_some_and(|a| !a.is_float()) && op.name == "to_dtype" || cell.hazard.is_some() {
        return Vec::new();
    }
    op.grads
        .iter()
        .copied()
        .filter(|&i| inputs[i].host.dtype.is_float())
        .collect()
}

/// Loss weights: a few exact values, so `d loss / d out = w` holds exactly in every dtype.
pub fn loss_weights(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed ^ 0x5EED);
    (0..n)
        .map(|_| [-1.0, -0.5, 0.5, 1.0, 1.5][rng.below(5)])
        .collect()
}

/// Gradients of `sum(out * w)` with respect to each checked input's base variable.
pub fn backward(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
    device: &Device,
) -> Vec<Obs> {
    let run = || -> candle_core::Result<Vec<candle_core::Result<HostTensor>>> {
        let mut vars = Vec::new();
        let mut ts = Vec::new();
        for (i, (input, layout)) in inputs.iter().zip(&cell.layouts).enumerate() {
            if which.contains(&i) {
                let (var, t) = cell::materialize_var(&input.host, *layout, device)?;
                vars.push(var);
                ts.push(t);
            } else {
                ts.push(cell::materialize(&input.host, *layout, device)?);
            }
        }
        let out = (op.candle)(cell, &ts)?;
        let wt = HostTensor::new(out.dtype(), out.dims(), w.to_vec()).to_tensor(device)?;
        let grads = (out * wt)?.sum_all()?.backward()?;
        Ok(vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => read_back(g),
                // No gradient recorded means a zero gradient.
                None => Ok(HostTensor::zeros(v.dtype(), v.dims())),
            })
            .collect())
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(gs)) => gs
            .into_iter()
            .map(|g| match g {
                Ok(h) => Obs::values(h),
                Err(e) => Obs::Error {
                    message: first_line(&e),
                },
            })
            .collect(),
        Ok(Err(e)) => vec![
            Obs::Error {
                message: first_line(&e)
            };
            which.len()
        ],
        Err(p) => vec![
            Obs::Panic {
                message: harness::observe::panic_message(&*p)
            };
            which.len()
        ],
    }
}

/// The reference gradients by central finite differences of the oracle, computed in f64, then
/// mapped onto each input's base variable (what candle's gradient is taken against).
pub fn reference_grads(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
) -> Option<Vec<HostTensor>> {
    let mut fd_cell = cell.clone();
    fd_cell.dtype = "f64".into();
    if cell.aux().is_some_and(|a| a.is_float()) {
        fd_cell.aux = Some("f64".into());
    }
    let as_f64 = |h: &HostTensor| -> HostTensor {
        if h.dtype.is_float() {
            HostTensor {
                dtype: DType::F64,
                ..h.clone()
            }
        } else {
            h.clone()
        }
    };
    let mut hosts: Vec<HostTensor> = inputs.iter().map(|i| as_f64(&i.host)).collect();
    let loss = |hosts: &[HostTensor]| -> Option<f64> {
        match (op.oracle)(&fd_cell, hosts) {
            Reference::Values(o) => Some(o.values.iter().zip(w).map(|(a, b)| a * b).sum()),
            _ => None,
        }
    };
    loss(&hosts)?;
    let h = 1e-5;
    let mut out = Vec::new();
    for &i in which {
        let mut g = HostTensor::zeros(DType::F64, &hosts[i].shape);
        for e in 0..hosts[i].values.len() {
            let x = hosts[i].values[e];
            hosts[i].values[e] = x + h;
            let up = loss(&hosts)?;
            hosts[i].values[e] = x - h;
            let down = loss(&hosts)?;
            hosts[i].values[e] = x;
            g.values[e] = (up - down) / (2.0 * h);
        }
        let mut base = cell::grad_to_base(&g, cell.layouts[i]);
        base.dtype = inputs[i].host.dtype;
        out.push(base);
    }
    Some(out)
}

/// Tolerance for a float result: a few units of rounding, plus the classic `n·u·Σ|terms|` bound
/// for results that sum `n` terms (inputs are below 2 in magnitude, so each term is below 4).
pub fn tolerance_for(dtype: DType, accumulates: bool, n: usize) -> Tolerance {
    let base = tolerance(dtype);
    if !dtype.is_float() {
        return base;
    }
    let u = unit_roundoff(dtype);
    let mut t = Tolerance {
        rtol: base.rtol.max(4.0 * u),
        atol: base.atol,
    };
    if accumulates {
        t.atol += (n * n) as f64 * 4.0 * u;
    }
    t
}

/// Compares one backend's outcome with the reference; `None` when they agree.
fn judge(
    cell: &Cell,
    inputs: &[Input],
    reference: &Reference,
    obs: &Obs,
    accumulates: bool,
    check: OutputCheck,
) -> Option<(Category, String)> {
    let n = cell.knobs.iter().copied().max().unwrap_or(1);
    match (reference, obs) {
        (_, Obs::Panic { message }) => Some((Category::Crash, format!("panicked: {message}"))),
        (Reference::Unspecified(_), _) => None,
        (Reference::Rejected(r), Obs::Values { .. }) => Some((
            Category::ErrorMismatch,
            format!(
                "accepted a call the contract forbids ({}) and returned {}",
                r.reason,
                obs.short()
            ),
        )),
        (Reference::Rejected(_), Obs::Error { .. }) => None,
        (Reference::Values(_), Obs::Error { message }) => Some((
            Category::Unimplemented,
            format!("fails where the oracle computes a result: {message}"),
        )),
        (
            Reference::Values(want),
            Obs::Values {
                dtype,
                shape,
                values,
            },
        ) => {
            if dtype != want.dtype.as_str() || *shape != want.shape {
                return Some((
                    Category::WrongResult,
                    format!(
                        "returned {dtype} {shape:?}, expected {} {:?}",
                        want.dtype.as_str(),
                        want.shape
                    ),
                ));
            }
            let got = HostTensor {
                dtype: want.dtype,
                shape: shape.clone(),
                values: values.clone(),
            };
            let ok = match check {
                OutputCheck::SortsRows => {
                    oracle::sorts_rows(&inputs[0].host, &got, cell.variant == 0)
                }
                OutputCheck::Argmax => oracle::is_argmax(&inputs[0].host, &got, cell.variant),
                OutputCheck::Values => {
                    let tol = tolerance_for(want.dtype, accumulates, n);
                    return compare_within(tol, &want.values, values)
                        .map(|m| (Category::WrongResult, format!("{m}")));
                }
            };
            (!ok).then(|| {
                (
                    Category::WrongResult,
                    format!(
                        "{} does not order the input as asked; expected e.g. {:?}",
                        obs.short(),
                        want.values
                    ),
                )
            })
        }
    }
    .map(|(c, d)| (c, d.replace('\n', " ")))
}

/// Runs a cell on every backend given (CPU first) and returns its findings and evidence.
pub fn run_cell(op: &Op, cell: &Cell, backends: &[(String, &Device)]) -> (Vec<Finding>, Evidence) {
    let inputs = prepare(op, cell);
    let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
    let reference = (op.oracle)(cell, &hosts);
    let mut evidence = Evidence {
        inputs: inputs
            .iter()
            .zip(&cell.layouts)
            .map(|(i, l)| EvidenceInput {
                role: i.role.to_string(),
                dtype: i.host.dtype.as_str().to_string(),
                shape: i.host.shape.clone(),
                values: i.host.values.clone(),
                layout: *l,
            })
            .collect(),
        reference: BTreeMap::new(),
        observed: BTreeMap::new(),
        loss_weights: None,
    };
    evidence.reference.insert(
        "forward".into(),
        match &reference {
            Reference::Values(v) => Obs::values(v.clone()).short(),
            Reference::Rejected(r) => format!("rejects the call: {}", r.reason),
            Reference::Unspecified(why) => format!("unspecified: {why}"),
        },
    );
    // pass → backend → (category, detail)
    let mut raw: BTreeMap<String, BTreeMap<String, (Category, String)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    let which = grad_inputs(op, cell, &inputs);
    let ref_values = match &reference {
        Reference::Values(v) => Some(v.clone()),
        _ => None,
    };
    let w = ref_values
        .as_ref()
        .map(|v| loss_weights(v.values.len(), cell.seed));
    let ref_grads = match (&w, which.is_empty()) {
        (Some(w), false) => reference_grads(op, cell, &inputs, &which, w),
        _ => None,
    };
    for (name, device) in backends {
        let fwd = forward(op, cell, &inputs, device);
        if let Some(j) = judge(cell, &inputs, &reference, &fwd, op.accumulates, op.check) {
            raw.entry("forward".into())
                .or_default()
                .insert(name.clone(), j);
        }
        if let Obs::Error { message } = &fwd {
            errors.insert(name.clone(), message.clone());
        }
        let fwd_ok = matches!(fwd, Obs::Values { .. });
        evidence
            .observed
            .entry("forward".into())
            .or_default()
            .insert(name.clone(), fwd);
        // The backward pass is judged only where the forward pass computed the right thing.
        let fwd_right = fwd_ok && !raw.get("forward").is_some_and(|m| m.contains_key(name));
        if let (Some(grads), Some(w), true) = (&ref_grads, &w, fwd_right) {
            let got = backward(op, cell, &inputs, &which, w, device);
            for ((&i, want), obs) in which.iter().zip(grads).zip(got) {
                let pass = format!("backward {}", inputs[i].role);
                let r = Reference::Values(want.clone());
                if let Some(j) = judge(cell, &inputs, &r, &obs, true, OutputCheck::Values) {
                    raw.entry(pass.clone()).or_default().insert(name.clone(), j);
                }
                evidence
                    .reference
                    .entry(pass.clone())
                    .or_insert_with(|| Obs::values(want.clone()).short());
                evidence
                    .observed
                    .entry(pass)
                    .or_default()
                    .insert(name.clone(), obs);
            }
            evidence.loss_weights = Some(w.clone());
        }
    }
    // Error parity between backends on a call both refuse.
    if backends.len() == 2 && !matches!(reference, Reference::Values(_)) {
        let (a, b) = (&backends[0].0, &backends[1].0);
        if let (Some(ea), Some(eb)) = (errors.get(a), errors.get(b)) {
            if normalise(ea) != normalise(eb) {
                raw.entry("forward".into()).or_default().insert(
                    b.clone(),
                    (
                        Category::ErrorMismatch,
                        format!("{a} and {b} refuse the call with different errors: {a}: `{ea}`; {b}: `{eb}`"),
                    ),
                );
            }
        }
    }
    // One finding per backend: each is shrunk on its own, so a CPU-only run and a CPU+CUDA
    // run shrink a CPU divergence the same way and name it the same.
    let mut findings = Vec::new();
    for (pass, per_backend) in raw {
        for (backend, (category, detail)) in per_backend {
            findings.push(Finding {
                pass: pass.clone(),
                category,
                backends: vec![backend.clone()],
                detail: BTreeMap::from([(backend, detail)]),
            });
        }
    }
    (findings, evidence)
}

/// Error texts compared for parity: the words, without numbers or backend names.
fn normalise(msg: &str) -> String {
    msg.to_lowercase()
        .replace("cuda", "")
        .replace("cpu", "")
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What identifies one divergence among many cells: the finding's pass, category and backends.
pub fn holds(findings: &[Finding], like: &Finding) -> bool {
    findings
        .iter()
        .any(|f| f.pass == like.pass && f.category == like.category && f.backends == like.backends)
}

/// Whether a backend reported an error that leaves its context unusable (a CUDA device-side
/// assert or illegal address): every later call in the process would fail, so the process
/// must end after this cell.
pub fn is_poisoned(e: &Evidence) -> bool {
    e.observed
        .values()
        .flat_map(|m| m.values())
        .any(|o| match o {
            Obs::Error { message } => [
                "CUDA_ERROR_ASSERT",
                "ILLEGAL_ADDRESS",
                "LAUNCH_FAILED",
                "device-side assert",
            ]
            .iter()
            .any(|p| message.contains(p)),
            _ => false,
        })
}

/// How a shrink ended.
pub enum Shrinking {
    /// The smallest cell found (a fixed point, or the trial budget ran out).
    Done(Cell),
    /// A trial poisoned the device context: resume from `best` in a fresh process, skipping
    /// `culprit`.
    Poisoned { best: Cell, culprit: Cell },
}

/// Shrinks `cell` while `like` still holds: dtype toward f32, layouts toward contiguous, values
/// toward small integers, variant toward the first, each size knob toward 1. Greedy, to a fixed
/// point; candidates in `skip` (they poisoned an earlier process) are not tried again.
pub fn shrink(
    op: &Op,
    cell: &Cell,
    like: &Finding,
    backends: &[(String, &Device)],
    max_trials: usize,
    skip: &[Cell],
) -> Shrinking {
    let mut best = cell.clone();
    let mut trials = 0;
    loop {
        let mut improved = false;
        for cand in candidates(op, &best) {
            if !layouts_apply(op, &cand) || skip.contains(&cand) {
                continue;
            }
            if trials >= max_trials {
                return Shrinking::Done(best);
            }
            trials += 1;
            let (f, evidence) = run_cell(op, &cand, backends);
            if is_poisoned(&evidence) {
                return Shrinking::Poisoned {
                    best,
                    culprit: cand,
                };
            }
            if holds(&f, like) {
                best = cand;
                improved = true;
                break;
            }
        }
        if !improved {
            return Shrinking::Done(best);
        }
    }
}

fn candidates(op: &Op, c: &Cell) -> Vec<Cell> {
    let mut out = Vec::new();
    // f32 reads best in a report; integer-only findings keep their dtype (it does not hold).
    if c.dtype != "f32" && op.dtypes.contains(&DType::F32) {
        out.push(Cell {
            dtype: "f32".into(),
            ..c.clone()
        });
    }
    for i in 0..c.layouts.len() {
        for l in LAYOUTS.iter().filter(|&&l| l < c.layouts[i]) {
            let mut n = c.clone();
            n.layouts[i] = *l;
            out.push(n);
        }
    }
    if !c.simple {
        out.push(Cell {
            simple: true,
            ..c.clone()
        });
    }
    if c.variant > 0 {
        out.push(Cell {
            variant: 0,
            ..c.clone()
        });
    }
    for i in 0..c.knobs.len() {
        let k = c.knobs[i];
        let mut smaller: Vec<usize> = vec![1, k / 2, k - 1];
        smaller.retain(|&s| s >= 1 && s < k);
        smaller.dedup();
        for s in smaller {
            let mut n = c.clone();
            n.knobs[i] = s;
            out.push(n);
        }
    }
    out
}

/// Whether every input's layout means something at that input's rank.
pub fn layouts_apply(op: &Op, cell: &Cell) -> bool {
    generate(op, cell)
        .iter()
        .zip(&cell.layouts)
        .all(|(i, l)| l.applies_to(i.host.shape.len()))
}
