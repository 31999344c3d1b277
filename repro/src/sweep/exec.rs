//! Running one cell three ways (oracle, CPU, target), forward and backward, and turning the
//! differences into findings; and shrinking a cell while its finding still holds.

use super::cell::{self, Cell, Hazard, Input, Kind, Layout, Rng, LAYOUTS};
use super::ops::{ErrorModel, Op, OutputCheck, Reference};
use candle_core::{DType, Device};
use harness::compare::{compare_bounded, compare_within, tolerance, unit_roundoff, Tolerance};
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
        #[serde(with = "float_list")]
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
    /// Values differ from the oracle's where an input holds NaN or ±inf. candle documents no
    /// convention for these; the expectation is PyTorch's (the op's formula in IEEE arithmetic,
    /// NaN propagating through max, min, argmax, argmin, relu and clamp), kept apart so the
    /// convention can be argued separately from the arithmetic.
    NonFinite,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::WrongResult => "wrong-result",
            Category::Unimplemented => "unimplemented",
            Category::ErrorMismatch => "error-mismatch",
            Category::Crash => "crash",
            Category::NonFinite => "non-finite",
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
    /// The values, or their first `KEPT` when there are more than `EVIDENCE_LIMIT`.
    #[serde(with = "float_list")]
    pub values: Vec<f64>,
    pub layout: Layout,
}

/// Evidence keeps at most this many values of one tensor in full, and none of a long-row cell
/// (its rows are regenerated from the cell, not stored); beyond it, the first `KEPT`.
pub const EVIDENCE_LIMIT: usize = 4096;
pub const KEPT: usize = 16;

fn compact(values: &mut Vec<f64>, long_row: bool) {
    if values.len() > EVIDENCE_LIMIT || long_row && values.len() > KEPT {
        values.truncate(KEPT);
    }
}

/// Values as a report's table writes them: `1, 2.5, NaN`, with `, …` where evidence kept only
/// the first of `total`.
pub fn values_text(values: &[f64], total: usize) -> String {
    if values.len() < total && cell::is_long_row(values, KEPT) {
        return format!("(i mod 16)/16 for i in 0..{total}");
    }
    let v: Vec<String> = values.iter().map(|x| format!("{x}")).collect();
    let more = if values.len() < total { ", …" } else { "" };
    format!("{}{more}", v.join(", "))
}

/// Whether two recorded values are the same: NaN matches NaN, others within `1e-6` relative.
pub fn same_value(x: f64, y: f64) -> bool {
    x == y || x.is_nan() && y.is_nan() || (x - y).abs() <= 1e-6 * y.abs().max(1.0)
}

