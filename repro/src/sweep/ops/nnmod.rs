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
use super::{ErrorModel, Op, OutputCheck, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::{DType, Tensor};
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
