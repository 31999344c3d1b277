//! Running one cell three ways (oracle, CPU, target), forward and backward, and turning the
//! differences into findings; and shrinking a cell while its finding still holds.
//!
//! `inputs` draws a cell's inputs, `passes` runs them forward and backward on a device (and
//! computes the reference gradients), `bounds` says how far a float result may be off,
//! `judge` compares an outcome with the oracle, `evidence` holds what a run records, and
//! `shrink` makes a finding's cell small. `run_cell`, here, puts them together.

mod bounds;
mod evidence;
mod inputs;
mod judge;
mod passes;
mod shrink;

pub use bounds::{backward_bounds, forward_bounds, gradient_terms_scale, Bounds};
pub use evidence::{
    is_poisoned, same_value, values_text, Category, Evidence, EvidenceInput, Finding, Obs,
    EVIDENCE_LIMIT, KEPT,
};
pub use inputs::{generate, layouts_apply, prepare};
pub use judge::rejudge;
pub use passes::{
    backward, forward, grad_inputs, gradient_missing_on_cpu, loss_weights, reference_grads,
};
pub use shrink::{holds, shrink, Shrinking};

use super::cell::{self, Cell};
use super::ops::{Op, OutputCheck, Reference};
use candle_core::Device;
use evidence::compact;
use harness::host::HostTensor;
use judge::{judge, judge_cell};
use std::collections::BTreeMap;

/// Runs a cell on every backend given (CPU first) and returns its findings and evidence.
pub fn run_cell(op: &Op, cell: &Cell, backends: &[(String, &Device)]) -> (Vec<Finding>, Evidence) {
    let inputs = prepare(op, cell);
    let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
    let reference = (op.oracle)(cell, &hosts);
    let mut evidence = Evidence {
        inputs: inputs
            .iter()
            .zip(&cell.layouts)
            .map(|(i, l)| EvidenceInput {
                role: i.role.to_string(),
                dtype: i.host.dtype.as_str().to_string(),
                shape: i.host.shape.clone(),
                values: i.host.values.clone(),
                layout: *l,
            })
            .collect(),
        reference: BTreeMap::new(),
        observed: BTreeMap::new(),
        loss_weights: None,
    };
    evidence.reference.insert(
        "forward".into(),
        match &reference {
            Reference::Values(v) => Obs::values(v.clone()).short(),
            Reference::Rejected(r) => format!("rejects the call: {}", r.reason),
            Reference::Unspecified(why) => format!("unspecified: {why}"),
        },
    );
    // pass → backend → (category, detail)
    let mut raw: BTreeMap<String, BTreeMap<String, (Category, String)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    let which = grad_inputs(op, cell, &inputs);
    let ref_values = match &reference {
        Reference::Values(v) => Some(v.clone()),
        _ => None,
    };
    let w = ref_values
        .as_ref()
        .map(|v| loss_weights(v.values.len(), cell.seed));
    let ref_grads = match (&w, which.is_empty()) {
        (Some(w), false) => reference_grads(op, cell, &inputs, &which, w),
        _ => None,
    };
    let fwd_bounds = ref_values
        .as_ref()
        .map(|want| forward_bounds(op, cell, &hosts, want));
    let grad_bounds: Option<Vec<Bounds>> = match (&ref_grads, &w, &ref_values) {
        (Some(g), Some(w), Some(out)) => {
            let scale = gradient_terms_scale(op, cell, w, &hosts, out);
            Some(
                g.iter()
                    .map(|want| backward_bounds(cell, want, scale))
                    .collect(),
            )
        }
        _ => None,
    };
    for (name, device) in backends {
        let fwd = forward(op, cell, &inputs, device);
        if let Some(j) = judge_cell(
            cell,
            &inputs,
            &reference,
            &fwd,
            fwd_bounds.as_ref(),
            op.check,
        ) {
            raw.entry("forward".into())
                .or_default()
                .insert(name.clone(), j);
        }
        if let Obs::Error { message } = &fwd {
            errors.insert(name.clone(), message.clone());
        }
        let fwd_ok = matches!(fwd, Obs::Values { .. });
        evidence
            .observed
            .entry("forward".into())
            .or_default()
            .insert(name.clone(), fwd);
        // The backward pass is judged only where the forward pass computed the right thing.
        let fwd_right = fwd_ok && !raw.get("forward").is_some_and(|m| m.contains_key(name));
        if let (Some(grads), Some(w), true) = (&ref_grads, &w, fwd_right) {
            let got = backward(op, cell, &inputs, &which, w, device);
            let gb = grad_bounds
                .as_ref()
                .expect("bounds for every reference gradient");
            for (((&i, want), obs), b) in which.iter().zip(grads).zip(got).zip(gb) {
                let pass = format!("backward {}", inputs[i].role);
                let r = Reference::Values(want.clone());
                if let Some(j) = judge(cell, &inputs, &r, &obs, Some(b), OutputCheck::Values) {
                    raw.entry(pass.clone()).or_default().insert(name.clone(), j);
                }
                evidence
                    .reference
                    .entry(pass.clone())
                    .or_insert_with(|| Obs::values(want.clone()).short());
                evidence
                    .observed
                    .entry(pass)
                    .or_default()
                    .insert(name.clone(), obs);
            }
            evidence.loss_weights = Some(w.clone());
        }
    }
    // Error parity between backends on a call both refuse.
    if backends.len() == 2 && !matches!(reference, Reference::Values(_)) {
        let (a, b) = (&backends[0].0, &backends[1].0);
        if let (Some(ea), Some(eb)) = (errors.get(a), errors.get(b)) {
            if normalise(ea) != normalise(eb) {
                raw.entry("forward".into()).or_default().insert(
                    b.clone(),
                    (
                        Category::ErrorMismatch,
                        format!("{a} and {b} refuse the call with different errors: {a}: `{ea}`; {b}: `{eb}`"),
                    ),
                );
            }
        }
    }
    // One finding per backend: each is shrunk on its own, so a CPU-only run and a CPU+CUDA
    // run shrink a CPU divergence the same way and name it the same.
    let mut findings = Vec::new();
    for (pass, per_backend) in raw {
        for (backend, (category, detail)) in per_backend {
            findings.push(Finding {
                pass: pass.clone(),
                category,
                backends: vec![backend.clone()],
                detail: BTreeMap::from([(backend, detail)]),
            });
        }
    }
    let long_row = cell.values == cell::Values::Long;
    for i in &mut evidence.inputs {
        compact(&mut i.values, long_row);
    }
    for o in evidence.observed.values_mut().flat_map(|m| m.values_mut()) {
        if let Obs::Values { values, .. } = o {
            compact(values, long_row);
        }
    }
    (findings, evidence)
}

/// Error texts compared for parity: the words, without numbers or backend names.
fn normalise(msg: &str) -> String {
    msg.to_lowercase()
        .replace("cuda", "")
        .replace("cpu", "")
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
