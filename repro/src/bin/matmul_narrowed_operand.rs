//! `cargo run -p repro --bin matmul_narrowed_operand -- --device auto`: see repro/src/cases/matmul_narrowed_operand.rs.
fn main() -> std::process::ExitCode {
    repro::cli::main_for(&repro::cases::matmul_narrowed_operand::CASE)
}
