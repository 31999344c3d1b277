//! Training steps: the losses nll and cross_entropy, and one AdamW step.

use super::inputs::{data, index, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, INDEX, NONE, REDUCTION};
use crate::sweep::cell::{Cell, Input, Rng};
use candle_core::Tensor;
use harness::oracle;

/// Float data, and a target index below the class count (losses).
fn logits_and_targets(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    let (n, classes) = (k(c, 0), k(c, 1).max(2));
    let mut t = index(c, &[n], classes, None, rng);
    t.role = "target";
    vec![data("inp", c, c.dtype(), &[n, classes], rng), t]
}

/// One step of candle_nn::AdamW (lr 0.1, weight decay 0.01, default betas and eps) on a Var
/// initialised from `p`, with the gradient `g` (the gradient of `sum(p·g)`); returns the new `p`.
pub fn adamw_step(p: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    use candle_nn::Optimizer as _;
    let var = candle_core::Var::from_tensor(p)?;
    let params = candle_nn::ParamsAdamW {
        lr: 0.1,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(vec![var.clone()], params)?;
    opt.backward_step(&(var.as_tensor() * g)?.sum_all()?)?;
    Ok(var.as_tensor().clone())
}

pub(super) const NLL: Op = Op {
    name: "nll",
    call: "candle_nn::loss::nll(&inp, &target)",
    dtypes: FLOATS,
    aux: (INDEX, "target"),
    variants: &["-"],
    knobs: 2,
    inputs: logits_and_targets,
    candle: |_, t| candle_nn::loss::nll(&t[0], &t[1]),
    oracle: |_, h| oracle::nll(&h[0], &h[1]).into(),
    code: |_, v| format!("candle_nn::loss::nll(&{}, &{})?", v[0], v[1]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::Sum,
    indexed: false,
    layout_pairs: false,
    values: &[],
};

pub(super) const CROSS_ENTROPY: Op = Op {
    name: "cross_entropy",
    call: "candle_nn::loss::cross_entropy(&inp, &target)",
    dtypes: FLOATS,
    aux: (INDEX, "target"),
    variants: &["-"],
    knobs: 2,
    inputs: logits_and_targets,
    candle: |_, t| candle_nn::loss::cross_entropy(&t[0], &t[1]),
    oracle: |_, h| oracle::cross_entropy(&h[0], &h[1]).into(),
    code: |_, v| format!("candle_nn::loss::cross_entropy(&{}, &{})?", v[0], v[1]),
    grads: &[0],
    check: OutputCheck::Values,
    error: ErrorModel::LogNormalised,
    indexed: false,
    layout_pairs: false,
    values: REDUCTION,
};

pub(super) const ADAMW_STEP: Op = Op {
    name: "adamw_step",
    call: "candle_nn::AdamW (lr 0.1, weight decay 0.01), one step of p with gradient g",
    dtypes: FLOATS,
    aux: NONE,
    variants: &["-"],
    knobs: 2,
    inputs: |c, rng| {
        let s = [k(c, 0), k(c, 1)];
        vec![
            data("p", c, c.dtype(), &s, rng),
            data("g", c, c.dtype(), &s, rng),
        ]
    },
    candle: |_, t| adamw_step(&t[0], &t[1]),
    oracle: |_, h| oracle::adamw_step(&h[0], &h[1], 0.1, 0.01, 1e-8).into(),
    code: |_, v| {
        format!(
            "{{ use candle_nn::Optimizer as _; let var = candle_core::Var::from_tensor(&{p})?; \
             let params = candle_nn::ParamsAdamW {{ lr: 0.1, weight_decay: 0.01, ..Default::default() }}; \
             let mut opt = candle_nn::AdamW::new(vec![var.clone()], params)?; \
             opt.backward_step(&(var.as_tensor() * &{g})?.sum_all()?)?; var.as_tensor().clone() }}",
            p = v[0],
            g = v[1]
        )
    },
    grads: &[],
    check: OutputCheck::Values,
    // p·(1 − lr·wd) minus an update of size lr: a few roundings of each term.
    error: ErrorModel::Activation,
    indexed: false,
    layout_pairs: false,
    values: &[],
};
