//! The ops the sweep covers: the ones an MoE transformer's forward and backward pass runs. Each
//! entry says which dtypes and variants it takes, how its size knobs become input shapes, and
//! how to call it three ways — through candle, through the oracle, and as the Rust source a
//! standalone repro prints — side by side, so the three cannot drift apart unnoticed.

use super::cell::{data_values, Cell, Input, Kind, Place, Rng, Values};
use candle_core::op::CmpOp;
use candle_core::{DType, Tensor};
use harness::host::HostTensor;
use harness::oracle::{self, Rejection};

/// What the oracle says a cell should return.
#[derive(Clone, Debug)]
pub enum Reference {
    Values(HostTensor),
    /// The call breaks the op's contract; a backend should refuse it.
    Rejected(Rejection),
    /// The op leaves the result undefined (scatter onto one position twice); only error parity
    /// between backends is compared.
    Unspecified(String),
}

impl From<oracle::OracleResult> for Reference {
    fn from(r: oracle::OracleResult) -> Self {
        match r {
            Ok(v) => Reference::Values(v),
            Err(e) => Reference::Rejected(e),
        }
    }
}

/// The error analysis a float output is judged by: each element `i` may differ from the
/// reference by `rel·u·|want_i| + abs·u·M_i` (u: the dtype's unit roundoff), where `M_i`
/// depends on the model. See `exec::bounds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ErrorModel {
    /// Copies, selections, conversions: one rounding of the exact value on each side.
    Rounded,
    /// Elementwise functions built from exp and a division: a few roundings of the result.
    Elementwise,
    /// Each element sums up to n products of inputs (matmul, sum, index_add, scatter_add):
    /// the classic `n·u·Σ|terms|` bound, with `Σ|terms|` from the oracle run on |inputs|.
    Sum,
    /// Normalising ops (softmax, rms_norm): a relative bound per element that grows with the
    /// row length and with the inputs' magnitude (rounding of `x - max` is relative to `x`).
    Normalised,
    /// Activations whose formula cancels (gelu's `1 + tanh(…)` near −1): a few roundings of
    /// the result plus two of the input's size (`0.5·x·(1 + tanh)` with `tanh` off by one u).
    Activation,
    /// layer_norm: the normalised row's relative bound, on the terms `|alpha·x̂| + |beta|`
    /// (the affine part may cancel).
    NormalisedAffine,
    /// Rotary embeddings: `x0·cos − x1·sin`, two products that may cancel.
    Rotation,
    /// log_softmax: the softmax's relative bound, plus the rounding of `x - logsumexp`, which
    /// is absolute in the size of `x`.
    LogNormalised,
}

/// How an output is judged against the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputCheck {
    /// Equal within the dtype's tolerance (exact for integers).
    Values,
    /// Any permutation that sorts each row (ties may come in any order).
    SortsRows,
    /// Any position of a maximum.
    Argmax,
    /// Any position of a minimum.
    Argmin,
}

/// The op a divergence id belongs to: the longest op name (in kebab case) that prefixes it.
pub fn op_of(id: &str) -> Option<String> {
    OPS.iter()
        .filter(|o| id.starts_with(&format!("{}-", o.name.replace('_', "-"))))
        .max_by_key(|o| o.name.len())
        .map(|o| o.name.to_string())
}

pub struct Op {
    pub name: &'static str,
    /// The call as a reader would write it, for reports.
    pub call: &'static str,
    pub dtypes: &'static [DType],
    /// The op's second dtype and what it is (`index`, `condition`, `target`).
    pub aux: (&'static [DType], &'static str),
    pub variants: &'static [&'static str],
    pub knobs: usize,
    /// Builds the logical inputs (roles, kinds, values) for a cell.
    pub inputs: fn(&Cell, &mut Rng) -> Vec<Input>,
    pub candle: fn(&Cell, &[Tensor]) -> candle_core::Result<Tensor>,
    pub oracle: fn(&Cell, &[HostTensor]) -> Reference,
    /// The candle call as Rust source over the given variable names.
    pub code: fn(&Cell, &[&str]) -> String,
    /// Inputs the backward pass differentiates (when their dtype is a float).
    pub grads: &'static [usize],
    pub check: OutputCheck,
    /// How far a correct backend may be from the oracle's f64 result rounded once (the
    /// forward pass; every backward pass is judged as a sum of products).
    pub error: ErrorModel,
    /// Whether the op takes an index (so out-of-range index cells are generated).
    pub indexed: bool,
    /// Whether every pair of layouts of its first two inputs is enumerated (the operands of a
    /// product, whose kernels pick paths by both strides), not only one non-contiguous input at
    /// a time.
    pub layout_pairs: bool,
    /// The value classes swept beyond the plain ones (forward only): NaN and ±inf at each place
    /// of a reduced line, offset rows, large magnitudes, long rows.
    pub values: &'static [Values],
}

