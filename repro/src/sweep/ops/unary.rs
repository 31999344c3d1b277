//! Unary elementwise `Tensor` methods (abs … silu) and the reductions not swept elsewhere: the
//! non-keepdim `sum`/`max`/`min`/`mean`/`argmax`/`argmin`, the `_all` reductions, `var`,
//! `log_sum_exp`, `norm`, and the vector products `dot` and `mv`.

use super::elementwise::method;
use super::inputs::{data, k, one_2d};
use super::reductions::reduce;
use super::{
    ErrorModel, Op, OutputCheck, ALL, DIMS, FLOATS, NONE, NON_FINITE, REDUCTION, SUM as SUM_CLASSES,
};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::DType;
use harness::host::HostTensor;
use harness::oracle;

/// The mantissa bits of a float dtype.
fn mantissa_bits(dtype: DType) -> i32 {
    match dtype {
        DType::F16 => 10,
        DType::BF16 => 7,
        DType::F32 => 23,
        _ => 52,
    }
}

/// The dtype's value next to `t` towards zero (`t` a non-zero value of the dtype).
fn toward_zero(t: f64, dtype: DType) -> f64 {
    let e = t.abs().log2().floor() as i32;
    let mut step = 2f64.powi(e - mantissa_bits(dtype));
    if t.abs() == 2f64.powi(e) {
        step /= 2.0;
    }
    t - t.signum() * step
}

