//! A variant — one sequence of steps written once against `Probe` — and how its traces on the
//! reference CPU and the target are checked against the oracle and each other. Used by cases
//! (`case`) and by the canary, which `run_case` runs first.

use crate::compare::{against_oracle, against_reference, Check};
use crate::device::backend_name;
use crate::observe::{Expected, Outcome, Probe, Step, Stopped};
use crate::verdict::{classify_variant, Verdict};
use candle_core::Device;
use serde::{Deserialize, Serialize};

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

/// One step as checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantReport {
    pub name: String,
    pub about: String,
    pub verdict: Verdict,
    /// True when the CPU disagrees with the oracle on some step: a finding about the CPU backend
    /// (or the oracle), reported whatever the target.
    pub reference_disagrees: bool,
    pub steps: Vec<CheckedStep>,
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
