//! `repro`: the suite runner. `repro run` runs every case (or those named), each in its own
//! process, checks the verdicts against `repro/expected.toml`, and writes `reports/<backend>/`.

use clap::{Parser, Subcommand};
use harness::DEVICE_ENV;
use repro::cli::{self, usage_exit, Format};
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
        /// VERSION=REPORT_DIR, oldest version first.
        #[arg(required = true)]
        runs: Vec<String>,
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
        Cmd::MatrixReport { out, runs } => {
            let mut parsed = Vec::new();
            for r in &runs {
                match r.split_once('=') {
                    Some((v, d)) if !v.is_empty() && !d.is_empty() => {
                        parsed.push((v.to_string(), PathBuf::from(d)))
                    }
                    _ => return usage_exit(format!("expected VERSION=REPORT_DIR, got `{r}`")),
                }
            }
            match repro::matrix::write(&out, &parsed) {
                Ok(paths) => {
                    for p in paths {
                        println!("wrote {}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => usage_exit(e),
            }
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
    let features = if cfg!(feature = "cuda") {
        " --features cuda"
    } else {
        ""
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = SuiteConfig {
        cases,
        // Children get the resolved device, so `auto` cannot pick differently in a child.
        device_spec: target.location.clone(),
        target,
        timeout: Duration::from_secs(timeout),
        report_dir,
        command: format!(
            "cargo run -p repro --release{features} -- {}",
            args.join(" ")
        ),
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
    if suite.as_expected() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHANGED)
    }
}
