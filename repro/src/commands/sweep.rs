//! `repro sweep` and the hidden per-op child that it starts.

use super::EXIT_CHANGED;
use crate::cli;
use crate::error::{Error, Outcome};
use crate::sweep::run::SweepConfig;
use crate::sweep::{self as sw, known, ops};
use harness::DEVICE_ENV;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Target device: auto (Metal, then CUDA, then CPU), cpu, cuda[:N] or metal[:N].
    #[arg(long, env = DEVICE_ENV, default_value = "auto")]
    device: String,
    /// Only these ops (comma-separated; see `repro sweep --list`).
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// List the ops and their cell counts, then exit.
    #[arg(long)]
    list: bool,
    /// Seed every cell derives from (recorded in each report).
    #[arg(long, default_value_t = sw::DEFAULT_SEED)]
    seed: u64,
    /// Random cells (random sizes and layouts) per op × dtype × variant, on top of the
    /// systematic ones; raise for a deeper run.
    #[arg(long, default_value_t = sw::DEFAULT_CASES as u64, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    cases: u64,
    /// Seconds the sweep may take; an op not finished by then fails the run (exit 3)
    /// unless --partial is given.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    budget: u64,
    /// Seconds a child may stay silent (one cell with its shrink) before it is killed and
    /// the cell reported as a hang.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    cell_timeout: u64,
    /// Accept ops that did not finish (budget, a child that died or hung outside a cell):
    /// report them, but do not fail the run for them.
    #[arg(long)]
    partial: bool,
    /// Child processes run at once (default: the number of CPU cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Trials spent shrinking each new divergence.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    shrink_trials: u64,
    /// Where reports go: <DIR>/sweep/<backend>/ and <DIR>/STATUS.md.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,
    /// Where `--bless` writes the standalone repros (a crate's src/bin, so CI compiles them).
    #[arg(long, value_name = "DIR", default_value = "repro/sweep-repros/src/bin")]
    repro_dir: PathBuf,
    /// The known-divergence manifest.
    #[arg(long, value_name = "FILE", default_value = known::DEFAULT_PATH)]
    manifest: PathBuf,
    /// Rewrite the manifest from this run (review the diff).
    #[arg(long)]
    bless: bool,
}

#[derive(clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    op: String,
    #[arg(long)]
    device: String,
    #[arg(long, default_value_t = sw::DEFAULT_SEED)]
    seed: u64,
    #[arg(long, default_value_t = sw::DEFAULT_CASES)]
    random: usize,
    #[arg(long, default_value_t = 0)]
    from: usize,
    #[arg(long)]
    only: Option<usize>,
    #[arg(long, default_value_t = 60)]
    shrink_trials: usize,
    /// Continue the shrink described in this JSON file instead of running cells.
    #[arg(long)]
    shrink_job: Option<PathBuf>,
    /// Divergence ids an earlier child gave (JSON: provisional key → id).
    #[arg(long)]
    known_ids: Option<PathBuf>,
}

/// `repro sweep --device DEVICE --report-dir DIR` with every other option at its default
/// (what `repro run` runs after the cases).
pub fn sweep_with_defaults(device: &str, report_dir: &std::path::Path) -> Outcome {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: SweepArgs,
    }
    let report_dir = report_dir.to_string_lossy();
    let d = <Defaults as clap::Parser>::try_parse_from([
        "sweep",
        "--device",
        device,
        "--report-dir",
        &report_dir,
    ])
    .map_err(|e| Error::internal(e.to_string()))?;
    sweep(d.args)
}

