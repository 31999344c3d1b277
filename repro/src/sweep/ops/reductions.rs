//! Reductions along a dim: sum, mean, max, min, argmax, argmin (keepdim) and cumsum.

use super::inputs::one_2d;
use super::{
    ErrorModel, Op, OutputCheck, ALL, DIMS, FLOATS, NONE, NON_FINITE, REDUCTION, SCAN, SUM,
};
use harness::oracle;

/// `x.<method>(dim)` over dim 0 or 1 of a 2-D input, against `oracle::<method>`:
/// `reduce!(method, dtypes, error model, grads, check, value classes)`.
macro_rules! reduce {
    ($method:ident, $dtypes:expr, $error:expr, $grads:expr, $check:expr, $values:expr) => {
        Op {
            name: stringify!($method),
            call: concat!("x.", stringify!($method), "(dim)"),
            dtypes: $dtypes,
            aux: NONE,
            variants: DIMS,
            knobs: 2,
            inputs: one_2d,
            candle: |c, t| t[0].$method(c.variant),
            oracle: |c, h| oracle::$method(&h[0], c.variant).into(),
            code: |c, v| {
                format!(
                    concat!("{}.", stringify!($method), "({})?"),
                    v[0], c.variant
                )
            },
            grads: $grads,
            check: $check,
            error: $error,
            indexed: false,
            layout_pairs: false,
            values: $values,
        }
    };
}
pub(super) use reduce;

pub(super) const SUM_KEEPDIM: Op = reduce!(
    sum_keepdim,
    ALL,
    ErrorModel::Sum,
    &[0],
    OutputCheck::Values,
    SUM
);

pub(super) const MAX_KEEPDIM: Op = reduce!(
    max_keepdim,
    ALL,
    ErrorModel::Rounded,
    &[0],
    OutputCheck::Values,
    NON_FINITE
);

pub(super) const ARGMAX_KEEPDIM: Op = reduce!(
    argmax_keepdim,
    ALL,
    ErrorModel::Rounded,
    &[],
    OutputCheck::Argmax,
    NON_FINITE
);

pub(super) const MEAN_KEEPDIM: Op = reduce!(
    mean_keepdim,
    FLOATS,
    ErrorModel::Sum,
    &[0],
    OutputCheck::Values,
    REDUCTION
);

pub(super) const MIN_KEEPDIM: Op = reduce!(
    min_keepdim,
    ALL,
    ErrorModel::Rounded,
    &[0],
    OutputCheck::Values,
    NON_FINITE
);

pub(super) const ARGMIN_KEEPDIM: Op = reduce!(
    argmin_keepdim,
    ALL,
    ErrorModel::Rounded,
    &[],
    OutputCheck::Argmin,
    NON_FINITE
);

pub(super) const CUMSUM: Op = reduce!(
    cumsum,
    FLOATS,
    ErrorModel::Sum,
    &[0],
    OutputCheck::Values,
    SCAN
);
