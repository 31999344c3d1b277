//! The generated pages: `repro status` (STATUS.md and ISSUES.md's root-cause table), `repro
//! upstream` (one text per root cause) and `repro matrix-report` (the version matrix); and
//! their refresh after a run that writes the checkout's `reports/`.

use crate::error::{Error, Outcome};
use crate::sweep::{known, status};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct UpstreamArgs {
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,
    /// Folder for the texts (default: <DIR>/upstream).
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    #[arg(long, value_name = "BIN_DIR", default_value = crate::upstream::REPRO_DIR)]
    repro_dir: PathBuf,
    /// While writing a bug file: every text as it would be, into DRAFT/texts and DRAFT/bin, even
    /// when some fail the checks (printed); never touches the committed folders.
    #[arg(long, value_name = "DRAFT", conflicts_with_all = ["out"])]
    draft: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MatrixReportArgs {
    /// Folder for matrix.md and matrix.json.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// The root causes whose ids the report folds into one row each.
    #[arg(long, default_value = crate::bugs::DIR)]
    root_causes: PathBuf,
    /// Fold the root-cause rows of the existing OUT/matrix.json again from its cells with the
    /// current bug files (after a merge or split of root causes); no runs needed.
    #[arg(long, conflicts_with = "runs")]
    refold: bool,
    /// VERSION=REPORT_DIR, oldest version first.
    #[arg(required_unless_present = "refold")]
    runs: Vec<String>,
}

pub fn status(a: StatusArgs) -> Outcome {
    let manifest = Path::new(known::DEFAULT_PATH);
    let p = status::write_status(
        &a.report_dir,
        manifest,
        Path::new(crate::manifest::DEFAULT_PATH),
    )?;
    println!("wrote {}", p.display());
    // ISSUES.md's root-cause table, from the same data.
    println!("wrote {}", issues_table(manifest)?.display());
    Ok(0)
}

fn issues_table(sweep_manifest: &Path) -> Result<PathBuf, Error> {
    let (p, text) = status::regenerate_issues(Path::new("."), sweep_manifest)?;
    harness::report::write_atomic(&p, &text).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

pub fn upstream(a: UpstreamArgs) -> Outcome {
    if let Some(d) = &a.draft {
        let paths = crate::upstream::draft(&a.report_dir, d)?;
        println!("wrote {} draft files under {}", paths.len(), d.display());
        return Ok(0);
    }
    let paths = crate::upstream::run_command(&a.report_dir, a.out.as_deref(), &a.repro_dir)?;
    println!("wrote {} files", paths.len());
    Ok(0)
}

pub fn matrix_report(a: MatrixReportArgs) -> Outcome {
    if a.refold {
        for p in crate::matrix::refold(&a.out, &a.root_causes)? {
            println!("wrote {}", p.display());
        }
        return Ok(0);
    }
    let mut parsed = Vec::new();
    for r in &a.runs {
        match r.split_once('=') {
            Some((v, d)) if !v.is_empty() && !d.is_empty() => {
                parsed.push((v.to_string(), PathBuf::from(d)))
            }
            _ => {
                return Err(Error::input(format!(
                    "expected VERSION=REPORT_DIR, got `{r}`"
                )))
            }
        }
    }
    for p in crate::matrix::write(&a.out, &parsed, &a.root_causes)? {
        println!("wrote {}", p.display());
    }
    Ok(0)
}

/// The checkout's generated pages — STATUS.md, ISSUES.md's root-cause table and the upstream
/// texts — are made from the reports; a run that writes into the checkout's `reports/`
/// regenerates them, so the tests that compare them with their data stay true. Runs elsewhere
/// (another report folder, or outside a checkout) leave them alone.
pub fn refresh_checkout_pages(report_dir: &Path) -> Result<(), Error> {
    let suite_manifest = Path::new(crate::manifest::DEFAULT_PATH);
    if !suite_manifest.is_file() || report_dir != Path::new("reports") {
        return Ok(());
    }
    let sweep_manifest = Path::new(known::DEFAULT_PATH);
    let p = status::write_status(report_dir, sweep_manifest, suite_manifest)?;
    println!("wrote {}", p.display());
    issues_table(sweep_manifest)?;
    let written =
        crate::upstream::run_command(report_dir, None, Path::new(crate::upstream::REPRO_DIR))?;
    println!("wrote ISSUES.md and {} upstream files", written.len());
    Ok(())
}
