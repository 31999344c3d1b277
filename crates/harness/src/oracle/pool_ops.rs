//! Reference implementations of pooling and resampling: 2-D average and max pooling, nearest and
//! bilinear upsampling, pixel (un)shuffle and replication padding, on `(batch, channels, …)`
//! tensors, in f64 and rounded once to the output dtype.
//!
//! candle's doc comments give the shapes and cite PyTorch's pages (`AvgPool2d`, `MaxPool2d`,
//! `ReplicationPad2d`, `interpolate`); where they leave a rule open, PyTorch's is the contract
//! and each function says which:
//! - pooling: no padding, no ceil mode, windows start at `stride · o` and the last partial
//!   window is dropped (`out = (in − k) / s + 1`); the average divides by the full window;
//!   a NaN anywhere in a max window makes that output NaN (PyTorch's `max_pool2d`).
//! - nearest: PyTorch's legacy `mode="nearest"`, source index `floor(i · in / out)` clamped to
//!   `in − 1`, computed here in exact integers.
//! - bilinear: PyTorch's `area_pixel_compute_source_index`: with `align_corners` the source of
//!   output `i` is `i · (in − 1) / (out − 1)` (0 when `out = 1`); without it, it is
//!   `(i + 0.5) · scale − 0.5` clamped at 0, where `scale` is `1 / scale_factor` when a scale
//!   factor is given (`interpolate(scale_factor=…)`, the output size being
//!   `floor(in · scale_factor)`) and `in / out` otherwise; the upper neighbour is clamped to
//!   `in − 1`.

use super::sweep_ops::out;
use super::{OracleResult, Rejection};
use crate::host::HostTensor;

fn check_rank(t: &HostTensor, rank: usize) -> Result<(), Rejection> {
    if t.shape.len() != rank {
        return Err(Rejection::new(
            "self",
            format!("expected a rank-{rank} tensor, got shape {:?}", t.shape),
            &["rank", "dims", "unexpected"],
        ));
    }
    Ok(())
}

/// `(n·c, h, w)` of a rank-4 tensor: its planes and their size.
fn planes(t: &HostTensor) -> (usize, usize, usize) {
    let s = &t.shape;
    (s[0] * s[1], s[2], s[3])
}

/// A 2-D pooling over the last two dims of `t` with `reduce` over each window's values.
fn pool2d(
    t: &HostTensor,
    k: (usize, usize),
    s: (usize, usize),
    reduce: impl Fn(&[f64]) -> f64,
) -> OracleResult {
    check_rank(t, 4)?;
    let (p, h, w) = planes(t);
    if k.0 == 0 || k.1 == 0 || s.0 == 0 || s.1 == 0 {
        return Err(Rejection::new(
            "kernel_size",
            "kernel and stride must be positive".into(),
            &["kernel", "stride"],
        ));
    }
    if h < k.0 || w < k.1 {
        return Err(Rejection::new(
            "kernel_size",
            format!("kernel {k:?} is larger than the input {h}×{w}"),
            &["kernel", "larger"],
        ));
    }
    let (ho, wo) = ((h - k.0) / s.0 + 1, (w - k.1) / s.1 + 1);
    let mut values = Vec::with_capacity(p * ho * wo);
    let mut window = Vec::with_capacity(k.0 * k.1);
    for plane in 0..p {
        for oy in 0..ho {
            for ox in 0..wo {
                window.clear();
                for dy in 0..k.0 {
                    for dx in 0..k.1 {
                        let (y, x) = (oy * s.0 + dy, ox * s.1 + dx);
                        window.push(t.values[(plane * h + y) * w + x]);
                    }
                }
                values.push(reduce(&window));
            }
        }
    }
    let mut shape = t.shape.clone();
    shape[2] = ho;
    shape[3] = wo;
    Ok(out(t.dtype, shape, values))
}

