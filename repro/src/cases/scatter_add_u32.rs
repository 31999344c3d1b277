//! # scatter_add_u32 — "scatter_add with a u32 index fails with `got: F32` on Metal"
//!
//! Source: field notes item 1 (candle 0.9.2, M-series Mac). Upstream: no issue found for this
//! symptom (searched candle's issues for "scatter-add ids should be u8/u32/i64"); related work on
//! the Metal kernel's dtype coverage: huggingface/candle#1849 (u8/i64 ids, f16/bf16 sources) and
//! huggingface/candle#2656 (u32 ids with a u32 source).
//! Known status: see ISSUES.md and reports/<backend>/scatter_add_u32.txt (generated).
//!
//! The notes call `result.scatter_add(&src, &idx_2d, 0)`; candle's signature is
//! `scatter_add(&self, indexes, source, dim)`. The variants run the literal call and the corrected
//! call over index dtypes × source dtypes × ranks × dims × the two ways the notes built the index
//! (directly from a `Vec`, and via `unsqueeze` + `broadcast_as` + `contiguous`), recording the
//! index dtype after every construction step.

use candle_core::{DType, Tensor};
use harness::case::{f32_matrix, require_line, Case, SnippetRun, Variant};
use harness::observe::shape_literal;
use harness::oracle;
use harness::{HostTensor, Probe, Stopped};

pub const CASE: Case = Case {
    name: "scatter_add_u32",
    title: "scatter_add with a u32 index reports `expected: U32, got: F32`",
    claim: "A 2-D U32 index passed to scatter_add on Metal fails with `scatter-add ids should be u8/u32/i64, expected: U32, got: F32`; the index dtype is lost whether it is built from a Vec<u32> or via broadcast_as + contiguous.",
    source: "field notes, item 1 (candle 0.9.2, Metal); call as written: `result.scatter_add(&src, &idx_2d, 0)`",
    upstream: &[
        "https://github.com/huggingface/candle/pull/1849 (related: Metal scatter-add u8/i64 ids, f16/bf16)",
        "https://github.com/huggingface/candle/pull/2656 (related: Metal scatter-add u32/u32)",
    ],
    snippet: include_str!("../../snippets/src/bin/snippet_scatter_add_u32.rs"),
    variants,
    known: &[],
    snippet_run: SnippetRun::Check(snippet_check),
};

/// The snippet's corrected calls add 5 rows of ones into 3 rows of zeros, row i going to i % 3:
/// computed here in plain Rust.
fn snippet_check(out: &str) -> Result<(), String> {
    let mut want = vec![vec![0.0; 4]; 3];
    for i in 0..5 {
        for v in want[i % 3].iter_mut() {
            *v += 1.0;
        }
    }
    let want = format!("F32 {}", f32_matrix(&want));
    require_line(out, &format!("result.scatter_add(&idx_2d, &src, 0): {want}"))?;
    require_line(out, &format!("result.scatter_add(&idx_b, &src, 0): {want}"))
}

const INDEX_DTYPES: [DType; 3] = [DType::U8, DType::U32, DType::I64];
const SOURCE_DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Rows the tokens are added into, tokens, and the hidden width (small, so failures print whole).
const N_OUT: usize = 3;
const N_TOK: usize = 5;
const N_EMBD: usize = 4;

#[derive(Clone, Copy)]
enum Layout {
    /// 1-D, dim 0.
    OneD,
    /// 2-D, scatter along dim 0 (rows = tokens): the MoE combine.
    TwoDDim0,
    /// 2-D, scatter along dim 1.
    TwoDDim1,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneD => "1d-dim0",
            Layout::TwoDDim0 => "2d-dim0",
            Layout::TwoDDim1 => "2d-dim1",
        }
    }
    fn dim(self) -> usize {
        match self {
            Layout::TwoDDim1 => 1,
            _ => 0,
        }
    }
    /// (result shape, source/index shape)
    fn shapes(self) -> (Vec<usize>, Vec<usize>) {
        match self {
            Layout::OneD => (vec![N_OUT], vec![N_TOK]),
            Layout::TwoDDim0 => (vec![N_OUT, N_EMBD], vec![N_TOK, N_EMBD]),
            Layout::TwoDDim1 => (vec![N_EMBD, N_OUT], vec![N_EMBD, N_TOK]),
        }
    }
}

/// A non-zero starting value (checks that scatter_add accumulates into `self`) and small integer
/// sources (every sum is exact in bf16, so any difference is a real one).
fn result_host(dtype: DType, shape: &[usize]) -> HostTensor {
    HostTensor::from_fn(dtype, shape, |i| (i % 3) as f64)
}

fn source_host(dtype: DType, shape: &[usize]) -> HostTensor {
    HostTensor::from_fn(dtype, shape, |i| (i % 7 + 1) as f64)
}

/// The target row of token `t` (the notes' MoE combine routes token t to one output row).
fn route(t: usize) -> f64 {
    ((2 * t + 1) % N_OUT) as f64
}

/// The index built directly from a Vec, varying along every dim.
fn direct_index(dtype: DType, layout: Layout) -> HostTensor {
    let (_, shape) = layout.shapes();
    match layout {
        Layout::OneD => HostTensor::from_fn(dtype, &shape, route),
        _ => HostTensor::from_fn(dtype, &shape, |i| route(i / shape[1] + i % shape[1])),
    }
}

