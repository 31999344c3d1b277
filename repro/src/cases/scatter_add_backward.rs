//! # scatter_add_backward — the gradients of `scatter_add` and `scatter` with respect to `self`
//!
//! Found by this project: moe-core's `scatter-add` dispatch failed its finite-difference gradient
//! check on the CPU (`crates/moe-core/tests/gradcheck.rs`). Upstream: no candle issue found
//! (searched "scatter_add backward"); PyTorch had the same family of bugs (pytorch#27614).
//! Known status: see ISSUES.md and reports/<backend>/scatter_add_backward.txt (generated).
//!
//! candle 0.11.1 `backprop.rs` computes the gradient of `self` for `ScatterAdd` through a mask
//! built with `mask.scatter(indexes, &mask.zeros_like()?, dim)` — a source shaped like `self`,
//! not like `indexes` — while `Scatter` (overwrite) adds the gradient unmasked. Each variant
//! differentiates `sum(out * r)` with a distinct weight per position, so a wrong gradient shows
//! where it is wrong: for `scatter_add`, d/d self = r and d/d source = r gathered by the index;
//! for `scatter`, d/d self = r with the overwritten positions zeroed.

use candle_core::{DType, Tensor, Var};
use harness::case::{f32_matrix, require_line, Case, KnownDivergence, SnippetRun, Variant};
use harness::oracle;
use harness::{HostTensor, Probe, Stopped};

pub const CASE: Case = Case {
    name: "scatter_add_backward",
    title: "scatter_add / scatter backward: wrong or failing gradient for `self`",
    claim: "Differentiating through `scatter_add` fails with a shape mismatch whenever the index's shape differs from `self`'s (e.g. more rows, the usual MoE combine), and otherwise zeroes the gradient of `self` at scattered positions; `scatter`'s gradient of `self` is not zeroed where it overwrites.",
    source: "found by moe-core's finite-difference gradient check (crates/moe-core/tests/gradcheck.rs)",
    upstream: &["https://github.com/pytorch/pytorch/issues/27614 (the same family of bugs in PyTorch)"],
    snippet: include_str!("../../snippets/src/bin/snippet_scatter_add_backward.rs"),
    variants,
    known: &[
        KnownDivergence {
            variant: "scatter_add-index-taller-than-self",
            backends: &["cpu"],
            why: "backprop.rs ScatterAdd masks the grad of self with mask.scatter(indexes, self-shaped zeros): shape mismatch",
        },
        KnownDivergence {
            variant: "scatter_add-index-same-shape",
            backends: &["cpu"],
            why: "backprop.rs ScatterAdd zeroes the grad of self where the index points; it should pass through",
        },
        KnownDivergence {
            variant: "scatter-overwrite",
            backends: &["cpu"],
            why: "backprop.rs Scatter passes the grad of self unmasked; overwritten positions should get zero",
        },
    ],
    snippet_run: SnippetRun::Check(snippet_check),
};

/// The forward is right (3 rows of ones plus 6 rows of ones added two per row); the backward is
/// candle 0.11.1's known bug, which the snippet must keep showing or say is fixed.
fn snippet_check(out: &str) -> Result<(), String> {
    require_line(out, &format!("forward: {}", f32_matrix(&vec![vec![2.0; 4]; 3])))?;
    let all_ones = f32_matrix(&vec![vec![1.0; 4]; 3]);
    if out.contains(&format!("same shape: d/d init = {all_ones}")) {
        return Err("scatter_add's gradient of self is now right: fixed upstream? update the case and this snippet".into());
    }
    Ok(())
}

fn weights(shape: &[usize]) -> HostTensor {
    HostTensor::from_fn(DType::F32, shape, |i| (i + 1) as f64)
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    ScatterAdd,
    Scatter,
}