const ALL: &[DType] = &[
    DType::U8,
    DType::U32,
    DType::I64,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
];
const FLOATS: &[DType] = &[DType::F16, DType::BF16, DType::F32, DType::F64];
const INDEX: &[DType] = &[DType::U8, DType::U32, DType::I64];
/// Every integer dtype: the index and condition dtypes of the ops whose CPU path takes all of
/// them (scatter_add, index_add, where_cond; gather, index_select and scatter take only `INDEX`).
#[cfg(feature = "i16-i32")]
const EVERY_INT: &[DType] = &[DType::U8, DType::U32, DType::I64, DType::I16, DType::I32];
#[cfg(not(feature = "i16-i32"))]
const EVERY_INT: &[DType] = INDEX;
const DIMS: &[&str] = &["dim 0", "dim 1"];

/// The value classes of an op: NaN, +inf and -inf, each first, in the middle and last of every
/// reduced line, then the classes given.
macro_rules! value_classes {
    ($($extra:ident),*) => {
        &[
            Values::Nan(Place::First),
            Values::Nan(Place::Middle),
            Values::Nan(Place::Last),
            Values::PosInf(Place::First),
            Values::PosInf(Place::Middle),
            Values::PosInf(Place::Last),
            Values::NegInf(Place::First),
            Values::NegInf(Place::Middle),
            Values::NegInf(Place::Last),
            $(Values::$extra),*
        ]
    };
}

/// For max/min and their arg, relu and clamp: only NaN and ±inf change what they compute.
const NON_FINITE: &[Values] = value_classes!();
/// For cumsum: no long rows (candle's cumsum multiplies by an n×n triangular matrix, 16 GiB in
/// f32 at 65,536).
const SCAN: &[Values] = value_classes!(Offset, Large);
/// For the ops that accumulate along a line.
const REDUCTION: &[Values] = value_classes!(Offset, Large, Long);
/// For `sum_keepdim`, the one reduction that takes integers: the reduction classes plus a u8/u32
/// sum that wraps.
const SUM: &[Values] = value_classes!(Offset, Large, Long, Overflow);
const NONE: (&[DType], &str) = (&[], "");

fn data(role: &'static str, c: &Cell, dtype: DType, shape: &[usize], rng: &mut Rng) -> Input {
    let n = shape.iter().product();
    Input {
        role,
        kind: Kind::Data,
        host: HostTensor::new(dtype, shape, data_values(dtype, n, c.simple, rng)),
    }
}

/// An index of `shape` with values below `bound`; `unique_along` draws each line along that
/// dim without repeats (scatter's results are only defined then).
fn index(
    c: &Cell,
    shape: &[usize],
    bound: usize,
    unique_along: Option<usize>,
    rng: &mut Rng,
) -> Input {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n)
        .map(|i| {
            if c.simple {
                (i % bound) as f64
            } else {
                rng.below(bound) as f64
            }
        })
        .collect();
    if let Some(dim) = unique_along {
        let (outer, len, inner) = oracle::lines(shape, dim);
        for o in 0..outer {
            for r in 0..inner {
                let perm = harness::host::shuffled_permutation(bound, &mut rng.0);
                for i in 0..len {
                    values[(o * len + i) * inner + r] =
                        if c.simple { i as f64 } else { perm[i] as f64 };
                }
            }
        }
    }
    Input {
        role: "indexes",
        kind: Kind::Index { bound },
        host: HostTensor::new(c.aux().unwrap_or(DType::U32), shape, values),
    }
}

/// One data input `x` of shape `[knob 0, knob 1]`.
fn one_2d(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng)]
}

fn k(c: &Cell, i: usize) -> usize {
    c.knobs[i]
}

fn with_dim(shape: [usize; 2], dim: usize, n: usize) -> [usize; 2] {
    let mut s = shape;
    s[dim] = n;
    s
}

fn has_duplicate_targets(ids: &HostTensor, dim: usize) -> bool {
    let (outer, len, inner) = oracle::lines(&ids.shape, dim);
    (0..outer).any(|o| {
        (0..inner).any(|r| {
            let mut seen: Vec<f64> = (0..len)
                .map(|i| ids.values[(o * len + i) * inner + r])
                .collect();
            seen.sort_by(f64::total_cmp);
            seen.windows(2).any(|w| w[0] == w[1])
        })
    })
}

/// One data input `x` of shape `[knob 0, knob 1]`, each value moved by `f` into the op's domain
/// (then rounded to the dtype again).
fn one_2d_mapped(c: &Cell, rng: &mut Rng, f: fn(f64) -> f64) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x.host.values.iter().map(|&v| f(v)).collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// A normalisation's inputs: `x` of `[knob 0, knob 1]`, `alpha` (and `beta` for layer_norm)
/// of `[knob 1]`.
fn norm_inputs(c: &Cell, rng: &mut Rng, with_beta: bool) -> Vec<Input> {
    let mut inputs = vec![
        data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng),
        data("alpha", c, c.dtype(), &[k(c, 1)], rng),
    ];
    if with_beta {
        inputs.push(data("beta", c, c.dtype(), &[k(c, 1)], rng));
    }
    inputs
}

/// Inputs of log, sqrt and powf: `|x| + 1/4`, inside the domain and away from 0.
fn positive(v: f64) -> f64 {
    v.abs() + 0.25
}

