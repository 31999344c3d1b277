//! candle-nn's modules: the convolution modules (`Conv1d` … `ConvTranspose2d`, built with
//! `new` from a `VarBuilder`'s `get_unchecked`/`get`, and by the `conv*` builder fns with and
//! without bias), `BatchNorm` (eval with given running stats, training with the batch's),
//! `GroupNorm`, the `Dropout` module, and the kv caches' appends.
//!
//! The builders read their weights from a `VarBuilder::from_tensors` over the cell's inputs, so
//! a weight reaches the module in the cell's layout (and the gradient flows back to it). Shapes
//! are tiny and each op runs one geometry: the convolution kernels' paths are swept by the
//! `conv` family; these ops check the modules' plumbing (config, bias, builder shapes).

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::{DType, Tensor};
use harness::host::HostTensor;
use harness::oracle::{self, ConvParams};

const F32_F64: &[DType] = &[DType::F32, DType::F64];

const CONV_VARIANTS: &[&str] = &[
    "new (VarBuilder get_unchecked, get)",
    "builder",
    "builder no_bias, bias added by hand",
];

/// A `VarBuilder` over the weight and bias inputs, in the input's dtype and device.
fn var_builder(t: &[Tensor]) -> candle_nn::VarBuilder<'static> {
    let mut m = std::collections::HashMap::new();
    m.insert("weight".to_string(), t[1].clone());
    m.insert("bias".to_string(), t[2].clone());
    candle_nn::VarBuilder::from_tensors(m, t[0].dtype(), t[0].device())
}

fn var_builder_code(v: &[&str]) -> String {
    format!(
        "let mut m = std::collections::HashMap::new(); \
         m.insert(\"weight\".to_string(), {w}.clone()); \
         m.insert(\"bias\".to_string(), {b}.clone()); \
         let vb = candle_nn::VarBuilder::from_tensors(m, {x}.dtype(), {x}.device());",
        x = v[0],
        w = v[1],
        b = v[2]
    )
}

/// Knobs `[batch, c_in, c_out, length]`: x `[b, c_in, len…]`, the weight (`[c_out, c_in, k…]`,
/// transposed `[c_in, c_out, k…]`), the bias `[c_out]`.
fn conv_inputs(
    c: &Cell,
    rng: &mut Rng,
    transposed: bool,
    two_d: bool,
    kernel: usize,
) -> Vec<Input> {
    let (b, cin, cout) = (k(c, 0).min(2), k(c, 1).min(3), k(c, 2).min(3));
    let len = 1 + k(c, 3).min(4);
    let mut x = vec![b, cin, len];
    let mut w = if transposed {
        vec![cin, cout, kernel]
    } else {
        vec![cout, cin, kernel]
    };
    if two_d {
        x.push(len);
        w.push(kernel);
    }
    vec![
        data("x", c, c.dtype(), &x, rng),
        data("weight", c, c.dtype(), &w, rng),
        data("bias", c, c.dtype(), &[cout], rng),
    ]
}

/// The bias reshaped to broadcast over the output: `(1, c, 1)` or `(1, c, 1, 1)`.
fn bias_view(b: &Tensor, two_d: bool) -> candle_core::Result<Tensor> {
    let c = b.dim(0)?;
    if two_d {
        b.reshape((1, c, 1, 1))
    } else {
        b.reshape((1, c, 1))
    }
}

