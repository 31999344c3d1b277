//! # router_topk_sync — "the host round-trip for MoE router top-K stalls the GPU"
//!
//! Source: field notes item 4 (candle 0.9.2, M-series Mac: ~170 ms/iter saved, 3000 → 2830 ms,
//! by replacing `to_vec1` + CPU top-K with a device-side top-K mask). Upstream on tie-breaking of
//! GPU sorts: huggingface/candle#3356.
//!
//! A 12-layer router chain over T tokens: logits = x·W_r, softmax, top-K gates, x += gates·W_e.
//! Mode (a) copies the probabilities to the host once per layer (`to_vec2`), picks top-K there and
//! uploads the gates; mode (b) stays on the device: `arg_sort_last_dim` → `narrow` → `gather`, the
//! gate mask built from the selected indices (one-hot), not from a `ge` threshold, which selects
//! more than K experts on ties. The selection of (b) is checked against a plain-Rust top-K on
//! random logits, and on logits with ties the report says how each backend breaks them.

use super::{ms, obj, times, OutputArgs, TimingArgs};
use crate::error::Error;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::bench::{BenchRecord, BenchReport};
use harness::device::{Environment, CANDLE_VERSION};
use harness::timing::{measure, ratio, warm_device, TimingConfig};
use harness::Verdict;
use std::cell::Cell;
use std::time::Duration;

pub const NAME: &str = "router_topk_sync";
pub const SNIPPET: &str = include_str!("../../snippets/src/bin/snippet_router_topk_sync.rs");
pub const PERF: super::Perf = super::Perf::prints_timings(NAME, SNIPPET);

#[derive(clap::Parser, Debug)]
#[command(
    about = "Times MoE router top-K on the host (one sync per layer) vs on the device, and checks the device selection."
)]
pub struct Args {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Expert counts E (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [8u64, 16, 64], value_parser = clap::value_parser!(u64).range(2..=4096))]
    pub experts: Vec<u64>,
    /// Experts per token K (comma-separated); each must be below every E.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2], value_parser = clap::value_parser!(u64).range(1..=64))]
    pub k: Vec<u64>,
    /// Tokens T per forward.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub tokens: u64,
    /// Model width D.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub dim: u64,
    /// Layers (one router each).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub layers: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Host,
    Device,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Host => "host-topk",
            Mode::Device => "device-topk",
        }
    }
}

/// Top-K of one row as a plain-Rust oracle: descending by value, ties to the lower index.
pub fn oracle_topk(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Gates from host probabilities: the top-K renormalised, zeros elsewhere.
fn host_gates(probs: &[Vec<f32>], k: usize) -> Vec<f32> {
    let e = probs.first().map_or(0, Vec::len);
    let mut g = vec![0f32; probs.len() * e];
    for (t, row) in probs.iter().enumerate() {
        let top = oracle_topk(row, k);
        let sum: f32 = top.iter().map(|&i| row[i]).sum();
        for i in top {
            g[t * e + i] = row[i] / sum;
        }
    }
    g
}

/// The top-K indices on the device: `arg_sort_last_dim` (descending) then the first K columns.
fn device_topk(probs: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    probs
        .arg_sort_last_dim(false)?
        .narrow(1, 0, k)?
        .contiguous()
}

/// Gates on the device, with no host sync: one-hot of the selected indices × renormalised probs.
fn device_gates(probs: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (_, e) = probs.dims2()?;
    let idx = device_topk(probs, k)?;
    let top = probs.gather(&idx, 1)?;
    let top = top.broadcast_div(&top.sum_keepdim(1)?)?;
    let experts = Tensor::arange(0u32, e as u32, probs.device())?.reshape((1, 1, e))?;
    let one_hot = idx
        .unsqueeze(2)?
        .broadcast_eq(&experts)?
        .to_dtype(DType::F32)?;
    one_hot.broadcast_mul(&top.unsqueeze(2)?)?.sum(1)
}

struct Layer {
    router: Tensor,
    experts: Tensor,
}

fn forward(
    x: &Tensor,
    layers: &[Layer],
    mode: Mode,
    k: usize,
    syncs: &Cell<usize>,
) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for l in layers {
        let probs = candle_nn::ops::softmax_last_dim(&x.matmul(&l.router)?)?;
        let gates = match mode {
            Mode::Host => {
                syncs.set(syncs.get() + 1);
                let p = probs.to_vec2::<f32>()?;
                let (t, e) = probs.dims2()?;
                Tensor::from_vec(host_gates(&p, k), (t, e), x.device())?
            }
            Mode::Device => device_gates(&probs, k)?,
        };
        x = (x + gates.matmul(&l.experts)?)?;
    }
    Ok(x)
}

