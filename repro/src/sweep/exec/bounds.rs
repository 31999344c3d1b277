//! Error bounds: what a float output may differ from the oracle's by, element by element, for
//! the forward pass (from the op's `ErrorModel`) and for a gradient.

use crate::sweep::cell::{self, Cell};
use crate::sweep::ops::{ErrorModel, Op, Reference};
use candle_core::DType;
use harness::compare::{unit_roundoff, Tolerance};
use harness::host::HostTensor;

/// What a float output is allowed, element by element, and the error model it comes from.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub per_element: Vec<f64>,
    /// Quoted in a mismatch: the relative part and the largest absolute part.
    pub summary: Tolerance,
    pub model: String,
}

impl Bounds {
    /// `rel·u·|want_i| + abs·u·m_i`, never below the smallest normal number of `dtype` (a
    /// backend may flush subnormals) nor `floor`.
    fn new(
        dtype: DType,
        want: &[f64],
        rel: f64,
        abs: f64,
        m: &[f64],
        floor: f64,
        model: String,
    ) -> Self {
        let u = unit_roundoff(dtype);
        let tiny = smallest_normal(dtype).max(floor);
        let per_element: Vec<f64> = want
            .iter()
            .zip(m)
            .map(|(w, mi)| (rel * u * w.abs() + abs * u * mi.abs()).max(tiny))
            .collect();
        let atol = want
            .iter()
            .zip(m)
            .map(|(_, mi)| (abs * u * mi.abs()).max(tiny))
            .fold(0.0, f64::max);
        Bounds {
            per_element,
            summary: Tolerance {
                rtol: rel * u,
                atol,
            },
            model,
        }
    }
}

fn smallest_normal(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-14),
        DType::BF16 | DType::F32 => 2f64.powi(-126),
        DType::F64 => f64::MIN_POSITIVE,
        _ => 0.0,
    }
}

/// The longest reduction a cell can make: its largest size knob.
fn terms(cell: &Cell) -> f64 {
    cell.knobs.iter().copied().max().unwrap_or(1) as f64
}

/// The term count the bounds multiply by the dtype's unit roundoff. A long row in f16 or bf16
/// is judged as accumulated in f32 (PyTorch's convention for half-precision reductions, and
/// the only one under which a 65,536-term bound means anything: n·u is 32 in f16): its count
/// is scaled by u(f32)/u(dtype).
fn accumulation_terms(cell: &Cell, dtype: DType) -> f64 {
    let n = terms(cell);
    if cell.values == cell::Values::Long && matches!(dtype, DType::F16 | DType::BF16) {
        n * unit_roundoff(DType::F32) / unit_roundoff(dtype)
    } else {
        n
    }
}

/// Σ|terms| of each element of a sum-like op's output: the same op on |inputs| (indexes
/// untouched); where that is not a sum of the inputs after all, the largest input product.
fn sum_terms(op: &Op, cell: &Cell, hosts: &[HostTensor], len: usize) -> Vec<f64> {
    let abs: Vec<HostTensor> = hosts
        .iter()
        .map(|h| HostTensor {
            values: if h.dtype.is_float() {
                h.values.iter().map(|v| v.abs()).collect()
            } else {
                h.values.clone()
            },
            ..h.clone()
        })
        .collect();
    match (op.oracle)(cell, &abs) {
        Reference::Values(v) if v.values.len() == len => v.values,
        _ => vec![terms(cell) * max_abs(hosts).powi(2); len],
    }
}

