//! `cargo run -p repro --release --bin argsort_wide_rows`: see repro/src/perf/argsort_wide_rows.rs.
use clap::Parser;
use repro::perf::{self, argsort_wide_rows as bench};

fn main() -> std::process::ExitCode {
    let args = bench::Args::parse();
    let command = perf::command_line(bench::NAME);
    perf::main_for(
        &args.out,
        harness::timing::TimingConfig::default(),
        bench::SNIPPET,
        |device, timing| bench::run(&args, device, timing, &command),
        |_| None,
    )
}
