//! Plain-Rust reference implementations of the ops the cases use. No candle code runs here: the
//! oracle works on `HostTensor`s, so a bug shared by candle's CPU and device backends (or a bug
//! of the CPU backend alone) is still caught.
//!
//! Each op also checks its call against the op's documented contract and, when the call breaks
//! it, answers with a `Rejection` that names the offending argument. That is how a verdict can
//! say "caller error" from evidence rather than from a guess.

use crate::host::{round_to, HostTensor};
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// The oracle's answer for a call that breaks the op's contract.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// The offending argument, as the method's signature names it (`indexes`, `source`, ...).
    pub argument: String,
    /// What is wrong with it, in a sentence.
    pub reason: String,
    /// Words an error message would use to point at this argument (to judge whether a backend's
    /// message names the right tensor).
    pub keywords: Vec<String>,
}

impl Rejection {
    fn new(argument: &str, reason: String, keywords: &[&str]) -> Self {
        Self {
            argument: argument.to_string(),
            reason,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        }
    }
}

pub type OracleResult = Result<HostTensor, Rejection>;

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The multi-index of row-major position `pos`.
fn unravel(mut pos: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = pos % shape[d];
        pos /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(strides(shape)).map(|(i, s)| i * s).sum()
}

pub fn is_index_dtype(d: DType) -> bool {
    #[cfg(feature = "i16-i32")]
    if matches!(d, DType::I16 | DType::I32) {
        return true;
    }
    matches!(d, DType::U8 | DType::U32 | DType::I64)
}

/// `t.unsqueeze(dim)`.
pub fn unsqueeze(t: &HostTensor, dim: usize) -> OracleResult {
    if dim > t.shape.len() {
        return Err(Rejection::new(
            "dim",
            format!("dim {dim} is out of range for rank {}", t.shape.len()),
            &["dim"],
        ));
    }
    let mut shape = t.shape.clone();
    shape.insert(dim, 1);
    Ok(HostTensor {
        dtype: t.dtype,
        shape,
        values: t.values.clone(),
    })
}

/// `t.broadcast_as(shape)`: size-1 dims stretch, new dims may be added on the left.
pub fn broadcast_as(t: &HostTensor, shape: &[usize]) -> OracleResult {
    let reject = || {
        Rejection::new(
            "shape",
            format!("{:?} cannot be broadcast to {shape:?}", t.shape),
            &["broadcast", "shape"],
        )
    };
    if shape.len() < t.shape.len() {
        return Err(reject());
    }
    let lead = shape.len() - t.shape.len();
    for (d, &n) in t.shape.iter().enumerate() {
        if n != 1 && n != shape[lead + d] {
            return Err(reject());
        }
    }
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|pos| {
            let out = unravel(pos, shape);
            let src: Vec<usize> = t
                .shape
                .iter()
                .enumerate()
                .map(|(d, &len)| if len == 1 { 0 } else { out[lead + d] })
                .collect();
            t.values[ravel(&src, &t.shape)]
        })
        .collect();
    Ok(HostTensor {
        dtype: t.dtype,
        shape: shape.to_vec(),
        values,
    })
}

/// `t.contiguous()`: same dtype, shape and values by definition.
pub fn contiguous(t: &HostTensor) -> OracleResult {
    Ok(t.clone())
}

/// `t.narrow(dim, start, len)`.
pub fn narrow(t: &HostTensor, dim: usize, start: usize, len: usize) -> OracleResult {
    if dim >= t.shape.len() || start + len > t.shape[dim] {
        return Err(Rejection::new(
            "start/len",
            format!(
                "narrow({dim}, {start}, {len}) is out of range for shape {:?}",
                t.shape
            ),
            &["narrow", "out of range", "out of bounds"],
        ));
    }
    let mut shape = t.shape.clone();
    shape[dim] = len;
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|pos| {
            let mut idx = unravel(pos, &shape);
            idx[dim] += start;
            t.values[ravel(&idx, &t.shape)]
        })
        .collect();
    Ok(HostTensor {
        dtype: t.dtype,
        shape,
        values,
    })
}