/// A convolution module op: `conv_module!(NAME, name, Struct, builder, builder_no_bias, config
/// type, config expr, config code, params, transposed, 2-D, kernel, oracle)`.
macro_rules! conv_module {
    ($name:ident, $op:literal, $st:ident, $builder:ident, $nobias:ident, $cfg:expr, $cfg_code:literal,
     $params:expr, $transposed:expr, $two_d:expr, $kernel:expr, $oracle:path) => {
        pub(super) const $name: Op = Op {
            name: $op,
            call: concat!(
                "candle_nn::", stringify!($st), "::new(w, Some(b), cfg) / candle_nn::conv::",
                stringify!($builder), "(…, vb) / candle_nn::conv::", stringify!($nobias),
                "(…, vb), then .forward(&x)"
            ),
            dtypes: F32_F64,
            aux: NONE,
            variants: CONV_VARIANTS,
            knobs: 4,
            inputs: |c, rng| conv_inputs(c, rng, $transposed, $two_d, $kernel),
            candle: |c, t| {
                use candle_nn::Module as _;
                let vb = var_builder(t);
                let (cin, cout) = (t[0].dim(1)?, t[2].dim(0)?);
                match c.variant {
                    0 => {
                        let w = candle_nn::var_builder::VarBuilderArgs::get_unchecked(&vb, "weight")?;
                        let b = candle_nn::var_builder::VarBuilderArgs::get(&vb, cout, "bias")?;
                        candle_nn::$st::new(w, Some(b), $cfg).forward(&t[0])
                    }
                    1 => candle_nn::conv::$builder(cin, cout, $kernel, $cfg, vb)?.forward(&t[0]),
                    _ => candle_nn::conv::$nobias(cin, cout, $kernel, $cfg, vb)?
                        .forward(&t[0])?
                        .broadcast_add(&bias_view(&t[2], $two_d)?),
                }
            },
            oracle: |_, h| oracle::conv_with_bias($oracle, &h[0], &h[1], &h[2], &$params).into(),
            code: |c, v| {
                let vb = var_builder_code(v);
                let (x, b) = (v[0], v[2]);
                let dims = format!("{x}.dim(1)?, {b}.dim(0)?, {}", $kernel);
                let bias = if $two_d { "(1, (), 1, 1)" } else { "(1, (), 1)" };
                let body = match c.variant {
                    0 => format!(
                        "let w = candle_nn::var_builder::VarBuilderArgs::get_unchecked(&vb, \"weight\")?; \
                         let b = candle_nn::var_builder::VarBuilderArgs::get(&vb, {b}.dim(0)?, \"bias\")?; \
                         candle_nn::Module::forward(&candle_nn::{}::new(w, Some(b), {}), &{x})?",
                        stringify!($st), $cfg_code
                    ),
                    1 => format!(
                        "candle_nn::Module::forward(&candle_nn::conv::{}({dims}, {}, vb)?, &{x})?",
                        stringify!($builder), $cfg_code
                    ),
                    _ => format!(
                        "candle_nn::Module::forward(&candle_nn::conv::{}({dims}, {}, vb)?, &{x})?\
                         .broadcast_add(&{b}.reshape({bias})?)?",
                        stringify!($nobias), $cfg_code
                    ),
                };
                format!("{{ {vb} {body} }}")
            },
            grads: &[0, 1, 2],
            check: OutputCheck::Values,
            error: ErrorModel::Sum,
            indexed: false,
            layout_pairs: false,
            values: &[],
        };
    };
}

const fn params(padding: usize, stride: usize, output_padding: usize) -> ConvParams {
    ConvParams {
        padding,
        stride,
        dilation: 1,
        groups: 1,
        output_padding,
    }
}

conv_module!(
    CONV1D_MODULE,
    "conv1d_module",
    Conv1d,
    conv1d,
    conv1d_no_bias,
    candle_nn::Conv1dConfig {
        padding: 1,
        stride: 2,
        dilation: 1,
        groups: 1,
        cudnn_fwd_algo: None
    },
    "candle_nn::Conv1dConfig { padding: 1, stride: 2, dilation: 1, groups: 1, cudnn_fwd_algo: None }",
    params(1, 2, 0),
    false,
    false,
    3,
    oracle::conv1d
);

conv_module!(
    CONV2D_MODULE,
    "conv2d_module",
    Conv2d,
    conv2d,
    conv2d_no_bias,
    candle_nn::Conv2dConfig {
        padding: 1,
        stride: 2,
        dilation: 1,
        groups: 1,
        cudnn_fwd_algo: None
    },
    "candle_nn::Conv2dConfig { padding: 1, stride: 2, dilation: 1, groups: 1, cudnn_fwd_algo: None }",
    params(1, 2, 0),
    false,
    true,
    2,
    oracle::conv2d
);

conv_module!(
    CONV_TRANSPOSE1D_MODULE,
    "conv_transpose1d_module",
    ConvTranspose1d,
    conv_transpose1d,
    conv_transpose1d_no_bias,
    candle_nn::ConvTranspose1dConfig {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1,
        groups: 1
    },
    "candle_nn::ConvTranspose1dConfig { padding: 1, output_padding: 1, stride: 2, dilation: 1, groups: 1 }",
    params(1, 2, 1),
    true,
    false,
    3,
    oracle::conv_transpose1d
);

conv_module!(
    CONV_TRANSPOSE2D_MODULE,
    "conv_transpose2d_module",
    ConvTranspose2d,
    conv_transpose2d,
    conv_transpose2d_no_bias,
    candle_nn::ConvTranspose2dConfig {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1
    },
    "candle_nn::ConvTranspose2dConfig { padding: 1, output_padding: 1, stride: 2, dilation: 1 }",
    params(1, 2, 1),
    true,
    true,
    2,
    oracle::conv_transpose2d
);

const EPS: f64 = 1e-5;

/// Below this batch variance a training cell is left unspecified: a broadcast x can make a
/// channel constant over the batch.
const MIN_BATCH_VARIANCE: f64 = 1e-3;

