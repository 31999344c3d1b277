//! The op-consistency sweep, one rstest case per op: the divergences each op shows on the CPU
//! (against the oracle) are snapshotted as `sweep_<op>@cpu.snap`. Accelerators are swept by
//! `repro sweep`, which isolates cells in processes (see the test body). A candle bump that fixes or adds a divergence changes a
//! snapshot, and the diff names it; `repro/sweep-known.toml` carries the reasons and links.

use backend_tests::{backend, target_device};
use candle_core::Device;
use repro::sweep::{ops, sweep_in_process};
use rstest::rstest;

#[rstest]
fn sweep(
    #[values(
        "index_select",
        "gather",
        "scatter",
        "scatter_add",
        "index_add",
        "cat",
        "arg_sort_last_dim",
        "to_dtype",
        "contiguous",
        "matmul",
        "broadcast_matmul",
        "softmax_last_dim",
        "softmax",
        "log_softmax",
        "silu",
        "sigmoid",
        "rms_norm",
        "where_cond",
        "cmp",
        "sum_keepdim",
        "max_keepdim",
        "argmax_keepdim"
    )]
    op: &str,
) {
    let op = ops::find(op).expect("a swept op");
    let target = target_device();
    // On an accelerator a device-side assert in one cell poisons the context for every later
    // call in the process (and every test thread shares it), so the sweep there runs only under
    // `repro sweep`'s process isolation; reports/sweep/<backend>/ holds its result.
    if !target.is_cpu() {
        eprintln!(
            "sweep snapshots run on the cpu only; use `repro sweep --device {}`",
            backend(&target)
        );
        return;
    }
    let cpu = Device::Cpu;
    let mut backends = vec![("cpu".to_string(), &cpu)];
    if !target.is_cpu() {
        backends.push((backend(&target).to_string(), &target));
    }
    let seen: Vec<String> = sweep_in_process(op, &backends)
        .into_iter()
        .map(|(id, b)| format!("{id} on {}", b.into_iter().collect::<Vec<_>>().join("+")))
        .collect();
    insta::with_settings!({ snapshot_suffix => backend(&target), prepend_module_to_snapshot => false, snapshot_path => "snapshots/sweep" }, {
        insta::assert_yaml_snapshot!(format!("sweep_{}", op.name), seen);
    });
}

#[test]
fn every_op_is_mounted() {
    // The rstest list above must name every op the sweep covers.
    let src = include_str!("sweep.rs");
    for op in ops::OPS {
        assert!(
            src.contains(&format!("\"{}\"", op.name)),
            "{} is not mounted",
            op.name
        );
    }
}

#[test]
fn no_stale_sweep_snapshots() {
    let root =
        std::env::var("INSTA_WORKSPACE_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = std::path::Path::new(&root).join("tests/snapshots/sweep");
    for entry in std::fs::read_dir(&dir).expect("tests/snapshots/sweep exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let op = name
            .strip_prefix("sweep_")
            .and_then(|n| n.split('@').next());
        assert!(
            op.is_some_and(|op| ops::find(op).is_some()),
            "stale snapshot {name}: no such swept op"
        );
    }
}
