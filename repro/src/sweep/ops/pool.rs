//! Pooling and resampling: 2-D average and max pooling, nearest and bilinear upsampling, and
//! candle-nn's pixel (un)shuffle and replication padding, on tiny `(n, c, h, w)` inputs (n, c at
//! most 2, h, w at most 7 before upsampling).
//!
//! Only the ops whose backward candle defines for every cell they plan take `grads`: pooling with
//! the kernel as stride, nearest upsampling by a whole uniform factor, pixel (un)shuffle and the
//! padding. candle bails for the rest (`backward not supported for avgpool2d if ksize … !=
//! stride …`, `… for non integer upscaling factors`, `… for upsample_bilinear2d`), which is a
//! stated limit, not a wrong answer.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::oracle;

/// `(n, c)` from knobs 0 and 1, at most 2 each.
fn nc(c: &Cell) -> (usize, usize) {
    (k(c, 0).min(2), k(c, 1).min(2))
}

/// One `x` of `(n, c, h, w)` with `h`, `w` from knobs 2 and 3 added to `min` (at most 7).
fn image(c: &Cell, rng: &mut Rng, min: (usize, usize)) -> Vec<Input> {
    let (n, ch) = nc(c);
    let h = (min.0 + k(c, 2) - 1).min(7);
    let w = (min.1 + k(c, 3) - 1).min(7);
    vec![data("x", c, c.dtype(), &[n, ch, h, w], rng)]
}

/// The pooling ops' kernels (and strides, for the `_with_stride` ones), per variant.
const KERNELS: [(usize, usize); 2] = [(2, 2), (2, 3)];
const STRIDED: [((usize, usize), (usize, usize)); 2] = [((2, 2), (1, 1)), ((3, 2), (2, 3))];

fn pair((a, b): (usize, usize)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("({a}, {b})")
    }
}

