//! The version matrix report: reads the suite runs of several candle versions
//! (`<dir>/<backend>/suite.json` and the per-case JSON) and their sweeps
//! (`<dir>/sweep/<backend>/sweep.json`), and writes `matrix.{md,json}`: case or sweep divergence
//! × version × backend → verdict, plus "fixed in" / "regressed in" derived from the data.
//! A transition is claimed only between two versions that both have a definite answer on the
//! same backend: present in the earlier and absent in the later ("fixed in"), or the reverse.

use crate::error::Error;
use crate::runner::SuiteReport;
use crate::sweep::id::{Claim, DivergenceId, Pass};
use crate::sweep::known::RootCause;
use crate::sweep::report::SweepReport;
use harness::case::CaseReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    Present,
    Absent,
    Unknown,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    pub case: String,
    pub version: String,
    pub backend: String,
    pub verdict: String,
    /// The CPU disagreed with the oracle in some variant (a backend-independent or CPU bug).
    pub cpu_diverges: bool,
    pub bug: Bug,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transition {
    pub case: String,
    pub backend: String,
    pub kind: String,
    pub from_version: String,
    pub to_version: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub versions: Vec<String>,
    pub cells: Vec<Cell>,
    pub transitions: Vec<Transition>,
    /// One row per (root cause of repro/bugs/, backend): its ids folded together.
    pub root_causes: Vec<RootCauseRow>,
}

impl Matrix {
    /// Reads a `matrix.json` that `matrix-report` wrote (the upstream texts' version rows).
    pub fn read(p: &Path) -> Result<Matrix, Error> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))
    }
}

/// The pseudo-version of scripts/patched.sh: the pin with patches/ applied, not a release.
pub const PATCHED: &str = "patched";

/// A root cause on one backend across the versions: present where any of its ids shows, absent
/// where none shows and at least one id's op ran without it (an op the version lacks says
/// nothing), unknown where none ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RootCauseRow {
    pub root_cause: String,
    pub backend: String,
    /// Bug per version, in `Matrix::versions` order.
    pub bugs: Vec<Bug>,
    /// The first release that shows it after one that did not; `None` when no release before it
    /// was seen without it.
    pub introduced_in: Option<String>,
    /// The oldest release that shows it.
    pub first_seen: Option<String>,
    /// The first release without it after one that showed it.
    pub fixed_in: Option<String>,
}

fn root_cause_rows(
    versions: &[String],
    cells: &[Cell],
    causes: &BTreeMap<String, RootCause>,
) -> Vec<RootCauseRow> {
    let mut rows = Vec::new();
    for (key, cause) in causes.iter().filter(|(k, _)| RootCause::is_bug(k)) {
        let members: Vec<String> = cause
            .ids
            .iter()
            .map(|id| Claim::parse(id).matrix_row())
            .collect();
        let mut backends: Vec<&str> = cells
            .iter()
            .filter(|c| members.contains(&c.case))
            .map(|c| c.backend.as_str())
            .collect();
        backends.sort();
        backends.dedup();
        for backend in backends {
            let bugs: Vec<Bug> = versions
                .iter()
                .map(|v| {
                    let of: Vec<&Bug> = cells
                        .iter()
                        .filter(|c| {
                            &c.version == v && c.backend == backend && members.contains(&c.case)
                        })
                        .map(|c| &c.bug)
                        .collect();
                    // An id whose op this version lacks (or did not run) says nothing; the
                    // others decide.
                    if of.contains(&&Bug::Present) {
                        Bug::Present
                    } else if of.contains(&&Bug::Absent) {
                        Bug::Absent
                    } else {
                        Bug::Unknown
                    }
                })
                .collect();
            // A backend the root cause is not known on, and where no version shows it, is noise.
            if !cause.backends.iter().any(|b| b == backend) && !bugs.contains(&Bug::Present) {
                continue;
            }
            // Releases only: `patched` is not a point in candle's history.
            let releases: Vec<(&String, &Bug)> = versions
                .iter()
                .zip(&bugs)
                .filter(|(v, b)| v.as_str() != PATCHED && **b != Bug::Unknown)
                .collect();
            let first_after = |from: &Bug, to: &Bug| {
                releases
                    .windows(2)
                    .find(|w| w[0].1 == from && w[1].1 == to)
                    .map(|w| w[1].0.clone())
            };
            rows.push(RootCauseRow {
                root_cause: key.clone(),
                backend: backend.to_string(),
                introduced_in: first_after(&Bug::Absent, &Bug::Present),
                first_seen: releases
                    .iter()
                    .find(|(_, b)| **b == Bug::Present)
                    .map(|(v, _)| (*v).clone()),
                fixed_in: first_after(&Bug::Present, &Bug::Absent),
                bugs,
            });
        }
    }
    rows
}

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
fn sweep_cells(runs: &[(String, PathBuf)]) -> Result<Vec<Cell>, Error> {
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
fn swept_as(op: &str, id: &str) -> String {
    match id.parse::<DivergenceId>().ok().and_then(|p| p.aux) {
        Some((dtype, _)) => format!("{op}/{dtype}"),
        None => op.to_string(),
    }
}

/// What an id says about the cells that show it: the layouts, the aux dtype, the hazard and
/// the value class (empty for plain contiguous cells).
type CellsNeeded<'a> = (
    &'a [(String, crate::sweep::cell::Layout)],
    Option<&'a (String, String)>,
    Option<crate::sweep::cell::Hazard>,
    Option<crate::sweep::cell::Values>,
);

