//! Runs every standalone snippet (the `main.rs` pasted into upstream issues) on the CPU, so they
//! never rot: each must exit 0, and its output is snapshotted.

use std::process::Command;

fn run(exe: &str) -> String {
    let out = Command::new(exe).arg("cpu").output().expect("snippet runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{exe} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn scatter_add_u32_snippet() {
    insta::assert_snapshot!(
        "scatter_add_u32@cpu",
        run(env!("CARGO_BIN_EXE_snippet_scatter_add_u32"))
    );
}

/// The timing snippets (fp16_cast_overhead, router_topk_sync) are compiled by every build of this
/// crate but not run here: their output is timings, which belong in reports, not snapshots.
#[test]
fn argsort_wide_rows_snippet() {
    insta::assert_snapshot!(
        "argsort_wide_rows@cpu",
        run(env!("CARGO_BIN_EXE_snippet_argsort_wide_rows"))
    );
}

#[test]
fn scatter_add_backward_snippet() {
    insta::assert_snapshot!(
        "scatter_add_backward@cpu",
        run(env!("CARGO_BIN_EXE_snippet_scatter_add_backward"))
    );
}

#[test]
fn broadcast_contiguous_u32_snippet() {
    insta::assert_snapshot!(
        "broadcast_contiguous_u32@cpu",
        run(env!("CARGO_BIN_EXE_snippet_broadcast_contiguous_u32"))
    );
}

#[test]
fn matmul_narrowed_operand_snippet() {
    let out = run(env!("CARGO_BIN_EXE_snippet_matmul_narrowed_operand"));
    // The CPU computes the narrowed matmul: a = arange(20) as 5×4 times column 2 of
    // w = arange(32) as 4×8, computed here in plain Rust.
    let expected: Vec<String> = (0..5)
        .map(|i| {
            let v: f64 = (0..4)
                .map(|k| ((i * 4 + k) as f64) * ((k * 8 + 2) as f64))
                .sum();
            format!("{v:.1}")
        })
        .collect();
    let line = format!("a.matmul(&col) = [{}]", expected.join(", "));
    assert!(out.contains(&line), "expected `{line}` in:\n{out}");
    insta::assert_snapshot!("matmul_narrowed_operand@cpu", out);
}