/// JSON has no NaN or infinity (serde_json writes `null` and cannot read it back): these are
/// written as the strings `"NaN"`, `"inf"` and `"-inf"`, every other value as a number.
mod float_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Float {
        Number(f64),
        Word(String),
    }

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&x| {
            if x.is_finite() {
                Float::Number(x)
            } else {
                Float::Word(format!("{x}"))
            }
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Float>::deserialize(d)?
            .into_iter()
            .map(|f| match f {
                Float::Number(x) => Ok(x),
                Float::Word(w) => w.parse().map_err(serde::de::Error::custom),
            })
            .collect()
    }
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
    if !cell.values.is_plain() {
        cell::apply_values(&mut inputs[0].host, cell.values, op.reduced_dim(cell));
    }
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
            let bad = match h {
                Hazard::PastEnd => bound as f64,
                Hazard::DtypeMax => harness::host::int_max(ix.host.dtype),
                Hazard::Negative => -1.0,
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
    // Value-class cells check the forward pass only (see `cell::Values`).
    if cell.aux().is_some_and(|a| !a.is_float()) && op.name == "to_dtype"
        || cell.hazard.is_some()
        || !cell.values.is_plain()
    {
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

/// Gradients of `sum(out * w)` with respect to each checked input's base variable; `None` where
/// the backward pass records no gradient for it.
fn gradients(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
    device: &Device,
) -> candle_core::Result<Vec<Gradient>> {
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
        .map(|v| Gradient {
            got: grads.get(v.as_tensor()).map(read_back),
            dtype: v.dtype(),
            dims: v.dims().to_vec(),
        })
        .collect())
}

/// One variable's gradient (`None`: none recorded), with the variable's dtype and shape.
struct Gradient {
    got: Option<candle_core::Result<HostTensor>>,
    dtype: DType,
    dims: Vec<usize>,
}

/// Whether the backward pass on the CPU records no gradient at all for the input `role` of this
/// cell (a `grads.get(..)` of `None`, which `backward` reports as zeros).
pub fn gradient_missing_on_cpu(op: &Op, cell: &Cell, role: &str, w: &[f64]) -> Option<bool> {
    let inputs = prepare(op, cell);
    let which = grad_inputs(op, cell, &inputs);
    let at = which.iter().position(|&i| inputs[i].role == role)?;
    let run = || gradients(op, cell, &inputs, &which, w, &Device::Cpu);
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(gs)) => gs.get(at).map(|g| g.got.is_none()),
        _ => None,
    }
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
        Ok(gradients(op, cell, inputs, which, w, device)?
            .into_iter()
            .map(|g| match g.got {
                Some(g) => g,
                // No gradient recorded means a zero gradient.
                None => Ok(HostTensor::zeros(g.dtype, &g.dims)),
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

/// What a float output is allowed, element by element, and the error model it comes from.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub per_element: Vec<f64>,
    /// Quoted in a mismatch: the relative part and the largest absolute part.
    pub summary: Tolerance,
    pub model: String,
}

impl Bounds {
    /// `rel·u·|want_i| + abs·u·m_i`, never below the smallest normal number of `dtype` (a
    /// backend may flush subnormals) nor `floor`.
    fn new(
        dtype: DType,
        want: &[f64],
        rel: f64,
        abs: f64,
        m: &[f64],
        floor: f64,
        model: String,
    ) -> Self {
        let u = unit_roundoff(dtype);
        let tiny = smallest_normal(dtype).max(floor);
        let per_element: Vec<f64> = want
            .iter()
            .zip(m)
            .map(|(w, mi)| (rel * u * w.abs() + abs * u * mi.abs()).max(tiny))
            .collect();
        let atol = want
            .iter()
            .zip(m)
            .map(|(_, mi)| (abs * u * mi.abs()).max(tiny))
            .fold(0.0, f64::max);
        Bounds {
            per_element,
            summary: Tolerance {
                rtol: rel * u,
                atol,
            },
            model,
        }
    }
}

fn smallest_normal(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-14),
        DType::BF16 | DType::F32 => 2f64.powi(-126),
        DType::F64 => f64::MIN_POSITIVE,
        _ => 0.0,
    }
}

/// The longest reduction a cell can make: its largest size knob.
fn terms(cell: &Cell) -> f64 {
    cell.knobs.iter().copied().max().unwrap_or(1) as f64
}

/// The term count the bounds multiply by the dtype's unit roundoff. A long row in f16 or bf16
/// is judged as accumulated in f32 (PyTorch's convention for half-precision reductions, and
/// the only one under which a 65,536-term bound means anything: n·u is 32 in f16): its count
/// is scaled by u(f32)/u(dtype).
fn accumulation_terms(cell: &Cell, dtype: DType) -> f64 {
    let n = terms(cell);
    if cell.values == cell::Values::Long && matches!(dtype, DType::F16 | DType::BF16) {
        n * unit_roundoff(DType::F32) / unit_roundoff(dtype)
    } else {
        n
    }
}

