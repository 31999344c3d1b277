//! `repro list`, `repro run` and the hidden per-case child that `run` starts.

use super::EXIT_CHANGED;
use crate::cli::{self, Format};
use crate::error::{Error, Outcome};
use crate::manifest::{self, Manifest};
use crate::runner::{self, SuiteConfig};
use crate::sweep::report::SweepReport;
use harness::DEVICE_ENV;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RunArgs {
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
    /// Run the cases only. Without it, and without case names, the op-consistency sweep runs
    /// after the cases on the same device (`repro sweep`'s defaults), and the run ends with the
    /// root causes it showed.
    #[arg(long)]
    suite_only: bool,
}

#[derive(clap::Args)]
pub struct ChildArgs {
    case: String,
    #[arg(long)]
    device: String,
    #[arg(long)]
    staging: PathBuf,
    #[arg(long)]
    command: String,
}

pub fn list() -> Outcome {
    for c in crate::cases::available() {
        println!("{:<28} {}", c.name, c.title);
    }
    Ok(0)
}

/// One case in this process, its reports staged for the parent; exits with the verdict's code.
pub fn child(a: ChildArgs) -> Outcome {
    crate::child::exit_with_parent();
    let case = crate::cases::find(&a.case)
        .ok_or_else(|| Error::input(format!("unknown case `{}`", a.case)))?;
    let device = cli::open_device(&a.device)?;
    let verdict = cli::execute(
        case,
        &device,
        &a.command,
        None,
        Some(&a.staging),
        Format::Quiet,
    )?;
    Ok(verdict.exit_code())
}

pub fn run(a: RunArgs) -> Outcome {
    // Everything that can be wrong with the input is checked before the first case runs.
    let available = crate::cases::available();
    let cases = if a.cases.is_empty() {
        crate::cases::all()
    } else {
        let mut picked = Vec::new();
        for n in &a.cases {
            match crate::cases::find(n) {
                Some(c) => picked.push(c),
                None => {
                    let known: Vec<&str> = available.iter().map(|c| c.name).collect();
                    return Err(Error::input(format!(
                        "unknown case `{n}` (known: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        picked
    };
    // Opened here only to check it and describe it; the children open their own.
    let target = harness::device::describe(&cli::open_device(&a.device)?);
    let known: Vec<&str> = crate::cases::all().iter().map(|c| c.name).collect();
    let manifest = Manifest::load(&a.manifest, &known)?;
    cli::check_report_dir(&a.report_dir, &target.backend)?;
    let config = SuiteConfig {
        cases,
        // Children get the resolved device, so `auto` cannot pick differently in a child.
        device_spec: target.location.clone(),
        target,
        timeout: Duration::from_secs(a.timeout),
        report_dir: a.report_dir,
        command: cli::this_command(),
        manifest: &manifest,
    };
    let suite = runner::run_suite(&config).map_err(|e| Error::internal(e.to_string()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&suite).unwrap());
    } else {
        print!("{}", suite.table());
    }
    let mut code = if suite.as_expected() { 0 } else { EXIT_CHANGED };
    if a.cases.is_empty() && !a.suite_only && !a.json {
        code = code.max(sweep_and_summarise(&config, &suite)?);
    } else {
        super::pages::refresh_checkout_pages(&config.report_dir)?;
    }
    Ok(code)
}

/// The sweep on the suite's device with `repro sweep`'s defaults, then the root causes this
/// run showed, read back from the reports both wrote.
fn sweep_and_summarise(config: &SuiteConfig, suite: &runner::SuiteReport) -> Outcome {
    println!();
    let code = super::sweep::sweep_with_defaults(&config.device_spec, &config.report_dir)?;
    let backend = &config.target.backend;
    let p = config
        .report_dir
        .join("sweep")
        .join(backend)
        .join("sweep.json");
    // A sweep that refused the device (a failed canary) wrote no report: the summary then
    // rests on the suite alone.
    let sweep = if code == harness::Verdict::Inconclusive.exit_code() {
        None
    } else {
        Some(SweepReport::read(&p).map_err(Error::internal)?)
    };
    let causes = crate::sweep::known::load_root_causes(std::path::Path::new(crate::bugs::DIR))?;
    print!(
        "{}",
        crate::findings::summary(backend, sweep.as_ref(), suite, &causes)
    );
    Ok(code)
}
