//! Shape and data-moving ops (pads, roll, flip, repeat, broadcasts, stack, chunk, unfold, the
//! slice writes, the views and flattens, copies, get), constructors (arange, eye, ones, zeros,
//! full, tril2/triu2, meshgrid) and in-place setters (slice_set, scatter_set, scatter_add_set,
//! const_set, zero_set, one_set). Every output element is an input element or a constant moved
//! into place, so all are judged as exact copies (`ErrorModel::Rounded`).
//!
//! A constructor takes no data; its one input is `like`, a scalar whose device (and dtype) the
//! call copies, so the same cell runs on every backend. A setter writes into its first input as
//! the cell laid it out and returns that tensor.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, Reference, DIMS, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::{DType, Result, Tensor, WithDType};
use harness::host::HostTensor;
use harness::oracle;

/// One dtype of each element size: a shape op moves elements without reading them, so the
/// kernels it reaches differ by size only (constructors and setters take every dtype).
const SIZES: &[DType] = &[DType::U8, DType::F16, DType::F32, DType::F64];

/// Each shape op starts from this: one 2-D input `x`, exact, gradient checked.
pub(super) const BASE: Op = Op {
    name: "",
    call: "",
    dtypes: SIZES,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng)],
    candle: |_, t| Ok(t[0].clone()),
    oracle: |_, h| Reference::Values(h[0].clone()),
    code: |_, v| v[0].to_string(),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

/// `dim 0`, `dim 1` and an empty dim 1 (a zero-size dim the op must carry through).
const DIMS_EMPTY: &[&str] = &["dim 0", "dim 1", "dim 1 of size 0"];

/// The dim of a `DIMS_EMPTY` cell.
fn dim_e(c: &Cell) -> usize {
    c.variant.min(1)
}

/// `x` of `[knob 0, knob 1]`, its dim 1 empty in the third variant.
fn x_empty(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let cols = if c.variant == 2 { 0 } else { k(c, 1) };
    vec![data("x", c, c.dtype(), &[k(c, 0), cols], rng)]
}

fn x3(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1), k(c, 2)], rng)]
}

/// The one-element tensor whose device and dtype a constructor copies.
pub(super) fn like(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    vec![data("like", c, c.dtype(), &[1], rng)]
}

fn dims_code(d: &[usize]) -> String {
    let s: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("({},)", s.join(", "))
}

fn hosts_refs(h: &[HostTensor]) -> Vec<&HostTensor> {
    h.iter().collect()
}

/// `x` as a value of `z`'s type (`z` only names the type).
pub(super) fn of<D: WithDType>(_: D, x: f64) -> D {
    D::from_f64(x)
}

/// Runs `$body` with `$z` bound to a zero of `$dtype`'s Rust type (candle's `Scalar` names the
/// half types without this crate depending on `half`).
macro_rules! with_type {
    ($dtype:expr, |$z:ident| $body:expr) => {
        match Scalar::zero($dtype) {
            Scalar::U8($z) => $body,
            Scalar::U32($z) => $body,
            Scalar::I64($z) => $body,
            Scalar::F16($z) => $body,
            Scalar::BF16($z) => $body,
            Scalar::F32($z) => $body,
            Scalar::F64($z) => $body,
            _ => candle_core::bail!("the sweep's constructors take no {:?}", $dtype),
        }
    };
}

/// `x` as a Rust literal of `dtype` (the half types through candle's `Scalar`, as `with_type`).
pub(super) fn lit(dtype: DType, x: f64) -> String {
    let half = |v: &str| {
        format!(
            "{{ let z = match candle_core::scalar::Scalar::zero(DType::{v}) {{ candle_core::scalar::Scalar::{v}(z) => z, _ => unreachable!() }}; [z, candle_core::WithDType::from_f64({x:?})][1] }}"
        )
    };
    match dtype {
        DType::F16 => half("F16"),
        DType::BF16 => half("BF16"),
        // f32's own shortest form: f64's digits of an f32 value are more than an f32 literal holds.
        DType::F32 => format!("{:?}f32", x as f32),
        DType::F64 => format!("{x:?}f64"),
        _ => format!("{}{}", x as i64, dtype.as_str()),
    }
}

// ---- data-moving ops with a backward pass ----

