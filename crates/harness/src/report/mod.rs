//! Rendering a `CaseReport`: readable text, JSON, and Markdown ready to paste upstream. Every
//! sentence here is derived from the report; nothing is re-run or re-decided.
//!
//! `findings` words the verdict and what is worth filing, `text` renders the readable report
//! and the JSON one, `markdown` the upstream issue, `write` puts a report set on disk.

use crate::case::CaseReport;

mod findings;
mod markdown;
mod text;
mod write;

pub use findings::{error_findings, explanation};
pub use markdown::issue_markdown;
pub(crate) use markdown::{md_cargo_toml, md_claim};
pub use text::{describe_checks, json, text};
pub use write::{write_atomic, write_report_set, write_reports};

fn target_label(r: &CaseReport) -> String {
    r.environment.target.to_string()
}