/// How a backend's top-K compares with the oracle on one set of logits.
struct SelectionCheck {
    rows: usize,
    mismatched_rows: usize,
    /// Rows whose K-th and (K+1)-th largest values tie (where the tie-break decides).
    tied_rows: usize,
    lower_index_first: usize,
    higher_index_first: usize,
    other: usize,
    /// Rows where a `probs >= kth value` mask selects more than K experts.
    threshold_overselects: usize,
}

fn check_selection(logits: &[Vec<f32>], k: usize, device: &Device) -> Result<SelectionCheck> {
    let (t, e) = (logits.len(), logits[0].len());
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    let got = device_topk(&Tensor::from_vec(flat, (t, e), device)?, k)?.to_vec2::<u32>()?;
    let mut c = SelectionCheck {
        rows: t,
        mismatched_rows: 0,
        tied_rows: 0,
        lower_index_first: 0,
        higher_index_first: 0,
        other: 0,
        threshold_overselects: 0,
    };
    for (row, sel) in logits.iter().zip(&got) {
        let sel: Vec<usize> = sel.iter().map(|&i| i as usize).collect();
        let want = oracle_topk(row, k);
        let mut sorted: Vec<f32> = row.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let tie_at_boundary = k < e && sorted[k - 1] == sorted[k];
        if sel != want && !tie_at_boundary {
            c.mismatched_rows += 1;
        }
        if row.iter().filter(|&&v| v >= sorted[k - 1]).count() > k {
            c.threshold_overselects += 1;
        }
        if tie_at_boundary {
            c.tied_rows += 1;
            // Among equal values the oracle takes lower indices first; the mirror rule higher first.
            let mut higher: Vec<usize> = (0..e).collect();
            higher.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(b.cmp(&a)));
            higher.truncate(k);
            let as_set = |v: &[usize]| {
                let mut s = v.to_vec();
                s.sort_unstable();
                s
            };
            if as_set(&sel) == as_set(&want) {
                c.lower_index_first += 1;
            } else if as_set(&sel) == as_set(&higher) {
                c.higher_index_first += 1;
            } else {
                c.other += 1;
            }
        }
    }
    Ok(c)
}

fn logits(rows: usize, e: usize, levels: Option<u64>, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..rows)
        .map(|_| {
            (0..e)
                .map(|_| match levels {
                    // Few distinct values: ties everywhere.
                    Some(n) => (harness::host::splitmix64(&mut s) % n) as f32,
                    None => {
                        (harness::host::splitmix64(&mut s) >> 40) as f32 / (1u64 << 24) as f32 * 8.0
                            - 4.0
                    }
                })
                .collect()
        })
        .collect()
}

fn describe_ties(c: &SelectionCheck) -> String {
    if c.tied_rows == 0 {
        return "no row had a tie at the K-th place".into();
    }
    format!(
        "{} of {} rows tie at the K-th place; among them the selection took lower indices first in {}, higher first in {}, neither in {}",
        c.tied_rows, c.rows, c.lower_index_first, c.higher_index_first, c.other
    )
}

