//! candle-core's quantized tensors beyond the block matmul of `coverage.rs`, and the tensor
//! constructors:
//! - `qdequantize`: `QTensor::quantize_onto` (from the CPU onto the cell's device), then
//!   `QTensor::dequantize`, `QTensor::dequantize_f16` or `QMatMul::dequantize_f16`, for Q4_0
//!   and Q8_0 (and F16 through `QMatMul::from_arc`, which dequantizes it to a plain tensor).
//!   Reference: the blocks' bytes decoded by the plain-Rust ggml decoders
//!   (`harness::oracle::dequantize_q4_0`/`_q8_0`; the blocks are candle's CPU
//!   `QTensor::quantize` of the same weights, so the quantization itself is not judged), or
//!   the weights rounded to f16, then rounded to the output dtype. The other block formats
//!   are left out: this project has no decoder of its own for them, and candle's f32 path is
//!   what `dequantize` is, so comparing with it would check nothing on the CPU.
//! - `qmatmul_float`: `QMatMul::from_arc` of a QTensor of format F32/F16/BF16 (candle turns it
//!   into a plain f32 weight tensor), then `forward`: `x · w̃ᵀ` with `w̃` the weights rounded
//!   to the format (f32 activations: the dequantized weights are f32, and candle's matmul
//!   takes one dtype).
//! - `qmatmul_via_f16`: `QMatMul::forward_via_f16` on Q4_0/Q8_0 weights, f16 activations:
//!   `x · round_f16(w̃)ᵀ`, the product judged as a sum in f16.
//! - `qembedding`: `QTensor::embedding` (Q4_0, Q8_0) and `QMatMul::embedding` (Q8_0, and F32
//!   which takes `index_select` on the dequantized tensor): rows of `w̃`.
//! - `tensor_from_host`: `Tensor::new`/`from_vec`/`from_slice`/`from_iter` of the input's host
//!   values (read back with `to_vec1`), on the input's device: the identity.
//! - `tensor_embedding`: `Tensor::embedding`, rows of a 2-D table (the reference is
//!   `index_select` along dim 0).

use super::inputs::{data, index, k};
use super::{ErrorModel, Op, OutputCheck, Reference, ALL, INDEX, NONE};
use crate::sweep::cell::Cell;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, WithDType};
use harness::host::HostTensor;
use harness::oracle;
use std::sync::Arc;

const F32: &[DType] = &[DType::F32];
const F16: &[DType] = &[DType::F16];

fn format_of(name: &str) -> GgmlDType {
    match name {
        "Q4_0" => GgmlDType::Q4_0,
        "Q8_0" => GgmlDType::Q8_0,
        "Q2K" => GgmlDType::Q2K,
        "Q3K" => GgmlDType::Q3K,
        "Q4K" => GgmlDType::Q4K,
        "Q5K" => GgmlDType::Q5K,
        "Q6K" => GgmlDType::Q6K,
        "F32" => GgmlDType::F32,
        "F16" => GgmlDType::F16,
        _ => GgmlDType::BF16,
    }
}

