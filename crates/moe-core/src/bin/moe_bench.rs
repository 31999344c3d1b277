//! `moe_bench`: every dispatch strategy of the MoE block, forward and forward+backward, against
//! the mixtral.rs-style `host-topk` baseline and against a dense SwiGLU FFN over the active FLOPs
//! (hidden K·F on the same tokens), all measured in the same run.
//!
//!     cargo run -p moe-core --release --features cuda --bin moe_bench -- --device cuda --dtypes f32,bf16

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use clap::Parser;
use harness::bench::{table, BenchRecord};
use harness::device::{Environment, CANDLE_VERSION};
use harness::plot::{line_chart_svg, Series};
use harness::timing::{measure, warm_device, Stats, TimingConfig};
use moe_core::{DenseFfn, Dispatch, MoeBlock, MoeConfig, SortedCapacity};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Times the MoE dispatch strategies against host-topk and a dense FFN over the active FLOPs."
)]
struct Args {
    /// auto, cpu, cuda[:N] or metal[:N].
    #[arg(long, env = harness::DEVICE_ENV, default_value = "auto")]
    device: String,
    #[arg(long, value_delimiter = ',', default_values_t = [1024u64, 4096], value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tokens: Vec<u64>,
    #[arg(long, value_delimiter = ',', default_values_t = [128u64, 512, 1024], value_parser = clap::value_parser!(u64).range(1..=65_536))]
    dims: Vec<u64>,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=1024))]
    experts: u64,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    k: u64,
    /// Dtypes (f32, f16, bf16), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["f32".to_string()])]
    dtypes: Vec<String>,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    iters: u64,
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    warmup_ms: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write <DIR>/<backend>/moe_bench.{txt,json,svg}.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Also count, for one pass of each strategy, the kernel launches, cuBLAS GEMM calls,
    /// device-to-host copies and synchronisations it makes. Needs the counter preloaded:
    /// `LD_PRELOAD=<dir>/liblaunch_count.so` (built from tools/cuda-launch-count).
    #[arg(long)]
    count_launches: bool,
    /// The `sorted` strategy's capacity layout: `tokens` (C = T, routed on the device, no host
    /// sync) or `busiest` (the default: C = the busiest expert's count, one host read per forward).
    #[arg(long, default_value = "busiest", value_parser = ["busiest", "tokens"])]
    sorted_capacity: String,
}

/// The preloaded counter's `launch_count_snapshot`, when there is one.
type Snapshot = unsafe extern "C" fn(*mut u64, usize) -> usize;

#[cfg(unix)]
fn find_counter() -> Option<Snapshot> {
    // SAFETY: dlsym with a NUL-terminated name; the symbol, when present, has this signature
    // (tools/cuda-launch-count/launch_count.c).
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"launch_count_snapshot".as_ptr()) };
    (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, Snapshot>(p) })
}

#[cfg(not(unix))]
fn find_counter() -> Option<Snapshot> {
    None
}

/// Calls made by one run of `f`: kernel launches, GEMM calls, device→host copies, syncs.
fn count_calls(counter: Snapshot, f: impl FnOnce() -> candle_core::Result<()>) -> Option<[u64; 4]> {
    let read = || {
        let mut v = [0u64; 4];
        // SAFETY: the buffer holds the 4 counters the function writes at most.
        unsafe { counter(v.as_mut_ptr(), v.len()) };
        v
    };
    let before = read();
    f().ok()?;
    let after = read();
    Some(std::array::from_fn(|i| after[i] - before[i]))
}

#[derive(Serialize)]
struct TargetCheck {
    target: String,
    measured: String,
    met: bool,
}

#[derive(Serialize)]
struct Report {
    environment: Environment,
    command: String,
    timing: TimingConfig,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    records: Vec<BenchRecord>,
    targets: Vec<TargetCheck>,
    /// Where the time goes, at the largest T: routing, experts + combine, backward.
    phase_columns: Vec<String>,
    phases: Vec<Vec<String>>,
    /// candle-nn's `moe::moe_gemm` (CUDA f16/bf16 inference) on the same weights.
    anchor_columns: Vec<String>,
    anchors: Vec<Vec<String>>,
    call_columns: Vec<String>,
    /// Calls per pass (only with --count-launches).
    calls: Vec<Vec<String>>,
    notes: Vec<String>,
}