/// `|alpha·x̂| + |beta|` per element of a layer norm (inputs x, alpha, beta): the oracle with
/// |alpha| and a zero beta gives `|alpha|·x̂`.
fn affine_terms(op: &Op, cell: &Cell, hosts: &[HostTensor], want: &HostTensor) -> Vec<f64> {
    let abs = |h: &HostTensor| HostTensor {
        values: h.values.iter().map(|v| v.abs()).collect(),
        ..h.clone()
    };
    let zero = HostTensor {
        values: vec![0.0; hosts[2].values.len()],
        ..hosts[2].clone()
    };
    let inputs = [hosts[0].clone(), abs(&hosts[1]), zero];
    let beta = &hosts[2].values;
    match (op.oracle)(cell, &inputs) {
        Reference::Values(v) if v.values.len() == want.values.len() => v
            .values
            .iter()
            .enumerate()
            .map(|(i, a)| a.abs() + beta[channel(op, &hosts[0].shape, i, beta.len())].abs())
            .collect(),
        _ => vec![max_abs(hosts).powi(2); want.values.len()],
    }
}

/// The ops that normalise per channel, dim 1 of an `[n, c, …]` input (candle-nn's `BatchNorm`
/// and `GroupNorm`), rather than along the last dim.
fn per_channel(op: &Op) -> bool {
    matches!(op.name, "batch_norm_module" | "group_norm_module")
}

/// Whether a per-channel norm takes its statistics from the input: `GroupNorm` always,
/// `BatchNorm` in its training variants (2 and 3; eval uses the given running stats).
fn batch_statistics(op: &Op, cell: &Cell) -> bool {
    match op.name {
        "group_norm_module" => true,
        "batch_norm_module" => cell.variant >= 2,
        _ => false,
    }
}

/// The smallest standard deviation of a channel (dim 1) of `x` over the batch and the rest
/// of its dims, at least 1e-3 (below that the cell's oracle leaves training unspecified).
fn smallest_channel_sigma(x: &HostTensor, c: usize) -> f64 {
    let inner: usize = x.shape.get(2..).map_or(1, |s| s.iter().product());
    let mut sigma = f64::INFINITY;
    for ch in 0..c {
        let vals: Vec<f64> = x
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| (i / inner.max(1)) % c == ch)
            .map(|(_, v)| *v)
            .collect();
        if vals.is_empty() {
            continue;
        }
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        sigma = sigma.min(var.sqrt());
    }
    sigma.max(1e-3)
}

/// The index into a `[c]` affine parameter of output element `i`: its channel (dim 1) for the
/// per-channel ops, its last-dim position otherwise.
fn channel(op: &Op, x_shape: &[usize], i: usize, c: usize) -> usize {
    if per_channel(op) && x_shape.len() >= 2 {
        let inner: usize = x_shape[2..].iter().product();
        (i / inner.max(1)) % c
    } else {
        i % c
    }
}

/// A rotation's terms (inputs x, cos, sin): `max|x|·(max|cos| + max|sin|)`.
fn rotation_terms(hosts: &[HostTensor]) -> f64 {
    max_abs(&hosts[..1]) * (max_abs(&hosts[1..2]) + max_abs(&hosts[2..3]))
}

/// The bounds of a quantized op: `2u|want|` plus a per-element bound computed in f64
/// (`bound`, zero where its length does not match the output's).
fn quantized_bounds(want: &HostTensor, bound: Vec<f64>, model: &str) -> Bounds {
    let u = unit_roundoff(want.dtype);
    let q: Vec<f64> = if bound.len() == want.values.len() {
        bound.iter().map(|b| b / u).collect()
    } else {
        vec![0.0; want.values.len()]
    };
    Bounds::new(want.dtype, &want.values, 2.0, 1.0, &q, 0.0, model.into())
}

