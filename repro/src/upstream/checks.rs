//! The checks that refuse a bad generation before anything is written: the pasted part's
//! length, the repro's length, links, the details' summary, and labels against their values.

use super::evidence::OUTPUT_HEAD;
use super::text::pasteable;
use super::{Generated, UPSTREAM};
use crate::error::Error;

/// What the details' summary line names, and the line that begins each in the details.
const DETAILS_PARTS: [(&str, &str); 3] = [
    ("the program's output on a GPU machine", OUTPUT_HEAD),
    ("the patch", "\nPatch `"),
    ("the searches", "\nSearched candle's issues"),
];

/// The most characters the pasteable part may take.
pub const PASTE_MAX: usize = 4000;
/// The most lines a repro may take.
pub const REPRO_LINES_MAX: usize = 40;

/// What every text must satisfy before anything is written: the pasteable part fits one
/// screen, the repro fits 40 lines, no link leaves candle's repository, and no label contradicts
/// the value beside it.
pub fn check(g: &Generated) -> Result<(), Error> {
    let mut wrong = g.partial.clone();
    for (name, text) in &g.texts {
        // Not-a-bug texts are records, not for pasting.
        if name == "README.md" || text.contains("Not for filing") {
            continue;
        }
        let paste = pasteable(text);
        let n = paste.chars().count();
        if n > PASTE_MAX {
            wrong.push(format!(
                "{name}: the part to paste has {n} characters (at most {PASTE_MAX})"
            ));
        }
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            if !target.starts_with(UPSTREAM) {
                wrong.push(format!(
                    "{name}: a link leaves {UPSTREAM}: `{}`",
                    target.lines().next().unwrap_or("")
                ));
            }
        }
        if let Some(why) = summary_promises_missing_part(text) {
            wrong.push(format!("{name}: {why}"));
        }
        for line in paste.lines() {
            if let Some(why) = contradiction(line).or_else(|| broken_code_span(line)) {
                wrong.push(format!("{name}: {why}: `{line}`"));
            }
        }
    }
    for (name, src) in &g.repros {
        let lines = src.lines().count();
        if lines > REPRO_LINES_MAX {
            wrong.push(format!(
                "{name}: the repro has {lines} lines (at most {REPRO_LINES_MAX})"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{} problem(s), nothing written: {}",
            wrong.len(),
            wrong.join("; ")
        )))
    }
}

/// The details' summary names a part (the patch, the program's GPU output, the searches) that
/// the details do not hold (review H, round 2, and P, round 3, each found one).
pub fn summary_promises_missing_part(text: &str) -> Option<String> {
    let start = text.find("<summary>Details: ")?;
    let summary = &text[start..text[start..].find("</summary>")? + start];
    let details = &text[start + summary.len()..];
    DETAILS_PARTS
        .iter()
        .find(|(named, head)| summary.contains(named) && !details.contains(head))
        .map(|(named, _)| format!("the details' summary names {named}, which the details lack"))
}

/// A results-table value in single backticks that itself holds a backtick: Markdown ends the
/// code span early and the row renders broken.
pub fn broken_code_span(line: &str) -> Option<&'static str> {
    let value = line.strip_prefix('|')?.split(" | ").nth(1)?;
    (value.starts_with('`') && !value.starts_with("``") && value.matches('`').count() > 2)
        .then_some("a value holding a backtick is delimited by single backticks")
}

/// A results-table row whose label cannot be right for its value: an error or a panic called
/// anything but what it is.
pub fn contradiction(line: &str) -> Option<&'static str> {
    let (label, value) = line.split_once(": **")?;
    let _ = label;
    let (label, value) = value.split_once("** | ")?;
    let value = value.trim_start_matches('`').trim_start();
    let error = value.starts_with("error:");
    let panic = value.starts_with("panic:");
    match label {
        "agrees" | "differs" if error => Some("an error is labelled as a value"),
        "refuses, as expected" if !error => Some("a value is labelled as a refusal"),
        "agrees" | "differs" if panic => Some("a panic is labelled as a value"),
        "errors" if !error => Some("a value is labelled as an error"),
        "panics" if !panic => Some("a value is labelled as a panic"),
        _ => None,
    }
}
