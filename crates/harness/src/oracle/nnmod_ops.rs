//! Reference implementations of candle-nn's modules: the convolution modules (a convolution plus
//! a bias per output channel), batch and group normalisation, and the kv caches' appends. The
//! semantics are PyTorch's (`torch.nn.Conv1d` … `ConvTranspose2d`, `torch.nn.BatchNorm1d/2d`,
//! `torch.nn.GroupNorm`); a kv cache append is the concatenation of everything appended along
//! the sequence dim, or for a ring buffer of `max` positions the placement of position `p` at
//! slot `p mod max`. Values are computed in f64 and rounded once to the dtype. No code is
//! shared with candle.

use super::sweep_ops::{lines, out};
use super::{conv_ops::ConvParams, OracleResult, Rejection};
use crate::host::HostTensor;
use candle_core::DType;

fn as_f64(t: &HostTensor) -> HostTensor {
    HostTensor {
        dtype: DType::F64,
        ..t.clone()
    }
}

fn reject(argument: &str, reason: String) -> OracleResult {
    Err(Rejection::new(
        argument,
        reason,
        &["shape", "channel", "features"],
    ))
}

/// `torch.nn.Conv*d(x) = conv(x, weight) + bias[c]` (c the output channel, dim 1): the
/// convolution `conv` (one of `conv1d` … `conv_transpose2d`) taken exactly in f64, the bias
/// added, then one rounding to the dtype.
pub fn conv_with_bias(
    conv: fn(&HostTensor, &HostTensor, &ConvParams) -> OracleResult,
    x: &HostTensor,
    w: &HostTensor,
    bias: &HostTensor,
    p: &ConvParams,
) -> OracleResult {
    if x.dtype != w.dtype || x.dtype != bias.dtype {
        return reject("bias", "input, weight and bias differ in dtype".into());
    }
    let y = conv(&as_f64(x), &as_f64(w), p)?;
    let c = y.shape[1];
    if bias.shape != [c] {
        return reject(
            "bias",
            format!("bias {:?} is not one value per channel ({c})", bias.shape),
        );
    }
    let (_, _, inner) = lines(&y.shape, 1);
    let values = y
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| v + bias.values[(i / inner) % c])
        .collect();
    Ok(out(x.dtype, y.shape.clone(), values))
}

/// The per-channel statistics of `x` `[b, c, …]`: mean and biased variance over every dim but
/// dim 1 (PyTorch's batch statistics, which normalise with the biased variance).
fn channel_stats(x: &HostTensor) -> (Vec<f64>, Vec<f64>) {
    let (outer, c, inner) = lines(&x.shape, 1);
    let n = (outer * inner) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for (i, v) in x.values.iter().enumerate() {
        mean[(i / inner) % c] += v / n;
    }
    for (i, v) in x.values.iter().enumerate() {
        let ch = (i / inner) % c;
        var[ch] += (v - mean[ch]).powi(2) / n;
    }
    (mean, var)
}

/// `(x − mean[c]) / sqrt(var[c] + eps) · weight[c] + bias[c]` over `x` `[b, c, …]`, rounded once.
fn normalise(
    x: &HostTensor,
    mean: &[f64],
    var: &[f64],
    w: &HostTensor,
    b: &HostTensor,
    eps: f64,
) -> OracleResult {
    let (_, c, inner) = lines(&x.shape, 1);
    for (name, t) in [("weight", w), ("bias", b)] {
        if t.shape != [c] {
            return reject(name, format!("{name} {:?} is not one per channel", t.shape));
        }
    }
    let values = x
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / inner) % c;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * w.values[ch] + b.values[ch]
        })
        .collect();
    Ok(out(x.dtype, x.shape.clone(), values))
}

/// `torch.nn.BatchNorm*d` in eval mode: normalised by the given running mean and variance.
pub fn batch_norm_eval(
    x: &HostTensor,
    w: &HostTensor,
    b: &HostTensor,
    running_mean: &HostTensor,
    running_var: &HostTensor,
    eps: f64,
) -> OracleResult {
    normalise(x, &running_mean.values, &running_var.values, w, b, eps)
}

/// `torch.nn.BatchNorm*d` in training mode: normalised by the batch's per-channel mean and
/// biased variance (over every dim but dim 1).
pub fn batch_norm_train(x: &HostTensor, w: &HostTensor, b: &HostTensor, eps: f64) -> OracleResult {
    let (mean, var) = channel_stats(x);
    normalise(x, &mean, &var, w, b, eps)
}

/// The smallest per-channel biased variance of `x` over every dim but dim 1 (what training
/// normalises by): a channel constant over the batch gives 0.
pub fn smallest_batch_variance(x: &HostTensor) -> f64 {
    channel_stats(x).1.into_iter().fold(f64::INFINITY, f64::min)
}

/// The running variance after one training step of `torch.nn.BatchNorm*d`:
/// `(1 − momentum)·running_var + momentum·var_unbiased` (PyTorch updates with the unbiased
/// variance, `n/(n − 1)` times the biased one, n the elements per channel).
pub fn batch_norm_running_var(
    x: &HostTensor,
    running_var: &HostTensor,
    momentum: f64,
) -> OracleResult {
    let (outer, _, inner) = lines(&x.shape, 1);
    let n = (outer * inner) as f64;
    let (_, var) = channel_stats(x);
    let values = running_var
        .values
        .iter()
        .zip(&var)
        .map(|(r, v)| (1.0 - momentum) * r + momentum * v * n / (n - 1.0))
        .collect();
    Ok(out(x.dtype, running_var.shape.clone(), values))
}

