//! `moe_bench`: every dispatch strategy of the MoE block, forward and forward+backward, against
//! the mixtral.rs-style `host-topk` baseline and against a dense SwiGLU FFN over the active FLOPs
//! (hidden K·F on the same tokens), all measured in the same run.
//!
//!     cargo run -p moe-core --release --features cuda --bin moe_bench -- --device cuda --dtypes f32,bf16

mod bench;
mod counter;
mod findings;
#[cfg(feature = "cuda")]
mod fused_anchor;
mod measure;
mod pool;
mod report;
mod tables;

use bench::bench;
use candle_core::DType;
use clap::Parser;
use counter::find_counter;
use report::{plot, plot_json, render};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Redraw the chart of a written report (`moe_bench.json`) into `moe_bench.svg` beside it,
    /// measuring nothing.
    #[arg(long, value_name = "JSON")]
    replot: Option<PathBuf>,
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        _ => Err(format!("unknown dtype `{s}`: expected f32, f16 or bf16")),
    }
}

/// Exit code for bad input, as in every binary of the workspace.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let usage = |m: String| harness::cli::fail(EXIT_USAGE, m);
    if let Some(json) = &args.replot {
        return replot(json);
    }
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

/// `--replot`: the chart of a written report, redrawn beside it.
fn replot(json: &std::path::Path) -> ExitCode {
    let fail = |m: String| harness::cli::fail(EXIT_USAGE, m);
    let text = match std::fs::read_to_string(json) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", json.display())),
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(format!("{}: not a moe_bench report: {e}", json.display())),
    };
    let Some(svg) = plot_json(&value) else {
        return fail(format!("{}: no fwd+bwd records to plot", json.display()));
    };
    let path = json.with_extension("svg");
    match harness::report::write_atomic(&path, &svg) {
        Ok(()) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", path.display())),
    }
}
