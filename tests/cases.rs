//! Snapshot tests of every case variant on the backend this run targets
//! (`CANDLE_REPRO_DEVICE`, default `cpu`; see tests/mount/lib.rs): one named test per case ×
//! variant, derived from `repro::cases::all()` (no list is kept here).
//!
//! Each test asserts against the oracle directly (a snapshot alone can bless a wrong value), then
//! snapshots what the backend did step by step — dtypes, shapes, strides, offsets, values, error
//! text — as `tests/snapshots/<case>__<variant>@<backend>.snap`, so a behaviour change after a
//! candle bump shows up as a snapshot diff. A variant the case file lists in `known` runs as an
//! expected failure: if it starts agreeing with the oracle, the test fails ("fixed upstream?").

use backend_tests::{backend, guarded, target_device, workspace_root};
use harness::case::run_named_variant;
use harness::report::describe_checks;
use harness::Case;
use libtest_mimic::{Arguments, Failed, Trial};

fn check_variant(case: &Case, variant: &str) -> Result<(), Failed> {
    let device = target_device();
    let b = backend(&device);
    let report = run_named_variant(case, variant, &device)
        .ok_or_else(|| format!("{} has no variant {variant}", case.name))?;
    let target_agrees = report
        .steps
        .iter()
        .all(|s| s.target_vs_oracle.as_ref().is_none_or(|c| c.agrees()));
    match case.known_on(variant, b) {
        // A bug in candle's backend-independent code: the CPU shows it, on every run.
        Some(k) if k.backends.contains(&"cpu") => {
            if !report.reference_disagrees {
                return Err(format!(
                    "{}/{variant} now agrees with the oracle on cpu (known divergence: {}): fixed upstream? remove it from `known` in repro/src/cases/{}.rs and update repro/expected.toml and ISSUES.md",
                    case.name, k.why, case.name
                ).into());
            }
            // On an accelerator it must show there too (on the CPU the line above is the check).
            if report.steps[0].target.is_some() && target_agrees {
                return Err(format!(
                    "{}/{variant} now agrees with the oracle on {b} (known divergence: {}): fixed upstream?",
                    case.name, k.why
                )
                .into());
            }
        }
        Some(k) => {
            if target_agrees {
                return Err(format!(
                    "{}/{variant} now agrees with the oracle on {b} (known divergence: {}): fixed upstream? remove {b} from `known` in repro/src/cases/{}.rs and update repro/expected.toml and ISSUES.md",
                    case.name, k.why, case.name
                ).into());
            }
        }
        None => {
            if report.reference_disagrees {
                return Err(format!(
                    "cpu disagrees with the oracle in {variant}:\n{}",
                    describe_checks(&report)
                )
                .into());
            }
            if let Some(bad) = report
                .steps
                .iter()
                .find(|s| s.target_vs_oracle.as_ref().is_some_and(|c| !c.agrees()))
            {
                return Err(format!(
                    "{b} disagrees with the oracle in {variant} at `{}`: {}\n{}",
                    bad.code,
                    bad.target_vs_oracle.as_ref().unwrap().describe(),
                    describe_checks(&report)
                )
                .into());
            }
        }
    }
    guarded(|| {
        insta::with_settings!({
            snapshot_suffix => b,
            prepend_module_to_snapshot => false,
            description => report.about.clone(),
            omit_expression => true,
        }, {
            insta::assert_yaml_snapshot!(format!("{}__{variant}", case.name), report.observation(&device));
        });
        Ok(())
    })
}

/// Every committed snapshot belongs to a variant that still exists (a renamed variant must not
/// leave its old snapshot behind, blessed and unchecked).
fn no_stale_snapshots() -> Result<(), Failed> {
    // insta's own override of the workspace root, for test binaries run away from their checkout.
    let dir = workspace_root().join("tests/snapshots");
    let mut known: Vec<String> = Vec::new();
    for case in repro::cases::all() {
        known.extend(
            (case.variants)()
                .iter()
                .map(|v| format!("{}__{}", case.name, v.name)),
        );
    }
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".snap") else {
            continue;
        };
        let variant = stem.split('@').next().unwrap();
        if !known.iter().any(|k| k == variant) {
            return Err(format!("stale snapshot {name}: no such case variant").into());
        }
    }
    Ok(())
}

/// Every `known` entry names a variant its case has (a renamed variant must not turn an
/// expected failure into a silent pass).
fn known_divergences_name_real_variants() -> Result<(), Failed> {
    for case in repro::cases::all() {
        let variants: Vec<String> = (case.variants)().into_iter().map(|v| v.name).collect();
        for k in case.known {
            if !variants.iter().any(|v| v == k.variant) {
                return Err(format!(
                    "{}: known divergence for no variant `{}`",
                    case.name, k.variant
                )
                .into());
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let b = backend(&target_device());
    let mut trials = Vec::new();
    for case in repro::cases::all() {
        for v in (case.variants)() {
            let name = format!("{}::{}@{b}", case.name, v.name);
            trials.push(Trial::test(name, move || {
                guarded(|| check_variant(case, &v.name))
            }));
        }
    }
    trials.push(Trial::test("no_stale_snapshots", || {
        guarded(no_stale_snapshots)
    }));
    trials.push(Trial::test("known_divergences_name_real_variants", || {
        guarded(known_divergences_name_real_variants)
    }));
    libtest_mimic::run(&args, trials).exit();
}
