//! The version matrix report: reads the suite runs of several candle versions
//! (`<dir>/<backend>/suite.json` and the per-case JSON) and their sweeps
//! (`<dir>/sweep/<backend>/sweep.json`), and writes `matrix.{md,json}`: case or sweep divergence
//! × version × backend → verdict, plus "fixed in" / "regressed in" derived from the data.
//! A transition is claimed only between two versions that both have a definite answer on the
//! same backend: present in the earlier and absent in the later ("fixed in"), or the reverse.

use crate::error::Error;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    Present,
    Absent,
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub case: String,
    pub version: String,
    pub backend: String,
    pub verdict: String,
    /// The CPU disagreed with the oracle in some variant (a backend-independent or CPU bug).
    pub cpu_diverges: bool,
    pub bug: Bug,
}

#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub case: String,
    pub backend: String,
    pub kind: String,
    pub from_version: String,
    pub to_version: String,
}

#[derive(Debug, Serialize)]
pub struct Matrix {
    pub versions: Vec<String>,
    pub cells: Vec<Cell>,
    pub transitions: Vec<Transition>,
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

fn read_json(p: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Reads every `<backend>/suite.json` under each version's report folder.
pub fn collect(runs: &[(String, PathBuf)]) -> Result<Matrix, String> {
    let mut cells = Vec::new();
    for (version, dir) in runs {
        for backend in crate::manifest::BACKENDS {
            let suite = dir.join(backend).join("suite.json");
            if !suite.is_file() {
                continue;
            }
            let suite = read_json(&suite)?;
            for c in suite["cases"].as_array().ok_or("suite.json has no cases")? {
                let case = c["case"].as_str().unwrap_or_default().to_string();
                let verdict = c["verdict"].as_str().unwrap_or("inconclusive").to_string();
                let case_json = read_json(&dir.join(backend).join(format!("{case}.json"))).ok();
                let cpu_diverges = case_json
                    .as_ref()
                    .and_then(|j| j["variants"].as_array())
                    .is_some_and(|vs| vs.iter().any(|v| v["reference_disagrees"] == true));
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
        return Err("no suite.json found under the given run folders".into());
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
        versions,
        cells,
        transitions,
    })
}

/// The sweep's divergences as matrix rows (`sweep:<id>`): present in a version whose sweep on
/// that backend saw it, absent in one whose sweep completed the divergence's op without seeing it.
fn sweep_cells(runs: &[(String, PathBuf)]) -> Result<Vec<Cell>, String> {
    // (version, backend) → (ids seen, ops completed)
    let mut seen = Vec::new();
    let mut op_of = std::collections::BTreeMap::new();
    for (version, dir) in runs {
        for backend in crate::manifest::BACKENDS {
            let p = dir.join("sweep").join(backend).join("sweep.json");
            if !p.is_file() {
                continue;
            }
            let j = read_json(&p)?;
            let mut ids = std::collections::BTreeSet::new();
            for d in j["divergences"].as_array().into_iter().flatten() {
                let id = d["id"].as_str().unwrap_or_default().to_string();
                op_of.insert(id.clone(), d["op"].as_str().unwrap_or_default().to_string());
                ids.insert(id);
            }
            let completed: std::collections::BTreeSet<String> = j["ops"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, o)| o["completed"] == true)
                .map(|(k, _)| k.clone())
                .collect();
            seen.push((version.clone(), backend.to_string(), ids, completed));
        }
    }
    let mut cells = Vec::new();
    for (id, op) in &op_of {
        for (version, backend, ids, completed) in &seen {
            let (verdict, bug) = if ids.contains(id) {
                ("diverges", Bug::Present)
            } else if completed.contains(op) {
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

pub fn markdown(m: &Matrix, sources: &[(String, PathBuf)]) -> String {
    let mut md = String::from("# candle version matrix\n\nGenerated by `scripts/matrix.sh report` from the suite runs listed at the end. A cell is the suite's verdict; `cpu≠oracle` marks runs where the CPU itself disagreed with the oracle. \"Fixed in\" needs the bug present in the earlier version and absent in the later one on the same backend (\"regressed in\" the reverse); inconclusive runs are skipped.\n\n");
    let mut backends: Vec<String> = m.cells.iter().map(|c| c.backend.clone()).collect();
    backends.sort();
    backends.dedup();
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
            if let Ok(j) = read_json(&suite) {
                let t = &j["target"];
                let driver = t["driver"]
                    .as_str()
                    .map(|d| format!(", driver {d}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "- candle {v} on {backend}: {} ({}{driver}) — `{}`",
                    t["location"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    j["command"].as_str().unwrap_or("")
                );
            }
        }
    }
    md
}

/// `repro matrix-report --out DIR VERSION=RUNDIR...`: an unreadable run is bad input (exit 2),
/// a failed write is this program's failure (exit 1).
pub fn write(out: &Path, runs: &[(String, PathBuf)]) -> Result<Vec<PathBuf>, Error> {
    let m = collect(runs).map_err(Error::BadInput)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, backend: &str, case: &str, verdict: &str, cpu_diverges: bool) {
        let d = dir.join(backend);
        std::fs::create_dir_all(&d).unwrap();
        let suite = serde_json::json!({"cases": [{"case": case, "verdict": verdict}], "target": {"location": backend, "name": "x"}, "command": "c"});
        std::fs::write(d.join("suite.json"), suite.to_string()).unwrap();
        let case_json = serde_json::json!({"variants": [{"reference_disagrees": cpu_diverges}]});
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
        let m = collect(&runs).unwrap();
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
}
