//! Convolutions: `conv1d`, `conv2d`, `conv_transpose1d`, `conv_transpose2d` and the `_with_algo`
//! forms, each over a few geometries (variants) chosen so that every CPU path candle 0.11.1
//! takes is reached: conv1d's im2col + matmul (contiguous and strided kernels), conv2d's 1x1
//! matmul, full im2col and tiled im2col, conv_transpose1d's col2im (contiguous kernel, no
//! padding or dilation) and its direct loop, conv_transpose2d's direct loop.
//!
//! Knobs are clamped to tiny sizes (batch ≤ 2, channels ≤ 4, kernel ≤ 3, lengths a few taps past
//! the kernel's reach) and every shape is derived from them, so shrinking a knob keeps the
//! input and the kernel consistent.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::Tensor;
use harness::oracle::{self, ConvParams};

const fn params(
    padding: usize,
    stride: usize,
    dilation: usize,
    groups: usize,
    output_padding: usize,
) -> ConvParams {
    ConvParams {
        padding,
        stride,
        dilation,
        groups,
        output_padding,
    }
}

/// A variant: its params and, for the pointwise ones, the kernel size it forces.
struct Geometry {
    p: ConvParams,
    kernel: Option<usize>,
}

const fn g(p: ConvParams) -> Geometry {
    Geometry { p, kernel: None }
}

const CONV_VARIANTS: &[&str] = &["plain", "padded+strided", "dilated", "grouped"];
const CONV: &[Geometry] = &[
    g(params(0, 1, 1, 1, 0)),
    g(params(1, 2, 1, 1, 0)),
    g(params(0, 1, 2, 1, 0)),
    g(params(1, 1, 1, 2, 0)),
];
/// conv2d adds two 1x1 kernels: stride 1 without padding (candle's matmul fast path) and
/// strided with padding (its full im2col).
const CONV2D_VARIANTS: &[&str] = &[
    "plain",
    "padded+strided",
    "dilated",
    "grouped",
    "1x1",
    "1x1 padded+strided",
];
const CONV2D: &[Geometry] = &[
    g(params(0, 1, 1, 1, 0)),
    g(params(1, 2, 1, 1, 0)),
    g(params(0, 1, 2, 1, 0)),
    g(params(1, 1, 1, 2, 0)),
    Geometry {
        p: params(0, 1, 1, 1, 0),
        kernel: Some(1),
    },
    Geometry {
        p: params(1, 2, 1, 1, 0),
        kernel: Some(1),
    },
];
/// "plain", "strided" and "grouped" take candle's CPU col2im path (no padding, dilation or
/// output padding); the other two its direct loop.
const CONVT1D_VARIANTS: &[&str] = &[
    "plain",
    "strided",
    "padded+dilated",
    "grouped",
    "output-padded",
];
const CONVT1D: &[Geometry] = &[
    g(params(0, 1, 1, 1, 0)),
    g(params(0, 2, 1, 1, 0)),
    g(params(1, 1, 2, 1, 0)),
    g(params(0, 1, 1, 2, 0)),
    g(params(1, 2, 1, 1, 1)),
];
/// The `_with_algo` forms take the same CPU paths as the plain ones (the algorithm only picks
/// cuDNN's), so they run two geometries each, to keep the sweep short.
const CONV_ALGO_VARIANTS: &[&str] = &["padded+strided", "grouped"];
const CONV_ALGO: &[Geometry] = &[g(params(1, 2, 1, 1, 0)), g(params(1, 1, 1, 2, 0))];
const CONV2D_ALGO_VARIANTS: &[&str] = &["padded+strided", "1x1"];
const CONV2D_ALGO: &[Geometry] = &[
    g(params(1, 2, 1, 1, 0)),
    Geometry {
        p: params(0, 1, 1, 1, 0),
        kernel: Some(1),
    },
];
/// candle's conv_transpose2d takes no groups.
const CONVT2D_VARIANTS: &[&str] = &["plain", "padded+strided", "dilated", "output-padded"];
const CONVT2D: &[Geometry] = &[
    g(params(0, 1, 1, 1, 0)),
    g(params(1, 2, 1, 1, 0)),
    g(params(0, 1, 2, 1, 0)),
    g(params(1, 2, 1, 1, 1)),
];