/// Σ|terms| of each element of a sum-like op's output: the same op on |inputs| (indexes
/// untouched); where that is not a sum of the inputs after all, the largest input product.
fn sum_terms(op: &Op, cell: &Cell, hosts: &[HostTensor], len: usize) -> Vec<f64> {
    let abs: Vec<HostTensor> = hosts
        .iter()
        .map(|h| HostTensor {
            values: if h.dtype.is_float() {
                h.values.iter().map(|v| v.abs()).collect()
            } else {
                h.values.clone()
            },
            ..h.clone()
        })
        .collect();
    match (op.oracle)(cell, &abs) {
        Reference::Values(v) if v.values.len() == len => v.values,
        _ => vec![terms(cell) * max_abs(hosts).powi(2); len],
    }
}

/// `|alpha·x̂| + |beta|` per element of a layer norm (inputs x, alpha, beta): the oracle with
/// |alpha| and a zero beta gives `|alpha|·x̂`.
fn affine_terms(op: &Op, cell: &Cell, hosts: &[HostTensor], want: &HostTensor) -> Vec<f64> {
    let abs = |h: &HostTensor| HostTensor {
        values: h.values.iter().map(|v| v.abs()).collect(),
        ..h.clone()
    };
    let zero = HostTensor {
        values: vec![0.0; hosts[2].values.len()],
        ..hosts[2].clone()
    };
    let inputs = [hosts[0].clone(), abs(&hosts[1]), zero];
    let beta = &hosts[2].values;
    match (op.oracle)(cell, &inputs) {
        Reference::Values(v) if v.values.len() == want.values.len() => v
            .values
            .iter()
            .enumerate()
            .map(|(i, a)| a.abs() + beta[i % beta.len()].abs())
            .collect(),
        _ => vec![max_abs(hosts).powi(2); want.values.len()],
    }
}

/// A rotation's terms (inputs x, cos, sin): `max|x|·(max|cos| + max|sin|)`.
fn rotation_terms(hosts: &[HostTensor]) -> f64 {
    max_abs(&hosts[..1]) * (max_abs(&hosts[1..2]) + max_abs(&hosts[2..3]))
}

/// The forward pass's bounds for `want`, from `op.error` (see `ErrorModel`).
pub fn forward_bounds(op: &Op, cell: &Cell, hosts: &[HostTensor], want: &HostTensor) -> Bounds {
    let n = accumulation_terms(cell, want.dtype);
    let zeros = vec![0.0; want.values.len()];
    let d = want.dtype;
    let mut b = match op.error {
        ErrorModel::Rounded => Bounds::new(
            d,
            &want.values,
            2.0,
            0.0,
            &zeros,
            0.0,
            "rounded: 2u|want|".into(),
        ),
        ErrorModel::Elementwise => Bounds::new(
            d,
            &want.values,
            4.0,
            0.0,
            &zeros,
            0.0,
            "elementwise: 4u|want|".into(),
        ),
        ErrorModel::Activation => {
            let x: Vec<f64> = hosts[0].values.iter().map(|v| v.abs()).collect();
            Bounds::new(
                d,
                &want.values,
                4.0,
                2.0,
                &x,
                0.0,
                "activation: 4u|want| + 2u|x|".into(),
            )
        }
        ErrorModel::Sum => {
            let s = sum_terms(op, cell, hosts, want.values.len());
            Bounds::new(
                d,
                &want.values,
                2.0,
                n,
                &s,
                0.0,
                format!("sum of n ≤ {n} terms: 2u|want| + n·u·Σ|terms|"),
            )
        }
        ErrorModel::Normalised => {
            let x = max_abs(&hosts[..1]);
            Bounds::new(
                d,
                &want.values,
                n + 2.0 + 2.0 * x,
                0.0,
                &zeros,
                0.0,
                format!("normalised over n ≤ {n}: (n + 2 + 2·max|x|)·u|want|"),
            )
        }
        ErrorModel::NormalisedAffine => {
            // The normalised row's bound on `|alpha·x̂| + |beta|`: the terms of `alpha·x̂ + beta`,
            // which may cancel.
            let x = max_abs(&hosts[..1]);
            let m = affine_terms(op, cell, hosts, want);
            Bounds::new(
                d,
                &want.values,
                0.0,
                n + 2.0 + 2.0 * x,
                &m,
                0.0,
                format!("normalised then affine over n ≤ {n}: (n + 2 + 2·max|x|)·u·(|alpha·x̂| + |beta|)"),
            )
        }
        ErrorModel::Rotation => {
            let m = rotation_terms(hosts);
            Bounds::new(
                d,
                &want.values,
                2.0,
                2.0,
                &vec![m; want.values.len()],
                0.0,
                "rotation: 2u|want| + 2u·max|x|·(max|cos| + max|sin|)".into(),
            )
        }
        ErrorModel::LogNormalised => {
            let m = max_abs(std::slice::from_ref(want)).max(max_abs(&hosts[..1]));
            Bounds::new(
                d,
                &want.values,
                n + 2.0,
                2.0,
                &vec![m; want.values.len()],
                0.0,
                format!("log-normalised over n ≤ {n}: (n+2)u|want| + 2u·max(|x|, |want|)"),
            )
        }
    };
    if n != terms(cell) {
        b.model += &format!(
            "; {} terms accumulated in f32, so n = {} · u(f32)/u({})",
            terms(cell),
            terms(cell),
            d.as_str()
        );
    }
    b
}

