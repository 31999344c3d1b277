//! Running the jobs: one per op (its in-contract cells) and one per hazard cell, spread over
//! worker threads; each job's child process is watched, and started again past a cell that
//! killed it, hung in it or poisoned its device context.

use super::gather::{record, record_death, Death, Gathered};
use super::SweepConfig;
use crate::child::{last_words, Ended, LineChild, Next};
use crate::sweep::{ops, plan, ChildLine, CHILD};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(super) enum Job {
    /// Every in-contract cell of the op, from this index on.
    Safe(&'static ops::Op, usize),
    /// One hazard cell, alone in its process.
    Only(&'static ops::Op, usize),
}

/// Every job of the ops asked for, and how many cells each op plans.
pub(super) fn plan_jobs(cfg: &SweepConfig) -> (Vec<Job>, BTreeMap<String, usize>) {
    let mut jobs = Vec::new();
    let mut planned = BTreeMap::new();
    for op in &cfg.ops {
        let cells = plan(op, cfg.seed, cfg.random);
        planned.insert(op.name.to_string(), cells.len());
        jobs.push(Job::Safe(op, 0));
        for (k, c) in cells.iter().enumerate() {
            if c.hazard.is_some() {
                jobs.push(Job::Only(op, k));
            }
        }
    }
    (jobs, planned)
}

/// Runs every job on `cfg.jobs` worker threads; a job still queued when the budget runs out
/// marks its op incomplete.
pub(super) fn run_jobs(cfg: &SweepConfig, jobs: Vec<Job>, deadline: Instant) -> Gathered {
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().collect::<std::collections::VecDeque<_>>(),
    ));
    let gathered = Mutex::new(Gathered::default());
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| loop {
                let job = queue.lock().unwrap().pop_front();
                match job {
                    Some(j) if Instant::now() < deadline => run_job(cfg, j, deadline, &gathered),
                    Some(Job::Safe(op, _)) | Some(Job::Only(op, _)) => {
                        gathered
                            .lock()
                            .unwrap()
                            .incomplete
                            .entry(op.name.into())
                            .or_insert_with(|| {
                                format!("the sweep's budget ({} s) ran out", cfg.budget.as_secs())
                            });
                    }
                    None => break,
                }
            });
        }
    });
    gathered.into_inner().unwrap()
}

fn child_command(
    cfg: &SweepConfig,
    op: &ops::Op,
    from: usize,
    only: Option<usize>,
    known: Option<&Path>,
) -> std::io::Result<Command> {
    command(cfg, op, |cmd| {
        cmd.args(["--seed", &cfg.seed.to_string()])
            .args(["--random", &cfg.random.to_string()])
            .args(["--from", &from.to_string()]);
        if let Some(k) = only {
            cmd.args(["--only", &k.to_string()]);
        }
        if let Some(p) = known {
            cmd.arg("--known-ids").arg(p);
        }
    })
}

pub(super) fn command(
    cfg: &SweepConfig,
    op: &ops::Op,
    extra: impl FnOnce(&mut Command),
) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD)
        .args(["--op", op.name])
        .args(["--device", &cfg.device_spec])
        .args(["--shrink-trials", &cfg.shrink_trials.to_string()]);
    extra(&mut cmd);
    Ok(cmd)
}

/// Why a child stopped reading lines before it closed its stdout.
enum Stopped {
    Budget,
    Silent,
}

/// What one child said before it stopped: why it stopped reading (`None`: it closed its
/// stdout), the cell it was in, and the last cell it finished.
struct Watched {
    stopped: Option<Stopped>,
    in_flight: Option<usize>,
    last_done: Option<usize>,
}

