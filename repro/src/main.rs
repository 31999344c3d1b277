//! `repro`: the suite runner. `repro run` runs every case (or those named), each in its own
//! process, checks the verdicts against `repro/expected.toml`, and writes `reports/<backend>/`.

use clap::{Parser, Subcommand};
use harness::DEVICE_ENV;
use repro::cli::{self, usage_exit, Format};
use repro::error::Error;
use repro::manifest::{self, Manifest};
use repro::runner::{self, SuiteConfig, CHILD};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when a verdict differs from the manifest (or a case without an entry died).
const EXIT_CHANGED: u8 = 3;

#[derive(Parser)]
#[command(
    about = "Runs the candle backend repro suite and compares the verdicts with the expected-status manifest."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the cases.
    List,
    /// Run cases (all when none is named), each in its own process.
    Run {
        /// Case names (see `repro list`).
        cases: Vec<String>,
        /// Target device: auto (Metal, then CUDA, then CPU), cpu, cuda[:N] or metal[:N].
        #[arg(long, env = DEVICE_ENV, default_value = "auto")]
        device: String,
        /// Seconds a case may run before it is killed and reported as hung.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
        /// Where reports go: <DIR>/<backend>/<case>.{txt,json,md} and suite.{txt,json}.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        report_dir: PathBuf,
        /// The expected-status manifest.
        #[arg(long, value_name = "FILE", default_value = manifest::DEFAULT_PATH)]
        manifest: PathBuf,
        /// Print the suite result as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write matrix.{md,json} from the suite runs of several candle versions (scripts/matrix.sh).
    MatrixReport {
        /// Folder for matrix.md and matrix.json.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// The root causes whose ids the report folds into one row each.
        #[arg(long, default_value = "repro/root-causes.toml")]
        root_causes: PathBuf,
        /// VERSION=REPORT_DIR, oldest version first.
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Op-consistency sweep: every covered op × dtype × input layout, forward and backward, on
    /// the target, the CPU and the plain-Rust oracle; divergences shrunk to standalone repros.
    Sweep {
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
        #[arg(long, default_value_t = repro::sweep::DEFAULT_SEED)]
        seed: u64,
        /// Random cells (random sizes and layouts) per op × dtype × variant, on top of the
        /// systematic ones; raise for a deeper run.
        #[arg(long, default_value_t = repro::sweep::DEFAULT_CASES as u64, value_parser = clap::value_parser!(u64).range(0..=10_000))]
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
        #[arg(long, value_name = "FILE", default_value = repro::sweep::known::DEFAULT_PATH)]
        manifest: PathBuf,
        /// Rewrite the manifest from this run (review the diff).
        #[arg(long)]
        bless: bool,
    },
    /// Everything on one device: the suite, the sweep, the performance repros and moe_bench,
    /// then STATUS.md and a summary of what changed and what to commit.
    Collect {
        /// Target device: auto (Metal, then CUDA, then CPU), cpu, cuda[:N] or metal[:N].
        #[arg(long, env = DEVICE_ENV, default_value = "auto")]
        device: String,
        #[arg(long, value_name = "DIR", default_value = "reports")]
        report_dir: PathBuf,
        /// Small sizes, few iterations: checks every step runs (figures not worth committing).
        #[arg(long)]
        quick: bool,
        /// Record the sweep in repro/sweep-known.toml (confirms or refutes source predictions).
        #[arg(long)]
        bless: bool,
        /// Minutes each step may take before it is killed.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1_440))]
        step_minutes: u64,
    },
    /// Write reports/STATUS.md from the manifests and the latest sweep reports.
    Status {
        #[arg(long, value_name = "DIR", default_value = "reports")]
        report_dir: PathBuf,
    },
    /// Write one upstream text per root cause (<DIR>/upstream/<root-cause>.md and README.md)
    /// and its repro (repro/upstream-repros/src/bin/<root-cause>.rs) from the observed runs.
    Upstream {
        #[arg(long, value_name = "DIR", default_value = "reports")]
        report_dir: PathBuf,
        /// Folder for the texts (default: <DIR>/upstream).
        #[arg(long, value_name = "OUT")]
        out: Option<PathBuf>,
        #[arg(long, value_name = "BIN_DIR", default_value = repro::upstream::REPRO_DIR)]
        repro_dir: PathBuf,
    },
    /// Internal: run sweep cells of one op in this process (used by `sweep`).
    #[command(name = repro::sweep::CHILD, hide = true)]
    SweepChild {
        #[arg(long)]
        op: String,
        #[arg(long)]
        device: String,
        #[arg(long, default_value_t = repro::sweep::DEFAULT_SEED)]
        seed: u64,
        #[arg(long, default_value_t = repro::sweep::DEFAULT_CASES)]
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
    },
    /// Internal: run one case in this process (used by `run`).
    #[command(name = CHILD, hide = true)]
    Child {
        case: String,
        #[arg(long)]
        device: String,
        #[arg(long)]
        staging: PathBuf,
        #[arg(long)]
        command: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::List => {
            for c in repro::cases::available() {
                println!("{:<28} {}", c.name, c.title);
            }
            ExitCode::SUCCESS
        }
        Cmd::Child {
            case,
            device,
            staging,
            command,
        } => {
            let Some(case) = repro::cases::find(&case) else {
                return usage_exit(format!("unknown case `{case}`"));
            };
            let device = match cli::open_device(&device) {
                Ok(d) => d,
                Err(e) => return usage_exit(e),
            };
            match cli::execute(case, &device, &command, None, Some(&staging), Format::Quiet) {
                Ok(v) => ExitCode::from(v.exit_code()),
                Err(e) => usage_exit(e),
            }
        }
        Cmd::MatrixReport {
            out,
            root_causes,
            runs,
        } => {
            let mut parsed = Vec::new();
            for r in &runs {
                match r.split_once('=') {
                    Some((v, d)) if !v.is_empty() && !d.is_empty() => {
                        parsed.push((v.to_string(), PathBuf::from(d)))
                    }
                    _ => return usage_exit(format!("expected VERSION=REPORT_DIR, got `{r}`")),
                }
            }
            match repro::matrix::write(&out, &parsed, &root_causes) {
                Ok(paths) => {
                    for p in paths {
                        println!("wrote {}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => repro::error::exit(e),
            }
        }
        Cmd::Sweep {
            device,
            ops,
            list,
            seed,
            cases,
            budget,
            cell_timeout,
            partial,
            jobs,
            shrink_trials,
            report_dir,
            repro_dir,
            manifest,
            bless,
        } => {
            if list {
                for op in repro::sweep::ops::OPS {
                    let n = repro::sweep::plan(op, seed, cases as usize).len();
                    println!("{:<18} {:>5} cells  {}", op.name, n, op.call);
                }
                return ExitCode::SUCCESS;
            }
            let picked = if ops.is_empty() {
                repro::sweep::ops::OPS.iter().collect()
            } else {
                let mut v = Vec::new();
                for name in &ops {
                    match repro::sweep::ops::find(name) {
                        Some(op) => v.push(op),
                        None => {
                            return usage_exit(format!(
                                "unknown op `{name}` (see `repro sweep --list`)"
                            ))
                        }
                    }
                }
                v
            };
            let opened = match cli::open_device(&device) {
                Ok(d) => d,
                Err(e) => return usage_exit(e),
            };
            let target = harness::device::describe(&opened);
            if !bless && !manifest.is_file() {
                return usage_exit(format!(
                    "no manifest at {} (pass --bless to create one from this run)",
                    manifest.display()
                ));
            }
            // A device that gets known-result ops wrong (a paravirtualised GPU returning zeros)
            // would turn every cell into a divergence: refuse to sweep it.
            let canary = harness::canary::run(&opened);
            if !canary.passed {
                eprintln!(
                    "error: the canary failed on {} ({}); no sweep result would be trustworthy",
                    target.location,
                    canary.failures.join("; ")
                );
                return ExitCode::from(harness::Verdict::Inconclusive.exit_code());
            }
            if let Err(e) = cli::check_report_dir(&report_dir.join("sweep"), &target.backend) {
                return usage_exit(e);
            }
            let config = repro::sweep::run::SweepConfig {
                ops: picked,
                device_spec: target.location.clone(),
                target,
                seed,
                random: cases as usize,
                budget: Duration::from_secs(budget),
                cell_timeout: Duration::from_secs(cell_timeout),
                partial,
                jobs: jobs
                    .map(|j| j as usize)
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                shrink_trials: shrink_trials as usize,
                report_dir: report_dir.clone(),
                repro_dir,
                manifest,
                bless,
                command: cli::this_command(),
            };
            sweep(&config)
        }
        Cmd::Collect {
            device,
            report_dir,
            quick,
            bless,
            step_minutes,
        } => {
            let opened = match cli::open_device(&device) {
                Ok(d) => d,
                Err(e) => return usage_exit(e),
            };
            let target = harness::device::describe(&opened);
            let config = repro::collect::CollectConfig {
                device: target.location.clone(),
                report_dir,
                quick,
                bless,
                step_timeout: Duration::from_secs(step_minutes * 60),
            };
            match repro::collect::collect(&config, &target.backend) {
                Ok(code) => ExitCode::from(code),
                Err(e) => usage_exit(e),
            }
        }
        Cmd::Status { report_dir } => {
            let manifest = std::path::Path::new(repro::sweep::known::DEFAULT_PATH);
            match repro::sweep::status::write_status(
                &report_dir,
                manifest,
                std::path::Path::new(manifest::DEFAULT_PATH),
            ) {
                Ok(p) => println!("wrote {}", p.display()),
                Err(e) => return repro::error::exit(e),
            }
            // ISSUES.md's root-cause table, from the same data.
            match repro::sweep::status::regenerate_issues(std::path::Path::new("."), manifest)
                .and_then(|(p, text)| {
                    harness::report::write_atomic(&p, &text)
                        .map(|_| p.clone())
                        .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))
                }) {
                Ok(p) => {
                    println!("wrote {}", p.display());
                    ExitCode::SUCCESS
                }
                Err(e) => repro::error::exit(e),
            }
        }
        Cmd::Upstream {
            report_dir,
            out,
            repro_dir,
        } => match repro::upstream::run_command(&report_dir, out.as_deref(), &repro_dir) {
            Ok(paths) => {
                println!("wrote {} files", paths.len());
                ExitCode::SUCCESS
            }
            Err(e) => usage_exit(e),
        },
        Cmd::SweepChild {
            op,
            device,
            seed,
            random,
            from,
            only,
            shrink_trials,
            shrink_job,
            known_ids,
        } => {
            let Some(op) = repro::sweep::ops::find(&op) else {
                return usage_exit(format!("unknown op `{op}`"));
            };
            let device = match cli::open_device(&device) {
                Ok(d) => d,
                Err(e) => return usage_exit(e),
            };
            let cpu = candle_core::Device::Cpu;
            let mut backends = vec![("cpu".to_string(), &cpu)];
            if !device.is_cpu() {
                backends.push((harness::device::backend_name(&device).to_string(), &device));
            }
            if let Some(path) = shrink_job {
                let job = std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
                match job {
                    Ok(job) => repro::sweep::shrink_main(op, job, &backends, shrink_trials),
                    Err(e) => return usage_exit(format!("shrink job {}: {e}", path.display())),
                }
            } else {
                let known = match known_ids.map(|p| {
                    std::fs::read_to_string(&p)
                        .map_err(|e| e.to_string())
                        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                }) {
                    None => Default::default(),
                    Some(Ok(k)) => k,
                    Some(Err(e)) => return usage_exit(format!("--known-ids: {e}")),
                };
                let job = repro::sweep::ChildJob {
                    seed,
                    random,
                    from,
                    only,
                    shrink_trials,
                    known,
                };
                repro::sweep::child_main(op, job, &backends);
            }
            ExitCode::SUCCESS
        }
        Cmd::Run {
            cases,
            device,
            timeout,
            report_dir,
            manifest,
            json,
        } => run(cases, device, timeout, report_dir, manifest, json),
    }
}

fn sweep(config: &repro::sweep::run::SweepConfig) -> ExitCode {
    // A manifest that does not parse is a usage error, found before any cell runs.
    if let Err(e) = repro::sweep::known::KnownSet::load(&config.manifest) {
        return usage_exit(e);
    }
    let report = match repro::sweep::run::run_sweep(config) {
        Ok(r) => r,
        Err(e) => return usage_exit(e),
    };
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
    match repro::sweep::run::write_outputs(config, &report) {
        Ok(paths) => println!(
            "wrote {} files under {}",
            paths.len(),
            config.report_dir.display()
        ),
        Err(e) => {
            eprintln!("error: writing reports: {e}");
            return ExitCode::from(1);
        }
    }
    // A manifest blessed from a sweep that skipped ops would forget their divergences.
    let blessable = incomplete.is_empty();
    if config.bless && !blessable {
        eprintln!("error: not blessed: the manifest is only rewritten from a sweep that finished every op");
    }
    if config.bless && blessable {
        match repro::sweep::run::bless(config, &report) {
            Ok(paths) => println!(
                "blessed: wrote {} files ({})",
                paths.len(),
                config.manifest.display()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Err(e) = refresh_checkout_pages(&config.report_dir) {
        return repro::error::exit(e);
    }
    if (config.bless && blessable) || report.as_expected() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHANGED)
    }
}

fn run(
    names: Vec<String>,
    device_spec: String,
    timeout: u64,
    report_dir: PathBuf,
    manifest_path: PathBuf,
    json: bool,
) -> ExitCode {
    // Everything that can be wrong with the input is checked before the first case runs.
    let available = repro::cases::available();
    let cases = if names.is_empty() {
        repro::cases::all()
    } else {
        let mut picked = Vec::new();
        for n in &names {
            match repro::cases::find(n) {
                Some(c) => picked.push(c),
                None => {
                    let known: Vec<&str> = available.iter().map(|c| c.name).collect();
                    return usage_exit(format!("unknown case `{n}` (known: {})", known.join(", ")));
                }
            }
        }
        picked
    };
    // Opened here only to check it and describe it; the children open their own.
    let target = match cli::open_device(&device_spec) {
        Ok(device) => harness::device::describe(&device),
        Err(e) => return usage_exit(e),
    };
    let known: Vec<&str> = repro::cases::all().iter().map(|c| c.name).collect();
    let manifest = match Manifest::load(&manifest_path, &known) {
        Ok(m) => m,
        Err(e) => return usage_exit(e),
    };
    if let Err(e) = cli::check_report_dir(&report_dir, &target.backend) {
        return usage_exit(e);
    }
    let config = SuiteConfig {
        cases,
        // Children get the resolved device, so `auto` cannot pick differently in a child.
        device_spec: target.location.clone(),
        target,
        timeout: Duration::from_secs(timeout),
        report_dir,
        command: cli::this_command(),
        manifest: &manifest,
    };
    let suite = match runner::run_suite(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&suite).unwrap());
    } else {
        print!("{}", suite.table());
    }
    if let Err(e) = refresh_checkout_pages(&config.report_dir) {
        return repro::error::exit(e);
    }
    if suite.as_expected() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHANGED)
    }
}