/// `a + b` for tensors of one shape and dtype.
pub fn add(a: &HostTensor, b: &HostTensor) -> OracleResult {
    if a.shape != b.shape || a.dtype != b.dtype {
        return Err(Rejection::new(
            "rhs",
            format!(
                "{:?} {:?} + {:?} {:?} do not match",
                a.dtype, a.shape, b.dtype, b.shape
            ),
            &["shape", "dtype"],
        ));
    }
    let values = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| round_to(a.dtype, x + y))
        .collect();
    Ok(HostTensor {
        dtype: a.dtype,
        shape: a.shape.clone(),
        values,
    })
}

/// `a.matmul(b)` for 2-D tensors.
pub fn matmul(a: &HostTensor, b: &HostTensor) -> OracleResult {
    let ([m, k], [k2, n]) = (a.shape.as_slice(), b.shape.as_slice()) else {
        return Err(Rejection::new(
            "rhs",
            "this oracle multiplies 2-D tensors only".into(),
            &["shape"],
        ));
    };
    if k != k2 {
        return Err(Rejection::new(
            "rhs",
            format!("inner dims {k} and {k2} differ"),
            &["shape"],
        ));
    }
    let (m, k, n) = (*m, *k, *n);
    let mut values = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            values[i * n + j] = round_to(
                a.dtype,
                (0..k)
                    .map(|p| a.values[i * k + p] * b.values[p * n + j])
                    .sum(),
            );
        }
    }
    Ok(HostTensor {
        dtype: a.dtype,
        shape: vec![m, n],
        values,
    })
}

/// `t.index_select(ids, 0)` with a 1-D index.
pub fn index_select0(t: &HostTensor, ids: &HostTensor) -> OracleResult {
    if !is_index_dtype(ids.dtype) || ids.shape.len() != 1 {
        return Err(Rejection::new(
            "indexes",
            "a 1-D u8/u32/i64 index is required".into(),
            &["ids", "index"],
        ));
    }
    let row: usize = t.shape[1..].iter().product();
    let mut values = Vec::with_capacity(ids.values.len() * row);
    for &i in &ids.values {
        let i = i as usize;
        if i >= t.shape[0] {
            return Err(Rejection::new(
                "indexes",
                format!("index {i} out of range"),
                &["index", "out of range"],
            ));
        }
        values.extend_from_slice(&t.values[i * row..(i + 1) * row]);
    }
    let mut shape = t.shape.clone();
    shape[0] = ids.values.len();
    Ok(HostTensor {
        dtype: t.dtype,
        shape,
        values,
    })
}

/// `t.t()` (swap the last two dims) of a 2-D tensor, materialised.
pub fn transpose2(t: &HostTensor) -> OracleResult {
    if t.shape.len() != 2 {
        return Err(Rejection::new("self", "2-D only".into(), &["shape"]));
    }
    Ok(swap_last_two(t))
}

/// The last two dims of a tensor of rank ≥ 2 swapped, materialised row-major.
pub fn swap_last_two(h: &HostTensor) -> HostTensor {
    let r = h.shape.len();
    let (a, b) = (h.shape[r - 2], h.shape[r - 1]);
    let batch = h.values.len() / (a * b).max(1);
    let mut values = Vec::with_capacity(h.values.len());
    for n in 0..batch {
        for j in 0..b {
            for i in 0..a {
                values.push(h.values[n * a * b + i * b + j]);
            }
        }
    }
    let mut shape = h.shape.clone();
    shape.swap(r - 2, r - 1);
    HostTensor {
        dtype: h.dtype,
        shape,
        values,
    }
}

/// `t.gather(indexes, dim)`: `out[p] = t[p with p[dim] = indexes[p]]`, out shaped like indexes.
pub fn gather(t: &HostTensor, indexes: &HostTensor, dim: usize) -> OracleResult {
    if !is_index_dtype(indexes.dtype) || indexes.shape.len() != t.shape.len() {
        return Err(Rejection::new(
            "indexes",
            "an integer index of the same rank is required".into(),
            &["ids", "index"],
        ));
    }
    check_indexes(indexes, t.shape[dim], dim)?;
    let values = (0..indexes.elem_count())
        .map(|pos| {
            let mut idx = unravel(pos, &indexes.shape);
            if is_skip_index(indexes.dtype, indexes.values[pos]) {
                return 0.0;
            }
            idx[dim] = indexes.values[pos] as usize;
            t.values[ravel(&idx, &t.shape)]
        })
        .collect();
    Ok(HostTensor {
        dtype: t.dtype,
        shape: indexes.shape.clone(),
        values,
    })
}

