//! `bench`: the run's phases in order (measure, tables, targets, notes) assembled into the
//! [`Report`].

use crate::findings::{notes, target_checks};
use crate::measure::{measure_all, Collected};
use crate::pool::pool_note;
use crate::report::Report;
use crate::tables::{call_rows, phase_rows, rows_and_records};
use crate::Args;
use anyhow::Result;
use candle_core::{DType, Device};
use harness::device::Environment;
use harness::timing::TimingConfig;
use std::time::Duration;

pub(crate) fn bench(args: &Args, dtypes: &[DType], device: &Device) -> Result<Report> {
    let timing = TimingConfig {
        iters: args.iters as usize,
        warmup_iters: 3,
        warmup_min: Duration::from_millis(args.warmup_ms),
    };
    let env = Environment::collect(device);
    // First, so every row after it runs with freed memory kept in the CUDA pool.
    let pool = pool_note(args, dtypes, device, &timing)?;
    let Collected {
        all,
        anchors,
        layouts,
    } = measure_all(args, dtypes, device, &timing)?;
    let (rows, records) = rows_and_records(&all, args, &env);

    // Targets (forward+backward at the largest T measured).
    let t_max = args.tokens.iter().copied().max().unwrap_or(0) as usize;
    let targets = target_checks(&all, t_max, dtypes, device);
    let anchor_rows = anchors;
    let mut notes = notes(args, &timing, &all, &layouts);
    notes.extend(pool);
    let phases = phase_rows(&all, t_max);
    let calls = call_rows(&all);
    let command = command();
    Ok(Report {
        environment: env,
        command,
        timing,
        columns: [
            "dtype",
            "T",
            "D",
            "pass",
            "strategy",
            "median ms",
            "speedup vs host-topk",
            "t / t_dense_active",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        records,
        targets,
        phase_columns: [
            "dtype",
            "D",
            "strategy",
            "route ms",
            "experts+combine ms",
            "backward ms",
            "backward / forward",
        ]
        .map(String::from)
        .to_vec(),
        phases,
        anchor_columns: [
            "dtype",
            "T",
            "D",
            "fused moe_gemm fwd ms",
            "vs host-topk fwd",
            "max rel err vs dense",
        ]
        .map(String::from)
        .to_vec(),
        anchors: anchor_rows,
        call_columns: [
            "dtype",
            "T",
            "D",
            "pass",
            "strategy",
            "kernel launches",
            "cuBLAS GEMM calls",
            "device→host copies",
            "synchronisations",
        ]
        .map(String::from)
        .to_vec(),
        calls,
        notes,
    })
}

/// The command line that reproduces the run.
fn command() -> String {
    let features = if cfg!(feature = "cuda") {
        " --features cuda"
    } else {
        ""
    };
    format!(
        "cargo run -p moe-core --release{features} --bin moe_bench -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )
}
