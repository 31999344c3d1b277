//! Markdown for an upstream issue: its title, environment, claim, minimal reproduction and the
//! table of expected vs actual values.

use super::findings::{error_findings, explanation};
use super::target_label;
use crate::case::{CaseReport, VariantReport};
use crate::observe::{Expected, Outcome};
use crate::verdict::Verdict;
use std::fmt::Write as _;

fn issue_title(r: &CaseReport) -> String {
    let backend = r.target_backend();
    match r.verdict {
        Verdict::Reproduced => format!("[{backend}] {}", r.title),
        Verdict::CallerError => match error_findings(r).is_empty() {
            true => format!("(not a bug) {}: the reported call is invalid", r.title),
            false => format!(
                "Error messages for an invalid call ({}): clarify which argument is wrong",
                r.case
            ),
        },
        Verdict::NotReproduced => format!("(not reproduced on {backend}) {}", r.title),
        Verdict::Inconclusive if r.variants.iter().any(|v| v.reference_disagrees) => {
            format!("[cpu] {}", r.title)
        }
        Verdict::Inconclusive => format!("(untested on a GPU) {}", r.title),
        Verdict::Crashed | Verdict::Hung => format!("[{backend}] {} ({})", r.title, r.verdict),
    }
}

/// Variants worth showing in an issue: every one that disagrees or is a caller error, else the first.
fn shown_variants(r: &CaseReport) -> Vec<&VariantReport> {
    let interesting: Vec<&VariantReport> = r
        .variants
        .iter()
        .filter(|v| {
            matches!(v.verdict, Verdict::Reproduced | Verdict::CallerError) || v.reference_disagrees
        })
        .collect();
    let mut shown: Vec<&VariantReport> = interesting.into_iter().take(6).collect();
    if let Some(ok) = r
        .variants
        .iter()
        .find(|v| v.verdict == Verdict::NotReproduced)
    {
        shown.push(ok);
    }
    if shown.is_empty() {
        shown.extend(r.variants.first());
    }
    shown
}

fn md_cell(o: &Outcome) -> String {
    match o {
        Outcome::Tensor(t) => {
            let vals: Vec<String> = t.values.iter().take(8).map(|v| v.to_string()).collect();
            let more = if t.values.len() > 8 { ", …" } else { "" };
            format!(
                "`{}` {:?} [{}{}]",
                t.meta.dtype.as_str(),
                t.meta.shape,
                vals.join(", "),
                more
            )
        }
        Outcome::Error { message } => format!("error: `{}`", message.replace('|', "\\|")),
        Outcome::Panic { message } => format!("panic: `{}`", message.replace('|', "\\|")),
    }
}

fn md_expected(e: &Expected) -> String {
    match e {
        Expected::Tensor(t) => {
            let vals: Vec<String> = t.values.iter().take(8).map(|v| v.to_string()).collect();
            let more = if t.values.len() > 8 { ", …" } else { "" };
            format!(
                "`{}` {:?} [{}{}]",
                t.dtype.as_str(),
                t.shape,
                vals.join(", "),
                more
            )
        }
        Expected::Rejected(r) => format!("invalid call: {}", r.reason.replace('|', "\\|")),
    }
}

/// The end of an issue's Environment section and its "Claim tested" section: the command that
/// produced the report, the claim with its source, then the upstream links (after
/// `links_heading`, when given).
pub(crate) fn md_claim(
    md: &mut String,
    command: &str,
    claim: &str,
    source: &str,
    upstream: &[String],
    links_heading: Option<&str>,
) {
    let _ = writeln!(md, "- produced by: `{command}`\n");
    let _ = writeln!(md, "### Claim tested\n\n> {claim}\n\nSource: {source}\n");
    if !upstream.is_empty() {
        if let Some(heading) = links_heading {
            let _ = writeln!(md, "{heading}\n");
        }
        for link in upstream {
            let _ = writeln!(md, "- {link}");
        }
        let _ = writeln!(md);
    }
}

