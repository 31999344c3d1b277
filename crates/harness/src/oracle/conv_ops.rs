//! Reference convolutions: direct nested loops over every output element and every kernel tap,
//! in f64, rounded once to the dtype. The semantics are PyTorch's (`torch.nn.functional.conv1d`,
//! `conv2d`, `conv_transpose1d`, `conv_transpose2d`), which candle's `Tensor::conv*` mirror:
//! inputs `[batch, channels, spatial…]`; a convolution's kernel is
//! `[c_out, c_in / groups, k…]`, a transposed convolution's `[c_in, c_out / groups, k…]`; the
//! same padding, stride and dilation on every spatial dim; a transposed convolution's output
//! is `(in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1` long, and
//! `output_padding` must stay below the stride or the dilation (PyTorch's rule). No code is
//! shared with candle.

use super::sweep_ops::out;
use super::{OracleResult, Rejection};
use crate::host::HostTensor;

/// Padding, stride, dilation, groups and (transposed only) output padding, PyTorch's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub padding: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    pub output_padding: usize,
}

fn reject(argument: &str, reason: String) -> OracleResult {
    Err(Rejection::new(
        argument,
        reason,
        &["shape", "channel", "groups", "kernel"],
    ))
}

/// The spatial dims of `x` (rank 2 + `spatial`) and of `w`, as `[h, w]` with `h = 1` for 1-D,
/// or the rejection when ranks, channels or dtypes do not fit.
struct Geometry {
    b: usize,
    c_in: usize,
    /// Kernel dims 0 and 1.
    k0: usize,
    k1: usize,
    x_hw: [usize; 2],
    k_hw: [usize; 2],
}

fn geometry(x: &HostTensor, w: &HostTensor, spatial: usize) -> Result<Geometry, Rejection> {
    let rank = spatial + 2;
    if x.shape.len() != rank || w.shape.len() != rank || x.dtype != w.dtype {
        return Err(Rejection::new(
            "kernel",
            format!(
                "input {:?} and kernel {:?} are not both rank {rank} of one dtype",
                x.shape, w.shape
            ),
            &["shape", "rank", "dtype"],
        ));
    }
    let hw = |s: &[usize]| {
        if spatial == 1 {
            [1, s[2]]
        } else {
            [s[2], s[3]]
        }
    };
    Ok(Geometry {
        b: x.shape[0],
        c_in: x.shape[1],
        k0: w.shape[0],
        k1: w.shape[1],
        x_hw: hw(&x.shape),
        k_hw: hw(&w.shape),
    })
}

/// The padding of spatial dim `a` (`[h, w]`): none along the dummy h of a 1-D convolution.
fn pad(p: &ConvParams, spatial: usize, a: usize) -> isize {
    if spatial == 1 && a == 0 {
        0
    } else {
        p.padding as isize
    }
}

fn out_shape(b: usize, c: usize, o: [usize; 2], spatial: usize) -> Vec<usize> {
    if spatial == 1 {
        vec![b, c, o[1]]
    } else {
        vec![b, c, o[0], o[1]]
    }
}

/// A convolution (cross-correlation, as PyTorch's): `out[n, co, o] = Σ_{ci, t} x[n, g·cin_g + ci,
/// o·stride − padding + t·dilation] · w[co, ci, t]`, with `g = co / (c_out / groups)` and
/// out-of-range input positions reading zero.
fn conv(x: &HostTensor, w: &HostTensor, p: &ConvParams, spatial: usize) -> OracleResult {
    let g = geometry(x, w, spatial)?;
    let (c_out, cin_g) = (g.k0, g.k1);
    if p.groups == 0 || p.stride == 0 || p.dilation == 0 {
        return reject(
            "groups",
            "groups, stride and dilation must be positive".into(),
        );
    }
    if g.c_in != cin_g * p.groups || c_out % p.groups != 0 {
        return reject(
            "kernel",
            format!(
                "input channels {} and kernel {:?} do not fit {} groups",
                g.c_in, w.shape, p.groups
            ),
        );
    }
    let mut o = [0usize; 2];
    #[allow(clippy::needless_range_loop)] // `a` indexes four per-axis arrays at once
    for a in 0..2 {
        let span = g.x_hw[a] as isize + 2 * pad(p, spatial, a);
        let reach = (p.dilation * (g.k_hw[a].max(1) - 1) + 1) as isize;
        if g.k_hw[a] == 0 || span < reach {
            return reject(
                "kernel",
                format!("kernel {:?} is larger than the padded input", w.shape),
            );
        }
        o[a] = ((span - reach) as usize) / p.stride + 1;
    }
    let cout_g = c_out / p.groups;
    let [xh, xw] = g.x_hw;
    let [kh, kw] = g.k_hw;
    let mut values = Vec::with_capacity(g.b * c_out * o[0] * o[1]);
    for n in 0..g.b {
        for co in 0..c_out {
            let c0 = (co / cout_g) * cin_g;
            for oh in 0..o[0] {
                for ow in 0..o[1] {
                    let mut acc = 0.0;
                    for ci in 0..cin_g {
                        for th in 0..kh {
                            let ih =
                                (oh * p.stride + th * p.dilation) as isize - pad(p, spatial, 0);
                            if ih < 0 || ih >= xh as isize {
                                continue;
                            }
                            for tw in 0..kw {
                                let iw =
                                    (ow * p.stride + tw * p.dilation) as isize - pad(p, spatial, 1);
                                if iw < 0 || iw >= xw as isize {
                                    continue;
                                }
                                let xi =
                                    ((n * g.c_in + c0 + ci) * xh + ih as usize) * xw + iw as usize;
                                let wi = ((co * cin_g + ci) * kh + th) * kw + tw;
                                acc += x.values[xi] * w.values[wi];
                            }
                        }
                    }
                    values.push(acc);
                }
            }
        }
    }
    Ok(out(x.dtype, out_shape(g.b, c_out, o, spatial), values))
}

