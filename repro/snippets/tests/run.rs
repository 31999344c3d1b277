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

/// `[[a, b], [c, d]]` as the snippets print an f32 matrix (`{:?}` of `Vec<Vec<f32>>`).
fn matrix(rows: &[Vec<f64>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Vec<String> = r.iter().map(|x| format!("{x:.1}")).collect();
            format!("[{}]", v.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

fn assert_line(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l == line),
        "expected the line `{line}` in:\n{out}"
    );
}

#[test]
fn scatter_add_u32_snippet() {
    let out = run(env!("CARGO_BIN_EXE_snippet_scatter_add_u32"));
    // The corrected call adds 5 rows of ones into 3 rows of zeros, row i going to i % 3:
    // computed here in plain Rust.
    let mut want = vec![vec![0.0; 4]; 3];
    for i in 0..5 {
        for v in want[i % 3].iter_mut() {
            *v += 1.0;
        }
    }
    let want = format!("F32 {}", matrix(&want));
    assert_line(
        &out,
        &format!("result.scatter_add(&idx_2d, &src, 0): {want}"),
    );
    assert_line(
        &out,
        &format!("result.scatter_add(&idx_b, &src, 0): {want}"),
    );
    insta::assert_snapshot!("scatter_add_u32@cpu", out);
}

/// The timing snippets (fp16_cast_overhead, router_topk_sync) are compiled by every build of this
/// crate but not run here: their output is timings, which belong in reports, not snapshots.
#[test]
fn argsort_wide_rows_snippet() {
    let out = run(env!("CARGO_BIN_EXE_snippet_argsort_wide_rows"));
    // The CPU sorts every width correctly.
    assert!(
        out.lines().all(|l| l.ends_with(": 0 wrong indices")),
        "{out}"
    );
    insta::assert_snapshot!("argsort_wide_rows@cpu", out);
}

#[test]
fn scatter_add_backward_snippet() {
    let out = run(env!("CARGO_BIN_EXE_snippet_scatter_add_backward"));
    // The forward is right: 3 rows of ones plus 6 rows of ones added two per row.
    assert_line(
        &out,
        &format!("forward: {}", matrix(&vec![vec![2.0; 4]; 3])),
    );
    // The backward is candle 0.11.1's known bug (repro case scatter_add_backward): the snippet
    // must keep showing it, or say the bug is fixed.
    let all_ones = matrix(&vec![vec![1.0; 4]; 3]);
    assert!(
        !out.contains(&format!("same shape: d/d init = {all_ones}")),
        "scatter_add's gradient of self is now right: fixed upstream? update the case and this snippet\n{out}"
    );
    insta::assert_snapshot!("scatter_add_backward@cpu", out);
}

#[test]
fn broadcast_contiguous_u32_snippet() {
    let out = run(env!("CARGO_BIN_EXE_snippet_broadcast_contiguous_u32"));
    // Each value above 2^24 repeated three times, exactly (a detour through f32 would round it).
    let rows: Vec<String> = [16_777_217u64, 16_777_219, 16_777_221, 16_777_223]
        .iter()
        .map(|v| format!("[{v}, {v}, {v}]"))
        .collect();
    assert_line(&out, &format!("contiguous():  U32 [{}]", rows.join(", ")));
    insta::assert_snapshot!("broadcast_contiguous_u32@cpu", out);
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