/// Keeps a value 1/16 or more from the kinks at -1, 0 and 1 of relu and clamp, where the
/// finite differences that check the backward pass would straddle the kink.
fn off_kinks(v: f64) -> f64 {
    match [-1.0, 0.0, 1.0].iter().find(|k| (v - *k).abs() < 0.0625) {
        Some(k) => k + 0.25,
        None => v,
    }
}

/// Float data, and a target index below the class count (losses).
fn logits_and_targets(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let (n, classes) = (k(c, 0), k(c, 1).max(2));
    let mut t = index(c, &[n], classes, None, rng);
    t.role = "target";
    vec![data("inp", c, c.dtype(), &[n, classes], rng), t]
}

/// `x` (b, h, t, d) or, for rope_thd, (b, t, h, d), with d = 2·knob 3, and cos/sin tables of
/// (t, d/2) (variant 0) or (b, t, d/2) (variant 1), the two shapes candle-nn accepts.
fn rope_inputs(c: &Cell, rng: &mut Rng, thd: bool) -> Vec<Input> {
    let (b, h, t, half) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
    let x = if thd {
        [b, t, h, 2 * half]
    } else {
        [b, h, t, 2 * half]
    };
    let table: Vec<usize> = if c.variant == 0 {
        vec![t, half]
    } else {
        vec![b, t, half]
    };
    vec![
        data("x", c, c.dtype(), &x, rng),
        data("cos", c, c.dtype(), &table, rng),
        data("sin", c, c.dtype(), &table, rng),
    ]
}

const ROPE_TABLES: &[&str] = &["cos (t, d/2)", "cos (b, t, d/2)"];

/// One step of candle_nn::AdamW (lr 0.1, weight decay 0.01, default betas and eps) on a Var
/// initialised from `p`, with the gradient `g` (the gradient of `sum(p·g)`); returns the new `p`.
pub fn adamw_step(p: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    use candle_nn::Optimizer as _;
    let var = candle_core::Var::from_tensor(p)?;
    let params = candle_nn::ParamsAdamW {
        lr: 0.1,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(vec![var.clone()], params)?;
    opt.backward_step(&(var.as_tensor() * g)?.sum_all()?)?;
    Ok(var.as_tensor().clone())
}

const CMP: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge"];

const CMP_OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];
const CMP_NAMES: [&str; 6] = ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"];

fn cmp_op(c: &Cell) -> CmpOp {
    CMP_OPS[c.variant]
}