/// A transposed convolution (the gradient of `conv` with respect to its input, PyTorch's
/// `conv_transpose*d`): every input element `x[n, ci, i]` adds `x · w[ci, co, t]` to
/// `out[n, g·cout_g + co, i·stride − padding + t·dilation]` when that position is in range,
/// with `g = ci / (c_in / groups)`.
fn conv_transpose(x: &HostTensor, w: &HostTensor, p: &ConvParams, spatial: usize) -> OracleResult {
    let g = geometry(x, w, spatial)?;
    let (c_in_k, cout_g) = (g.k0, g.k1);
    if p.groups == 0 || p.stride == 0 || p.dilation == 0 {
        return reject(
            "groups",
            "groups, stride and dilation must be positive".into(),
        );
    }
    if g.c_in != c_in_k || g.c_in % p.groups != 0 {
        return reject(
            "kernel",
            format!(
                "input channels {} and kernel {:?} do not fit {} groups",
                g.c_in, w.shape, p.groups
            ),
        );
    }
    if p.output_padding >= p.stride.max(p.dilation) {
        return reject(
            "output_padding",
            format!(
                "output_padding {} must be smaller than the stride {} or the dilation {}",
                p.output_padding, p.stride, p.dilation
            ),
        );
    }
    let mut o = [0usize; 2];
    #[allow(clippy::needless_range_loop)] // `a` indexes four per-axis arrays at once
    for a in 0..2 {
        let (op, pd) = if spatial == 1 && a == 0 {
            (0, 0)
        } else {
            (p.output_padding as isize, p.padding as isize)
        };
        let len = (g.x_hw[a] as isize - 1) * p.stride as isize
            + (p.dilation * (g.k_hw[a].max(1) - 1)) as isize
            + op
            + 1
            - 2 * pd;
        if g.x_hw[a] == 0 || g.k_hw[a] == 0 || len < 1 {
            return reject(
                "padding",
                format!("the padding {} leaves an empty output", p.padding),
            );
        }
        o[a] = len as usize;
    }
    let c_out = cout_g * p.groups;
    let cin_g = g.c_in / p.groups;
    let [xh, xw] = g.x_hw;
    let [kh, kw] = g.k_hw;
    let mut values = vec![0.0; g.b * c_out * o[0] * o[1]];
    for n in 0..g.b {
        for ci in 0..g.c_in {
            let grp = ci / cin_g;
            for ih in 0..xh {
                for iw in 0..xw {
                    let xv = x.values[((n * g.c_in + ci) * xh + ih) * xw + iw];
                    for co in 0..cout_g {
                        for th in 0..kh {
                            let oh =
                                (ih * p.stride + th * p.dilation) as isize - pad(p, spatial, 0);
                            if oh < 0 || oh >= o[0] as isize {
                                continue;
                            }
                            for tw in 0..kw {
                                let ow =
                                    (iw * p.stride + tw * p.dilation) as isize - pad(p, spatial, 1);
                                if ow < 0 || ow >= o[1] as isize {
                                    continue;
                                }
                                let wv = w.values[((ci * cout_g + co) * kh + th) * kw + tw];
                                let oi = ((n * c_out + grp * cout_g + co) * o[0] + oh as usize)
                                    * o[1]
                                    + ow as usize;
                                values[oi] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out(x.dtype, out_shape(g.b, c_out, o, spatial), values))
}

/// `x.conv1d(w, padding, stride, dilation, groups)`: x `[b, c_in, l]`, w `[c_out, c_in/groups, k]`.
pub fn conv1d(x: &HostTensor, w: &HostTensor, p: &ConvParams) -> OracleResult {
    conv(x, w, p, 1)
}

/// `x.conv2d(w, padding, stride, dilation, groups)`: x `[b, c_in, h, w]`,
/// w `[c_out, c_in/groups, kh, kw]`.
pub fn conv2d(x: &HostTensor, w: &HostTensor, p: &ConvParams) -> OracleResult {
    conv(x, w, p, 2)
}

/// `x.conv_transpose1d(w, padding, output_padding, stride, dilation, groups)`: x `[b, c_in, l]`,
/// w `[c_in, c_out/groups, k]`.
pub fn conv_transpose1d(x: &HostTensor, w: &HostTensor, p: &ConvParams) -> OracleResult {
    conv_transpose(x, w, p, 1)
}

/// `x.conv_transpose2d(w, padding, output_padding, stride, dilation)` (groups 1 in candle):
/// x `[b, c_in, h, w]`, w `[c_in, c_out/groups, kh, kw]`.
pub fn conv_transpose2d(x: &HostTensor, w: &HostTensor, p: &ConvParams) -> OracleResult {
    conv_transpose(x, w, p, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn t(shape: &[usize], v: &[f64]) -> HostTensor {
        HostTensor::new(DType::F64, shape, v.to_vec())
    }

    const PLAIN: ConvParams = ConvParams {
        padding: 0,
        stride: 1,
        dilation: 1,
        groups: 1,
        output_padding: 0,
    };

    /// Values worked by hand (PyTorch gives the same).
    #[test]
    fn conv1d_by_hand() {
        let x = t(&[1, 1, 4], &[1., 2., 3., 4.]);
        let w = t(&[1, 1, 2], &[1., 10.]);
        assert_eq!(conv1d(&x, &w, &PLAIN).unwrap().values, vec![21., 32., 43.]);
        let p = ConvParams {
            padding: 1,
            stride: 2,
            ..PLAIN
        };
        // padded: [0,1,2,3,4,0] → windows at 0, 2, 4: 0+10, 2+30, 4+0.
        assert_eq!(conv1d(&x, &w, &p).unwrap().values, vec![10., 32., 4.]);
        let p = ConvParams {
            dilation: 2,
            ..PLAIN
        };
        assert_eq!(conv1d(&x, &w, &p).unwrap().values, vec![31., 42.]);
        // Two groups of one channel each.
        let x = t(&[1, 2, 2], &[1., 2., 3., 4.]);
        let w = t(&[2, 1, 1], &[1., 10.]);
        let p = ConvParams { groups: 2, ..PLAIN };
        assert_eq!(conv1d(&x, &w, &p).unwrap().values, vec![1., 2., 30., 40.]);
    }

    #[test]
    fn conv_transpose1d_by_hand() {
        let x = t(&[1, 1, 2], &[1., 2.]);
        let w = t(&[1, 1, 2], &[1., 10.]);
        assert_eq!(
            conv_transpose1d(&x, &w, &PLAIN).unwrap().values,
            vec![1., 12., 20.]
        );
        let p = ConvParams {
            stride: 2,
            output_padding: 1,
            padding: 1,
            ..PLAIN
        };
        // Full: [1, 10, 2, 20, 0(op)] without padding; padding 1 drops one each side.
        assert_eq!(
            conv_transpose1d(&x, &w, &p).unwrap().values,
            vec![10., 2., 20.]
        );
        let bad = ConvParams {
            output_padding: 1,
            ..PLAIN
        };
        assert!(conv_transpose1d(&x, &w, &bad).is_err());
    }

    /// The transposed convolution is the adjoint of the convolution: <conv(x), y> = <x, convT(y)>.
    #[test]
    fn transposed_is_the_adjoint() {
        let p = ConvParams {
            padding: 1,
            stride: 2,
            dilation: 1,
            groups: 2,
            output_padding: 0,
        };
        let x = HostTensor::from_fn(DType::F64, &[2, 4, 5, 6], |i| ((i * 7) % 11) as f64 - 5.);
        let w = HostTensor::from_fn(DType::F64, &[6, 2, 3, 2], |i| ((i * 5) % 7) as f64 - 3.);
        let y = conv2d(&x, &w, &p).unwrap();
        let z = HostTensor::from_fn(DType::F64, &y.shape, |i| ((i * 3) % 5) as f64 - 2.);
        // A convolution's kernel [c_out, c_in/groups, …] is, read as a transposed convolution's
        // [c_in, c_out/groups, …], the kernel of its adjoint (PyTorch's convention).
        let back = conv_transpose2d(&z, &w, &p).unwrap();
        assert_eq!(back.shape, x.shape);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert_eq!(dot(&y.values, &z.values), dot(&x.values, &back.values));
    }
}