/// The `Cargo.toml` of an issue's minimal reproduction: candle-core pinned to `candle_version`,
/// with the backend's feature unless it is the CPU.
pub(crate) fn md_cargo_toml(md: &mut String, candle_version: &str, backend: &str) {
    let features = match backend {
        "cpu" => String::new(),
        b => format!(", features = [\"{b}\"]"),
    };
    let _ = writeln!(
        md,
        "`Cargo.toml`:\n\n```toml\n[dependencies]\ncandle-core = {{ version = \"={candle_version}\"{features} }}\n```\n"
    );
}

/// Markdown for an upstream issue: title, environment, standalone repro, expected vs actual as
/// observed, verdict. A caller-error verdict never claims an op bug.
pub fn issue_markdown(r: &CaseReport, snippet: &str) -> String {
    let e = &r.environment;
    let backend = r.target_backend();
    let mut md = String::new();
    let _ = writeln!(md, "<!-- title: {} -->", issue_title(r));
    let _ = writeln!(md, "## {}\n", issue_title(r));
    let _ = writeln!(md, "**Verdict: `{}`** — {}\n", r.verdict, explanation(r));
    if r.verdict == Verdict::CallerError {
        let findings = error_findings(r);
        if findings.is_empty() {
            let _ = writeln!(md, "This is **not a bug in the op**: the call in the report is invalid and candle rejects it on every backend tested. Nothing here is worth filing.\n");
        } else {
            let _ = writeln!(md, "This is **not a bug in the op**: the call in the report is invalid and candle rejects it on every backend tested. What may be worth improving is the error text:\n");
            for f in findings {
                let _ = writeln!(md, "- {f}");
            }
            let _ = writeln!(md);
        }
    }
    let _ = writeln!(md, "### Environment\n");
    let _ = writeln!(md, "- candle-core `{}`", e.candle_version);
    let _ = writeln!(md, "- device: {}", target_label(r));
    let _ = writeln!(
        md,
        "- reference: cpu ({}) and a plain-Rust oracle",
        e.reference.name
    );
    let _ = writeln!(md, "- OS: {} ({})", e.os, e.arch);
    let canary = if r.canary.passed {
        "passed".to_string()
    } else {
        format!("**failed**: {}", r.canary.failures.join("; "))
    };
    let _ = writeln!(
        md,
        "- canary (add, matmul, index_select, strided copy vs the oracle): {canary} on {}",
        r.canary.devices.join(", ")
    );
    md_claim(
        &mut md,
        &r.command,
        &r.claim,
        &r.source,
        &r.upstream,
        Some("Related upstream:"),
    );
    let _ = writeln!(md, "### Minimal reproduction\n");
    md_cargo_toml(&mut md, &e.candle_version, backend);
    let _ = writeln!(
        md,
        "`src/main.rs` (run with `cargo run -- {backend}`):\n\n```rust\n{}```\n",
        snippet
    );
    let _ = writeln!(md, "### Expected vs actual (as observed)\n");
    let _ = writeln!(md, "Expected values come from a plain-Rust implementation of the op's documented contract, not from candle.\n");
    let target_head = if r.accelerator_used {
        backend
    } else {
        "(no accelerator)"
    };
    let _ = writeln!(
        md,
        "| variant | step | expected | cpu | {target_head} |\n|---|---|---|---|---|"
    );
    for v in shown_variants(r) {
        for s in &v.steps {
            let t = s.target.as_ref().map(md_cell).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} | {} | {} |",
                v.name,
                s.code.replace('|', "\\|"),
                md_expected(&s.expected),
                md_cell(&s.reference),
                t
            );
        }
    }
    let _ = writeln!(
        md,
        "\nVariants run: {} ({} shown). Full observations: the JSON report of the same run.",
        r.variants.len(),
        shown_variants(r).len()
    );
    md
}
