//! Elementwise binary arithmetic and comparisons: `add`, `sub`, `mul`, `div`, `maximum`,
//! `minimum`, `pow`, `eq` … `ge`, each on two tensors of one shape and in its `broadcast_*`
//! form, whose variants pick the rhs shape against a `[k0, k1]` lhs: `[1, k1]`, `[k0, 1]`, `[k1]`.
//!
//! The values are drawn for each op's domain (`Domain`): divisors away from zero (integer ones
//! at least 1, so no integer division by zero is ever made), positive bases for `pow`, and
//! operands of `maximum`/`minimum` that never tie (a tie has no derivative). u8/u32 `sub` and
//! u8 `mul` wrap with the plain values already; `Values::Overflow` adds wrapping `add`/`mul`.
//! Float division by zero is its own op, `div_by_zero` (forward only).

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, Values, ALL, FLOATS, NONE, NON_FINITE};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::host::HostTensor;
use harness::oracle;

/// How an op's operands are drawn, from the default values (floats in [-2, 2), integers
/// 0..20, or the small simple ones).
#[derive(Clone, Copy, PartialEq)]
enum Domain {
    /// The values as drawn.
    Any,
    /// The rhs is a divisor: floats moved 1/2 away from zero, integers at least 1.
    Divisor,
    /// `maximum`/`minimum`: float lhs on odd sixteenths, rhs on eighths, so they never tie
    /// whatever the layouts copy; NaN/±inf cells also put the lhs's special value into the rhs
    /// one place further along each row (where the lhs is finite), so a NaN on either side is
    /// seen.
    Extremes,
    /// `pow`: the base `2^(v/2)` in [1/2, 2), so `|y·ln x| < 1.4` and `exp(y·ln x)` in the
    /// dtype stays within the elementwise bound.
    PositiveBase,
}

/// The rhs shape of a broadcast op's variant, against the lhs `[k0, k1]`.
const RHS_SHAPES: &[&str] = &["rhs [1, k1]", "rhs [k0, 1]", "rhs [k1]"];

fn rhs_shape(c: &Cell, variant: usize) -> Vec<usize> {
    let (k0, k1) = (k(c, 0), k(c, 1));
    match variant % 3 {
        0 => vec![1, k1],
        1 => vec![k0, 1],
        _ => vec![k1],
    }
}

fn map(input: &mut Input, f: impl Fn(f64) -> f64) {
    let h = &input.host;
    input.host = HostTensor::new(
        h.dtype,
        &h.shape.clone(),
        h.values.iter().map(|&v| f(v)).collect(),
    );
}

/// The rhs of an extremes cell gets the cell's special value one place after the lhs's along
/// each row (row 0 alone for a `[k0, 1]` rhs, which feeds whole output rows).
fn place_special(c: &Cell, rhs: &mut Input) {
    let Some((special, place)) = c.values.non_finite() else {
        return;
    };
    let h = &mut rhs.host;
    let len = *h.shape.last().unwrap_or(&1);
    let rows = h.values.len() / len.max(1);
    if len == 1 {
        h.values[0] = special;
        return;
    }
    let lhs_len = k(c, 1);
    let at = match place {
        crate::sweep::cell::Place::First => 0,
        crate::sweep::cell::Place::Middle => lhs_len / 2,
        crate::sweep::cell::Place::Last => lhs_len.saturating_sub(1),
    };
    for r in 0..rows {
        h.values[r * len + (at + 1) % len] = special;
    }
}

