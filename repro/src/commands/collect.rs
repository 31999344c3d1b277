//! `repro collect`: everything on one device (see `crate::collect`).

use crate::cli;
use crate::collect::CollectConfig;
use crate::error::Outcome;
use harness::DEVICE_ENV;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct CollectArgs {
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
}

pub fn collect(a: CollectArgs) -> Outcome {
    let target = harness::device::describe(&cli::open_device(&a.device)?);
    let config = CollectConfig {
        device: target.location.clone(),
        report_dir: a.report_dir,
        quick: a.quick,
        bless: a.bless,
        step_timeout: Duration::from_secs(a.step_minutes * 60),
    };
    crate::collect::collect(&config, &target.backend)
}
