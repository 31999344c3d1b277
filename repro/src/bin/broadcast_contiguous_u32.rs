//! `cargo run -p repro --bin broadcast_contiguous_u32 -- --device auto`: see repro/src/cases/broadcast_contiguous_u32.rs.
fn main() -> std::process::ExitCode {
    repro::cli::main_for(&repro::cases::broadcast_contiguous_u32::CASE)
}