/// Checks what clap cannot: every K below every E.
pub fn validate(args: &Args) -> Result<(), Error> {
    match (args.k.iter().max(), args.experts.iter().min()) {
        (Some(&k), Some(&e)) if k >= e => Err(Error::BadInput(format!(
            "every --k must be below every --experts (K = {k}, E = {e})"
        ))),
        _ => Ok(()),
    }
}

/// The sizes one run measures: T, D, the layer count and the sorted E and K lists.
struct Sizes {
    t: usize,
    d: usize,
    n_layers: usize,
    experts: Vec<usize>,
    ks: Vec<usize>,
}

/// What the timing phase leaves behind for the report.
struct Timings {
    rows: Vec<Vec<String>>,
    records: Vec<BenchRecord>,
    /// Host and device medians at E = 8, K = 2 (the notes' configuration).
    at_notes: Option<(f64, f64)>,
    /// The first configuration's median when first measured and when re-timed at the end.
    retimed: Option<(f64, f64)>,
}

pub fn run(
    args: &Args,
    device: &Device,
    timing: &TimingConfig,
    command: &str,
) -> Result<BenchReport> {
    let (t, d, n_layers) = (
        args.tokens as usize,
        args.dim as usize,
        args.layers as usize,
    );
    let experts = super::sorted_unique(&args.experts);
    let ks = super::sorted_unique(&args.k);
    if let (Some(&kmax), Some(&emin)) = (ks.last(), experts.first()) {
        anyhow::ensure!(
            kmax < emin,
            "every K must be below every E (K = {kmax}, E = {emin})"
        );
    }
    let sizes = Sizes {
        t,
        d,
        n_layers,
        experts,
        ks,
    };
    let env = Environment::collect(device);
    let device_name = format!("{:#}", env.target);
    let timings = time_modes(&sizes, device, timing, &device_name)?;
    let findings = findings(&sizes, device, &env, timings.retimed)?;
    let (verdict, explanation) = verdict(&sizes, timings.at_notes, device, &env);
    Ok(BenchReport {
        bench: NAME.into(),
        title: "MoE router top-K: host round-trip per layer vs device-side top-K".into(),
        claim: "router_probs.to_vec1() for CPU top-K forces a GPU flush and a copy 12× per forward; computing the top-K mask on the device removes the stalls (3000 → 2830 ms/iter on Metal).".into(),
        source: "field notes, item 4 (candle 0.9.2, Metal)".into(),
        upstream: vec!["https://github.com/huggingface/candle/issues/3356 (GPU sorts are unstable: tie-breaking)".into()],
        environment: env,
        command: command.into(),
        timing: *timing,
        columns: ["E", "K", "mode", "median ms/forward", "p10–p90 ms", "vs host-topk", "host syncs/forward"].map(String::from).to_vec(),
        rows: timings.rows,
        records: timings.records,
        findings,
        verdict,
        explanation,
    })
}

/// `n_layers` random router/expert layers for E experts of width D.
fn random_layers(
    d: usize,
    e: usize,
    n_layers: usize,
    device: &Device,
) -> candle_core::Result<Vec<Layer>> {
    let std = 1.0 / (d as f32).sqrt();
    (0..n_layers)
        .map(|_| -> candle_core::Result<Layer> {
            Ok(Layer {
                router: Tensor::randn(0f32, std, (d, e), device)?,
                experts: Tensor::randn(0f32, 0.1, (e, d), device)?,
            })
        })
        .collect::<Result<_, _>>()
}

