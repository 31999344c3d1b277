//! candle-nn's activations and small ops: every `Activation` variant through `Module::forward`,
//! `PReLU`, the `ops` functions hard_sigmoid, leaky_relu, mish, selu, swiglu, `Identity` and
//! `dropout`. The losses and the slow norms and ropes are in `nnops_losses`.
//!
//! `ops::sdpa` is left out: its CPU `cpu_fwd` is `bail!("SDPA has no cpu impl")` and it has no
//! CUDA one, and its doc describes Metal alone, so on the backends the sweep runs it could only
//! record a refusal that is by design.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, ALL, FLOATS, NONE, NON_FINITE};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::host::HostTensor;
use harness::oracle;

/// `x` of `[knob 0, knob 1]`, each value scaled by `scale` and moved 1/4 away from any kink
/// it is within 1/16 of (a finite difference straddling a kink misjudges the backward pass).
fn spread(c: &Cell, rng: &mut Rng, scale: f64, kinks: &[f64]) -> Vec<Input> {
    vec![spread_one("x", c, rng, &[k(c, 0), k(c, 1)], scale, kinks)]
}

fn spread_one(
    role: &'static str,
    c: &Cell,
    rng: &mut Rng,
    shape: &[usize],
    scale: f64,
    kinks: &[f64],
) -> Input {
    let mut x = data(role, c, c.dtype(), shape, rng);
    let values = x
        .host
        .values
        .iter()
        .map(|&v| {
            let v = v * scale;
            match kinks.iter().find(|k| (v - *k).abs() < 0.0625) {
                Some(k) => k + 0.25,
                None => v,
            }
        })
        .collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    x
}

/// `x` of `[knob 0, knob 1]` drawn as `v³/4` (v uniform in (−2, 2)), so most rows hold values
/// within 0.1 of 0, where `exp(x) − 1` cancels (elu, selu); none closer than 1e-3 to the kink
/// at 0 (those become −1e-3).
fn near_zero(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
    let values = x
        .host
        .values
        .iter()
        .map(|&v| {
            let y = v * v * v / 4.0;
            if y.abs() < 1e-3 {
                -1e-3
            } else {
                y
            }
        })
        .collect();
    x.host = HostTensor::new(x.host.dtype, &x.host.shape.clone(), values);
    vec![x]
}

/// Plain `x` of `[knob 0, knob 1]` (smooth functions).
fn smooth(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    spread(c, rng, 1.0, &[])
}

/// `x` of `[knob 0, 2·knob 1]`: the two halves swiglu splits.
fn halves(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    vec![data("x", c, c.dtype(), &[k(c, 0), 2 * k(c, 1)], rng)]
}

/// One differentiated input `x`: `one!(name, call, candle, oracle, code format, error, inputs,
/// values)`.
macro_rules! one {
    ($name:literal, $call:expr, $candle:expr, $oracle:expr, $code:expr, $error:expr, $inputs:expr, $values:expr) => {
        Op {
            name: $name,
            call: $call,
            dtypes: FLOATS,
            aux: NONE,
            variants: &["-"],
            knobs: 2,
            inputs: $inputs,
            candle: $candle,
            oracle: |_, h| {
                let f: fn(&HostTensor) -> oracle::OracleResult = $oracle;
                f(&h[0]).into()
            },
            code: |_, v| format!($code, v[0]),
            grads: &[0],
            check: OutputCheck::Values,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: $values,
        }
    };
}

/// `Activation::<variant>.forward(&x)`: `activation!(name, "Variant", Variant expr, oracle,
/// error, inputs, values)`.
macro_rules! activation {
    ($name:literal, $variant:literal, $ctor:expr, $oracle:expr, $error:expr, $inputs:expr, $values:expr) => {
        one!(
            $name,
            concat!("candle_nn::Activation::", $variant, ".forward(&x)"),
            |_, t| {
                use candle_nn::Module as _;
                $ctor.forward(&t[0])
            },
            $oracle,
            concat!(
                "candle_nn::Module::forward(&candle_nn::Activation::",
                $variant,
                ", &{})?"
            ),
            $error,
            $inputs,
            $values
        )
    };
}

use candle_nn::Activation as A;

pub(super) const ACT_GELU: Op = activation!(
    "activation_gelu",
    "Gelu",
    A::Gelu,
    oracle::gelu_erf,
    ErrorModel::Activation,
    smooth,
    &[]
);

pub(super) const ACT_NEW_GELU: Op = activation!(
    "activation_new_gelu",
    "NewGelu",
    A::NewGelu,
    oracle::gelu,
    ErrorModel::Activation,
    smooth,
    &[]
);