pub fn sweep(a: SweepArgs) -> Outcome {
    if a.list {
        for op in ops::OPS {
            let n = sw::plan(op, a.seed, a.cases as usize).len();
            println!("{:<18} {:>5} cells  {}", op.name, n, op.call);
        }
        return Ok(0);
    }
    let picked = if a.ops.is_empty() {
        ops::OPS.iter().collect()
    } else {
        let mut v = Vec::new();
        for name in &a.ops {
            v.push(ops::find(name).ok_or_else(|| {
                Error::input(format!("unknown op `{name}` (see `repro sweep --list`)"))
            })?);
        }
        v
    };
    let opened = cli::open_device(&a.device)?;
    let target = harness::device::describe(&opened);
    if !a.bless && !a.manifest.is_file() {
        return Err(Error::input(format!(
            "no manifest at {} (pass --bless to create one from this run)",
            a.manifest.display()
        )));
    }
    // A device that gets known-result ops wrong (a paravirtualised GPU returning zeros) would
    // turn every cell into a divergence: refuse to sweep it.
    let canary = harness::canary::run(&opened);
    if !canary.passed {
        eprintln!(
            "error: the canary failed on {} ({}); no sweep result would be trustworthy",
            target.location,
            canary.failures.join("; ")
        );
        return Ok(harness::Verdict::Inconclusive.exit_code());
    }
    cli::check_report_dir(&a.report_dir.join("sweep"), &target.backend)?;
    // A sweep of some ops must not replace a fuller sweep's report: the pages and upstream texts
    // generated from it would lose every other op's divergences (and their repros).
    let existing = a
        .report_dir
        .join("sweep")
        .join(&target.backend)
        .join("sweep.json");
    if let Ok(prev) = crate::sweep::report::SweepReport::read(&existing) {
        let dropped = prev
            .ops
            .keys()
            .filter(|op| !picked.iter().any(|p| p.name == op.as_str()))
            .count();
        if dropped > 0 {
            return Err(Error::input(format!(
                "{} holds a sweep of {} ops and this run sweeps {}: it would drop {dropped}; pass --report-dir DIR for a partial sweep",
                existing.display(),
                prev.ops.len(),
                picked.len()
            )));
        }
    }
    let config = SweepConfig {
        ops: picked,
        device_spec: target.location.clone(),
        target,
        seed: a.seed,
        random: a.cases as usize,
        budget: Duration::from_secs(a.budget),
        cell_timeout: Duration::from_secs(a.cell_timeout),
        partial: a.partial,
        jobs: a
            .jobs
            .map(|j| j as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        shrink_trials: a.shrink_trials as usize,
        report_dir: a.report_dir,
        repro_dir: a.repro_dir,
        manifest: a.manifest,
        bless: a.bless,
        command: cli::this_command(),
    };
    run(&config)
}

fn run(config: &SweepConfig) -> Outcome {
    // A manifest that does not parse is a usage error, found before any cell runs.
    known::KnownSet::load(&config.manifest)?;
    let report = sw::run::run_sweep(config)?;
    print!("{}", report.table());
    let incomplete = report.incomplete();
    if !incomplete.is_empty() && !config.partial {
        let ops: Vec<&str> = incomplete.iter().map(|(op, _)| *op).collect();
        eprintln!(
            "error: {} of {} ops asked for did not finish ({}); see `not completed` above (--partial accepts that)",
            ops.len(),
            report.ops.len(),
            ops.join(", ")
        );
    }
    let paths = sw::run::write_outputs(config, &report)
        .map_err(|e| Error::internal(format!("writing reports: {e}")))?;
    println!(
        "wrote {} files under {}",
        paths.len(),
        config.report_dir.display()
    );
    // A manifest blessed from a sweep that skipped ops would forget their divergences.
    let blessable = incomplete.is_empty();
    if config.bless && !blessable {
        eprintln!("error: not blessed: the manifest is only rewritten from a sweep that finished every op");
    }
    if config.bless && blessable {
        let paths = sw::run::bless(config, &report)?;
        println!(
            "blessed: wrote {} files ({})",
            paths.len(),
            config.manifest.display()
        );
    }
    super::pages::refresh_checkout_pages(&config.report_dir)?;
    Ok(if (config.bless && blessable) || report.as_expected() {
        0
    } else {
        EXIT_CHANGED
    })
}

fn read_json<T: serde::de::DeserializeOwned>(p: &PathBuf) -> Result<T, String> {
    std::fs::read_to_string(p)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
}

/// The cells of one op in this process, results as JSON lines for the parent.
pub fn child(a: ChildArgs) -> Outcome {
    crate::child::exit_with_parent();
    let op = ops::find(&a.op).ok_or_else(|| Error::input(format!("unknown op `{}`", a.op)))?;
    let device = cli::open_device(&a.device)?;
    let cpu = candle_core::Device::Cpu;
    let mut backends = vec![("cpu".to_string(), &cpu)];
    if !device.is_cpu() {
        backends.push((harness::device::backend_name(&device).to_string(), &device));
    }
    if let Some(path) = a.shrink_job {
        let job = read_json(&path)
            .map_err(|e| Error::input(format!("shrink job {}: {e}", path.display())))?;
        sw::shrink_main(op, job, &backends, a.shrink_trials);
    } else {
        let known = match a.known_ids {
            None => Default::default(),
            Some(p) => read_json(&p).map_err(|e| Error::input(format!("--known-ids: {e}")))?,
        };
        let job = sw::ChildJob {
            seed: a.seed,
            random: a.random,
            from: a.from,
            only: a.only,
            shrink_trials: a.shrink_trials,
            known,
        };
        sw::child_main(op, job, &backends);
    }
    Ok(0)
}
