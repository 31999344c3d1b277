//! The parent side of the sweep: plans the children, runs them (several at once), survives
//! their deaths, gathers the findings into divergences, checks them against the manifest and
//! writes the reports, the standalone repros and `reports/STATUS.md`.

use super::exec::{Category, Finding};
use super::known::{self, KnownSet, Status};
use super::{ops, plan, ChildLine, Shrunk, CHILD};
use crate::child::{last_words, tail, Ended, LineChild, Next};
use crate::error::Error;
use harness::device::{DeviceInfo, CANDLE_VERSION};
use harness::report::write_atomic;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SweepConfig {
    pub ops: Vec<&'static ops::Op>,
    pub device_spec: String,
    pub target: DeviceInfo,
    pub seed: u64,
    pub random: usize,
    pub budget: Duration,
    /// How long a child may stay silent (one cell and its shrink) before it is killed and the
    /// cell reported as a hang.
    pub cell_timeout: Duration,
    /// Ops that do not finish are reported but do not fail the run.
    pub partial: bool,
    pub jobs: usize,
    pub shrink_trials: usize,
    pub report_dir: PathBuf,
    /// Where `--bless` writes the standalone repros.
    pub repro_dir: PathBuf,
    pub manifest: PathBuf,
    pub bless: bool,
    pub command: String,
}

pub use super::report::{Divergence, OpSummary, SweepReport};

