//! The readable text report (every variant, every step, both backends), the JSON report, and
//! the checks described for tests' failure messages.

use super::findings::{error_findings, error_message, explanation, reference_findings};
use super::target_label;
use crate::case::{CaseReport, VariantReport};
use crate::compare::Check;
use crate::observe::{Expected, Outcome};
use crate::verdict::Verdict;
use std::fmt::Write as _;

fn outcome_cell(o: &Outcome) -> String {
    o.short()
}

fn expected_cell(e: &Expected) -> String {
    match e {
        Expected::Tensor(t) => format!("{} {:?}", t.dtype.as_str(), t.shape),
        Expected::Rejected(_) => "rejected".into(),
    }
}

fn header(r: &CaseReport, out: &mut String) {
    let e = &r.environment;
    let _ = writeln!(out, "{}: {}", r.case, r.title);
    let _ = writeln!(out, "claim:     {}", r.claim);
    let _ = writeln!(out, "source:    {}", r.source);
    for link in &r.upstream {
        let _ = writeln!(out, "upstream:  {link}");
    }
    let _ = writeln!(
        out,
        "candle:    {} · {} ({})",
        e.candle_version, e.os, e.arch
    );
    let _ = writeln!(out, "target:    {}", target_label(r));
    let _ = writeln!(
        out,
        "reference: cpu ({}) and the plain-Rust oracle",
        e.reference.name
    );
    let canary = if r.canary.passed {
        "passed".to_string()
    } else {
        format!("FAILED: {}", r.canary.failures.join("; "))
    };
    let _ = writeln!(
        out,
        "canary:    {canary} on {}",
        r.canary.devices.join(", ")
    );
    let _ = writeln!(out, "command:   {}", r.command);
}

/// The readable report: every variant, every step, both backends.
pub fn text(r: &CaseReport) -> String {
    let mut out = String::new();
    header(r, &mut out);
    let backend = r.target_backend();
    let target_col = if r.accelerator_used {
        backend
    } else {
        "(no accelerator)"
    };
    for v in &r.variants {
        let _ = writeln!(out, "\n[{}] {} — {}", v.verdict, v.name, v.about);
        let w = v
            .steps
            .iter()
            .map(|s| s.code.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "    {:<w$}  {:<14} {:<14} {}",
            "step", "oracle", "cpu", target_col
        );
        for s in &v.steps {
            let target = s.target.as_ref().map(outcome_cell).unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:<w$}  {:<14} {:<14} {}",
                s.code,
                expected_cell(&s.expected),
                outcome_cell(&s.reference),
                target
            );
            if let Some(m) = error_message(&s.reference) {
                let _ = writeln!(out, "        cpu error: {m}");
            }
            if let Some(m) = s.target.as_ref().and_then(error_message) {
                let _ = writeln!(out, "        {backend} error: {m}");
            }
            if let Expected::Rejected(rej) = &s.expected {
                let _ = writeln!(out, "        oracle: invalid call: {}", rej.reason);
            }
            for (who, c) in [
                ("cpu", Some(&s.reference_vs_oracle)),
                (backend, s.target_vs_oracle.as_ref()),
            ] {
                if let Some(c) = c.filter(|c| !c.agrees()) {
                    let _ = writeln!(out, "        {who} vs oracle: {}", c.describe());
                }
            }
        }
    }
    let _ = writeln!(out);
    let counts: Vec<String> = [
        Verdict::Reproduced,
        Verdict::CallerError,
        Verdict::NotReproduced,
        Verdict::Inconclusive,
    ]
    .into_iter()
    .filter_map(|v| {
        let k = r.count(v);
        (k > 0).then(|| format!("{k} {v}"))
    })
    .collect();
    let _ = writeln!(
        out,
        "variants: {} ({})",
        r.variants.len(),
        counts.join(", ")
    );
    for f in reference_findings(r) {
        let _ = writeln!(out, "finding:  {f}");
    }
    for f in error_findings(r) {
        let _ = writeln!(out, "worth filing: {f}");
    }
    let _ = writeln!(out, "VERDICT: {} — {}", r.verdict, explanation(r));
    out
}

pub fn json(r: &CaseReport) -> String {
    serde_json::to_string_pretty(r).expect("a case report serialises") + "\n"
}

/// Describes a check for tests' failure messages.
pub fn describe_checks(v: &VariantReport) -> String {
    v.steps
        .iter()
        .map(|s| {
            let t = s
                .target_vs_oracle
                .as_ref()
                .map(Check::describe)
                .unwrap_or_default();
            format!(
                "{}: cpu {} / target {}",
                s.code,
                s.reference_vs_oracle.describe(),
                t
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