/// Times candle-nn's fused MoE GEMM forward on the block's weights and checks it against the
/// block's dense forward; a failure (e.g. its sort beyond 8192 entries) is reported as text.
#[cfg(feature = "cuda")]
fn fused_anchor(
    block: &MoeBlock,
    x: &Tensor,
    timing: &TimingConfig,
    dtype: DType,
    t: usize,
    d: usize,
) -> Vec<String> {
    let row = |a: String, b: String, c: String| {
        vec![dtype.as_str().into(), t.to_string(), d.to_string(), a, b, c]
    };
    let fused = match moe_core::FusedMoeGemm::new(block) {
        Ok(f) => f,
        Err(e) => {
            return row(
                format!("error: {}", e.to_string().lines().next().unwrap_or("")),
                "—".into(),
                "—".into(),
            )
        }
    };
    let check = || -> candle_core::Result<f64> {
        let a = fused.forward(block, x)?.to_dtype(DType::F32)?;
        let b = block.forward(x, Dispatch::Dense)?.to_dtype(DType::F32)?;
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? as f64 / scale.max(1e-12))
    };
    let err = match check() {
        Ok(e) => format!("{e:.2e}"),
        Err(e) => {
            return row(
                format!("error: {}", e.to_string().lines().next().unwrap_or("")),
                "—".into(),
                "—".into(),
            )
        }
    };
    let fused_t = measure(x.device(), timing, || fused.forward(block, x).map(|_| ()));
    let host_t = measure(x.device(), timing, || {
        block.forward(x, Dispatch::HostTopK).map(|_| ())
    });
    match (fused_t, host_t) {
        (Ok(f), Ok(h)) => row(
            format!("{:.3}", f.median_ms),
            format!("{:.2}×", h.median_ms / f.median_ms),
            err,
        ),
        (Err(e), _) | (_, Err(e)) => row(
            format!("error: {}", e.to_string().lines().next().unwrap_or("")),
            "—".into(),
            err,
        ),
    }
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        _ => Err(format!("unknown dtype `{s}`: expected f32, f16 or bf16")),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Forward,
    ForwardBackward,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::ForwardBackward => "fwd+bwd",
        }
    }
}

fn run_pass(out: candle_core::Result<Tensor>, pass: Pass) -> candle_core::Result<()> {
    let out = out?;
    if pass == Pass::ForwardBackward {
        out.sum_all()?.backward()?;
    }
    Ok(())
}