const BATCH_NORM_VARIANTS: &[&str] = &[
    "new, forward_t(x, false): running stats",
    "batch_norm builder, forward_t(x, false)",
    "new, forward_train: batch stats",
    "batch_norm builder, forward_t(x, true)",
];

/// Knobs `[batch, channels, length]`: x `[b, c, l]`, weight, bias, running mean and running
/// variance `[c]` (the variance drawn positive: `|v| + 0.5`).
fn batch_norm_inputs(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let (b, ch, l) = (k(c, 0).min(3), k(c, 1).min(3), k(c, 2).min(4));
    let mut var = data("running_var", c, c.dtype(), &[ch], rng);
    let values = var.host.values.iter().map(|v| v.abs() + 0.5).collect();
    var.host = HostTensor::new(c.dtype(), &[ch], values);
    vec![
        data("x", c, c.dtype(), &[b, ch, l], rng),
        data("weight", c, c.dtype(), &[ch], rng),
        data("bias", c, c.dtype(), &[ch], rng),
        data("running_mean", c, c.dtype(), &[ch], rng),
        var,
    ]
}

fn batch_norm_candle(c: &Cell, t: &[Tensor]) -> candle_core::Result<Tensor> {
    use candle_nn::ModuleT as _;
    let ch = t[1].dim(0)?;
    let bn = if c.variant.is_multiple_of(2) {
        candle_nn::BatchNorm::new(
            ch,
            t[3].clone(),
            t[4].clone(),
            t[1].clone(),
            t[2].clone(),
            EPS,
        )?
    } else {
        let mut m = std::collections::HashMap::new();
        for (name, i) in [
            ("weight", 1),
            ("bias", 2),
            ("running_mean", 3),
            ("running_var", 4),
        ] {
            m.insert(name.to_string(), t[i].clone());
        }
        let vb = candle_nn::VarBuilder::from_tensors(m, t[0].dtype(), t[0].device());
        candle_nn::batch_norm::batch_norm(ch, EPS, vb)?
    };
    match c.variant {
        2 => bn.forward_train(&t[0]),
        v => bn.forward_t(&t[0], v == 3),
    }
}

fn batch_norm_code(c: &Cell, v: &[&str]) -> String {
    let (x, w, b, rm, rv) = (v[0], v[1], v[2], v[3], v[4]);
    let bn = if c.variant.is_multiple_of(2) {
        // The running stats are moved (nothing reads them after), the channel count written
        // out: the call then fits one line of the repro.
        format!(
            "let (w, b) = ({w}.clone(), {b}.clone()); \
             let bn = candle_nn::BatchNorm::new({}, {rm}, {rv}, w, b, {EPS:e})?;",
            k(c, 1).min(3)
        )
    } else {
        format!(
            "let mut m = std::collections::HashMap::new(); \
             m.insert(\"weight\".to_string(), {w}.clone()); \
             m.insert(\"bias\".to_string(), {b}.clone()); \
             m.insert(\"running_mean\".to_string(), {rm}.clone()); \
             m.insert(\"running_var\".to_string(), {rv}.clone()); \
             let vb = candle_nn::VarBuilder::from_tensors(m, {x}.dtype(), {x}.device()); \
             let bn = candle_nn::batch_norm::batch_norm({w}.dim(0)?, {EPS:e}, vb)?;"
        )
    };
    let call = match c.variant {
        2 => format!("bn.forward_train(&{x})?"),
        n => format!("candle_nn::ModuleT::forward_t(&bn, &{x}, {})?", n == 3),
    };
    format!("{{ {bn} {call} }}")
}

