//! `repro coverage`: which parts of candle the project checks and which it does not
//! (`reports/COVERAGE.md`).
//!
//! The items come from candle's own sources at the version the workspace pins (found with
//! `cargo metadata`), not from a hand list: every `pub fn` of the `impl Tensor` blocks of
//! candle-core's `src/*.rs` (methods written by macros included), and candle-nn's public
//! functions of `ops.rs`, `rotary_emb.rs`, `loss.rs`, `conv.rs`, `batch_norm.rs`,
//! `group_norm.rs`, the `Activation` variants, the public structs implementing `Module` in the
//! files read and a few methods by name (kv caches' `append`, `VarBuilder`'s dtype handling);
//! candle-core's quantized API (`QTensor`, `QMatMul`, one `forward` per `GgmlDType`). Items
//! out of scope are excluded with a reason (`excluded.rs`). What covers each item is derived from the
//! registries: the sweep's `OPS` table (the candle calls in each op's `call` and `code`) and the
//! suite's cases (`cases::all()`, the candle calls in each case file's code).
//!
//! The parser is a small tokenizer plus a brace-aware item walker (no `syn`): it only has to
//! find items, visibility, `#[cfg(test)]`, `impl` headers and `macro_rules!` expansions that
//! name a method, and it reports what it could not expand instead of guessing.

mod calls;
mod candle;
mod excluded;
mod page;
mod parser;
mod sources;
mod tokenizer;

#[cfg(test)]
mod tests;

pub use calls::{
    case_covering, case_coverings, refs, sweep_coverings, Covering, Ref, Section, NOT_TENSOR_CALLS,
};
pub use candle::{core_items, nn_items, quantized_items, tensor_methods, CoreItems, Item};
pub use excluded::{excluded, EXCLUDED, MAX_EXCLUDED};
pub use page::{all_items, generate, AllItems, CASES_DIR};
pub use parser::{parse_items, EnumItem, FnItem, ImplItem, Items, MacroCall, MacroDef, MacroRule};
pub use sources::{locate, Sources};
pub use tokenizer::{tokenize, Tok};

use crate::error::Error;
use std::path::{Path, PathBuf};

/// The page's file name inside the report folder.
pub const PAGE: &str = "COVERAGE.md";

/// `repro coverage`: writes `<report_dir>/COVERAGE.md`.
pub fn run_command(report_dir: &Path) -> Result<PathBuf, Error> {
    let src = locate(Path::new("."))?;
    let text = generate(&src)?;
    std::fs::create_dir_all(report_dir).map_err(|e| Error::io(report_dir, e))?;
    let p = report_dir.join(PAGE);
    harness::report::write_atomic(&p, &text).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}
