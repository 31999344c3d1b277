//! The cases and the command line shared by their binaries.

pub mod bugs;
pub mod cases;
pub mod child;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod coverage;
pub mod error;
pub mod findings;
pub mod first_run;
pub mod manifest;
pub mod matrix;
pub mod metal;
pub mod perf;
pub mod predict;
pub mod runner;
pub mod sweep;
pub mod upstream;
