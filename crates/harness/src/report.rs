//! Rendering a `CaseReport`: readable text, JSON, and Markdown ready to paste upstream. Every
//! sentence here is derived from the report; nothing is re-run or re-decided.

use crate::case::{CaseReport, CheckedStep, VariantReport};
use crate::compare::Check;
use crate::observe::{Expected, Outcome};
use crate::verdict::Verdict;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn target_label(r: &CaseReport) -> String {
    r.environment.target.to_string()
}

fn outcome_cell(o: &Outcome) -> String {
    o.short()
}

fn expected_cell(e: &Expected) -> String {
    match e {
        Expected::Tensor(t) => format!("{} {:?}", t.dtype.as_str(), t.shape),
        Expected::Rejected(_) => "rejected".into(),
    }
}

fn final_step(v: &VariantReport) -> Option<&CheckedStep> {
    v.steps.last()
}

/// The rejection the oracle gave for a caller-error variant.
fn rejection(v: &VariantReport) -> Option<&crate::oracle::Rejection> {
    match &final_step(v)?.expected {
        Expected::Rejected(r) => Some(r),
        _ => None,
    }
}

fn error_message(o: &Outcome) -> Option<&str> {
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

fn reference_findings(r: &CaseReport) -> Vec<String> {
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

/// Writes `contents` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted run never leaves a half-written report.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `<dir>/<backend>/<name>.{txt,json,md}` from contents rendered beforehand, each file
/// atomically; returns the paths written.
pub fn write_report_set(
    dir: &Path,
    backend: &str,
    name: &str,
    txt: String,
    json: String,
    md: String,
) -> std::io::Result<Vec<PathBuf>> {
    let folder = dir.join(backend);
    std::fs::create_dir_all(&folder)?;
    let files = [("txt", txt), ("json", json), ("md", md)]
        .map(|(ext, c)| (folder.join(format!("{name}.{ext}")), c));
    for (path, contents) in &files {
        write_atomic(path, contents)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// Writes `<dir>/<backend>/<case>.{txt,json,md}`; returns the paths written.
pub fn write_reports(dir: &Path, r: &CaseReport, snippet: &str) -> std::io::Result<Vec<PathBuf>> {
    write_report_set(
        dir,
        r.target_backend(),
        &r.case,
        text(r),
        json(r),
        issue_markdown(r, snippet),
    )
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

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn atomic_write_replaces_whole_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("harness-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.txt");
        write_atomic(&p, "first version, longer than the second").unwrap();
        write_atomic(&p, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["r.txt".to_string()]);
        // A write that cannot happen leaves nothing behind.
        assert!(write_atomic(&dir.join("missing/r.txt"), "x").is_err());
        assert!(!dir.join("missing").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
