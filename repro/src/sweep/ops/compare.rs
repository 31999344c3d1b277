//! Comparisons and sorts: where_cond, cmp, arg_sort_last_dim, sort_last_dim.

use super::inputs::{data, k, one_2d};
use super::{ErrorModel, Op, OutputCheck, ALL, EVERY_INT, NONE};
use crate::sweep::cell::{Cell, Input, Kind};
use candle_core::op::CmpOp;
use harness::host::HostTensor;
use harness::oracle;

const CMP_VARIANTS: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge"];

const CMP_OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];
const CMP_NAMES: [&str; 6] = ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"];

fn cmp_op(c: &Cell) -> CmpOp {
    CMP_OPS[c.variant]
}

pub(super) const ARG_SORT_LAST_DIM: Op = Op {
    name: "arg_sort_last_dim",
    call: "x.arg_sort_last_dim(asc)",
    dtypes: ALL,
    aux: NONE,
    variants: &["ascending", "descending"],
    knobs: 2,
    inputs: one_2d,
    candle: |c, t| t[0].arg_sort_last_dim(c.variant == 0),
    oracle: |c, h| oracle::arg_sort_last_dim(&h[0], c.variant == 0).into(),
    code: |c, v| format!("{}.arg_sort_last_dim({})?", v[0], c.variant == 0),
    grads: &[],
    check: OutputCheck::SortsRows,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const WHERE_COND: Op = Op {
    name: "where_cond",
    call: "cond.where_cond(&on_true, &on_false)",
    dtypes: ALL,
    aux: (EVERY_INT, "condition"),
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        let n = s[0] * s[1];
        let cond: Vec<f64> = (0..n)
            .map(|i| {
                if c.simple {
                    (i % 3) as f64
                } else {
                    rng.below(3) as f64
                }
            })
            .collect();
        vec![
            Input {
                role: "cond",
                kind: Kind::Cond,
                host: HostTensor::new(c.aux().unwrap(), &s, cond),
            },
            data("on_true", c, c.dtype(), &s, rng),
            data("on_false", c, c.dtype(), &s, rng),
        ]
    },
    candle: |_, t| t[0].where_cond(&t[1], &t[2]),
    oracle: |_, h| oracle::where_cond(&h[0], &h[1], &h[2]).into(),
    code: |_, v| format!("{}.where_cond(&{}, &{})?", v[0], v[1], v[2]),
    grads: &[1, 2],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const CMP: Op = Op {
    name: "cmp",
    call: "a.cmp(&b, op)",
    dtypes: ALL,
    aux: NONE,
    variants: CMP_VARIANTS,
    knobs: 2,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        // Few distinct values, so equal pairs occur.
        let mut pick = |role| {
            let v = (0..s[0] * s[1])
                .map(|i| {
                    if c.simple {
                        (i % 3) as f64
                    } else {
                        rng.below(3) as f64
                    }
                })
                .collect();
            Input {
                role,
                kind: Kind::Data,
                host: HostTensor::new(c.dtype(), &s, v),
            }
        };
        let a = pick("a");
        let b = pick("b");
        vec![a, b]
    },
    candle: |c, t| t[0].cmp(&t[1], cmp_op(c)),
    oracle: |c, h| oracle::cmp(&h[0], &h[1], CMP_VARIANTS[c.variant]).into(),
    code: |c, v| {
        format!(
            "{}.cmp(&{}, candle_core::op::CmpOp::{})?",
            v[0], v[1], CMP_NAMES[c.variant]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const SORT_LAST_DIM: Op = Op {
    name: "sort_last_dim",
    call: "x.sort_last_dim(asc).0",
    dtypes: ALL,
    aux: NONE,
    variants: &["ascending", "descending"],
    knobs: 2,
    inputs: one_2d,
    candle: |c, t| t[0].sort_last_dim(c.variant == 0).map(|(sorted, _)| sorted),
    oracle: |c, h| oracle::sort_last_dim(&h[0], c.variant == 0).into(),
    code: |c, v| format!("{}.sort_last_dim({})?.0", v[0], c.variant == 0),
    // Sorting is not differentiable where values tie, and the cells' values do tie.
    grads: &[],
    check: OutputCheck::Values,
    error: ErrorModel::Rounded,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
