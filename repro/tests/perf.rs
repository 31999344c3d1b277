//! The performance repros on the CPU at toy sizes: they run, compute a verdict, write their
//! reports and plots, and reject bad sizes with exit code 2. (Figures come from real runs with
//! the default sizes, never from tests.)

use std::process::{Command, Output};

fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env_remove(harness::DEVICE_ENV)
        .output()
        .expect("runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("repro-perf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn check_reports(exe: &str, name: &str, args: &[&str], svg: bool) -> serde_json::Value {
    let dir = scratch(name);
    let mut all = vec![
        "--device",
        "cpu",
        "--json",
        "--report-dir",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let o = run(exe, &all);
    assert_eq!(
        o.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(json["verdict"], "inconclusive");
    assert!(json["explanation"]
        .as_str()
        .unwrap()
        .contains("no accelerator"));
    for ext in ["txt", "json", "md"] {
        assert!(
            dir.join(format!("cpu/{name}.{ext}")).is_file(),
            "{name}.{ext}"
        );
    }
    assert_eq!(dir.join(format!("cpu/{name}.svg")).is_file(), svg);
    std::fs::remove_dir_all(&dir).unwrap();
    json
}

#[test]
fn fp16_cast_overhead_counts_casts() {
    let json = check_reports(
        env!("CARGO_BIN_EXE_fp16_cast_overhead"),
        "fp16_cast_overhead",
        &[
            "--dims",
            "16,128",
            "--tokens",
            "8",
            "--layers",
            "2",
            "--iters",
            "2",
            "--warmup-ms",
            "0",
        ],
        true,
    );
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), 2 * 4);
    let casts = |mode: &str| {
        records
            .iter()
            .find(|r| r["config"]["mode"] == mode)
            .unwrap()["counts"]["cast_dispatches_per_iter"]
            .as_u64()
            .unwrap()
    };
    // 3 casts per matmul, 10 matmuls per layer, 2 layers; persistent: 6 per layer.
    assert_eq!(
        (
            casts("f32"),
            casts("per-matmul-f16"),
            casts("persistent-f16")
        ),
        (0, 60, 12)
    );
}

#[test]
fn router_topk_sync_checks_selection() {
    let json = check_reports(
        env!("CARGO_BIN_EXE_router_topk_sync"),
        "router_topk_sync",
        &[
            "--experts",
            "8",
            "--k",
            "2",
            "--tokens",
            "16",
            "--dim",
            "8",
            "--layers",
            "3",
            "--iters",
            "2",
            "--warmup-ms",
            "0",
        ],
        true,
    );
    let syncs: Vec<u64> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["counts"]["host_syncs_per_forward"].as_u64().unwrap())
        .collect();
    assert_eq!(syncs, vec![3, 0]);
    let findings = json["findings"].as_array().unwrap();
    assert!(
        findings[0]
            .as_str()
            .unwrap()
            .contains("1024 of 1024 random rows"),
        "{findings:?}"
    );
}

#[test]
fn argsort_wide_rows_finds_no_limit_on_cpu() {
    let json = check_reports(
        env!("CARGO_BIN_EXE_argsort_wide_rows"),
        "argsort_wide_rows",
        &["--max-width", "4096"],
        false,
    );
    for r in json["records"].as_array().unwrap() {
        assert_eq!(r["counts"]["widest_correct"], 4096);
    }
}

#[test]
fn index_add_rows_checks_results_before_timing() {
    let json = check_reports(
        env!("CARGO_BIN_EXE_index_add_rows"),
        "index_add_rows",
        &[
            "--rows",
            "64,256",
            "--width",
            "8",
            "--iters",
            "2",
            "--warmup-ms",
            "0",
        ],
        true,
    );
    assert_eq!(json["records"].as_array().unwrap().len(), 2 * 3);
    assert!(
        json["findings"].as_array().unwrap().is_empty(),
        "every op agrees with the oracle on cpu: {json}"
    );
}

#[test]
fn bad_sizes_exit_2() {
    let fp16 = env!("CARGO_BIN_EXE_fp16_cast_overhead");
    let router = env!("CARGO_BIN_EXE_router_topk_sync");
    let argsort = env!("CARGO_BIN_EXE_argsort_wide_rows");
    for (exe, args) in [
        (fp16, vec!["--device", "cpu", "--dims", "0"]),
        (fp16, vec!["--device", "cpu", "--dims", "64,x"]),
        (fp16, vec!["--device", "cpu", "--iters", "0"]),
        (
            router,
            vec!["--device", "cpu", "--experts", "8", "--k", "8"],
        ),
        (router, vec!["--device", "cpu", "--tokens", "-3"]),
        (argsort, vec!["--device", "cpu", "--max-width", "1"]),
        (argsort, vec!["--device", "tpu"]),
        (
            env!("CARGO_BIN_EXE_index_add_rows"),
            vec!["--device", "cpu", "--rows", "0"],
        ),
    ] {
        let o = run(exe, &args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("error:"),
            "{args:?}"
        );
    }
}
