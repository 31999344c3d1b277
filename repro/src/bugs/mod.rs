//! Bug files: `repro/bugs/<root-cause>.md`, one per root cause, found by listing the folder.
//! TOML front matter (what to do upstream, what the file claims, the quotes of candle's source)
//! between `+++` lines, then the prose a maintainer reads: a lead, `## Cause`, `## Fix`, and
//! `## Notes` for this project only. `repro/bugs/README.md` describes the format; this module
//! reads it, refuses a malformed file with one line naming it, and checks the quotes against
//! candle's published sources.
//!
//! `front` holds the front matter's types and a bug file's parts, `load` parses and checks one
//! file and loads the folder, `quotes` checks the quotes against candle's sources and links them.

mod front;
mod load;
mod quotes;

pub use front::{Action, Bug, Front, Quote, Related, Severity};
pub use load::{load, parse, source_reference, INTERNAL_WORDS, QUOTE_LINES_MAX, TITLE_MAX};
pub use quotes::Sources;

pub const DIR: &str = "repro/bugs";

/// The upstream repository; links go only there.
pub const UPSTREAM: &str = "https://github.com/huggingface/candle";
