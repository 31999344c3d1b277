//! candle-core's quantized matmul: `QMatMul::forward` with weights quantized by
//! `QTensor::quantize`, once per block format candle's CPU multiplies in its quantized kernels
//! (Q4_0 … Q8_K; the F32/F16/BF16 "formats" are dequantized to a plain matmul by
//! `QMatMul::from_arc` and are not swept here), each with one activation row (`m = 1`: the
//! decode kernels) and several (`m > 1`: the prefill tiling), and for Q4_0 and Q4K a
//! contraction length that is not a multiple of the block, which `QTensor::quantize` must
//! refuse with an error.
//!
//! Reference: `x · w̃ᵀ` in f64 (`harness::oracle::qmatmul`) where `w̃` is what the quantized
//! blocks hold. For Q4_0 and Q8_0 the oracle decodes the blocks' bytes itself
//! (`QTensor::data`, ggml's block layout); for the other formats `w̃` is candle's own
//! `QTensor::dequantize` on the CPU, so those cells check the matmul paths, not the
//! dequantization. Weights' quantization error is never judged (the reference multiplies
//! the quantized weights); the activations' is (see `ErrorModel::QuantizedActivations`).

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, Reference, NONE};
use crate::sweep::cell::Cell;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use harness::host::HostTensor;
use harness::oracle;

/// Activation dtypes: f32 only, to keep the sweep's time down (f16 has its own CPU kernel,
/// `matmul_t_f16`, and bf16 is widened to f32 for the f32 kernel: both left for a later
/// extension).
const ACTIVATIONS: &[DType] = &[DType::F32];

/// The block formats, with the variant name's text and whether candle's dot product adds the
/// f16 block sum of the activations times the weights' block minimum (the `_1` formats).
const FORMATS: &[(GgmlDType, &str)] = &[
    (GgmlDType::Q4_0, "Q4_0"),
    (GgmlDType::Q4_1, "Q4_1"),
    (GgmlDType::Q5_0, "Q5_0"),
    (GgmlDType::Q5_1, "Q5_1"),
    (GgmlDType::Q8_0, "Q8_0"),
    (GgmlDType::Q8_1, "Q8_1"),
    (GgmlDType::Q2K, "Q2K"),
    (GgmlDType::Q3K, "Q3K"),
    (GgmlDType::Q4K, "Q4K"),
    (GgmlDType::Q5K, "Q5K"),
    (GgmlDType::Q6K, "Q6K"),
    (GgmlDType::Q8K, "Q8K"),
];

/// Two variants per format (`m = 1`, `m > 1`), then the two ragged ones.
const VARIANTS: &[&str] = &[
    "Q4_0 m=1",
    "Q4_0 m>1",
    "Q4_1 m=1",
    "Q4_1 m>1",
    "Q5_0 m=1",
    "Q5_0 m>1",
    "Q5_1 m=1",
    "Q5_1 m>1",
    "Q8_0 m=1",
    "Q8_0 m>1",
    "Q8_1 m=1",
    "Q8_1 m>1",
    "Q2K m=1",
    "Q2K m>1",
    "Q3K m=1",
    "Q3K m>1",
    "Q4K m=1",
    "Q4K m>1",
    "Q5K m=1",
    "Q5K m>1",
    "Q6K m=1",
    "Q6K m>1",
    "Q8K m=1",
    "Q8K m>1",
    "Q4_0 k%32≠0",
    "Q4K k%256≠0",
];

/// A cell's format, whether it has one row, and whether its `k` is ragged.
fn variant(c: &Cell) -> (GgmlDType, &'static str, bool, bool) {
    let v = c.variant;
    if c.op == QGEMV_FUSED_SHARED_LHS.name {
        let (d, name) = FORMATS[v];
        return (d, name, true, false);
    }
    if v >= 2 * FORMATS.len() {
        let (d, name) = FORMATS[if v == 2 * FORMATS.len() { 0 } else { 8 }];
        return (d, name, false, true);
    }
    let (d, name) = FORMATS[v / 2];
    (d, name, v.is_multiple_of(2), false)
}