/// An elementwise op on one 2-D float input `x`, differentiated:
/// `unary!(name, call, candle, oracle, code format, error model, inputs)`.
macro_rules! unary {
    ($name:literal, $call:literal, $candle:expr, $oracle:expr, $code:literal, $error:expr, $inputs:expr) => {
        Op {
            name: $name,
            call: $call,
            dtypes: FLOATS,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: $inputs,
            candle: $candle,
            oracle: |c, h| {
                let f: fn(&Cell, &[HostTensor]) -> oracle::OracleResult = $oracle;
                f(c, h).into()
            },
            code: |_, v| format!($code, v[0]),
            grads: &[0],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

/// An elementwise `Tensor` method on one 2-D float input, against the oracle function of the
/// same name (with the same extra arguments): `method!(affine(2.0, 0.5), error model, inputs)`.
macro_rules! method {
    (@values) => { &[] };
    (@values $values:expr) => { $values };
    ($method:ident($($arg:expr),*), $error:expr, $inputs:expr $(, values: $values:expr)?) => {
        Op {
            name: stringify!($method),
            call: concat!("x.", stringify!($method), "(", stringify!($($arg),*), ")"),
            dtypes: FLOATS,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: $inputs,
            candle: |_, t| t[0].$method($($arg),*),
            oracle: |_, h| oracle::$method(&h[0] $(, $arg)*).into(),
            code: |_, v| {
                format!(
                    concat!("{}.", stringify!($method), "(", stringify!($($arg),*), ")?"),
                    v[0]
                )
            },
            grads: &[0],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: method!(@values $($values)?),
        }
    };
}

/// `x.<method>(dim)` over dim 0 or 1 of a 2-D input, against `oracle::<method>`:
/// `reduce!(method, dtypes, error model, grads, check, value classes)`.
macro_rules! reduce {
    ($method:ident, $dtypes:expr, $error:expr, $grads:expr, $check:expr, $values:expr) => {
        Op {
            name: stringify!($method),
            call: concat!("x.", stringify!($method), "(dim)"),
            dtypes: $dtypes,
            aux: NONE,
            variants: DIMS,
            knobs: 2,
            inputs: one_2d,
            candle: |c, t| t[0].$method(c.variant),
            oracle: |c, h| oracle::$method(&h[0], c.variant).into(),
            code: |c, v| {
                format!(
                    concat!("{}.", stringify!($method), "({})?"),
                    v[0], c.variant
                )
            },
            grads: $grads,
            check: $check,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: $values,
        }
    };
}

/// `candle_nn::rotary_emb::<name>(&x, &cos, &sin)` with both cos/sin table shapes.
macro_rules! rope {
    ($name:ident, interleaved: $interleaved:literal, thd: $thd:literal) => {
        Op {
            name: stringify!($name),
            call: concat!(
                "candle_nn::rotary_emb::",
                stringify!($name),
                "(&x, &cos, &sin)"
            ),
            dtypes: FLOATS,
            aux: NONE,
            variants: ROPE_TABLES,
            knobs: 4,
            inputs: |c, rng| rope_inputs(c, rng, $thd),
            candle: |_, t| candle_nn::rotary_emb::$name(&t[0], &t[1], &t[2]),
            oracle: |_, h| oracle::rope(&h[0], &h[1], &h[2], $interleaved, $thd).into(),
            code: |_, v| {
                format!(
                    concat!(
                        "candle_nn::rotary_emb::",
                        stringify!($name),
                        "(&{}, &{}, &{})?"
                    ),
                    v[0], v[1], v[2]
                )
            },
            grads: &[0],
            check: OutputCheck::Values,
            error: ErrorModel::Rotation,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

pub static OPS: &[Op] = &[
    Op {
        name: "index_select",
        call: "src.index_select(&indexes, dim)",
        dtypes: ALL,
        aux: (INDEX, "index"),
        variants: DIMS,
        knobs: 3,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            vec![
                data("src", c, c.dtype(), &s, rng),
                index(c, &[k(c, 2)], s[c.variant], None, rng),
            ]
        },
        candle: |c, t| t[0].index_select(&t[1], c.variant),
        oracle: |c, h| oracle::index_select(&h[0], &h[1], c.variant).into(),
        code: |c, v| format!("{}.index_select(&{}, {})?", v[0], v[1], c.variant),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: true,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "gather",
        call: "src.gather(&indexes, dim)",
        dtypes: ALL,
        aux: (INDEX, "index"),
        variants: DIMS,
        knobs: 4,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            let d = c.variant;
            // The docs allow an index smaller than `src` on the other dim.
            let mut is = with_dim(s, d, k(c, 2));
            is[1 - d] = k(c, 3).min(s[1 - d]);
            vec![
                data("src", c, c.dtype(), &s, rng),
                index(c, &is, s[d], None, rng),
            ]
        },
        candle: |c, t| t[0].gather(&t[1], c.variant),
        oracle: |c, h| oracle::gather(&h[0], &h[1], c.variant).into(),
        code: |c, v| format!("{}.gather(&{}, {})?", v[0], v[1], c.variant),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: true,
        layout_pairs: false,
        values: &[],
    },
    // `Tensor::scatter` (overwrite) is new in candle 0.9; the version matrix builds older
    // releases without the `tensor-scatter` feature, and their sweeps list this op as not swept.
    #[cfg(feature = "tensor-scatter")]
    Op {
        name: "scatter",
        call: "dst.scatter(&indexes, &src, dim)",
        dtypes: ALL,
        aux: (INDEX, "index"),
        variants: DIMS,
        knobs: 3,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            let d = c.variant;
            let is = with_dim(s, d, k(c, 2).min(s[d]));
            vec![
                data("dst", c, c.dtype(), &s, rng),
                index(c, &is, s[d], Some(d), rng),
                data("src", c, c.dtype(), &is, rng),
            ]
        },
        candle: |c, t| t[0].scatter(&t[1], &t[2], c.variant),
        oracle: |c, h| {
            if has_duplicate_targets(&h[1], c.variant) {
                return Reference::Unspecified("two sources scatter onto one position".into());
            }
            oracle::scatter(&h[0], &h[1], &h[2], c.variant).into()
        },
        code: |c, v| format!("{}.scatter(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
        grads: &[0, 2],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: true,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "scatter_add",
        call: "dst.scatter_add(&indexes, &src, dim)",
        dtypes: ALL,
        aux: (EVERY_INT, "index"),
        variants: DIMS,
        knobs: 3,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            let d = c.variant;
            let is = with_dim(s, d, k(c, 2));
            vec![
                data("dst", c, c.dtype(), &s, rng),
                index(c, &is, s[d], None, rng),
                data("src", c, c.dtype(), &is, rng),
            ]
        },
        candle: |c, t| t[0].scatter_add(&t[1], &t[2], c.variant),
        oracle: |c, h| oracle::scatter_add(&h[0], &h[1], &h[2], c.variant).into(),
        code: |c, v| format!("{}.scatter_add(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
        grads: &[0, 2],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: true,
        layout_pairs: false,
        values: &[Values::Overflow],
    },
    Op {
        name: "index_add",
        call: "dst.index_add(&indexes, &src, dim)",
        dtypes: ALL,
        aux: (EVERY_INT, "index"),
        variants: DIMS,
        knobs: 3,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            let d = c.variant;
            vec![
                data("dst", c, c.dtype(), &s, rng),
                index(c, &[k(c, 2)], s[d], None, rng),
                data("src", c, c.dtype(), &with_dim(s, d, k(c, 2)), rng),
            ]
        },
        candle: |c, t| t[0].index_add(&t[1], &t[2], c.variant),
        oracle: |c, h| oracle::index_add(&h[0], &h[1], &h[2], c.variant).into(),
        code: |c, v| format!("{}.index_add(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
        grads: &[0, 2],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: true,
        layout_pairs: false,
        values: &[Values::Overflow],
    },
    Op {
        name: "cat",
        call: "Tensor::cat(&[&a, &b], dim)",
        dtypes: ALL,
        aux: NONE,
        // Every dim of a 3-D pair: dim 0 is one copy per input, the others interleave blocks.
        variants: &["dim 0", "dim 1", "dim 2"],
        knobs: 4,
        inputs: |c, rng| {
            let a = [k(c, 0), k(c, 1), k(c, 2)];
            let mut b = a;
            b[c.variant] = k(c, 3);
            vec![
                data("a", c, c.dtype(), &a, rng),
                data("b", c, c.dtype(), &b, rng),
            ]
        },
        candle: |c, t| Tensor::cat(&[&t[0], &t[1]], c.variant),
        oracle: |c, h| oracle::cat(&[&h[0], &h[1]], c.variant).into(),
        code: |c, v| format!("Tensor::cat(&[&{}, &{}], {})?", v[0], v[1], c.variant),
        grads: &[0, 1],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "arg_sort_last_dim",
        call: "x.arg_sort_last_dim(asc)",
        dtypes: ALL,
        aux: NONE,
        variants: &["ascending", "descending"],
        knobs: 2,
        inputs: one_2d,
        candle: |c, t| t[0].arg_sort_last_dim(c.variant == 0),
        oracle: |c, h| oracle::arg_sort_last_dim(&h[0], c.variant == 0).into(),
        code: |c, v| format!("{}.arg_sort_last_dim({})?", v[0], c.variant == 0),
        grads: &[],
        check: OutputCheck::SortsRows,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "to_dtype",
        call: "x.to_dtype(target)",
        dtypes: ALL,
        aux: (ALL, "target"),
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| {
            let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
            // A negative float has no defined conversion to an unsigned type (C leaves it
            // undefined), so those pairs get magnitudes only.
            if c.dtype().is_float() && matches!(c.aux(), Some(DType::U8 | DType::U32)) {
                x.host.values.iter_mut().for_each(|v| *v = v.abs());
            }
            vec![x]
        },
        candle: |c, t| t[0].to_dtype(c.aux().unwrap()),
        oracle: |c, h| oracle::to_dtype(&h[0], c.aux().unwrap()).into(),
        code: |c, v| format!("{}.to_dtype(DType::{:?})?", v[0], c.aux().unwrap()),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "contiguous",
        call: "x.contiguous()",
        dtypes: ALL,
        aux: NONE,
        variants: &["-"],
        knobs: 3,
        inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1), k(c, 2)], rng)],
        candle: |_, t| t[0].contiguous(),
        oracle: |_, h| Reference::Values(h[0].clone()),
        code: |_, v| format!("{}.contiguous()?", v[0]),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "matmul",
        call: "a.matmul(&b)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["2-D", "batched 3-D"],
        knobs: 4,
        inputs: |c, rng| {
            let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
            let (sa, sb) = if c.variant == 0 {
                (vec![m, kk], vec![kk, n])
            } else {
                (vec![bt, m, kk], vec![bt, kk, n])
            };
            vec![
                data("a", c, c.dtype(), &sa, rng),
                data("b", c, c.dtype(), &sb, rng),
            ]
        },
        candle: |_, t| t[0].matmul(&t[1]),
        oracle: |_, h| oracle::batched_matmul(&h[0], &h[1]).into(),
        code: |_, v| format!("{}.matmul(&{})?", v[0], v[1]),
        grads: &[0, 1],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: false,
        layout_pairs: true,
        values: &[],
    },
    Op {
        name: "broadcast_matmul",
        call: "a.broadcast_matmul(&b)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["3-D x 2-D"],
        knobs: 4,
        inputs: |c, rng| {
            let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
            vec![
                data("a", c, c.dtype(), &[bt, m, kk], rng),
                data("b", c, c.dtype(), &[kk, n], rng),
            ]
        },
        candle: |_, t| t[0].broadcast_matmul(&t[1]),
        oracle: |_, h| oracle::batched_matmul(&h[0], &h[1]).into(),
        code: |_, v| format!("{}.broadcast_matmul(&{})?", v[0], v[1]),
        grads: &[0, 1],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: false,
        layout_pairs: true,
        values: &[],
    },
    Op {
        name: "softmax_last_dim",
        call: "candle_nn::ops::softmax_last_dim(&x)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: one_2d,
        candle: |_, t| candle_nn::ops::softmax_last_dim(&t[0]),
        oracle: |_, h| oracle::softmax(&h[0], 1).into(),
        code: |_, v| format!("candle_nn::ops::softmax_last_dim(&{})?", v[0]),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Normalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    Op {
        name: "softmax",
        call: "candle_nn::ops::softmax(&x, dim)",
        dtypes: FLOATS,
        aux: NONE,
        variants: DIMS,
        knobs: 2,
        inputs: one_2d,
        candle: |c, t| candle_nn::ops::softmax(&t[0], c.variant),
        oracle: |c, h| oracle::softmax(&h[0], c.variant).into(),
        code: |c, v| format!("candle_nn::ops::softmax(&{}, {})?", v[0], c.variant),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Normalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    Op {
        name: "log_softmax",
        call: "candle_nn::ops::log_softmax(&x, dim)",
        dtypes: FLOATS,
        aux: NONE,
        variants: DIMS,
        knobs: 2,
        inputs: one_2d,
        candle: |c, t| candle_nn::ops::log_softmax(&t[0], c.variant),
        oracle: |c, h| oracle::log_softmax(&h[0], c.variant).into(),
        code: |c, v| format!("candle_nn::ops::log_softmax(&{}, {})?", v[0], c.variant),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::LogNormalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    unary!(
        "silu",
        "candle_nn::ops::silu(&x)",
        |_, t| candle_nn::ops::silu(&t[0]),
        |_, h| oracle::silu(&h[0]),
        "candle_nn::ops::silu(&{})?",
        ErrorModel::Elementwise,
        one_2d
    ),
    unary!(
        "sigmoid",
        "candle_nn::ops::sigmoid(&x)",
        |_, t| candle_nn::ops::sigmoid(&t[0]),
        |_, h| oracle::sigmoid(&h[0]),
        "candle_nn::ops::sigmoid(&{})?",
        ErrorModel::Elementwise,
        one_2d
    ),
    Op {
        name: "rms_norm",
        call: "candle_nn::ops::rms_norm(&x, &alpha, 1e-5)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| norm_inputs(c, rng, false),
        candle: |_, t| candle_nn::ops::rms_norm(&t[0], &t[1], 1e-5),
        // The function takes its eps as an f32: the oracle uses that value.
        oracle: |_, h| oracle::rms_norm(&h[0], &h[1], f64::from(1e-5f32)).into(),
        code: |_, v| format!("candle_nn::ops::rms_norm(&{}, &{}, 1e-5)?", v[0], v[1]),
        grads: &[0, 1],
        check: OutputCheck::Values,
        error: ErrorModel::Normalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    Op {
        name: "where_cond",
        call: "cond.where_cond(&on_true, &on_false)",
        dtypes: ALL,
        aux: (EVERY_INT, "condition"),
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            let n = s[0] * s[1];
            let cond: Vec<f64> = (0..n)
                .map(|i| {
                    if c.simple {
                        (i % 3) as f64
                    } else {
                        rng.below(3) as f64
                    }
                })
                .collect();
            vec![
                Input {
                    role: "cond",
                    kind: Kind::Cond,
                    host: HostTensor::new(c.aux().unwrap(), &s, cond),
                },
                data("on_true", c, c.dtype(), &s, rng),
                data("on_false", c, c.dtype(), &s, rng),
            ]
        },
        candle: |_, t| t[0].where_cond(&t[1], &t[2]),
        oracle: |_, h| oracle::where_cond(&h[0], &h[1], &h[2]).into(),
        code: |_, v| format!("{}.where_cond(&{}, &{})?", v[0], v[1], v[2]),
        grads: &[1, 2],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "cmp",
        call: "a.cmp(&b, op)",
        dtypes: ALL,
        aux: NONE,
        variants: CMP,
        knobs: 2,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            // Few distinct values, so equal pairs occur.
            let mut pick = |role| {
                let v = (0..s[0] * s[1])
                    .map(|i| {
                        if c.simple {
                            (i % 3) as f64
                        } else {
                            rng.below(3) as f64
                        }
                    })
                    .collect();
                Input {
                    role,
                    kind: Kind::Data,
                    host: HostTensor::new(c.dtype(), &s, v),
                }
            };
            let a = pick("a");
            let b = pick("b");
            vec![a, b]
        },
        candle: |c, t| t[0].cmp(&t[1], cmp_op(c)),
        oracle: |c, h| oracle::cmp(&h[0], &h[1], CMP[c.variant]).into(),
        code: |c, v| {
            format!(
                "{}.cmp(&{}, candle_core::op::CmpOp::{})?",
                v[0], v[1], CMP_NAMES[c.variant]
            )
        },
        grads: &[],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    reduce!(
        sum_keepdim,
        ALL,
        ErrorModel::Sum,
        &[0],
        OutputCheck::Values,
        SUM
    ),
    reduce!(
        max_keepdim,
        ALL,
        ErrorModel::Rounded,
        &[0],
        OutputCheck::Values,
        NON_FINITE
    ),
    reduce!(
        argmax_keepdim,
        ALL,
        ErrorModel::Rounded,
        &[],
        OutputCheck::Argmax,
        NON_FINITE
    ),
    method!(exp(), ErrorModel::Elementwise, one_2d),
    method!(log(), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
        c, rng, positive
    )),
    method!(sqrt(), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
        c, rng, positive
    )),
    method!(tanh(), ErrorModel::Elementwise, one_2d),
    method!(
        relu(),
        ErrorModel::Rounded,
        |c, rng| one_2d_mapped(c, rng, off_kinks),
        values: NON_FINITE
    ),
    method!(gelu(), ErrorModel::Activation, one_2d),
    method!(gelu_erf(), ErrorModel::Activation, one_2d),
    method!(affine(2.0, 0.5), ErrorModel::Rounded, one_2d),
    method!(powf(1.5), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
        c, rng, positive
    )),
    method!(
        clamp(-1.0, 1.0),
        ErrorModel::Rounded,
        |c, rng| one_2d_mapped(c, rng, off_kinks),
        values: NON_FINITE
    ),
    reduce!(
        mean_keepdim,
        FLOATS,
        ErrorModel::Sum,
        &[0],
        OutputCheck::Values,
        REDUCTION
    ),
    reduce!(
        min_keepdim,
        ALL,
        ErrorModel::Rounded,
        &[0],
        OutputCheck::Values,
        NON_FINITE
    ),
    reduce!(
        argmin_keepdim,
        ALL,
        ErrorModel::Rounded,
        &[],
        OutputCheck::Argmin,
        NON_FINITE
    ),
    reduce!(
        cumsum,
        FLOATS,
        ErrorModel::Sum,
        &[0],
        OutputCheck::Values,
        SCAN
    ),
    Op {
        name: "layer_norm",
        call: "candle_nn::ops::layer_norm(&x, &alpha, &beta, 1e-5)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| norm_inputs(c, rng, true),
        candle: |_, t| candle_nn::ops::layer_norm(&t[0], &t[1], &t[2], 1e-5),
        // The function takes its eps as an f32: the oracle uses that value.
        oracle: |_, h| oracle::layer_norm(&h[0], &h[1], &h[2], f64::from(1e-5f32)).into(),
        code: |_, v| {
            format!(
                "candle_nn::ops::layer_norm(&{}, &{}, &{}, 1e-5)?",
                v[0], v[1], v[2]
            )
        },
        grads: &[0, 1, 2],
        check: OutputCheck::Values,
        error: ErrorModel::NormalisedAffine,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    // The modules the models hold: contiguous input goes to the fused op above (no backward),
    // anything else to a two-pass path built from tensor ops, computed in f32 for f16/bf16.
    Op {
        name: "layer_norm_module",
        call: "candle_nn::LayerNorm::new(alpha, beta, 1e-5).forward(&x)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| norm_inputs(c, rng, true),
        candle: |_, t| {
            use candle_nn::Module as _;
            candle_nn::LayerNorm::new(t[1].clone(), t[2].clone(), 1e-5).forward(&t[0])
        },
        oracle: |_, h| oracle::layer_norm(&h[0], &h[1], &h[2], 1e-5).into(),
        code: |_, v| {
            format!(
                "candle_nn::Module::forward(&candle_nn::LayerNorm::new({}.clone(), {}.clone(), 1e-5), &{})?",
                v[1], v[2], v[0]
            )
        },
        grads: &[0, 1, 2],
        check: OutputCheck::Values,
        error: ErrorModel::NormalisedAffine,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    Op {
        name: "rms_norm_module",
        call: "candle_nn::RmsNorm::new(alpha, 1e-5).forward(&x)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| norm_inputs(c, rng, false),
        candle: |_, t| {
            use candle_nn::Module as _;
            candle_nn::RmsNorm::new(t[1].clone(), 1e-5).forward(&t[0])
        },
        oracle: |_, h| oracle::rms_norm(&h[0], &h[1], 1e-5).into(),
        code: |_, v| {
            format!(
                "candle_nn::Module::forward(&candle_nn::RmsNorm::new({}.clone(), 1e-5), &{})?",
                v[1], v[0]
            )
        },
        grads: &[0, 1],
        check: OutputCheck::Values,
        error: ErrorModel::Normalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    rope!(rope_i, interleaved: true, thd: false),
    rope!(rope, interleaved: false, thd: false),
    rope!(rope_thd, interleaved: false, thd: true),
    Op {
        name: "linear",
        call: "candle_nn::Linear::new(w, Some(b)).forward(&x)",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["x 2-D", "x 3-D"],
        knobs: 4,
        inputs: |c, rng| {
            let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
            let x = if c.variant == 0 {
                vec![m, kk]
            } else {
                vec![bt, m, kk]
            };
            vec![
                data("x", c, c.dtype(), &x, rng),
                data("w", c, c.dtype(), &[n, kk], rng),
                data("b", c, c.dtype(), &[n], rng),
            ]
        },
        candle: |_, t| {
            use candle_core::Module as _;
            candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0])
        },
        oracle: |_, h| oracle::linear(&h[0], &h[1], &h[2]).into(),
        code: |_, v| {
            format!(
                "candle_core::Module::forward(&candle_nn::Linear::new({}.clone(), Some({}.clone())), &{})?",
                v[1], v[2], v[0]
            )
        },
        grads: &[0, 1, 2],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: false,
        layout_pairs: true,
        values: &[],
    },
    Op {
        name: "embedding",
        call: "candle_nn::Embedding::new(w, hidden).forward(&ids)",
        dtypes: FLOATS,
        aux: (INDEX, "index"),
        variants: &["ids 1-D", "ids 2-D"],
        knobs: 4,
        inputs: |c, rng| {
            let (vocab, hidden) = (k(c, 0), k(c, 1));
            let ids = if c.variant == 0 {
                vec![k(c, 2)]
            } else {
                vec![k(c, 2), k(c, 3)]
            };
            vec![
                data("w", c, c.dtype(), &[vocab, hidden], rng),
                index(c, &ids, vocab, None, rng),
            ]
        },
        candle: |_, t| {
            use candle_core::Module as _;
            let hidden = t[0].dim(1)?;
            candle_nn::Embedding::new(t[0].clone(), hidden).forward(&t[1])
        },
        oracle: |_, h| oracle::embedding(&h[0], &h[1]).into(),
        code: |_, v| {
            format!(
                "candle_core::Module::forward(&candle_nn::Embedding::new({w}.clone(), {w}.dim(1)?), &{})?",
                v[1],
                w = v[0]
            )
        },
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: true,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "nll",
        call: "candle_nn::loss::nll(&inp, &target)",
        dtypes: FLOATS,
        aux: (INDEX, "target"),
        variants: &["-"],
        knobs: 2,
        inputs: logits_and_targets,
        candle: |_, t| candle_nn::loss::nll(&t[0], &t[1]),
        oracle: |_, h| oracle::nll(&h[0], &h[1]).into(),
        code: |_, v| format!("candle_nn::loss::nll(&{}, &{})?", v[0], v[1]),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::Sum,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "cross_entropy",
        call: "candle_nn::loss::cross_entropy(&inp, &target)",
        dtypes: FLOATS,
        aux: (INDEX, "target"),
        variants: &["-"],
        knobs: 2,
        inputs: logits_and_targets,
        candle: |_, t| candle_nn::loss::cross_entropy(&t[0], &t[1]),
        oracle: |_, h| oracle::cross_entropy(&h[0], &h[1]).into(),
        code: |_, v| format!("candle_nn::loss::cross_entropy(&{}, &{})?", v[0], v[1]),
        grads: &[0],
        check: OutputCheck::Values,
        error: ErrorModel::LogNormalised,
        indexed: false,
        layout_pairs: false,
        values: REDUCTION,
    },
    Op {
        name: "sort_last_dim",
        call: "x.sort_last_dim(asc).0",
        dtypes: ALL,
        aux: NONE,
        variants: &["ascending", "descending"],
        knobs: 2,
        inputs: one_2d,
        candle: |c, t| t[0].sort_last_dim(c.variant == 0).map(|(sorted, _)| sorted),
        oracle: |c, h| oracle::sort_last_dim(&h[0], c.variant == 0).into(),
        code: |c, v| format!("{}.sort_last_dim({})?.0", v[0], c.variant == 0),
        // Sorting is not differentiable where values tie, and the cells' values do tie.
        grads: &[],
        check: OutputCheck::Values,
        error: ErrorModel::Rounded,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
    Op {
        name: "adamw_step",
        call: "candle_nn::AdamW (lr 0.1, weight decay 0.01), one step of p with gradient g",
        dtypes: FLOATS,
        aux: NONE,
        variants: &["-"],
        knobs: 2,
        inputs: |c, rng| {
            let s = [k(c, 0), k(c, 1)];
            vec![
                data("p", c, c.dtype(), &s, rng),
                data("g", c, c.dtype(), &s, rng),
            ]
        },
        candle: |_, t| adamw_step(&t[0], &t[1]),
        oracle: |_, h| oracle::adamw_step(&h[0], &h[1], 0.1, 0.01, 1e-8).into(),
        code: |_, v| {
            format!(
                "{{ use candle_nn::Optimizer as _; let var = candle_core::Var::from_tensor(&{p})?; \
                 let params = candle_nn::ParamsAdamW {{ lr: 0.1, weight_decay: 0.01, ..Default::default() }}; \
                 let mut opt = candle_nn::AdamW::new(vec![var.clone()], params)?; \
                 opt.backward_step(&(var.as_tensor() * &{g})?.sum_all()?)?; var.as_tensor().clone() }}",
                p = v[0],
                g = v[1]
            )
        },
        grads: &[],
        check: OutputCheck::Values,
        // p·(1 − lr·wd) minus an update of size lr: a few roundings of each term.
        error: ErrorModel::Activation,
        indexed: false,
        layout_pairs: false,
        values: &[],
    },
];

impl Op {
    /// The dim of the first input that the op reduces: the cell's dim for ops over `DIMS`, the
    /// last (1) for the rest. Every op with value classes takes a 2-D first input whose dims are
    /// knobs 0 and 1 (`value_classes_reach_the_reduced_dim` checks it).
    pub fn reduced_dim(&self, cell: &Cell) -> usize {
        if self.variants == DIMS {
            cell.variant
        } else {
            1
        }
    }
}

pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}
