//! The repro program of a root cause: which claimed id's shrunk cell becomes it (the
//! representative), the program built from that cell, and the expected answer computed again.

use super::{results::labelled, Data, Label, SweepDivergence, SweepRun};
use crate::error::Error;
use crate::sweep::exec;
use crate::sweep::exec::Category;
use crate::sweep::known::RootCause;
use crate::sweep::ops::{self, Op, Reference};
use crate::sweep::Shrunk;
use harness::host::HostTensor;
use std::collections::BTreeSet;
use std::fmt::Write as _;

fn category_rank(c: &Category) -> usize {
    match c {
        Category::WrongResult | Category::NonFinite => 0,
        Category::Crash => 1,
        Category::Unimplemented => 2,
        Category::ErrorMismatch => 3,
    }
}

/// The sweep record of `id` with the most backends observed (a CUDA sweep also runs the CPU).
pub(super) fn record<'a>(data: &'a Data, id: &str) -> Option<(&'a SweepRun, &'a SweepDivergence)> {
    data.sweeps
        .values()
        .filter_map(|run| {
            run.divergences
                .iter()
                .find(|d| d.id == id && d.repro.is_some())
                .map(|d| (run, d))
        })
        .max_by_key(|(run, _)| run.backends.len())
}

/// The id whose shrunk cell becomes the repro: one that diverged again when re-run, then the
/// most telling category (a wrong result before a crash before a failure), then the one seen on
/// the most backends, then small integer inputs (below 1e6 in magnitude), then the fewest input
/// elements, then the id.
pub fn representative<'a>(
    r: &RootCause,
    data: &'a Data,
) -> Option<(&'a SweepRun, &'a SweepDivergence)> {
    if let Some(rep) = &r.bug.front.representative {
        // `<backend>:<id>` picks the input that backend's run recorded.
        return match rep.split_once(':') {
            Some((backend, id)) => data.sweeps.get(backend).and_then(|run| {
                run.divergences
                    .iter()
                    .find(|d| d.id == id && d.repro.is_some())
                    .map(|d| (run, d))
            }),
            None => record(data, rep),
        };
    }
    r.ids
        .iter()
        .filter(|id| !id.starts_with("case:"))
        .filter_map(|id| record(data, id))
        .min_by_key(|(_, d)| {
            let s = d.repro.as_ref().expect("filtered");
            let values = s.evidence.inputs.iter().flat_map(|i| i.values.iter());
            let integers = values.clone().all(|v| v.fract() == 0.0 && v.abs() < 1e6);
            // Elements by shape: evidence keeps only the first values of a long row.
            let elements: usize = s
                .evidence
                .inputs
                .iter()
                .map(|i| i.shape.iter().product::<usize>())
                .sum();
            (
                !s.reproduced_on_rerun,
                category_rank(&d.category),
                std::cmp::Reverse(d.backends.len()),
                !integers,
                elements,
                d.id.clone(),
            )
        })
}

/// `dtype shape [values]` with every value up to 64 of them; a longer output keeps its first 12
/// and `…`.
fn full(h: &HostTensor) -> String {
    let shown = if h.values.len() > 64 {
        12
    } else {
        h.values.len()
    };
    let v: Vec<String> = h.values[..shown].iter().map(|x| format!("{x}")).collect();
    let more = if shown < h.values.len() { ", …" } else { "" };
    format!(
        "{} {:?} [{}{more}]",
        h.dtype.as_str(),
        h.shape,
        v.join(", ")
    )
}

/// The expected answer for the representative's pass, computed again from the cell (the
/// oracle is plain Rust), in one line. A gradient (central differences, good to about 1e-8 of
/// its terms) is shown to nine significant digits, as `≈ …` (1.5, not 1.4999999999876221).
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub line: String,
}

pub fn expected_answer(op: &Op, s: &Shrunk) -> Result<Expected, Error> {
    let pass = &s.finding.pass;
    let recorded = s
        .evidence
        .reference
        .get(pass)
        .ok_or_else(|| Error::BadInput(format!("{}: no reference for {pass}", s.id)))?;
    let inputs = exec::prepare(op, &s.cell);
    // (the full answer, what the text shows)
    let (full_line, shown) = match pass.strip_prefix("backward ") {
        None => {
            let hosts: Vec<HostTensor> = inputs.iter().map(|i| i.host.clone()).collect();
            let line = match (op.oracle)(&s.cell, &hosts) {
                Reference::Values(v) => full(&v),
                Reference::Rejected(r) => format!("rejects the call: {}", r.reason),
                Reference::Unspecified(w) => format!("unspecified: {w}"),
            };
            (line.clone(), line)
        }
        Some(role) => {
            let which = exec::grad_inputs(op, &s.cell, &inputs);
            let w = s
                .evidence
                .loss_weights
                .as_ref()
                .ok_or_else(|| Error::BadInput(format!("{}: no loss weights", s.id)))?;
            let grads = exec::reference_grads(op, &s.cell, &inputs, &which, w)
                .ok_or_else(|| Error::BadInput(format!("{}: no reference gradient", s.id)))?;
            let at = which
                .iter()
                .position(|&i| inputs[i].role == role)
                .ok_or_else(|| Error::BadInput(format!("{}: {role} has no gradient", s.id)))?;
            let mut g = grads[at].clone();
            let line = full(&g);
            for v in &mut g.values {
                if v.is_finite() && *v != 0.0 {
                    *v = format!("{v:.8e}")
                        .parse()
                        .expect("a formatted float parses");
                }
            }
            (line, format!("≈ {}", full(&g)))
        }
    };
    let head = recorded.trim_end_matches("…]").trim_end_matches(", ");
    if !full_line.starts_with(head) {
        return Err(Error::BadInput(format!(
            "{}: the oracle now gives `{full_line}` where the run recorded `{recorded}`",
            s.id
        )));
    }
    Ok(Expected { line: shown })
}

