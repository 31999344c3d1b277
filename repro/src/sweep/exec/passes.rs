//! The forward and backward passes of a cell on one device, caught errors and panics included,
//! and the reference gradients (central finite differences of the oracle) they are judged by.

use super::evidence::Obs;
use super::inputs::prepare;
use crate::sweep::cell::{self, Cell, Input, Rng};
use crate::sweep::ops::{Op, Reference};
use candle_core::{DType, Device};
use harness::host::{read_back, HostTensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn first_line(e: &candle_core::Error) -> String {
    harness::device::first_line(&e.to_string())
}

/// Runs `f` catching errors and panics (candle's CPU backend panics on some bad indexes).
fn observe(f: impl FnOnce() -> candle_core::Result<HostTensor>) -> Obs {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(h)) => Obs::values(h),
        Ok(Err(e)) => Obs::Error {
            message: first_line(&e),
        },
        Err(p) => Obs::Panic {
            message: harness::observe::panic_message(&*p),
        },
    }
}

pub fn forward(op: &Op, cell: &Cell, inputs: &[Input], device: &Device) -> Obs {
    observe(|| {
        let ts = inputs
            .iter()
            .zip(&cell.layouts)
            .map(|(i, l)| cell::materialize(&i.host, *l, device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        read_back(&(op.candle)(cell, &ts)?)
    })
}

/// The inputs whose gradient this cell checks.
pub fn grad_inputs(op: &Op, cell: &Cell, inputs: &[Input]) -> Vec<usize> {
    // Gradients stop at an integer output (to_dtype to an integer type has no gradient).
    // Value-class cells check the forward pass only (see `cell::Values`).
    if cell.aux().is_some_and(|a| !a.is_float()) && op.name == "to_dtype"
        || cell.hazard.is_some()
        || !cell.values.is_plain()
    {
        return Vec::new();
    }
    op.grads
        .iter()
        .copied()
        .filter(|&i| inputs[i].host.dtype.is_float())
        .collect()
}

/// Loss weights: a few exact values, so `d loss / d out = w` holds exactly in every dtype.
pub fn loss_weights(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed ^ 0x5EED);
    (0..n)
        .map(|_| [-1.0, -0.5, 0.5, 1.0, 1.5][rng.below(5)])
        .collect()
}

/// Gradients of `sum(out * w)` with respect to each checked input's base variable; `None` where
/// the backward pass records no gradient for it.
fn gradients(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
    device: &Device,
) -> candle_core::Result<Vec<Gradient>> {
    let mut vars = Vec::new();
    let mut ts = Vec::new();
    for (i, (input, layout)) in inputs.iter().zip(&cell.layouts).enumerate() {
        if which.contains(&i) {
            let (var, t) = cell::materialize_var(&input.host, *layout, device)?;
            vars.push(var);
            ts.push(t);
        } else {
            ts.push(cell::materialize(&input.host, *layout, device)?);
        }
    }
    let out = (op.candle)(cell, &ts)?;
    let wt = HostTensor::new(out.dtype(), out.dims(), w.to_vec()).to_tensor(device)?;
    let grads = (out * wt)?.sum_all()?.backward()?;
    Ok(vars
        .iter()
        .map(|v| Gradient {
            got: grads.get(v.as_tensor()).map(read_back),
            dtype: v.dtype(),
            dims: v.dims().to_vec(),
        })
        .collect())
}

/// One variable's gradient (`None`: none recorded), with the variable's dtype and shape.
struct Gradient {
    got: Option<candle_core::Result<HostTensor>>,
    dtype: DType,
    dims: Vec<usize>,
}

/// Whether the backward pass on the CPU records no gradient at all for the input `role` of this
/// cell (a `grads.get(..)` of `None`, which `backward` reports as zeros).
pub fn gradient_missing_on_cpu(op: &Op, cell: &Cell, role: &str, w: &[f64]) -> Option<bool> {
    let inputs = prepare(op, cell);
    let which = grad_inputs(op, cell, &inputs);
    let at = which.iter().position(|&i| inputs[i].role == role)?;
    let run = || gradients(op, cell, &inputs, &which, w, &Device::Cpu);
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(gs)) => gs.get(at).map(|g| g.got.is_none()),
        _ => None,
    }
}

/// Gradients of `sum(out * w)` with respect to each checked input's base variable.
pub fn backward(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
    device: &Device,
) -> Vec<Obs> {
    let run = || -> candle_core::Result<Vec<candle_core::Result<HostTensor>>> {
        Ok(gradients(op, cell, inputs, which, w, device)?
            .into_iter()
            .map(|g| match g.got {
                Some(g) => g,
                // No gradient recorded means a zero gradient.
                None => Ok(HostTensor::zeros(g.dtype, &g.dims)),
            })
            .collect())
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(gs)) => gs
            .into_iter()
            .map(|g| match g {
                Ok(h) => Obs::values(h),
                Err(e) => Obs::Error {
                    message: first_line(&e),
                },
            })
            .collect(),
        Ok(Err(e)) => vec![
            Obs::Error {
                message: first_line(&e)
            };
            which.len()
        ],
        Err(p) => vec![
            Obs::Panic {
                message: harness::observe::panic_message(&*p)
            };
            which.len()
        ],
    }
}

/// The reference gradients by central finite differences of the oracle, computed in f64, then
/// mapped onto each input's base variable (what candle's gradient is taken against).
pub fn reference_grads(
    op: &Op,
    cell: &Cell,
    inputs: &[Input],
    which: &[usize],
    w: &[f64],
) -> Option<Vec<HostTensor>> {
    let mut fd_cell = cell.clone();
    fd_cell.dtype = "f64".into();
    if cell.aux().is_some_and(|a| a.is_float()) {
        fd_cell.aux = Some("f64".into());
    }
    let as_f64 = |h: &HostTensor| -> HostTensor {
        if h.dtype.is_float() {
            HostTensor {
                dtype: DType::F64,
                ..h.clone()
            }
        } else {
            h.clone()
        }
    };
    let mut hosts: Vec<HostTensor> = inputs.iter().map(|i| as_f64(&i.host)).collect();
    let loss = |hosts: &[HostTensor]| -> Option<f64> {
        match (op.oracle)(&fd_cell, hosts) {
            Reference::Values(o) => Some(o.values.iter().zip(w).map(|(a, b)| a * b).sum()),
            _ => None,
        }
    };
    loss(&hosts)?;
    let h = 1e-5;
    let mut out = Vec::new();
    for &i in which {
        let mut g = HostTensor::zeros(DType::F64, &hosts[i].shape);
        for e in 0..hosts[i].values.len() {
            let x = hosts[i].values[e];
            hosts[i].values[e] = x + h;
            let up = loss(&hosts)?;
            hosts[i].values[e] = x - h;
            let down = loss(&hosts)?;
            hosts[i].values[e] = x;
            g.values[e] = (up - down) / (2.0 * h);
        }
        let mut base = cell::grad_to_base(&g, cell.layouts[i]);
        base.dtype = inputs[i].host.dtype;
        out.push(base);
    }
    Some(out)
}
