//! Snapshot tests of every case variant on the backend this run targets
//! (`CANDLE_REPRO_DEVICE`, default `cpu`; see tests/mount/lib.rs).
//!
//! Each test asserts against the oracle directly (a snapshot alone can bless a wrong value), then
//! snapshots what the backend did step by step — dtypes, shapes, strides, offsets, values, error
//! text — as `tests/snapshots/<case>__<variant>@<backend>.snap`, so a behaviour change after a
//! candle bump shows up as a snapshot diff.

use backend_tests::{backend, target_device};
use harness::case::run_named_variant;
use harness::report::describe_checks;
use harness::Case;
use repro::cases::{
    broadcast_contiguous_u32, matmul_narrowed_operand, scatter_add_backward, scatter_add_u32,
};
use rstest::rstest;

/// Known divergences from the oracle in candle's backend-independent code (so on the CPU too),
/// with the reason. They run as expected failures: a variant listed here that agrees with the
/// oracle fails the test, so a fix upstream shows up instead of passing silently.
const KNOWN_DIVERGENCES: &[(&str, &str, &str)] = &[
    (
        "scatter_add_backward",
        "scatter_add-index-taller-than-self",
        "backprop.rs ScatterAdd masks the grad of self with mask.scatter(indexes, self-shaped zeros): shape mismatch",
    ),
    (
        "scatter_add_backward",
        "scatter_add-index-same-shape",
        "backprop.rs ScatterAdd zeroes the grad of self where the index points; it should pass through",
    ),
    ("scatter_add_backward", "scatter-overwrite", "backprop.rs Scatter passes the grad of self unmasked; overwritten positions should get zero"),
];

/// Known divergences of one accelerator backend from the oracle (the CPU agrees): expected
/// failures on that backend, so a fix upstream fails the test with "fixed upstream?".
const KNOWN_TARGET_DIVERGENCES: &[(&str, &str, &str, &str)] = &[
    (
        "matmul_narrowed_operand",
        "rhs-one-column",
        "cuda",
        "gemm_config rejects a row stride wider than the width (#2373)",
    ),
    (
        "matmul_narrowed_operand",
        "rhs-two-columns",
        "cuda",
        "gemm_config rejects a row stride wider than the width (#2373)",
    ),
    (
        "matmul_narrowed_operand",
        "lhs-narrowed",
        "cuda",
        "gemm_config rejects a row stride wider than the width (#2373)",
    ),
];

fn check_variant(case: &Case, variant: &str) {
    let device = target_device();
    let report = run_named_variant(case, variant, &device)
        .unwrap_or_else(|| panic!("{} has no variant {variant}", case.name));
    let target_known = KNOWN_TARGET_DIVERGENCES
        .iter()
        .find(|(c, v, b, _)| *c == case.name && *v == variant && *b == backend(&device));
    if let Some((_, _, b, why)) = target_known {
        let target_agrees = report
            .steps
            .iter()
            .all(|s| s.target_vs_oracle.as_ref().is_none_or(|c| c.agrees()));
        assert!(
            !target_agrees,
            "{}/{variant} now agrees with the oracle on {b} (known divergence: {why}): fixed upstream? remove it from KNOWN_TARGET_DIVERGENCES and update repro/expected.toml and ISSUES.md",
            case.name
        );
    }
    if let Some((_, _, why)) = KNOWN_DIVERGENCES
        .iter()
        .find(|(c, v, _)| *c == case.name && *v == variant)
    {
        assert!(
            report.reference_disagrees,
            "{}/{variant} now agrees with the oracle on cpu (known divergence: {why}): fixed upstream? remove it from KNOWN_DIVERGENCES and update repro/expected.toml and ISSUES.md",
            case.name
        );
        let target_agrees = report
            .steps
            .iter()
            .all(|s| s.target_vs_oracle.as_ref().is_none_or(|c| c.agrees()));
        assert!(
            report.steps[0].target.is_none() || !target_agrees,
            "{}/{variant} now agrees with the oracle on {} (known divergence: {why}): fixed upstream?",
            case.name,
            backend(&device)
        );
    } else {
        assert!(
            !report.reference_disagrees,
            "cpu disagrees with the oracle in {variant}:\n{}",
            describe_checks(&report)
        );
    }
    let expected_to_disagree = target_known.is_some()
        || KNOWN_DIVERGENCES
            .iter()
            .any(|(c, v, _)| *c == case.name && *v == variant);
    if expected_to_disagree {
        // Expected to disagree: the snapshot records how.
    } else if let Some(bad) = report
        .steps
        .iter()
        .find(|s| s.target_vs_oracle.as_ref().is_some_and(|c| !c.agrees()))
    {
        panic!(
            "{} disagrees with the oracle in {variant} at `{}`: {}\n{}",
            backend(&device),
            bad.code,
            bad.target_vs_oracle.as_ref().unwrap().describe(),
            describe_checks(&report)
        );
    }
    insta::with_settings!({
        snapshot_suffix => backend(&device),
        prepend_module_to_snapshot => false,
        description => report.about.clone(),
        omit_expression => true,
    }, {
        insta::assert_yaml_snapshot!(format!("{}__{variant}", case.name), report.observation(&device));
    });
}

