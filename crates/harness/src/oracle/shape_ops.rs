//! Reference implementations of the shape and data-moving ops, the constructors and the in-place
//! setters the sweep's `shape` family covers. Each output element is one input element (or a
//! constant) moved to a new place, so every function here is an index map; the values are only
//! rounded to the dtype. Where candle's doc comment leaves a rule open, PyTorch's is taken and
//! said so.

use super::sweep_ops::{check_dim, out};
use super::{ravel, unravel, OracleResult, Rejection};
use crate::host::HostTensor;
use candle_core::DType;

/// The tensor of `shape` whose element at multi-index `i` is `t`'s element `src(i)` (or 0 where
/// `src` gives `None`).
fn map_index(
    t: &HostTensor,
    shape: Vec<usize>,
    src: impl Fn(&[usize]) -> Option<Vec<usize>>,
) -> HostTensor {
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|pos| match src(&unravel(pos, &shape)) {
            Some(i) => t.values[ravel(&i, &t.shape)],
            None => 0.0,
        })
        .collect();
    out(t.dtype, shape, values)
}

/// `t.pad_with_zeros(dim, left, right)` (`same == false`) or `t.pad_with_same(dim, left, right)`
/// (the edge slice repeated, PyTorch's `replicate` mode, which refuses an empty tensor).
pub fn pad(t: &HostTensor, dim: usize, left: usize, right: usize, same: bool) -> OracleResult {
    check_dim(t, dim)?;
    let n = t.shape[dim];
    if same && (left + right) > 0 && t.values.is_empty() {
        return Err(Rejection::new(
            "self",
            "replicate padding has no edge to repeat in an empty tensor".into(),
            &["empty"],
        ));
    }
    let mut shape = t.shape.clone();
    shape[dim] = n + left + right;
    Ok(map_index(t, shape, |i| {
        let mut i = i.to_vec();
        let at = i[dim] as isize - left as isize;
        if same {
            i[dim] = at.clamp(0, n as isize - 1) as usize;
        } else if at < 0 || at >= n as isize {
            return None;
        } else {
            i[dim] = at as usize;
        }
        Some(i)
    }))
}

/// `t.roll(shift, dim)`: `out[i] = t[(i - shift) mod n]` along `dim`. An empty dim rolls to
/// itself (PyTorch returns the empty tensor).
pub fn roll(t: &HostTensor, shift: i64, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let n = t.shape[dim] as i64;
    Ok(map_index(t, t.shape.clone(), |i| {
        let mut i = i.to_vec();
        i[dim] = (i[dim] as i64 - shift).rem_euclid(n) as usize;
        Some(i)
    }))
}

/// `t.flip(dims)`: each listed dim reversed.
pub fn flip(t: &HostTensor, dims: &[usize]) -> OracleResult {
    for &d in dims {
        check_dim(t, d)?;
    }
    Ok(map_index(t, t.shape.clone(), |i| {
        let mut i = i.to_vec();
        for &d in dims {
            i[d] = t.shape[d] - 1 - i[d];
        }
        Some(i)
    }))
}

/// `t.repeat(reps)`: PyTorch's `repeat` (`t` gains leading dims of 1 when `reps` is longer).
pub fn repeat(t: &HostTensor, reps: &[usize]) -> OracleResult {
    if reps.len() < t.shape.len() {
        return Err(Rejection::new(
            "shape",
            "repeat needs a count for every dim".into(),
            &["dims", "shape"],
        ));
    }
    let lead = reps.len() - t.shape.len();
    let src_shape: Vec<usize> = std::iter::repeat_n(1, lead)
        .chain(t.shape.iter().copied())
        .collect();
    let shape: Vec<usize> = src_shape.iter().zip(reps).map(|(s, r)| s * r).collect();
    let src = HostTensor {
        shape: src_shape.clone(),
        ..t.clone()
    };
    Ok(map_index(&src, shape, |i| {
        Some(i.iter().zip(&src_shape).map(|(i, n)| i % n).collect())
    }))
}