fn cells_needed(id: &DivergenceId) -> CellsNeeded<'_> {
    (&id.layouts, id.aux.as_ref(), id.hazard, id.values)
}

pub fn markdown(m: &Matrix, sources: &[(String, PathBuf)]) -> String {
    let mut md = String::from("# candle version matrix\n\nGenerated by `scripts/matrix.sh report` from the suite runs listed at the end. A cell is the suite's verdict; `cpu≠oracle` marks runs where the CPU itself disagreed with the oracle. \"Fixed in\" needs the bug present in the earlier version and absent in the later one on the same backend (\"regressed in\" the reverse); inconclusive runs are skipped.\n\n");
    let mut backends: Vec<String> = m.cells.iter().map(|c| c.backend.clone()).collect();
    backends.sort();
    backends.dedup();
    md.push_str(&root_cause_markdown(m));
    let mut cases: Vec<String> = Vec::new();
    for c in &m.cells {
        if !cases.contains(&c.case) {
            cases.push(c.case.clone());
        }
    }
    for backend in &backends {
        let _ = writeln!(md, "## {backend}\n");
        let _ = writeln!(
            md,
            "| case | {} | fixed in | regressed in |",
            m.versions.join(" | ")
        );
        let _ = writeln!(md, "|---|{}---|---|", "---|".repeat(m.versions.len()));
        for case in &cases {
            let cells: Vec<String> = m
                .versions
                .iter()
                .map(|v| {
                    match m
                        .cells
                        .iter()
                        .find(|c| &c.case == case && &c.backend == backend && &c.version == v)
                    {
                        Some(c) if c.cpu_diverges => format!("{} (cpu≠oracle)", c.verdict),
                        Some(c) => c.verdict.clone(),
                        None => "—".into(),
                    }
                })
                .collect();
            let list = |kind: &str| {
                let v: Vec<String> = m
                    .transitions
                    .iter()
                    .filter(|t| &t.case == case && &t.backend == backend && t.kind == kind)
                    .map(|t| format!("{} (was {})", t.to_version, t.from_version))
                    .collect();
                if v.is_empty() {
                    "—".into()
                } else {
                    v.join(", ")
                }
            };
            let _ = writeln!(
                md,
                "| `{case}` | {} | {} | {} |",
                cells.join(" | "),
                list("fixed in"),
                list("regressed in")
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Runs\n");
    for (v, dir) in sources {
        for backend in &backends {
            let suite = dir.join(backend).join("suite.json");
            if let Ok(j) = SuiteReport::read(&suite) {
                let _ = writeln!(
                    md,
                    "- candle {v} on {backend}: {} — `{}`",
                    j.target,
                    portable_command(&j.command, v)
                );
            }
        }
    }
    md
}

fn root_cause_markdown(m: &Matrix) -> String {
    if m.root_causes.is_empty() {
        return String::new();
    }
    let mut md = format!("## Root causes: introduced in\n\nOne row per root cause (`repro/bugs/`) and backend, its ids folded together: `shows` where any of them diverged, `absent` where none did and at least one's op ran (an op the version lacks says nothing), `—` where none ran there. \"Introduced in\" is the first release that shows it after a release without it; \"X or earlier\" when the oldest release that ran already shows it. `{PATCHED}` is the pinned release with `patches/` applied (scripts/patched.sh), not a release, and takes no part in either column.\n\n");
    let _ = writeln!(
        md,
        "| root cause | backend | {} | introduced in | fixed in |",
        m.versions.join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}---|---|", "---|".repeat(m.versions.len()));
    for r in &m.root_causes {
        let bugs: Vec<&str> = r
            .bugs
            .iter()
            .map(|b| match b {
                Bug::Present => "shows",
                Bug::Absent => "absent",
                Bug::Unknown => "—",
            })
            .collect();
        let introduced = match (&r.introduced_in, &r.first_seen) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) => format!("{v} or earlier"),
            (None, None) => "—".into(),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {introduced} | {} |",
            r.root_cause,
            r.backend,
            bugs.join(" | "),
            r.fixed_in.as_deref().unwrap_or("—")
        );
    }
    md.push('\n');
    md
}

/// A run's command with its report folder (a path on the machine that ran it) written as
/// scripts/matrix.sh lays it out: `<matrix dir>/<version>/reports`.
fn portable_command(command: &str, version: &str) -> String {
    let mut words: Vec<String> = command.split(' ').map(str::to_string).collect();
    if let Some(i) = words.iter().position(|w| w == "--report-dir") {
        if let Some(dir) = words.get_mut(i + 1) {
            *dir = format!("<matrix dir>/{version}/reports");
        }
    }
    words.join(" ")
}

/// `repro matrix-report --out DIR VERSION=RUNDIR...`: an unreadable run is bad input (exit 2),
/// a failed write is this program's failure (exit 1).
pub fn write(
    out: &Path,
    runs: &[(String, PathBuf)],
    root_causes: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let causes = crate::sweep::known::load_root_causes(root_causes)?;
    let m = collect(runs, &causes)?;
    let io = |p: &Path, e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let md_path = out.join("matrix.md");
    let json_path = out.join("matrix.json");
    harness::report::write_atomic(&md_path, &markdown(&m, runs)).map_err(|e| io(&md_path, e))?;
    harness::report::write_atomic(
        &json_path,
        &(serde_json::to_string_pretty(&m).unwrap() + "\n"),
    )
    .map_err(|e| io(&json_path, e))?;
    Ok(vec![md_path, json_path])
}

/// `repro matrix-report --refold`: the root-cause rows of an existing `matrix.json` folded
/// again from its cells with the current bug files (after bug files merge or split root causes),
/// without the per-version runs; `matrix.md` keeps its list of runs.
pub fn refold(out: &Path, root_causes: &Path) -> Result<Vec<PathBuf>, Error> {
    let causes = crate::sweep::known::load_root_causes(root_causes)?;
    let json_path = out.join("matrix.json");
    let md_path = out.join("matrix.md");
    let mut m = Matrix::read(&json_path)?;
    let old_md = std::fs::read_to_string(&md_path)
        .map_err(|e| Error::BadInput(format!("{}: {e}", md_path.display())))?;
    let runs = old_md
        .find("## Runs\n")
        .map(|i| &old_md[i..])
        .ok_or_else(|| {
            Error::BadInput(format!("{} has no `## Runs` section", md_path.display()))
        })?;
    m.root_causes = root_cause_rows(&m.versions, &m.cells, &causes);
    let md = markdown(&m, &[]);
    let md = format!("{}{runs}", md.trim_end_matches("## Runs\n\n"));
    let io = |p: &Path, e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
    harness::report::write_atomic(&md_path, &md).map_err(|e| io(&md_path, e))?;
    harness::report::write_atomic(
        &json_path,
        &(serde_json::to_string_pretty(&m).unwrap() + "\n"),
    )
    .map_err(|e| io(&json_path, e))?;
    Ok(vec![md_path, json_path])
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    id: id.to_string(),
                    op: "gelu_erf".into(),
                    pass: "forward".into(),
                    category: crate::sweep::exec::Category::WrongResult,
                    backends: ["cpu".to_string()].into(),
                    dtypes: Default::default(),
                    cells: 1,
                    title: String::new(),
                    repro: None,
                    death: None,
                    status: None,
                    status_message: String::new(),
                    upstream: None,
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
}
