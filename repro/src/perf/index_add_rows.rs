//! # index_add_rows — `index_add` / `scatter_add` along many rows vs `index_select` of the same data
//!
//! Found by this project: moe-core's per-phase timings put most of the sparse strategies' time
//! in the ops that add rows back (`index_add` in mixtral.rs's forward, and in the backward of
//! `index_select`). Reading candle-kernels 0.11.1 `indexing.cu`: the `index_add` and
//! `scatter_add` kernels start one thread per (left, right) position and loop over every index
//! of the indexed dimension inside that thread, so adding N rows of width D runs D threads for N
//! steps each. Upstream: no issue found.
//!
//! Times, for N rows of width D (f32): `dst.index_add(&ids, &src, 0)`, `dst.scatter_add(&ids2d,
//! &src, 0)` and, as the baseline moving the same bytes, `src.index_select(&ids, 0)`; each
//! result is checked against the plain-Rust oracle so the timing is of a correct result.

use super::{ms, obj, times, OutputArgs, TimingArgs};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::bench::{BenchRecord, BenchReport};
use harness::device::{Environment, CANDLE_VERSION};
use harness::timing::{measure, ratio, warm_device, TimingConfig};
use harness::{HostTensor, Verdict};
use std::time::Duration;

pub const NAME: &str = "index_add_rows";
pub const SNIPPET: &str = include_str!("../../snippets/src/bin/snippet_index_add_rows.rs");
pub const PERF: super::Perf = super::Perf::prints_timings(NAME, SNIPPET);

/// A slowdown beyond this against `index_select` of the same data counts as reproduced: a kernel
/// parallel over all N·D elements stays within a small factor of a gather.
pub const THRESHOLD: f64 = 10.0;

#[derive(clap::Parser, Debug)]
#[command(
    about = "Times index_add and scatter_add along many rows against index_select of the same data."
)]
pub struct Args {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Row counts N (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1024u64, 4096, 16384, 65536], value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub rows: Vec<u64>,
    /// Row width D.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub width: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    IndexSelect,
    IndexAdd,
    ScatterAdd,
}

impl Op {
    const ALL: [Op; 3] = [Op::IndexSelect, Op::IndexAdd, Op::ScatterAdd];
    fn name(self) -> &'static str {
        match self {
            Op::IndexSelect => "index_select",
            Op::IndexAdd => "index_add",
            Op::ScatterAdd => "scatter_add",
        }
    }
}

