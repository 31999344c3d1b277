//! Runs one program of `src/bin/` by name (`all-upstream-repros <name>`), or lists them with
//! the hash of their source (no argument). The same programs as the separate binaries, in one
//! executable for a GPU machine.

use std::process::ExitCode;

include!(concat!(env!("OUT_DIR"), "/all.rs"));

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        for (p, hash, _) in PROGRAMS {
            println!("{p} {hash}");
        }
        return ExitCode::SUCCESS;
    };
    match PROGRAMS.iter().find(|(p, _, _)| *p == name) {
        Some((_, _, program)) => match program() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("error: {e}");
                ExitCode::FAILURE
            }
        },
        None => {
            eprintln!("unknown program `{name}`: run without an argument for the list");
            ExitCode::from(2)
        }
    }
}