/// `dst.scatter(indexes, source, dim)`: like scatter_add but overwriting (indexes assumed unique).
pub fn scatter(
    dst: &HostTensor,
    indexes: &HostTensor,
    source: &HostTensor,
    dim: usize,
) -> OracleResult {
    check_indexes(indexes, dst.shape[dim], dim)?;
    let mut out = dst.values.clone();
    for (pos, &v) in source.values.iter().enumerate() {
        let mut idx = unravel(pos, &source.shape);
        if is_skip_index(indexes.dtype, indexes.values[pos]) {
            continue;
        }
        idx[dim] = indexes.values[pos] as usize;
        out[ravel(&idx, &dst.shape)] = v;
    }
    Ok(HostTensor {
        dtype: dst.dtype,
        shape: dst.shape.clone(),
        values: out,
    })
}

/// `dst.scatter_add(indexes, source, dim)` as candle documents it: for every position `p` of
/// `source`, `out[p with p[dim] = indexes[p]] += source[p]`.
///
/// Contract (checked in the order of the signature `scatter_add(&self, indexes, source, dim)`):
/// `indexes` is an integer tensor (u8/u32/i64) of the same shape as `source`; `source` has the
/// dtype of `self` and the same rank, with equal sizes on every dim except `dim`; every index is
/// below `self.dims()[dim]`.
pub fn scatter_add(
    dst: &HostTensor,
    indexes: &HostTensor,
    source: &HostTensor,
    dim: usize,
) -> OracleResult {
    let name = |d: DType| d.as_str().to_string();
    if !is_index_dtype(indexes.dtype) {
        let swapped = is_index_dtype(source.dtype) && indexes.dtype == dst.dtype;
        let hint = if swapped {
            format!(
                "; the call passes a {} tensor where the index belongs and the {} index where the source belongs: the arguments are swapped (the signature is `scatter_add(&self, indexes, source, dim)`)",
                name(indexes.dtype),
                name(source.dtype)
            )
        } else {
            String::new()
        };
        return Err(Rejection::new(
            "indexes",
            format!(
                "`indexes` (1st argument) has dtype {}, but an index must be u8, u32 or i64{hint}",
                name(indexes.dtype)
            ),
            &["ids", "index", "indexes", "indices"],
        ));
    }
    if source.dtype != dst.dtype {
        return Err(Rejection::new(
            "source",
            format!(
                "`source` (2nd argument) has dtype {} but `self` has dtype {}",
                name(source.dtype),
                name(dst.dtype)
            ),
            &["source", "src", "dtype mismatch"],
        ));
    }
    if dim >= dst.shape.len() {
        return Err(Rejection::new(
            "dim",
            format!("dim {dim} is out of range for rank {}", dst.shape.len()),
            &["dim"],
        ));
    }
    let shapes_fit = source.shape.len() == dst.shape.len()
        && dst
            .shape
            .iter()
            .zip(&source.shape)
            .enumerate()
            .all(|(d, (a, b))| d == dim || a == b);
    if !shapes_fit {
        return Err(Rejection::new(
            "source",
            format!(
                "`source` shape {:?} does not fit `self` shape {:?} outside dim {dim}",
                source.shape, dst.shape
            ),
            &["source", "src", "shape"],
        ));
    }
    if indexes.shape != source.shape {
        return Err(Rejection::new(
            "indexes",
            format!(
                "`indexes` shape {:?} differs from `source` shape {:?}",
                indexes.shape, source.shape
            ),
            &["ids", "index", "indexes", "shape"],
        ));
    }
    let mut out = dst.values.clone();
    for (pos, &v) in source.values.iter().enumerate() {
        let mut idx = unravel(pos, &source.shape);
        let target = indexes.values[pos];
        if is_skip_index(indexes.dtype, target) {
            continue;
        }
        if target < 0.0 || target as usize >= dst.shape[dim] {
            return Err(Rejection::new(
                "indexes",
                format!(
                    "index {target} at position {idx:?} is out of range for dim {dim} of size {}",
                    dst.shape[dim]
                ),
                &["ids", "index", "out of range", "out of bounds"],
            ));
        }
        idx[dim] = target as usize;
        out[ravel(&idx, &dst.shape)] += v;
    }
    // Accumulate exactly, round once: the result a perfect kernel would return.
    let values = out.into_iter().map(|x| round_to(dst.dtype, x)).collect();
    Ok(HostTensor {
        dtype: dst.dtype,
        shape: dst.shape.clone(),
        values,
    })
}

