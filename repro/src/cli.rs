//! The command line every case binary shares: pick a device, run the case, print text, JSON or
//! issue Markdown, optionally write reports, and exit with the verdict's code. The suite runner's
//! child processes go through the same `execute`.

use crate::error::Error;
use clap::Parser;
use harness::report;
use harness::{run_case, Case, Verdict, DEVICE_ENV};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use crate::error::EXIT_USAGE;

#[derive(Parser, Debug)]
#[command(
    about = "Runs one case on the reference CPU, the target device and a plain-Rust oracle, and prints the verdict."
)]
pub struct Args {
    #[command(flatten)]
    pub out: OutputArgs,
    /// Run only the variants whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub variant: Option<String>,
}

/// The flags every binary shares: device and output.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Target device: auto (Metal, then CUDA, then CPU), cpu, cuda[:N] or metal[:N].
    #[arg(long, env = DEVICE_ENV, default_value = "auto")]
    pub device: String,
    /// Print the report as JSON instead of text.
    #[arg(long, conflicts_with = "issue")]
    pub json: bool,
    /// Print Markdown ready to paste into an upstream issue.
    #[arg(long)]
    pub issue: bool,
    /// Also write <DIR>/<backend>/<name>.{txt,json,md} (and .svg where a curve says more), each
    /// file atomically.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Issue,
    /// Print nothing (the suite runner reads the written reports).
    Quiet,
}

/// One `error: ...` line and exit code 2: for the binaries' own checks of their input.
pub fn usage_exit(e: impl std::fmt::Display) -> ExitCode {
    harness::cli::fail(EXIT_USAGE, e)
}

/// Parses and opens a device spec, or says in one line why not (`harness::cli`, typed).
pub fn open_device(spec: &str) -> Result<candle_core::Device, Error> {
    harness::cli::open_device(spec).map_err(Error::BadInput)
}

/// `harness::cli::check_report_dir`, typed: an unwritable report folder is bad input.
pub fn check_report_dir(dir: &Path, backend: &str) -> Result<(), Error> {
    harness::cli::check_report_dir(dir, backend).map_err(Error::BadInput)
}

/// The cargo command that reproduces this run of binary `bin`, for report headers.
pub fn command_line(bin: &str) -> String {
    cargo_command(Some(bin))
}

/// The same for the `repro` runner itself (the package's default binary).
pub fn this_command() -> String {
    cargo_command(None)
}

fn cargo_command(bin: Option<&str>) -> String {
    let features = if cfg!(feature = "cuda") {
        " --features cuda"
    } else {
        ""
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = format!("cargo run -p repro --release{features}");
    if let Some(bin) = bin {
        cmd.push_str(&format!(" --bin {bin}"));
    }
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    if let Ok(d) = std::env::var(DEVICE_ENV) {
        if !args.iter().any(|a| a.starts_with("--device")) {
            cmd = format!("{DEVICE_ENV}={d} {cmd}");
        }
    }
    cmd
}

/// Runs `case` on `device`, writes reports if asked, prints in `format`, returns the verdict.
pub fn execute(
    case: &Case,
    device: &candle_core::Device,
    command: &str,
    variant: Option<&str>,
    report_dir: Option<&Path>,
    format: Format,
) -> Result<Verdict, Error> {
    if let Some(f) = variant {
        if !(case.variants)().iter().any(|v| v.name.contains(f)) {
            return Err(Error::BadInput(format!(
                "no variant of {} matches `{f}` (names look like those in reports/)",
                case.name
            )));
        }
    }
    if let Some(dir) = report_dir {
        check_report_dir(dir, harness::device::backend_name(device))?;
    }
    let result = run_case(case, device, command, variant);
    if let Some(dir) = report_dir {
        let paths = report::write_reports(dir, &result, case.snippet).map_err(|e| {
            Error::input(format!("cannot write reports under {}: {e}", dir.display()))
        })?;
        if format != Format::Quiet {
            for p in paths {
                eprintln!("wrote {}", p.display());
            }
        }
    }
    let out = match format {
        Format::Text => report::text(&result),
        Format::Json => report::json(&result),
        Format::Issue => report::issue_markdown(&result, case.snippet),
        Format::Quiet => String::new(),
    };
    print!("{out}");
    Ok(result.verdict)
}

/// The whole of a case binary's `main`.
pub fn main_for(case: &Case) -> ExitCode {
    let Args { out: args, variant } = Args::parse();
    let device = match open_device(&args.device) {
        Ok(d) => d,
        Err(e) => return usage_exit(e),
    };
    let format = match (args.json, args.issue) {
        (true, _) => Format::Json,
        (_, true) => Format::Issue,
        _ => Format::Text,
    };
    match execute(
        case,
        &device,
        &command_line(case.name),
        variant.as_deref(),
        args.report_dir.as_deref(),
        format,
    ) {
        Ok(v) => ExitCode::from(v.exit_code()),
        Err(e) => usage_exit(e),
    }
}