/// Exit code for bad input, as in every binary of the workspace.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let usage = |m: String| harness::cli::fail(EXIT_USAGE, m);
    let dtypes: Vec<DType> = match args.dtypes.iter().map(|s| parse_dtype(s)).collect() {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    if args.k >= args.experts {
        return usage(format!(
            "--k must be below --experts (K = {}, E = {})",
            args.k, args.experts
        ));
    }
    let device = match harness::cli::open_device(&args.device) {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    if args.count_launches && !device.is_cuda() {
        // On Metal ops share one encoder and are submitted ~50 to a command buffer
        // (candle-metal-kernels 0.11.1 commands.rs): there is no per-launch driver call to count.
        return usage(
            "--count-launches counts CUDA driver and cuBLAS calls; on Metal count dispatches with Xcode's Metal System Trace (candle exposes no counter)".into(),
        );
    }
    if args.count_launches && find_counter().is_none() {
        return usage(
            "--count-launches needs the call counter preloaded: build tools/cuda-launch-count and run with LD_PRELOAD=<dir>/liblaunch_count.so".into(),
        );
    }
    let backend = harness::device::backend_name(&device);
    if let Some(dir) = &args.report_dir {
        if let Err(e) = harness::cli::check_report_dir(dir, backend) {
            return usage(e);
        }
    }
    let report = match bench(&args, &dtypes, &device) {
        Ok(report) => report,
        Err(e) => return harness::cli::fail(1, format!("{e:#}")),
    };
    let text = render(&report);
    if let Some(dir) = &args.report_dir {
        let json = serde_json::to_string_pretty(&report).unwrap() + "\n";
        let svg = plot(&report);
        let mut files = vec![("moe_bench.txt", text.as_str()), ("moe_bench.json", &json)];
        if let Some(svg) = &svg {
            files.push(("moe_bench.svg", svg));
        }
        if let Err(e) = harness::cli::write_report_files(dir, backend, &files) {
            return usage(e);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

struct Measured {
    /// Routing-only timing (Pass::Forward rows only; None for the FFN baseline).
    route: Option<Stats>,
    dtype: DType,
    t: usize,
    d: usize,
    pass: Pass,
    /// None for the dense-active FFN baseline.
    dispatch: Option<Dispatch>,
    result: std::result::Result<Stats, String>,
    /// Calls of one pass (with --count-launches).
    calls: Option<[u64; 4]>,
}

fn bench(args: &Args, dtypes: &[DType], device: &Device) -> Result<Report> {
    let timing = TimingConfig {
        iters: args.iters as usize,
        warmup_iters: 3,
        warmup_min: Duration::from_millis(args.warmup_ms),
    };
    let (e, k) = (args.experts as usize, args.k as usize);
    let env = Environment::collect(device);
    let counter = if args.count_launches {
        find_counter()
    } else {
        None
    };
    let calls_of =
        |f: &dyn Fn() -> candle_core::Result<()>| counter.and_then(|c| count_calls(c, f));
    let mut all: Vec<Measured> = Vec::new();
    let mut warmed = false;
    // candle-nn's fused MoE GEMM (CUDA, f16/bf16 inference): one row per configuration.
    #[allow(unused_mut)]
    let mut anchors: Vec<Vec<String>> = Vec::new();
    // The `sorted` strategy's capacity layout per configuration: its padding rows are FLOPs.
    let mut layouts: Vec<(DType, usize, usize, moe_core::CapacityLayout)> = Vec::new();
    for &dtype in dtypes {
        for &t in &args.tokens {
            for &d in &args.dims {
                let (t, d) = (t as usize, d as usize);
                let config = MoeConfig {
                    d,
                    e,
                    k,
                    f: 4 * d,
                    dtype,
                };
                let block = MoeBlock::new(config, device)?;
                block.set_sorted_capacity(match args.sorted_capacity.as_str() {
                    "busiest" => SortedCapacity::Busiest,
                    _ => SortedCapacity::Tokens,
                });
                let ffn = DenseFfn::new(d, k * 4 * d, dtype, device)?;
                let x = Tensor::randn(0f32, 1.0, (t, d), device)?.to_dtype(dtype)?;
                if !warmed {
                    warm_device(device, Duration::from_secs(1), || {
                        run_pass(block.forward(&x, Dispatch::Dense), Pass::ForwardBackward)
                    })?;
                    warmed = true;
                }
                for pass in [Pass::Forward, Pass::ForwardBackward] {
                    let r = measure(device, &timing, || run_pass(ffn.forward(&x), pass))
                        .map_err(|e: candle_core::Error| e.to_string());
                    all.push(Measured {
                        route: None,
                        dtype,
                        t,
                        d,
                        pass,
                        dispatch: None,
                        result: r,
                        calls: calls_of(&|| run_pass(ffn.forward(&x), pass)),
                    });
                    #[cfg(feature = "cuda")]
                    if pass == Pass::Forward
                        && dtype != DType::F32
                        && matches!(device, Device::Cuda(_))
                    {
                        anchors.push(fused_anchor(&block, &x, &timing, dtype, t, d));
                    }
                    for dispatch in Dispatch::ALL {
                        let r = measure(device, &timing, || {
                            run_pass(block.forward(&x, dispatch), pass)
                        })
                        .map_err(|e: candle_core::Error| {
                            e.to_string().lines().next().unwrap_or("").to_string()
                        });
                        if dispatch == Dispatch::Sorted && pass == Pass::Forward {
                            if let Some(l) = block.last_capacity_layout() {
                                layouts.push((dtype, t, d, l));
                            }
                        }
                        let route = if pass == Pass::Forward {
                            measure(device, &timing, || block.route(&x, dispatch)).ok()
                        } else {
                            None
                        };
                        all.push(Measured {
                            route,
                            dtype,
                            t,
                            d,
                            pass,
                            dispatch: Some(dispatch),
                            result: r,
                            calls: calls_of(&|| run_pass(block.forward(&x, dispatch), pass)),
                        });
                    }
                }
            }
        }
    }
    let device_name = format!("{:#}", env.target);
    let find = |m: &Measured, dispatch: Option<Dispatch>| {
        all.iter()
            .find(|o| {
                o.dtype == m.dtype
                    && o.t == m.t
                    && o.d == m.d
                    && o.pass == m.pass
                    && o.dispatch == dispatch
            })
            .and_then(|o| o.result.as_ref().ok())
            .map(|s| s.median_ms)
    };
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for m in &all {
        let name = m.dispatch.map_or("dense-active-ffn", |d| d.name());
        let host = find(m, Some(Dispatch::HostTopK));
        let active = find(m, None);
        let (median, speedup, vs_active) = match &m.result {
            Ok(s) => (
                format!("{:.3}", s.median_ms),
                host.map_or("—".into(), |h| format!("{:.2}×", h / s.median_ms)),
                active.map_or("—".into(), |a| format!("{:.2}", s.median_ms / a)),
            ),
            // The message is in the JSON record and the notes; the table stays narrow.
            Err(_) => ("error".into(), "—".into(), "—".into()),
        };
        rows.push(vec![
            m.dtype.as_str().into(),
            m.t.to_string(),
            m.d.to_string(),
            m.pass.name().into(),
            name.into(),
            median,
            speedup,
            vs_active,
        ]);
        records.push(BenchRecord {
            config: [
                ("dtype", m.dtype.as_str().into()),
                ("tokens", m.t.into()),
                ("d", m.d.into()),
                ("experts", e.into()),
                ("k", k.into()),
                ("f", (4 * m.d).into()),
                ("pass", m.pass.name().into()),
                ("strategy", name.into()),
            ]
            .into_iter()
            .map(|(a, b): (&str, serde_json::Value)| (a.to_string(), b))
            .collect(),
            stats: m.result.as_ref().ok().cloned(),
            ratio_to_baseline: match (&m.result, host) {
                (Ok(s), Some(h)) => Some(s.median_ms / h),
                _ => None,
            },
            baseline: Some("host-topk, same dtype/T/D/pass".into()),
            counts: [(
                "error",
                serde_json::Value::from(m.result.as_ref().err().cloned()),
            )]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b))
            .collect(),
            device: device_name.clone(),
            candle_version: CANDLE_VERSION.into(),
        });
    }

    // Targets (forward+backward at the largest T measured).
    let t_max = args.tokens.iter().copied().max().unwrap_or(0) as usize;
    let best = |dtype: DType, d: usize| -> Option<(Dispatch, f64, f64, f64)> {
        let sel = |o: &&Measured| {
            o.dtype == dtype && o.t == t_max && o.d == d && o.pass == Pass::ForwardBackward
        };
        let host = all
            .iter()
            .filter(sel)
            .find(|o| o.dispatch == Some(Dispatch::HostTopK))?
            .result
            .as_ref()
            .ok()?
            .median_ms;
        let active = all
            .iter()
            .filter(sel)
            .find(|o| o.dispatch.is_none())?
            .result
            .as_ref()
            .ok()?
            .median_ms;
        all.iter()
            .filter(sel)
            .filter_map(|o| Some((o.dispatch?, o.result.as_ref().ok()?.median_ms)))
            .filter(|(d, _)| *d != Dispatch::HostTopK)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, t)| (d, t, host, active))
    };
    let mut targets = Vec::new();
    let mut check = |target: String, measured: Option<(String, bool)>| {
        if let Some((measured, met)) = measured {
            targets.push(TargetCheck {
                target,
                measured,
                met,
            });
        }
    };
    // The targets are defined for the H100 (CUDA); elsewhere the table stands alone.
    let dtypes_with_targets: &[DType] = if matches!(device, Device::Cuda(_)) {
        dtypes
    } else {
        &[]
    };
    for &dtype in dtypes_with_targets {
        check(
            format!(
                "{} D = 128: best strategy ≥ 3× host-topk (fwd+bwd, T = {t_max})",
                dtype.as_str()
            ),
            best(dtype, 128).map(|(s, t, h, _)| (format!("{s}: {:.2}×", h / t), h / t >= 3.0)),
        );
        // Issue #12's targets: f32 t / t_dense_active ≤ 1.2; bf16 ≥ 1.5× host-topk and ≤ 1.6.
        let (speed_target, active_target) = if dtype == DType::F32 {
            (None, 1.2)
        } else {
            (Some(1.5), 1.6)
        };
        if let Some(st) = speed_target {
            check(
                format!(
                    "{} D = 1024: best strategy ≥ {st}× host-topk",
                    dtype.as_str()
                ),
                best(dtype, 1024).map(|(s, t, h, _)| (format!("{s}: {:.2}×", h / t), h / t >= st)),
            );
        }
        check(
            format!(
                "{} D = 1024: best t / t_dense_active ≤ {active_target}",
                dtype.as_str()
            ),
            best(dtype, 1024)
                .map(|(s, t, _, a)| (format!("{s}: {:.2}", t / a), t / a <= active_target)),
        );
    }
    let anchor_rows = anchors;
    let mut notes = vec![format!(
        "E = {e}, K = {k}, F = 4·D; dense-active-ffn is a SwiGLU FFN of hidden K·F on the same T tokens (the active FLOPs); speedup = host-topk median / strategy median; medians of {} synchronised iterations",
        timing.iters
    )];
    for (dtype, t, d, l) in &layouts {
        notes.push(format!(
            "sorted ({} layout) at {} T = {t} D = {d}: capacity {} rows × {} experts for {} routed rows, padding {:.1}% of the expert FLOPs",
            args.sorted_capacity,
            dtype.as_str(),
            l.capacity,
            l.experts,
            l.routed,
            100.0 * l.padding_fraction()
        ));
    }
    // What `auto` (MoeBlock::auto_dispatch) would pick here: the fastest router-training
    // strategy by this table's fwd+bwd medians.
    let mut configs: Vec<(DType, usize, usize)> = all.iter().map(|m| (m.dtype, m.t, m.d)).collect();
    configs.dedup();
    for (dtype, t, d) in configs {
        let best = all
            .iter()
            .filter(|m| m.dtype == dtype && m.t == t && m.d == d && m.pass == Pass::ForwardBackward)
            .filter_map(|m| Some((m.dispatch?, m.result.as_ref().ok()?.median_ms)))
            .filter(|(disp, _)| disp.trains_router())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((disp, ms)) = best {
            notes.push(format!(
                "auto at {} T = {t} D = {d}: {} ({ms:.3} ms fwd+bwd)",
                dtype.as_str(),
                disp.name()
            ));
        }
    }
    if all.iter().any(|m| {
        m.dispatch == Some(Dispatch::ScatterAdd)
            && m.pass == Pass::ForwardBackward
            && m.result.is_err()
    }) {
        let msg = all
            .iter()
            .find_map(|m| {
                m.result
                    .as_ref()
                    .err()
                    .filter(|_| m.dispatch == Some(Dispatch::ScatterAdd))
            })
            .cloned()
            .unwrap_or_default();
        notes.push(format!("scatter-add fwd+bwd fails in candle's ScatterAdd backward: `{msg}` (repro: `cargo run -p repro --bin scatter_add_backward`)"));
    }
    // Phases at the largest T: route, experts + combine (forward − route), backward (fwd+bwd − fwd).
    let mut phases = Vec::new();
    for m in all
        .iter()
        .filter(|m| m.t == t_max && m.pass == Pass::Forward)
    {
        let fwd = match &m.result {
            Ok(s) => s.median_ms,
            Err(_) => continue,
        };
        let both = all
            .iter()
            .find(|o| {
                o.dtype == m.dtype
                    && o.t == m.t
                    && o.d == m.d
                    && o.pass == Pass::ForwardBackward
                    && o.dispatch == m.dispatch
            })
            .and_then(|o| o.result.as_ref().ok())
            .map(|s| s.median_ms);
        let route = m.route.as_ref().map(|s| s.median_ms);
        let f = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.3}"));
        phases.push(vec![
            m.dtype.as_str().into(),
            m.d.to_string(),
            m.dispatch.map_or("dense-active-ffn", |d| d.name()).into(),
            f(route),
            f(route.map(|r| fwd - r).or(Some(fwd))),
            f(both.map(|b| b - fwd)),
            both.map_or("—".into(), |b| format!("{:.2}", (b - fwd) / fwd)),
        ]);
    }
    let calls: Vec<Vec<String>> = all
        .iter()
        .filter_map(|m| {
            let c = m.calls?;
            let mut row = vec![
                m.dtype.as_str().to_string(),
                m.t.to_string(),
                m.d.to_string(),
                m.pass.name().to_string(),
                m.dispatch
                    .map_or("dense-active-ffn", |d| d.name())
                    .to_string(),
            ];
            row.extend(c.iter().map(|v| v.to_string()));
            Some(row)
        })
        .collect();
    let command = {
        let features = if cfg!(feature = "cuda") {
            " --features cuda"
        } else {
            ""
        };
        format!(
            "cargo run -p moe-core --release{features} --bin moe_bench -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        )
    };
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

fn render(r: &Report) -> String {
    let t = &r.environment.target;
    let mut s = format!(
        "moe_bench on {t} · candle {} · {}\ncommand: {}\n\n",
        r.environment.candle_version, r.environment.os, r.command
    );
    s.push_str(&table(&r.columns, &r.rows, false));
    s.push_str("\nwhere the time goes at the largest T (route: router, softmax, top-K and the host read or device mask; backward = fwd+bwd − fwd):\n");
    s.push_str(&table(&r.phase_columns, &r.phases, false));
    if !r.anchors.is_empty() {
        s.push_str("\ncandle-nn's fused moe::moe_gemm (inference, as candle-transformers' FusedMoe drives it) on the same weights:\n");
        s.push_str(&table(&r.anchor_columns, &r.anchors, false));
    }
    if !r.calls.is_empty() {
        s.push_str("\ncalls of one pass, counted by tools/cuda-launch-count (candle's own kernels; each cuBLAS call launches kernels of its own, not counted):\n");
        s.push_str(&table(&r.call_columns, &r.calls, false));
    }
    s.push('\n');
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for c in &r.targets {
        s.push_str(&format!(
            "target: {} — {} — {}\n",
            c.target,
            c.measured,
            if c.met { "met" } else { "MISSED" }
        ));
    }
    s
}

/// fwd+bwd ms vs D at the largest T, one line per strategy and dtype.
fn plot(r: &Report) -> Option<String> {
    let t_max = r
        .records
        .iter()
        .filter_map(|x| x.config["tokens"].as_u64())
        .max()?;
    let mut series: Vec<Series> = Vec::new();
    for rec in r
        .records
        .iter()
        .filter(|x| x.config["tokens"].as_u64() == Some(t_max) && x.config["pass"] == "fwd+bwd")
    {
        let Some(stats) = &rec.stats else { continue };
        let label = format!(
            "{} {}",
            rec.config["strategy"].as_str()?,
            rec.config["dtype"].as_str()?
        );
        let p = (rec.config["d"].as_f64()?, stats.median_ms);
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(p),
            None => series.push(Series {
                label,
                points: vec![p],
            }),
        }
    }
    line_chart_svg(
        &format!(
            "moe_bench fwd+bwd, T = {t_max}, on {:#}",
            r.environment.target
        ),
        "model width D",
        "median ms",
        &series,
    )
    .ok()
}
