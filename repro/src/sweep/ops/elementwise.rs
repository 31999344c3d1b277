//! Elementwise functions and activations on one float input: exp, log, gelu, silu, clamp, ….

use super::inputs::{data, k, one_2d};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE, NON_FINITE};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::host::HostTensor;
use harness::oracle;

/// One data input `x` of shape `[knob 0, knob 1]`, each value moved by `f` into the op's domain
/// (then rounded to the dtype again).
fn one_2d_mapped(c: &Cell, rng: &mut Rng, f: fn(f64) -> f64) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x.host.values.iter().map(|&v| f(v)).collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
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
pub(super) use method;

pub(super) const SILU: Op = unary!(
    "silu",
    "candle_nn::ops::silu(&x)",
    |_, t| candle_nn::ops::silu(&t[0]),
    |_, h| oracle::silu(&h[0]),
    "candle_nn::ops::silu(&{})?",
    ErrorModel::Elementwise,
    one_2d
);

pub(super) const SIGMOID: Op = unary!(
    "sigmoid",
    "candle_nn::ops::sigmoid(&x)",
    |_, t| candle_nn::ops::sigmoid(&t[0]),
    |_, h| oracle::sigmoid(&h[0]),
    "candle_nn::ops::sigmoid(&{})?",
    ErrorModel::Elementwise,
    one_2d
);

pub(super) const EXP: Op = method!(exp(), ErrorModel::Elementwise, one_2d);

pub(super) const LOG: Op = method!(log(), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
    c, rng, positive
));

pub(super) const SQRT: Op = method!(sqrt(), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
    c, rng, positive
));

pub(super) const TANH: Op = method!(tanh(), ErrorModel::Elementwise, one_2d);

pub(super) const RELU: Op = method!(
    relu(),
    ErrorModel::Rounded,
    |c, rng| one_2d_mapped(c, rng, off_kinks),
    values: NON_FINITE
);

pub(super) const GELU: Op = method!(gelu(), ErrorModel::Activation, one_2d);

pub(super) const GELU_ERF: Op = method!(gelu_erf(), ErrorModel::Activation, one_2d);

pub(super) const AFFINE: Op = method!(affine(2.0, 0.5), ErrorModel::Rounded, one_2d);

pub(super) const POWF: Op = method!(powf(1.5), ErrorModel::Elementwise, |c, rng| one_2d_mapped(
    c, rng, positive
));

pub(super) const CLAMP: Op = method!(
    clamp(-1.0, 1.0),
    ErrorModel::Rounded,
    |c, rng| one_2d_mapped(c, rng, off_kinks),
    values: NON_FINITE
);
