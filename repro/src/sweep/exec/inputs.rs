//! A cell's inputs: drawn from its seed, then fitted to its layouts, value class and hazard.

use crate::sweep::cell::{self, Cell, Hazard, Input, Kind, Rng};
use crate::sweep::ops::Op;

/// The op's inputs for a cell as drawn from its seed (roles, kinds, shapes, values), before
/// layouts and hazards touch them.
pub fn generate(op: &Op, cell: &Cell) -> Vec<Input> {
    (op.inputs)(cell, &mut Rng(cell.seed))
}

/// The cell's inputs with layout constraints and the hazard applied.
pub fn prepare(op: &Op, cell: &Cell) -> Vec<Input> {
    let mut inputs = generate(op, cell);
    if !cell.values.is_plain() {
        cell::apply_values(&mut inputs[0].host, cell.values, op.reduced_dim(cell));
    }
    for (input, layout) in inputs.iter_mut().zip(&cell.layouts) {
        cell::fit_to_layout(&mut input.host, *layout);
    }
    if let Some(h) = cell.hazard {
        if let Some(ix) = inputs
            .iter_mut()
            .find(|i| matches!(i.kind, Kind::Index { .. }))
        {
            let Kind::Index { bound } = ix.kind else {
                unreachable!()
            };
            let bad = match h {
                Hazard::PastEnd => bound as f64,
                Hazard::DtypeMax => harness::host::int_max(ix.host.dtype),
                Hazard::Negative => -1.0,
            };
            if let Some(v) = ix.host.values.first_mut() {
                *v = bad;
            }
        }
    }
    inputs
}

/// Whether every input's layout means something at that input's rank.
pub fn layouts_apply(op: &Op, cell: &Cell) -> bool {
    generate(op, cell)
        .iter()
        .zip(&cell.layouts)
        .all(|(i, l)| l.applies_to(i.host.shape.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::cell::Values;
    use crate::sweep::ops::{Reference, OPS};
    use crate::sweep::{plan, DEFAULT_SEED};
    use harness::host::HostTensor;
    use harness::oracle;

    /// Every value-class cell reaches the dim its op reduces: a long cell's first input is
    /// `LONG` along it, a non-finite cell has exactly one special value in each line along it.
    #[test]
    fn value_classes_reach_the_reduced_dim() {
        let mut checked = 0;
        for op in OPS {
            for cell in plan(op, DEFAULT_SEED, 0) {
                let inputs = prepare(op, &cell);
                let x = &inputs[0].host;
                let dim = op.reduced_dim(&cell);
                // Where the op keeps the rank and collapses one dim (a keepdim reduction), that
                // dim is the reduced one: a check that shares nothing with `reduced_dim`.
                let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
                if let Reference::Values(want) = (op.oracle)(&cell, &hosts) {
                    let collapsed: Vec<usize> = (0..x.shape.len())
                        .filter(|&d| {
                            want.shape.len() == x.shape.len()
                                && want.shape[d] == 1
                                && x.shape[d] > 1
                        })
                        .collect();
                    if !cell.values.is_plain() && collapsed.len() == 1 {
                        assert_eq!(collapsed, [dim], "{} {cell:?}", op.name);
                    }
                }
                if cell.values == Values::Long {
                    assert_eq!(x.shape[dim], crate::sweep::cell::LONG, "{cell:?}");
                    checked += 1;
                }
                if cell.values.non_finite().is_some() {
                    let (outer, len, inner) = oracle::lines(&x.shape, dim);
                    for o in 0..outer {
                        for r in 0..inner {
                            let specials = (0..len)
                                .filter(|i| !x.values[(o * len + i) * inner + r].is_finite())
                                .count();
                            assert_eq!(specials, 1, "{} {cell:?}", op.name);
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "only {checked} value-class cells");
    }
}