/// `t.avg_pool2d_with_stride(k, s)`: the mean of each full window (PyTorch's `avg_pool2d`
/// without padding, `count_include_pad` moot).
pub fn avg_pool2d(t: &HostTensor, k: (usize, usize), s: (usize, usize)) -> OracleResult {
    pool2d(t, k, s, |w| w.iter().sum::<f64>() / w.len() as f64)
}

/// `t.max_pool2d_with_stride(k, s)`: the maximum of each window; a NaN in the window gives NaN
/// wherever it sits (PyTorch's `max_pool2d` propagates NaN).
pub fn max_pool2d(t: &HostTensor, k: (usize, usize), s: (usize, usize)) -> OracleResult {
    pool2d(t, k, s, |w| {
        if w.iter().any(|v| v.is_nan()) {
            f64::NAN
        } else {
            w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }
    })
}

/// PyTorch's legacy nearest source index: `floor(i · n_in / n_out)`, at most `n_in − 1`.
pub fn nearest_index(i: usize, n_in: usize, n_out: usize) -> usize {
    (i * n_in / n_out).min(n_in - 1)
}

fn check_target(sizes: &[usize]) -> Result<(), Rejection> {
    if sizes.contains(&0) {
        return Err(Rejection::new(
            "target_size",
            "input and output sizes must be positive".into(),
            &["size"],
        ));
    }
    Ok(())
}

/// `t.upsample_nearest1d(target)` on `(n, c, l)`.
pub fn upsample_nearest1d(t: &HostTensor, target: usize) -> OracleResult {
    check_rank(t, 3)?;
    let (p, l) = (t.shape[0] * t.shape[1], t.shape[2]);
    check_target(&[l, target])?;
    let values = (0..p)
        .flat_map(|plane| (0..target).map(move |i| (plane, i)))
        .map(|(plane, i)| t.values[plane * l + nearest_index(i, l, target)])
        .collect();
    Ok(out(t.dtype, vec![t.shape[0], t.shape[1], target], values))
}

/// `t.upsample_nearest2d(th, tw)` on `(n, c, h, w)`.
pub fn upsample_nearest2d(t: &HostTensor, th: usize, tw: usize) -> OracleResult {
    check_rank(t, 4)?;
    let (p, h, w) = planes(t);
    check_target(&[h, w, th, tw])?;
    let mut values = Vec::with_capacity(p * th * tw);
    for plane in 0..p {
        for y in 0..th {
            for x in 0..tw {
                let (sy, sx) = (nearest_index(y, h, th), nearest_index(x, w, tw));
                values.push(t.values[(plane * h + sy) * w + sx]);
            }
        }
    }
    Ok(out(t.dtype, vec![t.shape[0], t.shape[1], th, tw], values))
}

/// The two source rows (or columns) of output `i` and the weight of the second, by PyTorch's
/// `area_pixel_compute_source_index` (see the module comment); `scale_factor` is the one the
/// caller gave (`None`: sized by target).
pub fn bilinear_source(
    i: usize,
    n_in: usize,
    n_out: usize,
    align_corners: bool,
    scale_factor: Option<f64>,
) -> (usize, usize, f64) {
    // PyTorch's order of operations: the scale first, then `scale · i`.
    let src = if align_corners {
        if n_out > 1 {
            (n_in - 1) as f64 / (n_out - 1) as f64 * i as f64
        } else {
            0.0
        }
    } else {
        let scale = match scale_factor {
            Some(f) => 1.0 / f,
            None => n_in as f64 / n_out as f64,
        };
        ((i as f64 + 0.5) * scale - 0.5).max(0.0)
    };
    let i0 = (src.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, src - i0 as f64)
}