/// `BatchNorm` through `ModuleT::forward_t` (eval: the given running stats; train: the batch's
/// mean and biased variance, PyTorch's normalisation) and `forward_train`, built by `new` and
/// by the `batch_norm` builder from a `VarBuilder`.
pub(super) const BATCH_NORM_MODULE: Op = Op {
    name: "batch_norm_module",
    call: "candle_nn::BatchNorm::new(c, mean, var, w, b, eps) / candle_nn::batch_norm::batch_norm(c, eps, vb), then forward_t(&x, train) or forward_train(&x)",
    dtypes: FLOATS,
    aux: NONE,
    variants: BATCH_NORM_VARIANTS,
    knobs: 3,
    inputs: batch_norm_inputs,
    candle: batch_norm_candle,
    // The error bound's `|alpha·x̂| + |beta|` terms call the oracle on x, |weight| and a zero
    // bias alone: without running stats it is refused there, and the bound falls back to
    // `max|input|²` per element.
    oracle: |c, h| {
        if c.variant < 2 {
            match h {
                [x, w, b, rm, rv] => oracle::batch_norm_eval(x, w, b, rm, rv, EPS).into(),
                _ => super::Reference::Unspecified("no running stats".into()),
            }
        } else if oracle::smallest_batch_variance(&h[0]) < MIN_BATCH_VARIANCE {
            super::Reference::Unspecified(
                "a channel with (near) zero batch variance: x̂ = (x - mean)/√(var + eps) is \
                 ε-dominated and its gradient ill-conditioned"
                    .into(),
            )
        } else {
            oracle::batch_norm_train(&h[0], &h[1], &h[2], EPS).into()
        }
    },
    code: batch_norm_code,
    grads: &[0, 1, 2],
    check: OutputCheck::Values,
    error: ErrorModel::NormalisedAffine,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// Knobs `[batch, groups, channels per group, length]`: x `[b, g·cpg, l]`, weight, bias `[c]`.
fn group_norm_inputs(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let (b, g, cpg, l) = (
        k(c, 0).min(2),
        k(c, 1).min(3),
        k(c, 2).min(2),
        k(c, 3).min(3),
    );
    vec![
        data("x", c, c.dtype(), &[b, g * cpg, l], rng),
        data("weight", c, c.dtype(), &[g * cpg], rng),
        data("bias", c, c.dtype(), &[g * cpg], rng),
    ]
}

/// `GroupNorm` built by `new` and by the `group_norm` builder; the group count is the cell's
/// groups knob.
pub(super) const GROUP_NORM_MODULE: Op = Op {
    name: "group_norm_module",
    call: "candle_nn::GroupNorm::new(w, b, c, groups, eps) / candle_nn::group_norm::group_norm(groups, c, eps, vb), then .forward(&x)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["new", "group_norm builder"],
    knobs: 4,
    inputs: group_norm_inputs,
    candle: |c, t| {
        use candle_nn::Module as _;
        let groups = k(c, 1).min(3);
        let ch = t[1].dim(0)?;
        let gn = if c.variant == 0 {
            candle_nn::GroupNorm::new(t[1].clone(), t[2].clone(), ch, groups, EPS)?
        } else {
            candle_nn::group_norm::group_norm(groups, ch, EPS, var_builder(t))?
        };
        gn.forward(&t[0])
    },
    oracle: |c, h| oracle::group_norm(&h[0], &h[1], &h[2], k(c, 1).min(3), EPS).into(),
    code: |c, v| {
        let (x, w, b) = (v[0], v[1], v[2]);
        let groups = k(c, 1).min(3);
        let gn = if c.variant == 0 {
            format!("candle_nn::GroupNorm::new({w}.clone(), {b}.clone(), {w}.dim(0)?, {groups}, {EPS:e})?")
        } else {
            format!(
                "{{ {} candle_nn::group_norm::group_norm({groups}, {w}.dim(0)?, {EPS:e}, vb)? }}",
                var_builder_code(v)
            )
        };
        format!("candle_nn::Module::forward(&{gn}, &{x})?")
    },
    grads: &[0, 1, 2],
    check: OutputCheck::Values,
    error: ErrorModel::NormalisedAffine,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const DROPOUT_MODULE_VARIANTS: &[&str] = &[
    "p 0.5, forward(x, false): the identity",
    "p 0, forward(x, true): the identity",
    "p 0.3, ModuleT::forward_t(x, false): the identity",
];

/// The `Dropout` module where it must be the identity: not training, or p = 0.
pub(super) const DROPOUT_MODULE: Op = Op {
    name: "dropout_module",
    call: "candle_nn::ops::Dropout::new(p).forward(&x, train)",
    dtypes: FLOATS,
    aux: NONE,
    variants: DROPOUT_MODULE_VARIANTS,
    knobs: 2,
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng)],
    candle: |c, t| match c.variant {
        0 => candle_nn::ops::Dropout::new(0.5).forward(&t[0], false),
        1 => candle_nn::ops::Dropout::new(0.0).forward(&t[0], true),
        _ => candle_nn::ModuleT::forward_t(&candle_nn::ops::Dropout::new(0.3), &t[0], false),
    },
    oracle: |_, h| oracle::nn_identity(&h[0]).into(),
    code: |c, v| match c.variant {
        0 => format!(
            "candle_nn::ops::Dropout::new(0.5).forward(&{}, false)?",
            v[0]
        ),
        1 => format!(
            "candle_nn::ops::Dropout::new(0.0).forward(&{}, true)?",
            v[0]
        ),
        _ => format!(
            "candle_nn::ModuleT::forward_t(&candle_nn::ops::Dropout::new(0.3), &{}, false)?",
            v[0]
        ),
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
