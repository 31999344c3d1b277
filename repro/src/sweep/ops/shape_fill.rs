//! Constructors (arange, eye, ones, zeros, full, tril2/triu2, meshgrid) and in-place setters
//! (slice_set, scatter_set, scatter_add_set, const_set, zero_set, one_set), split from `shape`
//! (whose helpers they share): exact copies too (`ErrorModel::Rounded`).

use super::inputs::{data, index, k};
use super::shape::{at, dst_src, like, lit, of, BASE};
use super::{ErrorModel, Op, Reference, ALL, DIMS};
use crate::sweep::cell::{Cell, Input, Layout, Rng};
use candle_core::scalar::Scalar;
use candle_core::{DType, Tensor, WithDType};
use harness::oracle;

// ---- constructors ----

/// A constructor's base: one scalar `like`, every dtype, no gradient.
const MAKE: Op = Op {
    dtypes: ALL,
    inputs: like,
    grads: &[],
    ..BASE
};

/// `(knob 0, knob 1)`, or `(knob 0, 0)` in the second variant.
fn made_shape(c: &Cell) -> [usize; 2] {
    [k(c, 0), if c.variant == 1 { 0 } else { k(c, 1) }]
}

const SHAPES: &[&str] = &["(k0, k1)", "(k0, 0)"];

macro_rules! fill_op {
    ($konst:ident, $method:ident, $value:expr) => {
        pub(super) const $konst: Op = Op {
            name: stringify!($method),
            call: concat!(
                "Tensor::",
                stringify!($method),
                "(shape, dtype, like.device())"
            ),
            variants: SHAPES,
            candle: |c, t| Tensor::$method(&made_shape(c), c.dtype(), t[0].device()),
            oracle: |c, _| Reference::Values(oracle::full(c.dtype(), &made_shape(c), $value)),
            code: |c, v| {
                let [a, b] = made_shape(c);
                format!(
                    concat!(
                        "Tensor::",
                        stringify!($method),
                        "(({}, {}), DType::{:?}, {}.device())?"
                    ),
                    a,
                    b,
                    c.dtype(),
                    v[0]
                )
            },
            ..MAKE
        };
    };
}

fill_op!(ONES, ones, 1.0);
fill_op!(ZEROS, zeros, 0.0);

/// The value `full` and `const_set` write: the dtype's extreme or an odd one.
fn fill_value(dtype: DType) -> f64 {
    match dtype {
        DType::U8 => 200.0,
        DType::U32 => 4_000_000_000.0,
        DType::I64 => -7.0,
        DType::F16 => 65504.0,
        DType::BF16 => -3.3895313892515355e38,
        DType::F32 => -3.4028234663852886e38,
        _ => -1e300,
    }
}

pub(super) const FULL: Op = Op {
    name: "full",
    call: "Tensor::full(value, shape, like.device())",
    variants: SHAPES,
    candle: |c, t| {
        let v = fill_value(c.dtype());
        with_type!(c.dtype(), |z| Tensor::full(
            of(z, v),
            &made_shape(c),
            t[0].device()
        ))
    },
    oracle: |c, _| {
        Reference::Values(oracle::full(
            c.dtype(),
            &made_shape(c),
            fill_value(c.dtype()),
        ))
    },
    code: |c, v| {
        let [a, b] = made_shape(c);
        format!(
            "Tensor::full({}, ({a}, {b}), {}.device())?",
            lit(c.dtype(), fill_value(c.dtype())),
            v[0]
        )
    },
    ..MAKE
};