pub fn run(
    args: &Args,
    device: &Device,
    timing: &TimingConfig,
    command: &str,
) -> Result<BenchReport> {
    let d = args.width as usize;
    let rows_list = super::sorted_unique(&args.rows);
    let env = Environment::collect(device);
    let device_name = format!("{:#}", env.target);
    let (mut rows, mut records, mut findings) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_ratios = (0.0, 0.0);
    for &n in &rows_list {
        // A permutation: every destination row receives exactly one source row.
        let perm = harness::host::shuffled_permutation(n, &mut (n as u64));
        let src_h = HostTensor::from_fn(DType::F32, &[n, d], |i| (i % 97) as f64);
        let src = src_h.to_tensor(device)?;
        let ids = Tensor::from_vec(perm.clone(), n, device)?;
        let ids2d = ids.unsqueeze(1)?.broadcast_as((n, d))?.contiguous()?;
        let dst = Tensor::zeros((n, d), DType::F32, device)?;
        let call = |op: Op| match op {
            Op::IndexSelect => src.index_select(&ids, 0),
            Op::IndexAdd => dst.index_add(&ids, &src, 0),
            Op::ScatterAdd => dst.scatter_add(&ids2d, &src, 0),
        };
        if n == rows_list[0] {
            warm_device(device, Duration::from_secs(1), || {
                call(Op::IndexSelect).map(|_| ())
            })?;
        }
        // Correctness first: a fast wrong answer is not a timing.
        for op in Op::ALL {
            let got = harness::host::read_back(&call(op)?)?;
            let want: Vec<f64> = match op {
                Op::IndexSelect => perm
                    .iter()
                    .flat_map(|&p| src_h.values[p as usize * d..(p as usize + 1) * d].to_vec())
                    .collect(),
                _ => {
                    let mut v = vec![0.0; n * d];
                    for (r, &p) in perm.iter().enumerate() {
                        v[p as usize * d..(p as usize + 1) * d]
                            .copy_from_slice(&src_h.values[r * d..(r + 1) * d]);
                    }
                    v
                }
            };
            if let Some(m) = harness::compare::compare_values(DType::F32, &want, &got.values) {
                findings.push(format!(
                    "{} at N = {n} disagrees with the oracle: {m}",
                    op.name()
                ));
            }
        }
        let base = measure(device, timing, || call(Op::IndexSelect).map(|_| ()))?;
        for op in Op::ALL {
            let stats = if op == Op::IndexSelect {
                base.clone()
            } else {
                measure(device, timing, || call(op).map(|_| ()))?
            };
            let r = ratio(&stats, &base);
            match op {
                Op::IndexAdd => last_ratios.0 = r,
                Op::ScatterAdd => last_ratios.1 = r,
                _ => {}
            }
            rows.push(vec![
                n.to_string(),
                d.to_string(),
                op.name().into(),
                ms(stats.median_ms),
                stats.spread(),
                times(r),
            ]);
            records.push(BenchRecord {
                config: obj(&[
                    ("op", op.name().into()),
                    ("rows", n.into()),
                    ("width", d.into()),
                    ("dtype", "f32".into()),
                ]),
                stats: Some(stats),
                ratio_to_baseline: Some(r),
                baseline: Some("index_select of the same rows".into()),
                counts: obj(&[("bytes_moved", (2 * n * d * 4).into())]),
                device: device_name.clone(),
                candle_version: CANDLE_VERSION.into(),
            });
        }
    }
    let n_max = rows_list.last().copied().unwrap_or(0);
    let shape = format!(
        "at N = {n_max} rows of width {d}, index_add takes {} and scatter_add {} the time of index_select moving the same data",
        times(last_ratios.0),
        times(last_ratios.1)
    );
    let (verdict, explanation) = if matches!(device, Device::Cpu) {
        (
            Verdict::Inconclusive,
            format!("no accelerator was used. On cpu: {shape}."),
        )
    } else if last_ratios.0 >= THRESHOLD || last_ratios.1 >= THRESHOLD {
        (
            Verdict::Reproduced,
            format!(
                "on {}, {shape} (threshold {THRESHOLD}×).",
                env.target.backend
            ),
        )
    } else {
        (
            Verdict::NotReproduced,
            format!(
                "on {}, {shape} (below the {THRESHOLD}× threshold).",
                env.target.backend
            ),
        )
    };
    Ok(BenchReport {
        bench: NAME.into(),
        title: "index_add / scatter_add along many rows are far slower than index_select of the same data".into(),
        claim: "candle's CUDA index_add and scatter_add kernels loop over the indexed dimension inside each thread (one thread per position of the other dims), so adding N rows of width D is serial in N.".into(),
        source: "found by moe-core's per-phase timings; candle-kernels 0.11.1 src/indexing.cu".into(),
        upstream: vec![],
        environment: env,
        command: command.into(),
        timing: *timing,
        columns: ["N rows", "D", "op", "median ms", "p10–p90 ms", "vs index_select"].map(String::from).to_vec(),
        rows,
        records,
        findings,
        verdict,
        explanation,
    })
}

/// ms vs N, one line per op.
pub fn plot(r: &BenchReport) -> Option<(String, String)> {
    harness::bench::plot_by(r, "rows", "rows N", "median ms", |rec| {
        rec.config["op"].as_str().unwrap_or("?").to_string()
    })
}