pub(super) const PAD_WITH_ZEROS: Op = Op {
    name: "pad_with_zeros",
    call: "x.pad_with_zeros(dim, 1, 2)",
    variants: DIMS_EMPTY,
    inputs: x_empty,
    candle: |c, t| t[0].pad_with_zeros(dim_e(c), 1, 2),
    oracle: |c, h| oracle::pad(&h[0], dim_e(c), 1, 2, false).into(),
    code: |c, v| format!("{}.pad_with_zeros({}, 1, 2)?", v[0], dim_e(c)),
    ..BASE
};

pub(super) const PAD_WITH_SAME: Op = Op {
    name: "pad_with_same",
    call: "x.pad_with_same(dim, 1, 2)",
    // No empty variant: replicate padding has no edge to repeat there (PyTorch refuses it too),
    // so such a cell would be outside the contract the sweep plans within.
    variants: DIMS,
    inputs: x_empty,
    candle: |c, t| t[0].pad_with_same(dim_e(c), 1, 2),
    oracle: |c, h| oracle::pad(&h[0], dim_e(c), 1, 2, true).into(),
    code: |c, v| format!("{}.pad_with_same({}, 1, 2)?", v[0], dim_e(c)),
    ..BASE
};

const ROLLS: [(i32, usize); 3] = [(1, 0), (-3, 1), (1, 1)];

pub(super) const ROLL: Op = Op {
    name: "roll",
    call: "x.roll(shift, dim)",
    variants: &[
        "dim 0, shift 1",
        "dim 1, shift -3",
        "dim 1 of size 0, shift 1",
    ],
    inputs: x_empty,
    candle: |c, t| t[0].roll(ROLLS[c.variant].0, ROLLS[c.variant].1),
    oracle: |c, h| oracle::roll(&h[0], ROLLS[c.variant].0 as i64, ROLLS[c.variant].1).into(),
    code: |c, v| {
        let (s, d) = ROLLS[c.variant];
        format!("{}.roll({s}, {d})?", v[0])
    },
    ..BASE
};

const FLIPS: [&[usize]; 4] = [&[0], &[1], &[0, 1], &[1]];

pub(super) const FLIP: Op = Op {
    name: "flip",
    call: "x.flip(&dims)",
    variants: &["dims [0]", "dims [1]", "dims [0, 1]", "dims [1] of size 0"],
    inputs: |c, rng| {
        let cols = if c.variant == 3 { 0 } else { k(c, 1) };
        vec![data("x", c, c.dtype(), &[k(c, 0), cols], rng)]
    },
    candle: |c, t| t[0].flip(FLIPS[c.variant]),
    oracle: |c, h| oracle::flip(&h[0], FLIPS[c.variant]).into(),
    code: |c, v| format!("{}.flip(&{:?})?", v[0], FLIPS[c.variant]),
    ..BASE
};

const REPEATS: [&[usize]; 4] = [&[2, 1], &[1, 3], &[2, 1, 2], &[1, 0]];

pub(super) const REPEAT: Op = Op {
    name: "repeat",
    call: "x.repeat(reps)",
    variants: &["(2, 1)", "(1, 3)", "(2, 1, 2)", "(1, 0)"],
    candle: |c, t| t[0].repeat(REPEATS[c.variant]),
    oracle: |c, h| oracle::repeat(&h[0], REPEATS[c.variant]).into(),
    code: |c, v| format!("{}.repeat({})?", v[0], dims_code(REPEATS[c.variant])),
    ..BASE
};

pub(super) const EXPAND: Op = Op {
    name: "expand",
    call: "x.expand(shape)",
    knobs: 3,
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), 1], rng)],
    candle: |c, t| t[0].expand((k(c, 2), k(c, 0), k(c, 1))),
    oracle: |c, h| oracle::broadcast_as(&h[0], &[k(c, 2), k(c, 0), k(c, 1)]).into(),
    code: |c, v| format!("{}.expand(({}, {}, {}))?", v[0], k(c, 2), k(c, 0), k(c, 1)),
    ..BASE
};