/// The format named by a variant's last word (`"QTensor::dequantize Q4_0"` → Q4_0).
fn fmt_name(c: &Cell, variants: &[&'static str]) -> &'static str {
    let v = variants[c.variant];
    v.rsplit(' ').next().unwrap_or(v)
}

/// `w̃`: the values the weights hold once stored in `name`'s format, as f64 in an f32 tensor:
/// Q4_0/Q8_0 decoded from candle's CPU blocks by the plain-Rust decoders, F32/F16/BF16 the
/// weights rounded once to that dtype. `None` when candle cannot quantize them.
fn held(name: &str, w: &HostTensor) -> Option<HostTensor> {
    let dtype = match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        _ => {
            let t = Tensor::from_vec(
                w.values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                w.shape.as_slice(),
                &Device::Cpu,
            )
            .ok()?;
            let q = QTensor::quantize(&t, format_of(name)).ok()?;
            let bytes = q.data().ok()?;
            let values = if name == "Q4_0" {
                oracle::dequantize_q4_0(&bytes)
            } else {
                oracle::dequantize_q8_0(&bytes)
            };
            return Some(HostTensor::new(DType::F32, &w.shape, values));
        }
    };
    Some(oracle::rounded_through(w, dtype, DType::F32))
}

fn unquantizable() -> Reference {
    Reference::Unspecified("candle could not quantize the weights".into())
}

/// Block size of a format (1 for the float formats).
fn block(name: &str) -> usize {
    format_of(name).block_size()
}

const DEQUANTIZE: &[&str] = &[
    "QTensor::dequantize Q4_0",
    "QTensor::dequantize Q8_0",
    "QTensor::dequantize_f16 Q4_0",
    "QTensor::dequantize_f16 Q8_0",
    "QMatMul::dequantize_f16 Q8_0",
    "QMatMul::dequantize_f16 F16",
];

pub(super) const QDEQUANTIZE: Op = Op {
    name: "qdequantize",
    call: "QTensor::quantize_onto(&w, GgmlDType::…, &dev)?.dequantize(&dev) | QTensor::dequantize_f16(&dev) | QMatMul::from_arc(…)?.dequantize_f16()",
    dtypes: F32,
    aux: NONE,
    variants: DEQUANTIZE,
    knobs: 2,
    inputs: |c, rng| {
        let n = block(fmt_name(c, DEQUANTIZE));
        vec![data("w", c, c.dtype(), &[k(c, 0), n * k(c, 1)], rng)]
    },
    candle: |c, t| {
        let dev = t[0].device();
        let fmt = format_of(fmt_name(c, DEQUANTIZE));
        let q = QTensor::quantize_onto(&t[0].to_device(&Device::Cpu)?, fmt, dev)?;
        match c.variant {
            0 | 1 => q.dequantize(dev),
            2 | 3 => q.dequantize_f16(dev),
            _ => QMatMul::from_arc(Arc::new(q))?.dequantize_f16(),
        }
    },
    oracle: |c, h| {
        let Some(w) = held(fmt_name(c, DEQUANTIZE), &h[0]) else {
            return unquantizable();
        };
        let dtype = if c.variant < 2 { DType::F32 } else { DType::F16 };
        oracle::dequantized(w.values, &w.shape, dtype).into()
    },
    code: |c, v| {
        let q = format!(
            "candle_core::quantized::QTensor::quantize_onto(&{w}.to_device(&candle_core::Device::Cpu)?, \
             candle_core::quantized::GgmlDType::{}, {w}.device())?",
            fmt_name(c, DEQUANTIZE),
            w = v[0]
        );
        match c.variant {
            0 | 1 => format!("candle_core::quantized::QTensor::dequantize(&{q}, {}.device())?", v[0]),
            2 | 3 => format!("candle_core::quantized::QTensor::dequantize_f16(&{q}, {}.device())?", v[0]),
            _ => format!(
                "candle_core::quantized::QMatMul::dequantize_f16(&candle_core::quantized::QMatMul::from_arc(std::sync::Arc::new({q}))?)?"
            ),
        }
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const FLOAT_FORMATS: &[&str] = &["F32", "F16", "BF16"];

pub(super) const QMATMUL_FLOAT: Op = Op {
    name: "qmatmul_float",
    call: "QMatMul::from_arc(Arc::new(QTensor::quantize(&w, GgmlDType::F32 | F16 | BF16)?))?.forward(&x)",
    dtypes: F32,
    aux: NONE,
    variants: FLOAT_FORMATS,
    knobs: 3,
    inputs: |c, rng| {
        let (m, kk, n) = (k(c, 0), k(c, 1), k(c, 2));
        vec![
            data("x", c, c.dtype(), &[m, kk], rng),
            data("w", c, c.dtype(), &[n, kk], rng),
        ]
    },
    candle: |c, t| {
        let q = QTensor::quantize(&t[1], format_of(FLOAT_FORMATS[c.variant]))?;
        QMatMul::from_arc(Arc::new(q))?.forward(&t[0])
    },
    oracle: |c, h| match held(FLOAT_FORMATS[c.variant], &h[1]) {
        Some(w) => oracle::qmatmul(&h[0], &w, 1).into(),
        None => unquantizable(),
    },
    code: |c, v| {
        format!(
            "candle_core::Module::forward(&candle_core::quantized::QMatMul::from_arc(std::sync::Arc::new(\
             candle_core::quantized::QTensor::quantize(&{}, \
             candle_core::quantized::GgmlDType::{})?))?, &{})?",
            v[1], FLOAT_FORMATS[c.variant], v[0]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const VIA_F16: &[&str] = &["Q4_0", "Q8_0"];

pub(super) const QMATMUL_VIA_F16: Op = Op {
    name: "qmatmul_via_f16",
    call:
        "QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_0 | Q8_0)?)?.forward_via_f16(&x)",
    dtypes: F16,
    aux: NONE,
    variants: VIA_F16,
    knobs: 3,
    inputs: |c, rng| {
        let (m, kk, n) = (k(c, 0), 32 * k(c, 1), k(c, 2));
        vec![
            data("x", c, c.dtype(), &[m, kk], rng),
            data("w", c, c.dtype(), &[n, kk], rng),
        ]
    },
    candle: |c, t| {
        let q = QTensor::quantize(&t[1], format_of(VIA_F16[c.variant]))?;
        QMatMul::from_qtensor(q)?.forward_via_f16(&t[0])
    },
    oracle: |c, h| match held(VIA_F16[c.variant], &h[1]) {
        Some(w) => {
            let w16 = oracle::rounded_through(&w, DType::F16, DType::F32);
            oracle::qmatmul(&h[0], &w16, 1).into()
        }
        None => unquantizable(),
    },
    code: |c, v| {
        format!(
            "candle_core::quantized::QMatMul::forward_via_f16(&candle_core::quantized::QMatMul::from_qtensor(\
             candle_core::quantized::QTensor::quantize(&{}, \
             candle_core::quantized::GgmlDType::{})?)?, &{})?",
            v[1], VIA_F16[c.variant], v[0]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const EMBEDDING: &[&str] = &[
    "QTensor::embedding Q4_0",
    "QTensor::embedding Q8_0",
    "QMatMul::embedding Q8_0",
    "QMatMul::embedding F32",
];

pub(super) const QEMBEDDING: Op = Op {
    name: "qembedding",
    call: "QTensor::quantize(&w, GgmlDType::…)?.embedding(&ids) | QMatMul::from_qtensor(…)?.embedding(&ids)",
    dtypes: F32,
    aux: (&[DType::U32], "index"),
    variants: EMBEDDING,
    knobs: 3,
    inputs: |c, rng| {
        let (vocab, hidden) = (k(c, 0), block(fmt_name(c, EMBEDDING)).max(32) * k(c, 1));
        vec![
            data("w", c, c.dtype(), &[vocab, hidden], rng),
            index(c, &[k(c, 2)], vocab, None, rng),
        ]
    },
    candle: |c, t| {
        let q = QTensor::quantize(&t[0], format_of(fmt_name(c, EMBEDDING)))?;
        if c.variant < 2 {
            q.embedding(&t[1])
        } else {
            QMatMul::from_qtensor(q)?.embedding(&t[1])
        }
    },
    oracle: |c, h| match held(fmt_name(c, EMBEDDING), &h[0]) {
        Some(w) => oracle::embedding(&w, &h[1]).into(),
        None => unquantizable(),
    },
    code: |c, v| {
        let q = format!(
            "candle_core::quantized::QTensor::quantize(&{}, candle_core::quantized::GgmlDType::{})?",
            v[0],
            fmt_name(c, EMBEDDING)
        );
        if c.variant < 2 {
            format!("candle_core::quantized::QTensor::embedding(&{q}, &{})?", v[1])
        } else {
            format!(
                "candle_core::quantized::QMatMul::embedding(&candle_core::quantized::QMatMul::from_qtensor({q})?, &{})?",
                v[1]
            )
        }
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

const CONSTRUCTORS: &[&str] = &[
    "Tensor::new",
    "Tensor::from_vec",
    "Tensor::from_slice",
    "Tensor::from_iter",
];

/// The input's host values (`to_vec1::<T>`) handed to the variant's constructor on the input's
/// device; `new` and `from_iter` build 1-D tensors, reshaped to the input's dims.
fn rebuild<T: WithDType>(t: &Tensor, variant: usize) -> candle_core::Result<Tensor> {
    let (dims, dev) = (t.dims(), t.device());
    let host = t.flatten_all()?.to_vec1::<T>()?;
    match variant {
        0 => Tensor::new(host, dev)?.reshape(dims),
        1 => Tensor::from_vec(host, dims, dev),
        2 => Tensor::from_slice(&host, dims, dev),
        _ => Tensor::from_iter(host, dev)?.reshape(dims),
    }
}

/// The Rust element type of a dtype, as the generated code names it.
fn rust_type(d: DType) -> &'static str {
    match d {
        DType::U8 => "u8",
        DType::U32 => "u32",
        DType::I64 => "i64",
        DType::F16 => "half::f16",
        DType::BF16 => "half::bf16",
        DType::F64 => "f64",
        _ => "f32",
    }
}

pub(super) const TENSOR_FROM_HOST: Op = Op {
    name: "tensor_from_host",
    call: "Tensor::new | Tensor::from_vec | Tensor::from_slice | Tensor::from_iter (x's host values, x's dims, x's device)",
    dtypes: ALL,
    aux: NONE,
    variants: CONSTRUCTORS,
    knobs: 2,
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng)],
    candle: |c, t| match t[0].dtype() {
        DType::U8 => rebuild::<u8>(&t[0], c.variant),
        DType::U32 => rebuild::<u32>(&t[0], c.variant),
        DType::I64 => rebuild::<i64>(&t[0], c.variant),
        DType::F16 => rebuild::<half::f16>(&t[0], c.variant),
        DType::BF16 => rebuild::<half::bf16>(&t[0], c.variant),
        DType::F64 => rebuild::<f64>(&t[0], c.variant),
        _ => rebuild::<f32>(&t[0], c.variant),
    },
    oracle: |_, h| oracle::identity(&h[0]).into(),
    code: |c, v| {
        let host = format!(
            "{}.flatten_all()?.to_vec1::<{}>()?",
            v[0],
            rust_type(c.dtype())
        );
        let x = v[0];
        match c.variant {
            0 => format!("candle_core::Tensor::new({host}, {x}.device())?.reshape({x}.dims())?"),
            1 => format!("candle_core::Tensor::from_vec({host}, {x}.dims(), {x}.device())?"),
            2 => format!("candle_core::Tensor::from_slice(&{host}, {x}.dims(), {x}.device())?"),
            _ => format!(
                "candle_core::Tensor::from_iter({host}, {x}.device())?.reshape({x}.dims())?"
            ),
        }
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const TENSOR_EMBEDDING: Op = Op {
    name: "tensor_embedding",
    call: "table.embedding(&ids)",
    dtypes: ALL,
    aux: (INDEX, "index"),
    variants: &["ids 1-D"],
    knobs: 3,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        vec![
            data("table", c, c.dtype(), &s, rng),
            index(c, &[k(c, 2)], s[0], None, rng),
        ]
    },
    candle: |_, t| t[0].embedding(&t[1]),
    oracle: |_, h| oracle::index_select(&h[0], &h[1], 0).into(),
    code: |_, v| format!("{}.embedding(&{})?", v[0], v[1]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: true,
    layout_pairs: false,
    values: &[],
};

/// The k-quant formats candle quantizes with an importance matrix (the others panic,
/// "unimplemented"), each by `quantize_imatrix` and by `quantize_imatrix_onto` the device.
const IMATRIX: &[&str] = &[
    "quantize_imatrix Q2K",
    "quantize_imatrix Q3K",
    "quantize_imatrix Q4K",
    "quantize_imatrix Q5K",
    "quantize_imatrix Q6K",
    "quantize_imatrix_onto Q2K",
    "quantize_imatrix_onto Q3K",
    "quantize_imatrix_onto Q4K",
    "quantize_imatrix_onto Q5K",
    "quantize_imatrix_onto Q6K",
];

/// The importance weights of a row of `n`: positive, uneven (1 + i mod 7), so the fit
/// weighs some values more.
fn importance(n: usize) -> Vec<f32> {
    (0..n).map(|i| 1.0 + (i % 7) as f32).collect()
}

/// Per element: the span of its 256-value super-block of `x` (rows along the last dim),
/// `max(max_b − min_b, max_b|x|)` (see `ErrorModel::QuantizedWeights`).
pub fn quantized_weights_bound(h: &[HostTensor]) -> Vec<f64> {
    let x = &h[0];
    let mut out = Vec::with_capacity(x.values.len());
    for b in x.values.chunks(256) {
        let (lo, hi) = b
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), v| {
                (l.min(*v), u.max(*v))
            });
        let amax = b.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        out.extend(std::iter::repeat_n((hi - lo).max(amax), b.len()));
    }
    out
}

pub(super) const QQUANTIZE_IMATRIX: Op = Op {
    name: "qquantize_imatrix",
    call: "QTensor::quantize_imatrix(&w, &imatrix, GgmlDType::…)? | QTensor::quantize_imatrix_onto(&w_cpu, &imatrix, GgmlDType::…, &dev)?, then .dequantize(&dev)",
    dtypes: F32,
    aux: NONE,
    variants: IMATRIX,
    knobs: 2,
    inputs: |c, rng| vec![data("w", c, c.dtype(), &[k(c, 0), 256 * k(c, 1).min(2)], rng)],
    candle: |c, t| {
        let dev = t[0].device();
        let fmt = format_of(fmt_name(c, IMATRIX));
        let weights = importance(t[0].dim(1)?);
        let q = if c.variant < 5 {
            QTensor::quantize_imatrix(&t[0], &weights, fmt)?
        } else {
            QTensor::quantize_imatrix_onto(&t[0].to_device(&Device::Cpu)?, &weights, fmt, dev)?
        };
        q.dequantize(dev)
    },
    oracle: |_, h| oracle::identity(&h[0]).into(),
    code: |c, v| {
        let name = fmt_name(c, IMATRIX);
        let w = v[0];
        let weights = format!("(0..{w}.dim(1)?).map(|i| 1.0 + (i % 7) as f32).collect::<Vec<f32>>()");
        let q = if c.variant < 5 {
            format!(
                "candle_core::quantized::QTensor::quantize_imatrix(&{w}, &{weights}, \
                 candle_core::quantized::GgmlDType::{name})?"
            )
        } else {
            format!(
                "candle_core::quantized::QTensor::quantize_imatrix_onto(&{w}.to_device(&candle_core::Device::Cpu)?, \
                 &{weights}, candle_core::quantized::GgmlDType::{name}, {w}.device())?"
            )
        };
        format!("candle_core::quantized::QTensor::dequantize(&{q}, {w}.device())?")
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::QuantizedWeights,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
