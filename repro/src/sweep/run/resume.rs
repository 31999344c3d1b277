//! Finishing, in fresh processes, the shrinks that a device assert interrupted.

use super::gather::Gathered;
use super::jobs::command;
use super::SweepConfig;
use crate::child::LineChild;
use crate::sweep::{ops, ChildLine, Shrunk};
use std::time::Instant;

/// Finishes every divergence's interrupted shrink; a shrunk cell that names a divergence already
/// seen joins it.
pub(super) fn finish_interrupted_shrinks(cfg: &SweepConfig, g: &mut Gathered, deadline: Instant) {
    let pending: Vec<(String, Shrunk)> = g
        .divergences
        .iter()
        .filter_map(|(id, d)| {
            d.repro
                .as_ref()
                .filter(|r| !r.complete)
                .map(|r| (id.clone(), r.clone()))
        })
        .collect();
    for (id, s) in pending {
        let Some(op) = ops::find(&s.cell.op) else {
            continue;
        };
        let Some(done) = resume_shrink(cfg, op, &s, deadline) else {
            continue;
        };
        let mut d = g.divergences.remove(&id).expect("listed above");
        let new_id = done.id.clone();
        d.repro = Some(done);
        match g.divergences.get_mut(&new_id) {
            // The shrunk cell names a divergence already seen: one divergence.
            Some(other) => {
                other.cells += d.cells;
                other.dtypes.extend(d.dtypes);
                other.backends.extend(d.backends);
                if other.repro.as_ref().is_none_or(|r| !r.complete) {
                    other.repro = d.repro;
                }
            }
            None => {
                d.id = new_id.clone();
                g.divergences.insert(new_id, d);
            }
        }
    }
}

/// Finishes, in fresh processes, a shrink that a device assert interrupted. Each process gets
/// at most one cell deadline; none outlives the sweep's budget.
fn resume_shrink(cfg: &SweepConfig, op: &ops::Op, s: &Shrunk, deadline: Instant) -> Option<Shrunk> {
    let mut job = crate::sweep::ShrinkJob {
        start: s.resume_from.clone()?,
        finding: s.finding.clone(),
        skip: s.skip.clone(),
    };
    let path =
        std::env::temp_dir().join(format!("sweep-shrink-{}-{}.json", std::process::id(), s.id));
    let mut result = None;
    for _ in 0..40 {
        if Instant::now() >= deadline {
            break;
        }
        if std::fs::write(&path, serde_json::to_string(&job).expect("serialisable")).is_err() {
            break;
        }
        let until = deadline.min(Instant::now() + cfg.cell_timeout);
        let Ok((_, lines, _)) = command(cfg, op, |cmd| {
            cmd.arg("--shrink-job").arg(&path);
        })
        .and_then(LineChild::spawn)
        .and_then(|c| c.collect(until)) else {
            break;
        };
        let mut next = None;
        for line in lines {
            match serde_json::from_str::<ChildLine>(&line) {
                Ok(ChildLine::Shrunk(done)) => result = Some(*done),
                Ok(ChildLine::Resume { best, skip }) => next = Some((best, skip)),
                _ => {}
            }
        }
        match (result.is_some(), next) {
            (false, Some((best, skip))) => {
                job.start = *best;
                job.skip.push(*skip);
            }
            _ => break,
        }
    }
    let _ = std::fs::remove_file(&path);
    result
}
