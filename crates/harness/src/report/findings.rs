//! The sentences derived from a report: the verdict's explanation, and the findings worth
//! filing (error messages that do not name the argument, the CPU disagreeing with the oracle).

use crate::case::{CaseReport, CheckedStep, VariantReport};
use crate::observe::{Expected, Outcome};
use crate::verdict::Verdict;
use std::fmt::Write as _;

pub(super) fn final_step(v: &VariantReport) -> Option<&CheckedStep> {
    v.steps.last()
}

/// The rejection the oracle gave for a caller-error variant.
pub(super) fn rejection(v: &VariantReport) -> Option<&crate::oracle::Rejection> {
    match &final_step(v)?.expected {
        Expected::Rejected(r) => Some(r),
        _ => None,
    }
}

pub(super) fn error_message(o: &Outcome) -> Option<&str> {
    match o {
        Outcome::Error { message } | Outcome::Panic { message } => Some(message),
        Outcome::Tensor(_) => None,
    }
}

/// What is worth filing about the error messages of caller-error variants: a backend whose
/// messages do not name the offending argument, and messages that differ between backends.
pub fn error_findings(r: &CaseReport) -> Vec<String> {
    let backend = r.target_backend();
    // (who, argument) -> distinct messages that do not name the argument
    let mut unnamed: Vec<((String, String), Vec<String>)> = Vec::new();
    // Distinct messages per side, over the variants where cpu and target disagree on the text.
    let (mut cpu_says, mut target_says): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for v in r
        .variants
        .iter()
        .filter(|v| v.verdict == Verdict::CallerError)
    {
        let (Some(step), Some(rej)) = (final_step(v), rejection(v)) else {
            continue;
        };
        let mut messages = vec![("cpu", error_message(&step.reference))];
        if let Some(t) = &step.target {
            messages.push((backend, error_message(t)));
        }
        for (who, msg) in &messages {
            let Some(msg) = msg else { continue };
            let lower = msg.to_lowercase();
            if rej
                .keywords
                .iter()
                .any(|k| lower.contains(&k.to_lowercase()))
            {
                continue;
            }
            let key = (who.to_string(), rej.argument.clone());
            match unnamed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) if !list.iter().any(|m| m == msg) => list.push(msg.to_string()),
                Some(_) => {}
                None => unnamed.push((key, vec![msg.to_string()])),
            }
        }
        if let [(_, Some(a)), (_, Some(b))] = messages.as_slice() {
            if a != b {
                for (list, m) in [(&mut cpu_says, a), (&mut target_says, b)] {
                    if !list.iter().any(|x| x == m) {
                        list.push(m.to_string());
                    }
                }
            }
        }
    }
    let mut findings: Vec<String> = unnamed
        .into_iter()
        .map(|((who, arg), msgs)| {
            let quoted: Vec<String> = msgs.iter().map(|m| format!("`{m}`")).collect();
            format!(
                "The {who} error does not say that `{arg}` is the offending argument: {}.",
                quoted.join(", ")
            )
        })
        .collect();
    if !cpu_says.is_empty() {
        let quote = |l: &[String]| {
            l.iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        findings.push(format!(
            "The same invalid calls fail with different messages on different backends: cpu says {}; {backend} says {}.",
            quote(&cpu_says),
            quote(&target_says)
        ));
    }
    findings
}

/// The one-paragraph explanation of the verdict.
pub fn explanation(r: &CaseReport) -> String {
    let backend = r.target_backend();
    let n = r.variants.len();
    match r.verdict {
        Verdict::Reproduced => {
            let bad: Vec<&VariantReport> = r.variants.iter().filter(|v| v.verdict == Verdict::Reproduced).collect();
            let first = bad[0];
            let step = first
                .steps
                .iter()
                .find(|s| s.target_vs_oracle.as_ref().is_some_and(|c| !c.agrees()))
                .expect("a reproduced variant has a disagreeing step");
            format!(
                "{backend} disagrees with the oracle in {} of {n} variants. First: `{}` at `{}`: {}.",
                bad.len(),
                first.name,
                step.code,
                step.target_vs_oracle.as_ref().unwrap().describe()
            )
        }
        Verdict::CallerError => {
            let bad: Vec<&VariantReport> = r.variants.iter().filter(|v| v.verdict == Verdict::CallerError).collect();
            let reason = rejection(bad[0]).map(|r| r.reason.clone()).unwrap_or_default();
            let ok = r.count(Verdict::NotReproduced);
            format!(
                "{} of {n} variants make an invalid call, and both cpu and {backend} reject it: {reason}. \
                 The other {ok} variants (the corrected calls) agree with the oracle on {backend}: dtype, shape and values after every step.",
                bad.len()
            )
        }
        Verdict::NotReproduced => format!(
            "{backend} agrees with the oracle and with the cpu on all {n} variants: dtype, shape and values after every step."
        ),
        // The suite runner writes its own report for a dead process; a CaseReport never has these.
        Verdict::Crashed | Verdict::Hung => format!("the case's process {}", r.verdict),
        Verdict::Inconclusive if !r.canary.passed => format!(
            "The canary failed ({}), so this device's results cannot be trusted and no verdict is given.",
            r.canary.failures.join("; ")
        ),
        Verdict::Inconclusive => {
            let callers = r.count(Verdict::CallerError);
            let mut s = format!(
                "No accelerator was used (target {}), so the claim about a GPU backend was not tested; run with `--device cuda` or `--device metal`.",
                r.environment.target.location
            );
            let cpu_bad = r.variants.iter().filter(|v| v.reference_disagrees).count();
            if cpu_bad > 0 {
                let _ = write!(
                    s,
                    " The CPU itself disagrees with the oracle in {cpu_bad} of {n} variants: a bug in backend-independent code or in the CPU backend (see the findings)."
                );
            }
            if callers > 0 {
                let reason = r.variants.iter().find_map(rejection).map(|r| r.reason.clone()).unwrap_or_default();
                let _ = write!(s, " On cpu, {callers} of {n} variants are caller errors: {reason}.");
            }
            s
        }
    }
}

pub(super) fn reference_findings(r: &CaseReport) -> Vec<String> {
    r.variants
        .iter()
        .filter(|v| v.reference_disagrees)
        .filter_map(|v| {
            let s = v.steps.iter().find(|s| !s.reference_vs_oracle.agrees())?;
            Some(format!(
                "cpu disagrees with the oracle in `{}` at `{}`: {}",
                v.name,
                s.code,
                s.reference_vs_oracle.describe()
            ))
        })
        .collect()
}
