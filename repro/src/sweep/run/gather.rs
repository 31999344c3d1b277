//! Gathering what the children report into divergences: findings per cell, the best repro of
//! each divergence, and the cells whose process died or hung.

use super::{Divergence, SweepConfig};
use crate::child::{tail, Ended};
use crate::sweep::cell::Cell;
use crate::sweep::exec::{Category, Finding};
use crate::sweep::{ops, ChildLine, Shrunk};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct Gathered {
    pub(super) done: BTreeMap<String, BTreeSet<usize>>,
    pub(super) diverging: BTreeMap<String, BTreeSet<usize>>,
    pub(super) divergences: BTreeMap<String, Divergence>,
    /// Ops that did not run every planned cell, with the first reason.
    pub(super) incomplete: BTreeMap<String, String>,
}

pub(super) fn record(g: &mut Gathered, op: &ops::Op, line: ChildLine) {
    if let ChildLine::Done {
        index,
        findings,
        shrunk,
        dtype_label,
        ..
    } = line
    {
        g.done.entry(op.name.into()).or_default().insert(index);
        if !findings.is_empty() {
            g.diverging.entry(op.name.into()).or_default().insert(index);
        }
        let mut counted = BTreeSet::new();
        for (id, f) in findings {
            let d = g
                .divergences
                .entry(id.clone())
                .or_insert_with(|| new_divergence(&id, op, &f));
            d.backends.extend(f.backends.iter().cloned());
            d.dtypes.insert(dtype_label.clone());
            // A cell counts once per divergence, whichever backends showed it.
            if counted.insert(id) {
                d.cells += 1;
            }
        }
        for s in shrunk {
            if let Some(d) = g.divergences.get_mut(&s.id) {
                // Shrunk and smallest first; among equals a fixed order (dtypes, then seed):
                // children finish in any order, and the report must not depend on it.
                let rank = |x: &Shrunk| {
                    (
                        x.complete,
                        std::cmp::Reverse(x.cell.size()),
                        std::cmp::Reverse((x.cell.dtype.clone(), x.cell.aux.clone(), x.cell.seed)),
                    )
                };
                let better = d.repro.as_ref().is_none_or(|r| rank(&s) > rank(r));
                if better {
                    d.repro = Some(s);
                }
            }
        }
    }
}

fn new_divergence(id: &str, op: &ops::Op, f: &Finding) -> Divergence {
    Divergence::new(id, op.name, &f.pass, f.category)
}

/// A cell in which its child died, or hung (`hung`) and was killed.
pub(super) struct Death<'a> {
    pub(super) at: usize,
    pub(super) cell: &'a Cell,
    pub(super) hung: bool,
    pub(super) ended: &'a Ended,
    pub(super) stderr: &'a [u8],
}

/// Records a cell in which the child of `op` died (or hung) as a crash of its own.
pub(super) fn record_death(
    cfg: &SweepConfig,
    op: &ops::Op,
    gathered: &Mutex<Gathered>,
    dead: Death,
) {
    let Death {
        at: dead_at,
        cell,
        hung,
        ended,
        stderr,
    } = dead;
    let mut g = gathered.lock().unwrap();
    g.done.entry(op.name.into()).or_default().insert(dead_at);
    g.diverging
        .entry(op.name.into())
        .or_default()
        .insert(dead_at);
    let id = format!(
        "{}-process-{}{}",
        op.name,
        if hung { "hung" } else { "died" },
        cell.hazard
            .map(|h| format!("-{}", h.as_str()))
            .unwrap_or_default()
    )
    .replace('_', "-");
    let death = format!(
        "{}; cell {:?}; stderr: {}",
        if hung {
            format!(
                "no answer within the cell deadline ({} s); killed",
                cfg.cell_timeout.as_secs()
            )
        } else {
            ended.describe()
        },
        cell,
        tail(stderr, 3).replace('\n', " | ")
    );
    let d = g
        .divergences
        .entry(id.clone())
        .or_insert_with(|| Divergence {
            death: Some(death.clone()),
            title: format!(
                "`{}` {} the process",
                op.call,
                if hung { "hangs" } else { "kills" }
            ),
            ..new_divergence(
                &id,
                op,
                &Finding {
                    pass: "forward".into(),
                    category: Category::Crash,
                    backends: vec![],
                    detail: BTreeMap::new(),
                },
            )
        });
    d.backends.insert(cfg.target.backend.clone());
    d.dtypes.insert(cell.dtype_label(op.aux.1));
    d.cells += 1;
}