/// `x` of shape `[knob 0, knob 1]` whose values sit on and next to rounding ties: by position,
/// a tie `k + 1/2` (±0.5 and ±1.5, where ties-to-even and ties-away differ at ±0.5), the
/// dtype's value just inside that tie (0.49999997 in f32: `floor(x + 0.5)` rounds it up), and
/// two plain values kept off the integers; with `zeros`, every fifth value is +0 or −0 instead.
/// Integer dtypes (sign's) keep their plain values.
fn ties(c: &Cell, rng: &mut Rng, zeros: bool) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let dtype = x.host.dtype;
    if !dtype.is_float() {
        return vec![x];
    }
    let values = x
        .host
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| match (i % 5, zeros) {
            (4, true) => [0.0, -0.0][(i / 5) % 2],
            (0, _) => v.floor() + 0.5,
            (1, _) => toward_zero(v.floor() + 0.5, dtype),
            // Plain values 1/16 or more from an integer, where floor and ceil jump.
            _ if (v - v.round()).abs() < 0.0625 => v + 0.25,
            _ => v,
        })
        .collect();
    x.host = HostTensor::new(dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// `x` whose values are multiples of 1/8 in [-2, 2): `x·10` is exact in every float dtype and
/// a tie (`x.5`) for every `x ≡ 1/4 (mod 1/2)`.
fn eighths(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x
        .host
        .values
        .iter()
        .map(|&v| (v * 8.0).round() / 8.0)
        .collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// `x` moved off elu's kink at 0 and off the cancellation of `e^x − 1` near 0 (candle computes
/// it as `exp(x) - 1`, not `expm1`, so its relative error grows as `x → 0⁻`): negatives are
/// `≤ −1/2`, positives `≥ 1/16`.
fn elu_inputs(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x
        .host
        .values
        .iter()
        .map(|&v| if v < 0.0 { v - 0.5 } else { v + 0.0625 })
        .collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// `x` moved to `|x| ≥ 1/4`, away from recip's pole.
fn off_zero(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x
        .host
        .values
        .iter()
        .map(|&v| if v < 0.0 { v - 0.25 } else { v + 0.25 })
        .collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// A float elementwise method called as `x.<method>(args)` under op `name`, against `oracle`:
/// `named!(name, method(args), oracle(extra args), dtypes, error, inputs, grads)`.
macro_rules! named {
    ($name:literal, $method:ident($($arg:expr),*), $oracle:ident($($oarg:expr),*), $dtypes:expr,
     $error:expr, $inputs:expr, $grads:expr) => {
        Op {
            name: $name,
            call: concat!("x.", stringify!($method), "(", stringify!($($arg),*), ")"),
            dtypes: $dtypes,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: $inputs,
            candle: |_, t| t[0].$method($($arg),*),
            oracle: |_, h| oracle::$oracle(&h[0] $(, $oarg)*).into(),
            code: |_, v| {
                format!(
                    concat!("{}.", stringify!($method), "(", stringify!($($arg),*), ")?"),
                    v[0]
                )
            },
            grads: $grads,
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

/// `x.<method>()` over every element of a 2-D input, a 0-d result:
/// `reduce_all!(method, dtypes, error model, value classes)`.
macro_rules! reduce_all {
    ($method:ident, $dtypes:expr, $error:expr, $values:expr) => {
        Op {
            name: stringify!($method),
            call: concat!("x.", stringify!($method), "()"),
            dtypes: $dtypes,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: one_2d,
            candle: |_, t| t[0].$method(),
            oracle: |_, h| oracle::$method(&h[0]).into(),
            code: |_, v| format!(concat!("{}.", stringify!($method), "()?"), v[0]),
            grads: &[0],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: $values,
        }
    };
}

pub(super) const ABS: Op = method!(abs(), ErrorModel::Rounded, one_2d);
pub(super) const NEG: Op = method!(neg(), ErrorModel::Rounded, one_2d);
pub(super) const RECIP: Op = method!(recip(), ErrorModel::Elementwise, off_zero);
pub(super) const SQR: Op = method!(sqr(), ErrorModel::Rounded, one_2d);
pub(super) const SIN: Op = method!(sin(), ErrorModel::Elementwise, one_2d);
pub(super) const COS: Op = method!(cos(), ErrorModel::Elementwise, one_2d);
/// erf is judged as an activation (a few roundings of the result plus two of `|x|`): candle's
/// f64 erf is a rational approximation about 2 ulp off near 0.7.
pub(super) const ERF: Op = named!(
    "erf",
    erf(),
    erf_tensor(),
    FLOATS,
    ErrorModel::Activation,
    one_2d,
    &[0]
);
/// Floor and ceil on values at and next to ties (no integers, so the finite differences of
/// the backward pass see the flat part: candle records no gradient for floor and refuses one
/// for ceil).
pub(super) const FLOOR: Op = named!(
    "floor",
    floor(),
    floor(),
    FLOATS,
    ErrorModel::Rounded,
    |c, rng| ties(c, rng, false),
    &[0]
);
pub(super) const CEIL: Op = named!(
    "ceil",
    ceil(),
    ceil(),
    FLOATS,
    ErrorModel::Rounded,
    |c, rng| ties(c, rng, false),
    &[0]
);
/// Round on ties: forward only (a tie is where round jumps).
pub(super) const ROUND: Op = named!(
    "round",
    round(),
    round(),
    FLOATS,
    ErrorModel::Rounded,
    |c, rng| ties(c, rng, false),
    &[]
);
pub(super) const ROUND_TO: Op = named!(
    "round_to",
    round_to(1),
    round_to_decimals(1),
    FLOATS,
    ErrorModel::Elementwise,
    eighths,
    &[]
);
/// Sign on ±0 among other values (a ±0 sits at sign's jump: forward only). Integers too:
/// candle's sign has u8/u32/i64 arms.
pub(super) const SIGN: Op = named!(
    "sign",
    sign(),
    sign(),
    ALL,
    ErrorModel::Rounded,
    |c, rng| ties(c, rng, true),
    &[]
);
pub(super) const ELU: Op = method!(elu(0.5), ErrorModel::Elementwise, elu_inputs);
pub(super) const SILU_METHOD: Op = named!(
    "silu_method",
    silu(),
    silu(),
    FLOATS,
    ErrorModel::Elementwise,
    one_2d,
    &[0]
);

pub(super) const SUM: Op = reduce!(
    sum,
    ALL,
    ErrorModel::Sum,
    &[0],
    OutputCheck::Values,
    SUM_CLASSES
);
pub(super) const MAX: Op = reduce!(
    max,
    ALL,
    ErrorModel::Rounded,
    &[0],
    OutputCheck::Values,
    NON_FINITE
);
pub(super) const MIN: Op = reduce!(
    min,
    ALL,
    ErrorModel::Rounded,
    &[0],
    OutputCheck::Values,
    NON_FINITE
);
pub(super) const MEAN: Op = reduce!(
    mean,
    FLOATS,
    ErrorModel::Sum,
    &[0],
    OutputCheck::Values,
    REDUCTION
);
pub(super) const ARGMAX: Op = reduce!(
    argmax,
    ALL,
    ErrorModel::Rounded,
    &[],
    OutputCheck::Argmax,
    NON_FINITE
);
pub(super) const ARGMIN: Op = reduce!(
    argmin,
    ALL,
    ErrorModel::Rounded,
    &[],
    OutputCheck::Argmin,
    NON_FINITE
);
pub(super) const VAR: Op = reduce!(
    var,
    FLOATS,
    ErrorModel::Variance,
    &[0],
    OutputCheck::Values,
    REDUCTION
);
pub(super) const VAR_KEEPDIM: Op = reduce!(
    var_keepdim,
    FLOATS,
    ErrorModel::Variance,
    &[0],
    OutputCheck::Values,
    REDUCTION
);
pub(super) const LOG_SUM_EXP: Op = reduce!(
    log_sum_exp,
    FLOATS,
    ErrorModel::LogNormalised,
    &[0],
    OutputCheck::Values,
    REDUCTION
);

pub(super) const SUM_ALL: Op = reduce_all!(sum_all, ALL, ErrorModel::Sum, SUM_CLASSES);
pub(super) const MEAN_ALL: Op = reduce_all!(mean_all, FLOATS, ErrorModel::Sum, REDUCTION);
pub(super) const MAX_ALL: Op = reduce_all!(max_all, ALL, ErrorModel::Rounded, NON_FINITE);
pub(super) const MIN_ALL: Op = reduce_all!(min_all, ALL, ErrorModel::Rounded, NON_FINITE);
pub(super) const NORM: Op = reduce_all!(norm, FLOATS, ErrorModel::Sum, REDUCTION);

/// Two data inputs: `x` of `shape_x` and `v` of `shape_v`.
fn pair(c: &Cell, rng: &mut Rng, shape_x: &[usize], shape_v: &[usize]) -> Vec<Input> {
    vec![
        data("x", c, c.dtype(), shape_x, rng),
        data("v", c, c.dtype(), shape_v, rng),
    ]
}

/// `x.dot(&v)` of two vectors of knob 0 elements.
pub(super) const DOT: Op = Op {
    name: "dot",
    call: "x.dot(&v)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 1,
    inputs: |c, rng| pair(c, rng, &[k(c, 0)], &[k(c, 0)]),
    candle: |_, t| t[0].dot(&t[1]),
    oracle: |_, h| oracle::dot(&h[0], &h[1]).into(),
    code: |_, v| format!("{}.dot(&{})?", v[0], v[1]),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// `x.mv(&v)`: `[knob 0, knob 1] × [knob 1]`.
pub(super) const MV: Op = Op {
    name: "mv",
    call: "x.mv(&v)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| pair(c, rng, &[k(c, 0), k(c, 1)], &[k(c, 1)]),
    candle: |_, t| t[0].mv(&t[1]),
    oracle: |_, h| oracle::mv(&h[0], &h[1]).into(),
    code: |_, v| format!("{}.mv(&{})?", v[0], v[1]),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