/// The sizes a cell's knobs give: batch, channels per group in and out, kernel taps (h, w),
/// and the spatial lengths (h, w; h unused by 1-D).
struct Sizes {
    b: usize,
    cin_g: usize,
    cout_g: usize,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
}

/// Knobs: `[batch, c_in per group, c_out per group, length (w), kernel, height (2-D)]`. The
/// kernel knob gives k taps (≤ 3) in 1-D and `k × (k − 1)` (at least 1) in 2-D, so a 2-D kernel
/// is not square unless 1x1; lengths start at the shortest input the geometry accepts and grow
/// by a few taps.
fn sizes(c: &Cell, geo: &Geometry, transposed: bool, two_d: bool) -> Sizes {
    let p = &geo.p;
    let cmax = if p.groups > 1 { 2 } else { 3 };
    let kk = geo.kernel.unwrap_or(k(c, 4).min(3));
    let (kh, kw) = if two_d {
        (kk, kk.saturating_sub(1).max(1))
    } else {
        (1, kk)
    };
    let extra = if two_d { 2 } else { 4 };
    let len = |taps: usize, knob: usize| {
        let least = if transposed {
            // `(len − 1)·stride ≥ 2·padding`: candle computes that difference first, in usize.
            1 + (2 * p.padding).div_ceil(p.stride)
        } else {
            (p.dilation * (taps - 1) + 1)
                .saturating_sub(2 * p.padding)
                .max(1)
        };
        least + knob.min(extra) - 1
    };
    Sizes {
        b: k(c, 0).min(2),
        cin_g: k(c, 1).min(cmax),
        cout_g: k(c, 2).min(cmax),
        kh,
        kw,
        h: if two_d { len(kh, k(c, 5)) } else { 1 },
        w: len(kw, k(c, 3)),
    }
}

fn inputs(
    c: &Cell,
    rng: &mut Rng,
    table: &[Geometry],
    transposed: bool,
    two_d: bool,
) -> Vec<Input> {
    let geo = &table[c.variant];
    let s = sizes(c, geo, transposed, two_d);
    let groups = geo.p.groups;
    let c_in = s.cin_g * groups;
    let mut x = vec![s.b, c_in];
    let mut w = if transposed {
        vec![c_in, s.cout_g]
    } else {
        vec![s.cout_g * groups, s.cin_g]
    };
    if two_d {
        x.extend([s.h, s.w]);
        w.extend([s.kh, s.kw]);
    } else {
        x.push(s.w);
        w.push(s.kw);
    }
    vec![
        data("x", c, c.dtype(), &x, rng),
        data("kernel", c, c.dtype(), &w, rng),
    ]
}

/// A convolution op over a table of geometries:
/// `conv_op!(NAME, name, call, variants, table, transposed, 2-D, knobs, candle, oracle, code)`,
/// where `candle` and `code` get the geometry's params `p`.
macro_rules! conv_op {
    ($name:ident, $op:literal, $call:literal, $variants:expr, $table:expr, $transposed:expr,
     $two_d:expr, $knobs:expr, |$t:ident, $p:ident| $candle:expr, $oracle:path,
     |$v:ident, $q:ident| $code:expr) => {
        pub(super) const $name: Op = Op {
            name: $op,
            call: $call,
            dtypes: FLOATS,
            aux: NONE,
            variants: $variants,
            knobs: $knobs,
            inputs: |c, rng| inputs(c, rng, $table, $transposed, $two_d),
            candle: |c, $t: &[Tensor]| {
                let $p = &$table[c.variant].p;
                $candle
            },
            oracle: |c, h| $oracle(&h[0], &h[1], &$table[c.variant].p).into(),
            code: |c, $v: &[&str]| {
                let $q = &$table[c.variant].p;
                $code
            },
            grads: &[0, 1],
            check: OutputCheck::Values,
            error: ErrorModel::Sum,
            indexed: false,
            layout_pairs: true,
            values: &[],
        };
    };
}

