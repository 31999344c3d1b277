//! `repro`: the suite runner. `repro run` runs every case (or those named), each in its own
//! process, checks the verdicts against `repro/expected.toml`, and writes `reports/<backend>/`.
//! This file only parses the command line and dispatches; each subcommand lives in
//! `repro::commands`.

use clap::{Parser, Subcommand};
use repro::commands::{collect, coverage, pages, suite, sweep};
use std::process::ExitCode;

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
    Run(suite::RunArgs),
    /// Write matrix.{md,json} from the suite runs of several candle versions (scripts/matrix.sh).
    MatrixReport(pages::MatrixReportArgs),
    /// Op-consistency sweep: every covered op × dtype × input layout, forward and backward, on
    /// the target, the CPU and the plain-Rust oracle; divergences shrunk to standalone repros.
    Sweep(sweep::SweepArgs),
    /// Everything on one device: the suite, the sweep, the performance repros and moe_bench,
    /// then STATUS.md and a summary of what changed and what to commit.
    Collect(collect::CollectArgs),
    /// Write reports/STATUS.md from the manifests and the latest sweep reports.
    Status(pages::StatusArgs),
    /// Write one upstream text per root cause (<DIR>/upstream/<root-cause>.md and README.md)
    /// and its repro (repro/upstream-repros/src/bin/<root-cause>.rs) from the observed runs.
    Upstream(pages::UpstreamArgs),
    /// Write reports/COVERAGE.md: which candle items the sweep and the suite check.
    Coverage(coverage::CoverageArgs),
    /// Internal: run sweep cells of one op in this process (used by `sweep`).
    #[command(name = repro::sweep::CHILD, hide = true)]
    SweepChild(sweep::ChildArgs),
    /// Internal: run one case in this process (used by `run`).
    #[command(name = repro::runner::CHILD, hide = true)]
    Child(suite::ChildArgs),
}

fn main() -> ExitCode {
    repro::error::finish(match Cli::parse().command {
        Cmd::List => suite::list(),
        Cmd::Run(a) => suite::run(a),
        Cmd::MatrixReport(a) => pages::matrix_report(a),
        Cmd::Sweep(a) => sweep::sweep(a),
        Cmd::Collect(a) => collect::collect(a),
        Cmd::Status(a) => pages::status(a),
        Cmd::Upstream(a) => pages::upstream(a),
        Cmd::Coverage(a) => coverage::coverage(a),
        Cmd::SweepChild(a) => sweep::child(a),
        Cmd::Child(a) => suite::child(a),
    })
}