pub(super) const BROADCAST_LEFT: Op = Op {
    name: "broadcast_left",
    call: "x.broadcast_left(n)",
    knobs: 3,
    candle: |c, t| t[0].broadcast_left(k(c, 2)),
    oracle: |c, h| oracle::broadcast_as(&h[0], &[k(c, 2), k(c, 0), k(c, 1)]).into(),
    code: |c, v| format!("{}.broadcast_left({})?", v[0], k(c, 2)),
    ..BASE
};

pub(super) const STACK: Op = Op {
    name: "stack",
    call: "Tensor::stack(&[&a, &b], dim)",
    variants: &["dim 0", "dim 1", "dim 2"],
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        vec![
            data("a", c, c.dtype(), &s, rng),
            data("b", c, c.dtype(), &s, rng),
        ]
    },
    candle: |c, t| Tensor::stack(&[&t[0], &t[1]], c.variant),
    oracle: |c, h| oracle::stack(&hosts_refs(h), c.variant).into(),
    code: |c, v| format!("Tensor::stack(&[&{}, &{}], {})?", v[0], v[1], c.variant),
    grads: &[0, 1],
    ..BASE
};

const CHUNKS: [(usize, usize); 2] = [(2, 0), (3, 1)];

pub(super) const CHUNK: Op = Op {
    name: "chunk",
    call: "x.chunk(n, dim), each piece flattened and concatenated",
    variants: &["2 chunks of dim 0", "3 chunks of dim 1"],
    candle: |c, t| {
        let (n, d) = CHUNKS[c.variant];
        let flat = t[0]
            .chunk(n, d)?
            .iter()
            .map(|p| p.flatten_all())
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&flat, 0)
    },
    oracle: |c, h| {
        let (n, d) = CHUNKS[c.variant];
        let mut values = Vec::new();
        let mut start = 0;
        for len in oracle::chunk_sizes(h[0].shape[d], n) {
            match oracle::narrow(&h[0], d, start, len) {
                Ok(p) => values.extend(p.values),
                Err(e) => return Reference::Rejected(e),
            }
            start += len;
        }
        let n = values.len();
        Reference::Values(HostTensor::new(h[0].dtype, &[n], values))
    },
    code: |c, v| {
        let (n, d) = CHUNKS[c.variant];
        format!("Tensor::cat(&{}.chunk({n}, {d})?.iter().map(|p| p.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?, 0)?", v[0])
    },
    ..BASE
};

const UNFOLDS: [(usize, usize, usize); 2] = [(1, 2, 1), (0, 2, 2)];

pub(super) const UNFOLD: Op = Op {
    name: "unfold",
    call: "x.unfold(dim, size, step)",
    variants: &["dim 1, size 2, step 1", "dim 0, size 2, step 2"],
    // Both dims at least the window (2), so every planned cell is inside unfold's contract.
    inputs: |c, rng| {
        vec![data(
            "x",
            c,
            c.dtype(),
            &[k(c, 0).max(2), k(c, 1).max(2)],
            rng,
        )]
    },
    candle: |c, t| {
        let (d, size, step) = UNFOLDS[c.variant];
        t[0].unfold(d, size, step)
    },
    oracle: |c, h| {
        let (d, size, step) = UNFOLDS[c.variant];
        oracle::unfold(&h[0], d, size, step).into()
    },
    code: |c, v| {
        let (d, size, step) = UNFOLDS[c.variant];
        format!("{}.unfold({d}, {size}, {step})?", v[0])
    },
    ..BASE
};

/// `dst` one longer than `src` along the variant's dim (`dst`, `src` of `[knob 0, knob 1]`).
pub(super) fn dst_src(c: &Cell, rng: &mut Rng, dim: usize, extra: usize) -> Vec<Input> {
    let s = [k(c, 0), k(c, 1)];
    let mut ds = s;
    ds[dim] += extra;
    vec![
        data("dst", c, c.dtype(), &ds, rng),
        data("src", c, c.dtype(), &s, rng),
    ]
}

pub(super) fn at(dim: usize, start: usize) -> [usize; 2] {
    let mut o = [0, 0];
    o[dim] = start;
    o
}