/// `t.upsample_bilinear2d(th, tw, align_corners)` (`scale: None`) or
/// `t.upsample_bilinear2d_with_scale(sh, sw, align_corners)` (`scale: Some((sh, sw))`, the
/// output being `floor(h · sh) × floor(w · sw)`).
pub fn upsample_bilinear2d(
    t: &HostTensor,
    target: (usize, usize),
    align_corners: bool,
    scale: Option<(f64, f64)>,
) -> OracleResult {
    check_rank(t, 4)?;
    let (p, h, w) = planes(t);
    let (th, tw) = match scale {
        Some((sh, sw)) => (
            (h as f64 * sh).floor() as usize,
            (w as f64 * sw).floor() as usize,
        ),
        None => target,
    };
    check_target(&[h, w, th, tw])?;
    let rows: Vec<_> = (0..th)
        .map(|y| bilinear_source(y, h, th, align_corners, scale.map(|s| s.0)))
        .collect();
    let cols: Vec<_> = (0..tw)
        .map(|x| bilinear_source(x, w, tw, align_corners, scale.map(|s| s.1)))
        .collect();
    let mut values = Vec::with_capacity(p * th * tw);
    for plane in 0..p {
        let at = |y: usize, x: usize| t.values[(plane * h + y) * w + x];
        for &(y0, y1, ly) in &rows {
            for &(x0, x1, lx) in &cols {
                let top = at(y0, x0) * (1.0 - lx) + at(y0, x1) * lx;
                let bottom = at(y1, x0) * (1.0 - lx) + at(y1, x1) * lx;
                values.push(top * (1.0 - ly) + bottom * ly);
            }
        }
    }
    Ok(out(t.dtype, vec![t.shape[0], t.shape[1], th, tw], values))
}

/// `pixel_shuffle(t, r)`: `(n, c·r², h, w)` → `(n, c, h·r, w·r)`, output `(ch, y·r + i, x·r + j)`
/// taken from input channel `ch·r² + i·r + j` at `(y, x)` (PyTorch's `pixel_shuffle`).
pub fn pixel_shuffle(t: &HostTensor, r: usize) -> OracleResult {
    check_rank(t, 4)?;
    let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    if r == 0 || c % (r * r) != 0 {
        return Err(Rejection::new(
            "upscale_factor",
            format!("{c} channels are not divisible by the square of {r}"),
            &["shape", "reshape", "channels"],
        ));
    }
    let oc = c / (r * r);
    let (oh, ow) = (h * r, w * r);
    let mut values = Vec::with_capacity(t.values.len());
    for b in 0..n {
        for ch in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let ic = ch * r * r + (oy % r) * r + ox % r;
                    values.push(t.values[((b * c + ic) * h + oy / r) * w + ox / r]);
                }
            }
        }
    }
    Ok(out(t.dtype, vec![n, oc, oh, ow], values))
}

/// `pixel_unshuffle(t, r)`: the inverse of `pixel_shuffle`, `(n, c, h·r, w·r)` → `(n, c·r², h, w)`.
pub fn pixel_unshuffle(t: &HostTensor, r: usize) -> OracleResult {
    check_rank(t, 4)?;
    let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    if r == 0 || h % r != 0 || w % r != 0 {
        return Err(Rejection::new(
            "downscale_factor",
            format!("{h}×{w} is not divisible by {r}"),
            &["shape", "reshape", "divisible"],
        ));
    }
    let (oh, ow, oc) = (h / r, w / r, c * r * r);
    let mut values = Vec::with_capacity(t.values.len());
    for b in 0..n {
        for ch in 0..oc {
            let (ic, i, j) = (ch / (r * r), (ch / r) % r, ch % r);
            for y in 0..oh {
                for x in 0..ow {
                    values.push(t.values[((b * c + ic) * h + y * r + i) * w + x * r + j]);
                }
            }
        }
    }
    Ok(out(t.dtype, vec![n, oc, oh, ow], values))
}

