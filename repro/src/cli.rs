//! The command line every case binary shares: pick a device, run the case, print text, JSON or
//! issue Markdown, optionally write reports, and exit with the verdict's code.

use clap::Parser;
use harness::report;
use harness::{run_case, Case, DeviceSpec, DEVICE_ENV};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for bad input (unknown device, backend not compiled in, bad flags).
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    about = "Runs one case on the reference CPU, the target device and a plain-Rust oracle, and prints the verdict."
)]
pub struct Args {
    /// Target device: auto (Metal, then CUDA, then CPU), cpu, cuda[:N] or metal[:N].
    #[arg(long, env = DEVICE_ENV, default_value = "auto")]
    pub device: String,
    /// Print the report as JSON instead of text.
    #[arg(long, conflicts_with = "issue")]
    pub json: bool,
    /// Print Markdown ready to paste into an upstream issue.
    #[arg(long)]
    pub issue: bool,
    /// Also write <DIR>/<backend>/<case>.{txt,json,md} (each file atomically).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Run only the variants whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub variant: Option<String>,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// The cargo command that reproduces this run, for report headers.
fn command_line(case: &Case) -> String {
    let features = if cfg!(feature = "cuda") {
        " --features cuda"
    } else {
        ""
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = format!("cargo run -p repro --release{features} --bin {}", case.name);
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

/// The whole of a case binary's `main`.
pub fn main_for(case: &Case) -> ExitCode {
    let args = Args::parse();
    let spec: DeviceSpec = match args.device.parse() {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let device = match harness::device::open(spec) {
        Ok(d) => d,
        Err(e) => return usage_error(e),
    };
    if let Some(f) = &args.variant {
        if !(case.variants)()
            .iter()
            .any(|v| v.name.contains(f.as_str()))
        {
            return usage_error(format!(
                "no variant of {} matches `{f}` (names look like those in reports/)",
                case.name
            ));
        }
    }
    let result = run_case(case, &device, &command_line(case), args.variant.as_deref());
    if let Some(dir) = &args.report_dir {
        match report::write_reports(dir, &result, case.snippet) {
            Ok(paths) => {
                for p in paths {
                    eprintln!("wrote {}", p.display());
                }
            }
            Err(e) => {
                return usage_error(format!("cannot write reports under {}: {e}", dir.display()))
            }
        }
    }
    let out = if args.json {
        report::json(&result)
    } else if args.issue {
        report::issue_markdown(&result, case.snippet)
    } else {
        report::text(&result)
    };
    print!("{out}");
    ExitCode::from(result.verdict.exit_code())
}