/// `t.permute(perm)`: output dim `d` is input dim `perm[d]`.
pub fn permute(t: &HostTensor, perm: &[usize]) -> OracleResult {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..t.shape.len()).collect::<Vec<_>>() {
        return Err(Rejection::new(
            "dims",
            format!(
                "{perm:?} is not a permutation of the dims of rank {}",
                t.shape.len()
            ),
            &["dims", "permute"],
        ));
    }
    let shape = perm.iter().map(|&p| t.shape[p]).collect();
    Ok(map_index(t, shape, |i| {
        let mut src = vec![0; perm.len()];
        for (d, &p) in perm.iter().enumerate() {
            src[p] = i[d];
        }
        Some(src)
    }))
}

/// `t.transpose(a, b)`: the permutation that swaps two dims.
pub fn transpose(t: &HostTensor, a: usize, b: usize) -> OracleResult {
    check_dim(t, a)?;
    check_dim(t, b)?;
    let mut perm: Vec<usize> = (0..t.shape.len()).collect();
    perm.swap(a, b);
    permute(t, &perm)
}

/// `t.reshape(shape)` and the flattens: the row-major values kept, the shape replaced.
pub fn reshape(t: &HostTensor, shape: &[usize]) -> OracleResult {
    if shape.iter().product::<usize>() != t.values.len() {
        return Err(Rejection::new(
            "shape",
            format!("{:?} cannot be viewed as {shape:?}", t.shape),
            &["shape", "reshape"],
        ));
    }
    Ok(out(t.dtype, shape.to_vec(), t.values.clone()))
}

/// `Tensor::stack(ts, dim)`: each input gains a dim of 1 at `dim`, then they are concatenated.
pub fn stack(ts: &[&HostTensor], dim: usize) -> OracleResult {
    let first = ts[0];
    if dim > first.shape.len() || ts.iter().any(|t| t.shape != first.shape) {
        return Err(Rejection::new(
            "args",
            "stack takes tensors of one shape and a dim up to their rank".into(),
            &["shape", "dim"],
        ));
    }
    let mut shape = first.shape.clone();
    shape.insert(dim, ts.len());
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|pos| {
            let mut i = unravel(pos, &shape);
            let which = i.remove(dim);
            ts[which].values[ravel(&i, &first.shape)]
        })
        .collect();
    Ok(out(first.dtype, shape, values))
}

/// The sizes `chunk(chunks)` splits a dim of `n` into: numpy's `array_split` rule (the first
/// `n mod chunks` pieces one longer), with no empty piece when `n < chunks`. candle's doc says
/// only that fewer pieces may come back; PyTorch's `chunk` takes `ceil(n / chunks)` per piece,
/// so the two differ (4 in 3: `[2, 1, 1]` here, `[2, 2]` in PyTorch). The sweep checks the
/// rule candle's code follows, which its doc allows.
pub fn chunk_sizes(n: usize, chunks: usize) -> Vec<usize> {
    if n < chunks {
        return vec![1; n];
    }
    (0..chunks)
        .map(|i| n / chunks + usize::from(i < n % chunks))
        .collect()
}

/// `t.unfold(dim, size, step)`: every window of `size` along `dim`, `step` apart, as a new last
/// dim (PyTorch's `unfold`).
pub fn unfold(t: &HostTensor, dim: usize, size: usize, step: usize) -> OracleResult {
    check_dim(t, dim)?;
    let n = t.shape[dim];
    if size > n || step == 0 {
        return Err(Rejection::new(
            "size",
            format!("a window of {size} does not fit a dim of {n}"),
            &["size", "maximum"],
        ));
    }
    let mut shape = t.shape.clone();
    shape[dim] = (n - size) / step + 1;
    shape.push(size);
    Ok(map_index(t, shape, |i| {
        let mut i = i.to_vec();
        let within = i.pop().unwrap();
        i[dim] = i[dim] * step + within;
        Some(i)
    }))
}