/// The forward pass's bounds for `want`, from `op.error` (see `ErrorModel`).
pub fn forward_bounds(op: &Op, cell: &Cell, hosts: &[HostTensor], want: &HostTensor) -> Bounds {
    let n = accumulation_terms(cell, want.dtype);
    let zeros = vec![0.0; want.values.len()];
    let d = want.dtype;
    let mut b = match op.error {
        ErrorModel::Rounded => Bounds::new(
            d,
            &want.values,
            2.0,
            0.0,
            &zeros,
            0.0,
            "rounded: 2u|want|".into(),
        ),
        ErrorModel::Elementwise => Bounds::new(
            d,
            &want.values,
            4.0,
            0.0,
            &zeros,
            0.0,
            "elementwise: 4u|want|".into(),
        ),
        ErrorModel::Activation => {
            let x: Vec<f64> = hosts[0].values.iter().map(|v| v.abs()).collect();
            Bounds::new(
                d,
                &want.values,
                4.0,
                2.0,
                &x,
                0.0,
                "activation: 4u|want| + 2u|x|".into(),
            )
        }
        ErrorModel::Sum => {
            let s = sum_terms(op, cell, hosts, want.values.len());
            Bounds::new(
                d,
                &want.values,
                2.0,
                n,
                &s,
                0.0,
                format!("sum of n ≤ {n} terms: 2u|want| + n·u·Σ|terms|"),
            )
        }
        ErrorModel::Normalised => {
            let x = max_abs(&hosts[..1]);
            Bounds::new(
                d,
                &want.values,
                n + 2.0 + 2.0 * x,
                0.0,
                &zeros,
                0.0,
                format!("normalised over n ≤ {n}: (n + 2 + 2·max|x|)·u|want|"),
            )
        }
        ErrorModel::NormalisedAffine => {
            // The normalised row's bound on `|alpha·x̂| + |beta|`: the terms of `alpha·x̂ + beta`,
            // which may cancel.
            let x = max_abs(&hosts[..1]);
            let m = affine_terms(op, cell, hosts, want);
            // A per-channel norm with batch statistics takes them over every element of a
            // channel (all of the batch in training), more terms than any one knob.
            // Its rounding of `x - mean` is amplified by 1/σ, σ the channel's standard
            // deviation: the `max|x|` term is divided by the smallest σ below 1.
            let (n, x) = if batch_statistics(op, cell) {
                let c = hosts[1].values.len().max(1);
                let n = n.max((hosts[0].values.len() / c) as f64);
                (n, x / smallest_channel_sigma(&hosts[0], c).min(1.0))
            } else {
                (n, x)
            };
            Bounds::new(
                d,
                &want.values,
                0.0,
                n + 2.0 + 2.0 * x,
                &m,
                0.0,
                format!("normalised then affine over n ≤ {n}: (n + 2 + 2·max|x|)·u·(|alpha·x̂| + |beta|)"),
            )
        }
        ErrorModel::Rotation => {
            let m = rotation_terms(hosts);
            Bounds::new(
                d,
                &want.values,
                2.0,
                2.0,
                &vec![m; want.values.len()],
                0.0,
                "rotation: 2u|want| + 2u·max|x|·(max|cos| + max|sin|)".into(),
            )
        }
        ErrorModel::QuantizedActivations => quantized_bounds(
            want,
            crate::sweep::ops::qmatmul_bound(cell, hosts),
            "quantized activations: 2u|want| + Σ_b 0.6·amax_b(x)/127·(Σ_b|w̃| (+3.5·max_b|w̃| for _1 formats)) + (k/16+4)·u(f32)·Σ|x·w̃|",
        ),
        ErrorModel::QuantizedWeights => quantized_bounds(
            want,
            crate::sweep::ops::quantized_weights_bound(hosts),
            "quantized weights: 2u|want| + the super-block's span max(max_b − min_b, max_b|x|)",
        ),
        ErrorModel::LogNormalised => {
            let m = max_abs(std::slice::from_ref(want)).max(max_abs(&hosts[..1]));
            Bounds::new(
                d,
                &want.values,
                n + 2.0,
                2.0,
                &vec![m; want.values.len()],
                0.0,
                format!("log-normalised over n ≤ {n}: (n+2)u|want| + 2u·max(|x|, |want|)"),
            )
        }
        ErrorModel::Variance => {
            let x = max_abs(&hosts[..1]);
            Bounds::new(
                d,
                &want.values,
                n + 3.0,
                2.0 * n * n * unit_roundoff(d),
                &vec![x * x; want.values.len()],
                0.0,
                format!("two-pass variance over n ≤ {n}: (n+3)u|want| + 2(n·u·max|x|)²"),
            )
        }
    };
    if n != terms(cell) {
        b.model += &format!(
            "; {} terms accumulated in f32, so n = {} · u(f32)/u({})",
            terms(cell),
            terms(cell),
            d.as_str()
        );
    }
    b
}