macro_rules! square_op {
    ($konst:ident, $name:ident, |$i:ident, $j:ident| $keep:expr) => {
        pub(super) const $konst: Op = Op {
            name: stringify!($name),
            call: concat!("Tensor::", stringify!($name), "(n, dtype, like.device())"),
            variants: &["n = k0", "n = 0"],
            candle: |c, t| {
                let n = if c.variant == 1 { 0 } else { k(c, 0) };
                Tensor::$name(n, c.dtype(), t[0].device())
            },
            oracle: |c, _| {
                let n = if c.variant == 1 { 0 } else { k(c, 0) };
                Reference::Values(oracle::square(c.dtype(), n, |$i, $j| $keep))
            },
            code: |c, v| {
                let n = if c.variant == 1 { 0 } else { k(c, 0) };
                format!(
                    concat!(
                        "Tensor::",
                        stringify!($name),
                        "({}, DType::{:?}, {}.device())?"
                    ),
                    n,
                    c.dtype(),
                    v[0]
                )
            },
            ..MAKE
        };
    };
}

square_op!(EYE, eye, |i, j| i == j);
square_op!(TRIL2, tril2, |i, j| j <= i);
square_op!(TRIU2, triu2, |i, j| j >= i);

/// `(start, end, step)` of an `arange_step` cell. The third variant starts where the dtype's
/// spacing reaches 2 (f16 2048, bf16 256, f32 2^24, f64 2^53) or near an integer dtype's top
/// (u8 250 with a step that passes 255). A step of 1 there would never move a value that is
/// added up in the dtype, so none is swept.
fn arange_args(c: &Cell) -> (f64, f64, f64) {
    let d = c.dtype();
    let n = k(c, 0) as f64;
    match c.variant {
        0 => (1.0, 1.0 + 3.0 * n, 3.0),
        1 if d.is_float() => (1.0, -1.0, -0.25),
        1 if d == DType::I64 => (5.0, -5.0, -3.0),
        1 => (0.0, n, 1.0),
        2 if d.is_float() => (0.0, 1.0, 0.1),
        2 => (0.0, 2.0 * n, 2.0),
        _ => match d {
            DType::U8 => (250.0, 255.0, 3.0),
            DType::U32 => (4_294_967_286.0, 4_294_967_295.0, 3.0),
            DType::I64 => (9_007_199_254_740_986.0, 9_007_199_254_740_992.0, 3.0),
            DType::F16 => (2048.0, 2056.0, 3.0),
            DType::BF16 => (256.0, 264.0, 3.0),
            DType::F32 => (16_777_216.0, 16_777_224.0, 3.0),
            _ => (9_007_199_254_740_992.0, 9_007_199_254_741_000.0, 3.0),
        },
    }
}

pub(super) const ARANGE_STEP: Op = Op {
    name: "arange_step",
    call: "Tensor::arange_step(start, end, step, like.device())",
    variants: &[
        "step 3",
        "a negative or fractional step",
        "step 0.1",
        "near the dtype's limit",
    ],
    candle: |c, t| {
        let (s, e, st) = arange_args(c);
        with_type!(c.dtype(), |z| Tensor::arange_step(
            of(z, s),
            of(z, e),
            of(z, st),
            t[0].device()
        ))
    },
    oracle: |c, _| {
        let (s, e, st) = arange_args(c);
        oracle::arange(c.dtype(), s, e, st).into()
    },
    code: |c, v| {
        let (s, e, st) = arange_args(c);
        let d = c.dtype();
        format!(
            "Tensor::arange_step({}, {}, {}, {}.device())?",
            lit(d, s),
            lit(d, e),
            lit(d, st),
            v[0]
        )
    },
    ..MAKE
};

/// `(start, end)` of an `arange` cell: `0..k0`, and a shifted start (a half in the floats).
fn arange1_args(c: &Cell) -> (f64, f64) {
    let n = k(c, 0) as f64;
    match (c.variant, c.dtype().is_float()) {
        (0, _) => (0.0, n),
        (_, true) => (0.5, n + 0.25),
        _ => (n, 2.0 * n),
    }
}