pub(super) const SLICE_ASSIGN: Op = Op {
    name: "slice_assign",
    call: "dst.slice_assign(&[r0, r1], &src)",
    variants: &["[0..k0, 1..k1+1]", "[1..k0+1, 0..k1]"],
    inputs: |c, rng| dst_src(c, rng, 1 - c.variant, 1),
    candle: |c, t| {
        let [o0, o1] = at(1 - c.variant, 1);
        t[0].slice_assign(&[o0..o0 + k(c, 0), o1..o1 + k(c, 1)], &t[1])
    },
    oracle: |c, h| oracle::place(&h[0], &h[1], &at(1 - c.variant, 1)).into(),
    code: |c, v| {
        let [o0, o1] = at(1 - c.variant, 1);
        format!(
            "{}.slice_assign(&[{o0}..{}, {o1}..{}], &{})?",
            v[0],
            o0 + k(c, 0),
            o1 + k(c, 1),
            v[1]
        )
    },
    grads: &[0, 1],
    ..BASE
};

pub(super) const SLICE_SCATTER: Op = Op {
    name: "slice_scatter",
    call: "dst.slice_scatter(&src, dim, start)",
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| dst_src(c, rng, c.variant, k(c, 2)),
    candle: |c, t| t[0].slice_scatter(&t[1], c.variant, 1),
    oracle: |c, h| oracle::place(&h[0], &h[1], &at(c.variant, 1)).into(),
    code: |c, v| format!("{}.slice_scatter(&{}, {}, 1)?", v[0], v[1], c.variant),
    grads: &[0, 1],
    ..BASE
};

pub(super) const SLICE_SCATTER0: Op = Op {
    name: "slice_scatter0",
    call: "dst.slice_scatter0(&src, start)",
    knobs: 3,
    inputs: |c, rng| dst_src(c, rng, 0, k(c, 2)),
    candle: |_, t| t[0].slice_scatter0(&t[1], 1),
    oracle: |_, h| oracle::place(&h[0], &h[1], &[1, 0]).into(),
    code: |_, v| format!("{}.slice_scatter0(&{}, 1)?", v[0], v[1]),
    grads: &[0, 1],
    ..BASE
};

// ---- views, reshapes and copies ----

pub(super) const SQUEEZE: Op = Op {
    name: "squeeze",
    call: "x.squeeze(dim)",
    variants: &["dim 1 (of size 1)", "dim 0 (kept unless of size 1)"],
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), 1, k(c, 1)], rng)],
    candle: |c, t| t[0].squeeze(1 - c.variant),
    oracle: |c, h| {
        let d = 1 - c.variant;
        let mut shape = h[0].shape.clone();
        if shape[d] == 1 {
            shape.remove(d);
        }
        oracle::reshape(&h[0], &shape).into()
    },
    code: |c, v| format!("{}.squeeze({})?", v[0], 1 - c.variant),
    ..BASE
};

pub(super) const RESHAPE: Op = Op {
    name: "reshape",
    call: "x.reshape(shape)",
    variants: &["(k0·k1, k2)", "(k0, ()) with a hole"],
    knobs: 3,
    inputs: x3,
    candle: |c, t| match c.variant {
        0 => t[0].reshape((k(c, 0) * k(c, 1), k(c, 2))),
        _ => t[0].reshape((k(c, 0), ())),
    },
    oracle: |c, h| {
        let shape = match c.variant {
            0 => [k(c, 0) * k(c, 1), k(c, 2)],
            _ => [k(c, 0), k(c, 1) * k(c, 2)],
        };
        oracle::reshape(&h[0], &shape).into()
    },
    code: |c, v| match c.variant {
        0 => format!("{}.reshape(({}, {}))?", v[0], k(c, 0) * k(c, 1), k(c, 2)),
        _ => format!("{}.reshape(({}, ()))?", v[0], k(c, 0)),
    },
    ..BASE
};

const PERMS: [[usize; 3]; 2] = [[2, 0, 1], [1, 0, 2]];

pub(super) const PERMUTE: Op = Op {
    name: "permute",
    call: "x.permute(dims)",
    variants: &["(2, 0, 1)", "(1, 0, 2)"],
    knobs: 3,
    inputs: x3,
    candle: |c, t| t[0].permute(PERMS[c.variant]),
    oracle: |c, h| oracle::permute(&h[0], &PERMS[c.variant]).into(),
    code: |c, v| format!("{}.permute({})?", v[0], dims_code(&PERMS[c.variant])),
    ..BASE
};

const SWAPS: [(usize, usize); 2] = [(0, 2), (0, 1)];

