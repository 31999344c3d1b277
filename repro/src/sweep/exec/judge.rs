//! Judging one backend's outcome against the oracle's answer and its error bound, and judging a
//! recorded outcome again from its cell alone.

use super::bounds::{backward_bounds, forward_bounds, gradient_terms_scale, Bounds};
use super::evidence::{Category, Obs};
use super::inputs::prepare;
use super::passes::{grad_inputs, reference_grads};
use crate::sweep::cell::{Cell, Input};
use crate::sweep::ops::{Op, OutputCheck, Reference};
use harness::compare::{compare_bounded, compare_within, tolerance};
use harness::host::HostTensor;
use harness::oracle;

/// Compares one backend's outcome with the reference; `None` when they agree.
pub(super) fn judge(
    cell: &Cell,
    inputs: &[Input],
    reference: &Reference,
    obs: &Obs,
    bounds: Option<&Bounds>,
    check: OutputCheck,
) -> Option<(Category, String)> {
    match (reference, obs) {
        (_, Obs::Panic { message }) => Some((Category::Crash, format!("panicked: {message}"))),
        (Reference::Unspecified(_), _) => None,
        (Reference::Rejected(r), Obs::Values { .. }) => Some((
            Category::ErrorMismatch,
            format!(
                "accepted a call the contract forbids ({}) and returned {}",
                r.reason,
                obs.short()
            ),
        )),
        (Reference::Rejected(_), Obs::Error { .. }) => None,
        (Reference::Values(_), Obs::Error { message }) => Some((
            Category::Unimplemented,
            format!("fails where the oracle computes a result: {message}"),
        )),
        (
            Reference::Values(want),
            Obs::Values {
                dtype,
                shape,
                values,
            },
        ) => {
            if dtype != want.dtype.as_str() || *shape != want.shape {
                return Some((
                    Category::WrongResult,
                    format!(
                        "returned {dtype} {shape:?}, expected {} {:?}",
                        want.dtype.as_str(),
                        want.shape
                    ),
                ));
            }
            let got = HostTensor {
                dtype: want.dtype,
                shape: shape.clone(),
                values: values.clone(),
            };
            let ok = match check {
                OutputCheck::SortsRows => {
                    oracle::sorts_rows(&inputs[0].host, &got, cell.variant == 0)
                }
                OutputCheck::Argmax => oracle::is_argmax(&inputs[0].host, &got, cell.variant),
                OutputCheck::Argmin => oracle::is_argmin(&inputs[0].host, &got, cell.variant),
                OutputCheck::Values => {
                    let m = match bounds.filter(|_| want.dtype.is_float()) {
                        Some(b) => compare_bounded(b.summary, &want.values, values, &b.per_element)
                            .map(|m| format!("{m} [{}]", b.model)),
                        None => compare_within(tolerance(want.dtype), &want.values, values)
                            .map(|m| m.to_string()),
                    };
                    return m.map(|m| (Category::WrongResult, m));
                }
            };
            (!ok).then(|| {
                (
                    Category::WrongResult,
                    format!(
                        "{} does not order the input as asked; expected e.g. {:?}",
                        obs.short(),
                        want.values
                    ),
                )
            })
        }
    }
    .map(|(c, d)| (c, d.replace('\n', " ")))
}

/// `judge`, with a wrong result on inputs holding NaN or ±inf filed as `NonFinite`.
pub(super) fn judge_cell(
    cell: &Cell,
    inputs: &[Input],
    reference: &Reference,
    obs: &Obs,
    bounds: Option<&Bounds>,
    check: OutputCheck,
) -> Option<(Category, String)> {
    judge(cell, inputs, reference, obs, bounds, check).map(|(c, d)| match c {
        Category::WrongResult if cell.values.non_finite().is_some() => (
            Category::NonFinite,
            format!("{d} (expected by PyTorch's convention for non-finite inputs)"),
        ),
        c => (c, d),
    })
}

/// Judges a recorded outcome again, from the cell alone: the oracle's answer and its error bound
/// for `pass` (`forward` or `backward <role>`, the latter with the recorded loss weights), then
/// the same comparison the run made. `None` when `obs` agrees. This is what a text's labels
/// are computed from, so a label can never disagree with the value beside it.
pub fn rejudge(
    op: &Op,
    cell: &Cell,
    pass: &str,
    loss_weights: Option<&[f64]>,
    obs: &Obs,
) -> Result<Option<(Category, String)>, String> {
    let inputs = prepare(op, cell);
    let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
    let reference = (op.oracle)(cell, &hosts);
    let Some(role) = pass.strip_prefix("backward ") else {
        let bounds = match &reference {
            Reference::Values(want) => Some(forward_bounds(op, cell, &hosts, want)),
            _ => None,
        };
        return Ok(judge_cell(
            cell,
            &inputs,
            &reference,
            obs,
            bounds.as_ref(),
            op.check,
        ));
    };
    let (Reference::Values(out), Some(w)) = (&reference, loss_weights) else {
        return Err(format!(
            "{pass}: no forward answer or no loss weights to judge it by"
        ));
    };
    let which = grad_inputs(op, cell, &inputs);
    let at = which
        .iter()
        .position(|&i| inputs[i].role == role)
        .ok_or_else(|| format!("{pass}: {role} gets no gradient"))?;
    let grads = reference_grads(op, cell, &inputs, &which, w)
        .ok_or_else(|| format!("{pass}: no reference gradient"))?;
    let want = &grads[at];
    let b = backward_bounds(cell, want, gradient_terms_scale(op, cell, w, &hosts, out));
    let r = Reference::Values(want.clone());
    Ok(judge(cell, &inputs, &r, obs, Some(&b), OutputCheck::Values))
}