/// `x: [m, k]`, `w: [n, k]`: `m` is 1 or knob 0, `k` is knob 1 blocks (plus one for a ragged
/// variant), `n` is 8·knob 2 (16 and 32 reach the x86 repacked kernels, which take n % 16 = 0).
fn shapes(c: &Cell) -> (usize, usize, usize) {
    let (d, _, one, ragged) = variant(c);
    let m = if one { 1 } else { k(c, 0) };
    let kk = d.block_size() * k(c, 1) + usize::from(ragged);
    (m, kk, 8 * k(c, 2))
}

fn quantized(w: &Tensor, c: &Cell) -> candle_core::Result<QTensor> {
    QTensor::quantize(w, variant(c).0)
}

/// `w̃`: what the blocks hold (decoded here for Q4_0/Q8_0, candle's dequantize otherwise).
fn dequantized(c: &Cell, w: &HostTensor) -> Option<HostTensor> {
    let t = Tensor::from_vec(
        w.values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        w.shape.as_slice(),
        &Device::Cpu,
    )
    .ok()?;
    let q = quantized(&t, c).ok()?;
    let values = match variant(c).0 {
        GgmlDType::Q4_0 => oracle::dequantize_q4_0(&q.data().ok()?),
        GgmlDType::Q8_0 => oracle::dequantize_q8_0(&q.data().ok()?),
        _ => q
            .dequantize(&Device::Cpu)
            .ok()?
            .flatten_all()
            .ok()?
            .to_vec1::<f32>()
            .ok()?
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    Some(HostTensor::new(DType::F64, &w.shape, values))
}

/// The weights `[n, k]` a cell multiplies: its second input, or for the fused op its two
/// weight inputs one above the other.
fn weights(c: &Cell, h: &[HostTensor]) -> HostTensor {
    if c.op == QGEMV_FUSED_SHARED_LHS.name {
        if let Ok(w) = oracle::cat(&[&h[1], &h[2]], 0) {
            return w;
        }
    }
    h[1].clone()
}

/// The activations' quantization error bound of each output (see
/// `ErrorModel::QuantizedActivations`), before the output's own rounding.
pub fn qmatmul_bound(c: &Cell, h: &[HostTensor]) -> Vec<f64> {
    let x = &h[0];
    let w = &weights(c, h);
    let (d, name, _, _) = variant(c);
    let Some(wq) = dequantized(c, w) else {
        return Vec::new();
    };
    let (n, kk) = (w.shape[0], w.shape[1]);
    let m = x.values.len() / kk;
    // The activations' block: Q8_0/Q8_1 (32) for the legacy formats, Q8K (256) for the
    // k-quants and for Q8_0 on x86's repacked path (k a multiple of 256).
    let block = if d.block_size() == 256 || (d == GgmlDType::Q8_0 && kk % 256 == 0) {
        256
    } else {
        32
    };
    let sums = if name.ends_with("_1") { 3.5 } else { 0.0 };
    let u32 = harness::compare::unit_roundoff(DType::F32);
    let terms = (kk / 16 + 4) as f64;
    let mut out = Vec::with_capacity(m * n);
    for r in 0..m {
        let row = &x.values[r * kk..(r + 1) * kk];
        for j in 0..n {
            let col = &wq.values[j * kk..(j + 1) * kk];
            let mut b = 0.0;
            for (xb, wb) in row.chunks(block).zip(col.chunks(block)) {
                let step = xb.iter().fold(0.0f64, |a, v| a.max(v.abs())) / 127.0;
                let s: f64 = wb.iter().map(|v| v.abs()).sum();
                let mx = wb.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                b += step * (0.6 * s + sums * mx);
            }
            let t: f64 = row.iter().zip(col).map(|(a, b)| (a * b).abs()).sum();
            out.push(b + terms * u32 * t);
        }
    }
    out
}

pub(super) const QMATMUL: Op = Op {
    name: "qmatmul",
    call: "QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::…)?)?.forward(&x)",
    dtypes: ACTIVATIONS,
    aux: NONE,
    variants: VARIANTS,
    knobs: 3,
    inputs: |c, rng| {
        let (m, kk, n) = shapes(c);
        vec![
            data("x", c, c.dtype(), &[m, kk], rng),
            data("w", c, c.dtype(), &[n, kk], rng),
        ]
    },
    candle: |c, t| QMatMul::from_qtensor(quantized(&t[1], c)?)?.forward(&t[0]),
    oracle: |c, h| {
        let block = variant(c).0.block_size();
        let w = if h[1].shape[1] % block == 0 {
            match dequantized(c, &h[1]) {
                Some(w) => w,
                None => {
                    return Reference::Unspecified("candle could not quantize the weights".into())
                }
            }
        } else {
            h[1].clone()
        };
        oracle::qmatmul(&h[0], &w, block).into()
    },
    code: |c, v| {
        format!(
            "candle_core::Module::forward(&candle_core::quantized::QMatMul::from_qtensor(\
             candle_core::quantized::QTensor::quantize(&{}, \
             candle_core::quantized::GgmlDType::{})?)?, &{})?",
            v[1],
            variant(c).1,
            v[0]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::QuantizedActivations,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// The formats' names, one variant each.
const FORMAT_NAMES: &[&str] = &[
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2K", "Q3K", "Q4K", "Q5K", "Q6K", "Q8K",
];

/// `QTensor::gemv_fused_shared_lhs`: one activation row times two quantized weights of one
/// format, fused where candle has a kernel for it (the CPU on aarch64 with dotprod and on
/// x86-64 with AVX-512 VNNI, for the formats and shapes its repacked kernels take). Elsewhere
/// it returns `None`, and the op then multiplies with `QMatMul::forward` per weight, as a
/// caller must: on such a machine (this project's CI runner among them) the cells check that
/// fallback, and a run on an ARM or AVX-512 VNNI CPU checks the fused kernel. Reference and
/// error model as for `qmatmul`, over the two weights one above the other.
pub(super) const QGEMV_FUSED_SHARED_LHS: Op = Op {
    name: "qgemv_fused_shared_lhs",
    call: "QTensor::gemv_fused_shared_lhs(&[&QTensor::quantize(&w1, …)?, &QTensor::quantize(&w2, …)?], &x) (None: QMatMul::forward per weight)",
    dtypes: ACTIVATIONS,
    aux: NONE,
    variants: FORMAT_NAMES,
    knobs: 3,
    inputs: |c, rng| {
        let (m, kk, n) = shapes(c);
        vec![
            data("x", c, c.dtype(), &[m, kk], rng),
            data("w1", c, c.dtype(), &[n, kk], rng),
            data("w2", c, c.dtype(), &[n, kk], rng),
        ]
    },
    candle: |c, t| {
        let (q1, q2) = (quantized(&t[1], c)?, quantized(&t[2], c)?);
        match QTensor::gemv_fused_shared_lhs(&[&q1, &q2], &t[0])? {
            Some(outs) => Tensor::cat(&outs, 1),
            None => Tensor::cat(
                &[
                    QMatMul::from_qtensor(q1)?.forward(&t[0])?,
                    QMatMul::from_qtensor(q2)?.forward(&t[0])?,
                ],
                1,
            ),
        }
    },
    oracle: |c, h| match dequantized(c, &weights(c, h)) {
        Some(w) => oracle::qmatmul(&h[0], &w, variant(c).0.block_size()).into(),
        None => Reference::Unspecified("candle could not quantize the weights".into()),
    },
    code: |c, v| {
        let q = |w: &str| {
            format!(
                "candle_core::quantized::QTensor::quantize(&{w}, candle_core::quantized::GgmlDType::{})?",
                variant(c).1
            )
        };
        format!(
            "{{ let (q1, q2) = ({}, {}); \
             match candle_core::quantized::QTensor::gemv_fused_shared_lhs(&[&q1, &q2], &{x})? {{ \
             Some(outs) => Tensor::cat(&outs, 1)?, \
             None => Tensor::cat(&[candle_core::Module::forward(&candle_core::quantized::QMatMul::from_qtensor(q1)?, &{x})?, \
             candle_core::Module::forward(&candle_core::quantized::QMatMul::from_qtensor(q2)?, &{x})?], 1)? }} }}",
            q(v[1]),
            q(v[2]),
            x = v[0]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::QuantizedActivations,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