pub(super) const ACT_GELU_PYTORCH_TANH: Op = activation!(
    "activation_gelu_pytorch_tanh",
    "GeluPytorchTanh",
    A::GeluPytorchTanh,
    oracle::gelu,
    ErrorModel::Activation,
    smooth,
    &[]
);

pub(super) const ACT_RELU: Op = activation!(
    "activation_relu",
    "Relu",
    A::Relu,
    oracle::relu,
    ErrorModel::Rounded,
    |c, rng| spread(c, rng, 1.0, &[0.0]),
    NON_FINITE
);

pub(super) const ACT_RELU2: Op = activation!(
    "activation_relu2",
    "Relu2",
    A::Relu2,
    oracle::relu2,
    ErrorModel::Rounded,
    |c, rng| spread(c, rng, 1.0, &[0.0]),
    NON_FINITE
);

pub(super) const ACT_RELU6: Op = activation!(
    "activation_relu6",
    "Relu6",
    A::Relu6,
    oracle::relu6,
    ErrorModel::Rounded,
    |c, rng| spread(c, rng, 4.0, &[0.0, 6.0]),
    NON_FINITE
);

pub(super) const ACT_SILU: Op = activation!(
    "activation_silu",
    "Silu",
    A::Silu,
    oracle::silu,
    ErrorModel::Elementwise,
    smooth,
    &[]
);

pub(super) const ACT_SIGMOID: Op = activation!(
    "activation_sigmoid",
    "Sigmoid",
    A::Sigmoid,
    oracle::sigmoid,
    ErrorModel::Elementwise,
    smooth,
    &[]
);

pub(super) const ACT_HARD_SIGMOID: Op = activation!(
    "activation_hard_sigmoid",
    "HardSigmoid",
    A::HardSigmoid,
    oracle::hard_sigmoid,
    ErrorModel::Elementwise,
    |c, rng| spread(c, rng, 2.5, &[-3.0, 3.0]),
    &[]
);

pub(super) const ACT_SWIGLU: Op = activation!(
    "activation_swiglu",
    "Swiglu",
    A::Swiglu,
    oracle::swiglu,
    ErrorModel::Elementwise,
    halves,
    &[]
);

pub(super) const ACT_SWISH: Op = activation!(
    "activation_swish",
    "Swish",
    A::Swish,
    oracle::swish,
    ErrorModel::Elementwise,
    smooth,
    &[]
);

pub(super) const ACT_MISH: Op = activation!(
    "activation_mish",
    "Mish",
    A::Mish,
    oracle::mish,
    ErrorModel::Activation,
    smooth,
    &[]
);

pub(super) const ACT_HARD_SWISH: Op = activation!(
    "activation_hard_swish",
    "HardSwish",
    A::HardSwish,
    oracle::hard_swish,
    ErrorModel::Elementwise,
    |c, rng| spread(c, rng, 2.5, &[-3.0, 3.0]),
    &[]
);

pub(super) const ACT_ELU: Op = activation!(
    "activation_elu",
    "Elu(0.5)",
    A::Elu(0.5),
    |t| oracle::elu_activation(t, 0.5),
    ErrorModel::Activation,
    near_zero,
    &[]
);

pub(super) const ACT_LEAKY_RELU: Op = activation!(
    "activation_leaky_relu",
    "LeakyRelu(0.2)",
    A::LeakyRelu(0.2),
    |t| oracle::leaky_relu(t, 0.2),
    ErrorModel::Elementwise,
    |c, rng| spread(c, rng, 1.0, &[0.0]),
    NON_FINITE
);

pub(super) const HARD_SIGMOID: Op = one!(
    "hard_sigmoid",
    "candle_nn::ops::hard_sigmoid(&x)",
    |_, t| candle_nn::ops::hard_sigmoid(&t[0]),
    oracle::hard_sigmoid,
    "candle_nn::ops::hard_sigmoid(&{})?",
    ErrorModel::Elementwise,
    |c, rng| spread(c, rng, 2.5, &[-3.0, 3.0]),
    NON_FINITE
);

pub(super) const LEAKY_RELU: Op = one!(
    "leaky_relu",
    "candle_nn::ops::leaky_relu(&x, 0.2)",
    |_, t| candle_nn::ops::leaky_relu(&t[0], 0.2),
    |t| oracle::leaky_relu(t, 0.2),
    "candle_nn::ops::leaky_relu(&{}, 0.2)?",
    ErrorModel::Elementwise,
    |c, rng| spread(c, rng, 1.0, &[0.0]),
    &[]
);

pub(super) const MISH: Op = one!(
    "mish",
    "candle_nn::ops::mish(&x)",
    |_, t| candle_nn::ops::mish(&t[0]),
    oracle::mish,
    "candle_nn::ops::mish(&{})?",
    ErrorModel::Activation,
    smooth,
    &[]
);

/// torch.nn.SELU's constants, as the f32 values `selu` takes.
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

