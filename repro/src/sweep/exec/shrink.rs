//! Shrinking a cell while its finding still holds, greedily, to the smallest cell that shows it.

use super::evidence::{is_poisoned, Finding};
use super::inputs::layouts_apply;
use super::run_cell;
use crate::sweep::cell::{self, Cell, LAYOUTS};
use crate::sweep::ops::Op;
use candle_core::{DType, Device};

/// What identifies one divergence among many cells: the finding's pass, category and backends.
pub fn holds(findings: &[Finding], like: &Finding) -> bool {
    findings
        .iter()
        .any(|f| f.pass == like.pass && f.category == like.category && f.backends == like.backends)
}

/// How a shrink ended.
pub enum Shrinking {
    /// The smallest cell found (a fixed point, or the trial budget ran out).
    Done(Cell),
    /// A trial poisoned the device context: resume from `best` in a fresh process, skipping
    /// `culprit`.
    Poisoned { best: Cell, culprit: Cell },
}

/// Shrinks `cell` while `like` still holds: value class toward plain, dtype toward f32, layouts
/// toward contiguous, values toward small integers, variant toward the first, each size knob
/// toward 1. Greedy, to a fixed point; candidates in `skip` (they poisoned an earlier process)
/// are not tried again.
pub fn shrink(
    op: &Op,
    cell: &Cell,
    like: &Finding,
    backends: &[(String, &Device)],
    max_trials: usize,
    skip: &[Cell],
) -> Shrinking {
    let mut best = cell.clone();
    let mut trials = 0;
    loop {
        let mut improved = false;
        for cand in candidates(op, &best) {
            if !layouts_apply(op, &cand) || skip.contains(&cand) {
                continue;
            }
            if trials >= max_trials {
                return Shrinking::Done(best);
            }
            trials += 1;
            let (f, evidence) = run_cell(op, &cand, backends);
            if is_poisoned(&evidence) {
                return Shrinking::Poisoned {
                    best,
                    culprit: cand,
                };
            }
            if holds(&f, like) {
                best = cand;
                improved = true;
                break;
            }
        }
        if !improved {
            return Shrinking::Done(best);
        }
    }
}

fn candidates(op: &Op, c: &Cell) -> Vec<Cell> {
    let mut out = Vec::new();
    // Plain values first: a finding that holds without the special values is not about them
    // (a refusal, a dtype's missing kernel) and joins the plain cells' id. Not for long rows:
    // a plain cell checks the backward pass, whose finite differences are quadratic in length.
    if !c.values.is_plain() && c.values != cell::Values::Long {
        out.push(Cell {
            values: cell::Values::Plain,
            ..c.clone()
        });
    }
    // f32 reads best in a report; integer-only findings keep their dtype (it does not hold).
    if c.dtype != "f32" && op.dtypes.contains(&DType::F32) {
        out.push(Cell {
            dtype: "f32".into(),
            ..c.clone()
        });
    }
    // An i16/i32 index or condition goes to u32 where the finding holds there too (then it is
    // not about those dtypes), and i16 to i32 (one id for the pair; see `divergence_id`).
    for narrower in ["u32", "i32"] {
        let from = c.aux.as_deref().unwrap_or("");
        let wide = narrower == "u32" && matches!(from, "i16" | "i32") || from == "i16";
        if wide && op.aux.0.iter().any(|d| d.as_str() == narrower) {
            out.push(Cell {
                aux: Some(narrower.into()),
                ..c.clone()
            });
        }
    }
    for i in 0..c.layouts.len() {
        for l in LAYOUTS.iter().filter(|&&l| l < c.layouts[i]) {
            let mut n = c.clone();
            n.layouts[i] = *l;
            out.push(n);
        }
    }
    if !c.simple {
        out.push(Cell {
            simple: true,
            ..c.clone()
        });
    }
    if c.variant > 0 {
        out.push(Cell {
            variant: 0,
            ..c.clone()
        });
    }
    for i in 0..c.knobs.len() {
        let k = c.knobs[i];
        let mut smaller: Vec<usize> = vec![1, k / 2, k - 1];
        smaller.retain(|&s| s >= 1 && s < k);
        smaller.dedup();
        for s in smaller {
            let mut n = c.clone();
            n.knobs[i] = s;
            out.push(n);
        }
    }
    out
}