/// A gradient's bounds. A gradient sums products of the loss weights `w`, the inputs and the
/// forward result along the op's reduction, and may cancel to nothing (the gradient of a
/// softmax over a broadcast row), so its error scales with those terms, not with its own
/// size: `M = max(max|grad|, max|w|·max(1, max|inputs|, max|out|))`. The reference comes from
/// central differences in f64, good to ~1e-8 of `M`.
pub fn backward_bounds(cell: &Cell, want: &HostTensor, terms_scale: f64) -> Bounds {
    let n = terms(cell);
    let m = max_abs(std::slice::from_ref(want)).max(terms_scale);
    Bounds::new(
        want.dtype,
        &want.values,
        4.0,
        n + 2.0,
        &vec![m; want.values.len()],
        1e-8 * (1.0 + m),
        format!("gradient over n ≤ {n}: 4u|want| + (n+2)u·M, M = {m:.3} (the terms' scale)"),
    )
}

/// `max|w|·max(1, max|inputs|, max|out|)`: the size of the terms a gradient sums.
pub fn gradient_terms_scale(w: &[f64], hosts: &[HostTensor], out: &HostTensor) -> f64 {
    let w = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    w * 1f64
        .max(max_abs(hosts))
        .max(max_abs(std::slice::from_ref(out)))
}

fn max_abs(hosts: &[HostTensor]) -> f64 {
    hosts
        .iter()
        .filter(|h| h.dtype.is_float())
        .flat_map(|h| h.values.iter())
        .filter(|v| v.is_finite())
        .fold(0.0, |a, v| a.max(v.abs()))
}

