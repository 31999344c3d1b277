//! Writing a run's outputs: the reports and issue texts, and with `--bless` the manifest and the
//! standalone repros.

use super::{SweepConfig, SweepReport};
use crate::error::Error;
use crate::sweep::known::{self, KnownSet};
use crate::sweep::ops;
use harness::report::write_atomic;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// File name of a divergence's standalone repro.
pub fn repro_file_name(id: &str) -> String {
    format!("sweep_{}.rs", id.replace('-', "_"))
}

/// Writes `reports/sweep/<backend>/` (sweep.json, sweep.txt, one issue text per divergence)
/// and the standalone repros.
pub fn write_outputs(cfg: &SweepConfig, r: &SweepReport) -> std::io::Result<Vec<PathBuf>> {
    let dir = cfg.report_dir.join("sweep").join(&r.target.backend);
    std::fs::create_dir_all(&dir)?;
    let mut written = Vec::new();
    let device = &r.target.to_string();
    for d in &r.divergences {
        let (Some(s), Some(op)) = (&d.repro, ops::find(&d.op)) else {
            continue;
        };
        let source = crate::sweep::emit::repro_source(op, s, &d.title, &r.command);
        let md = crate::sweep::emit::issue_markdown(op, d, s, device, &r.command, &source);
        let p = dir.join(format!("{}.md", d.id));
        write_atomic(&p, &md)?;
        written.push(p);
    }
    let p = dir.join("sweep.json");
    write_atomic(
        &p,
        &(serde_json::to_string_pretty(r).expect("serialisable") + "\n"),
    )?;
    written.push(p);
    let p = dir.join("sweep.txt");
    write_atomic(&p, &r.table())?;
    written.push(p);
    // A run of every op that finished them all replaces the folder's evidence: the issue text of
    // a divergence it no longer shows goes (a partial run leaves the others alone).
    let complete = r.ops.len() == ops::OPS.len() && r.ops.values().all(|o| o.completed);
    if complete {
        let shown: BTreeSet<String> = r
            .divergences
            .iter()
            .map(|d| format!("{}.md", d.id))
            .collect();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") && !shown.contains(&name) {
                std::fs::remove_file(dir.join(&name))?;
            }
        }
    }
    Ok(written)
}

/// Rewrites the manifest from a run: entries seen now get this run's backends and devices
/// (keeping their first-seen version); entries on backends that did not
/// run are kept.
pub fn bless(cfg: &SweepConfig, r: &SweepReport) -> Result<Vec<PathBuf>, Error> {
    let mut known = KnownSet::load(&cfg.manifest)?;
    let seen: Vec<known::Seen> = r
        .divergences
        .iter()
        .map(|d| known::Seen {
            id: d.id.clone(),
            category: d.category.as_str().into(),
            backends: d.backends.clone(),
        })
        .collect();
    let completed: BTreeSet<String> = r
        .ops
        .iter()
        .filter(|(_, o)| o.completed)
        .map(|(k, _)| k.clone())
        .collect();
    let devices: BTreeMap<String, String> = r
        .backends
        .iter()
        .map(|b| {
            let dev = if *b == r.target.backend {
                r.target.to_string()
            } else {
                "cpu".into()
            };
            (b.clone(), dev)
        })
        .collect();
    known::apply_run(
        &mut known,
        &seen,
        &r.backends,
        &completed,
        ops::op_of,
        &devices,
        &r.candle_version,
    );
    write_atomic(&cfg.manifest, &known.to_toml()).map_err(|e| Error::Internal(e.to_string()))?;
    let mut written = vec![cfg.manifest.clone()];
    // Repros are written only by a run that saw every backend the manifest lists for them, so
    // a CPU-only run never replaces the evidence of a CUDA run.
    std::fs::create_dir_all(&cfg.repro_dir).map_err(|e| Error::Internal(e.to_string()))?;
    for d in &r.divergences {
        let (Some(s), Some(op), Some(k)) = (&d.repro, ops::find(&d.op), known.entries.get(&d.id))
        else {
            continue;
        };
        let p = cfg.repro_dir.join(repro_file_name(&d.id));
        if p.exists() && !k.backends.iter().all(|b| r.backends.contains(b)) {
            continue;
        }
        let title = crate::sweep::emit::title(op, s, &k.backends);
        write_atomic(
            &p,
            &crate::sweep::emit::repro_source(op, s, &title, &r.command),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        rustfmt(&p);
        written.push(p);
    }
    // The repro of a divergence the manifest no longer lists goes with it.
    let listed: BTreeSet<String> = known
        .entries
        .iter()
        .filter(|(_, k)| k.observed)
        .map(|(id, _)| repro_file_name(id))
        .collect();
    for entry in std::fs::read_dir(&cfg.repro_dir).map_err(|e| Error::Internal(e.to_string()))? {
        let name = entry
            .map_err(|e| Error::Internal(e.to_string()))?
            .file_name();
        let name = name.to_string_lossy();
        if name.starts_with("sweep_") && name.ends_with(".rs") && !listed.contains(name.as_ref()) {
            let p = cfg.repro_dir.join(name.as_ref());
            std::fs::remove_file(&p)
                .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
        }
    }
    Ok(written)
}

/// Formats an emitted repro so the workspace's `cargo fmt --check` holds; best effort (without
/// rustfmt the file is still valid Rust).
fn rustfmt(p: &Path) {
    let _ = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
