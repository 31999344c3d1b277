//! Indexing ops: index_select, gather, scatter, scatter_add, index_add and candle-nn's Embedding.

use super::inputs::{data, index, k};
// Only `scatter` (behind `tensor-scatter`) names a `Reference` of its own.
#[cfg(feature = "tensor-scatter")]
use super::Reference;
use super::{ErrorModel, Op, OutputCheck, ALL, DIMS, EVERY_INT, FLOATS, INDEX};
use crate::sweep::cell::Values;
use harness::host::HostTensor;
use harness::oracle;

fn with_dim(shape: [usize; 2], dim: usize, n: usize) -> [usize; 2] {
    let mut s = shape;
    s[dim] = n;
    s
}

fn has_duplicate_targets(ids: &HostTensor, dim: usize) -> bool {
    let (outer, len, inner) = oracle::lines(&ids.shape, dim);
    (0..outer).any(|o| {
        (0..inner).any(|r| {
            let mut seen: Vec<f64> = (0..len)
                .map(|i| ids.values[(o * len + i) * inner + r])
                .collect();
            seen.sort_by(f64::total_cmp);
            seen.windows(2).any(|w| w[0] == w[1])
        })
    })
}

pub(super) const INDEX_SELECT: Op = Op {
    name: "index_select",
    call: "src.index_select(&indexes, dim)",
    dtypes: ALL,
    aux: (INDEX, "index"),
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        vec![
            data("src", c, c.dtype(), &s, rng),
            index(c, &[k(c, 2)], s[c.variant], None, rng),
        ]
    },
    candle: |c, t| t[0].index_select(&t[1], c.variant),
    oracle: |c, h| oracle::index_select(&h[0], &h[1], c.variant).into(),
    code: |c, v| format!("{}.index_select(&{}, {})?", v[0], v[1], c.variant),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: true,
    layout_pairs: false,
    values: &[],
};

pub(super) const GATHER: Op = Op {
    name: "gather",
    call: "src.gather(&indexes, dim)",
    dtypes: ALL,
    aux: (INDEX, "index"),
    variants: DIMS,
    knobs: 4,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        let d = c.variant;
        // The docs allow an index smaller than `src` on the other dim.
        let mut is = with_dim(s, d, k(c, 2));
        is[1 - d] = k(c, 3).min(s[1 - d]);
        vec![
            data("src", c, c.dtype(), &s, rng),
            index(c, &is, s[d], None, rng),
        ]
    },
    candle: |c, t| t[0].gather(&t[1], c.variant),
    oracle: |c, h| oracle::gather(&h[0], &h[1], c.variant).into(),
    code: |c, v| format!("{}.gather(&{}, {})?", v[0], v[1], c.variant),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: true,
    layout_pairs: false,
    values: &[],
};

// `Tensor::scatter` (overwrite) is new in candle 0.9; the version matrix builds older
// releases without the `tensor-scatter` feature, and their sweeps list this op as not swept.
#[cfg(feature = "tensor-scatter")]
pub(super) const SCATTER: Op = Op {
    name: "scatter",
    call: "dst.scatter(&indexes, &src, dim)",
    dtypes: ALL,
    aux: (INDEX, "index"),
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        let d = c.variant;
        let is = with_dim(s, d, k(c, 2).min(s[d]));
        vec![
            data("dst", c, c.dtype(), &s, rng),
            index(c, &is, s[d], Some(d), rng),
            data("src", c, c.dtype(), &is, rng),
        ]
    },
    candle: |c, t| t[0].scatter(&t[1], &t[2], c.variant),
    oracle: |c, h| {
        if has_duplicate_targets(&h[1], c.variant) {
            return Reference::Unspecified("two sources scatter onto one position".into());
        }
        oracle::scatter(&h[0], &h[1], &h[2], c.variant).into()
    },
    code: |c, v| format!("{}.scatter(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
    grads: &[0, 2],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: true,
    layout_pairs: false,
    values: &[],
};

pub(super) const SCATTER_ADD: Op = Op {
    name: "scatter_add",
    call: "dst.scatter_add(&indexes, &src, dim)",
    dtypes: ALL,
    aux: (EVERY_INT, "index"),
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        let d = c.variant;
        let is = with_dim(s, d, k(c, 2));
        vec![
            data("dst", c, c.dtype(), &s, rng),
            index(c, &is, s[d], None, rng),
            data("src", c, c.dtype(), &is, rng),
        ]
    },
    candle: |c, t| t[0].scatter_add(&t[1], &t[2], c.variant),
    oracle: |c, h| oracle::scatter_add(&h[0], &h[1], &h[2], c.variant).into(),
    code: |c, v| format!("{}.scatter_add(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
    grads: &[0, 2],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: true,
    layout_pairs: false,
    values: &[Values::Overflow],
};

pub(super) const INDEX_ADD: Op = Op {
    name: "index_add",
    call: "dst.index_add(&indexes, &src, dim)",
    dtypes: ALL,
    aux: (EVERY_INT, "index"),
    variants: DIMS,
    knobs: 3,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        let d = c.variant;
        vec![
            data("dst", c, c.dtype(), &s, rng),
            index(c, &[k(c, 2)], s[d], None, rng),
            data("src", c, c.dtype(), &with_dim(s, d, k(c, 2)), rng),
        ]
    },
    candle: |c, t| t[0].index_add(&t[1], &t[2], c.variant),
    oracle: |c, h| oracle::index_add(&h[0], &h[1], &h[2], c.variant).into(),
    code: |c, v| format!("{}.index_add(&{}, &{}, {})?", v[0], v[1], v[2], c.variant),
    grads: &[0, 2],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: true,
    layout_pairs: false,
    values: &[Values::Overflow],
};

pub(super) const EMBEDDING: Op = Op {
    name: "embedding",
    call: "candle_nn::Embedding::new(w, hidden).forward(&ids)",
    dtypes: FLOATS,
    aux: (INDEX, "index"),
    variants: &["ids 1-D", "ids 2-D"],
    knobs: 4,
    inputs: |c, rng| {
        let (vocab, hidden) = (k(c, 0), k(c, 1));
        let ids = if c.variant == 0 {
            vec![k(c, 2)]
        } else {
            vec![k(c, 2), k(c, 3)]
        };
        vec![
            data("w", c, c.dtype(), &[vocab, hidden], rng),
            index(c, &ids, vocab, None, rng),
        ]
    },
    candle: |_, t| {
        use candle_core::Module as _;
        let hidden = t[0].dim(1)?;
        candle_nn::Embedding::new(t[0].clone(), hidden).forward(&t[1])
    },
    oracle: |_, h| oracle::embedding(&h[0], &h[1]).into(),
    code: |_, v| {
        format!(
            "candle_core::Module::forward(&candle_nn::Embedding::new({w}.clone(), {w}.dim(1)?), &{})?",
            v[1],
            w = v[0]
        )
    },
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: true,
    layout_pairs: false,
    values: &[],
};
