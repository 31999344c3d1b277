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

#[test]
fn broadcast_contiguous_u32_snippet() {
    insta::assert_snapshot!(
        "broadcast_contiguous_u32@cpu",
        run(env!("CARGO_BIN_EXE_snippet_broadcast_contiguous_u32"))
    );
}