pub(super) const SELU: Op = one!(
    "selu",
    "candle_nn::ops::selu(&x, 1.6732632, 1.050701)",
    |_, t| candle_nn::ops::selu(&t[0], SELU_ALPHA, SELU_SCALE),
    |t| oracle::selu(t, f64::from(SELU_ALPHA), f64::from(SELU_SCALE)),
    "candle_nn::ops::selu(&{}, 1.6732632, 1.050701)?",
    ErrorModel::Activation,
    near_zero,
    &[]
);

pub(super) const SWIGLU: Op = one!(
    "swiglu",
    "candle_nn::ops::swiglu(&x)",
    |_, t| candle_nn::ops::swiglu(&t[0]),
    oracle::swiglu,
    "candle_nn::ops::swiglu(&{})?",
    ErrorModel::Elementwise,
    halves,
    &[]
);

pub(super) const IDENTITY: Op = Op {
    name: "identity",
    call: "candle_nn::ops::Identity.forward(&x)",
    dtypes: ALL,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: smooth,
    candle: |_, t| {
        use candle_nn::Module as _;
        candle_nn::ops::Identity.forward(&t[0])
    },
    oracle: |_, h| oracle::nn_identity(&h[0]).into(),
    code: |_, v| {
        format!(
            "candle_nn::Module::forward(&candle_nn::ops::Identity, &{})?",
            v[0]
        )
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const DROPOUT_VARIANTS: &[&str] = &[
    "p 0: the identity",
    "p 0.5: y·(y − 2x) is zero",
    // "p 1.5: refused" is left out: the sweep plans only in-contract cells (the oracle
    // self-test), and an out-of-range p is outside the contract by definition.
];

/// `candle_nn::ops::dropout`, judged without its random mask: at p = 0 it is the identity; at
/// p = 0.5 every output is 0 or 2x, so `y·(y − 2x)` is zero, and so is its gradient exactly when
/// the backward pass multiplies by the forward's mask; p = 1.5 is outside `[0, 1)`.
pub(super) const DROPOUT: Op = Op {
    name: "dropout",
    call: "candle_nn::ops::dropout(&x, p)",
    dtypes: FLOATS,
    aux: NONE,
    variants: DROPOUT_VARIANTS,
    knobs: 2,
    inputs: smooth,
    candle: |c, t| match c.variant {
        0 => candle_nn::ops::dropout(&t[0], 0.0),
        1 => {
            let y = candle_nn::ops::dropout(&t[0], 0.5)?;
            &y * (&y - (&t[0] * 2.0)?)?
        }
        _ => candle_nn::ops::dropout(&t[0], 1.5),
    },
    oracle: |c, h| match c.variant {
        0 => oracle::dropout_p0(&h[0], 0.0).into(),
        1 => oracle::dropout_kept_or_zeroed(&h[0], 0.5).into(),
        _ => oracle::dropout_p0(&h[0], 1.5).into(),
    },
    code: |c, v| match c.variant {
        0 => format!("candle_nn::ops::dropout(&{}, 0.0)?", v[0]),
        1 => format!(
            "{{ let y = candle_nn::ops::dropout(&{x}, 0.5)?; (&y * (&y - (&{x} * 2.0)?)?)? }}",
            x = v[0]
        ),
        _ => format!("candle_nn::ops::dropout(&{}, 1.5)?", v[0]),
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const PRELU_WEIGHTS: &[&str] = &["one weight", "a weight per channel"];

/// `x` of `[knob 0, knob 1]` (knob 1 the channels) and the weight: `[1]` or `[knob 1]`.
fn prelu_inputs(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let w = if c.variant == 0 { 1 } else { k(c, 1) };
    vec![
        spread_one("x", c, rng, &[k(c, 0), k(c, 1)], 1.0, &[0.0]),
        data("weight", c, c.dtype(), &[w], rng),
    ]
}

pub(super) const PRELU: Op = Op {
    name: "prelu",
    call: "candle_nn::PReLU::new(weight, is_scalar).forward(&x)",
    dtypes: FLOATS,
    aux: NONE,
    variants: PRELU_WEIGHTS,
    knobs: 2,
    inputs: prelu_inputs,
    candle: |c, t| {
        use candle_nn::Module as _;
        candle_nn::PReLU::new(t[1].clone(), c.variant == 0).forward(&t[0])
    },
    oracle: |_, h| oracle::prelu(&h[0], &h[1]).into(),
    code: |c, v| {
        format!(
            "candle_nn::Module::forward(&candle_nn::PReLU::new({}.clone(), {}), &{})?",
            v[1],
            c.variant == 0,
            v[0]
        )
    },
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Elementwise,
    indexed: false,
    layout_pairs: false,
    values: NON_FINITE,
};
