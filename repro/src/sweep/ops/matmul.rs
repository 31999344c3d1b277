//! Matrix products: matmul, broadcast_matmul and candle-nn's Linear.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use harness::oracle;

pub(super) const MATMUL: Op = Op {
    name: "matmul",
    call: "a.matmul(&b)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["2-D", "batched 3-D"],
    knobs: 4,
    inputs: |c, rng| {
        let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
        let (sa, sb) = if c.variant == 0 {
            (vec![m, kk], vec![kk, n])
        } else {
            (vec![bt, m, kk], vec![bt, kk, n])
        };
        vec![
            data("a", c, c.dtype(), &sa, rng),
            data("b", c, c.dtype(), &sb, rng),
        ]
    },
    candle: |_, t| t[0].matmul(&t[1]),
    oracle: |_, h| oracle::batched_matmul(&h[0], &h[1]).into(),
    code: |_, v| format!("{}.matmul(&{})?", v[0], v[1]),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: true,
    values: &[],
};

pub(super) const BROADCAST_MATMUL: Op = Op {
    name: "broadcast_matmul",
    call: "a.broadcast_matmul(&b)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["3-D x 2-D"],
    knobs: 4,
    inputs: |c, rng| {
        let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
        vec![
            data("a", c, c.dtype(), &[bt, m, kk], rng),
            data("b", c, c.dtype(), &[kk, n], rng),
        ]
    },
    candle: |_, t| t[0].broadcast_matmul(&t[1]),
    oracle: |_, h| oracle::batched_matmul(&h[0], &h[1]).into(),
    code: |_, v| format!("{}.broadcast_matmul(&{})?", v[0], v[1]),
    grads: &[0, 1],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: true,
    values: &[],
};

pub(super) const LINEAR: Op = Op {
    name: "linear",
    call: "candle_nn::Linear::new(w, Some(b)).forward(&x)",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["x 2-D", "x 3-D"],
    knobs: 4,
    inputs: |c, rng| {
        let (bt, m, kk, n) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
        let x = if c.variant == 0 {
            vec![m, kk]
        } else {
            vec![bt, m, kk]
        };
        vec![
            data("x", c, c.dtype(), &x, rng),
            data("w", c, c.dtype(), &[n, kk], rng),
            data("b", c, c.dtype(), &[n], rng),
        ]
    },
    candle: |_, t| {
        use candle_core::Module as _;
        candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0])
    },
    oracle: |_, h| oracle::linear(&h[0], &h[1], &h[2]).into(),
    code: |_, v| {
        format!(
            "candle_core::Module::forward(&candle_nn::Linear::new({}.clone(), Some({}.clone())), &{})?",
            v[1], v[2], v[0]
        )
    },
    grads: &[0, 1, 2],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: true,
    values: &[],
};