/// The checkout's generated pages — STATUS.md, ISSUES.md's root-cause table and the upstream
/// texts — are made from the reports; a run that writes into the checkout's `reports/`
/// regenerates them, so the tests that compare them with their data stay true. Runs elsewhere
/// (another report folder, or outside a checkout) leave them alone.
fn refresh_checkout_pages(report_dir: &std::path::Path) -> Result<(), Error> {
    let suite_manifest = std::path::Path::new(manifest::DEFAULT_PATH);
    if !suite_manifest.is_file() || report_dir != std::path::Path::new("reports") {
        return Ok(());
    }
    let sweep_manifest = std::path::Path::new(repro::sweep::known::DEFAULT_PATH);
    let p = repro::sweep::status::write_status(report_dir, sweep_manifest, suite_manifest)?;
    println!("wrote {}", p.display());
    let (p, text) =
        repro::sweep::status::regenerate_issues(std::path::Path::new("."), sweep_manifest)?;
    harness::report::write_atomic(&p, &text)
        .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
    let written = repro::upstream::run_command(
        report_dir,
        None,
        std::path::Path::new(repro::upstream::REPRO_DIR),
    )
    .map_err(Error::Internal)?;
    println!("wrote ISSUES.md and {} upstream files", written.len());
    Ok(())
}
