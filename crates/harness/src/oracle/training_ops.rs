//! Reference implementations of the further ops a transformer training step calls (activations,
//! reductions, normalisation, rotary embeddings, linear and embedding layers, losses), written
//! like `sweep_ops` from each op's documented meaning (candle's doc comments, PyTorch's for the
//! candle-nn ops it mirrors), in f64 and rounded once to the output dtype.

use super::sweep_ops::{
    check_dim, check_indexes, is_skip_index, lines, map_lines, out, reduce_lines,
};
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

pub fn exp(t: &HostTensor) -> OracleResult {
    map(t, f64::exp)
}

pub fn log(t: &HostTensor) -> OracleResult {
    map(t, f64::ln)
}

pub fn sqrt(t: &HostTensor) -> OracleResult {
    map(t, f64::sqrt)
}

pub fn tanh(t: &HostTensor) -> OracleResult {
    map(t, f64::tanh)
}

/// `max(x, 0)`; NaN propagates (PyTorch's convention).
pub fn relu(t: &HostTensor) -> OracleResult {
    map(t, |x| if x.is_nan() { x } else { x.max(0.0) })
}

/// `Tensor::gelu`: the tanh approximation, `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
pub fn gelu(t: &HostTensor) -> OracleResult {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    map(t, |x| {
        0.5 * x * (1.0 + (c * x * (1.0 + 0.044715 * x * x)).tanh())
    })
}

/// `Tensor::gelu_erf`: `0.5·x·(1 + erf(x/√2))`.
pub fn gelu_erf(t: &HostTensor) -> OracleResult {
    map(t, |x| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)))
}

/// erf to about one f64 rounding: `2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))`, a series
/// of positive terms (no cancellation) for every x; ±1 beyond |x| = 6 (erfc(6) < 3e-17).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > sum.abs() * 1e-18 {
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
}

/// `x.affine(mul, add)`: `x·mul + add`.
pub fn affine(t: &HostTensor, mul: f64, add: f64) -> OracleResult {
    map(t, |x| x * mul + add)
}

/// `x.powf(e)`.
pub fn powf(t: &HostTensor, e: f64) -> OracleResult {
    map(t, |x| x.powf(e))
}

/// `x.clamp(min, max)`: `min(max(x, min), max)`; NaN propagates (PyTorch's convention).
pub fn clamp(t: &HostTensor, min: f64, max: f64) -> OracleResult {
    map(t, |x| if x.is_nan() { x } else { x.max(min).min(max) })
}

/// `x.mean_keepdim(dim)`.
pub fn mean_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| l.iter().sum::<f64>() / l.len() as f64);
    Ok(out(t.dtype, shape, values))
}

/// `x.min_keepdim(dim)`.
pub fn min_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| super::sweep_ops::extreme(l, f64::min));
    Ok(out(t.dtype, shape, values))
}

/// `x.argmin_keepdim(dim)` as u32: the first minimum. Backends may return any minimal position
/// (see `is_argmin`).
pub fn argmin_keepdim(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let (shape, values) = reduce_lines(t, dim, |l| {
        let m = super::sweep_ops::extreme(l, f64::min);
        super::sweep_ops::position_of(l, m) as f64
    });
    Ok(out(DType::U32, shape, values))
}

/// Whether `got` names a minimal element of every line of `t` along `dim`.
pub fn is_argmin(t: &HostTensor, got: &HostTensor, dim: usize) -> bool {
    let negated = HostTensor {
        values: t.values.iter().map(|v| -v).collect(),
        ..t.clone()
    };
    super::sweep_ops::is_argmax(&negated, got, dim)
}

/// `x.cumsum(dim)`: inclusive prefix sums along `dim`.
pub fn cumsum(t: &HostTensor, dim: usize) -> OracleResult {
    check_dim(t, dim)?;
    let values = map_lines(t, dim, |l| {
        l.iter()
            .scan(0.0, |acc, &x| {
                *acc += x;
                Some(*acc)
            })
            .collect()
    });
    Ok(out(t.dtype, t.shape.clone(), values))
}

fn check_last_dim(role: &str, p: &HostTensor, d: usize) -> Result<(), Rejection> {
    if p.shape != [d] {
        return Err(Rejection::new(
            role,
            format!("{role} must have shape [{d}]"),
            &["shape", role],
        ));
    }
    Ok(())
}

/// `candle_nn::ops::layer_norm(x, alpha, beta, eps)` over the last dim:
/// `(x − mean) / √(var + eps) · alpha + beta`, var the population variance (PyTorch's).
pub fn layer_norm(x: &HostTensor, alpha: &HostTensor, beta: &HostTensor, eps: f64) -> OracleResult {
    let d = *x.shape.last().unwrap_or(&0);
    check_last_dim("alpha", alpha, d)?;
    check_last_dim("beta", beta, d)?;
    let last = x.shape.len() - 1;
    let values = map_lines(x, last, |l| {
        let n = l.len() as f64;
        let mean = l.iter().sum::<f64>() / n;
        let var = l.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let r = (var + eps).sqrt();
        l.iter()
            .zip(alpha.values.iter().zip(&beta.values))
            .map(|(v, (a, b))| (v - mean) / r * a + b)
            .collect()
    });
    Ok(out(x.dtype, x.shape.clone(), values))
}