enum Job {
    /// Every in-contract cell of the op, from this index on.
    Safe(&'static ops::Op, usize),
    /// One hazard cell, alone in its process.
    Only(&'static ops::Op, usize),
}

#[derive(Default)]
struct Gathered {
    done: BTreeMap<String, BTreeSet<usize>>,
    diverging: BTreeMap<String, BTreeSet<usize>>,
    divergences: BTreeMap<String, Divergence>,
    /// Ops that did not run every planned cell, with the first reason.
    incomplete: BTreeMap<String, String>,
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

fn command(
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

/// Finishes, in fresh processes, a shrink that a device assert interrupted. Each process gets
/// at most one cell deadline; none outlives the sweep's budget.
fn resume_shrink(cfg: &SweepConfig, op: &ops::Op, s: &Shrunk, deadline: Instant) -> Option<Shrunk> {
    let mut job = super::ShrinkJob {
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

fn record(g: &mut Gathered, op: &ops::Op, line: ChildLine) {
    if let ChildLine::Done {
        index,
        findings,
        shrunk,
        dtype_label,
        ..
    } = line
    {
        g.done.entry(op.name.into()).or_default().insert(index);
        if !findings.is_empty() {
            g.diverging.entry(op.name.into()).or_default().insert(index);
        }
        let mut counted = BTreeSet::new();
        for (id, f) in findings {
            let d = g
                .divergences
                .entry(id.clone())
                .or_insert_with(|| new_divergence(&id, op, &f));
            d.backends.extend(f.backends.iter().cloned());
            d.dtypes.insert(dtype_label.clone());
            // A cell counts once per divergence, whichever backends showed it.
            if counted.insert(id) {
                d.cells += 1;
            }
        }
        for s in shrunk {
            if let Some(d) = g.divergences.get_mut(&s.id) {
                // Shrunk and smallest first; among equals a fixed order (dtypes, then seed):
                // children finish in any order, and the report must not depend on it.
                let rank = |x: &Shrunk| {
                    (
                        x.complete,
                        std::cmp::Reverse(x.cell.size()),
                        std::cmp::Reverse((x.cell.dtype.clone(), x.cell.aux.clone(), x.cell.seed)),
                    )
                };
                let better = d.repro.as_ref().is_none_or(|r| rank(&s) > rank(r));
                if better {
                    d.repro = Some(s);
                }
            }
        }
    }
}

fn new_divergence(id: &str, op: &ops::Op, f: &Finding) -> Divergence {
    Divergence {
        id: id.into(),
        op: op.name.into(),
        pass: f.pass.clone(),
        category: f.category,
        backends: BTreeSet::new(),
        dtypes: BTreeSet::new(),
        cells: 0,
        title: String::new(),
        repro: None,
        death: None,
        status: None,
        status_message: String::new(),
        upstream: None,
    }
}

/// Why a child stopped reading lines before it closed its stdout.
enum Stopped {
    Budget,
    Silent,
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
                                    known = Some(k.clone());
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
                (Some(super::EXIT_POISONED), None, Some(k)) => {
                    from = k + 1;
                    continue;
                }
                (Some(super::EXIT_POISONED), Some(_), Some(_)) | (Some(0), _, _) if !silent => {
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
        let cell = &planned[dead_at];
        let hung = matches!(stopped, Some(Stopped::Silent));
        let mut g = gathered.lock().unwrap();
        g.done.entry(op.name.into()).or_default().insert(dead_at);
        g.diverging
            .entry(op.name.into())
            .or_default()
            .insert(dead_at);
        let id = format!(
            "{}-process-{}{}",
            op.name,
            if hung { "hung" } else { "died" },
            cell.hazard
                .map(|h| format!("-{}", h.as_str()))
                .unwrap_or_default()
        )
        .replace('_', "-");
        let death = format!(
            "{}; cell {:?}; stderr: {}",
            if hung {
                format!(
                    "no answer within the cell deadline ({} s); killed",
                    cfg.cell_timeout.as_secs()
                )
            } else {
                ended.describe()
            },
            cell,
            tail(&stderr, 3).replace('\n', " | ")
        );
        let d = g
            .divergences
            .entry(id.clone())
            .or_insert_with(|| Divergence {
                death: Some(death.clone()),
                title: format!(
                    "`{}` {} the process",
                    op.call,
                    if hung { "hangs" } else { "kills" }
                ),
                ..new_divergence(
                    &id,
                    op,
                    &Finding {
                        pass: "forward".into(),
                        category: Category::Crash,
                        backends: vec![],
                        detail: BTreeMap::new(),
                    },
                )
            });
        d.backends.insert(cfg.target.backend.clone());
        d.dtypes.insert(cell.dtype_label(op.aux.1));
        d.cells += 1;
        drop(g);
        if only.is_some() {
            return;
        }
        from = dead_at + 1;
    }
}

pub fn run_sweep(cfg: &SweepConfig) -> Result<SweepReport, Error> {
    let known = KnownSet::load(&cfg.manifest)?;
    // Each id's upstream thread comes from the bug file that claims it (repro/bugs/, beside
    // the manifest): the manifest holds only what runs observed. A manifest kept elsewhere,
    // with no bug files beside it, gives no links.
    let bugs_dir = cfg.manifest.parent().unwrap_or(Path::new(".")).join("bugs");
    let bugs = if bugs_dir.is_dir() {
        crate::bugs::load(&bugs_dir)?
    } else {
        BTreeMap::new()
    };
    let links: BTreeMap<String, String> = bugs
        .values()
        .filter_map(|b| b.upstream_link().map(|l| (b, l)))
        .flat_map(|(b, l)| b.front.claims.iter().map(move |c| (c.clone(), l.clone())))
        .collect();
    let start = Instant::now();
    let deadline = start + cfg.budget;
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
    let mut g = gathered.into_inner().unwrap();
    // Shrinks a device assert interrupted are finished now, each in fresh processes.
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
    let backends: Vec<String> = if cfg.target.backend == "cpu" {
        vec!["cpu".into()]
    } else {
        vec!["cpu".into(), cfg.target.backend.clone()]
    };
    let mut ops_summary = BTreeMap::new();
    let mut completed = BTreeSet::new();
    for op in &cfg.ops {
        let run = g.done.get(op.name).map_or(0, |s| s.len());
        let reason = g.incomplete.get(op.name).cloned().or_else(|| {
            (run < planned[op.name]).then(|| format!("{run} of {} cells ran", planned[op.name]))
        });
        let done = reason.is_none();
        if done {
            completed.insert(op.name.to_string());
        }
        ops_summary.insert(
            op.name.to_string(),
            OpSummary {
                cells_planned: planned[op.name],
                cells_run: run,
                cells_diverging: g.diverging.get(op.name).map_or(0, |s| s.len()),
                completed: done,
                aux_dtypes: op.aux.0.iter().map(|d| d.as_str().to_string()).collect(),
                incomplete: reason,
            },
        );
    }
    let seen: BTreeMap<String, BTreeSet<String>> = g
        .divergences
        .iter()
        .map(|(id, d)| (id.clone(), d.backends.clone()))
        .collect();
    let mut statuses = known::check(&known, &seen, &backends, &completed, ops::op_of);
    // Ids come from shrinking the first cell that shows a divergence, so other cells (another
    // seed or --cases) can name a known divergence differently: only the blessed settings can
    // say a divergence is gone.
    if cfg.seed != super::DEFAULT_SEED || cfg.random != super::DEFAULT_CASES {
        for (status, message) in statuses.values_mut() {
            if *status == Status::Fixed {
                *status = Status::NotRun;
                *message = format!(
                    "not seen with these --seed/--cases; only the defaults can show a fix ({message})"
                );
            }
        }
    }
    let mut divergences: Vec<Divergence> = g.divergences.into_values().collect();
    for d in &mut divergences {
        if let (Some(s), Some(op)) = (&d.repro, ops::find(&d.op)) {
            let b: Vec<String> = d.backends.iter().cloned().collect();
            d.title = super::emit::title(op, s, &b);
        }
        if let Some((s, m)) = statuses.get(&d.id) {
            d.status = Some(s.clone());
            d.status_message = m.clone();
        }
        d.upstream = links.get(&d.id).cloned();
    }
    let missing = statuses
        .into_iter()
        .filter(|(id, _)| !seen.contains_key(id))
        .map(|(id, (s, m))| (id, s, m))
        .collect();
    Ok(SweepReport {
        schema_version: super::report::SWEEP_REPORT_SCHEMA,
        candle_version: CANDLE_VERSION.to_string(),
        target: cfg.target.clone(),
        backends,
        command: cfg.command.clone(),
        seed: cfg.seed,
        random_cells: cfg.random,
        wall_seconds: start.elapsed().as_secs_f64(),
        budget_seconds: cfg.budget.as_secs(),
        partial_allowed: cfg.partial,
        ops: ops_summary,
        divergences,
        missing,
    })
}

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
        let source = super::emit::repro_source(op, s, &d.title, &r.command);
        let md = super::emit::issue_markdown(op, d, s, device, &r.command, &source);
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
        let title = super::emit::title(op, s, &k.backends);
        write_atomic(&p, &super::emit::repro_source(op, s, &title, &r.command))
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
