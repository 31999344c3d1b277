//! The one model of "a case" that binaries, tests and reports share.
//!
//! A case is a claim (from the field notes or an upstream issue) and a list of variants; a variant
//! is a sequence of steps written once against `Probe`. Running a case runs every variant on the
//! reference CPU and on the target device, checks each step against the oracle and the target
//! against the CPU, and classifies.

use crate::canary::CanaryReport;
use crate::compare::{against_oracle, against_reference, Check};
use crate::device::{backend_name, Environment};
use crate::observe::{Expected, Outcome, Probe, Step, Stopped};
use crate::verdict::{classify_case, classify_variant, Verdict};
use candle_core::Device;
use serde::Serialize;

pub type VariantFn = Box<dyn Fn(&mut Probe) -> Result<(), Stopped>>;

pub struct Variant {
    /// Stable name, used for snapshot files (`idx_u32-src_f16-2d-dim0-direct`).
    pub name: String,
    /// One sentence: what this variant does.
    pub about: String,
    pub run: VariantFn,
}

impl Variant {
    pub fn new(
        name: impl Into<String>,
        about: impl Into<String>,
        run: impl Fn(&mut Probe) -> Result<(), Stopped> + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            about: about.into(),
            run: Box::new(run),
        }
    }
}

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

/// One step as checked.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedStep {
    pub code: String,
    pub expected: Expected,
    pub reference: Outcome,
    pub reference_vs_oracle: Check,
    /// `None` when the target is the CPU (then `reference` is the target's outcome too).
    pub target: Option<Outcome>,
    pub target_vs_oracle: Option<Check>,
    pub target_vs_reference: Option<Check>,
    pub inputs: Vec<crate::observe::Input>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VariantReport {
    pub name: String,
    pub about: String,
    pub verdict: Verdict,
    /// True when the CPU disagrees with the oracle on some step: a finding about the CPU backend
    /// (or the oracle), reported whatever the target.
    pub reference_disagrees: bool,
    pub steps: Vec<CheckedStep>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
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

impl CaseReport {
    pub fn target_backend(&self) -> &str {
        &self.environment.target.backend
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.variants.iter().filter(|r| r.verdict == v).count()
    }
}

fn run_on(variant: &Variant, device: &Device) -> Vec<Step> {
    let mut probe = Probe::new(device);
    // A stop is already recorded as the failing step; the trace ends there.
    let _ = (variant.run)(&mut probe);
    probe.into_steps()
}

/// Checks one variant's traces (reference CPU, and target unless it is the CPU).
pub fn check_variant(
    variant: &Variant,
    reference: Vec<Step>,
    target: Option<Vec<Step>>,
) -> VariantReport {
    let n = reference.len().max(target.as_ref().map_or(0, Vec::len));
    let mut steps = Vec::with_capacity(n);
    let mut target_iter = target.map(|t| t.into_iter());
    let mut reference_iter = reference.into_iter();
    for _ in 0..n {
        let r = reference_iter.next();
        let t = target_iter.as_mut().and_then(|it| it.next());
        // A step can exist on one side only when the other stopped earlier.
        let (code, expected, inputs) = match (&r, &t) {
            // Inputs as the target saw them (layouts are what the snapshot of a backend shows).
            (_, Some(s)) | (Some(s), None) => {
                (s.code.clone(), s.expected.clone(), s.inputs.clone())
            }
            (None, None) => unreachable!(),
        };
        let missing = || Outcome::Error {
            message: "(not run: an earlier step failed)".into(),
        };
        let reference = r.map(|s| s.outcome).unwrap_or_else(missing);
        let target = target_iter
            .as_ref()
            .map(|_| t.map(|s| s.outcome).unwrap_or_else(missing));
        steps.push(CheckedStep {
            reference_vs_oracle: against_oracle(&expected, &reference),
            target_vs_oracle: target.as_ref().map(|o| against_oracle(&expected, o)),
            target_vs_reference: target.as_ref().map(|o| against_reference(&reference, o)),
            code,
            expected,
            reference,
            target,
            inputs,
        });
    }
    let reference_checks: Vec<Check> = steps
        .iter()
        .map(|s| s.reference_vs_oracle.clone())
        .collect();
    let target_checks: Option<Vec<Check>> =
        steps.iter().map(|s| s.target_vs_oracle.clone()).collect();
    VariantReport {
        name: variant.name.clone(),
        about: variant.about.clone(),
        verdict: classify_variant(&reference_checks, target_checks.as_deref()),
        reference_disagrees: !reference_checks.iter().all(Check::agrees),
        steps,
    }
}

/// Runs one variant on the reference CPU and, when it is an accelerator, on the target.
pub fn run_variant(variant: &Variant, target: &Device) -> VariantReport {
    let reference = run_on(variant, &Device::Cpu);
    let on_target = (!matches!(target, Device::Cpu)).then(|| run_on(variant, target));
    check_variant(variant, reference, on_target)
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

/// The snapshot of one variant on one backend: what that backend did, step by step, and how it
/// compares with the oracle. Free of machine names and timings so it diffs only on behaviour.
#[derive(Debug, Serialize)]
pub struct BackendObservation {
    pub variant: String,
    pub backend: String,
    pub verdict: Verdict,
    pub steps: Vec<ObservedStep>,
}

#[derive(Debug, Serialize)]
pub struct ObservedStep {
    pub code: String,
    /// `name: dtype [shape] stride [..] offset N` per input.
    pub inputs: Vec<String>,
    /// `dtype [shape] stride [..] offset N = [values]`, or `error: ...` / `panic: ...`.
    pub outcome: String,
    pub vs_oracle: String,
}

fn layout_text(m: &crate::host::TensorMeta) -> String {
    format!(
        "{} {:?} stride {:?} offset {}",
        m.dtype.as_str(),
        m.shape,
        m.stride,
        m.offset
    )
}

/// One line per outcome keeps snapshot diffs to the line that changed.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Tensor(t) => {
            let values: Vec<String> = t.values.iter().map(|v| v.to_string()).collect();
            format!("{} = [{}]", layout_text(&t.meta), values.join(", "))
        }
        Outcome::Error { message } => format!("error: {message}"),
        Outcome::Panic { message } => format!("panic: {message}"),
    }
}

impl VariantReport {
    /// The target's side of this variant (the CPU's when no accelerator was used).
    pub fn observation(&self, target: &Device) -> BackendObservation {
        BackendObservation {
            variant: self.name.clone(),
            backend: backend_name(target).into(),
            verdict: self.verdict,
            steps: self
                .steps
                .iter()
                .map(|s| ObservedStep {
                    code: s.code.clone(),
                    inputs: s
                        .inputs
                        .iter()
                        .map(|i| format!("{}: {}", i.name, layout_text(&i.meta)))
                        .collect(),
                    outcome: outcome_text(s.target.as_ref().unwrap_or(&s.reference)),
                    vs_oracle: s
                        .target_vs_oracle
                        .as_ref()
                        .unwrap_or(&s.reference_vs_oracle)
                        .describe(),
                })
                .collect(),
        }
    }
}
