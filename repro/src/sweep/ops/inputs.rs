//! The input builders the op families share: a data tensor, an index tensor, the plain 2-D `x`.

use crate::sweep::cell::{data_values, Cell, Input, Kind, Rng};
use candle_core::DType;
use harness::host::HostTensor;
use harness::oracle;

pub(super) fn data(
    role: &'static str,
    c: &Cell,
    dtype: DType,
    shape: &[usize],
    rng: &mut Rng,
) -> Input {
    let n = shape.iter().product();
    Input {
        role,
        kind: Kind::Data,
        host: HostTensor::new(dtype, shape, data_values(dtype, n, c.simple, rng)),
    }
}

/// An index of `shape` with values below `bound`; `unique_along` draws each line along that
/// dim without repeats (scatter's results are only defined then).
pub(super) fn index(
    c: &Cell,
    shape: &[usize],
    bound: usize,
    unique_along: Option<usize>,
    rng: &mut Rng,
) -> Input {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n)
        .map(|i| {
            if c.simple {
                (i % bound) as f64
            } else {
                rng.below(bound) as f64
            }
        })
        .collect();
    if let Some(dim) = unique_along {
        let (outer, len, inner) = oracle::lines(shape, dim);
        for o in 0..outer {
            for r in 0..inner {
                let perm = harness::host::shuffled_permutation(bound, &mut rng.0);
                for i in 0..len {
                    values[(o * len + i) * inner + r] =
                        if c.simple { i as f64 } else { perm[i] as f64 };
                }
            }
        }
    }
    Input {
        role: "indexes",
        kind: Kind::Index { bound },
        host: HostTensor::new(c.aux().unwrap_or(DType::U32), shape, values),
    }
}

/// One data input `x` of shape `[knob 0, knob 1]`.
pub(super) fn one_2d(c: &Cell, rng: &mut Rng) -> Vec<Input> {
    vec![data("x", c, c.dtype(), &[k(c, 0), k(c, 1)], rng)]
}

pub(super) fn k(c: &Cell, i: usize) -> usize {
    c.knobs[i]
}