/// `dst` with `src` written over the block starting at `offsets` (slice_assign, slice_scatter,
/// slice_set): `src` must fit inside `dst` there.
pub fn place(dst: &HostTensor, src: &HostTensor, offsets: &[usize]) -> OracleResult {
    let fits = src.shape.len() == dst.shape.len()
        && src.dtype == dst.dtype
        && (0..dst.shape.len()).all(|d| offsets[d] + src.shape[d] <= dst.shape[d]);
    if !fits {
        return Err(Rejection::new(
            "src",
            format!(
                "{:?} at {offsets:?} does not fit in {:?}",
                src.shape, dst.shape
            ),
            &["shape", "range", "mismatch"],
        ));
    }
    let mut values = dst.values.clone();
    for (pos, &v) in src.values.iter().enumerate() {
        let i: Vec<usize> = unravel(pos, &src.shape)
            .iter()
            .zip(offsets)
            .map(|(i, o)| i + o)
            .collect();
        values[ravel(&i, &dst.shape)] = v;
    }
    Ok(out(dst.dtype, dst.shape.clone(), values))
}

/// `t.get_on_dim(dim, index)` (and `t.get(index)` for dim 0): the slice at `index`, `dim` removed.
pub fn get_on_dim(t: &HostTensor, dim: usize, index: usize) -> OracleResult {
    check_dim(t, dim)?;
    if index >= t.shape[dim] {
        return Err(Rejection::new(
            "index",
            format!(
                "index {index} is out of range for dim {dim} of size {}",
                t.shape[dim]
            ),
            &["narrow", "out of range", "dim_len"],
        ));
    }
    let mut shape = t.shape.clone();
    shape.remove(dim);
    Ok(map_index(t, shape, |i| {
        let mut i = i.to_vec();
        i.insert(dim, index);
        Some(i)
    }))
}

/// A tensor of `shape` holding `value` everywhere (ones, zeros, full, the setters' result).
pub fn full(dtype: DType, shape: &[usize], value: f64) -> HostTensor {
    out(dtype, shape.to_vec(), vec![value; shape.iter().product()])
}

/// `n × n` matrices of 0/1: `eye` (i == j), `tril2` (j <= i), `triu2` (j >= i).
pub fn square(dtype: DType, n: usize, keep: impl Fn(usize, usize) -> bool) -> HostTensor {
    let values = (0..n * n)
        .map(|p| f64::from(u8::from(keep(p / n, p % n))))
        .collect();
    out(dtype, vec![n, n], values)
}

/// `Tensor::arange_step(start, end, step)` in `dtype`, by PyTorch's contract: `ceil((end -
/// start) / step)` elements (computed in f64 from the arguments as the dtype holds them), element
/// `i` being `start + i * step` rounded once to the dtype; a zero step, or one that points away
/// from `end`, is refused. candle's doc comment says only "the interval `[start, end)` taken
/// with a common difference `step`".
pub fn arange(dtype: DType, start: f64, end: f64, step: f64) -> OracleResult {
    let r = |x| crate::host::round_to(dtype, x);
    let (start, end, step) = (r(start), r(end), r(step));
    if step == 0.0 || (end - start) * step < 0.0 {
        return Err(Rejection::new(
            "step",
            format!("step {step} does not lead from {start} to {end}"),
            &["step"],
        ));
    }
    let n = ((end - start) / step).ceil() as usize;
    let values = (0..n).map(|i| start + i as f64 * step).collect();
    Ok(out(dtype, vec![n], values))
}

/// `Tensor::meshgrid(&[a, b], xy)` stacked on a new dim 0: with `ij` indexing the grids are
/// `[len a, len b]`, `g0[i][j] = a[i]`, `g1[i][j] = b[j]`; `xy` swaps the two dims (NumPy's
/// and PyTorch's `indexing=` meaning).
pub fn meshgrid2(a: &HostTensor, b: &HostTensor, xy: bool) -> OracleResult {
    if a.shape.len() != 1 || b.shape.len() != 1 {
        return Err(Rejection::new(
            "args",
            "meshgrid takes 1-D tensors".into(),
            &["dims", "rank"],
        ));
    }
    let (na, nb) = (a.values.len(), b.values.len());
    let (rows, cols) = if xy { (nb, na) } else { (na, nb) };
    let mut values = Vec::with_capacity(2 * na * nb);
    for g in 0..2 {
        for r in 0..rows {
            for c in 0..cols {
                let (i, j) = if xy { (c, r) } else { (r, c) };
                values.push(if g == 0 { a.values[i] } else { b.values[j] });
            }
        }
    }
    Ok(out(a.dtype, vec![2, rows, cols], values))
}
