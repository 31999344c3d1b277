//! Reference implementations of the unary elementwise ops and the reductions the `unary` sweep
//! family covers (abs … silu, sum/max/min/mean without keepdim, the `_all` reductions, var,
//! log_sum_exp, norm, argmax/argmin, dot, mv), written like `sweep_ops` from each op's
//! documented meaning, in f64 and rounded once to the output dtype. Where candle's docs leave a
//! convention open (rounding ties, NaN in max/min), PyTorch's is taken and named on the function.

use super::sweep_ops::{check_dim, extreme, out, position_of, reduce_lines};
use super::{OracleResult, Rejection};
use crate::host::HostTensor;
use candle_core::DType;

fn map(t: &HostTensor, f: impl Fn(f64) -> f64) -> OracleResult {
    Ok(out(
        t.dtype,
        t.shape.clone(),
        t.values.iter().map(|&x| f(x)).collect(),
    ))
}

pub fn abs(t: &HostTensor) -> OracleResult {
    map(t, f64::abs)
}

pub fn neg(t: &HostTensor) -> OracleResult {
    map(t, |x| -x)
}

/// `1/x`.
pub fn recip(t: &HostTensor) -> OracleResult {
    map(t, |x| 1.0 / x)
}

/// `x·x`.
pub fn sqr(t: &HostTensor) -> OracleResult {
    map(t, |x| x * x)
}

pub fn sin(t: &HostTensor) -> OracleResult {
    map(t, f64::sin)
}

pub fn cos(t: &HostTensor) -> OracleResult {
    map(t, f64::cos)
}

/// `Tensor::erf`, elementwise, with the series of `oracle::erf`.
pub fn erf_tensor(t: &HostTensor) -> OracleResult {
    map(t, super::erf)
}

pub fn floor(t: &HostTensor) -> OracleResult {
    map(t, f64::floor)
}

pub fn ceil(t: &HostTensor) -> OracleResult {
    map(t, f64::ceil)
}

/// `Tensor::round`: to the nearest integer, a tie (x.5) to the even one: PyTorch's convention
/// (`torch.round`, like NumPy's and IEEE 754's default `roundTiesToEven`). candle's doc says
/// only "nearest integer".
pub fn round(t: &HostTensor) -> OracleResult {
    map(t, f64::round_ties_even)
}

/// `x.round_to(decimals)`: `round(x·10^d)·10^-d` with ties to even, PyTorch's
/// `torch.round(x, decimals=d)`; the product `x·10^d` is exact for the sweep's inputs
/// (multiples of 1/8 with `d = 1`).
pub fn round_to_decimals(t: &HostTensor, decimals: i32) -> OracleResult {
    let m = 10f64.powi(decimals);
    map(t, |x| (x * m).round_ties_even() / m)
}

/// `x.sign()`: -1, 0 or 1 (0 for ±0).
pub fn sign(t: &HostTensor) -> OracleResult {
    map(t, |x| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    })
}

/// `x.elu(alpha)`: `x` for `x > 0`, `alpha·(e^x − 1)` otherwise.
pub fn elu(t: &HostTensor, alpha: f64) -> OracleResult {
    map(t, |x| if x > 0.0 { x } else { alpha * x.exp_m1() })
}

/// A reduction along `dim` with the dim removed (the non-keepdim forms).
fn squeeze_reduce(
    t: &HostTensor,
    dim: usize,
    dtype: DType,
    f: impl Fn(&[f64]) -> f64,
) -> OracleResult {
    check_dim(t, dim)?;
    let (mut shape, values) = reduce_lines(t, dim, f);
    shape.remove(dim);
    Ok(out(dtype, shape, values))
}

/// `x.sum(dim)`.
pub fn sum(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, |l| l.iter().sum())
}

/// `x.mean(dim)`.
pub fn mean(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, |l| l.iter().sum::<f64>() / l.len() as f64)
}

/// `x.max(dim)`; NaN propagates (PyTorch's convention, see `extreme`).
pub fn max(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, |l| extreme(l, f64::max))
}

/// `x.min(dim)`; NaN propagates.
pub fn min(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, |l| extreme(l, f64::min))
}

/// `x.argmax(dim)` as u32: the first maximum (a NaN's position where the line holds one).
pub fn argmax(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, DType::U32, |l| {
        position_of(l, extreme(l, f64::max)) as f64
    })
}

