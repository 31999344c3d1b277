//! # fp16_cast_overhead — "per-matmul f16 casts make a small model slower than f32"
//!
//! Source: field notes item 3 (candle 0.9.2, M-series Mac; 128-dim, 12 layers: f32 3020 ms/iter,
//! per-matmul f16 3110 ms/iter). Upstream: none.
//!
//! A chain shaped like the notes' model — L layers of attention (q, k, v, scores, p·v, output),
//! a SwiGLU MLP (up, gate, down) and a router projection: 10 matmuls per layer over T tokens —
//! timed in four modes at each width D: (a) f32; (b) per-matmul `to_dtype(F16)` → matmul →
//! `to_dtype(F32)` with f32 weights; (c) persistent f16: weights cast once at load, activations
//! cast at the layer's edges and back to f32 only for norms, softmax and residuals; (d) as (c)
//! in bf16. Cast dispatches per iteration are counted by the code that issues them.

use super::{ms, obj, times, OutputArgs, TimingArgs};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::bench::{BenchRecord, BenchReport};
use harness::device::{Environment, CANDLE_VERSION};
use harness::timing::{measure, ratio, warm_device, Stats, TimingConfig};
use harness::Verdict;
use std::cell::Cell;
use std::time::Duration;

pub const NAME: &str = "fp16_cast_overhead";
pub const SNIPPET: &str = include_str!("../../snippets/src/bin/snippet_fp16_cast_overhead.rs");
pub const PERF: super::Perf = super::Perf::prints_timings(NAME, SNIPPET);

#[derive(clap::Parser, Debug)]
#[command(
    about = "Times f32 vs per-matmul f16 casts vs persistent f16/bf16 on a model-shaped matmul chain."
)]
pub struct Args {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Model widths D to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [64u64, 128, 256, 512, 1024, 2048], value_parser = clap::value_parser!(u64).range(8..=16_384))]
    pub dims: Vec<u64>,
    /// Tokens T per forward.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub tokens: u64,
    /// Layers L.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub layers: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    F32,
    PerMatmulF16,
    Persistent(DType),
}

impl Mode {
    const ALL: [Mode; 4] = [
        Mode::F32,
        Mode::PerMatmulF16,
        Mode::Persistent(DType::F16),
        Mode::Persistent(DType::BF16),
    ];
    fn name(self) -> &'static str {
        match self {
            Mode::F32 => "f32",
            Mode::PerMatmulF16 => "per-matmul-f16",
            Mode::Persistent(DType::F16) => "persistent-f16",
            Mode::Persistent(_) => "persistent-bf16",
        }
    }
}

/// Counts every `to_dtype` that changes a dtype, as it is issued.
#[derive(Default)]
struct Casts(Cell<usize>);

impl Casts {
    fn to(&self, t: &Tensor, dt: DType) -> candle_core::Result<Tensor> {
        if t.dtype() == dt {
            return Ok(t.clone());
        }
        self.0.set(self.0.get() + 1);
        t.to_dtype(dt)
    }
}

/// One layer's weights in one dtype.
struct Weights {
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    up: Tensor,
    gate: Tensor,
    down: Tensor,
    router: Tensor,
}

impl Weights {
    fn random(d: usize, device: &Device) -> candle_core::Result<Self> {
        let std = 1.0 / (d as f64).sqrt();
        let w = |rows: usize, cols: usize| Tensor::randn(0f32, std as f32, (rows, cols), device);
        Ok(Self {
            wq: w(d, d)?,
            wk: w(d, d)?,
            wv: w(d, d)?,
            wo: w(d, d)?,
            up: w(d, 4 * d)?,
            gate: w(d, 4 * d)?,
            down: w(4 * d, d)?,
            router: w(d, 8)?,
        })
    }
    fn cast(&self, dt: DType) -> candle_core::Result<Self> {
        Ok(Self {
            wq: self.wq.to_dtype(dt)?,
            wk: self.wk.to_dtype(dt)?,
            wv: self.wv.to_dtype(dt)?,
            wo: self.wo.to_dtype(dt)?,
            up: self.up.to_dtype(dt)?,
            gate: self.gate.to_dtype(dt)?,
            down: self.down.to_dtype(dt)?,
            router: self.router.to_dtype(dt)?,
        })
    }
}

