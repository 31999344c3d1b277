//! Reference implementations of the ops the op-consistency sweep covers, written from each op's
//! documented meaning (candle's doc comments, and PyTorch's for the candle-nn ops it mirrors).
//! Everything is computed in f64 and rounded once to the output dtype: the answer a perfect
//! kernel would give.

use super::{is_index_dtype, ravel, unravel, OracleResult, Rejection};
use crate::host::{round_to, HostTensor};
use candle_core::DType;

pub(super) fn out(dtype: DType, shape: Vec<usize>, values: Vec<f64>) -> HostTensor {
    let values = values.into_iter().map(|x| round_to(dtype, x)).collect();
    HostTensor {
        dtype,
        shape,
        values,
    }
}

/// `(outer, len, inner)`: element `i` of line `(o, r)` along `dim` sits at `(o * len + i) * inner + r`.
pub fn lines(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

pub(super) fn check_dim(t: &HostTensor, dim: usize) -> Result<(), Rejection> {
    if dim >= t.shape.len() {
        return Err(Rejection::new(
            "dim",
            format!("dim {dim} is out of range for rank {}", t.shape.len()),
            &["dim"],
        ));
    }
    Ok(())
}

/// The "no index" value: the index dtype's maximum. candle's CPU backend and CUDA kernels both
/// treat it as a hole (gather / index_select write 0, scatter / index_add skip it), though no
/// doc comment says so; the oracle follows the code, so the sweep checks that backends agree.
pub fn is_skip_index(dtype: DType, v: f64) -> bool {
    super::is_index_dtype(dtype) && v >= crate::host::int_max(dtype)
}

/// Every index must name a row that exists (`0 <= i < size`) or be the "no index" value.
pub(super) fn check_indexes(ids: &HostTensor, size: usize, dim: usize) -> Result<(), Rejection> {
    if !is_index_dtype(ids.dtype) {
        return Err(Rejection::new(
            "indexes",
            format!(
                "an index must be u8, u32 or i64, not {}",
                ids.dtype.as_str()
            ),
            &["ids", "index", "indexes"],
        ));
    }
    if let Some(&bad) = ids
        .values
        .iter()
        .find(|&&i| !is_skip_index(ids.dtype, i) && (i < 0.0 || i >= size as f64))
    {
        return Err(Rejection::new(
            "indexes",
            format!("index {bad} is out of range for dim {dim} of size {size}"),
            &["index", "out of range", "out of bounds"],
        ));
    }
    Ok(())
}

/// `t.index_select(ids, dim)` with a 1-D index.
pub fn index_select(t: &HostTensor, ids: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    if ids.shape.len() != 1 {
        return Err(Rejection::new(
            "indexes",
            "index_select takes a 1-D index".into(),
            &["index", "shape"],
        ));
    }
    check_indexes(ids, t.shape[dim], dim)?;
    let (outer, len, inner) = lines(&t.shape, dim);
    let n = ids.values.len();
    let mut values = Vec::with_capacity(outer * n * inner);
    for o in 0..outer {
        for &i in &ids.values {
            if is_skip_index(ids.dtype, i) {
                values.extend(std::iter::repeat_n(0.0, inner));
                continue;
            }
            let base = (o * len + i as usize) * inner;
            values.extend_from_slice(&t.values[base..base + inner]);
        }
    }
    let mut shape = t.shape.clone();
    shape[dim] = n;
    Ok(out(t.dtype, shape, values))
}

/// `dst.index_add(ids, src, dim)`: `out[.., ids[j], ..] += src[.., j, ..]`.
pub fn index_add(dst: &HostTensor, ids: &HostTensor, src: &HostTensor, dim: usize) -> OracleResult {
    check_dim(dst, dim)?;
    check_indexes(ids, dst.shape[dim], dim)?;
    if src.dtype != dst.dtype {
        return Err(Rejection::new(
            "source",
            "`source` and `self` dtypes differ".into(),
            &["dtype"],
        ));
    }
    let (outer, len, inner) = lines(&dst.shape, dim);
    let n = ids.values.len();
    if src.shape.len() != dst.shape.len() || src.shape[dim] != n {
        return Err(Rejection::new(
            "source",
            "`source` must match `self` except along dim, where it matches the index".into(),
            &["shape"],
        ));
    }
    let mut acc = dst.values.clone();
    for o in 0..outer {
        for (j, &i) in ids.values.iter().enumerate() {
            if is_skip_index(ids.dtype, i) {
                continue;
            }
            for r in 0..inner {
                acc[(o * len + i as usize) * inner + r] += src.values[(o * n + j) * inner + r];
            }
        }
    }
    Ok(out(dst.dtype, dst.shape.clone(), acc))
}

/// `Tensor::cat(ts, dim)`.
pub fn cat(ts: &[&HostTensor], dim: usize) -> OracleResult {
    let first = ts[0];
    check_dim(first, dim)?;
    let (outer, _, inner) = lines(&first.shape, dim);
    let mut values = Vec::new();
    for o in 0..outer {
        for t in ts {
            let len = t.shape[dim];
            values.extend_from_slice(&t.values[o * len * inner..(o + 1) * len * inner]);
        }
    }
    let mut shape = first.shape.clone();
    shape[dim] = ts.iter().map(|t| t.shape[dim]).sum();
    Ok(out(first.dtype, shape, values))
}

/// `t.arg_sort_last_dim(asc)` as u32, ties kept in input order (a stable sort). Backends may
/// order ties differently; the sweep accepts any order that sorts the row (see `sorts_rows`).
pub fn arg_sort_last_dim(t: &HostTensor, asc: bool) -> OracleResult {
    let n = *t.shape.last().unwrap_or(&1);
    let mut values = Vec::with_capacity(t.values.len());
    for row in t.values.chunks(n.max(1)) {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| {
            let o = row[a].total_cmp(&row[b]);
            if asc {
                o
            } else {
                o.reverse()
            }
        });
        values.extend(idx.into_iter().map(|i| i as f64));
    }
    Ok(out(DType::U32, t.shape.clone(), values))
}

