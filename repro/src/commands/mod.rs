//! One module per `repro` subcommand: its arguments (clap) and its body. `main.rs` only parses
//! and dispatches; every body returns an [`Outcome`](crate::error::Outcome) — an exit code, or a
//! typed error that `crate::error::finish` maps to 2 (bad input) or 1 (this program's fault).

pub mod collect;
pub mod coverage;
pub mod pages;
pub mod suite;
pub mod sweep;

/// Exit code when a verdict differs from a manifest (or a case without an entry died).
pub const EXIT_CHANGED: u8 = 3;