/// `x.argmin(dim)` as u32: the first minimum.
pub fn argmin(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, DType::U32, |l| {
        position_of(l, extreme(l, f64::min)) as f64
    })
}

/// The sample variance of a line: Bessel's correction (divided by n − 1), as candle's
/// `var_keepdim` documents ("unbiased") and PyTorch's `var` defaults to; NaN for one element.
fn variance(l: &[f64]) -> f64 {
    let n = l.len() as f64;
    let m = l.iter().sum::<f64>() / n;
    l.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
}

/// `x.var_keepdim(dim)`: the unbiased variance.
pub fn var_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, variance);
    Ok(out(t.dtype, shape, values))
}

/// `x.var(dim)`: the unbiased variance, dim removed.
pub fn var(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, variance)
}

/// `x.log_sum_exp(dim)`: `m + ln Σ e^(x − m)` with `m` the line's maximum (exact in f64 for
/// the sweep's inputs); NaN propagates, a line of -inf gives -inf, one holding +inf gives +inf.
pub fn log_sum_exp(t: &HostTensor, dim: usize) -> OracleResult {
    squeeze_reduce(t, dim, t.dtype, |l| {
        if l.iter().any(|v| v.is_nan()) {
            return f64::NAN;
        }
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if m.is_infinite() {
            return m;
        }
        m + l.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    })
}

/// The whole tensor as one line, reduced to a 0-d tensor of `dtype`.
fn reduce_all(t: &HostTensor, dtype: DType, f: impl Fn(&[f64]) -> f64) -> OracleResult {
    Ok(out(dtype, vec![], vec![f(&t.values)]))
}

pub fn sum_all(t: &HostTensor) -> OracleResult {
    reduce_all(t, t.dtype, |l| l.iter().sum())
}

pub fn mean_all(t: &HostTensor) -> OracleResult {
    reduce_all(t, t.dtype, |l| l.iter().sum::<f64>() / l.len() as f64)
}

/// `x.max_all()`; NaN propagates.
pub fn max_all(t: &HostTensor) -> OracleResult {
    reduce_all(t, t.dtype, |l| extreme(l, f64::max))
}

/// `x.min_all()`; NaN propagates.
pub fn min_all(t: &HostTensor) -> OracleResult {
    reduce_all(t, t.dtype, |l| extreme(l, f64::min))
}

/// `x.norm()`: the Frobenius norm `sqrt(Σ x²)` of all elements, a 0-d tensor; integer dtypes
/// are refused (candle's doc).
pub fn norm(t: &HostTensor) -> OracleResult {
    if !t.dtype.is_float() {
        return Err(Rejection::new(
            "self",
            format!("norm is not defined for {}", t.dtype.as_str()),
            &["norm", "integer"],
        ));
    }
    reduce_all(t, t.dtype, |l| l.iter().map(|x| x * x).sum::<f64>().sqrt())
}

/// `a.dot(b)`: `Σ a_i·b_i` of two 1-D tensors of one length, a 0-d tensor.
pub fn dot(a: &HostTensor, b: &HostTensor) -> OracleResult {
    if a.shape.len() != 1 || b.shape != a.shape {
        return Err(Rejection::new(
            "rhs",
            format!(
                "dot takes two vectors of one length, not {:?} and {:?}",
                a.shape, b.shape
            ),
            &["shape"],
        ));
    }
    let s = a.values.iter().zip(&b.values).map(|(x, y)| x * y).sum();
    Ok(out(a.dtype, vec![], vec![s]))
}

/// `m.mv(v)`: `[r, c] × [c] → [r]`.
pub fn mv(m: &HostTensor, v: &HostTensor) -> OracleResult {
    if m.shape.len() != 2 || v.shape.len() != 1 || m.shape[1] != v.shape[0] {
        return Err(Rejection::new(
            "rhs",
            format!(
                "mv takes [m, n] and [n], not {:?} and {:?}",
                m.shape, v.shape
            ),
            &["shape"],
        ));
    }
    let (r, c) = (m.shape[0], m.shape[1]);
    let values = (0..r)
        .map(|i| (0..c).map(|j| m.values[i * c + j] * v.values[j]).sum())
        .collect();
    Ok(out(m.dtype, vec![r], values))
}