/// Rotary embeddings as candle-nn writes them: `x` is (b, h, t, d) for `rope`/`rope_i` and
/// (b, t, h, d) for `rope_thd`; `cos`/`sin` are (t, d/2) or (b, t, d/2). `interleaved` (rope_i)
/// rotates the pairs (2i, 2i+1); otherwise (rope, rope_thd) the pairs (i, i + d/2).
pub fn rope(
    x: &HostTensor,
    cos: &HostTensor,
    sin: &HostTensor,
    interleaved: bool,
    thd: bool,
) -> OracleResult {
    let [b, s1, s2, d] = x.shape[..] else {
        return Err(Rejection::new(
            "xs",
            "xs must be 4-D".to_string(),
            &["dims4", "rank"],
        ));
    };
    let (h, t) = if thd { (s2, s1) } else { (s1, s2) };
    let half = d / 2;
    for (role, cs) in [("cos", cos), ("sin", sin)] {
        let ok = cs.shape == [t, half] || cs.shape == [b, t, half];
        if d % 2 != 0 || !ok {
            return Err(Rejection::new(
                role,
                format!("{role} must be ({t}, {half}) or ({b}, {t}, {half})"),
                &["inconsistent", "cos/sin", "rope"],
            ));
        }
    }
    let table = |cs: &HostTensor, bi: usize, ti: usize, i: usize| {
        let base = if cs.shape.len() == 3 {
            bi * t * half
        } else {
            0
        };
        cs.values[base + ti * half + i]
    };
    let mut values = vec![0.0; x.values.len()];
    for bi in 0..b {
        for hi in 0..h {
            for ti in 0..t {
                let row = if thd {
                    ((bi * t + ti) * h + hi) * d
                } else {
                    ((bi * h + hi) * t + ti) * d
                };
                for i in 0..half {
                    let (i0, i1) = if interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (x0, x1) = (x.values[row + i0], x.values[row + i1]);
                    let (c, s) = (table(cos, bi, ti, i), table(sin, bi, ti, i));
                    values[row + i0] = x0 * c - x1 * s;
                    values[row + i1] = x0 * s + x1 * c;
                }
            }
        }
    }
    Ok(out(x.dtype, x.shape.clone(), values))
}