/// Builds the index by `unsqueeze` + `broadcast_as` + `contiguous` from a smaller tensor, one
/// recorded step each, as the notes did.
fn broadcast_index(p: &mut Probe, dtype: DType, layout: Layout) -> Result<Tensor, Stopped> {
    let (_, shape) = layout.shapes();
    let lit = shape_literal(&shape);
    let (base, unsqueeze_dim) = match layout {
        Layout::OneD => (HostTensor::from_fn(dtype, &[1], |_| route(1)), None),
        Layout::TwoDDim0 => (HostTensor::from_fn(dtype, &[N_TOK], route), Some(1)),
        Layout::TwoDDim1 => (HostTensor::from_fn(dtype, &[N_TOK], route), Some(0)),
    };
    let idx_1d = p.upload("idx_1d", &base)?;
    let mut host = base.clone();
    let mut t = idx_1d.clone();
    if let Some(d) = unsqueeze_dim {
        let expected = oracle::unsqueeze(&host, d);
        let input = t.clone();
        t = p.step(
            format!("let idx = idx_1d.unsqueeze({d})?;"),
            &[("idx_1d", &input)],
            expected.clone(),
            || input.unsqueeze(d),
        )?;
        host = expected.expect("valid unsqueeze");
    }
    let expected = oracle::broadcast_as(&host, &shape);
    let input = t.clone();
    let t = p.step(
        format!("let idx = idx.broadcast_as({lit})?;"),
        &[("idx", &input)],
        expected.clone(),
        || input.broadcast_as(shape.as_slice()),
    )?;
    let host = expected.expect("valid broadcast");
    let input = t.clone();
    p.step(
        "let idx = idx.contiguous()?;",
        &[("idx", &input)],
        oracle::contiguous(&host),
        || input.contiguous(),
    )
}

/// The host form of the index `broadcast_index` builds (for the oracle).
fn broadcast_index_host(dtype: DType, layout: Layout) -> HostTensor {
    let (_, shape) = layout.shapes();
    match layout {
        Layout::OneD => HostTensor::from_fn(dtype, &shape, |_| route(1)),
        Layout::TwoDDim0 => HostTensor::from_fn(dtype, &shape, |i| route(i / shape[1])),
        Layout::TwoDDim1 => HostTensor::from_fn(dtype, &shape, |i| route(i % shape[1])),
    }
}

fn corrected(idx_dtype: DType, src_dtype: DType, layout: Layout, broadcast: bool) -> Variant {
    let how = if broadcast { "broadcast" } else { "direct" };
    let name = format!(
        "idx_{}-src_{}-{}-{how}",
        idx_dtype.as_str(),
        src_dtype.as_str(),
        layout.name()
    );
    let about = format!(
        "corrected call `result.scatter_add(&idx, &src, {})`, {} index built {}",
        layout.dim(),
        idx_dtype.as_str(),
        if broadcast {
            "via unsqueeze + broadcast_as + contiguous"
        } else {
            "directly from a Vec"
        }
    );
    Variant::new(name, about, move |p| {
        let (out_shape, in_shape) = layout.shapes();
        let dim = layout.dim();
        let result_h = result_host(src_dtype, &out_shape);
        let src_h = source_host(src_dtype, &in_shape);
        let result = p.upload("result", &result_h)?;
        let src = p.upload("src", &src_h)?;
        let (idx, idx_h) = if broadcast {
            (
                broadcast_index(p, idx_dtype, layout)?,
                broadcast_index_host(idx_dtype, layout),
            )
        } else {
            let h = direct_index(idx_dtype, layout);
            (p.upload("idx", &h)?, h)
        };
        p.step(
            format!("let out = result.scatter_add(&idx, &src, {dim})?;"),
            &[("result", &result), ("idx", &idx), ("src", &src)],
            oracle::scatter_add(&result_h, &idx_h, &src_h, dim),
            || result.scatter_add(&idx, &src, dim),
        )?;
        Ok(())
    })
}

/// The call exactly as the notes wrote it: `result.scatter_add(&src, &idx_2d, 0)`.
fn literal(src_dtype: DType) -> Variant {
    let name = format!("literal-src_{}", src_dtype.as_str());
    let about =
        "the notes' call `result.scatter_add(&src, &idx_2d, 0)` with a u32 index from Vec<u32>"
            .to_string();
    Variant::new(name, about, move |p| {
        let (out_shape, in_shape) = Layout::TwoDDim0.shapes();
        let result_h = result_host(src_dtype, &out_shape);
        let src_h = source_host(src_dtype, &in_shape);
        let idx_h = direct_index(DType::U32, Layout::TwoDDim0);
        let result = p.upload("result", &result_h)?;
        let src = p.upload("src", &src_h)?;
        let idx_2d = p.upload("idx_2d", &idx_h)?;
        p.step(
            "let out = result.scatter_add(&src, &idx_2d, 0)?;",
            &[("result", &result), ("src", &src), ("idx_2d", &idx_2d)],
            // The oracle sees the arguments in the positions the call puts them.
            oracle::scatter_add(&result_h, &src_h, &idx_h, 0),
            || result.scatter_add(&src, &idx_2d, 0),
        )?;
        Ok(())
    })
}

fn variants() -> Vec<Variant> {
    let mut v: Vec<Variant> = SOURCE_DTYPES.into_iter().map(literal).collect();
    for idx in INDEX_DTYPES {
        for src in SOURCE_DTYPES {
            for layout in [Layout::OneD, Layout::TwoDDim0, Layout::TwoDDim1] {
                for broadcast in [false, true] {
                    v.push(corrected(idx, src, layout, broadcast));
                }
            }
        }
    }
    v
}