/// Times both modes at every E and K (warming the device before the first), then re-times the
/// first configuration now that the device is warm.
fn time_modes(
    sizes: &Sizes,
    device: &Device,
    timing: &TimingConfig,
    device_name: &str,
) -> Result<Timings> {
    let Sizes {
        t,
        d,
        n_layers,
        ref experts,
        ref ks,
    } = *sizes;
    let mut records = Vec::new();
    let mut rows = Vec::new();
    let mut at_notes: Option<(f64, f64)> = None;
    // The first configuration's inputs, kept to re-time it at the end (cold-device check).
    let mut first: Option<(Vec<Layer>, Tensor, f64)> = None;
    for &e in experts {
        let layers = random_layers(d, e, n_layers, device)?;
        let x = Tensor::randn(0f32, 1f32, (t, d), device)?;
        if e == experts[0] {
            warm_device(device, Duration::from_secs(1), || {
                forward(&x, &layers, Mode::Device, ks[0], &Cell::new(0)).map(|_| ())
            })?;
        }
        for &k in ks {
            let mut base = None;
            for mode in [Mode::Host, Mode::Device] {
                let syncs = Cell::new(0);
                forward(&x, &layers, mode, k, &syncs)?;
                let per_forward = syncs.get();
                let stats = measure(device, timing, || {
                    forward(&x, &layers, mode, k, &Cell::new(0)).map(|_| ())
                })?;
                let base_stats = base.get_or_insert_with(|| stats.clone()).clone();
                let r = ratio(&stats, &base_stats);
                if first.is_none() {
                    first = Some((Vec::new(), x.clone(), stats.median_ms));
                }
                if e == 8 && k == 2 {
                    let slot = at_notes.get_or_insert((0.0, 0.0));
                    match mode {
                        Mode::Host => slot.0 = stats.median_ms,
                        Mode::Device => slot.1 = stats.median_ms,
                    }
                }
                rows.push(vec![
                    e.to_string(),
                    k.to_string(),
                    mode.name().into(),
                    ms(stats.median_ms),
                    stats.spread(),
                    times(r),
                    per_forward.to_string(),
                ]);
                records.push(BenchRecord {
                    config: obj(&[
                        ("mode", mode.name().into()),
                        ("experts", e.into()),
                        ("k", k.into()),
                        ("tokens", t.into()),
                        ("dim", d.into()),
                        ("layers", n_layers.into()),
                    ]),
                    stats: Some(stats),
                    ratio_to_baseline: Some(r),
                    baseline: Some("host-topk at the same E and K".into()),
                    counts: obj(&[("host_syncs_per_forward", per_forward.into())]),
                    device: device_name.to_string(),
                    candle_version: CANDLE_VERSION.into(),
                });
            }
        }
        if let Some((kept, _, _)) = first.as_mut().filter(|(kept, _, _)| kept.is_empty()) {
            kept.extend(layers);
        }
    }
    let retimed = match &first {
        Some((layers, x, before)) => {
            let again = measure(device, timing, || {
                forward(x, layers, Mode::Host, ks[0], &Cell::new(0)).map(|_| ())
            })?;
            Some((*before, again.median_ms))
        }
        None => None,
    };
    Ok(Timings {
        rows,
        records,
        at_notes,
        retimed,
    })
}

/// Selection checks on the target and, for comparison, on the CPU; then the re-timing, and first
/// of all any device top-K that differs from the oracle on random logits.
fn findings(
    sizes: &Sizes,
    device: &Device,
    env: &Environment,
    retimed: Option<(f64, f64)>,
) -> Result<Vec<String>> {
    let (experts, ks) = (&sizes.experts, &sizes.ks);
    let mut findings = Vec::new();
    let backends: Vec<(String, Device)> = if matches!(device, Device::Cpu) {
        vec![("cpu".into(), Device::Cpu)]
    } else {
        vec![
            ("cpu".into(), Device::Cpu),
            (env.target.backend.clone(), device.clone()),
        ]
    };
    let mut wrong_selection = Vec::new();
    for &e in experts {
        for &k in ks {
            let random = logits(1024, e, None, 7 + e as u64);
            let tied = logits(1024, e, Some(3), 11 + e as u64);
            for (name, dev) in &backends {
                let r = check_selection(&random, k, dev)?;
                if r.mismatched_rows > 0 {
                    wrong_selection.push(format!(
                        "{name} E={e} K={k}: {} of {} rows",
                        r.mismatched_rows, r.rows
                    ));
                }
                let ties = check_selection(&tied, k, dev)?;
                findings.push(format!(
                    "{name}, E = {e}, K = {k}: top-K equals the oracle's on {} of {} random rows; on tied logits (values 0..3): {}; a `ge` K-th-value threshold mask would select more than K experts on {} of {} tied rows",
                    r.rows - r.mismatched_rows,
                    r.rows,
                    describe_ties(&ties),
                    ties.threshold_overselects,
                    ties.rows
                ));
            }
        }
    }
    if let Some((before, again)) = retimed {
        findings.push(format!(
            "first configuration (host-topk, E = {}, K = {}) re-timed at the end: {} ms vs {} ms when first measured",
            experts[0],
            ks[0],
            ms(again),
            ms(before)
        ));
    }
    if !wrong_selection.is_empty() {
        findings.insert(
            0,
            format!(
                "device top-K differs from the oracle on random logits (no ties): {}",
                wrong_selection.join("; ")
            ),
        );
    }
    Ok(findings)
}