struct Model {
    f32: Vec<Weights>,
    f16: Vec<Weights>,
    bf16: Vec<Weights>,
    norm: Tensor,
}

impl Model {
    fn new(d: usize, layers: usize, device: &Device) -> candle_core::Result<Self> {
        let f32: Vec<Weights> = (0..layers)
            .map(|_| Weights::random(d, device))
            .collect::<Result<_, _>>()?;
        // Persistent modes cast their weights once, at load: not part of an iteration.
        let f16 = f32
            .iter()
            .map(|w| w.cast(DType::F16))
            .collect::<Result<_, _>>()?;
        let bf16 = f32
            .iter()
            .map(|w| w.cast(DType::BF16))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            f32,
            f16,
            bf16,
            norm: Tensor::ones(d, DType::F32, device)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode, casts: &Casts) -> candle_core::Result<Tensor> {
        let layers = match mode {
            Mode::Persistent(DType::F16) => &self.f16,
            Mode::Persistent(_) => &self.bf16,
            _ => &self.f32,
        };
        let scale = 1.0 / (x.dim(1)? as f64).sqrt();
        // Into the compute dtype at a layer's edge, and back to f32 for norms/softmax/residuals.
        let into = |t: &Tensor| match mode {
            Mode::Persistent(dt) => casts.to(t, dt),
            _ => Ok(t.clone()),
        };
        let back = |t: &Tensor| casts.to(t, DType::F32);
        let mm = |a: &Tensor, b: &Tensor| match mode {
            Mode::PerMatmulF16 => {
                back(&casts.to(a, DType::F16)?.matmul(&casts.to(b, DType::F16)?)?)
            }
            _ => a.matmul(b),
        };
        let mut x = x.clone();
        for w in layers {
            let h = into(&candle_nn::ops::rms_norm(&x, &self.norm, 1e-5)?)?;
            let q = mm(&h, &w.wq)?;
            let k = mm(&h, &w.wk)?;
            let v = mm(&h, &w.wv)?;
            let s = (mm(&q, &k.t()?)? * scale)?;
            let p = into(&candle_nn::ops::softmax_last_dim(&back(&s)?)?)?;
            let o = back(&mm(&mm(&p, &v)?, &w.wo)?)?;
            x = (x + o)?;
            let h = into(&candle_nn::ops::rms_norm(&x, &self.norm, 1e-5)?)?;
            let m = (mm(&h, &w.gate)?.silu()? * mm(&h, &w.up)?)?;
            let d = back(&mm(&m, &w.down)?)?;
            // The router projection: the tenth matmul of the layer (its consumer is elsewhere).
            let _router_logits = mm(&h, &w.router)?;
            x = (x + d)?;
        }
        Ok(x)
    }
}

struct Point {
    d: usize,
    mode: Mode,
    stats: Stats,
    casts: usize,
}

/// The smallest measured D from which `mode` beats f32 at every larger measured D.
fn crossover(points: &[Point], mode: Mode) -> Option<usize> {
    let mut dims: Vec<usize> = points.iter().map(|p| p.d).collect();
    dims.dedup();
    let beats = |d: usize| {
        let t = |m: Mode| {
            points
                .iter()
                .find(|p| p.d == d && p.mode == m)
                .map(|p| p.stats.median_ms)
        };
        matches!((t(mode), t(Mode::F32)), (Some(a), Some(b)) if a < b)
    };
    let mut answer = None;
    for &d in dims.iter().rev() {
        if beats(d) {
            answer = Some(d);
        } else {
            break;
        }
    }
    answer
}

fn crossover_sentence(points: &[Point], mode: Mode) -> String {
    let first = points.first().map(|p| p.d).unwrap_or(0);
    let last = points.last().map(|p| p.d).unwrap_or(0);
    match crossover(points, mode) {
        Some(d) if d == first => format!(
            "{} beats f32 at every D measured ({first}–{last})",
            mode.name()
        ),
        Some(d) => format!(
            "{} beats f32 from D = {d} up (measured to {last})",
            mode.name()
        ),
        None => format!(
            "{} does not beat f32 at D = {last}, the widest measured",
            mode.name()
        ),
    }
}

