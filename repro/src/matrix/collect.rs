//! Reading the runs: each version's suite and sweep reports become cells (case or `sweep:<id>`
//! × version × backend → verdict), and consecutive definite answers become transitions.

use super::root_causes::root_cause_rows;
use super::{Bug, Cell, Matrix, Transition};
use crate::error::Error;
use crate::runner::SuiteReport;
use crate::sweep::id::{DivergenceId, Pass};
use crate::sweep::known::RootCause;
use crate::sweep::report::SweepReport;
use harness::case::CaseReport;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Whether the case's bug shows in this run. On an accelerator the verdict decides; on the CPU
/// (where the verdict about a GPU is always inconclusive) a divergence of the CPU from the oracle.
fn bug_of(backend: &str, verdict: &str, cpu_diverges: bool) -> Bug {
    match verdict {
        "reproduced" | "crashed" | "hung" => Bug::Present,
        _ if backend == "cpu" => {
            if cpu_diverges {
                Bug::Present
            } else {
                Bug::Absent
            }
        }
        "not-reproduced" | "caller-error" => Bug::Absent,
        _ => Bug::Unknown,
    }
}

/// Reads every `<backend>/suite.json` under each version's report folder.
pub fn collect(
    runs: &[(String, PathBuf)],
    causes: &BTreeMap<String, RootCause>,
) -> Result<Matrix, Error> {
    let mut cells = Vec::new();
    for (version, dir) in runs {
        for backend in crate::manifest::BACKENDS {
            let suite = dir.join(backend).join("suite.json");
            if !suite.is_file() {
                continue;
            }
            let suite = SuiteReport::read(&suite).map_err(Error::BadInput)?;
            for c in &suite.cases {
                let case = c.case.clone();
                let verdict = c.verdict.as_str().to_string();
                let case_json = dir.join(backend).join(format!("{case}.json"));
                let cpu_diverges = CaseReport::read(&case_json)
                    .is_ok_and(|r| r.variants.iter().any(|v| v.reference_disagrees));
                let bug = bug_of(backend, &verdict, cpu_diverges);
                cells.push(Cell {
                    case,
                    version: version.clone(),
                    backend: backend.into(),
                    verdict,
                    cpu_diverges,
                    bug,
                });
            }
        }
    }
    cells.extend(sweep_cells(runs)?);
    if cells.is_empty() {
        return Err(Error::input(
            "no suite.json found under the given run folders",
        ));
    }
    let versions: Vec<String> = runs.iter().map(|(v, _)| v.clone()).collect();
    let mut transitions = Vec::new();
    let mut keys: Vec<(String, String)> = cells
        .iter()
        .map(|c| (c.case.clone(), c.backend.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    for (case, backend) in keys {
        let seq: Vec<&Cell> = versions
            .iter()
            .filter_map(|v| {
                cells
                    .iter()
                    .find(|c| c.case == case && c.backend == backend && &c.version == v)
            })
            .filter(|c| c.bug != Bug::Unknown)
            .collect();
        for w in seq.windows(2) {
            let kind = match (&w[0].bug, &w[1].bug) {
                (Bug::Present, Bug::Absent) => "fixed in",
                (Bug::Absent, Bug::Present) => "regressed in",
                _ => continue,
            };
            transitions.push(Transition {
                case: case.clone(),
                backend: backend.clone(),
                kind: kind.into(),
                from_version: w[0].version.clone(),
                to_version: w[1].version.clone(),
            });
        }
    }
    Ok(Matrix {
        root_causes: root_cause_rows(&versions, &cells, causes),
        versions,
        cells,
        transitions,
    })
}

/// The sweep's divergences as matrix rows (`sweep:<id>`): present in a version whose sweep on
/// that backend saw it, absent in one whose sweep completed the divergence's op without seeing it.
pub(super) fn sweep_cells(runs: &[(String, PathBuf)]) -> Result<Vec<Cell>, Error> {
    // (version, backend) → (ids seen, ops completed)
    let mut seen = Vec::new();
    let mut op_of = std::collections::BTreeMap::new();
    for (version, dir) in runs {
        for backend in crate::manifest::BACKENDS {
            let p = dir.join("sweep").join(backend).join("sweep.json");
            if !p.is_file() {
                continue;
            }
            let r = SweepReport::read(&p).map_err(Error::BadInput)?;
            let mut ids = std::collections::BTreeSet::new();
            for d in &r.divergences {
                op_of.insert(d.id.clone(), d.op.clone());
                // An accelerator's sweep runs the CPU too: a divergence only the CPU showed
                // there is the CPU's (its own run records it), not this backend's.
                if d.backends.iter().any(|b| b == backend) {
                    ids.insert(d.id.clone());
                }
            }
            // An op counts as swept for an id when it completed and, for an id that names an
            // i16/i32 index or condition, when this build swept that dtype (a run that does not
            // record its dtypes is taken to have swept them all).
            let completed: std::collections::BTreeSet<String> = r
                .ops
                .iter()
                .filter(|(_, o)| o.completed)
                .flat_map(|(k, o)| {
                    let aux = &o.aux_dtypes;
                    let narrow = ["i16", "i32"]
                        .into_iter()
                        .filter(|d| aux.is_empty() || aux.iter().any(|a| a == d))
                        .map(|d| format!("{k}/{d}"));
                    std::iter::once(k.clone()).chain(narrow).collect::<Vec<_>>()
                })
                .collect();
            seen.push((version.clone(), backend.to_string(), ids, completed));
        }
    }
    let mut cells = Vec::new();
    for (id, op) in &op_of {
        // The sweep judges an op's backward only where its forward was right: a backward id
        // says nothing in a version whose sweep shows a forward divergence of the same op on
        // the same cells (contiguous ones, or the backward id's own layouts).
        let parsed = id.parse::<DivergenceId>().ok();
        let is_backward = parsed.as_ref().is_some_and(|p| p.pass != Pass::Forward);
        let masks = |fwd: &str| {
            let (Ok(f), Some(p)) = (fwd.parse::<DivergenceId>(), parsed.as_ref()) else {
                return false;
            };
            f.op == p.op
                && f.pass == Pass::Forward
                && (cells_needed(&f) == (&[][..], None, None, None)
                    || cells_needed(&f) == cells_needed(p))
        };
        for (version, backend, ids, completed) in &seen {
            let masked = is_backward && ids.iter().any(|i| masks(i));
            let (verdict, bug) = if ids.contains(id) {
                ("diverges", Bug::Present)
            } else if masked {
                ("masked by a forward divergence", Bug::Unknown)
            } else if completed.contains(&swept_as(op, id)) {
                ("agrees", Bug::Absent)
            } else {
                ("not swept", Bug::Unknown)
            };
            cells.push(Cell {
                case: format!("sweep:{id}"),
                version: version.clone(),
                backend: backend.clone(),
                verdict: verdict.into(),
                cpu_diverges: false,
                bug,
            });
        }
    }
    Ok(cells)
}

/// The key `completed` holds for an id: its op, or `op/i16` / `op/i32` for an id that names
/// one of those index or condition dtypes (`…-unimplemented-i32-index`).
/// The op as a run records it swept: `op`, or `op/i32` for an id that names an i16/i32 index or
/// condition dtype.
pub(super) fn swept_as(op: &str, id: &str) -> String {
    match id.parse::<DivergenceId>().ok().and_then(|p| p.aux) {
        Some((dtype, _)) => format!("{op}/{dtype}"),
        None => op.to_string(),
    }
}

/// What an id says about the cells that show it: the layouts, the aux dtype, the hazard and
/// the value class (empty for plain contiguous cells).
pub(super) type CellsNeeded<'a> = (
    &'a [(String, crate::sweep::cell::Layout)],
    Option<&'a (String, String)>,
    Option<crate::sweep::cell::Hazard>,
    Option<crate::sweep::cell::Values>,
);

pub(super) fn cells_needed(id: &DivergenceId) -> CellsNeeded<'_> {
    (&id.layouts, id.aux.as_ref(), id.hazard, id.values)
}
