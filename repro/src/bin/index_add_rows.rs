//! `cargo run -p repro --release --bin index_add_rows`: see repro/src/perf/index_add_rows.rs.
use clap::Parser;
use repro::perf::{self, index_add_rows as bench};

fn main() -> std::process::ExitCode {
    let args = bench::Args::parse();
    let command = perf::command_line(bench::NAME);
    perf::main_for(
        &args.out,
        args.timing.timing(),
        bench::SNIPPET,
        |device, timing| bench::run(&args, device, timing, &command),
        bench::plot,
    )
}
