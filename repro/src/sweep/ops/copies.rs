//! Copies and conversions: cat, to_dtype, contiguous.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, Reference, ALL, NONE};
use candle_core::{DType, Tensor};
use harness::oracle;

pub(super) const CAT: Op = Op {
    name: "cat",
    call: "Tensor::cat(&[&a, &b], dim)",
    dtypes: ALL,
    aux: NONE,
    // Every dim of a 3-D pair: dim 0 is one copy per input, the others interleave blocks.
    variants: &["dim 0", "dim 1", "dim 2"],
    knobs: 4,
    inputs: |c, rng| {
        let a = [k(c, 0), k(c, 1), k(c, 2)];
        let mut b = a;
        b[c.variant] = k(c, 3);
        vec![
            data("a", c, c.dtype(), &a, rng),
            data("b", c, c.dtype(), &b, rng),
        ]
    },
    candle: |c, t| Tensor::cat(&[&t[0], &t[1]], c.variant),
    oracle: |c, h| oracle::cat(&[&h[0], &h[1]], c.variant).into(),
    code: |c, v| format!("Tensor::cat(&[&{}, &{}], {})?", v[0], v[1], c.variant),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const TO_DTYPE: Op = Op {
    name: "to_dtype",
    call: "x.to_dtype(target)",
    dtypes: ALL,
    aux: (ALL, "target"),
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| {
        let mut x = data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng);
        // A negative float has no defined conversion to an unsigned type (C leaves it
        // undefined), so those pairs get magnitudes only.
        if c.dtype().is_float() && matches!(c.aux(), Some(DType::U8 | DType::U32)) {
            x.host.values.iter_mut().for_each(|v| *v = v.abs());
        }
        vec![x]
    },
    candle: |c, t| t[0].to_dtype(c.aux().unwrap()),
    oracle: |c, h| oracle::to_dtype(&h[0], c.aux().unwrap()).into(),
    code: |c, v| format!("{}.to_dtype(DType::{:?})?", v[0], c.aux().unwrap()),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const CONTIGUOUS: Op = Op {
    name: "contiguous",
    call: "x.contiguous()",
    dtypes: ALL,
    aux: NONE,
    variants: &["-"],
    knobs: 3,
    inputs: |c, rng| vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1), k(c, 2)], rng)],
    candle: |_, t| t[0].contiguous(),
    oracle: |_, h| Reference::Values(h[0].clone()),
    code: |_, v| format!("{}.contiguous()?", v[0]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
