//! Reference for candle's quantized matmul (`QMatMul::forward`): `y = x · w̃ᵀ` in f64, where
//! `w̃` are the weights as their quantized blocks hold them, rounded once to the dtype of `x`.
//!
//! The dequantization of the two simple ggml block formats is written here from ggml's
//! definition (`dequantize_row_q4_0`/`_q8_0` of ggml.c), reading the blocks' bytes:
//! - Q4_0, 18 bytes per 32 values: an f16 scale `d` (little-endian), then 16 bytes whose low
//!   nibbles are values 0..16 and high nibbles values 16..32, each `(nibble − 8)·d`;
//! - Q8_0, 34 bytes per 32 values: an f16 scale `d`, then 32 `i8` values, each `q·d`.
//!
//! The other formats (Q4_1 … Q8_K) are dequantized by the caller (the sweep uses candle's own
//! `QTensor::dequantize` for them, so those cells check the matmul path, not the
//! dequantization).

use super::sweep_ops::out;
use super::{OracleResult, Rejection};
use crate::host::HostTensor;
use half::f16;

/// The values of Q4_0 blocks (`bytes` holds whole 18-byte blocks), in order.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f64> {
    let mut v = Vec::with_capacity(bytes.len() / 18 * 32);
    for b in bytes.chunks_exact(18) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f64();
        let qs = &b[2..];
        let lo = qs.iter().map(|q| ((q & 0x0F) as f64 - 8.0) * d);
        let hi = qs.iter().map(|q| ((q >> 4) as f64 - 8.0) * d);
        v.extend(lo.chain(hi));
    }
    v
}

/// The values of Q8_0 blocks (`bytes` holds whole 34-byte blocks), in order.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f64> {
    let mut v = Vec::with_capacity(bytes.len() / 34 * 32);
    for b in bytes.chunks_exact(34) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f64();
        v.extend(b[2..].iter().map(|&q| q as i8 as f64 * d));
    }
    v
}

/// `x · w̃ᵀ` for `x` of shape `[.., k]` and dequantized weights `w̃` of shape `[n, k]`
/// (the layout `QMatMul` keeps, out features first), output `[.., n]` in `x`'s dtype. A `k`
/// that is not a multiple of the format's `block` cannot be quantized: rejected (the
/// weights' values are not read then).
pub fn qmatmul(x: &HostTensor, w: &HostTensor, block: usize) -> OracleResult {
    let (rx, rw) = (x.shape.len(), w.shape.len());
    if rw != 2 || rx < 2 || x.shape[rx - 1] != w.shape[1] {
        return Err(Rejection::new(
            "xs",
            format!("{:?} cannot multiply weights {:?}", x.shape, w.shape),
            &["shape", "incompatible"],
        ));
    }
    let (n, k) = (w.shape[0], w.shape[1]);
    if k % block != 0 {
        return Err(Rejection::new(
            "src",
            format!("the last dim {k} is not a multiple of the block size {block}"),
            &["block size", "divisible"],
        ));
    }
    let m = x.values.len() / k;
    let mut values = Vec::with_capacity(m * n);
    for r in 0..m {
        let row = &x.values[r * k..(r + 1) * k];
        for j in 0..n {
            let col = &w.values[j * k..(j + 1) * k];
            values.push(row.iter().zip(col).map(|(a, b)| a * b).sum());
        }
    }
    let mut shape = x.shape.clone();
    shape[rx - 1] = n;
    Ok(out(x.dtype, shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn q4_0_and_q8_0_blocks_decode_as_ggml_defines() {
        // d = 0.5 (f16 0x3800): nibble pairs (low, high) = (0, 15), (9, 7).
        let mut q4 = vec![0x00, 0x38, 0xF0, 0x79];
        q4.extend([0x88; 14]);
        let v = dequantize_q4_0(&q4);
        assert_eq!(
            (v[0], v[1], v[16], v[17], v[2]),
            (-4.0, 0.5, 3.5, -0.5, 0.0)
        );
        let mut q8 = vec![0x00, 0x40, 0xFF, 0x7F]; // d = 2
        q8.extend([0; 30]);
        let v = dequantize_q8_0(&q8);
        assert_eq!((v[0], v[1], v[2], v.len()), (-2.0, 254.0, 0.0, 32));
    }

    #[test]
    fn qmatmul_multiplies_by_the_transposed_weights_and_refuses_ragged_k() {
        let x = HostTensor::new(DType::F32, &[1, 2], vec![1.0, 2.0]);
        let w = HostTensor::new(DType::F32, &[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(qmatmul(&x, &w, 2).unwrap().values, vec![1.0, 2.0, 3.0]);
        assert!(qmatmul(&x, &w, 32).is_err());
    }
}