/// `a` of shape `[k0, k1]` and `b` of `rhs`, drawn for `domain`.
fn operands(c: &Cell, rng: &mut Rng, rhs: &[usize], domain: Domain) -> Vec<Input> {
    let mut a = data("a", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let mut b = data("b", c, c.dtype(), rhs, rng);
    let float = c.dtype().is_float();
    match domain {
        Domain::Any => {}
        Domain::Divisor if float => map(&mut b, |v| if v < 0.0 { v - 0.5 } else { v + 0.5 }),
        Domain::Divisor => map(&mut b, |v| v + 1.0),
        Domain::Extremes if float => {
            map(&mut a, |v| ((v * 8.0).floor() + 0.5) / 8.0);
            map(&mut b, |v| (v * 8.0).floor() / 8.0);
            place_special(c, &mut b);
        }
        Domain::Extremes => {}
        Domain::PositiveBase => map(&mut a, |v| (v / 2.0).exp2()),
    }
    vec![a, b]
}

/// `a.<method>(&b)` on two tensors of one shape, both differentiated, every pair of layouts.
macro_rules! same_shape {
    ($method:ident, $dtypes:expr, $domain:expr, $error:expr, $values:expr) => {
        Op {
            name: stringify!($method),
            call: concat!("a.", stringify!($method), "(&b)"),
            dtypes: $dtypes,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: |c, rng| operands(c, rng, &[k(c, 0), k(c, 1)], $domain),
            candle: |_, t| t[0].$method(&t[1]),
            oracle: |_, h| oracle::binary(&h[0], &h[1], stringify!($method)).into(),
            code: |_, v| format!(concat!("{}.", stringify!($method), "(&{})?"), v[0], v[1]),
            grads: &[0, 1],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: true,
            values: $values,
        }
    };
}

/// `a.broadcast_<op>(&b)` of a `[k0, k1]` lhs and the variant's rhs shape, both differentiated
/// (the rhs's gradient sums over the dims it was broadcast along).
macro_rules! broadcast {
    ($method:ident, $op:literal, $dtypes:expr, $domain:expr, $error:expr, $values:expr) => {
        Op {
            name: stringify!($method),
            call: concat!("a.", stringify!($method), "(&b)"),
            dtypes: $dtypes,
            aux: NONE,
            variants: RHS_SHAPES,
            knobs: 2,
            inputs: |c, rng| operands(c, rng, &rhs_shape(c, c.variant), $domain),
            candle: |_, t| t[0].$method(&t[1]),
            oracle: |_, h| oracle::broadcast_binary(&h[0], &h[1], $op).into(),
            code: |_, v| format!(concat!("{}.", stringify!($method), "(&{})?"), v[0], v[1]),
            grads: &[0, 1],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: true,
            values: $values,
        }
    };
}

const WRAPS: &[Values] = &[Values::Overflow];

pub(super) const ADD: Op = same_shape!(add, ALL, Domain::Any, ErrorModel::Rounded, WRAPS);
pub(super) const SUB: Op = same_shape!(sub, ALL, Domain::Any, ErrorModel::Rounded, &[]);
pub(super) const MUL: Op = same_shape!(mul, ALL, Domain::Any, ErrorModel::Rounded, WRAPS);
pub(super) const DIV: Op = same_shape!(div, ALL, Domain::Divisor, ErrorModel::Rounded, &[]);
pub(super) const MAXIMUM: Op = same_shape!(
    maximum,
    ALL,
    Domain::Extremes,
    ErrorModel::Rounded,
    NON_FINITE
);
pub(super) const MINIMUM: Op = same_shape!(
    minimum,
    ALL,
    Domain::Extremes,
    ErrorModel::Rounded,
    NON_FINITE
);
pub(super) const POW: Op = same_shape!(
    pow,
    FLOATS,
    Domain::PositiveBase,
    ErrorModel::Elementwise,
    &[]
);

pub(super) const BROADCAST_ADD: Op = broadcast!(
    broadcast_add,
    "add",
    ALL,
    Domain::Any,
    ErrorModel::Rounded,
    &[]
);
pub(super) const BROADCAST_SUB: Op = broadcast!(
    broadcast_sub,
    "sub",
    ALL,
    Domain::Any,
    ErrorModel::Rounded,
    &[]
);
pub(super) const BROADCAST_MUL: Op = broadcast!(
    broadcast_mul,
    "mul",
    ALL,
    Domain::Any,
    ErrorModel::Rounded,
    &[]
);
pub(super) const BROADCAST_DIV: Op = broadcast!(
    broadcast_div,
    "div",
    ALL,
    Domain::Divisor,
    ErrorModel::Rounded,
    &[]
);
pub(super) const BROADCAST_MAXIMUM: Op = broadcast!(
    broadcast_maximum,
    "maximum",
    ALL,
    Domain::Extremes,
    ErrorModel::Rounded,
    NON_FINITE
);
pub(super) const BROADCAST_MINIMUM: Op = broadcast!(
    broadcast_minimum,
    "minimum",
    ALL,
    Domain::Extremes,
    ErrorModel::Rounded,
    NON_FINITE
);
pub(super) const BROADCAST_POW: Op = broadcast!(
    broadcast_pow,
    "pow",
    FLOATS,
    Domain::PositiveBase,
    ErrorModel::Elementwise,
    &[]
);

/// Float division with zero divisors, forward only: every third rhs element is +0 or -0 in
/// turn, and every sixth lhs element is 0, so `x/±0 = ±inf` and `0/0 = NaN` (IEEE 754, as
/// `torch.div`).
pub(super) const DIV_BY_ZERO: Op = Op {
    name: "div_by_zero",
    call: "a.div(&b) with ±0 in b",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| {
        let mut v = operands(c, rng, &[k(c, 0), k(c, 1)], Domain::Divisor);
        for (i, x) in v[0].host.values.iter_mut().enumerate() {
            if i % 6 == 0 {
                *x = 0.0;
            }
        }
        for (i, x) in v[1].host.values.iter_mut().enumerate() {
            if i % 3 == 0 {
                *x = if (i / 3) % 2 == 0 { 0.0 } else { -0.0 };
            }
        }
        v
    },
    candle: |_, t| t[0].div(&t[1]),
    oracle: |_, h| oracle::binary(&h[0], &h[1], "div").into(),
    code: |_, v| format!("{}.div(&{})?", v[0], v[1]),
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const COMPARISONS: [&str; 6] = ["eq", "ne", "lt", "le", "gt", "ge"];

/// Comparison operands: few distinct values (0, 1, 2), so equal pairs occur.
fn compared(c: &Cell, rng: &mut Rng, rhs: &[usize]) -> Vec<Input> {
    let mut v = operands(c, rng, rhs, Domain::Any);
    let mut i = 0;
    for input in v.iter_mut() {
        for x in input.host.values.iter_mut() {
            *x = if c.simple {
                (i % 3) as f64
            } else {
                rng.below(3) as f64
            };
            i += 1;
        }
    }
    v
}

/// The comparisons by name (`a.eq(&b)` … `a.ge(&b)`), one variant each, same shape; NaN/±inf
/// in the lhs checked too (every comparison with NaN is false but `ne`).
pub(super) const COMPARE: Op = Op {
    name: "compare",
    call: "a.eq(&b), a.ne(&b), a.lt(&b), a.le(&b), a.gt(&b), a.ge(&b)",
    dtypes: ALL,
    aux: NONE,
    variants: &COMPARISONS,
    knobs: 2,
    inputs: |c, rng| compared(c, rng, &[k(c, 0), k(c, 1)]),
    candle: |c, t| match c.variant {
        0 => t[0].eq(&t[1]),
        1 => t[0].ne(&t[1]),
        2 => t[0].lt(&t[1]),
        3 => t[0].le(&t[1]),
        4 => t[0].gt(&t[1]),
        _ => t[0].ge(&t[1]),
    },
    oracle: |c, h| oracle::compare(&h[0], &h[1], COMPARISONS[c.variant]).into(),
    code: |c, v| format!("{}.{}(&{})?", v[0], COMPARISONS[c.variant], v[1]),
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: true,
    values: NON_FINITE,
};

/// The broadcast comparisons: variant `i` is comparison `i` against rhs shape `i mod 3`, so
/// each comparison runs once and each rhs shape twice.
pub(super) const BROADCAST_COMPARE: Op = Op {
    name: "broadcast_compare",
    call: "a.broadcast_eq(&b), a.broadcast_ne(&b), a.broadcast_lt(&b), a.broadcast_le(&b), a.broadcast_gt(&b), a.broadcast_ge(&b)",
    dtypes: ALL,
    aux: NONE,
    variants: &[
        "eq, rhs [1, k1]",
        "ne, rhs [k0, 1]",
        "lt, rhs [k1]",
        "le, rhs [1, k1]",
        "gt, rhs [k0, 1]",
        "ge, rhs [k1]",
    ],
    knobs: 2,
    inputs: |c, rng| compared(c, rng, &rhs_shape(c, c.variant)),
    candle: |c, t| match c.variant {
        0 => t[0].broadcast_eq(&t[1]),
        1 => t[0].broadcast_ne(&t[1]),
        2 => t[0].broadcast_lt(&t[1]),
        3 => t[0].broadcast_le(&t[1]),
        4 => t[0].broadcast_gt(&t[1]),
        _ => t[0].broadcast_ge(&t[1]),
    },
    oracle: |c, h| oracle::broadcast_compare(&h[0], &h[1], COMPARISONS[c.variant]).into(),
    code: |c, v| format!("{}.broadcast_{}(&{})?", v[0], COMPARISONS[c.variant], v[1]),
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
