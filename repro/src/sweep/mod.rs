//! The op-consistency sweep: every op an MoE transformer uses × dtype × the layout of every input
//! × forward and backward, each cell run on the target device, on the CPU and through the
//! plain-Rust oracle. A divergence is shrunk to its smallest cell and emitted as a standalone
//! repro with issue text; known divergences live in `repro/sweep-known.toml` and run as expected
//! failures, so a fix shows up as "fixed? update the manifest".
//!
//! Cells come from a recorded seed (see `plan`), so a run, and each repro, can be rebuilt exactly.
//! The ops run in child processes (`__sweep-child`), one per op plus one per out-of-range-index
//! cell, because a CUDA device assert poisons the context for every later call in the process.

pub mod cell;
pub mod emit;
pub mod exec;
pub mod id;
pub mod known;
pub mod ops;
pub mod report;
pub mod run;
pub mod status;

use cell::{Cell, Hazard, Layout, Rng, Values, LAYOUTS};
use exec::{Category, Evidence, Finding};
use ops::Op;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CHILD: &str = "__sweep-child";
pub const DEFAULT_SEED: u64 = 20_261_126;
/// Random cells per op × dtype × variant at default settings (what the manifest is blessed with).
pub const DEFAULT_CASES: usize = 2;

fn mix(mut h: u64, s: &str) -> u64 {
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// Every cell of one op, in a fixed order: for each dtype × second dtype × variant, one cell with
/// every input contiguous, one per (input, non-contiguous layout), and `random` cells with random
/// sizes and layouts. Out-of-range-index cells (`hazard`) come last.
pub fn plan(op: &Op, seed: u64, random: usize) -> Vec<Cell> {
    let mut cells = Vec::new();
    let auxes: Vec<Option<String>> = if op.aux.0.is_empty() {
        vec![None]
    } else {
        op.aux
            .0
            .iter()
            .map(|d| Some(d.as_str().to_string()))
            .collect()
    };
    for dtype in op.dtypes {
        for aux in &auxes {
            for variant in 0..op.variants.len() {
                let key = format!("{}/{}/{:?}/{variant}", op.name, dtype.as_str(), aux);
                let mut rng = Rng(mix(seed, &key));
                let knobs: Vec<usize> = (0..op.knobs).map(|_| 2 + rng.below(4)).collect();
                let base = Cell {
                    op: op.name.into(),
                    dtype: dtype.as_str().into(),
                    aux: aux.clone(),
                    variant,
                    knobs,
                    layouts: Vec::new(),
                    simple: false,
                    hazard: None,
                    seed: rng.0,
                    values: Values::Plain,
                };
                let ranks = input_ranks(op, &base);
                let contiguous = Cell {
                    layouts: vec![Layout::Contiguous; ranks.len()],
                    ..base.clone()
                };
                cells.push(contiguous.clone());
                for (i, &rank) in ranks.iter().enumerate() {
                    for l in LAYOUTS.iter().skip(1).filter(|l| l.applies_to(rank)) {
                        let mut c = contiguous.clone();
                        c.layouts[i] = *l;
                        cells.push(c);
                    }
                }
                if op.layout_pairs {
                    let non_contiguous = |rank: usize| {
                        LAYOUTS
                            .iter()
                            .skip(1)
                            .filter(move |l| l.applies_to(rank))
                            .copied()
                    };
                    for l0 in non_contiguous(ranks[0]) {
                        for l1 in non_contiguous(ranks[1]) {
                            let mut c = contiguous.clone();
                            c.layouts[0] = l0;
                            c.layouts[1] = l1;
                            cells.push(c);
                        }
                    }
                }
                for _ in 0..random {
                    let mut c = contiguous.clone();
                    c.seed = splitmix(&mut rng);
                    c.knobs = (0..op.knobs).map(|_| 1 + rng.below(6)).collect();
                    let ranks = input_ranks(op, &c);
                    c.layouts = ranks
                        .iter()
                        .map(|&r| {
                            let ok: Vec<Layout> = LAYOUTS
                                .iter()
                                .copied()
                                .filter(|l| l.applies_to(r))
                                .collect();
                            ok[rng.below(ok.len())]
                        })
                        .collect();
                    cells.push(c);
                }
            }
        }
    }
    // Value classes: one contiguous cell per dtype × variant × class, with the first aux dtype.
    for dtype in op.dtypes {
        for &values in op.values.iter().filter(|v| v.applies_to(*dtype)) {
            for variant in 0..op.variants.len() {
                let aux = auxes[0].clone();
                let key = format!(
                    "{}/{}/{:?}/{variant}/{}",
                    op.name,
                    dtype.as_str(),
                    aux,
                    values.slug()
                );
                let mut rng = Rng(mix(seed, &key));
                let mut c = Cell {
                    op: op.name.into(),
                    dtype: dtype.as_str().into(),
                    aux,
                    variant,
                    knobs: (0..op.knobs).map(|_| 2 + rng.below(4)).collect(),
                    layouts: Vec::new(),
                    simple: false,
                    hazard: None,
                    seed: rng.0,
                    values,
                };
                if values == Values::Long {
                    c.knobs = vec![2; op.knobs];
                    let dim = op.reduced_dim(&c);
                    c.knobs[dim] = cell::LONG;
                }
                c.layouts = vec![Layout::Contiguous; input_ranks(op, &c).len()];
                cells.push(c);
            }
        }
    }
    if op.indexed {
        for aux in op.aux.0 {
            for hazard in [Hazard::PastEnd, Hazard::DtypeMax, Hazard::Negative] {
                if hazard == Hazard::Negative && !harness::host::is_signed(*aux) {
                    continue;
                }
                let c = Cell {
                    op: op.name.into(),
                    dtype: "f32".into(),
                    aux: Some(aux.as_str().into()),
                    variant: 0,
                    knobs: vec![2; op.knobs],
                    layouts: Vec::new(),
                    simple: true,
                    hazard: Some(hazard),
                    seed: mix(seed, hazard.as_str()),
                    values: Values::Plain,
                };
                let n = input_ranks(op, &c).len();
                cells.push(Cell {
                    layouts: vec![Layout::Contiguous; n],
                    ..c
                });
            }
        }
    }
    cells
}

fn splitmix(rng: &mut Rng) -> u64 {
    harness::host::splitmix64(&mut rng.0)
}

fn input_ranks(op: &Op, cell: &Cell) -> Vec<usize> {
    exec::generate(op, cell)
        .iter()
        .map(|i| i.host.shape.len())
        .collect()
}

/// The id of a divergence: op, pass, category, the inputs whose layout it needs (after
/// shrinking), and the index hazard. Dtypes are not part of it: one bug seen in several dtypes
/// is one divergence that lists them.
pub fn divergence_id(op: &Op, cell: &Cell, f: &Finding) -> String {
    let layouts = exec::generate(op, cell)
        .iter()
        .zip(&cell.layouts)
        .filter(|(_, l)| **l != Layout::Contiguous)
        .map(|(input, l)| (input.role.to_string(), *l))
        .collect();
    // The i16/i32 index and condition dtypes have their own dispatch arms (often missing): a
    // finding that shrinking could not move to u32 names its dtype.
    let aux = match cell.aux.as_deref() {
        Some(aux @ ("i16" | "i32")) => Some((aux.to_string(), op.aux.1.to_string())),
        _ => None,
    };
    // A refusal is about the call, not its values: it joins the plain cells' id.
    let refusal = matches!(
        f.category,
        Category::Unimplemented | Category::ErrorMismatch
    );
    let values = (!cell.values.is_plain() && !refusal).then_some(cell.values);
    id::DivergenceId {
        op: op.name,
        pass: id::Pass::parse(&f.pass)
            .expect("a finding's pass is `forward` or `backward <input>`"),
        category: f.category,
        layouts,
        aux,
        hazard: cell.hazard,
        values,
    }
    .to_string()
}

/// A finding before shrinking: what the child shrinks once and reuses for every cell like it.
fn provisional_key(op: &Op, cell: &Cell, f: &Finding) -> String {
    format!(
        "{}|{}|{}|{:?}|{:?}|{:?}|{:?}",
        op.name,
        f.pass,
        f.category.as_str(),
        f.backends,
        cell.hazard,
        cell.values,
        cell.layouts
            .iter()
            .enumerate()
            .filter(|(_, l)| **l != Layout::Contiguous)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    )
}

/// A divergence as a child reports it: the cell (shrunk when `complete`) and its evidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shrunk {
    pub id: String,
    pub cell: Cell,
    pub finding: Finding,
    pub evidence: Evidence,
    /// False when shrinking could not finish in this process (a device assert poisoned it);
    /// the parent resumes it from `resume_from` in fresh processes, skipping `skip`.
    pub complete: bool,
    pub resume_from: Option<Cell>,
    pub skip: Vec<Cell>,
    /// False when running the reported cell again did not show the divergence: the op is
    /// nondeterministic there (reads uninitialised or out-of-bounds memory, say).
    #[serde(default = "yes")]
    pub reproduced_on_rerun: bool,
}