#[rstest]
fn scatter_add_literal_call(#[values("f32", "f16", "bf16")] src: &str) {
    check_variant(&scatter_add_u32::CASE, &format!("literal-src_{src}"));
}

#[rstest]
fn scatter_add_corrected_call(
    #[values("u8", "u32", "i64")] idx: &str,
    #[values("f32", "f16", "bf16")] src: &str,
    #[values("1d-dim0", "2d-dim0", "2d-dim1")] layout: &str,
    #[values("direct", "broadcast")] built: &str,
) {
    check_variant(
        &scatter_add_u32::CASE,
        &format!("idx_{idx}-src_{src}-{layout}-{built}"),
    );
}

#[rstest]
fn broadcast_then_contiguous(
    #[values("u8", "u32", "i64", "f32")] dtype: &str,
    #[values(
        "1d-to-2d",
        "2d-to-3d",
        "narrow-offset-1d-to-2d",
        "narrow-offset-2d-to-3d"
    )]
    shape: &str,
) {
    check_variant(&broadcast_contiguous_u32::CASE, &format!("{dtype}-{shape}"));
}

#[rstest]
fn scatter_add_and_scatter_backward(
    #[values(
        "scatter_add-index-taller-than-self",
        "scatter_add-index-same-shape",
        "scatter-overwrite"
    )]
    variant: &str,
) {
    check_variant(&scatter_add_backward::CASE, variant);
}

#[rstest]
fn matmul_of_a_narrowed_operand(
    #[values("rhs-one-column", "rhs-two-columns", "lhs-narrowed")] variant: &str,
) {
    check_variant(&matmul_narrowed_operand::CASE, variant);
}

/// The rstest matrices above cover every variant the cases define, and nothing else.
#[test]
fn matrices_cover_every_variant() {
    let scatter = (scatter_add_u32::CASE.variants)().len();
    let broadcast = (broadcast_contiguous_u32::CASE.variants)().len();
    let backward = (scatter_add_backward::CASE.variants)().len();
    assert_eq!(
        (scatter, broadcast, backward),
        (3 + 3 * 3 * 3 * 2, 4 * 4, 3)
    );
}

/// Every committed snapshot belongs to a variant that still exists (a renamed variant must not
/// leave its old snapshot behind, blessed and unchecked).
#[test]
fn no_stale_snapshots() {
    // insta's own override of the workspace root, for test binaries run away from their checkout.
    let root =
        std::env::var("INSTA_WORKSPACE_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = std::path::Path::new(&root).join("tests/snapshots");
    let mut known: Vec<String> = Vec::new();
    for case in repro::cases::all() {
        known.extend(
            (case.variants)()
                .iter()
                .map(|v| format!("{}__{}", case.name, v.name)),
        );
    }
    for entry in std::fs::read_dir(&dir).expect("tests/snapshots exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".snap") else {
            continue;
        };
        let variant = stem.split('@').next().unwrap();
        assert!(
            known.iter().any(|k| k == variant),
            "stale snapshot {name}: no such case variant"
        );
    }
}