/// A gradient's bounds. A gradient sums products of the loss weights `w`, the inputs and the
/// forward result along the op's reduction, and may cancel to nothing (the gradient of a
/// softmax over a broadcast row), so its error scales with those terms, not with its own
/// size: `M = max(max|grad|, max|w|·max(1, max|inputs|, max|out|))`. The reference comes from
/// central differences in f64, good to ~1e-8 of `M`.
pub fn backward_bounds(cell: &Cell, want: &HostTensor, terms_scale: f64) -> Bounds {
    let n = terms(cell);
    let m = max_abs(std::slice::from_ref(want)).max(terms_scale);
    Bounds::new(
        want.dtype,
        &want.values,
        4.0,
        n + 2.0,
        &vec![m; want.values.len()],
        1e-8 * (1.0 + m),
        format!("gradient over n ≤ {n}: 4u|want| + (n+2)u·M, M = {m:.3} (the terms' scale)"),
    )
}

/// `max|w|·max(1, max|inputs|, max|out|)`: the size of the terms a gradient sums. A
/// per-channel norm's gradient sums over every element of a channel, more than the knobs'
/// `n`, and divides by the channel's σ: its scale grows by both.
pub fn gradient_terms_scale(
    op: &Op,
    cell: &Cell,
    w: &[f64],
    hosts: &[HostTensor],
    out: &HostTensor,
) -> f64 {
    let w = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let m = w * 1f64
        .max(max_abs(hosts))
        .max(max_abs(std::slice::from_ref(out)));
    if batch_statistics(op, cell) && hosts.len() > 1 {
        let c = hosts[1].values.len().max(1);
        let per_channel_n = (hosts[0].values.len() / c) as f64;
        let sigma = smallest_channel_sigma(&hosts[0], c).min(1.0);
        m * (per_channel_n / terms(cell)).max(1.0) / sigma
    } else {
        m
    }
}

