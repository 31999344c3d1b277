//! # matmul_narrowed_operand — matmul of a view narrowed along its last dim
//!
//! Found by this project: moe-core's `onehot-mm` dispatch multiplied by one column of a (T, E)
//! gate matrix (`gates.narrow(1, e, 1)`, stride [E, 1]); the CPU computed it, CUDA returned
//! `matmul is only supported for contiguous tensors`. Upstream: huggingface/candle#2373 (the same
//! error on a narrowed operand in SAM) and #1965 (the maintainer: matmul accepts contiguous or
//! transposed-contiguous operands by design). Known status: see ISSUES.md and
//! reports/<backend>/matmul_narrowed_operand.txt (generated).
//!
//! Reading candle 0.11.1 `cuda_backend/mod.rs` `gemm_config`: the leading dimension passed to
//! cuBLAS is always the operand's width, so a row stride wider than the width is rejected even
//! though cuBLAS takes any leading dimension. The variants multiply by such views (a narrowed
//! column, narrowed columns, a narrowed left operand) with small integer values, so every
//! backend that computes them must match the oracle exactly.

use candle_core::DType;
use harness::case::{Case, KnownDivergence, SnippetRun, Variant};
use harness::oracle;
use harness::HostTensor;

pub const CASE: Case = Case {
    name: "matmul_narrowed_operand",
    title: "matmul rejects an operand narrowed along its last dim on CUDA (the CPU computes it)",
    claim: "A matmul operand that is a view narrowed along its last dimension (row stride wider than its width) is multiplied on the CPU but rejected with `matmul is only supported for contiguous tensors` on CUDA.",
    source: "found by moe-core's onehot-mm dispatch on the H100",
    upstream: &[
        "https://github.com/huggingface/candle/issues/2373 (same error, narrowed operand)",
        "https://github.com/huggingface/candle/issues/1965 (contiguous or transposed operands only, by design)",
    ],
    snippet: include_str!("../../snippets/src/bin/snippet_matmul_narrowed_operand.rs"),
    variants,
    known: &[
        KnownDivergence {
            variant: "rhs-one-column",
            backends: &["cuda"],
            why: "gemm_config rejects a row stride wider than the width (#2373)",
        },
        KnownDivergence {
            variant: "rhs-two-columns",
            backends: &["cuda"],
            why: "gemm_config rejects a row stride wider than the width (#2373)",
        },
        KnownDivergence {
            variant: "lhs-narrowed",
            backends: &["cuda"],
            why: "gemm_config rejects a row stride wider than the width (#2373)",
        },
    ],
    snippet_run: SnippetRun::Check(snippet_check),
};

/// The CPU computes the narrowed matmul: a = arange(20) as 5×4 times column 2 of
/// w = arange(32) as 4×8, computed here in plain Rust.
fn snippet_check(out: &str) -> Result<(), String> {
    let expected: Vec<String> = (0..5)
        .map(|i| {
            let v: f64 = (0..4)
                .map(|k| ((i * 4 + k) as f64) * ((k * 8 + 2) as f64))
                .sum();
            format!("{v:.1}")
        })
        .collect();
    let line = format!("a.matmul(&col) = [{}]", expected.join(", "));
    if out.contains(&line) {
        Ok(())
    } else {
        Err(format!("expected `{line}`"))
    }
}

/// `a (m, k) · w.narrow(1, start, n)` where w is (k, width), or the lhs narrowed instead.
fn variant(name: &str, about: &str, narrow_rhs: bool, n: usize) -> Variant {
    let about = about.to_string();
    Variant::new(name, about, move |p| {
        let (m, k, width) = (5, 4, 8);
        let small = |shape: &[usize], mul: usize| {
            HostTensor::from_fn(DType::F32, shape, move |i| ((i * mul) % 7) as f64 - 3.0)
        };
        if narrow_rhs {
            let a_h = small(&[m, k], 3);
            let w_h = small(&[k, width], 5);
            let a = p.upload("a", &a_h)?;
            let w = p.upload("w", &w_h)?;
            let col_h = oracle::narrow(&w_h, 1, 2, n).expect("valid narrow");
            let col = p.step(
                format!("let col = w.narrow(1, 2, {n})?;"),
                &[("w", &w)],
                Ok(col_h.clone()),
                || w.narrow(1, 2, n),
            )?;
            p.step(
                "let y = a.matmul(&col)?;",
                &[("a", &a), ("col", &col)],
                oracle::matmul(&a_h, &col_h),
                || a.matmul(&col),
            )?;
        } else {
            let a_h = small(&[m, width], 3);
            let w_h = small(&[k, n], 5);
            let a = p.upload("a", &a_h)?;
            let w = p.upload("w", &w_h)?;
            let rows_h = oracle::narrow(&a_h, 1, 1, k).expect("valid narrow");
            let rows = p.step(
                format!("let a = a.narrow(1, 1, {k})?;"),
                &[("a", &a)],
                Ok(rows_h.clone()),
                || a.narrow(1, 1, k),
            )?;
            p.step(
                "let y = a.matmul(&w)?;",
                &[("a", &rows), ("w", &w)],
                oracle::matmul(&rows_h, &w_h),
                || rows.matmul(&w),
            )?;
        }
        Ok(())
    })
}

fn variants() -> Vec<Variant> {
    vec![
        variant(
            "rhs-one-column",
            "a (5, 4) times one column of w (4, 8): stride [8, 1]",
            true,
            1,
        ),
        variant(
            "rhs-two-columns",
            "a (5, 4) times two columns of w (4, 8): stride [8, 1]",
            true,
            2,
        ),
        variant(
            "lhs-narrowed",
            "columns 1..5 of a (5, 8) times w (4, 3): stride [8, 1]",
            false,
            3,
        ),
    ]
}