/// The cell regenerated from its seed must give the inputs the run recorded.
fn check_inputs(op: &Op, s: &Shrunk) -> Result<(), Error> {
    let inputs = exec::prepare(op, &s.cell);
    let same = inputs.len() == s.evidence.inputs.len()
        && inputs.iter().zip(&s.evidence.inputs).all(|(a, b)| {
            let kept = b.values.len() == exec::KEPT && a.host.values.len() > exec::KEPT;
            a.host.shape == b.shape
                && (a.host.values.len() == b.values.len() || kept)
                && a.host
                    .values
                    .iter()
                    .zip(&b.values)
                    .all(|(x, y)| exec::same_value(*x, *y))
        });
    if same {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{}: its cell (seed {}) no longer regenerates the inputs the run recorded",
            s.id, s.cell.seed
        )))
    }
}

/// A standalone program and what it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Repro {
    /// The representative id.
    pub id: String,
    /// `main.rs` (before formatting).
    pub source: String,
    pub uses_nn: bool,
    pub uses_cuda: bool,
    /// The program tries CUDA only to compare (the bug does not show there).
    pub compares_on_cuda: bool,
    pub expected: Expected,
    pub candle_version: String,
}

impl Repro {
    /// The dependency lines a `cargo new` project adds.
    pub fn dependencies(&self) -> String {
        let features = if self.uses_cuda {
            ", features = [\"cuda\"]"
        } else {
            ""
        };
        let mut deps = format!(
            "candle-core = {{ version = \"={}\"{features} }}",
            self.candle_version
        );
        if self.uses_nn {
            let _ = write!(
                deps,
                "\ncandle-nn = {{ version = \"={}\"{features} }}",
                self.candle_version
            );
        }
        deps
    }
}

/// The repro of a root cause from its representative's shrunk cell.
pub fn repro(r: &RootCause, data: &Data) -> Result<Option<Repro>, Error> {
    let Some((run, d)) = representative(r, data) else {
        return Ok(None);
    };
    let s = d.repro.as_ref().expect("representative has a repro");
    let op = ops::find(&d.op)
        .ok_or_else(|| Error::BadInput(format!("{}: unknown op {}", d.id, d.op)))?;
    check_inputs(op, s)?;
    let expected = expected_answer(op, s)?;
    // Every backend whose answer the text shows: the program prints what the table says.
    let devices: Vec<&str> = s
        .evidence
        .observed
        .get(&s.finding.pass)
        .into_iter()
        .flat_map(|per| per.keys())
        .map(String::as_str)
        .filter(|b| *b != "cpu")
        .collect();
    let out_dtype = expected
        .line
        .trim_start_matches("≈ ")
        .split(' ')
        .next()
        .unwrap_or("");
    let optional: Vec<&str> = devices
        .iter()
        .copied()
        .filter(|d| !r.backends.iter().any(|b| b == d))
        .collect();
    let p = crate::sweep::emit::program(
        op,
        s,
        &devices,
        &optional,
        out_dtype,
        r.bug.front.later_call,
    );
    Ok(Some(Repro {
        id: d.id.clone(),
        source: p.source,
        uses_nn: p.uses_nn,
        uses_cuda: p.uses_cuda,
        compares_on_cuda: optional.contains(&"cuda"),
        expected,
        candle_version: run.candle_version.clone(),
    }))
}

/// The backends among `r.backends` on which this recorded input shows the bug.
fn shows_on(r: &RootCause, d: &SweepDivergence) -> BTreeSet<String> {
    labelled(d)
        .unwrap_or_default()
        .into_iter()
        .filter(|(b, _, l)| *l != Label::Agrees && r.backends.contains(b))
        .map(|(b, _, _)| b)
        .collect()
}

/// A claimed input that shows the bug on more of its backends than the representative does.
pub(super) fn better_representative(r: &RootCause, data: &Data) -> Option<String> {
    let (_, rep) = representative(r, data)?;
    let have = shows_on(r, rep).len();
    r.ids
        .iter()
        .filter_map(|id| record(data, id))
        .filter(|(_, d)| d.repro.as_ref().is_some_and(|s| s.reproduced_on_rerun))
        .map(|(_, d)| (shows_on(r, d).len(), d.id.clone()))
        .filter(|(n, _)| *n > have)
        .max_by_key(|(n, id)| (*n, std::cmp::Reverse(id.clone())))
        .map(|(_, id)| id)
}