pub(super) const ARANGE: Op = Op {
    name: "arange",
    call: "Tensor::arange(start, end, like.device())",
    variants: &["0..k0", "shifted start"],
    candle: |c, t| {
        let (s, e) = arange1_args(c);
        with_type!(c.dtype(), |z| Tensor::arange(
            of(z, s),
            of(z, e),
            t[0].device()
        ))
    },
    oracle: |c, _| {
        let (s, e) = arange1_args(c);
        oracle::arange(c.dtype(), s, e, 1.0).into()
    },
    code: |c, v| {
        let (s, e) = arange1_args(c);
        let d = c.dtype();
        format!(
            "Tensor::arange({}, {}, {}.device())?",
            lit(d, s),
            lit(d, e),
            v[0]
        )
    },
    ..MAKE
};

pub(super) const ONES_LIKE: Op = Op {
    name: "ones_like",
    call: "x.ones_like()",
    candle: |_, t| t[0].ones_like(),
    oracle: |_, h| Reference::Values(oracle::full(h[0].dtype, &h[0].shape, 1.0)),
    code: |_, v| format!("{}.ones_like()?", v[0]),
    grads: &[],
    ..BASE
};

pub(super) const ZEROS_LIKE: Op = Op {
    name: "zeros_like",
    call: "x.zeros_like()",
    candle: |_, t| t[0].zeros_like(),
    oracle: |_, h| Reference::Values(oracle::full(h[0].dtype, &h[0].shape, 0.0)),
    code: |_, v| format!("{}.zeros_like()?", v[0]),
    grads: &[],
    ..BASE
};

pub(super) const MESHGRID: Op = Op {
    name: "meshgrid",
    call: "Tensor::stack(&Tensor::meshgrid(&[&a, &b], xy)?, 0)",
    variants: &["ij", "xy"],
    inputs: |c, rng| {
        vec![
            data("a", c, c.dtype(), &[k(c, 0)], rng),
            data("b", c, c.dtype(), &[k(c, 1)], rng),
        ]
    },
    candle: |c, t| Tensor::stack(&Tensor::meshgrid(&[&t[0], &t[1]], c.variant == 1)?, 0),
    oracle: |c, h| oracle::meshgrid2(&h[0], &h[1], c.variant == 1).into(),
    code: |c, v| {
        format!(
            "Tensor::stack(&Tensor::meshgrid(&[&{}, &{}], {})?, 0)?",
            v[0],
            v[1],
            c.variant == 1
        )
    },
    grads: &[0, 1],
    ..BASE
};

// ---- in-place setters ----

/// Whether every input of the cell is laid out contiguously (the in-place setters other than
/// `const_set` refuse anything else: `Error::RequiresContiguous` in `slice_set` and in the CPU
/// scatter kernel). A strided input there leaves the result unspecified: only the backends'
/// error parity is compared.
fn contiguous_inputs(c: &Cell) -> bool {
    c.layouts
        .iter()
        .all(|l| matches!(l, Layout::Contiguous | Layout::Offset))
}

const STRIDED: &str = "candle's in-place setters take contiguous tensors only";

pub(super) const SLICE_SET: Op = Op {
    dtypes: ALL,
    name: "slice_set",
    call: "dst.slice_set(&src, dim, offset)",
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| dst_src(c, rng, c.variant, k(c, 2)),
    candle: |c, t| {
        t[0].slice_set(&t[1], c.variant, k(c, 2))?;
        Ok(t[0].clone())
    },
    oracle: |c, h| {
        if !contiguous_inputs(c) {
            return Reference::Unspecified(STRIDED.into());
        }
        oracle::place(&h[0], &h[1], &at(c.variant, k(c, 2))).into()
    },
    code: |c, v| {
        format!(
            "{{ {}.slice_set(&{}, {}, {})?; {}.clone() }}",
            v[0],
            v[1],
            c.variant,
            k(c, 2),
            v[0]
        )
    },
    grads: &[],
    ..BASE
};