/// The verdict from the host and device medians at E = 8, K = 2.
fn verdict(
    sizes: &Sizes,
    at_notes: Option<(f64, f64)>,
    device: &Device,
    env: &Environment,
) -> (Verdict, String) {
    let (t, d, n_layers) = (sizes.t, sizes.d, sizes.n_layers);
    match at_notes {
        Some((host, dev)) => {
            let per_layer = (host - dev) / n_layers as f64;
            let difference = if per_layer >= 0.0 {
                format!("the host path costs {} ms more per layer", ms(per_layer))
            } else {
                format!("the device path costs {} ms more per layer", ms(-per_layer))
            };
            let shape = format!(
                "at E = 8, K = 2 (T = {t}, D = {d}, {n_layers} layers) host top-K takes {} ms per forward with {n_layers} host syncs, device top-K {} ms with none ({} of host; {difference})",
                ms(host),
                ms(dev),
                times(dev / host)
            );
            if matches!(device, Device::Cpu) {
                (Verdict::Inconclusive, format!("no accelerator was used, so the GPU claim was not tested. On cpu: {shape}."))
            } else if dev < host {
                (
                    Verdict::Reproduced,
                    format!(
                        "removing the host round-trip speeds the forward up on {}: {shape}.",
                        env.target.backend
                    ),
                )
            } else {
                (
                    Verdict::NotReproduced,
                    format!(
                        "the device-side top-K is not faster on {}: {shape}.",
                        env.target.backend
                    ),
                )
            }
        }
        None => (
            Verdict::Inconclusive,
            "E = 8 with K = 2 (the headline configuration) was not measured".into(),
        ),
    }
}

/// ms per forward vs E, one line per mode and K.
pub fn plot(r: &BenchReport) -> Option<(String, String)> {
    harness::bench::plot_by(r, "experts", "experts E", "median ms per forward", |rec| {
        format!(
            "{} K={}",
            rec.config["mode"].as_str().unwrap_or("?"),
            rec.config["k"]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_topk_breaks_ties_to_the_lower_index() {
        assert_eq!(oracle_topk(&[1.0, 3.0, 3.0, 2.0], 2), vec![1, 2]);
        assert_eq!(oracle_topk(&[5.0, 1.0, 5.0], 1), vec![0]);
    }

    #[test]
    fn device_gates_match_host_gates_on_cpu() -> Result<()> {
        let rows = logits(64, 8, None, 3);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let probs =
            candle_nn::ops::softmax_last_dim(&Tensor::from_vec(flat, (64, 8), &Device::Cpu)?)?;
        let host = host_gates(&probs.to_vec2::<f32>()?, 2);
        let dev = device_gates(&probs, 2)?.flatten_all()?.to_vec1::<f32>()?;
        for (a, b) in host.iter().zip(&dev) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }
}