fn yes() -> bool {
    true
}

/// Exit code of a child that stopped because its device context is poisoned; the parent
/// starts a fresh one after the last finished cell.
pub const EXIT_POISONED: i32 = 75;

/// One line of a child's output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildLine {
    Start {
        index: usize,
    },
    Done {
        index: usize,
        /// `(divergence id, finding)` per finding of the cell.
        findings: Vec<(String, Finding)>,
        shrunk: Vec<Shrunk>,
        dtype_label: String,
        /// Provisional key → divergence id of every finding shrunk so far in this child, so a
        /// child started after this one (past a poisoned context) names them the same way.
        #[serde(default)]
        known: BTreeMap<String, String>,
    },
    /// From a shrink child: resume from `best` in a fresh process, never trying `skip` again.
    Resume {
        best: Box<Cell>,
        skip: Box<Cell>,
    },
    /// From a shrink child: the finished shrink.
    Shrunk(Box<Shrunk>),
}

/// What a shrink child is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShrinkJob {
    pub start: Cell,
    pub finding: Finding,
    pub skip: Vec<Cell>,
}

/// What a cell child is asked to run.
pub struct ChildJob {
    pub seed: u64,
    pub random: usize,
    pub from: usize,
    pub only: Option<usize>,
    pub shrink_trials: usize,
    /// Provisional key → divergence id from an earlier child of the same job.
    pub known: BTreeMap<String, String>,
}

