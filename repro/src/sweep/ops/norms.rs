//! Normalising ops: the softmaxes, rms_norm and layer_norm, fused and as candle-nn modules.

use super::inputs::{data, k, one_2d};
use super::{ErrorModel, Op, OutputCheck, DIMS, FLOATS, NONE, REDUCTION};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::oracle;

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

pub(super) const SOFTMAX_LAST_DIM: Op = Op {
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
};

pub(super) const SOFTMAX: Op = Op {
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
};

pub(super) const LOG_SOFTMAX: Op = Op {
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
};

pub(super) const RMS_NORM: Op = Op {
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
};

pub(super) const LAYER_NORM: Op = Op {
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
};

// The modules the models hold: contiguous input goes to the fused op above (no backward),
// anything else to a two-pass path built from tensor ops, computed in f32 for f16/bf16.
pub(super) const LAYER_NORM_MODULE: Op = Op {
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
};

pub(super) const RMS_NORM_MODULE: Op = Op {
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
};