/// `torch.nn.GroupNorm(groups, c, eps)`: each sample's channels split into `groups` contiguous
/// groups, each normalised by its own mean and biased variance, then `weight[c]`, `bias[c]`.
pub fn group_norm(
    x: &HostTensor,
    w: &HostTensor,
    b: &HostTensor,
    groups: usize,
    eps: f64,
) -> OracleResult {
    let (bsz, c, inner) = lines(&x.shape, 1);
    if x.shape.len() < 3 || c % groups != 0 {
        return reject(
            "x",
            format!("{:?} does not split into {groups} groups", x.shape),
        );
    }
    let per = c / groups * inner;
    let mut mean = vec![0.0; bsz * c];
    let mut var = vec![0.0; bsz * c];
    for g in 0..bsz * groups {
        let vals = &x.values[g * per..(g + 1) * per];
        let m = vals.iter().sum::<f64>() / per as f64;
        let v = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / per as f64;
        for ch in 0..c / groups {
            mean[g * (c / groups) + ch] = m;
            var[g * (c / groups) + ch] = v;
        }
    }
    // Normalise per (sample, channel): view x as [1, b·c, inner] with the weights tiled.
    let tile = |t: &HostTensor| HostTensor {
        shape: vec![bsz * c],
        values: (0..bsz * c).map(|i| t.values[i % c]).collect(),
        ..t.clone()
    };
    if w.shape != [c] || b.shape != [c] {
        return reject("weight", "weight and bias are not one per channel".into());
    }
    let flat = HostTensor {
        shape: vec![1, bsz * c, inner],
        ..x.clone()
    };
    let y = normalise(&flat, &mean, &var, &tile(w), &tile(b), eps)?;
    Ok(HostTensor {
        shape: x.shape.clone(),
        ..y
    })
}

/// What a rotating buffer of `max` slots along `dim` returns after appending `chunks` in turn,
/// in the layout candle-nn's `RotatingCache::positions` describes: each chunk shorter than
/// `max` is written from the write offset on, wrapping at `max`; a chunk of `max` positions or
/// more leaves its last `max` in slots `0..max`, resets the offset to 0 and is itself returned.
/// Otherwise the buffer is returned whole once `max` positions were seen, its first `seen`
/// slots before.
pub fn rotating_cache(chunks: &[&HostTensor], dim: usize, max: usize) -> OracleResult {
    let first = chunks[0];
    let (outer, _, inner) = lines(&first.shape, dim);
    let mut buf = vec![0.0; outer * max * inner];
    let (mut seen, mut offset) = (0, 0);
    let mut result = None;
    for ch in chunks {
        let (_, len, _) = lines(&ch.shape, dim);
        seen += len;
        // The chunk's positions that land in the buffer, and the slot of the first.
        let (skip, start) = if len >= max {
            (len - max, 0)
        } else {
            (0, offset)
        };
        for o in 0..outer {
            for i in skip..len {
                let slot = (start + i - skip) % max;
                for r in 0..inner {
                    buf[(o * max + slot) * inner + r] = ch.values[(o * len + i) * inner + r];
                }
            }
        }
        if len >= max {
            offset = 0;
            result = Some((*ch).clone());
            continue;
        }
        offset = (offset + len) % max;
        let keep = seen.min(max);
        let mut shape = first.shape.clone();
        shape[dim] = keep;
        let mut values = Vec::with_capacity(outer * keep * inner);
        for o in 0..outer {
            values.extend_from_slice(&buf[o * max * inner..(o * max + keep) * inner]);
        }
        result = Some(out(first.dtype, shape, values));
    }
    Ok(result.expect("at least one chunk"))
}

/// What candle-nn's `ScatteredKvCache` of `context` slots along dim 2 holds after appending
/// `chunks` `(b, h, s, d)` with every batch entry active, as its `ScatteredCacheBuilder`'s
/// indices and mask describe it: stream position `p` sits in slot `p mod context` (the
/// builder's index advances by one per position and wraps), so a chunk of `context` positions
/// or more leaves its last `context` there. The last append returns the chunk itself when it
/// is that long (the cache's documented shortcut), the whole buffer otherwise.
pub fn scattered_cache(chunks: &[&HostTensor], context: usize) -> OracleResult {
    let first = chunks[0];
    let (outer, _, inner) = lines(&first.shape, 2);
    let mut buf = vec![0.0; outer * context * inner];
    let mut seen = 0;
    let mut result = None;
    for ch in chunks {
        let (_, len, _) = lines(&ch.shape, 2);
        for o in 0..outer {
            for i in len.saturating_sub(context)..len {
                let slot = (seen + i) % context;
                for r in 0..inner {
                    buf[(o * context + slot) * inner + r] = ch.values[(o * len + i) * inner + r];
                }
            }
        }
        seen += len;
        result = Some(if len >= context {
            (*ch).clone()
        } else {
            let mut shape = first.shape.clone();
            shape[2] = context;
            out(first.dtype, shape, buf.clone())
        });
    }
    Ok(result.expect("at least one chunk"))
}

/// candle-nn's `InterleavedKvCache` layout: k and v `(1, h, s, d)` become `(s, h, 2·d)`, the
/// d values of k then the d values of v for each position and head.
pub fn interleave_kv(k: &HostTensor, v: &HostTensor) -> OracleResult {
    let (h, s, d) = match k.shape[..] {
        [1, h, s, d] if v.shape == k.shape => (h, s, d),
        _ => {
            return reject(
                "k",
                format!("k {:?}, v {:?} are not (1, h, s, d)", k.shape, v.shape),
            )
        }
    };
    let mut values = Vec::with_capacity(2 * h * s * d);
    for si in 0..s {
        for hi in 0..h {
            let at = (hi * s + si) * d;
            values.extend_from_slice(&k.values[at..at + d]);
            values.extend_from_slice(&v.values[at..at + d]);
        }
    }
    Ok(out(k.dtype, vec![s, h, 2 * d], values))
}