/// Whether `perm` (an arg_sort result) orders every row of `t` as asked.
pub fn sorts_rows(t: &HostTensor, perm: &HostTensor, asc: bool) -> bool {
    let n = *t.shape.last().unwrap_or(&1);
    if perm.shape != t.shape || n == 0 {
        return perm.shape == t.shape;
    }
    t.values
        .chunks(n)
        .zip(perm.values.chunks(n))
        .all(|(row, p)| {
            let mut seen = vec![false; n];
            let valid = p.iter().all(|&i| {
                let i = i as usize;
                i < n && !std::mem::replace(&mut seen[i], true)
            });
            valid
                && p.windows(2).all(|w| {
                    let (a, b) = (row[w[0] as usize], row[w[1] as usize]);
                    if asc {
                        a <= b
                    } else {
                        a >= b
                    }
                })
        })
}

/// `t.to_dtype(dtype)`: floats round to nearest, float to integer truncates toward zero,
/// integer to integer keeps the low bits (C and Rust agree on all three for the values the
/// sweep generates; it never feeds a negative or too-large float to an integer type).
pub fn to_dtype(t: &HostTensor, dtype: DType) -> OracleResult {
    let values = t
        .values
        .iter()
        .map(|&x| match dtype {
            DType::U8 | DType::U32 | DType::I64 => {
                let i = x.trunc() as i64;
                match dtype {
                    DType::U8 => i as u8 as f64,
                    DType::U32 => i as u32 as f64,
                    _ => i as f64,
                }
            }
            _ => x,
        })
        .collect();
    Ok(out(dtype, t.shape.clone(), values))
}

/// `a.matmul(b)` / `a.broadcast_matmul(b)` over `[.., m, k] x [.., k, n]`, batch dims broadcast
/// (a missing or size-1 batch dim repeats).
pub fn batched_matmul(a: &HostTensor, b: &HostTensor) -> OracleResult {
    let (ra, rb) = (a.shape.len(), b.shape.len());
    if ra < 2 || rb < 2 || a.shape[ra - 1] != b.shape[rb - 2] || a.dtype != b.dtype {
        return Err(Rejection::new(
            "rhs",
            format!("{:?} x {:?} cannot be multiplied", a.shape, b.shape),
            &["shape", "dtype"],
        ));
    }
    let (m, k, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    let rank = ra.max(rb);
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(&s[..s.len() - 2]);
        v
    };
    let (ba, bb) = (pad(&a.shape), pad(&b.shape));
    let mut batch = Vec::new();
    for (x, y) in ba.iter().zip(&bb) {
        if x != y && *x != 1 && *y != 1 {
            return Err(Rejection::new(
                "rhs",
                "batch dims do not broadcast".into(),
                &["shape"],
            ));
        }
        batch.push(*x.max(y));
    }
    let nb: usize = batch.iter().product();
    let mut values = Vec::with_capacity(nb * m * n);
    for bi in 0..nb {
        let idx = unravel(bi, &batch);
        let pick = |dims: &[usize]| -> usize {
            let i: Vec<usize> = idx
                .iter()
                .zip(dims)
                .map(|(&i, &d)| if d == 1 { 0 } else { i })
                .collect();
            ravel(&i, dims)
        };
        let (oa, ob) = (pick(&ba) * m * k, pick(&bb) * k * n);
        for i in 0..m {
            for j in 0..n {
                values.push(
                    (0..k)
                        .map(|p| a.values[oa + i * k + p] * b.values[ob + p * n + j])
                        .sum(),
                );
            }
        }
    }
    let mut shape = batch;
    shape.extend([m, n]);
    Ok(out(a.dtype, shape, values))
}

