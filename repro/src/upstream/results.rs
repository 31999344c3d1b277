//! What each backend returned on the repro's input: the labels, computed by judging each
//! recorded answer again, and the results table of the pasted part.

use super::{Repro, SweepDivergence, SweepRun};
use crate::error::Error;
use crate::sweep::exec;
use crate::sweep::ops;
use std::fmt::Write as _;

/// How one backend's answer compares with the expected one: computed from the value itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Agrees,
    /// Refuses a call the contract forbids, as expected.
    Refuses,
    Differs,
    Errors,
    Panics,
    /// Accepts a call the contract forbids, or refuses it unlike the other backend.
    ErrorMismatch,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Agrees => "agrees",
            Label::Refuses => "refuses, as expected",
            Label::Differs => "differs",
            Label::Errors => "errors",
            Label::Panics => "panics",
            Label::ErrorMismatch => "answers an invalid call differently",
        }
    }

    pub fn of(judged: Option<exec::Category>) -> Label {
        match judged {
            None => Label::Agrees,
            Some(exec::Category::Crash) => Label::Panics,
            Some(exec::Category::Unimplemented) => Label::Errors,
            Some(exec::Category::ErrorMismatch) => Label::ErrorMismatch,
            Some(exec::Category::WrongResult | exec::Category::NonFinite) => Label::Differs,
        }
    }
}

/// Each backend's recorded answer for the representative's pass, labelled by judging it again.
pub fn labelled(d: &SweepDivergence) -> Result<Vec<(String, String, Label)>, Error> {
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op)
        .ok_or_else(|| Error::BadInput(format!("{}: unknown op {}", d.id, d.op)))?;
    let mut out = Vec::new();
    for (b, o) in s
        .evidence
        .observed
        .get(&s.finding.pass)
        .into_iter()
        .flatten()
    {
        let judged = exec::rejudge(
            op,
            &s.cell,
            &s.finding.pass,
            s.evidence.loss_weights.as_deref(),
            o,
        )
        .map_err(|e| Error::BadInput(format!("{}: {e}", d.id)))?;
        let label = match (Label::of(judged.map(|(c, _)| c)), o) {
            (Label::Agrees, exec::Obs::Error { .. }) => Label::Refuses,
            (l, _) => l,
        };
        out.push((b.clone(), o.short(), label));
    }
    Ok(out)
}

fn all_zero(o: &str) -> bool {
    o.rsplit_once(" [")
        .map(|(_, v)| v.trim_end_matches(']').split(", ").all(|x| x == "0"))
        .unwrap_or(false)
}

/// The table of what each backend returned on the repro's input.
pub(super) fn results_table(
    run: &SweepRun,
    d: &SweepDivergence,
    repro: &Repro,
    program_output: Option<&str>,
) -> Result<String, Error> {
    let s = d.repro.as_ref().expect("representative has a repro");
    // A run records a gradient the backward pass does not produce as zeros; whether there is
    // one is asked again here on the CPU, and read from the program's own output on the GPU.
    let role = s.finding.pass.strip_prefix("backward ");
    let missing_on_cpu = match (role, ops::find(&d.op), &s.evidence.loss_weights) {
        (Some(role), Some(op), Some(w)) => exec::gradient_missing_on_cpu(op, &s.cell, role, w),
        _ => None,
    };
    let missing_on_gpu = program_output.map(|o| {
        o.lines()
            .any(|l| l.starts_with("Cuda") && l.contains("error: no gradient for"))
    });
    let mut md = format!(
        "| | {} |\n|---|---|\n| expected | {} |\n",
        if s.finding.pass == "forward" {
            "result".to_string()
        } else {
            format!(
                "gradient of {}",
                s.finding.pass.trim_start_matches("backward ")
            )
        },
        code_span(&repro.expected.line)
    );
    let backward = s.finding.pass.starts_with("backward ");
    for (b, value, label) in labelled(d)? {
        let name = match (b.as_str(), run.target.backend.as_str()) {
            ("cpu", _) => "cpu".to_string(),
            (b, t) if b == t => format!("{b} ({})", run.target.name),
            (b, _) => b.to_string(),
        };
        let missing = if b == "cpu" {
            missing_on_cpu
        } else {
            missing_on_gpu
        };
        let value = match (backward && all_zero(&value), missing) {
            (true, Some(true)) => "no gradient (`grads.get(..)` is `None`)".to_string(),
            (true, Some(false)) => format!("{} (a zero gradient)", code_span(&value)),
            (true, None) => format!(
                "{} (zeros, or no gradient: not told apart)",
                code_span(&value)
            ),
            (false, _) => code_span(&value),
        };
        let _ = writeln!(md, "| {name}: **{}** | {value} |", label.as_str());
    }
    // The program's later valid call on the GPU, where it makes one: its label is read from
    // what it printed.
    for line in program_output.into_iter().flat_map(str::lines) {
        if let Some(value) = line
            .strip_prefix("Cuda")
            .and_then(|l| l.split_once(": a later valid call: "))
            .map(|(_, v)| v)
        {
            let label = if value.starts_with("error:") {
                "fails too"
            } else {
                "succeeds"
            };
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(
                md,
                "| cuda, a later valid call: **{label}** | {} |",
                code_span(&value)
            );
        }
    }
    if !s.reproduced_on_rerun {
        md.push_str("\nNondeterministic: the same input did not fail on every run.\n");
    }
    Ok(md)
}

/// Inline code for a table cell: a value that holds a backtick (a panic message quoting code)
/// is delimited by two, as Markdown requires.
pub(super) fn code_span(s: &str) -> String {
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}
