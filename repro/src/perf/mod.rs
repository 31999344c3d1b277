//! The performance repros (field notes items 3 and 4, and the upstream argsort width limits).
//! Each measures on the device at hand with `harness::timing`, computes its verdict from its own
//! numbers, and renders through `harness::bench`.

pub use crate::cli::OutputArgs;
use harness::case::SnippetRun;

/// A performance repro: its binary's name, its standalone snippet and how the snippets test
/// treats that snippet.
pub struct Perf {
    pub name: &'static str,
    pub snippet: &'static str,
    pub snippet_run: SnippetRun,
}

impl Perf {
    /// A repro whose snippet prints timings: compiled by every build, never run by the snippets
    /// test.
    pub const fn prints_timings(name: &'static str, snippet: &'static str) -> Self {
        Perf {
            name,
            snippet,
            snippet_run: PRINTS_TIMINGS,
        }
    }
}

/// `perf_repros!(a, b)`: `pub mod a; pub mod b;` and `ALL` = `[a::PERF, b::PERF]`, so a new
/// performance repro is one line here (and its file, its snippet and a one-line bin).
macro_rules! perf_repros {
    ($($perf:ident),* $(,)?) => {
        $(pub mod $perf;)*

        /// Every performance repro, in the order `repro collect` runs them.
        pub static ALL: &[Perf] = &[$($perf::PERF),*];
    };
}

perf_repros!(
    fp16_cast_overhead,
    router_topk_sync,
    index_add_rows,
    argsort_wide_rows,
    cuda_pool_release,
);

/// The snippets that print timings: compiled by every build, not run by the snippets test (their
/// figures belong in reports, not snapshots).
const PRINTS_TIMINGS: SnippetRun =
    SnippetRun::CompileOnly("prints timings, which belong in reports, not snapshots");
use crate::cli::{open_device, usage_exit};
use harness::bench::{self, BenchReport};
use harness::timing::TimingConfig;
use std::process::ExitCode;
use std::time::Duration;

/// Timing flags of the repros that time something.
#[derive(clap::Args, Debug, Clone)]
pub struct TimingArgs {
    /// Timed iterations per configuration (medians need at least 20 for reported figures).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub iters: u64,
    /// Minimum warm-up per configuration, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub warmup_ms: u64,
}

impl TimingArgs {
    pub fn timing(&self) -> TimingConfig {
        TimingConfig {
            iters: self.iters as usize,
            warmup_iters: 3,
            warmup_min: Duration::from_millis(self.warmup_ms),
        }
    }
}

/// `--dims 128,64,128` as the sorted, deduplicated list the repro measures.
pub fn sorted_unique(values: &[u64]) -> Vec<usize> {
    let mut v: Vec<usize> = values.iter().map(|&x| x as usize).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The cargo command that reproduces this run.
pub fn command_line(bin: &str) -> String {
    crate::cli::command_line(bin)
}

/// `perf_main!(index_add_rows)` is the `main` of a timed performance repro's binary: it parses
/// the module's `Args`, checks them with the module's `validate` when one is named
/// (`perf_main!(router_topk_sync, validate)`), and hands the `--iters`/`--warmup-ms` timing, the
/// module's `run` and its `plot` to [`main_for`].
#[macro_export]
macro_rules! perf_main {
    ($bench:ident $(, $validate:ident)?) => {
        fn main() -> ::std::process::ExitCode {
            use ::clap::Parser as _;
            use $crate::perf::{self, $bench as bench};
            let args = bench::Args::parse();
            $(
                if let Err(e) = bench::$validate(&args) {
                    return $crate::cli::usage_exit(e);
                }
            )?
            let command = perf::command_line(bench::NAME);
            perf::main_for(
                &args.out,
                args.timing.timing(),
                bench::SNIPPET,
                |device, timing| bench::run(&args, device, timing, &command),
                bench::plot,
            )
        }
    };
}

/// Opens the device, runs the bench, writes/prints its report, exits with the verdict's code.
/// `plot` renders the SVG for `--report-dir` (None when the bench has no curve).
pub fn main_for(
    args: &OutputArgs,
    timing: TimingConfig,
    snippet: &str,
    run: impl FnOnce(&candle_core::Device, &TimingConfig) -> anyhow::Result<BenchReport>,
    plot: impl Fn(&BenchReport) -> Option<(String, String)>,
) -> ExitCode {
    let device = match open_device(&args.device) {
        Ok(d) => d,
        Err(e) => return usage_exit(e),
    };
    if let Some(dir) = &args.report_dir {
        if let Err(e) = crate::cli::check_report_dir(dir, harness::device::backend_name(&device)) {
            return usage_exit(e);
        }
    }
    let report = match run(&device, &timing) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    if let Some(dir) = &args.report_dir {
        let folder = dir.join(&report.environment.target.backend);
        let written = bench::write_reports(dir, &report, snippet)
            .map_err(|e| e.to_string())
            .and_then(|paths| match plot(&report) {
                Some((name, svg)) => {
                    let p = folder.join(name);
                    harness::report::write_atomic(&p, &svg).map_err(|e| e.to_string())?;
                    Ok(paths.into_iter().chain([p]).collect::<Vec<_>>())
                }
                None => Ok(paths),
            });
        match written {
            Ok(paths) => paths
                .iter()
                .for_each(|p| eprintln!("wrote {}", p.display())),
            Err(e) => {
                return usage_exit(format!("cannot write reports under {}: {e}", dir.display()))
            }
        }
    }
    let out = if args.json {
        bench::json(&report)
    } else if args.issue {
        bench::issue_markdown(&report, snippet)
    } else {
        bench::text(&report)
    };
    print!("{out}");
    ExitCode::from(report.verdict.exit_code())
}

/// `1.234` with three decimals, for table cells.
pub fn ms(x: f64) -> String {
    format!("{x:.3}")
}

/// `0.87×`.
pub fn times(x: f64) -> String {
    format!("{x:.2}×")
}

/// JSON object from pairs, for `BenchRecord::config` / `counts`.
pub fn obj(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