/// `rows_src` source rows scattered into `rows_self` rows along dim 0; 4 columns.
fn variant(name: &str, about: &str, op: Op, rows_self: usize, rows_src: usize) -> Variant {
    Variant::new(name, about, move |p: &mut Probe| -> Result<(), Stopped> {
        let cols = 4;
        let init_h = HostTensor::from_fn(DType::F32, &[rows_self, cols], |i| (i % 5) as f64);
        let src_h = HostTensor::from_fn(DType::F32, &[rows_src, cols], |i| (i % 7 + 1) as f64);
        // scatter: a permutation per column (unique targets); scatter_add: repeated targets.
        let idx_h = HostTensor::from_fn(DType::U32, &[rows_src, cols], |i| match op {
            Op::ScatterAdd => ((i / cols + i % cols) % rows_self) as f64,
            Op::Scatter => ((i / cols + i % cols) % rows_src) as f64,
        });
        let r_h = weights(&[rows_self, cols]);
        let init = p.upload("init", &init_h)?;
        let src = p.upload("src", &src_h)?;
        let idx = p.upload("idx", &idx_h)?;
        let r = p.upload("r", &r_h)?;
        let (init_v, src_v) = (
            Var::from_tensor(&init).map_err(|_| Stopped)?,
            Var::from_tensor(&src).map_err(|_| Stopped)?,
        );
        let (init_t, src_t) = (init_v.as_tensor().clone(), src_v.as_tensor().clone());
        let forward = || match op {
            Op::ScatterAdd => init_t.scatter_add(&idx, &src_t, 0),
            #[cfg(feature = "tensor-scatter")]
            Op::Scatter => init_t.scatter(&idx, &src_t, 0),
            // Not built: `variants()` leaves the `scatter` variant out without the feature.
            #[cfg(not(feature = "tensor-scatter"))]
            Op::Scatter => unreachable!("Tensor::scatter is new in candle 0.9"),
        };
        let (call, expected) = match op {
            Op::ScatterAdd => (
                "scatter_add",
                oracle::scatter_add(&init_h, &idx_h, &src_h, 0),
            ),
            Op::Scatter => ("scatter", oracle::scatter(&init_h, &idx_h, &src_h, 0)),
        };
        p.step(
            format!("let out = init.{call}(&idx, &src, 0)?; // init, src: Var"),
            &[("init", &init_t), ("idx", &idx), ("src", &src_t)],
            expected,
            forward,
        )?;
        let grad_of = |wrt: &Tensor| -> candle_core::Result<Tensor> {
            let grads = (forward()? * &r)?.sum_all()?.backward()?;
            grads
                .get(wrt)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
        };
        let g_init = match op {
            Op::ScatterAdd => Ok(r_h.clone()),
            // Overwritten positions do not reach the output.
            Op::Scatter => oracle::scatter(
                &r_h,
                &idx_h,
                &HostTensor::zeros(DType::F32, &[rows_src, cols]),
                0,
            ),
        };
        p.step(
            "let g = (out * &r)?.sum_all()?.backward()?.get(&init); // d/d init",
            &[("init", &init_t), ("r", &r)],
            g_init,
            || grad_of(&init_t),
        )?;
        p.step(
            "let g = (out * &r)?.sum_all()?.backward()?.get(&src); // d/d src",
            &[("src", &src_t), ("r", &r)],
            oracle::gather(&r_h, &idx_h, 0),
            || grad_of(&src_t),
        )?;
        Ok(())
    })
}

fn variants() -> Vec<Variant> {
    vec![
        variant(
            "scatter_add-index-taller-than-self",
            "scatter_add of 6 source rows into 3 rows (the MoE combine shape), then backward",
            Op::ScatterAdd,
            3,
            6,
        ),
        variant(
            "scatter_add-index-same-shape",
            "scatter_add of 3 source rows into 3 rows with repeated targets, then backward",
            Op::ScatterAdd,
            3,
            3,
        ),
        // `Tensor::scatter` is new in candle 0.9 (see the `tensor-scatter` feature).
        #[cfg(feature = "tensor-scatter")]
        variant(
            "scatter-overwrite",
            "scatter (overwrite) of 3 rows into 5 rows, unique targets, then backward",
            Op::Scatter,
            5,
            3,
        ),
    ]
}
