//! Reference implementations of candle-nn's activations, losses and small ops (`activation.rs`,
//! `loss.rs`, `ops.rs`, the slow rotary embeddings). Each follows the PyTorch definition of the
//! same function, named in its doc comment (candle-nn documents almost none of them); values are
//! computed in f64 and rounded once to the output dtype. NaN propagates through every
//! piecewise function (PyTorch's convention: `relu`, `hardtanh`, `leaky_relu` return NaN for NaN).

use super::sweep_ops::out;
use super::{OracleResult, Rejection};
use crate::host::HostTensor;

fn map(t: &HostTensor, f: impl Fn(f64) -> f64) -> OracleResult {
    Ok(out(
        t.dtype,
        t.shape.clone(),
        t.values.iter().map(|&x| f(x)).collect(),
    ))
}

/// `max(x, 0)` keeping NaN.
fn pos(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else {
        x.max(0.0)
    }
}

/// `min(x, 0)` keeping NaN.
fn neg(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else {
        x.min(0.0)
    }
}

/// `ln(1 + e^x)` without overflow or cancellation (torch.nn.Softplus with beta 1, no threshold).
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid1(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Squared ReLU (`Activation::Relu2`; "Primer", So et al. 2021): `relu(x)²`.
pub fn relu2(t: &HostTensor) -> OracleResult {
    map(t, |x| pos(x) * pos(x))
}

/// torch.nn.ReLU6: `min(max(0, x), 6)`, NaN kept.
pub fn relu6(t: &HostTensor) -> OracleResult {
    map(t, |x| if x.is_nan() { x } else { x.clamp(0.0, 6.0) })
}

/// torch.nn.Hardsigmoid: 0 for x ≤ −3, 1 for x ≥ 3, `x/6 + 1/2` between; NaN kept. Written
/// `(x + 3)/6`: `x/6 + 0.5` cancels near x = −3, an f64 error the f64 cells would see.
pub fn hard_sigmoid(t: &HostTensor) -> OracleResult {
    map(t, hard_sigmoid1)
}

fn hard_sigmoid1(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else {
        ((x + 3.0) / 6.0).clamp(0.0, 1.0)
    }
}

/// torch.nn.Hardswish: `x · relu6(x + 3) / 6`.
pub fn hard_swish(t: &HostTensor) -> OracleResult {
    map(t, |x| x * hard_sigmoid1(x))
}

/// torch.nn.SiLU (`Activation::Swish`, `x · sigmoid(x)`).
pub fn swish(t: &HostTensor) -> OracleResult {
    map(t, |x| x * sigmoid1(x))
}

/// torch.nn.Mish: `x · tanh(softplus(x))`.
pub fn mish(t: &HostTensor) -> OracleResult {
    map(t, |x| x * softplus(x).tanh())
}

/// torch.nn.ELU(alpha): `x` for x > 0, `alpha · (eˣ − 1)` otherwise (computed as `expm1`).
pub fn elu_activation(t: &HostTensor, alpha: f64) -> OracleResult {
    map(t, |x| if x > 0.0 { x } else { alpha * x.exp_m1() })
}

/// torch.nn.LeakyReLU(negative_slope): `max(0, x) + negative_slope · min(0, x)`, NaN kept.
pub fn leaky_relu(t: &HostTensor, negative_slope: f64) -> OracleResult {
    map(t, |x| pos(x) + negative_slope * neg(x))
}

/// torch.nn.SELU with the given constants: `scale · (max(0, x) + min(0, alpha · (eˣ − 1)))`
/// (candle-nn's `selu(x, alpha, gamma)`, gamma being PyTorch's scale).
pub fn selu(t: &HostTensor, alpha: f64, gamma: f64) -> OracleResult {
    map(t, |x| {
        gamma
            * if x > 0.0 || x.is_nan() {
                x
            } else {
                alpha * x.exp_m1()
            }
    })
}

/// SwiGLU over the last dim, as Megatron-LM's `bias_swiglu` writes it (there is no PyTorch
/// module): the last dim split in halves `a | b` (`torch.chunk(x, 2, -1)`), `silu(a) · b`.
/// An odd last dim has no halves: rejected.
pub fn swiglu(t: &HostTensor) -> OracleResult {
    let d = *t.shape.last().unwrap_or(&0);
    if !d.is_multiple_of(2) {
        return Err(Rejection::new(
            "xs",
            format!("the last dim ({d}) must split into two equal halves"),
            &["shape", "mismatch"],
        ));
    }
    let half = d / 2;
    let rows = t.values.len() / d.max(1);
    let mut values = Vec::with_capacity(rows * half);
    for r in 0..rows {
        let row = &t.values[r * d..(r + 1) * d];
        for i in 0..half {
            let a = row[i];
            values.push(a * sigmoid1(a) * row[half + i]);
        }
    }
    let mut shape = t.shape.clone();
    *shape.last_mut().expect("rank ≥ 1") = half;
    Ok(out(t.dtype, shape, values))
}

/// torch.nn.PReLU on `x` of shape (N, C, …): `max(0, x) + w · min(0, x)`, with one weight
/// (shape [1]) or one per channel of dim 1 (shape [C]).
pub fn prelu(x: &HostTensor, weight: &HostTensor) -> OracleResult {
    let c = if x.shape.len() >= 2 { x.shape[1] } else { 1 };
    let per_channel = match weight.values.len() {
        1 => false,
        n if n == c && x.shape.len() >= 2 => true,
        n => {
            return Err(Rejection::new(
                "weight",
                format!("{n} weights for {c} channels"),
                &["channels", "weight"],
            ))
        }
    };
    let inner: usize = x.shape.iter().skip(2).product();
    map_indexed(x, |i, v| {
        let w = if per_channel {
            weight.values[(i / inner) % c]
        } else {
            weight.values[0]
        };
        pos(v) + w * neg(v)
    })
}

fn map_indexed(t: &HostTensor, f: impl Fn(usize, f64) -> f64) -> OracleResult {
    Ok(out(
        t.dtype,
        t.shape.clone(),
        t.values.iter().enumerate().map(|(i, &x)| f(i, x)).collect(),
    ))
}

fn same_shape(inp: &HostTensor, target: &HostTensor) -> Result<(), Rejection> {
    if inp.shape != target.shape {
        return Err(Rejection::new(
            "target",
            format!(
                "target {:?} must have the input's shape {:?}",
                target.shape, inp.shape
            ),
            &["shape", "target"],
        ));
    }
    Ok(())
}

/// The mean of `f(inp_i, target_i)` over every element, as a scalar (reduction "mean").
fn mean_loss(inp: &HostTensor, target: &HostTensor, f: impl Fn(f64, f64) -> f64) -> OracleResult {
    same_shape(inp, target)?;
    let n = inp.values.len() as f64;
    let s: f64 = inp
        .values
        .iter()
        .zip(&target.values)
        .map(|(&a, &b)| f(a, b))
        .sum();
    Ok(out(inp.dtype, vec![], vec![s / n]))
}

/// torch.nn.MSELoss (reduction "mean"): `mean((inp − target)²)`.
pub fn mse(inp: &HostTensor, target: &HostTensor) -> OracleResult {
    mean_loss(inp, target, |a, b| (a - b) * (a - b))
}

/// torch.nn.HuberLoss(delta) (reduction "mean"): `0.5·d²` where `|d| < delta`, else
/// `delta·(|d| − delta/2)`, with `d = inp − target`.
pub fn huber(inp: &HostTensor, target: &HostTensor, delta: f64) -> OracleResult {
    mean_loss(inp, target, |a, b| {
        let d = (a - b).abs();
        if d < delta {
            0.5 * d * d
        } else {
            delta * (d - 0.5 * delta)
        }
    })
}

/// torch.nn.BCEWithLogitsLoss (reduction "mean", no weights): the mean of
/// `−[t·ln σ(x) + (1 − t)·ln(1 − σ(x))]`, computed as `t·softplus(−x) + (1 − t)·softplus(x)`.
pub fn binary_cross_entropy_with_logit(inp: &HostTensor, target: &HostTensor) -> OracleResult {
    mean_loss(inp, target, |x, t| {
        t * softplus(-x) + (1.0 - t) * softplus(x)
    })
}

/// torch.nn.Identity.
pub fn nn_identity(t: &HostTensor) -> OracleResult {
    Ok(t.clone())
}

/// torch.nn.functional.dropout's range check, candle-nn's `[0, 1)` (PyTorch also takes 1,
/// which candle refuses by its error message; the sweep uses p outside both ranges).
fn check_dropout_p(p: f64) -> Result<(), Rejection> {
    if !(0.0..1.0).contains(&p) {
        return Err(Rejection::new(
            "drop_p",
            format!("dropout probability {p} is outside [0, 1)"),
            &["dropout", "probability"],
        ));
    }
    Ok(())
}

/// `dropout(x, 0)`: every element kept and scaled by `1/(1 − 0)`, the identity.
pub fn dropout_p0(t: &HostTensor, p: f64) -> OracleResult {
    check_dropout_p(p)?;
    Ok(t.clone())
}

/// `y · (y − x/(1 − p))` with `y = dropout(x, p)`: zero everywhere, since torch.nn.Dropout makes
/// each element either 0 or `x/(1 − p)`. Its gradient is zero too only when the backward pass
/// uses the forward's mask (`d/dx = m'·(y − x/(1−p)) + y·(m' − 1/(1−p))`, zero iff `m' = m`).
pub fn dropout_kept_or_zeroed(t: &HostTensor, p: f64) -> OracleResult {
    check_dropout_p(p)?;
    Ok(out(t.dtype, t.shape.clone(), vec![0.0; t.values.len()]))
}

/// The slow rotary embeddings (`rope_slow`, `rope_i_slow`): `cos`/`sin` of shape (T, d/2) with
/// T ≥ t, of which the first t rows are used (they `narrow(0, 0, t)` the tables), then `rope`.
pub fn rope_table_prefix(
    x: &HostTensor,
    cos: &HostTensor,
    sin: &HostTensor,
    interleaved: bool,
) -> OracleResult {
    let (t, half) = match (&x.shape[..], &cos.shape[..]) {
        ([_, _, t, _], [rows, half]) if rows >= t => (*t, *half),
        _ => {
            return Err(Rejection::new(
                "cos",
                format!(
                    "cos {:?} must be (T ≥ t, d/2) for x {:?}",
                    cos.shape, x.shape
                ),
                &["shape", "cos"],
            ))
        }
    };
    let prefix = |h: &HostTensor| HostTensor {
        dtype: h.dtype,
        shape: vec![t, half],
        values: h.values[..t * half].to_vec(),
    };
    super::rope(x, &prefix(cos), &prefix(sin), interleaved, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn h(shape: &[usize], v: &[f64]) -> HostTensor {
        HostTensor::new(DType::F64, shape, v.to_vec())
    }

    #[test]
    fn piecewise_activations_by_hand() {
        let x = h(&[5], &[-4.0, -1.0, 0.0, 2.0, 7.0]);
        assert_eq!(relu6(&x).unwrap().values, vec![0.0, 0.0, 0.0, 2.0, 6.0]);
        assert_eq!(relu2(&x).unwrap().values, vec![0.0, 0.0, 0.0, 4.0, 49.0]);
        assert_eq!(
            hard_sigmoid(&x).unwrap().values,
            vec![0.0, 1.0 / 3.0, 0.5, 5.0 / 6.0, 1.0]
        );
        assert_eq!(
            leaky_relu(&x, 0.5).unwrap().values,
            vec![-2.0, -0.5, 0.0, 2.0, 7.0]
        );
        let nan = h(&[1], &[f64::NAN]);
        let fs: [fn(&HostTensor) -> OracleResult; 3] = [relu6, relu2, hard_sigmoid];
        for f in fs {
            assert!(f(&nan).unwrap().values[0].is_nan());
        }
    }

    #[test]
    fn losses_by_hand() {
        let a = h(&[2, 2], &[0.0, 1.0, 2.0, -3.0]);
        let b = h(&[2, 2], &[0.0, 0.0, 0.0, 0.0]);
        assert_eq!(mse(&a, &b).unwrap().values, vec![(1.0 + 4.0 + 9.0) / 4.0]);
        // 0.5·1 for |d| = 1 < 2 would be 0.5; delta 1: |d| ≥ 1 is linear: 0.5, 1.5, 2.5.
        assert_eq!(huber(&a, &b, 1.0).unwrap().values, vec![4.5 / 4.0]);
        let z = h(&[1], &[0.0]);
        let bce = binary_cross_entropy_with_logit(&z, &z).unwrap().values[0];
        assert!((bce - 2f64.ln()).abs() < 1e-15);
        assert!(mse(&a, &z).is_err());
    }

    #[test]
    fn swiglu_and_prelu_by_hand() {
        let x = h(&[1, 4], &[0.0, 1.0, 5.0, 2.0]);
        let y = swiglu(&x).unwrap();
        assert_eq!(y.shape, vec![1, 2]);
        assert_eq!(y.values[0], 0.0);
        assert!((y.values[1] - 2.0 * sigmoid1(1.0)).abs() < 1e-15);
        assert!(swiglu(&h(&[1, 3], &[0.0; 3])).is_err());
        let x = h(&[2, 2], &[-1.0, -1.0, 1.0, -2.0]);
        let w = h(&[2], &[0.5, 0.25]);
        assert_eq!(prelu(&x, &w).unwrap().values, vec![-0.5, -0.25, 1.0, -0.5]);
    }
}