fn max_abs(hosts: &[HostTensor]) -> f64 {
    hosts
        .iter()
        .filter(|h| h.dtype.is_float())
        .flat_map(|h| h.values.iter())
        .filter(|v| v.is_finite())
        .fold(0.0, |a, v| a.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::cell::Values;
    use crate::sweep::exec::{grad_inputs, loss_weights, prepare, reference_grads};
    use crate::sweep::ops::{OutputCheck, OPS};
    use crate::sweep::{plan, DEFAULT_SEED};
    use harness::compare::compare_bounded;

    /// Perturbs `want` by `delta(i, want)` and says whether the bounds accept it.
    fn accepts(want: &HostTensor, b: &Bounds, delta: impl Fn(usize, f64) -> f64) -> bool {
        let got: Vec<f64> = want
            .values
            .iter()
            .enumerate()
            .map(|(i, &w)| w + delta(i, w))
            .collect();
        compare_bounded(b.summary, &want.values, &got, &b.per_element).is_none()
    }

    /// The tolerances are tight enough to matter: for every op, float dtype and cell (forward
    /// and every gradient), an error of one unit roundoff per element passes, and an error of
    /// 5% of the output's scale (for a sum or a gradient, of the terms it sums; for an
    /// activation, of its input) on every element (a softmax whose rows no longer sum to 1) fails.
    #[test]
    fn bounds_pass_rounding_and_fail_a_few_percent() {
        let mut checked = 0;
        for op in OPS {
            for cell in plan(op, DEFAULT_SEED, 1) {
                // Non-finite results must match exactly; no perturbation to test there.
                if cell.hazard.is_some()
                    || !matches!(op.check, OutputCheck::Values)
                    || cell.values.non_finite().is_some()
                {
                    continue;
                }
                let inputs = prepare(op, &cell);
                let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
                let Reference::Values(want) = (op.oracle)(&cell, &hosts) else {
                    continue;
                };
                let mut outputs = Vec::new();
                if want.dtype.is_float() {
                    // An activation's output is made of terms the size of its input
                    // (`0.5·x·(1 + tanh(…))`), whatever the output's own size.
                    // A sum's output is made of its terms, however much they cancel (a
                    // quantized matmul's too: its bound is a fraction of Σ|x|·|w̃|).
                    let terms = match op.error {
                        ErrorModel::Activation => max_abs(&hosts[..1]),
                        ErrorModel::Sum | ErrorModel::QuantizedActivations => {
                            sum_terms(op, &cell, &hosts, want.values.len())
                                .iter()
                                .fold(0.0f64, |a, v| a.max(v.abs()))
                        }
                        ErrorModel::NormalisedAffine => affine_terms(op, &cell, &hosts, &want)
                            .iter()
                            .fold(0.0f64, |a, v| a.max(*v)),
                        ErrorModel::Rotation => rotation_terms(&hosts),
                        _ => 0.0,
                    };
                    outputs.push((
                        "forward".to_string(),
                        want.clone(),
                        forward_bounds(op, &cell, &hosts, &want),
                        terms,
                    ));
                }
                let which = grad_inputs(op, &cell, &inputs);
                if !which.is_empty() {
                    let w = loss_weights(want.values.len(), cell.seed);
                    let scale = gradient_terms_scale(op, &cell, &w, &hosts, &want);
                    for (i, g) in which
                        .iter()
                        .zip(reference_grads(op, &cell, &inputs, &which, &w).unwrap_or_default())
                    {
                        let b = backward_bounds(&cell, &g, scale);
                        outputs.push((
                            format!("backward {}", inputs[*i].role),
                            g,
                            b.clone(),
                            scale,
                        ));
                    }
                }
                for (pass, want, b, terms_scale) in outputs {
                    // A non-finite expected value (var of one element, a variance past the
                    // dtype's range) must match exactly, and an empty one (a zero-size dim) has
                    // nothing to perturb: no test there either.
                    if want.values.is_empty() || want.values.iter().any(|v| !v.is_finite()) {
                        continue;
                    }
                    let u = unit_roundoff(want.dtype);
                    // 5% of what the result is made of: its own size, or for a gradient the
                    // size of the terms it sums.
                    let scale = want
                        .values
                        .iter()
                        .fold(0.0f64, |a, v| a.max(v.abs()))
                        .max(terms_scale);
                    // A gradient that is zero up to the finite differences' noise has no scale,
                    // and a result in the subnormal range (a softmax over 65,536 in f16) has no
                    // relative precision to test: bounds never go below the smallest normal.
                    if scale < 1e-6 || scale < 20.0 * smallest_normal(want.dtype) {
                        continue;
                    }
                    let sign = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -1.0 };
                    assert!(
                        accepts(&want, &b, |i, w| sign(i) * u * w.abs()),
                        "{} {pass} {cell:?}: one unit roundoff rejected by {}",
                        op.name,
                        b.model
                    );
                    // Offset and large values are judged by bounds that grow with max|x| (the
                    // rounding of `x - mean` or `x - max` is relative to x), loose by design in
                    // the half types; the 5% test is for the plain and long cells.
                    if matches!(cell.values, Values::Offset | Values::Large) {
                        continue;
                    }
                    // Quantized weights are bounded by their super-block's span only (at most
                    // twice its largest magnitude): an error past that is what it must reject.
                    let error = if op.error == ErrorModel::QuantizedWeights {
                        2.5 * scale
                    } else {
                        0.05 * scale
                    };
                    assert!(
                        !accepts(&want, &b, |_, _| error),
                        "{} {pass} {cell:?}: an error of {error:e} (5%, or past the span) accepted by {}",
                        op.name,
                        b.model
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "only {checked} outputs checked");
    }
}
