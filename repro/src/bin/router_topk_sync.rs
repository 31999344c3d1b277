//! `cargo run -p repro --release --bin router_topk_sync`: see repro/src/perf/router_topk_sync.rs.
use clap::Parser;
use repro::perf::{self, router_topk_sync as bench};

fn main() -> std::process::ExitCode {
    let args = bench::Args::parse();
    if let Err(e) = bench::validate(&args) {
        return repro::cli::usage_exit(e);
    }
    let command = perf::command_line(bench::NAME);
    perf::main_for(
        &args.out,
        args.timing.timing(),
        bench::SNIPPET,
        |device, timing| bench::run(&args, device, timing, &command),
        bench::plot,
    )
}
