//! `repro coverage`: reports/COVERAGE.md, which candle items the sweep and the suite check
//! (the logic is in `crate::coverage`).

use crate::error::Outcome;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CoverageArgs {
    /// Folder for COVERAGE.md.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,
}

pub fn coverage(a: CoverageArgs) -> Outcome {
    let p = crate::coverage::run_command(&a.report_dir)?;
    println!("wrote {}", p.display());
    Ok(0)
}
