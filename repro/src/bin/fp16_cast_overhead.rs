//! `cargo run -p repro --release --bin fp16_cast_overhead`: see repro/src/perf/fp16_cast_overhead.rs.
use clap::Parser;
use repro::perf::{self, fp16_cast_overhead as bench};

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
