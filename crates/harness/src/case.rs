//! The one model of "a case" that binaries, tests and reports share.
//!
//! A case is a claim (from the field notes or an upstream issue) and a list of variants; a variant
//! is a sequence of steps written once against `Probe`. Running a case runs every variant on the
//! reference CPU and on the target device, checks each step against the oracle and the target
//! against the CPU, and classifies.

use crate::canary::CanaryReport;
use crate::device::Environment;
use crate::verdict::{classify_case, Verdict};
use candle_core::Device;
use serde::{Deserialize, Serialize};

// A variant and how it is checked live in `variant` (the canary checks variants too, and runs
// inside `run_case`); re-exported so that a case file needs only this module.
pub use crate::variant::{
    check_variant, outcome_text, run_variant, BackendObservation, CheckedStep, ObservedStep,
    Variant, VariantFn, VariantReport,
};

/// A case as its file declares it.
pub struct Case {
    /// The binary's name and the report's file name.
    pub name: &'static str,
    pub title: &'static str,
    /// The claim being tested, in the words of its source.
    pub claim: &'static str,
    /// Where the claim comes from (notes item, upstream issue).
    pub source: &'static str,
    /// Upstream links related to the claim (may be empty).
    pub upstream: &'static [&'static str],
    /// A standalone `main.rs` depending only on candle-core that shows the observation.
    pub snippet: &'static str,
    pub variants: fn() -> Vec<Variant>,
    /// Variants known to disagree with the oracle, with why: they run as expected failures in
    /// the snapshot tests, so a fix upstream fails them ("fixed upstream?").
    pub known: &'static [KnownDivergence],
    /// What the snippets test (repro/snippets/tests/run.rs) requires of the snippet's CPU output.
    pub snippet_run: SnippetRun,
}

/// How the snippets test treats a standalone snippet: run it on the CPU and check its output
/// against lines computed in plain Rust, or compile it only, with the reason.
#[derive(Clone, Copy)]
pub enum SnippetRun {
    Check(fn(&str) -> Result<(), String>),
    CompileOnly(&'static str),
}

/// `Ok` when `out` has `line` as one of its lines.
pub fn require_line(out: &str, line: &str) -> Result<(), String> {
    if out.lines().any(|l| l == line) {
        Ok(())
    } else {
        Err(format!("expected the line `{line}`"))
    }
}

/// `[[a, b], [c, d]]` as the snippets print an f32 matrix (`{:?}` of `Vec<Vec<f32>>`).
pub fn f32_matrix(rows: &[Vec<f64>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Vec<String> = r.iter().map(|x| format!("{x:.1}")).collect();
            format!("[{}]", v.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// A variant known to disagree with the oracle on some backends.
#[derive(Clone, Copy, Debug)]
pub struct KnownDivergence {
    pub variant: &'static str,
    /// `"cpu"` for a bug in candle's backend-independent code (every backend shows it), else
    /// the accelerator backends that show it (the CPU agrees).
    pub backends: &'static [&'static str],
    pub why: &'static str,
}

impl Case {
    /// The known divergence of `variant` on `backend`, if any (a CPU divergence shows on every
    /// backend).
    pub fn known_on(&self, variant: &str, backend: &str) -> Option<&KnownDivergence> {
        self.known.iter().find(|k| {
            k.variant == variant && (k.backends.contains(&"cpu") || k.backends.contains(&backend))
        })
    }
}

/// The version of the case report's JSON. Readers refuse a newer one; a report written before
/// the field existed is version 1.
pub const CASE_REPORT_SCHEMA: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseReport {
    #[serde(default = "crate::schema::v1")]
    pub schema_version: u32,
    pub case: String,
    pub title: String,
    pub claim: String,
    pub source: String,
    pub upstream: Vec<String>,
    pub environment: Environment,
    pub command: String,
    pub accelerator_used: bool,
    /// The known-result ops run before any verdict is trusted.
    pub canary: CanaryReport,
    pub verdict: Verdict,
    pub variants: Vec<VariantReport>,
}

impl crate::schema::Versioned for CaseReport {
    const SCHEMA: u32 = CASE_REPORT_SCHEMA;
    const KIND: &'static str = "case report";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

impl CaseReport {
    /// Reads a report that `report::json` wrote: the one way every reader of case reports
    /// (upstream texts, the version matrix, collect, the runner) gets at one.
    pub fn read(path: &std::path::Path) -> Result<CaseReport, String> {
        crate::schema::read(path)
    }

    pub fn parse(text: &str) -> Result<CaseReport, String> {
        crate::schema::parse(text)
    }

    pub fn target_backend(&self) -> &str {
        &self.environment.target.backend
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.variants.iter().filter(|r| r.verdict == v).count()
    }
}

/// Runs the variant of `case` named exactly `name`; `None` if the case has no such variant.
pub fn run_named_variant(case: &Case, name: &str, target: &Device) -> Option<VariantReport> {
    (case.variants)()
        .iter()
        .find(|v| v.name == name)
        .map(|v| run_variant(v, target))
}

/// Runs every variant of `case` (optionally only those whose name contains `filter`).
pub fn run_case(case: &Case, target: &Device, command: &str, filter: Option<&str>) -> CaseReport {
    let accelerator_used = !matches!(target, Device::Cpu);
    let canary = crate::canary::run(target);
    let mut reports: Vec<VariantReport> = (case.variants)()
        .iter()
        .filter(|v| filter.is_none_or(|f| v.name.contains(f)))
        .map(|v| run_variant(v, target))
        .collect();
    if !canary.passed {
        // A device that fails known-result ops cannot convict candle of anything.
        for r in &mut reports {
            r.verdict = Verdict::Inconclusive;
        }
    }
    let verdicts: Vec<Verdict> = reports.iter().map(|r| r.verdict).collect();
    CaseReport {
        schema_version: CASE_REPORT_SCHEMA,
        case: case.name.into(),
        title: case.title.into(),
        claim: case.claim.into(),
        source: case.source.into(),
        upstream: case.upstream.iter().map(|s| s.to_string()).collect(),
        environment: Environment::collect(target),
        command: command.into(),
        accelerator_used,
        verdict: classify_case(&verdicts, accelerator_used && canary.passed),
        canary,
        variants: reports,
    }
}