/// `candle_nn::Linear::new(w, Some(b)).forward(x)`: `x · wᵀ + b` over the last dim of x.
pub fn linear(x: &HostTensor, w: &HostTensor, b: &HostTensor) -> OracleResult {
    let [n_out, k] = w.shape[..] else {
        return Err(Rejection::new(
            "weight",
            "weight must be 2-D".to_string(),
            &["shape"],
        ));
    };
    if x.shape.last() != Some(&k) || b.shape != [n_out] {
        return Err(Rejection::new(
            "x",
            format!("x's last dim must be {k} and the bias ({n_out})"),
            &["shape mismatch", "matmul"],
        ));
    }
    let rows = x.values.len() / k;
    let mut values = Vec::with_capacity(rows * n_out);
    for r in 0..rows {
        for o in 0..n_out {
            let dot: f64 = (0..k)
                .map(|i| x.values[r * k + i] * w.values[o * k + i])
                .sum();
            values.push(dot + b.values[o]);
        }
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().unwrap() = n_out;
    Ok(out(x.dtype, shape, values))
}

/// `candle_nn::Embedding::new(w, hidden).forward(ids)`: row `ids[i]` of `w`, shape
/// `ids.shape + [hidden]`.
pub fn embedding(w: &HostTensor, ids: &HostTensor) -> OracleResult {
    let [vocab, hidden] = w.shape[..] else {
        return Err(Rejection::new(
            "embeddings",
            "embeddings must be 2-D".to_string(),
            &["shape"],
        ));
    };
    check_indexes(ids, vocab, 0)?;
    let mut values = Vec::with_capacity(ids.values.len() * hidden);
    for &i in &ids.values {
        if is_skip_index(ids.dtype, i) {
            values.extend(std::iter::repeat_n(0.0, hidden));
        } else {
            let i = i as usize;
            values.extend_from_slice(&w.values[i * hidden..(i + 1) * hidden]);
        }
    }
    let mut shape = ids.shape.clone();
    shape.push(hidden);
    Ok(out(w.dtype, shape, values))
}

fn check_targets(inp: &HostTensor, target: &HostTensor) -> Result<(usize, usize), Rejection> {
    let [n, c] = inp.shape[..] else {
        return Err(Rejection::new(
            "inp",
            "inp must be 2-D (batch, classes)".to_string(),
            &["dims2", "rank"],
        ));
    };
    if target.shape != [n] {
        return Err(Rejection::new(
            "target",
            format!("target must have shape [{n}]"),
            &["shape", "target"],
        ));
    }
    check_indexes(target, c, 1)?;
    Ok((n, c))
}

/// `candle_nn::loss::nll(inp, target)`: `−mean_i inp[i, target[i]]`, a 0-D tensor.
pub fn nll(inp: &HostTensor, target: &HostTensor) -> OracleResult {
    let (n, c) = check_targets(inp, target)?;
    // The "no index" value picks nothing (gather writes 0 there).
    let sum: f64 = (0..n)
        .filter(|&i| !is_skip_index(target.dtype, target.values[i]))
        .map(|i| inp.values[i * c + target.values[i] as usize])
        .sum();
    Ok(out(inp.dtype, vec![], vec![-sum / n as f64]))
}

/// `candle_nn::loss::cross_entropy(inp, target)`: `nll(log_softmax(inp, 1), target)`.
pub fn cross_entropy(inp: &HostTensor, target: &HostTensor) -> OracleResult {
    check_targets(inp, target)?;
    let (outer, len, inner) = lines(&inp.shape, 1);
    debug_assert_eq!(inner, 1);
    let mut sum = 0.0;
    for i in (0..outer).filter(|&i| !is_skip_index(target.dtype, target.values[i])) {
        let l = &inp.values[i * len..(i + 1) * len];
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + l.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        sum += l[target.values[i] as usize] - lse;
    }
    Ok(out(inp.dtype, vec![], vec![-sum / outer as f64]))
}

/// `x.sort_last_dim(asc).0`: every row sorted.
pub fn sort_last_dim(t: &HostTensor, asc: bool) -> OracleResult {
    let last = t.shape.len() - 1;
    let values = map_lines(t, last, |l| {
        let mut v = l.to_vec();
        v.sort_by(f64::total_cmp);
        if !asc {
            v.reverse();
        }
        v
    });
    Ok(out(t.dtype, t.shape.clone(), values))
}

/// One AdamW step (candle_nn::AdamW, step 1) of the parameters `p` with gradient `g`:
/// `p·(1 − lr·wd) − lr·m̂/(√v̂ + eps)`, where at step 1 the bias-corrected moments are `m̂ = g` and
/// `v̂ = g²` (Loshchilov & Hutter's decoupled weight decay, as PyTorch's AdamW).
pub fn adamw_step(p: &HostTensor, g: &HostTensor, lr: f64, wd: f64, eps: f64) -> OracleResult {
    if p.shape != g.shape {
        return Err(Rejection::new(
            "grad",
            "the gradient must have the parameters' shape".to_string(),
            &["shape"],
        ));
    }
    let values = p
        .values
        .iter()
        .zip(&g.values)
        .map(|(p, g)| p * (1.0 - lr * wd) - lr * g / (g.abs() + eps))
        .collect();
    Ok(out(p.dtype, p.shape.clone(), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(-3) to 17 digits (Abramowitz & Stegun, table 7.1);
        // within two f64 roundings.
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (-3.0, -0.999_977_909_503_001_4),
        ] {
            let err = (erf(x) - want).abs();
            assert!(
                err <= 2.0 * f64::EPSILON * want.abs(),
                "erf({x}) = {} ≠ {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn rope_interleaved_and_halves_rotate_different_pairs() {
        // d = 4, one position: cos = [1, 0], sin = [0, 1] turns pair 0 by 0 and pair 1 by 90°.
        let x = HostTensor::new(DType::F64, &[1, 1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]);
        let cos = HostTensor::new(DType::F64, &[1, 2], vec![1.0, 0.0]);
        let sin = HostTensor::new(DType::F64, &[1, 2], vec![0.0, 1.0]);
        // Interleaved pairs (1, 2) and (3, 4): (3, 4) → (−4, 3).
        let i = rope(&x, &cos, &sin, true, false).unwrap();
        assert_eq!(i.values, vec![1.0, 2.0, -4.0, 3.0]);
        // Halves pairs (1, 3) and (2, 4): (2, 4) → (−4, 2).
        let h = rope(&x, &cos, &sin, false, false).unwrap();
        assert_eq!(h.values, vec![1.0, -4.0, 3.0, 2.0]);
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let inp = HostTensor::new(DType::F64, &[2, 4], vec![0.0; 8]);
        let t = HostTensor::new(DType::U32, &[2], vec![1.0, 3.0]);
        let ce = cross_entropy(&inp, &t).unwrap();
        assert!((ce.values[0] - 4f64.ln()).abs() < 1e-15);
    }
}
