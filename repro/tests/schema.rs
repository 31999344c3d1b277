//! One schema per report: every committed report reads back through its type (the function
//! every reader uses) and writes out as the same JSON, so no field is dropped or invented on
//! the way, and no reader needs to look at raw JSON.

use harness::case::CaseReport;
use repro::matrix::Matrix;
use repro::runner::SuiteReport;
use repro::sweep::report::SweepReport;
use serde::Serialize;
use std::path::{Path, PathBuf};

fn reports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports")
}

/// The file's JSON and the typed value's JSON, with `schema_version` taken out of both (it
/// defaults to 1 in files written before it existed).
fn same_json<T: Serialize>(path: &Path, typed: &T) -> Result<(), String> {
    let strip = |mut v: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("schema_version");
        }
        v
    };
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    if strip(file) == strip(back) {
        Ok(())
    } else {
        Err("reading it and writing it back changes it".into())
    }
}

#[test]
fn every_committed_report_round_trips_through_its_type() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut check = |p: &Path, r: Result<(), String>| {
        checked += 1;
        if let Err(e) = r {
            failures.push(format!("{}: {e}", p.display()));
        }
    };
    for backend in repro::manifest::BACKENDS {
        let sweep = reports().join("sweep").join(backend).join("sweep.json");
        if sweep.is_file() {
            let r = SweepReport::read(&sweep).and_then(|r| same_json(&sweep, &r));
            check(&sweep, r);
        }
        let dir = reports().join(backend);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name == "suite.json" {
                let r = SuiteReport::read(&p).and_then(|r| same_json(&p, &r));
                check(&p, r);
            } else if let Some(case) = name.strip_suffix(".json") {
                // Case reports only; the performance repros and moe_bench write their own.
                if repro::cases::all().iter().any(|c| c.name == case) {
                    let r = CaseReport::read(&p).and_then(|r| same_json(&p, &r));
                    check(&p, r);
                }
            }
        }
    }
    let matrix = reports().join("matrix.json");
    let r = Matrix::read(&matrix)
        .map_err(|e| e.to_string())
        .and_then(|m| same_json(&matrix, &m));
    check(&matrix, r);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // cpu and cuda: a sweep, a suite and four cases each, and the matrix.
    assert!(checked >= 13, "only {checked} reports found under reports/");
}

#[test]
fn a_report_of_a_newer_schema_is_refused_in_one_line() {
    let p = reports().join("sweep/cpu/sweep.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["schema_version"] = 99.into();
    let e = SweepReport::parse(&v.to_string()).unwrap_err();
    assert!(e.contains("schema 99 is newer"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}