pub(super) const TRANSPOSE: Op = Op {
    name: "transpose",
    call: "x.transpose(a, b)",
    variants: &["(0, 2)", "(0, 1)"],
    knobs: 3,
    inputs: x3,
    candle: |c, t| t[0].transpose(SWAPS[c.variant].0, SWAPS[c.variant].1),
    oracle: |c, h| oracle::transpose(&h[0], SWAPS[c.variant].0, SWAPS[c.variant].1).into(),
    code: |c, v| {
        let (a, b) = SWAPS[c.variant];
        format!("{}.transpose({a}, {b})?", v[0])
    },
    ..BASE
};

pub(super) const T: Op = Op {
    name: "t",
    call: "x.t()",
    candle: |_, t| t[0].t(),
    oracle: |_, h| oracle::transpose(&h[0], 0, 1).into(),
    code: |_, v| format!("{}.t()?", v[0]),
    ..BASE
};

/// `x3`'s shape with dims `a..=b` merged.
fn merged(h: &HostTensor, a: usize, b: usize) -> Vec<usize> {
    let mut s = h.shape[..a].to_vec();
    s.push(h.shape[a..=b].iter().product());
    s.extend_from_slice(&h.shape[b + 1..]);
    s
}

/// One flatten op over a 3-D `x`: its call, the dims it merges and the candle method.
macro_rules! flatten_op {
    ($konst:ident, $name:literal, $call:literal, $a:expr, $b:expr, |$x:ident| $candle:expr) => {
        pub(super) const $konst: Op = Op {
            name: $name,
            call: concat!("x.", $call),
            knobs: 3,
            inputs: x3,
            candle: |_, t| {
                let $x = &t[0];
                $candle
            },
            oracle: |_, h| oracle::reshape(&h[0], &merged(&h[0], $a, $b)).into(),
            code: |_, v| format!(concat!("{}.", $call, "?"), v[0]),
            ..BASE
        };
    };
}

flatten_op!(FLATTEN, "flatten", "flatten(0, 1)", 0, 1, |x| x
    .flatten(0, 1));
flatten_op!(FLATTEN_ALL, "flatten_all", "flatten_all()", 0, 2, |x| x
    .flatten_all());
flatten_op!(FLATTEN_FROM, "flatten_from", "flatten_from(1)", 1, 2, |x| x
    .flatten_from(1));
flatten_op!(FLATTEN_TO, "flatten_to", "flatten_to(1)", 0, 1, |x| x
    .flatten_to(1));

pub(super) const COPY: Op = Op {
    name: "copy",
    call: "x.copy()",
    candle: |_, t| t[0].copy(),
    code: |_, v| format!("{}.copy()?", v[0]),
    ..BASE
};

pub(super) const FORCE_CONTIGUOUS: Op = Op {
    name: "force_contiguous",
    call: "x.force_contiguous()",
    candle: |_, t| t[0].force_contiguous(),
    code: |_, v| format!("{}.force_contiguous()?", v[0]),
    ..BASE
};

/// `detach` stops the gradient by definition, so only its forward pass is checked.
pub(super) const DETACH: Op = Op {
    name: "detach",
    call: "x.detach()",
    candle: |_, t| Ok(t[0].detach()),
    code: |_, v| format!("{}.detach()", v[0]),
    grads: &[],
    ..BASE
};

pub(super) const GET: Op = Op {
    name: "get",
    call: "x.get(i)",
    candle: |c, t| t[0].get(k(c, 0) - 1),
    oracle: |c, h| oracle::get_on_dim(&h[0], 0, k(c, 0) - 1).into(),
    code: |c, v| format!("{}.get({})?", v[0], k(c, 0) - 1),
    ..BASE
};

pub(super) const GET_ON_DIM: Op = Op {
    name: "get_on_dim",
    call: "x.get_on_dim(dim, i)",
    variants: DIMS,
    candle: |c, t| t[0].get_on_dim(c.variant, k(c, c.variant) - 1),
    oracle: |c, h| oracle::get_on_dim(&h[0], c.variant, k(c, c.variant) - 1).into(),
    code: |c, v| {
        let d = c.variant;
        format!("{}.get_on_dim({d}, {})?", v[0], k(c, d) - 1)
    },
    ..BASE
};