/// `dst`, an index along the variant's dim and `src` of the index's shape; `unique` draws each
/// line of the index without repeats (an overwrite is defined only then).
fn scatter_inputs(c: &Cell, rng: &mut Rng, unique: bool) -> Vec<Input> {
    let s = [k(c, 0), k(c, 1)];
    let d = c.variant;
    let mut is = s;
    is[d] = if unique { k(c, 2).min(s[d]) } else { k(c, 2) };
    vec![
        data("dst", c, c.dtype(), &s, rng),
        index(c, &is, s[d], unique.then_some(d), rng),
        data("src", c, c.dtype(), &is, rng),
    ]
}

pub(super) const SCATTER_SET: Op = Op {
    dtypes: ALL,
    name: "scatter_set",
    call: "dst.scatter_set(&indexes, &src, dim)",
    // One index dtype: the `scatter` and `scatter_add` ops sweep all of them on the same kernels.
    aux: (&[DType::U32], "index"),
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| scatter_inputs(c, rng, true),
    candle: |c, t| {
        t[0].scatter_set(&t[1], &t[2], c.variant)?;
        Ok(t[0].clone())
    },
    oracle: |c, h| {
        if !contiguous_inputs(c) {
            return Reference::Unspecified(STRIDED.into());
        }
        oracle::scatter(&h[0], &h[1], &h[2], c.variant).into()
    },
    code: |c, v| {
        format!(
            "{{ {}.scatter_set(&{}, &{}, {})?; {}.clone() }}",
            v[0], v[1], v[2], c.variant, v[0]
        )
    },
    grads: &[],
    ..BASE
};

pub(super) const SCATTER_ADD_SET: Op = Op {
    name: "scatter_add_set",
    call: "dst.scatter_add_set(&indexes, &src, dim)",
    inputs: |c, rng| scatter_inputs(c, rng, false),
    candle: |c, t| {
        t[0].scatter_add_set(&t[1], &t[2], c.variant)?;
        Ok(t[0].clone())
    },
    oracle: |c, h| {
        if !contiguous_inputs(c) {
            return Reference::Unspecified(STRIDED.into());
        }
        oracle::scatter_add(&h[0], &h[1], &h[2], c.variant).into()
    },
    code: |c, v| {
        format!(
            "{{ {}.scatter_add_set(&{}, &{}, {})?; {}.clone() }}",
            v[0], v[1], v[2], c.variant, v[0]
        )
    },
    error: ErrorModel::Sum,
    ..SCATTER_SET
};

/// `const_set` writes through any layout (the CPU kernel walks strided blocks); a broadcast
/// `x` aliases its rows, which all end up holding the value anyway.
macro_rules! set_op {
    ($konst:ident, $name:literal, $call:literal, $value:expr, |$x:ident, $c:ident| $candle:expr, $code:expr) => {
        pub(super) const $konst: Op = Op {
            name: $name,
            call: $call,
            candle: |$c, t| {
                let $x = &t[0];
                $candle?;
                Ok($x.clone())
            },
            oracle: |c, h| {
                let _ = c;
                Reference::Values(oracle::full(h[0].dtype, &h[0].shape, $value(h[0].dtype)))
            },
            code: |c, v| format!("{{ {}.{}?; {}.clone() }}", v[0], $code(c), v[0]),
            grads: &[],
            dtypes: ALL,
            ..BASE
        };
    };
}

set_op!(
    CONST_SET,
    "const_set",
    "x.const_set(value)",
    fill_value,
    |x, c| with_type!(c.dtype(), |z| x
        .const_set(of(z, fill_value(c.dtype())).to_scalar())),
    |c: &Cell| format!(
        "const_set(candle_core::WithDType::to_scalar({}))",
        lit(c.dtype(), fill_value(c.dtype()))
    )
);
set_op!(
    ZERO_SET,
    "zero_set",
    "x.zero_set()",
    |_| 0.0,
    |x, _c| x.zero_set(),
    |_: &Cell| "zero_set()".to_string()
);
set_op!(
    ONE_SET,
    "one_set",
    "x.one_set()",
    |_| 1.0,
    |x, _c| x.one_set(),
    |_: &Cell| "one_set()".to_string()
);
