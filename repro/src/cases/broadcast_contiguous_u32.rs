//! # broadcast_contiguous_u32 — "broadcast_as + contiguous turns U32 into F32 on Metal"
//!
//! Source: field notes item 2 (candle 0.9.2, M-series Mac), offered there as the root cause of
//! item 1. Upstream: no issue found for this symptom.
//! Known status: see ISSUES.md and reports/<backend>/broadcast_contiguous_u32.txt (generated).
//!
//! Each variant records dtype, layout and values after every step of `unsqueeze` →
//! `broadcast_as` → `contiguous`, for u8/u32/i64/f32, 1-D→2-D and 2-D→3-D broadcasts, and views
//! that start at a non-zero offset (`narrow`). The integer values are chosen so that a detour
//! through f32 (or a 32-bit truncation of i64) changes them.

use candle_core::{DType, Tensor};
use harness::case::{require_line, Case, SnippetRun, Variant};
use harness::observe::shape_literal;
use harness::oracle::{self, OracleResult};
use harness::{HostTensor, Probe, Stopped};

pub const CASE: Case = Case {
    name: "broadcast_contiguous_u32",
    title: "broadcast_as + contiguous changes the dtype of a u32 tensor",
    claim: "A U32 tensor that goes through unsqueeze → broadcast_as → contiguous() arrives as F32 on Metal.",
    source: "field notes, item 2 (candle 0.9.2, Metal)",
    upstream: &[],
    snippet: include_str!("../../snippets/src/bin/snippet_broadcast_contiguous_u32.rs"),
    variants,
    known: &[],
    snippet_run: SnippetRun::Check(snippet_check),
};

/// Each value above 2^24 repeated three times, exactly (a detour through f32 would round it).
fn snippet_check(out: &str) -> Result<(), String> {
    let rows: Vec<String> = [16_777_217u64, 16_777_219, 16_777_221, 16_777_223]
        .iter()
        .map(|v| format!("[{v}, {v}, {v}]"))
        .collect();
    require_line(out, &format!("contiguous():  U32 [{}]", rows.join(", ")))
}

const DTYPES: [DType; 4] = [DType::U8, DType::U32, DType::I64, DType::F32];

/// Values a lossy path would change: u32 above 2^24 (not exact in f32), i64 above 2^32 (lost by
/// a 32-bit truncation), f32 with fractions. u8 uses its whole range.
fn value(dtype: DType, i: usize) -> f64 {
    match dtype {
        DType::U8 => (250 - 37 * i % 250) as f64,
        DType::U32 => (16_777_217 + 2 * i) as f64,
        DType::I64 => ((1u64 << 40) + 3 * i as u64) as f64,
        _ => i as f64 + 0.25,
    }
}

#[derive(Clone, Copy)]
enum Shape {
    /// (4,) → unsqueeze(1) → (4, 3)
    OneToTwo,
    /// (2, 3) → unsqueeze(1) → (2, 4, 3)
    TwoToThree,
    /// (6,) narrowed to 3 elements at offset 2 → unsqueeze(0) → (2, 3)
    NarrowOneD,
    /// (3, 4) narrowed on dim 1 to 2 columns at offset 1 → unsqueeze(1) → (3, 2, 2)
    NarrowTwoD,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::OneToTwo => "1d-to-2d",
            Shape::TwoToThree => "2d-to-3d",
            Shape::NarrowOneD => "narrow-offset-1d-to-2d",
            Shape::NarrowTwoD => "narrow-offset-2d-to-3d",
        }
    }
    fn base(self) -> Vec<usize> {
        match self {
            Shape::OneToTwo => vec![4],
            Shape::TwoToThree => vec![2, 3],
            Shape::NarrowOneD => vec![6],
            Shape::NarrowTwoD => vec![3, 4],
        }
    }
    /// (dim, start, len) of the narrow, if any.
    fn narrow(self) -> Option<(usize, usize, usize)> {
        match self {
            Shape::NarrowOneD => Some((0, 2, 3)),
            Shape::NarrowTwoD => Some((1, 1, 2)),
            _ => None,
        }
    }
    fn unsqueeze(self) -> usize {
        match self {
            Shape::NarrowOneD => 0,
            _ => 1,
        }
    }
    fn target(self) -> Vec<usize> {
        match self {
            Shape::OneToTwo => vec![4, 3],
            Shape::TwoToThree => vec![2, 4, 3],
            Shape::NarrowOneD => vec![2, 3],
            Shape::NarrowTwoD => vec![3, 2, 2],
        }
    }
}

/// Runs one recorded step whose oracle answer is `expected`, and returns both sides.
fn chain(
    p: &mut Probe,
    code: String,
    input: &Tensor,
    expected: OracleResult,
    call: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<(Tensor, HostTensor), Stopped> {
    let t = p.step(code, &[("x", input)], expected.clone(), || call(input))?;
    Ok((t, expected.expect("the chain's steps are valid calls")))
}

fn variant(dtype: DType, shape: Shape) -> Variant {
    let name = format!("{}-{}", dtype.as_str(), shape.name());
    let about = format!(
        "{} {:?}{} → unsqueeze({}) → broadcast_as({}) → contiguous()",
        dtype.as_str(),
        shape.base(),
        shape
            .narrow()
            .map(|(d, s, l)| format!(" → narrow({d}, {s}, {l})"))
            .unwrap_or_default(),
        shape.unsqueeze(),
        shape_literal(&shape.target())
    );
    Variant::new(name, about, move |p| {
        let host = HostTensor::from_fn(dtype, &shape.base(), |i| value(dtype, i));
        let mut x = p.upload("x", &host)?;
        let mut h = host;
        if let Some((d, s, l)) = shape.narrow() {
            (x, h) = chain(
                p,
                format!("let x = x.narrow({d}, {s}, {l})?;"),
                &x,
                oracle::narrow(&h, d, s, l),
                |t| t.narrow(d, s, l),
            )?;
        }
        let u = shape.unsqueeze();
        (x, h) = chain(
            p,
            format!("let x = x.unsqueeze({u})?;"),
            &x,
            oracle::unsqueeze(&h, u),
            |t| t.unsqueeze(u),
        )?;
        let target = shape.target();
        (x, h) = chain(
            p,
            format!("let x = x.broadcast_as({})?;", shape_literal(&target)),
            &x,
            oracle::broadcast_as(&h, &target),
            |t| t.broadcast_as(target.as_slice()),
        )?;
        chain(
            p,
            "let x = x.contiguous()?;".into(),
            &x,
            oracle::contiguous(&h),
            |t| t.contiguous(),
        )?;
        Ok(())
    })
}

fn variants() -> Vec<Variant> {
    let shapes = [
        Shape::OneToTwo,
        Shape::TwoToThree,
        Shape::NarrowOneD,
        Shape::NarrowTwoD,
    ];
    DTYPES
        .into_iter()
        .flat_map(|d| shapes.into_iter().map(move |s| variant(d, s)))
        .collect()
}
