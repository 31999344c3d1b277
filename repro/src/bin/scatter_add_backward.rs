//! `cargo run -p repro --bin scatter_add_backward -- --device auto`: see repro/src/cases/scatter_add_backward.rs.
fn main() -> std::process::ExitCode {
    repro::cli::main_for(&repro::cases::scatter_add_backward::CASE)
}