conv_op!(
    CONV1D,
    "conv1d",
    "x.conv1d(&kernel, padding, stride, dilation, groups)",
    CONV_VARIANTS,
    CONV,
    false,
    false,
    5,
    |t, p| t[0].conv1d(&t[1], p.padding, p.stride, p.dilation, p.groups),
    oracle::conv1d,
    |v, p| format!(
        "{}.conv1d(&{}, {}, {}, {}, {})?",
        v[0], v[1], p.padding, p.stride, p.dilation, p.groups
    )
);

conv_op!(
    CONV1D_WITH_ALGO, "conv1d_with_algo",
    "x.conv1d_with_algo(&kernel, padding, stride, dilation, groups, Some(CudnnFwdAlgo::ImplicitGemm))",
    CONV_ALGO_VARIANTS, CONV_ALGO, false, false, 5,
    |t, p| t[0].conv1d_with_algo(
        &t[1], p.padding, p.stride, p.dilation, p.groups,
        Some(candle_core::conv::CudnnFwdAlgo::ImplicitGemm)
    ),
    oracle::conv1d,
    |v, p| format!(
        "{}.conv1d_with_algo(&{}, {}, {}, {}, {}, Some(candle_core::conv::CudnnFwdAlgo::ImplicitGemm))?",
        v[0], v[1], p.padding, p.stride, p.dilation, p.groups
    )
);

conv_op!(
    CONV2D_OP,
    "conv2d",
    "x.conv2d(&kernel, padding, stride, dilation, groups)",
    CONV2D_VARIANTS,
    CONV2D,
    false,
    true,
    6,
    |t, p| t[0].conv2d(&t[1], p.padding, p.stride, p.dilation, p.groups),
    oracle::conv2d,
    |v, p| format!(
        "{}.conv2d(&{}, {}, {}, {}, {})?",
        v[0], v[1], p.padding, p.stride, p.dilation, p.groups
    )
);

conv_op!(
    CONV2D_WITH_ALGO, "conv2d_with_algo",
    "x.conv2d_with_algo(&kernel, padding, stride, dilation, groups, Some(CudnnFwdAlgo::ImplicitGemm))",
    CONV2D_ALGO_VARIANTS, CONV2D_ALGO, false, true, 6,
    |t, p| t[0].conv2d_with_algo(
        &t[1], p.padding, p.stride, p.dilation, p.groups,
        Some(candle_core::conv::CudnnFwdAlgo::ImplicitGemm)
    ),
    oracle::conv2d,
    |v, p| format!(
        "{}.conv2d_with_algo(&{}, {}, {}, {}, {}, Some(candle_core::conv::CudnnFwdAlgo::ImplicitGemm))?",
        v[0], v[1], p.padding, p.stride, p.dilation, p.groups
    )
);

conv_op!(
    CONV_TRANSPOSE1D,
    "conv_transpose1d",
    "x.conv_transpose1d(&kernel, padding, output_padding, stride, dilation, groups)",
    CONVT1D_VARIANTS,
    CONVT1D,
    true,
    false,
    5,
    |t, p| t[0].conv_transpose1d(
        &t[1],
        p.padding,
        p.output_padding,
        p.stride,
        p.dilation,
        p.groups
    ),
    oracle::conv_transpose1d,
    |v, p| format!(
        "{}.conv_transpose1d(&{}, {}, {}, {}, {}, {})?",
        v[0], v[1], p.padding, p.output_padding, p.stride, p.dilation, p.groups
    )
);

conv_op!(
    CONV_TRANSPOSE2D,
    "conv_transpose2d",
    "x.conv_transpose2d(&kernel, padding, output_padding, stride, dilation)",
    CONVT2D_VARIANTS,
    CONVT2D,
    true,
    true,
    6,
    |t, p| t[0].conv_transpose2d(&t[1], p.padding, p.output_padding, p.stride, p.dilation),
    oracle::conv_transpose2d,
    |v, p| format!(
        "{}.conv_transpose2d(&{}, {}, {}, {}, {})?",
        v[0], v[1], p.padding, p.output_padding, p.stride, p.dilation
    )
);
