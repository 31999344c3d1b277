//! candle-nn's losses (mse, huber, binary cross-entropy with logits) and the slow, tensor-op
//! forms of layer_norm, rms_norm and the rotary embeddings: the rest of the `nnops` family.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use crate::sweep::cell::{Cell, Input, Rng, Values};
use harness::host::HostTensor;
use harness::oracle;

/// A loss's `inp` and `target`, both `[knob 0, knob 1]`; `probabilities` maps the target into
/// [0, 1] (`(v + 2)/4`, binary cross-entropy's targets).
fn loss_inputs(c: &Cell, rng: &mut Rng, probabilities: bool) -> Vec<Input> {
    let s = [k(c, 0), k(c, 1)];
    let mut t = data("target", c, c.dtype(), &s, rng);
    if probabilities {
        let v = t.host.values.iter().map(|v| (v + 2.0) / 4.0).collect();
        t.host = HostTensor::new(t.host.dtype, &s, v);
    }
    vec![data("inp", c, c.dtype(), &s, rng), t]
}

/// `candle_nn::loss::<name>(&inp, &target<extra>)` (`extra`: the trailing arguments as
/// written), a mean over every element: a sum of positive terms, judged by the normalising ops'
/// relative bound.
macro_rules! loss {
    ($name:literal, $fn:ident($($extra:expr),*), $extra_s:literal; $oracle:expr, $probabilities:literal) => {
        Op {
            name: $name,
            call: concat!("candle_nn::loss::", stringify!($fn), "(&inp, &target", $extra_s, ")"),
            dtypes: FLOATS,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: |c, rng| loss_inputs(c, rng, $probabilities),
            candle: |_, t| candle_nn::loss::$fn(&t[0], &t[1] $(, $extra)*),
            oracle: |_, h| {
                let f: fn(&HostTensor, &HostTensor) -> oracle::OracleResult = $oracle;
                f(&h[0], &h[1]).into()
            },
            code: |_, v| {
                format!(
                    concat!("candle_nn::loss::", stringify!($fn), "(&{}, &{}", $extra_s, ")?"),
                    v[0], v[1]
                )
            },
            grads: &[0, 1],
            check: OutputCheck::Values,
            error: ErrorModel::Normalised,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

pub(super) const MSE: Op = loss!("mse", mse(), ""; oracle::mse, false);

pub(super) const HUBER: Op = loss!(
    "huber",
    huber(1.0),
    ", 1.0";
    |a, b| oracle::huber(a, b, 1.0),
    false
);

pub(super) const BCE_WITH_LOGIT: Op = loss!(
    "binary_cross_entropy_with_logit",
    binary_cross_entropy_with_logit(),
    "";
    oracle::binary_cross_entropy_with_logit,
    true
);

/// A normalisation's inputs: `x` of `[knob 0, knob 1]`, `alpha` (and `beta`) of `[knob 1]`.
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

pub(super) const LAYER_NORM_SLOW: Op = Op {
    name: "layer_norm_slow",
    call: "candle_nn::ops::layer_norm_slow(&x, &alpha, &beta, 1e-5)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| norm_inputs(c, rng, true),
    candle: |_, t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-5),
    // The function takes its eps as an f32: the oracle uses that value.
    oracle: |_, h| oracle::layer_norm(&h[0], &h[1], &h[2], f64::from(1e-5f32)).into(),
    code: |_, v| {
        format!(
            "candle_nn::ops::layer_norm_slow(&{}, &{}, &{}, 1e-5)?",
            v[0], v[1], v[2]
        )
    },
    grads: &[0, 1, 2],
    check: OutputCheck::Values,
    error: ErrorModel::NormalisedAffine,
    indexed: false,
    layout_pairs: false,
    // No `Offset` rows: this two-pass form is the accurate one, but its f32 mean is off by
    // about u·|mean|, which becomes an error of u·|mean|/σ in x̂ — beyond the model's
    // `2·max|x|·u` when σ ≪ 1 (rows of 10⁴ ± 1 fail by 3e-3 in f32). That is f32 itself, not
    // candle: the fused `layer_norm`'s offset ids have their own cause.
    values: &[Values::Large],
};

pub(super) const RMS_NORM_SLOW: Op = Op {
    name: "rms_norm_slow",
    call: "candle_nn::ops::rms_norm_slow(&x, &alpha, 1e-5)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| norm_inputs(c, rng, false),
    candle: |_, t| candle_nn::ops::rms_norm_slow(&t[0], &t[1], 1e-5),
    oracle: |_, h| oracle::rms_norm(&h[0], &h[1], f64::from(1e-5f32)).into(),
    code: |_, v| format!("candle_nn::ops::rms_norm_slow(&{}, &{}, 1e-5)?", v[0], v[1]),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Normalised,
    indexed: false,
    layout_pairs: false,
    values: &[Values::Large],
};

const SLOW_ROPE_TABLES: &[&str] = &["cos (t, d/2)", "cos (t + 2, d/2)"];

/// `x` (b, h, t, d) with d = 2·knob 3, and cos/sin tables of t or t + 2 rows (the slow ropes
/// use the first t).
fn slow_rope_inputs(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let (b, h, t, half) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
    let rows = t + 2 * c.variant;
    vec![
        data("x", c, c.dtype(), &[b, h, t, 2 * half], rng),
        data("cos", c, c.dtype(), &[rows, half], rng),
        data("sin", c, c.dtype(), &[rows, half], rng),
    ]
}

macro_rules! slow_rope {
    ($name:ident, interleaved: $interleaved:literal) => {
        Op {
            name: stringify!($name),
            call: concat!(
                "candle_nn::rotary_emb::",
                stringify!($name),
                "(&x, &cos, &sin)"
            ),
            dtypes: FLOATS,
            aux: NONE,
            variants: SLOW_ROPE_TABLES,
            knobs: 4,
            inputs: slow_rope_inputs,
            candle: |_, t| candle_nn::rotary_emb::$name(&t[0], &t[1], &t[2]),
            oracle: |_, h| oracle::rope_table_prefix(&h[0], &h[1], &h[2], $interleaved).into(),
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
            grads: &[0, 1, 2],
            check: OutputCheck::Values,
            error: ErrorModel::Rotation,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

pub(super) const ROPE_SLOW: Op = slow_rope!(rope_slow, interleaved: false);

pub(super) const ROPE_I_SLOW: Op = slow_rope!(rope_i_slow, interleaved: true);
