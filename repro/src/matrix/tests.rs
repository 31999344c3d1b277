//! Tests of the matrix: transitions, root-cause rows, sweep cells masked by a forward divergence,
//! and which dtype an id needs swept.

use super::collect::{cells_needed, sweep_cells, swept_as};
use super::root_causes::root_cause_rows;
use super::*;
use crate::runner::SuiteReport;
use crate::sweep::id::DivergenceId;
use crate::sweep::known::RootCause;
use crate::sweep::report::SweepReport;
use harness::case::CaseReport;
use std::collections::BTreeMap;

#[test]
fn an_id_naming_i16_or_i32_counts_only_where_that_dtype_was_swept() {
    assert_eq!(
        swept_as("index_add", "index-add-bwd-dst-unimplemented-i32-index"),
        "index_add/i32"
    );
    assert_eq!(
        swept_as(
            "scatter_add",
            "scatter-add-fwd-error-mismatch-i16-index-index-past-end"
        ),
        "scatter_add/i16"
    );
    assert_eq!(
        swept_as("index_add", "index-add-fwd-unimplemented-src-transposed"),
        "index_add"
    );
}

/// Writes a suite run of one case as the runner and the case binary write them (through
/// their types, so the fixture cannot drift from the schema the matrix reads).
fn run(dir: &Path, backend: &str, case: &str, verdict: &str, cpu_diverges: bool) {
    let d = dir.join(backend);
    std::fs::create_dir_all(&d).unwrap();
    let target = harness::device::DeviceInfo {
        location: backend.into(),
        name: "x".into(),
        ..Default::default()
    };
    let suite = SuiteReport {
        schema_version: crate::runner::SUITE_REPORT_SCHEMA,
        candle_version: "x".into(),
        target: target.clone(),
        command: "c".into(),
        timeout_seconds: 1,
        wall_seconds: 0.0,
        cases: vec![crate::runner::CaseResult {
            case: case.into(),
            verdict: verdict.parse().unwrap(),
            summary: String::new(),
            expected: None,
            status: crate::manifest::Status::NoExpectation,
            message: String::new(),
            seconds: 0.0,
        }],
    };
    std::fs::write(d.join("suite.json"), serde_json::to_string(&suite).unwrap()).unwrap();
    let case_json = serde_json::json!({
        "case": case, "title": "", "claim": "", "source": "", "upstream": [],
        "environment": {"candle_version": "x", "os": "", "arch": "", "reference": {}, "target": target},
        "command": "c", "accelerator_used": false,
        "canary": {"devices": [], "passed": true, "failures": []},
        "verdict": verdict,
        "variants": [{"name": "v", "about": "", "verdict": verdict, "reference_disagrees": cpu_diverges, "steps": []}],
    });
    CaseReport::parse(&case_json.to_string()).expect("the fixture is a case report");
    std::fs::write(d.join(format!("{case}.json")), case_json.to_string()).unwrap();
}