/// Runs one job to its end, respawning the child past a cell that killed it or hung in it.
/// Whatever keeps the op from finishing is written to `incomplete` with its reason.
fn run_job(cfg: &SweepConfig, job: Job, deadline: Instant, gathered: &Mutex<Gathered>) {
    let (op, mut from, only) = match job {
        Job::Safe(op, from) => (op, from, None),
        Job::Only(op, k) => (op, k, Some(k)),
    };
    let incomplete = |reason: String| {
        let mut g = gathered.lock().unwrap();
        // The first reason is the one that stopped the op; later ones follow from it.
        g.incomplete.entry(op.name.into()).or_insert(reason);
    };
    let planned = plan(op, cfg.seed, cfg.random);
    // Names given by an earlier child of this job, handed to the next after a poisoned context.
    let known_path = std::env::temp_dir().join(format!(
        "sweep-known-{}-{}-{from}.json",
        std::process::id(),
        op.name
    ));
    let mut known: Option<std::collections::BTreeMap<String, String>> = None;
    loop {
        if let Some(k) = &known {
            let _ = std::fs::write(&known_path, serde_json::to_string(k).expect("serialisable"));
        }
        let child = match child_command(
            cfg,
            op,
            from,
            only,
            known.as_ref().map(|_| known_path.as_path()),
        )
        .and_then(LineChild::spawn)
        {
            Ok(c) => c,
            Err(e) => {
                incomplete(format!("cannot start a sweep child: {e}"));
                return;
            }
        };
        let Watched {
            stopped,
            in_flight,
            last_done,
        } = watch(cfg, op, &child, deadline, gathered, &mut known);
        let ended = match stopped {
            Some(_) => child.kill().map(|stderr| (Ended::Killed, stderr)),
            None => child.finish(Instant::now() + cfg.cell_timeout),
        };
        let (ended, stderr) = match ended {
            Ok(e) => e,
            Err(e) => {
                incomplete(format!("lost track of a sweep child: {e}"));
                return;
            }
        };
        if matches!(stopped, Some(Stopped::Budget)) {
            incomplete(format!(
                "the sweep's budget ({} s) ran out",
                cfg.budget.as_secs()
            ));
            return;
        }
        let Some(dead_at) = in_flight else {
            let silent = matches!(stopped, Some(Stopped::Silent));
            match (ended.code(), only, last_done) {
                // A child stops after a cell that poisoned its device context; go on in a fresh one.
                (Some(crate::sweep::EXIT_POISONED), None, Some(k)) => {
                    from = k + 1;
                    continue;
                }
                (Some(crate::sweep::EXIT_POISONED), Some(_), Some(_)) | (Some(0), _, _)
                    if !silent =>
                {
                    let _ = std::fs::remove_file(&known_path);
                    return;
                }
                _ => {
                    let after = last_done.map_or("before its first cell".to_string(), |k| {
                        format!("after cell {k}")
                    });
                    incomplete(if silent {
                        format!(
                            "a child stayed silent for {} s outside a cell ({after}) and was killed",
                            cfg.cell_timeout.as_secs()
                        )
                    } else {
                        format!(
                            "a child {} outside a cell ({after}): {}",
                            ended.describe(),
                            last_words(&stderr)
                        )
                    });
                    let _ = std::fs::remove_file(&known_path);
                    return;
                }
            }
        };
        // The child died or hung inside a cell: that cell is a crash of its own.
        let hung = matches!(stopped, Some(Stopped::Silent));
        let dead = Death {
            at: dead_at,
            cell: &planned[dead_at],
            hung,
            ended: &ended,
            stderr: &stderr,
        };
        record_death(cfg, op, gathered, dead);
        if only.is_some() {
            return;
        }
        from = dead_at + 1;
    }
}

/// Reads a child's lines into `gathered` until it closes its stdout, the budget runs out or it
/// stays silent past the cell deadline; `known` takes the names it hands on.
fn watch(
    cfg: &SweepConfig,
    op: &ops::Op,
    child: &LineChild,
    deadline: Instant,
    gathered: &Mutex<Gathered>,
    known: &mut Option<BTreeMap<String, String>>,
) -> Watched {
    let mut in_flight: Option<usize> = None;
    let mut last_done: Option<usize> = None;
    // A child says something (a cell started, a cell done) at least once per cell deadline;
    // one that stays silent longer is hung, in a cell or outside one.
    let mut quiet_until = Instant::now() + cfg.cell_timeout;
    let stopped = loop {
        match child.next_line(deadline.min(quiet_until)) {
            Next::Line(line) => {
                quiet_until = Instant::now() + cfg.cell_timeout;
                match serde_json::from_str::<ChildLine>(&line) {
                    Ok(ChildLine::Start { index }) => in_flight = Some(index),
                    Ok(done) => {
                        in_flight = None;
                        if let ChildLine::Done {
                            index, known: k, ..
                        } = &done
                        {
                            last_done = Some(*index);
                            if !k.is_empty() {
                                *known = Some(k.clone());
                            }
                        }
                        record(&mut gathered.lock().unwrap(), op, done);
                    }
                    Err(_) => {}
                }
            }
            Next::Closed => break None,
            Next::Silent if Instant::now() >= deadline => break Some(Stopped::Budget),
            Next::Silent if Instant::now() >= quiet_until => break Some(Stopped::Silent),
            Next::Silent => {}
        }
    };
    Watched {
        stopped,
        in_flight,
        last_done,
    }
}
