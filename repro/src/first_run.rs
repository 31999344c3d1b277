//! The first run on a backend no run had covered (Metal), checked against what was predicted for
//! it: each prediction confirmed or refuted, the uncertain ones settled, the divergences nobody
//! predicted, and what to commit. `repro collect` prints it; `repro/tests/first_mac_run.rs`
//! rehearses it with a synthetic Metal sweep.

use crate::predict::{Outcome, Prediction};
use crate::sweep::known::KnownSet;
use crate::sweep::report::SweepReport;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What the run did to the predictions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub confirmed: Vec<String>,
    pub refuted: Vec<String>,
    /// Uncertain predictions the run settled, as (id, shows).
    pub settled: Vec<(String, bool)>,
    /// Divergences the run showed that no prediction named.
    pub unpredicted: Vec<String>,
    /// Predictions whose op did not finish in this run: nothing said.
    pub untested: Vec<String>,
}

/// Every prediction for `backend`: the mechanical and hand ones of the observed ids, the ids
/// Metal's dispatch tables predict (`derived`), and the hand predictions of ids no run has
/// shown yet (`observed = false`: shows).
pub fn all_predictions(
    known: &KnownSet,
    observed: &BTreeMap<String, Prediction>,
    derived: &BTreeSet<String>,
    backend: &str,
) -> BTreeMap<String, Outcome> {
    let mut out: BTreeMap<String, Outcome> = observed
        .iter()
        .map(|(id, p)| (id.clone(), p.outcome))
        .collect();
    for id in derived {
        out.entry(id.clone()).or_insert(Outcome::Shows);
    }
    for (id, k) in &known.entries {
        if !k.observed && k.predicted.contains_key(backend) {
            out.insert(id.clone(), Outcome::Shows);
        }
    }
    out
}

/// Compares a sweep on `backend` with the predictions for it.
pub fn tally(report: &SweepReport, backend: &str, predicted: &BTreeMap<String, Outcome>) -> Tally {
    let shown: BTreeSet<&str> = report
        .divergences
        .iter()
        .filter(|d| d.backends.iter().any(|b| b == backend))
        .map(|d| d.id.as_str())
        .collect();
    let completed: BTreeSet<&str> = report
        .ops
        .iter()
        .filter(|(_, o)| o.completed)
        .map(|(op, _)| op.as_str())
        .collect();
    let mut t = Tally::default();
    for (id, outcome) in predicted {
        let seen = shown.contains(id.as_str());
        let op_ran = crate::sweep::ops::op_of(id).is_some_and(|op| completed.contains(op.as_str()));
        if !seen && !op_ran {
            t.untested.push(id.clone());
            continue;
        }
        match (outcome, seen) {
            (Outcome::Shows, true) | (Outcome::DoesNotShow, false) => t.confirmed.push(id.clone()),
            (Outcome::Shows, false) | (Outcome::DoesNotShow, true) => t.refuted.push(id.clone()),
            (Outcome::Uncertain, s) => t.settled.push((id.clone(), s)),
        }
    }
    t.unpredicted = shown
        .iter()
        .filter(|id| !predicted.contains_key(**id))
        .map(|id| id.to_string())
        .collect();
    t
}

/// The summary a person reads at the end of the first run: the counts, the refuted and the
/// unpredicted ids by name, and what to commit.
pub fn summary(t: &Tally, backend: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nPredictions for {backend}: {} confirmed, {} refuted, {} uncertain settled ({} show, {} do not), {} divergences nobody predicted, {} not tested (their op did not finish).",
        t.confirmed.len(),
        t.refuted.len(),
        t.settled.len(),
        t.settled.iter().filter(|(_, s)| *s).count(),
        t.settled.iter().filter(|(_, s)| !*s).count(),
        t.unpredicted.len(),
        t.untested.len()
    );
    for id in &t.refuted {
        let _ = writeln!(out, "  refuted: {id}");
    }
    for id in &t.unpredicted {
        let _ = writeln!(out, "  not predicted: {id}");
    }
    let _ = writeln!(
        out,
        "To record it: rerun with --bless (it writes what {backend} showed into repro/sweep-known.toml and marks each hand prediction confirmed or refuted), then commit repro/sweep-known.toml, repro/sweep-repros/, reports/{backend}/, reports/sweep/{backend}/ and reports/STATUS.md; add the suite's {backend} verdicts to repro/expected.toml (dropping the [predicted.<case>.{backend}] entries they settle). A refuted prediction means its bug file or the rule in repro/src/predict.rs needs correcting."
    );
    out
}

/// The predictions for `backend` as the manifests stand before a run (a run with `--bless`
/// rewrites them), from the workspace at `root`; `None` for a backend runs have covered (the
/// CPU, CUDA).
pub fn predictions_before(
    root: &std::path::Path,
    backend: &str,
) -> Result<Option<BTreeMap<String, Outcome>>, crate::error::Error> {
    if backend != "metal" {
        return Ok(None);
    }
    let known = KnownSet::load(&root.join(crate::sweep::known::DEFAULT_PATH))?;
    let causes = crate::sweep::known::load_root_causes(&root.join(crate::bugs::DIR))?;
    let observed = crate::predict::for_pages(&known, &causes)?;
    let derived = crate::metal::ids::derived()
        .map_err(crate::error::Error::BadInput)?
        .keys()
        .cloned()
        .collect();
    Ok(Some(all_predictions(&known, &observed, &derived, backend)))
}

/// The comparison `repro collect` prints after the run: this run's sweep report against the
/// predictions taken before it. `None` when the sweep wrote no report.
pub fn report(
    report_dir: &std::path::Path,
    backend: &str,
    predicted: &BTreeMap<String, Outcome>,
) -> Option<String> {
    let p = report_dir.join("sweep").join(backend).join("sweep.json");
    let sweep = SweepReport::read(&p).ok()?;
    Some(summary(&tally(&sweep, backend, predicted), backend))
}
