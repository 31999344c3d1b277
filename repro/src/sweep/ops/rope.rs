//! Rotary embeddings: candle-nn's rope_i, rope and rope_thd.

use super::inputs::{data, k};
use super::{ErrorModel, Op, OutputCheck, FLOATS, NONE};
use crate::sweep::cell::{Cell, Input, Rng};
use harness::oracle;

/// `x` (b, h, t, d) or, for rope_thd, (b, t, h, d), with d = 2·knob 3, and cos/sin tables of
/// (t, d/2) (variant 0) or (b, t, d/2) (variant 1), the two shapes candle-nn accepts.
fn rope_inputs(c: &Cell, rng: &mut Rng, thd: bool) -> Vec<Input> {
    let (b, h, t, half) = (k(c, 0), k(c, 1), k(c, 2), k(c, 3));
    let x = if thd {
        [b, t, h, 2 * half]
    } else {
        [b, h, t, 2 * half]
    };
    let table: Vec<usize> = if c.variant == 0 {
        vec![t, half]
    } else {
        vec![b, t, half]
    };
    vec![
        data("x", c, c.dtype(), &x, rng),
        data("cos", c, c.dtype(), &table, rng),
        data("sin", c, c.dtype(), &table, rng),
    ]
}

const ROPE_TABLES: &[&str] = &["cos (t, d/2)", "cos (b, t, d/2)"];

/// `candle_nn::rotary_emb::<name>(&x, &cos, &sin)` with both cos/sin table shapes.
macro_rules! rope {
    ($name:ident, interleaved: $interleaved:literal, thd: $thd:literal) => {
        Op {
            name: stringify!($name),
            call: concat!(
                "candle_nn::rotary_emb::",
                stringify!($name),
                "(&x, &cos, &sin)"
            ),
            dtypes: FLOATS,
            aux: NONE,
            variants: ROPE_TABLES,
            knobs: 4,
            inputs: |c, rng| rope_inputs(c, rng, $thd),
            candle: |_, t| candle_nn::rotary_emb::$name(&t[0], &t[1], &t[2]),
            oracle: |_, h| oracle::rope(&h[0], &h[1], &h[2], $interleaved, $thd).into(),
            code: |_, v| {
                format!(
                    concat!(
                        "candle_nn::rotary_emb::",
                        stringify!($name),
                        "(&{}, &{}, &{})?"
                    ),
                    v[0], v[1], v[2]
                )
            },
            grads: &[0],
            check: OutputCheck::Values,
            error: ErrorModel::Rotation,
            indexed: false,
            layout_pairs: false,
            values: &[],
        }
    };
}

pub(super) const ROPE_I: Op = rope!(rope_i, interleaved: true, thd: false);

pub(super) const ROPE: Op = rope!(rope, interleaved: false, thd: false);

pub(super) const ROPE_THD: Op = rope!(rope_thd, interleaved: false, thd: true);
