//! The divergence ids Metal's dispatch predicts, derived from the outcomes of `predict` on every
//! cell the sweep plans (default seed and random cells): a forward cell Metal refuses, or whose
//! kernel its library does not instantiate, is an `unimplemented` divergence there. Its id
//! follows how the sweep names a finding: the layouts are shrunk (each input to the simplest
//! layout under which Metal still refuses), the i16/i32 index or condition dtype is named when
//! the same cell with a u32 one runs (as i32 when i32 is refused too), and the first cell of a kind in plan order names every
//! later one (a finding's key holds no dtype). Cells with an index hazard or a value class are left out:
//! their refusals join the plain cells' ids.

use super::{Metal, MetalOutcome};
use crate::sweep::cell::{Cell, Layout};
use crate::sweep::exec::Category;
use crate::sweep::id::{DivergenceId, Pass};
use crate::sweep::ops::{Op, OPS};
use std::collections::BTreeMap;

/// A Metal-only divergence the dispatch predicts: its id, the first cell that shows it, and
/// what Metal does there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    pub id: String,
    pub cell: String,
    pub outcome: MetalOutcome,
}

fn refused(o: &MetalOutcome) -> bool {
    matches!(
        o,
        MetalOutcome::Refuses(_) | MetalOutcome::NotInstantiated(_)
    )
}

fn describe(op: &Op, c: &Cell) -> String {
    let layouts: Vec<&str> = c.layouts.iter().map(|l| l.as_str()).collect();
    format!(
        "{} {}, variant {}, knobs {:?}, layouts [{}]",
        op.name,
        c.dtype_label(op.aux.1),
        c.variant,
        c.knobs,
        layouts.join(", ")
    )
}

/// The id the sweep would give a refused cell, after shrinking its layouts as the sweep does:
/// each input in turn takes the simplest layout under which Metal still refuses the cell.
fn id_of(metal: &Metal, op: &'static Op, c: &Cell) -> String {
    let ranks: Vec<usize> = crate::sweep::exec::generate(op, c)
        .iter()
        .map(|i| i.host.shape.len())
        .collect();
    let mut shrunk = c.clone();
    for (i, rank) in ranks.iter().enumerate() {
        let here = shrunk.layouts[i];
        for simpler in crate::sweep::cell::LAYOUTS
            .iter()
            .take_while(|l| **l < here)
        {
            let mut t = shrunk.clone();
            t.layouts[i] = *simpler;
            if simpler.applies_to(*rank) && refused(&metal.predict(op, &t)) {
                shrunk = t;
                break;
            }
        }
    }
    let roles = crate::sweep::exec::generate(op, &shrunk);
    let layouts = roles
        .iter()
        .zip(&shrunk.layouts)
        .filter(|(_, l)| **l != Layout::Contiguous)
        .map(|(i, l)| (i.role.to_string(), *l))
        .collect();
    // An i16/i32 second dtype is named when a u32 one runs; i16 shrinks to i32 when that is
    // refused too (as the sweep's shrinking does).
    let with_aux = |a: &str| Cell {
        aux: Some(a.into()),
        ..shrunk.clone()
    };
    let aux = match shrunk.aux.as_deref() {
        Some(a @ ("i16" | "i32")) if !refused(&metal.predict(op, &with_aux("u32"))) => {
            let a = if a == "i16" && refused(&metal.predict(op, &with_aux("i32"))) {
                "i32"
            } else {
                a
            };
            Some((a.to_string(), op.aux.1.to_string()))
        }
        _ => None,
    };
    DivergenceId {
        op: op.name,
        pass: Pass::Forward,
        category: Category::Unimplemented,
        layouts,
        aux,
        hazard: None,
        values: None,
    }
    .to_string()
}

/// Every Metal-only divergence id the dispatch predicts, over every op's planned cells.
pub fn derive(metal: &Metal) -> BTreeMap<String, Derived> {
    let mut out: BTreeMap<String, Derived> = BTreeMap::new();
    for op in OPS {
        // The first refused cell of each kind (which inputs are non-contiguous) names it.
        let mut named: BTreeMap<Vec<usize>, String> = BTreeMap::new();
        for c in crate::sweep::plan(op, crate::sweep::DEFAULT_SEED, crate::sweep::DEFAULT_CASES) {
            if c.hazard.is_some() || !c.values.is_plain() {
                continue;
            }
            let outcome = metal.predict(op, &c);
            if !refused(&outcome) {
                continue;
            }
            let kind: Vec<usize> = c
                .layouts
                .iter()
                .enumerate()
                .filter(|(_, l)| **l != Layout::Contiguous)
                .map(|(i, _)| i)
                .collect();
            if named.contains_key(&kind) {
                continue;
            }
            let id = id_of(metal, op, &c);
            named.insert(kind, id.clone());
            out.entry(id.clone()).or_insert(Derived {
                id,
                cell: describe(op, &c),
                outcome,
            });
        }
    }
    out
}

/// `derive` over the shared parsed sources, computed once per process (the pages and the
/// first-run comparison each need it, and a debug build takes seconds per pass).
pub fn derived() -> Result<&'static BTreeMap<String, Derived>, String> {
    static DERIVED: std::sync::OnceLock<BTreeMap<String, Derived>> = std::sync::OnceLock::new();
    let metal = super::shared()?;
    Ok(DERIVED.get_or_init(|| derive(metal)))
}