macro_rules! pool_op {
    ($name:literal, $method:ident, $oracle:ident, $error:ident) => {
        Op {
            name: $name,
            call: concat!("x.", stringify!($method), "(k)"),
            dtypes: FLOATS,
            aux: NONE,
            variants: &["k 2", "k (2, 3)"],
            knobs: 4,
            inputs: |c, rng| image(c, rng, KERNELS[c.variant]),
            candle: |c, t| t[0].$method(KERNELS[c.variant]),
            oracle: |c, h| oracle::$oracle(&h[0], KERNELS[c.variant], KERNELS[c.variant]).into(),
            code: |c, v| {
                format!(
                    "{}.{}({})?",
                    v[0],
                    stringify!($method),
                    pair(KERNELS[c.variant])
                )
            },
            grads: &[0],
            check: OutputCheck::Values,
            error: ErrorModel::$error,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

macro_rules! strided_pool_op {
    ($name:literal, $method:ident, $oracle:ident, $error:ident, $nan:expr) => {
        Op {
            name: $name,
            call: concat!("x.", stringify!($method), "(kernel, stride)"),
            dtypes: FLOATS,
            aux: NONE,
            variants: &["k 2 s 1", "k (3, 2) s (2, 3)"],
            knobs: 4,
            inputs: |c, rng| {
                let mut x = image(c, rng, STRIDED[c.variant].0);
                if $nan {
                    nan_at_1_1(&mut x[0].host);
                }
                x
            },
            candle: |c, t| t[0].$method(STRIDED[c.variant].0, STRIDED[c.variant].1),
            oracle: |c, h| {
                let (k, s) = STRIDED[c.variant];
                oracle::$oracle(&h[0], k, s).into()
            },
            code: |c, v| {
                let (k, s) = STRIDED[c.variant];
                format!(
                    "{}.{}({}, {})?",
                    v[0],
                    stringify!($method),
                    pair(k),
                    pair(s)
                )
            },
            grads: &[],
            check: OutputCheck::Values,
            error: ErrorModel::$error,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

/// A NaN at `(y, x) = (1, 1)` of every plane: first in the windows that start there, inside the
/// windows that start before it.
fn nan_at_1_1(h: &mut harness::host::HostTensor) {
    let (hh, w) = (h.shape[2], h.shape[3]);
    let planes = h.shape[0] * h.shape[1];
    for p in 0..planes {
        h.values[(p * hh + 1) * w + 1] = f64::NAN;
    }
}

pub(super) const AVG_POOL2D: Op = pool_op!("avg_pool2d", avg_pool2d, avg_pool2d, Sum);
pub(super) const MAX_POOL2D: Op = pool_op!("max_pool2d", max_pool2d, max_pool2d, Rounded);
pub(super) const AVG_POOL2D_WITH_STRIDE: Op = strided_pool_op!(
    "avg_pool2d_with_stride",
    avg_pool2d_with_stride,
    avg_pool2d,
    Sum,
    false
);
pub(super) const MAX_POOL2D_WITH_STRIDE: Op = strided_pool_op!(
    "max_pool2d_with_stride",
    max_pool2d_with_stride,
    max_pool2d,
    Rounded,
    false
);
/// max_pool2d_with_stride with a NaN inside windows (PyTorch propagates it).
pub(super) const MAX_POOL2D_NAN: Op = strided_pool_op!(
    "max_pool2d_nan",
    max_pool2d_with_stride,
    max_pool2d,
    Rounded,
    true
);

/// Whole uniform factors, per variant: ×2 through `upsample_nearest*`, ×3 through the
/// `interpolate*` alias.
const FACTORS: [usize; 2] = [2, 3];

pub(super) const UPSAMPLE_NEAREST1D: Op = Op {
    name: "upsample_nearest1d",
    call: "x.upsample_nearest1d(l · f) / x.interpolate1d(l · f)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["×2 upsample_nearest1d", "×3 interpolate1d"],
    knobs: 3,
    inputs: |c, rng| {
        let (n, ch) = nc(c);
        vec![data("x", c, c.dtype(), &[n, ch, k(c, 2).min(7)], rng)]
    },
    candle: |c, t| {
        let l = t[0].dim(2)? * FACTORS[c.variant];
        match c.variant {
            0 => t[0].upsample_nearest1d(l),
            _ => t[0].interpolate1d(l),
        }
    },
    oracle: |c, h| oracle::upsample_nearest1d(&h[0], h[0].shape[2] * FACTORS[c.variant]).into(),
    code: |c, v| {
        let m = ["upsample_nearest1d", "interpolate1d"][c.variant];
        format!("{x}.{m}({x}.dim(2)? * {})?", FACTORS[c.variant], x = v[0])
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const UPSAMPLE_NEAREST2D: Op = Op {
    name: "upsample_nearest2d",
    call: "x.upsample_nearest2d(h · f, w · f) / x.interpolate2d(h · f, w · f)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["×2 upsample_nearest2d", "×3 interpolate2d"],
    knobs: 4,
    inputs: |c, rng| image(c, rng, (1, 1)),
    candle: |c, t| {
        let f = FACTORS[c.variant];
        let (th, tw) = (t[0].dim(2)? * f, t[0].dim(3)? * f);
        match c.variant {
            0 => t[0].upsample_nearest2d(th, tw),
            _ => t[0].interpolate2d(th, tw),
        }
    },
    oracle: |c, h| {
        let f = FACTORS[c.variant];
        oracle::upsample_nearest2d(&h[0], h[0].shape[2] * f, h[0].shape[3] * f).into()
    },
    code: |c, v| {
        let m = ["upsample_nearest2d", "interpolate2d"][c.variant];
        let f = FACTORS[c.variant];
        format!("{x}.{m}({x}.dim(2)? * {f}, {x}.dim(3)? * {f})?", x = v[0])
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// Nearest resizing to any size (knobs 4 and 5, up to 9): the index rule, no backward.
pub(super) const UPSAMPLE_NEAREST_TO: Op = Op {
    name: "upsample_nearest_to",
    call: "x.upsample_nearest2d(th, tw) / x.upsample_nearest1d(tl), any target size",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["2-D", "1-D"],
    knobs: 6,
    inputs: |c, rng| {
        let mut x = image(c, rng, (1, 1));
        if c.variant == 1 {
            let s = x[0].host.shape.clone();
            x[0].host.shape = vec![s[0], s[1] * s[2], s[3]];
        }
        x
    },
    candle: |c, t| match c.variant {
        0 => t[0].upsample_nearest2d(k(c, 4).min(9), k(c, 5).min(9)),
        _ => t[0].upsample_nearest1d(k(c, 5).min(9)),
    },
    oracle: |c, h| match c.variant {
        0 => oracle::upsample_nearest2d(&h[0], k(c, 4).min(9), k(c, 5).min(9)).into(),
        _ => oracle::upsample_nearest1d(&h[0], k(c, 5).min(9)).into(),
    },
    code: |c, v| match c.variant {
        0 => format!(
            "{}.upsample_nearest2d({}, {})?",
            v[0],
            k(c, 4).min(9),
            k(c, 5).min(9)
        ),
        _ => format!("{}.upsample_nearest1d({})?", v[0], k(c, 5).min(9)),
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// One tensor upsampled twice and the two results added: its gradient is the sum of both
/// branches' (twice one branch's).
pub(super) const UPSAMPLE_NEAREST_TWICE: Op = Op {
    name: "upsample_nearest_twice",
    call: "x.upsample_nearest2d(2h, 2w) + x.upsample_nearest2d(2h, 2w) (and 1-D)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["2-D", "1-D"],
    knobs: 4,
    inputs: |c, rng| {
        let mut x = image(c, rng, (1, 1));
        if c.variant == 1 {
            let s = x[0].host.shape.clone();
            x[0].host.shape = vec![s[0], s[1] * s[2], s[3]];
        }
        x
    },
    candle: |c, t| {
        let x = &t[0];
        match c.variant {
            0 => {
                let (th, tw) = (x.dim(2)? * 2, x.dim(3)? * 2);
                x.upsample_nearest2d(th, tw)? + x.upsample_nearest2d(th, tw)?
            }
            _ => x.upsample_nearest1d(x.dim(2)? * 2)? + x.upsample_nearest1d(x.dim(2)? * 2)?,
        }
    },
    oracle: |c, h| {
        let x = &h[0];
        let up = match c.variant {
            0 => oracle::upsample_nearest2d(x, x.shape[2] * 2, x.shape[3] * 2),
            _ => oracle::upsample_nearest1d(x, x.shape[2] * 2),
        };
        up.and_then(|u| oracle::affine(&u, 2.0, 0.0)).into()
    },
    code: |c, v| {
        match c.variant {
        0 => format!(
            "({x}.upsample_nearest2d({x}.dim(2)? * 2, {x}.dim(3)? * 2)? \
             + {x}.upsample_nearest2d({x}.dim(2)? * 2, {x}.dim(3)? * 2)?)?",
            x = v[0]
        ),
        _ => format!(
            "({x}.upsample_nearest1d({x}.dim(2)? * 2)? + {x}.upsample_nearest1d({x}.dim(2)? * 2)?)?",
            x = v[0]
        ),
    }
    },
    grads: &[0],
    check: OutputCheck::Values,
    // `u + u` is exact: one rounding of the doubled value.
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const UPSAMPLE_BILINEAR2D: Op = Op {
    name: "upsample_bilinear2d",
    call: "x.upsample_bilinear2d(th, tw, align_corners)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["align_corners false", "align_corners true", "same size"],
    knobs: 6,
    inputs: |c, rng| image(c, rng, (1, 1)),
    candle: |c, t| {
        let (th, tw) = bilinear_target(c, t[0].dims());
        t[0].upsample_bilinear2d(th, tw, c.variant == 1)
    },
    oracle: |c, h| {
        let target = bilinear_target(c, &h[0].shape);
        oracle::upsample_bilinear2d(&h[0], target, c.variant == 1, None).into()
    },
    code: |c, v| {
        // The code is written for the cell's own input shape (the same rule as `inputs`).
        let (n, ch) = nc(c);
        let shape = [n, ch, k(c, 2).min(7), k(c, 3).min(7)];
        let (th, tw) = bilinear_target(c, &shape);
        format!(
            "{}.upsample_bilinear2d({th}, {tw}, {})?",
            v[0],
            c.variant == 1
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    // A weighted sum of four neighbours (weights in [0, 1]) that may cancel.
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// The bilinear target: knobs 4 and 5 (at most 9), or the input's own size ("same size").
fn bilinear_target(c: &Cell, dims: &[usize]) -> (usize, usize) {
    if c.variant == 2 {
        (dims[2], dims[3])
    } else {
        (k(c, 4).min(9), k(c, 5).min(9))
    }
}

/// Scale factors and align_corners, per variant. No factor that keeps the size (1.25 on a side
/// of 2 or 3): candle then returns the input, as PyTorch's CUDA kernel does ("just copy") while
/// its CPU kernel samples at `(i + 0.5) / 1.25 − 0.5`, so PyTorch gives no single contract there.
const SCALES: [(f64, f64, bool); 3] = [(2.0, 2.0, false), (1.5, 2.5, false), (2.0, 1.5, true)];

pub(super) const UPSAMPLE_BILINEAR2D_WITH_SCALE: Op = Op {
    name: "upsample_bilinear2d_with_scale",
    call: "x.upsample_bilinear2d_with_scale(scale_h, scale_w, align_corners)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["×2 ×2", "×1.5 ×2.5", "×2 ×1.5 align_corners"],
    knobs: 4,
    inputs: |c, rng| image(c, rng, (1, 1)),
    candle: |c, t| {
        let (sh, sw, ac) = SCALES[c.variant];
        t[0].upsample_bilinear2d_with_scale(sh, sw, ac)
    },
    oracle: |c, h| {
        let (sh, sw, ac) = SCALES[c.variant];
        oracle::upsample_bilinear2d(&h[0], (0, 0), ac, Some((sh, sw))).into()
    },
    code: |c, v| {
        let (sh, sw, ac) = SCALES[c.variant];
        format!(
            "{}.upsample_bilinear2d_with_scale({sh:?}, {sw:?}, {ac})?",
            v[0]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    // A weighted sum of four neighbours (weights in [0, 1]) that may cancel.
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const PIXEL_SHUFFLE: Op = Op {
    name: "pixel_shuffle",
    call: "candle_nn::ops::pixel_shuffle(&x, 2)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 4,
    inputs: |c, rng| {
        let (n, ch) = nc(c);
        let (h, w) = (k(c, 2).min(4), k(c, 3).min(4));
        vec![data("x", c, c.dtype(), &[n, ch * 4, h, w], rng)]
    },
    candle: |_, t| candle_nn::ops::pixel_shuffle(&t[0], 2),
    oracle: |_, h| oracle::pixel_shuffle(&h[0], 2).into(),
    code: |_, v| format!("candle_nn::ops::pixel_shuffle(&{}, 2)?", v[0]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const PIXEL_UNSHUFFLE: Op = Op {
    name: "pixel_unshuffle",
    call: "candle_nn::ops::pixel_unshuffle(&x, 2)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 4,
    inputs: |c, rng| {
        let (n, ch) = nc(c);
        let (h, w) = (2 * k(c, 2).min(3), 2 * k(c, 3).min(3));
        vec![data("x", c, c.dtype(), &[n, ch, h, w], rng)]
    },
    candle: |_, t| candle_nn::ops::pixel_unshuffle(&t[0], 2),
    oracle: |_, h| oracle::pixel_unshuffle(&h[0], 2).into(),
    code: |_, v| format!("candle_nn::ops::pixel_unshuffle(&{}, 2)?", v[0]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// Pads 0 and 1 (candle bails for 2 and more: a stated limit).
pub(super) const REPLICATION_PAD2D: Op = Op {
    name: "replication_pad2d",
    call: "candle_nn::ops::replication_pad2d(&x, pad)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["pad 0", "pad 1"],
    knobs: 4,
    inputs: |c, rng| image(c, rng, (1, 1)),
    candle: |c, t| candle_nn::ops::replication_pad2d(&t[0], c.variant),
    oracle: |c, h| oracle::replication_pad2d(&h[0], c.variant).into(),
    code: |c, v| {
        format!(
            "candle_nn::ops::replication_pad2d(&{}, {})?",
            v[0], c.variant
        )
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