// The wider op set the op-consistency sweep covers lives in its own file.
mod binary_ops;
mod sweep_ops;
mod training_ops;
pub use binary_ops::*;
mod conv_ops;
mod unary_ops;
pub use conv_ops::*;
mod pool_ops;
pub use pool_ops::*;
mod shape_ops;
pub use shape_ops::*;
mod nnops_ops;
pub use nnops_ops::*;
mod coverage_ops;
pub use coverage_ops::*;
mod quant_ops;
pub use quant_ops::*;
mod nnmod_ops;
pub use nnmod_ops::*;
pub use sweep_ops::*;
pub use training_ops::*;
pub use unary_ops::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn h(dtype: DType, shape: &[usize], v: &[f64]) -> HostTensor {
        HostTensor::new(dtype, shape, v.to_vec())
    }

    #[test]
    fn scatter_add_follows_the_definition() {
        // Worked by hand: column c sends its two ones to rows ids[0][c] and ids[1][c].
        let dst = HostTensor::zeros(DType::F32, &[3, 5]);
        let src = HostTensor::from_fn(DType::F32, &[2, 5], |_| 1.0);
        let ids = h(
            DType::I64,
            &[2, 5],
            &[0., 1., 2., 0., 0., 2., 0., 0., 1., 2.],
        );
        let out = scatter_add(&dst, &ids, &src, 0).unwrap();
        assert_eq!(
            out.values,
            vec![1., 1., 1., 1., 1., 0., 1., 0., 1., 0., 1., 0., 1., 0., 1.]
        );
    }

    #[test]
    fn swapped_arguments_are_named() {
        let dst = HostTensor::zeros(DType::F32, &[2, 2]);
        let src = HostTensor::zeros(DType::F32, &[2, 2]);
        let ids = HostTensor::zeros(DType::U32, &[2, 2]);
        let r = scatter_add(&dst, &src, &ids, 0).unwrap_err();
        assert_eq!(r.argument, "indexes");
        assert!(r.reason.contains("swapped"), "{}", r.reason);
    }

    #[test]
    fn canary_ops() {
        let a = HostTensor::from_fn(DType::F32, &[2, 3], |i| i as f64);
        let b = HostTensor::from_fn(DType::F32, &[3, 2], |i| i as f64);
        assert_eq!(matmul(&a, &b).unwrap().values, vec![10., 13., 28., 40.]);
        assert_eq!(transpose2(&a).unwrap().values, vec![0., 3., 1., 4., 2., 5.]);
        let ids = h(DType::U32, &[2], &[1., 0.]);
        assert_eq!(
            index_select0(&a, &ids).unwrap().values,
            vec![3., 4., 5., 0., 1., 2.]
        );
        assert_eq!(add(&a, &a).unwrap().values, vec![0., 2., 4., 6., 8., 10.]);
    }

    #[test]
    fn broadcast_and_narrow() {
        let t = h(DType::U32, &[3], &[7., 8., 9.]);
        let b = broadcast_as(&unsqueeze(&t, 1).unwrap(), &[3, 2]).unwrap();
        assert_eq!(b.values, vec![7., 7., 8., 8., 9., 9.]);
        assert!(broadcast_as(&t, &[2, 2]).is_err());
        let n = narrow(&b, 0, 1, 2).unwrap();
        assert_eq!(
            (n.shape.clone(), n.values.clone()),
            (vec![2, 2], vec![8., 8., 9., 9.])
        );
    }
}
