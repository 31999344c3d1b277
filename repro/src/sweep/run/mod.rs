//! The parent side of the sweep: plans the children, runs them (several at once), survives
//! their deaths, gathers the findings into divergences, checks them against the manifest and
//! writes the reports, the standalone repros and `reports/STATUS.md`.
//!
//! By stage: `jobs` runs the children, `gather` turns what they say into divergences, `resume`
//! finishes the shrinks a device assert interrupted, `outputs` writes the reports (and blesses);
//! `run_sweep`, here, puts them together and checks the result against the manifest.

mod gather;
mod jobs;
mod outputs;
mod resume;

pub use outputs::{bless, repro_file_name, write_outputs};

use super::known::{self, KnownSet, Status};
use super::ops;
use crate::error::Error;
use gather::Gathered;
use harness::device::{DeviceInfo, CANDLE_VERSION};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

pub fn run_sweep(cfg: &SweepConfig) -> Result<SweepReport, Error> {
    let known = KnownSet::load(&cfg.manifest)?;
    let links = upstream_links(cfg)?;
    let start = Instant::now();
    let deadline = start + cfg.budget;
    let (jobs, planned) = jobs::plan_jobs(cfg);
    let mut g = jobs::run_jobs(cfg, jobs, deadline);
    // Shrinks a device assert interrupted are finished now, each in fresh processes.
    resume::finish_interrupted_shrinks(cfg, &mut g, deadline);
    let backends: Vec<String> = if cfg.target.backend == "cpu" {
        vec!["cpu".into()]
    } else {
        vec!["cpu".into(), cfg.target.backend.clone()]
    };
    let (ops_summary, completed) = summarise_ops(cfg, &g, &planned);
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
        schema_version: crate::sweep::report::SWEEP_REPORT_SCHEMA,
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

/// Divergence id → the upstream thread of the bug file that claims it.
fn upstream_links(cfg: &SweepConfig) -> Result<BTreeMap<String, String>, Error> {
    // Each id's upstream thread comes from the bug file that claims it (repro/bugs/, beside
    // the manifest): the manifest holds only what runs observed. A manifest kept elsewhere,
    // with no bug files beside it, gives no links.
    let bugs_dir = cfg.manifest.parent().unwrap_or(Path::new(".")).join("bugs");
    let bugs = if bugs_dir.is_dir() {
        crate::bugs::load(&bugs_dir)?
    } else {
        BTreeMap::new()
    };
    Ok(bugs
        .values()
        .filter_map(|b| b.upstream_link().map(|l| (b, l)))
        .flat_map(|(b, l)| b.front.claims.iter().map(move |c| (c.clone(), l.clone())))
        .collect())
}

/// Each op's cells planned, run and diverging, and the ops that ran every planned cell.
fn summarise_ops(
    cfg: &SweepConfig,
    g: &Gathered,
    planned: &BTreeMap<String, usize>,
) -> (BTreeMap<String, OpSummary>, BTreeSet<String>) {
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
    (ops_summary, completed)
}
