//! The first Mac run, rehearsed: a synthetic Metal sweep report goes through the comparison
//! `repro collect` prints after a run on Metal. Each prediction must come out confirmed,
//! refuted or settled as the run says, the divergences nobody predicted named, and the person
//! told what to commit.

use repro::first_run;
use repro::predict::Outcome;
use repro::sweep::exec::Category;
use repro::sweep::report::{Divergence, OpSummary, SweepReport};
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn on_metal(id: &str) -> Divergence {
    Divergence {
        backends: ["metal".to_string()].into(),
        cells: 1,
        ..Divergence::new(id, "", "forward", Category::WrongResult)
    }
}

#[test]
fn a_synthetic_metal_sweep_confirms_refutes_and_names_the_unpredicted() {
    let predicted = first_run::predictions_before(root(), "metal")
        .unwrap()
        .expect("Metal has predictions");
    assert!(first_run::predictions_before(root(), "cuda")
        .unwrap()
        .is_none());
    let pick = |o: Outcome| {
        predicted
            .iter()
            .find(|(_, x)| **x == o)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no {} prediction", o.as_str()))
    };
    let (shows, does_not, uncertain) = (
        pick(Outcome::Shows),
        pick(Outcome::DoesNotShow),
        pick(Outcome::Uncertain),
    );
    let fresh = "exp-fwd-crash";
    assert!(!predicted.contains_key(fresh));
    // Metal shows one predicted divergence, one predicted absent, one uncertain and one new;
    // every op finished except the one of a predicted divergence left untested.
    let untested_op = "cumsum";
    let shown: BTreeSet<String> = [&shows, &does_not, &uncertain]
        .into_iter()
        .cloned()
        .chain([fresh.to_string()])
        .collect();
    let report = SweepReport {
        divergences: shown.iter().map(|id| on_metal(id)).collect(),
        ops: repro::sweep::ops::OPS
            .iter()
            .map(|o| {
                let done = OpSummary {
                    completed: o.name != untested_op,
                    ..Default::default()
                };
                (o.name.to_string(), done)
            })
            .collect(),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("first-mac-run-{}", std::process::id()));
    let sweep_dir = dir.join("sweep/metal");
    std::fs::create_dir_all(&sweep_dir).unwrap();
    std::fs::write(
        sweep_dir.join("sweep.json"),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();
    let text = first_run::report(&dir, "metal", &predicted).expect("the report reads back");
    std::fs::remove_dir_all(&dir).unwrap();

    let t = first_run::tally(&report, "metal", &predicted);
    // Independently: which predictions this run can judge, and how each comes out.
    let op_of = |id: &str| repro::sweep::ops::op_of(id).unwrap_or_default();
    let judged = |id: &String| shown.contains(id) || op_of(id) != untested_op;
    let want_confirmed = predicted
        .iter()
        .filter(|(id, o)| {
            judged(id)
                && ((**o == Outcome::Shows) == shown.contains(*id))
                && **o != Outcome::Uncertain
        })
        .count();
    let want_refuted = predicted
        .iter()
        .filter(|(id, o)| {
            judged(id)
                && ((**o == Outcome::Shows) != shown.contains(*id))
                && **o != Outcome::Uncertain
        })
        .count();
    assert_eq!(t.confirmed.len(), want_confirmed);
    assert_eq!(t.refuted.len(), want_refuted);
    assert!(t.confirmed.contains(&shows), "{shows}");
    assert!(t.refuted.contains(&does_not), "{does_not}");
    assert!(t.settled.contains(&(uncertain.clone(), true)));
    assert_eq!(t.unpredicted, vec![fresh.to_string()]);
    assert!(!t.untested.is_empty() && t.untested.iter().all(|id| op_of(id) == untested_op));
    assert!(
        text.contains(&format!(
            "Predictions for metal: {} confirmed, {} refuted, ",
            want_confirmed, want_refuted
        )),
        "{text}"
    );
    assert!(text.contains(&format!("refuted: {does_not}")), "{text}");
    assert!(text.contains(&format!("not predicted: {fresh}")), "{text}");
    assert!(
        text.contains("rerun with --bless") && text.contains("commit repro/sweep-known.toml"),
        "{text}"
    );
}