pub fn run(
    args: &Args,
    device: &Device,
    timing: &TimingConfig,
    command: &str,
) -> Result<BenchReport> {
    let (t, layers) = (args.tokens as usize, args.layers as usize);
    let dims = super::sorted_unique(&args.dims);
    let env = Environment::collect(device);
    let (points, first_retimed) = measure_points(&dims, t, layers, device, timing)?;

    let device_name = format!("{:#}", env.target);
    let (rows, records) = table(&points, t, layers, &device_name);
    let findings = findings(&points, &dims, layers, first_retimed.as_ref());
    let (verdict, explanation) = verdict(&points, t, layers, device, &env);

    Ok(BenchReport {
        bench: NAME.into(),
        title: "Per-matmul f16 casts vs f32 vs persistent f16/bf16 on a model-shaped matmul chain".into(),
        claim: "Mixed precision via per-matmul to_dtype(F16) + matmul + to_dtype(F32) is slower than pure f32 for small widths (N_EMBD = 128: 3110 vs 3020 ms/iter on Metal); persistent f16 helps from 256+.".into(),
        source: "field notes, item 3 (candle 0.9.2, Metal)".into(),
        upstream: vec![],
        environment: env,
        command: command.into(),
        timing: *timing,
        columns: ["D", "mode", "median ms/iter", "p10–p90 ms", "vs f32", "casts/iter"].map(String::from).to_vec(),
        rows,
        records,
        findings,
        verdict,
        explanation,
    })
}

/// The first configuration's stats as first measured and as re-timed at the end.
type Retimed = (Stats, Stats);

/// Every mode at every D (the device warmed before the first), and the first configuration
/// (f32 at the smallest D) as first measured and re-timed at the end.
fn measure_points(
    dims: &[usize],
    t: usize,
    layers: usize,
    device: &Device,
    timing: &TimingConfig,
) -> Result<(Vec<Point>, Option<Retimed>)> {
    let mut points: Vec<Point> = Vec::new();
    let mut first_retimed: Option<Retimed> = None;
    // A cold GPU runs slow: the first configuration is timed again at the end.
    for &d in dims {
        let model = Model::new(d, layers, device)?;
        let x = Tensor::randn(0f32, 1f32, (t, d), device)?;
        if d == dims[0] {
            warm_device(device, Duration::from_secs(1), || {
                model.forward(&x, Mode::F32, &Casts::default()).map(|_| ())
            })?;
        }
        for mode in Mode::ALL {
            let casts = Casts::default();
            model.forward(&x, mode, &casts)?;
            let per_iter = casts.0.get();
            let stats = measure(device, timing, || {
                model.forward(&x, mode, &Casts::default()).map(|_| ())
            })?;
            points.push(Point {
                d,
                mode,
                stats,
                casts: per_iter,
            });
        }
    }
    // Re-time the first configuration now that the device is warm.
    if let Some(&d0) = dims.first() {
        let model = Model::new(d0, layers, device)?;
        let x = Tensor::randn(0f32, 1f32, (t, d0), device)?;
        let again = measure(device, timing, || {
            model.forward(&x, Mode::F32, &Casts::default()).map(|_| ())
        })?;
        let before = points
            .iter()
            .find(|p| p.d == d0 && p.mode == Mode::F32)
            .unwrap()
            .stats
            .clone();
        first_retimed = Some((before, again));
    }
    Ok((points, first_retimed))
}