/// Applies `f` to every line along `dim`, writing a line of the same length.
pub(super) fn map_lines(t: &HostTensor, dim: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let (outer, len, inner) = lines(&t.shape, dim);
    let mut values = vec![0.0; t.values.len()];
    for o in 0..outer {
        for r in 0..inner {
            let line: Vec<f64> = (0..len)
                .map(|i| t.values[(o * len + i) * inner + r])
                .collect();
            for (i, y) in f(&line).into_iter().enumerate() {
                values[(o * len + i) * inner + r] = y;
            }
        }
    }
    values
}

/// Reduces every line along `dim` to one value (keepdim).
pub(super) fn reduce_lines(
    t: &HostTensor,
    dim: usize,
    f: impl Fn(&[f64]) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let (outer, len, inner) = lines(&t.shape, dim);
    let mut values = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for r in 0..inner {
            let line: Vec<f64> = (0..len)
                .map(|i| t.values[(o * len + i) * inner + r])
                .collect();
            values.push(f(&line));
        }
    }
    let mut shape = t.shape.clone();
    shape[dim] = 1;
    (shape, values)
}

/// `candle_nn::ops::softmax(t, dim)` (and `softmax_last_dim` for the last dim).
pub fn softmax(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let values = map_lines(t, dim, |l| {
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = l.iter().map(|x| (x - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    });
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// `candle_nn::ops::log_softmax(t, dim)`.
pub fn log_softmax(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let values = map_lines(t, dim, |l| {
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + l.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        l.iter().map(|x| x - lse).collect()
    });
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// `silu(x) = x * sigmoid(x)`.
pub fn silu(t: &HostTensor) -> OracleResult {
    let values = t.values.iter().map(|x| x / (1.0 + (-x).exp())).collect();
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// `sigmoid(x) = 1 / (1 + e^-x)` (candle_nn::ops::sigmoid).
pub fn sigmoid(t: &HostTensor) -> OracleResult {
    let values = t.values.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// `candle_nn::ops::rms_norm(x, alpha, eps)`: `x / sqrt(mean(x^2) + eps) * alpha` over the last dim.
pub fn rms_norm(x: &HostTensor, alpha: &HostTensor, eps: f64) -> OracleResult {
    let d = *x.shape.last().unwrap_or(&0);
    if alpha.shape != [d] {
        return Err(Rejection::new(
            "alpha",
            format!("alpha must have shape [{d}]"),
            &["shape"],
        ));
    }
    let last = x.shape.len() - 1;
    let values = map_lines(x, last, |l| {
        let ms = l.iter().map(|v| v * v).sum::<f64>() / l.len() as f64;
        let r = (ms + eps).sqrt();
        l.iter()
            .zip(&alpha.values)
            .map(|(v, a)| v / r * a)
            .collect()
    });
    Ok(out(x.dtype, x.shape.clone(), values))
}

/// `cond.where_cond(on_true, on_false)`: any non-zero condition picks `on_true`.
pub fn where_cond(cond: &HostTensor, t: &HostTensor, f: &HostTensor) -> OracleResult {
    if cond.shape != t.shape || t.shape != f.shape || t.dtype != f.dtype {
        return Err(Rejection::new(
            "on_true",
            "where_cond operands must share a shape".into(),
            &["shape"],
        ));
    }
    let values = cond
        .values
        .iter()
        .zip(t.values.iter().zip(&f.values))
        .map(|(&c, (&a, &b))| if c != 0.0 { a } else { b })
        .collect();
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// `a.cmp(b, op)` as u8 0/1; `op` is `eq`, `ne`, `lt`, `le`, `gt` or `ge`.
pub fn cmp(a: &HostTensor, b: &HostTensor, op: &str) -> OracleResult {
    if a.shape != b.shape || a.dtype != b.dtype {
        return Err(Rejection::new(
            "rhs",
            "cmp operands must share shape and dtype".into(),
            &["shape"],
        ));
    }
    let f = |x: f64, y: f64| match op {
        "eq" => x == y,
        "ne" => x != y,
        "lt" => x < y,
        "le" => x <= y,
        "gt" => x > y,
        _ => x >= y,
    };
    let values = a
        .values
        .iter()
        .zip(&b.values)
        .map(|(&x, &y)| f(x, y) as u8 as f64)
        .collect();
    Ok(out(DType::U8, a.shape.clone(), values))
}

/// `t.sum_keepdim(dim)`.
pub fn sum_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| l.iter().sum());
    Ok(out(t.dtype, shape, values))
}

/// The largest (`f64::max`) or smallest (`f64::min`) of a line, NaN where the line holds one:
/// PyTorch's convention (`f64::max` alone would skip the NaN).
pub fn extreme(l: &[f64], pick: fn(f64, f64) -> f64) -> f64 {
    if l.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    l.iter().cloned().reduce(pick).unwrap_or(f64::NAN)
}

/// The first position of `m` in `l` (of a NaN when `m` is NaN, as PyTorch's argmax reports).
pub fn position_of(l: &[f64], m: f64) -> usize {
    l.iter()
        .position(|&x| x == m || m.is_nan() && x.is_nan())
        .unwrap_or(0)
}

/// `t.max_keepdim(dim)`.
pub fn max_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| extreme(l, f64::max));
    Ok(out(t.dtype, shape, values))
}

/// `t.argmax_keepdim(dim)` as u32: the first maximum. Backends may return any maximal position
/// (see `is_argmax`).
pub fn argmax_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| {
        let m = extreme(l, f64::max);
        position_of(l, m) as f64
    });
    Ok(out(DType::U32, shape, values))
}

/// Whether `got` names a maximal element of every line of `t` along `dim`.
pub fn is_argmax(t: &HostTensor, got: &HostTensor, dim: usize) -> bool {
    let (outer, len, inner) = lines(&t.shape, dim);
    if got.values.len() != outer * inner {
        return false;
    }
    (0..outer).all(|o| {
        (0..inner).all(|r| {
            let line: Vec<f64> = (0..len)
                .map(|i| t.values[(o * len + i) * inner + r])
                .collect();
            let m = extreme(&line, f64::max);
            let i = got.values[o * inner + r] as usize;
            i < len && (line[i] == m || m.is_nan() && line[i].is_nan())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(dtype: DType, shape: &[usize], v: &[f64]) -> HostTensor {
        HostTensor::new(dtype, shape, v.to_vec())
    }

    #[test]
    fn worked_examples() {
        let t = h(DType::F32, &[2, 3], &[1., 5., 3., 4., 2., 6.]);
        let ids = h(DType::U32, &[2], &[2., 0.]);
        assert_eq!(
            index_select(&t, &ids, 1).unwrap().values,
            vec![3., 1., 6., 4.]
        );
        let src = h(DType::F32, &[2, 2], &[1., 1., 1., 1.]);
        assert_eq!(
            index_add(&t, &ids, &src, 1).unwrap().values,
            vec![2., 5., 4., 5., 2., 7.]
        );
        assert_eq!(cat(&[&t, &t], 0).unwrap().shape, vec![4, 3]);
        assert_eq!(
            cat(&[&t, &src], 1).unwrap().values,
            vec![1., 5., 3., 1., 1., 4., 2., 6., 1., 1.]
        );
        let perm = arg_sort_last_dim(&t, true).unwrap();
        assert_eq!(perm.values, vec![0., 2., 1., 1., 0., 2.]);
        assert!(sorts_rows(&t, &perm, true));
        assert!(!sorts_rows(&t, &perm, false));
        assert_eq!(sum_keepdim(&t, 0).unwrap().values, vec![5., 7., 9.]);
        assert_eq!(max_keepdim(&t, 1).unwrap().values, vec![5., 6.]);
        assert_eq!(argmax_keepdim(&t, 1).unwrap().values, vec![1., 2.]);
        let s = softmax(&h(DType::F64, &[2], &[0., 0.]), 0).unwrap();
        assert_eq!(s.values, vec![0.5, 0.5]);
        let a = h(DType::F32, &[2, 2, 2], &[1., 0., 0., 1., 2., 0., 0., 2.]);
        let b = h(DType::F32, &[2, 1], &[3., 4.]);
        assert_eq!(batched_matmul(&a, &b).unwrap().values, vec![3., 4., 6., 8.]);
        assert_eq!(
            to_dtype(&h(DType::F32, &[2], &[2.7, 300.0]), DType::U8)
                .unwrap()
                .values,
            vec![2., 44.]
        );
        let c = h(DType::U8, &[2], &[0., 3.]);
        let w = where_cond(
            &c,
            &h(DType::F32, &[2], &[1., 2.]),
            &h(DType::F32, &[2], &[7., 8.]),
        );
        assert_eq!(w.unwrap().values, vec![7., 2.]);
    }

    #[test]
    fn out_of_range_indexes_are_rejected() {
        let t = h(DType::F32, &[2], &[1., 2.]);
        assert!(index_select(&t, &h(DType::U32, &[1], &[2.]), 0).is_err());
        assert!(index_select(&t, &h(DType::I64, &[1], &[-1.]), 0).is_err());
        let hole = index_select(&t, &h(DType::U8, &[2], &[255., 1.]), 0).unwrap();
        assert_eq!(hole.values, vec![0., 2.]);
    }
}