#[test]
fn transitions_need_both_ends() {
    let base = std::env::temp_dir().join(format!("matrix-test-{}", std::process::id()));
    let v = |n: &str| base.join(n);
    run(&v("a"), "cuda", "x", "reproduced", false);
    run(&v("b"), "cuda", "x", "inconclusive", false);
    run(&v("c"), "cuda", "x", "not-reproduced", false);
    run(&v("a"), "cpu", "x", "inconclusive", false);
    run(&v("c"), "cpu", "x", "inconclusive", true);
    let runs: Vec<(String, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|n| (n.to_string(), v(n)))
        .collect();
    let m = collect(&runs, &BTreeMap::new()).unwrap();
    let t: Vec<(String, String, String, String)> = m
        .transitions
        .iter()
        .map(|t| {
            (
                t.backend.clone(),
                t.kind.clone(),
                t.from_version.clone(),
                t.to_version.clone(),
            )
        })
        .collect();
    // cuda: present in a, unknown in b (skipped), absent in c → fixed in c; cpu: regressed in c.
    assert_eq!(
        t,
        vec![
            ("cpu".into(), "regressed in".into(), "a".into(), "c".into()),
            ("cuda".into(), "fixed in".into(), "a".into(), "c".into())
        ]
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_root_cause_shows_where_any_id_shows_and_patched_is_not_a_release() {
    let cell = |case: &str, version: &str, bug: Bug| Cell {
        case: case.into(),
        version: version.into(),
        backend: "cuda".into(),
        verdict: String::new(),
        cpu_diverges: false,
        bug,
    };
    let versions: Vec<String> = ["a", "b", "c", "d", PATCHED]
        .iter()
        .map(|v| v.to_string())
        .collect();
    let cells = vec![
        cell("sweep:x", "a", Bug::Absent),
        cell("sweep:y", "a", Bug::Absent),
        // b: y's op did not run (a version without it) and x is absent → absent.
        cell("sweep:x", "b", Bug::Absent),
        cell("sweep:y", "b", Bug::Unknown),
        cell("sweep:x", "c", Bug::Absent),
        cell("sweep:y", "c", Bug::Present),
        cell("sweep:x", "d", Bug::Present),
        cell("sweep:y", "d", Bug::Absent),
        cell("sweep:x", PATCHED, Bug::Absent),
        cell("sweep:y", PATCHED, Bug::Absent),
    ];
    let bug = crate::bugs::parse(
        "cause",
        "+++\ntitle = \"t\"\naction = \"new-issue\"\nseverity = \"error\"\nclaims = [\"x\", \"y\"]\n+++\nLead.\n## Cause\nc\n## Fix\nf\n",
    )
    .unwrap();
    let cause = RootCause {
        title: "t".into(),
        backends: vec!["cuda".into()],
        ids: vec!["x".into(), "y".into()],
        bug,
    };
    let causes = BTreeMap::from([("cause".to_string(), cause)]);
    let rows = root_cause_rows(&versions, &cells, &causes);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        r.bugs,
        vec![
            Bug::Absent,
            Bug::Absent,
            Bug::Present,
            Bug::Present,
            Bug::Absent
        ]
    );
    assert_eq!(r.introduced_in.as_deref(), Some("c"));
    assert_eq!(r.first_seen.as_deref(), Some("c"));
    // `patched` without it is not a release that fixed it.
    assert_eq!(r.fixed_in, None);
}

#[test]
fn a_backward_id_is_unknown_where_the_forward_of_its_op_diverges() {
    let base = std::env::temp_dir().join(format!("matrix-mask-{}", std::process::id()));
    let sweep = |v: &str, ids: &[&str]| {
        let d = base.join(v).join("sweep").join("cpu");
        std::fs::create_dir_all(&d).unwrap();
        let divergences = ids
            .iter()
            .map(|id| crate::sweep::report::Divergence {
                backends: ["cpu".to_string()].into(),
                cells: 1,
                ..crate::sweep::report::Divergence::new(
                    id,
                    "gelu_erf",
                    "forward",
                    crate::sweep::exec::Category::WrongResult,
                )
            })
            .collect();
        let op = crate::sweep::report::OpSummary {
            completed: true,
            ..Default::default()
        };
        let j = SweepReport {
            divergences,
            ops: [("gelu_erf".to_string(), op)].into(),
            ..Default::default()
        };
        std::fs::write(d.join("sweep.json"), serde_json::to_string(&j).unwrap()).unwrap();
    };
    sweep(
        "old",
        &[
            "gelu-erf-fwd-wrong-result",
            "gelu-erf-fwd-unimplemented-x-transposed",
        ],
    );
    sweep(
        "new",
        &[
            "gelu-erf-bwd-x-wrong-result",
            "gelu-erf-bwd-x-wrong-result-x-broadcast",
            "gelu-erf-fwd-unimplemented-x-transposed",
        ],
    );
    let runs: Vec<(String, PathBuf)> = ["old", "new"]
        .iter()
        .map(|v| (v.to_string(), base.join(v)))
        .collect();
    let cells = sweep_cells(&runs).unwrap();
    let bug = |case: &str, v: &str| {
        cells
            .iter()
            .find(|c| c.case == case && c.version == v)
            .map(|c| c.bug.clone())
    };
    // The old forward divergence hides the backward: not "absent", so no false regression.
    assert_eq!(
        bug("sweep:gelu-erf-bwd-x-wrong-result", "old"),
        Some(Bug::Unknown)
    );
    assert_eq!(
        bug("sweep:gelu-erf-bwd-x-wrong-result", "new"),
        Some(Bug::Present)
    );
    assert_eq!(
        bug("sweep:gelu-erf-fwd-wrong-result", "new"),
        Some(Bug::Absent)
    );
    // A forward divergence on transposed cells hides no backward of broadcast ones.
    assert_eq!(
        bug("sweep:gelu-erf-bwd-x-wrong-result-x-broadcast", "new"),
        Some(Bug::Present)
    );
    let id: DivergenceId = "gelu-erf-bwd-x-wrong-result-x-broadcast".parse().unwrap();
    assert_eq!(
        cells_needed(&id).0,
        &[("x".to_string(), crate::sweep::cell::Layout::Broadcast)][..]
    );
    std::fs::remove_dir_all(&base).unwrap();
}