/// The table's rows and the JSON records, one per point, each against f32 at the same D.
fn table(
    points: &[Point],
    t: usize,
    layers: usize,
    device_name: &str,
) -> (Vec<Vec<String>>, Vec<BenchRecord>) {
    let mut records = Vec::new();
    let mut rows = Vec::new();
    for p in points {
        let base = &points
            .iter()
            .find(|q| q.d == p.d && q.mode == Mode::F32)
            .unwrap()
            .stats;
        let r = ratio(&p.stats, base);
        rows.push(vec![
            p.d.to_string(),
            p.mode.name().into(),
            ms(p.stats.median_ms),
            p.stats.spread(),
            times(r),
            p.casts.to_string(),
        ]);
        records.push(BenchRecord {
            config: obj(&[
                ("mode", p.mode.name().into()),
                ("d", p.d.into()),
                ("tokens", t.into()),
                ("layers", layers.into()),
                ("matmuls_per_layer", 10.into()),
            ]),
            stats: Some(p.stats.clone()),
            ratio_to_baseline: Some(r),
            baseline: Some("f32 at the same D".into()),
            counts: obj(&[("cast_dispatches_per_iter", p.casts.into())]),
            device: device_name.to_string(),
            candle_version: CANDLE_VERSION.into(),
        });
    }
    (rows, records)
}

/// The crossovers, the cast counts and the re-timing of the first configuration.
fn findings(
    points: &[Point],
    dims: &[usize],
    layers: usize,
    first_retimed: Option<&Retimed>,
) -> Vec<String> {
    let mut findings = vec![
        crossover_sentence(points, Mode::PerMatmulF16),
        crossover_sentence(points, Mode::Persistent(DType::F16)),
        crossover_sentence(points, Mode::Persistent(DType::BF16)),
    ];
    if let Some(p) = points.iter().find(|p| p.mode == Mode::PerMatmulF16) {
        let persistent = points
            .iter()
            .find(|q| q.mode == Mode::Persistent(DType::F16))
            .map_or(0, |q| q.casts);
        findings.push(format!(
            "cast dispatches per iteration (counted as issued): per-matmul {} ({} per matmul × 10 matmuls × {layers} layers), persistent {persistent}",
            p.casts,
            p.casts / (10 * layers).max(1)
        ));
    }
    if let Some((before, again)) = first_retimed {
        findings.push(format!(
            "first configuration (f32, D = {}) re-timed at the end: {} ms vs {} ms when first measured",
            dims[0],
            ms(again.median_ms),
            ms(before.median_ms)
        ));
    }
    findings
}

/// The verdict from per-matmul f16 vs f32 at D = 128, the notes' width.
fn verdict(
    points: &[Point],
    t: usize,
    layers: usize,
    device: &Device,
    env: &Environment,
) -> (Verdict, String) {
    let at = |d: usize, m: Mode| {
        points
            .iter()
            .find(|p| p.d == d && p.mode == m)
            .map(|p| p.stats.median_ms)
    };
    let notes_d = 128;
    match (at(notes_d, Mode::PerMatmulF16), at(notes_d, Mode::F32)) {
        (Some(b), Some(a)) => {
            let r = b / a;
            let shape = format!(
                "at D = {notes_d} (T = {t}, {layers} layers) per-matmul f16 takes {} ms/iter vs f32 {} ms ({}); {}",
                ms(b),
                ms(a),
                times(r),
                crossover_sentence(points, Mode::Persistent(DType::F16))
            );
            if matches!(device, Device::Cpu) {
                (Verdict::Inconclusive, format!("no accelerator was used, so the GPU claim was not tested. On cpu: {shape}."))
            } else if r > 1.0 {
                (
                    Verdict::Reproduced,
                    format!(
                        "per-matmul casting is slower than f32 on {}: {shape}.",
                        env.target.backend
                    ),
                )
            } else {
                (
                    Verdict::NotReproduced,
                    format!(
                        "per-matmul casting is not slower than f32 on {}: {shape}.",
                        env.target.backend
                    ),
                )
            }
        }
        _ => (
            Verdict::Inconclusive,
            format!("D = {notes_d}, the notes' width, was not measured (--dims)"),
        ),
    }
}

/// ms/iter vs D, one line per mode.
pub fn plot(r: &BenchReport) -> Option<(String, String)> {
    harness::bench::plot_by(r, "d", "model width D", "median ms per iteration", |rec| {
        rec.config["mode"].as_str().unwrap_or("?").to_string()
    })
}