/// Names a way for the sweep's children of one op to misbehave, so the tests can show that the
/// parent notices: `panic-before:OP`, `hang-before:OP` or `hang-in-cell:OP`.
pub const SELFTEST_ENV: &str = "CANDLE_REPRO_SWEEP_SELFTEST";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sabotage {
    PanicBefore,
    HangBefore,
    HangInCell,
}

fn selftest_sabotage(op: &Op) -> Option<Sabotage> {
    let v = std::env::var(SELFTEST_ENV).ok()?;
    let (what, name) = v.split_once(':')?;
    if name != op.name {
        return None;
    }
    match what {
        "panic-before" => Some(Sabotage::PanicBefore),
        "hang-before" => Some(Sabotage::HangBefore),
        "hang-in-cell" => Some(Sabotage::HangInCell),
        _ => None,
    }
}

/// Runs cells `from..` of one op (or only `only`), printing one JSON line per event. Hazard
/// cells run only when asked for by index. Exits with `EXIT_POISONED` after a cell that left
/// the device context unusable.
pub fn child_main(op: &Op, job: ChildJob, backends: &[(String, &candle_core::Device)]) {
    let ChildJob {
        seed,
        random,
        from,
        only,
        shrink_trials,
        known,
    } = job;
    let cells = plan(op, seed, random);
    let sabotage = selftest_sabotage(op);
    match sabotage {
        Some(Sabotage::PanicBefore) => panic!("selftest: {SELFTEST_ENV} asked this child to panic"),
        Some(Sabotage::HangBefore) => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        _ => {}
    }
    let mut shrunk_ids: BTreeMap<String, String> = known;
    for (index, cell) in cells.iter().enumerate().skip(from) {
        if only.is_some_and(|o| o != index) || (only.is_none() && cell.hazard.is_some()) {
            continue;
        }
        emit_line(&ChildLine::Start { index });
        if sabotage == Some(Sabotage::HangInCell) && index == 0 {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        let (mut line, poisoned) =
            run_one(op, index, cell, backends, shrink_trials, &mut shrunk_ids);
        if let (ChildLine::Done { known, .. }, true) = (&mut line, poisoned) {
            // This child stops here; the next one continues the naming.
            *known = shrunk_ids.clone();
        }
        emit_line(&line);
        if poisoned {
            std::process::exit(EXIT_POISONED);
        }
    }
}

/// Runs one cell, shrinks each finding not seen before in this process (`shrunk_ids` maps a
/// finding's provisional key to its divergence id), and says whether the device context is
/// poisoned afterwards.
pub fn run_one(
    op: &Op,
    index: usize,
    cell: &Cell,
    backends: &[(String, &candle_core::Device)],
    shrink_trials: usize,
    shrunk_ids: &mut BTreeMap<String, String>,
) -> (ChildLine, bool) {
    let (findings, evidence) = exec::run_cell(op, cell, backends);
    let mut poisoned = exec::is_poisoned(&evidence);
    let mut out = Vec::new();
    let mut shrunk = Vec::new();
    for f in findings {
        let key = provisional_key(op, cell, &f);
        if let Some(id) = shrunk_ids.get(&key) {
            out.push((id.clone(), f));
            continue;
        }
        let as_generated = |complete: bool, resume_from: Option<Cell>, skip: Vec<Cell>| Shrunk {
            id: divergence_id(op, cell, &f),
            cell: cell.clone(),
            finding: f.clone(),
            evidence: evidence.clone(),
            complete,
            resume_from,
            skip,
            reproduced_on_rerun: true,
        };
        // A hazard cell is small already; a poisoned process cannot run trials.
        let s = if cell.hazard.is_some() {
            as_generated(true, None, vec![])
        } else if poisoned {
            as_generated(false, Some(cell.clone()), vec![])
        } else {
            match exec::shrink(op, cell, &f, backends, shrink_trials, &[]) {
                exec::Shrinking::Done(small) => finish_shrink(op, small, &f, backends),
                exec::Shrinking::Poisoned { best, culprit } => {
                    poisoned = true;
                    as_generated(false, Some(best), vec![culprit])
                }
            }
        };
        shrunk_ids.insert(key, s.id.clone());
        out.push((s.id.clone(), f));
        shrunk.push(s);
    }
    let line = ChildLine::Done {
        index,
        findings: out,
        shrunk,
        dtype_label: cell.dtype_label(op.aux.1),
        known: BTreeMap::new(),
    };
    (line, poisoned)
}

/// Every divergence one op shows at default settings, with the backends it shows on, run in
/// this process (for tests; hazard cells only on the CPU, where they cannot poison anything).
pub fn sweep_in_process(
    op: &Op,
    backends: &[(String, &candle_core::Device)],
) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut ids = BTreeMap::new();
    let mut shrunk_ids = BTreeMap::new();
    let cpu_only = backends.len() == 1;
    for (index, cell) in plan(op, DEFAULT_SEED, DEFAULT_CASES).iter().enumerate() {
        if cell.hazard.is_some() && !cpu_only {
            continue;
        }
        if let (ChildLine::Done { findings, .. }, _) =
            run_one(op, index, cell, backends, 60, &mut shrunk_ids)
        {
            for (id, f) in findings {
                ids.entry(id)
                    .or_insert_with(std::collections::BTreeSet::new)
                    .extend(f.backends);
            }
        }
    }
    ids
}