/// `replication_pad2d(t, pad)`: each side of the last two dims extended by `pad` copies of the
/// edge (PyTorch's `ReplicationPad2d`): output `(y, x)` reads input
/// `(clamp(y − pad, 0, h − 1), clamp(x − pad, 0, w − 1))`.
pub fn replication_pad2d(t: &HostTensor, pad: usize) -> OracleResult {
    check_rank(t, 4)?;
    let (p, h, w) = planes(t);
    let (oh, ow) = (h + 2 * pad, w + 2 * pad);
    let mut values = Vec::with_capacity(p * oh * ow);
    for plane in 0..p {
        for y in 0..oh {
            for x in 0..ow {
                let sy = y.saturating_sub(pad).min(h - 1);
                let sx = x.saturating_sub(pad).min(w - 1);
                values.push(t.values[(plane * h + sy) * w + sx]);
            }
        }
    }
    Ok(out(t.dtype, vec![t.shape[0], t.shape[1], oh, ow], values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn iota(shape: &[usize]) -> HostTensor {
        HostTensor::from_fn(DType::F64, shape, |i| i as f64)
    }

    #[test]
    fn pooling_drops_the_partial_window_and_max_keeps_nan() {
        // 1×1×3×3 of 0..9, kernel 2, stride 2: one window {0, 1, 3, 4}.
        let t = iota(&[1, 1, 3, 3]);
        assert_eq!(avg_pool2d(&t, (2, 2), (2, 2)).unwrap().values, vec![2.0]);
        // Stride 1: four windows.
        let m = max_pool2d(&t, (2, 2), (1, 1)).unwrap();
        assert_eq!(
            (m.shape.clone(), m.values),
            (vec![1, 1, 2, 2], vec![4., 5., 7., 8.])
        );
        let mut n = t.clone();
        n.values[4] = f64::NAN;
        assert!(max_pool2d(&n, (2, 2), (1, 1))
            .unwrap()
            .values
            .iter()
            .all(|v| v.is_nan()));
    }

    #[test]
    fn nearest_and_bilinear_follow_pytorch() {
        // torch.nn.functional.interpolate(arange(3), size=5, mode="nearest") → [0, 0, 1, 1, 2].
        let idx: Vec<usize> = (0..5).map(|i| nearest_index(i, 3, 5)).collect();
        assert_eq!(idx, vec![0, 0, 1, 1, 2]);
        // interpolate(arange(2.).view(1,1,1,2), size=(1,4), mode="bilinear") → [0, .25, .75, 1].
        let t = iota(&[1, 1, 1, 2]);
        let b = upsample_bilinear2d(&t, (1, 4), false, None).unwrap();
        assert_eq!(b.values, vec![0.0, 0.25, 0.75, 1.0]);
        // align_corners=True: [0, 1/3, 2/3, 1].
        let a = upsample_bilinear2d(&t, (1, 4), true, None).unwrap();
        assert!((a.values[1] - 1.0 / 3.0).abs() < 1e-15);
        // scale_factor 1.25 keeps 2 columns but samples at (i + .5) / 1.25 − .5: [0, .7].
        let s = upsample_bilinear2d(&t, (0, 0), false, Some((1.0, 1.25))).unwrap();
        assert_eq!(s.shape, vec![1, 1, 1, 2]);
        assert!((s.values[1] - 0.7).abs() < 1e-15);
    }

    #[test]
    fn pixel_unshuffle_inverts_pixel_shuffle_and_pad_replicates_edges() {
        let t = iota(&[1, 8, 2, 3]);
        let s = pixel_shuffle(&t, 2).unwrap();
        assert_eq!(s.shape, vec![1, 2, 4, 6]);
        // Output (0, 0, 1) is input channel 1 at (0, 0).
        assert_eq!(s.values[1], 6.0);
        assert_eq!(pixel_unshuffle(&s, 2).unwrap(), t);
        let p = replication_pad2d(&iota(&[1, 1, 1, 2]), 1).unwrap();
        assert_eq!(
            p.values,
            vec![0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 1., 1.]
        );
    }
}
