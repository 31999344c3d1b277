//! `repro collect` on the CPU, at quick sizes: every step runs (suite, sweep, the performance
//! repros, moe_bench), STATUS.md is written, and the summary says nothing differs from the
//! manifests and what to commit. A step that breaks fails the command.

use std::process::Command;

const REPRO: &str = env!("CARGO_BIN_EXE_repro");

#[test]
fn collect_runs_every_step_on_the_cpu() {
    let dir = std::env::temp_dir().join(format!("collect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // `CARGO` is set when cargo runs this test: collect then builds moe_bench (another package)
    // in this profile before running it.
    let o = Command::new(REPRO)
        .args(["collect", "--device", "cpu", "--quick", "--report-dir"])
        .arg(&dir)
        .env_remove(harness::DEVICE_ENV)
        // The manifests' default paths are relative to the workspace root.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("repro runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    for step in [
        "suite",
        "sweep",
        "fp16_cast_overhead",
        "router_topk_sync",
        "index_add_rows",
        "argsort_wide_rows",
        "cuda_pool_release",
        "moe_bench",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(step) && l.contains(" ok ")),
            "{step} did not run ok:\n{out}"
        );
        assert!(
            err.contains(&format!("] {step} …")),
            "no progress line for {step}:\n{err}"
        );
    }
    assert!(
        out.contains("Nothing else differs from repro/expected.toml and repro/sweep-known.toml."),
        "{out}"
    );
    assert!(out.contains("To share: commit"), "{out}");
    for f in [
        "cpu/suite.json",
        "sweep/cpu/sweep.json",
        "cpu/moe_bench.txt",
        "cpu/index_add_rows.json",
        "STATUS.md",
    ] {
        assert!(dir.join(f).is_file(), "{f} not written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