/// Compares one backend's outcome with the reference; `None` when they agree.
fn judge(
    cell: &Cell,
    inputs: &[Input],
    reference: &Reference,
    obs: &Obs,
    bounds: Option<&Bounds>,
    check: OutputCheck,
) -> Option<(Category, String)> {
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
                OutputCheck::Argmin => oracle::is_argmin(&inputs[0].host, &got, cell.variant),
                OutputCheck::Values => {
                    let m = match bounds.filter(|_| want.dtype.is_float()) {
                        Some(b) => compare_bounded(b.summary, &want.values, values, &b.per_element)
                            .map(|m| format!("{m} [{}]", b.model)),
                        None => compare_within(tolerance(want.dtype), &want.values, values)
                            .map(|m| m.to_string()),
                    };
                    return m.map(|m| (Category::WrongResult, m));
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

/// `judge`, with a wrong result on inputs holding NaN or ±inf filed as `NonFinite`.
fn judge_cell(
    cell: &Cell,
    inputs: &[Input],
    reference: &Reference,
    obs: &Obs,
    bounds: Option<&Bounds>,
    check: OutputCheck,
) -> Option<(Category, String)> {
    judge(cell, inputs, reference, obs, bounds, check).map(|(c, d)| match c {
        Category::WrongResult if cell.values.non_finite().is_some() => (
            Category::NonFinite,
            format!("{d} (expected by PyTorch's convention for non-finite inputs)"),
        ),
        c => (c, d),
    })
}

/// Judges a recorded outcome again, from the cell alone: the oracle's answer and its error bound
/// for `pass` (`forward` or `backward <role>`, the latter with the recorded loss weights), then
/// the same comparison the run made. `None` when `obs` agrees. This is what a text's labels
/// are computed from, so a label can never disagree with the value beside it.
pub fn rejudge(
    op: &Op,
    cell: &Cell,
    pass: &str,
    loss_weights: Option<&[f64]>,
    obs: &Obs,
) -> Result<Option<(Category, String)>, String> {
    let inputs = prepare(op, cell);
    let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
    let reference = (op.oracle)(cell, &hosts);
    let Some(role) = pass.strip_prefix("backward ") else {
        let bounds = match &reference {
            Reference::Values(want) => Some(forward_bounds(op, cell, &hosts, want)),
            _ => None,
        };
        return Ok(judge_cell(
            cell,
            &inputs,
            &reference,
            obs,
            bounds.as_ref(),
            op.check,
        ));
    };
    let (Reference::Values(out), Some(w)) = (&reference, loss_weights) else {
        return Err(format!(
            "{pass}: no forward answer or no loss weights to judge it by"
        ));
    };
    let which = grad_inputs(op, cell, &inputs);
    let at = which
        .iter()
        .position(|&i| inputs[i].role == role)
        .ok_or_else(|| format!("{pass}: {role} gets no gradient"))?;
    let grads = reference_grads(op, cell, &inputs, &which, w)
        .ok_or_else(|| format!("{pass}: no reference gradient"))?;
    let want = &grads[at];
    let b = backward_bounds(cell, want, gradient_terms_scale(w, &hosts, out));
    let r = Reference::Values(want.clone());
    Ok(judge(cell, &inputs, &r, obs, Some(&b), OutputCheck::Values))
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
    let fwd_bounds = ref_values
        .as_ref()
        .map(|want| forward_bounds(op, cell, &hosts, want));
    let grad_bounds: Option<Vec<Bounds>> = match (&ref_grads, &w, &ref_values) {
        (Some(g), Some(w), Some(out)) => {
            let scale = gradient_terms_scale(w, &hosts, out);
            Some(
                g.iter()
                    .map(|want| backward_bounds(cell, want, scale))
                    .collect(),
            )
        }
        _ => None,
    };
    for (name, device) in backends {
        let fwd = forward(op, cell, &inputs, device);
        if let Some(j) = judge_cell(
            cell,
            &inputs,
            &reference,
            &fwd,
            fwd_bounds.as_ref(),
            op.check,
        ) {
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
            let gb = grad_bounds
                .as_ref()
                .expect("bounds for every reference gradient");
            for (((&i, want), obs), b) in which.iter().zip(grads).zip(got).zip(gb) {
                let pass = format!("backward {}", inputs[i].role);
                let r = Reference::Values(want.clone());
                if let Some(j) = judge(cell, &inputs, &r, &obs, Some(b), OutputCheck::Values) {
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
    let long_row = cell.values == cell::Values::Long;
    for i in &mut evidence.inputs {
        compact(&mut i.values, long_row);
    }
    for o in evidence.observed.values_mut().flat_map(|m| m.values_mut()) {
        if let Obs::Values { values, .. } = o {
            compact(values, long_row);
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

/// Shrinks `cell` while `like` still holds: value class toward plain, dtype toward f32, layouts
/// toward contiguous, values toward small integers, variant toward the first, each size knob
/// toward 1. Greedy, to a fixed point; candidates in `skip` (they poisoned an earlier process)
/// are not tried again.
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
    // Plain values first: a finding that holds without the special values is not about them
    // (a refusal, a dtype's missing kernel) and joins the plain cells' id. Not for long rows:
    // a plain cell checks the backward pass, whose finite differences are quadratic in length.
    if !c.values.is_plain() && c.values != cell::Values::Long {
        out.push(Cell {
            values: cell::Values::Plain,
            ..c.clone()
        });
    }
    // f32 reads best in a report; integer-only findings keep their dtype (it does not hold).
    if c.dtype != "f32" && op.dtypes.contains(&DType::F32) {
        out.push(Cell {
            dtype: "f32".into(),
            ..c.clone()
        });
    }
    // An i16/i32 index or condition goes to u32 where the finding holds there too (then it is
    // not about those dtypes), and i16 to i32 (one id for the pair; see `divergence_id`).
    for narrower in ["u32", "i32"] {
        let from = c.aux.as_deref().unwrap_or("");
        let wide = narrower == "u32" && matches!(from, "i16" | "i32") || from == "i16";
        if wide && op.aux.0.iter().any(|d| d.as_str() == narrower) {
            out.push(Cell {
                aux: Some(narrower.into()),
                ..c.clone()
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{cell::Values, ops::OPS, plan, DEFAULT_SEED};

    /// Perturbs `want` by `delta(i, want)` and says whether the bounds accept it.
    fn accepts(want: &HostTensor, b: &Bounds, delta: impl Fn(usize, f64) -> f64) -> bool {
        let got: Vec<f64> = want
            .values
            .iter()
            .enumerate()
            .map(|(i, &w)| w + delta(i, w))
            .collect();
        compare_bounded(b.summary, &want.values, &got, &b.per_element).is_none()
    }

    /// Every value-class cell reaches the dim its op reduces: a long cell's first input is
    /// `LONG` along it, a non-finite cell has exactly one special value in each line along it.
    #[test]
    fn value_classes_reach_the_reduced_dim() {
        let mut checked = 0;
        for op in OPS {
            for cell in plan(op, DEFAULT_SEED, 0) {
                let inputs = prepare(op, &cell);
                let x = &inputs[0].host;
                let dim = op.reduced_dim(&cell);
                // Where the op keeps the rank and collapses one dim (a keepdim reduction), that
                // dim is the reduced one: a check that shares nothing with `reduced_dim`.
                let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
                if let Reference::Values(want) = (op.oracle)(&cell, &hosts) {
                    let collapsed: Vec<usize> = (0..x.shape.len())
                        .filter(|&d| {
                            want.shape.len() == x.shape.len()
                                && want.shape[d] == 1
                                && x.shape[d] > 1
                        })
                        .collect();
                    if !cell.values.is_plain() && collapsed.len() == 1 {
                        assert_eq!(collapsed, [dim], "{} {cell:?}", op.name);
                    }
                }
                if cell.values == Values::Long {
                    assert_eq!(x.shape[dim], crate::sweep::cell::LONG, "{cell:?}");
                    checked += 1;
                }
                if cell.values.non_finite().is_some() {
                    let (outer, len, inner) = oracle::lines(&x.shape, dim);
                    for o in 0..outer {
                        for r in 0..inner {
                            let specials = (0..len)
                                .filter(|i| !x.values[(o * len + i) * inner + r].is_finite())
                                .count();
                            assert_eq!(specials, 1, "{} {cell:?}", op.name);
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "only {checked} value-class cells");
    }

    /// The tolerances are tight enough to matter: for every op, float dtype and cell (forward
    /// and every gradient), an error of one unit roundoff per element passes, and an error of
    /// 5% of the output's scale (for a sum or a gradient, of the terms it sums; for an
    /// activation, of its input) on every element (a softmax whose rows no longer sum to 1) fails.
    #[test]
    fn bounds_pass_rounding_and_fail_a_few_percent() {
        let mut checked = 0;
        for op in OPS {
            for cell in plan(op, DEFAULT_SEED, 1) {
                // Non-finite results must match exactly; no perturbation to test there.
                if cell.hazard.is_some()
                    || !matches!(op.check, OutputCheck::Values)
                    || cell.values.non_finite().is_some()
                {
                    continue;
                }
                let inputs = prepare(op, &cell);
                let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
                let Reference::Values(want) = (op.oracle)(&cell, &hosts) else {
                    continue;
                };
                let mut outputs = Vec::new();
                if want.dtype.is_float() {
                    // An activation's output is made of terms the size of its input
                    // (`0.5·x·(1 + tanh(…))`), whatever the output's own size.
                    // A sum's output is made of its terms, however much they cancel.
                    let terms = match op.error {
                        ErrorModel::Activation => max_abs(&hosts[..1]),
                        ErrorModel::Sum => sum_terms(op, &cell, &hosts, want.values.len())
                            .iter()
                            .fold(0.0f64, |a, v| a.max(v.abs())),
                        ErrorModel::NormalisedAffine => affine_terms(op, &cell, &hosts, &want)
                            .iter()
                            .fold(0.0f64, |a, v| a.max(*v)),
                        ErrorModel::Rotation => rotation_terms(&hosts),
                        _ => 0.0,
                    };
                    outputs.push((
                        "forward".to_string(),
                        want.clone(),
                        forward_bounds(op, &cell, &hosts, &want),
                        terms,
                    ));
                }
                let which = grad_inputs(op, &cell, &inputs);
                if !which.is_empty() {
                    let w = loss_weights(want.values.len(), cell.seed);
                    let scale = gradient_terms_scale(&w, &hosts, &want);
                    for (i, g) in which
                        .iter()
                        .zip(reference_grads(op, &cell, &inputs, &which, &w).unwrap_or_default())
                    {
                        let b = backward_bounds(&cell, &g, scale);
                        outputs.push((
                            format!("backward {}", inputs[*i].role),
                            g,
                            b.clone(),
                            scale,
                        ));
                    }
                }
                for (pass, want, b, terms_scale) in outputs {
                    let u = unit_roundoff(want.dtype);
                    // 5% of what the result is made of: its own size, or for a gradient the
                    // size of the terms it sums.
                    let scale = want
                        .values
                        .iter()
                        .fold(0.0f64, |a, v| a.max(v.abs()))
                        .max(terms_scale);
                    // A gradient that is zero up to the finite differences' noise has no scale,
                    // and a result in the subnormal range (a softmax over 65,536 in f16) has no
                    // relative precision to test: bounds never go below the smallest normal.
                    if scale < 1e-6 || scale < 20.0 * smallest_normal(want.dtype) {
                        continue;
                    }
                    let sign = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -1.0 };
                    assert!(
                        accepts(&want, &b, |i, w| sign(i) * u * w.abs()),
                        "{} {pass} {cell:?}: one unit roundoff rejected by {}",
                        op.name,
                        b.model
                    );
                    // Offset and large values are judged by bounds that grow with max|x| (the
                    // rounding of `x - mean` or `x - max` is relative to x), loose by design in
                    // the half types; the 5% test is for the plain and long cells.
                    if matches!(cell.values, Values::Offset | Values::Large) {
                        continue;
                    }
                    assert!(
                        !accepts(&want, &b, |_, _| 0.05 * scale),
                        "{} {pass} {cell:?}: a 5% error accepted by {}",
                        op.name,
                        b.model
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "only {checked} outputs checked");
    }
}