/// Re-runs the shrunk cell for its evidence and names it.
fn finish_shrink(
    op: &Op,
    small: Cell,
    like: &Finding,
    backends: &[(String, &candle_core::Device)],
) -> Shrunk {
    let (sf, evidence) = exec::run_cell(op, &small, backends);
    let again = sf.into_iter().find(|g| {
        g.pass == like.pass && g.category == like.category && g.backends == like.backends
    });
    let reproduced_on_rerun = again.is_some();
    let finding = again.unwrap_or_else(|| like.clone());
    Shrunk {
        id: divergence_id(op, &small, &finding),
        cell: small,
        finding,
        evidence,
        complete: true,
        resume_from: None,
        skip: vec![],
        reproduced_on_rerun,
    }
}

/// The shrink child: continues a shrink that a device assert interrupted.
pub fn shrink_main(
    op: &Op,
    job: ShrinkJob,
    backends: &[(String, &candle_core::Device)],
    shrink_trials: usize,
) {
    match exec::shrink(
        op,
        &job.start,
        &job.finding,
        backends,
        shrink_trials,
        &job.skip,
    ) {
        exec::Shrinking::Done(small) => {
            let done = finish_shrink(op, small, &job.finding, backends);
            emit_line(&ChildLine::Shrunk(Box::new(done)))
        }
        exec::Shrinking::Poisoned { best, culprit } => {
            emit_line(&ChildLine::Resume {
                best: Box::new(best),
                skip: Box::new(culprit),
            });
            std::process::exit(EXIT_POISONED);
        }
    }
}

fn emit_line(l: &ChildLine) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(l).expect("serialisable"));
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_layouts_fit_ranks() {
        for op in ops::OPS {
            let a = plan(op, 7, 1);
            assert_eq!(a, plan(op, 7, 1), "{}", op.name);
            for c in &a {
                assert!(exec::layouts_apply(op, c), "{} {c:?}", op.name);
            }
        }
    }

    #[test]
    fn the_oracle_accepts_every_in_contract_cell() {
        // A generator bug would show up as the oracle rejecting a cell it built itself.
        for op in ops::OPS {
            // Variants that test a refusal on purpose (a quantized `k` off the block size,
            // `≠` in the variant's name) are outside the contract by design.
            let refusal = |c: &cell::Cell| op.variants[c.variant].contains('≠');
            for c in plan(op, 3, 1)
                .iter()
                .filter(|c| c.hazard.is_none() && !refusal(c))
            {
                let inputs = exec::prepare(op, c);
                let hosts: Vec<_> = inputs.iter().map(|i| i.host.clone()).collect();
                if let ops::Reference::Rejected(r) = (op.oracle)(c, &hosts) {
                    panic!("{} rejects its own cell {c:?}: {}", op.name, r.reason);
                }
            }
        }
    }
}
