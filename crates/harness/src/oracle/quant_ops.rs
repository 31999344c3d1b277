//! References for candle's quantized tensors beyond the block matmul, and for the tensor
//! constructors:
//! - `QTensor::dequantize`/`dequantize_f16`, `QMatMul::dequantize_f16`: the values the blocks
//!   hold (decoded from the blocks' bytes by `dequantize_q4_0`/`_q8_0`, ggml's definition), or
//!   for the F32/F16/BF16 "formats" the weights rounded once to that dtype, then rounded once
//!   to the output dtype (`dequantized`, `rounded_through`);
//! - `QMatMul::forward` on F32/F16/BF16 weights and `forward_via_f16`: `x · w̃ᵀ` in f64 with
//!   `w̃` as above (`qmatmul` of `coverage_ops`, with a block of 1);
//! - `QTensor::embedding`, `QMatMul::embedding`, `Tensor::embedding`: rows of `w̃` picked by
//!   the ids (`embedding` of `training_ops`);
//! - `Tensor::new`/`from_vec`/`from_slice`/`from_iter`: the identity (`identity`).

use super::sweep_ops::out;
use super::OracleResult;
use crate::host::{round_to, HostTensor};
use candle_core::DType;

/// The input unchanged, in its own dtype: a constructor given a tensor's host values.
pub fn identity(t: &HostTensor) -> OracleResult {
    Ok(out(t.dtype, t.shape.clone(), t.values.clone()))
}

/// `t`'s values rounded once to `via` (the dtype a QTensor of format F16/BF16 stores, or the
/// f16 of `forward_via_f16`), kept in a tensor of dtype `keep` (rounded to it as well, which is
/// exact when `via` is narrower).
pub fn rounded_through(t: &HostTensor, via: DType, keep: DType) -> HostTensor {
    let values = t.values.iter().map(|&v| round_to(via, v)).collect();
    out(keep, t.shape.clone(), values)
}

/// Dequantized block values laid out as `shape`, rounded once to `dtype` (F32 for
/// `dequantize`, exact since a block value is an 8-bit integer times an f16 scale; F16 for
/// `dequantize_f16`).
pub fn dequantized(values: Vec<f64>, shape: &[usize], dtype: DType) -> OracleResult {
    Ok(out(dtype, shape.to_vec(), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_rounding_through_f16() {
        let t = HostTensor::new(DType::F32, &[2], vec![1.0, 1.0 + 2f64.powi(-12)]);
        assert_eq!(identity(&t).unwrap().values, t.values);
        let r = rounded_through(&t, DType::F16, DType::F32);
        assert_eq!((r.values[0], r.values[1], r.dtype), (1.0, 1.0, DType::F32));
        let d = dequantized(vec![0.5, -4.0], &[1, 2], DType::F16).unwrap();
        assert_eq!((d.shape.clone(), d.values), (vec![1, 2], vec![0.5, -4.0]));
    }
}
