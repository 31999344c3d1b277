//! Every divergence a CPU or CUDA run observed has a Metal prediction (shows / does not show /
//! uncertain, with its reason), and the counts STATUS.md and ISSUES.md print are the ones the
//! rules give.

use repro::predict::{self, Outcome};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_observed_id_has_a_metal_prediction_with_a_reason() {
    let known =
        repro::sweep::known::KnownSet::load(&root().join(repro::sweep::known::DEFAULT_PATH))
            .unwrap();
    let causes = repro::sweep::known::load_root_causes(&root().join(repro::bugs::DIR)).unwrap();
    let p = predict::for_pages(&known, &causes).unwrap();
    let observed = known
        .entries
        .values()
        .filter(|k| k.observed && k.backends.iter().any(|b| b == "cpu" || b == "cuda"))
        .count();
    assert_eq!(p.len(), observed);
    for (id, x) in &p {
        assert!(!x.reason.is_empty(), "{id}: no reason");
    }
    // Each outcome occurs: the rules are not all collapsing to one answer.
    for o in [Outcome::Shows, Outcome::DoesNotShow, Outcome::Uncertain] {
        assert!(
            p.values().any(|x| x.outcome == o),
            "no {} prediction",
            o.as_str()
        );
    }
    // The backprop bugs are in code every backend runs.
    let tie = &p["min-keepdim-bwd-x-wrong-result"];
    assert_eq!(tie.outcome, Outcome::Shows, "{tie:?}");
    let status = std::fs::read_to_string(root().join("reports/STATUS.md")).unwrap();
    assert!(
        status.contains(&predict::counts_line(&p)),
        "STATUS.md does not carry the current counts: regenerate with `cargo run -p repro -- status`"
    );
}

/// The README's count of hand predictions is the manifest's.
#[test]
fn the_readme_counts_the_hand_predictions() {
    let known =
        repro::sweep::known::KnownSet::load(&root().join(repro::sweep::known::DEFAULT_PATH))
            .unwrap();
    let n = known
        .entries
        .values()
        .filter(|k| k.predicted.contains_key("metal"))
        .count();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "{n} Metal divergences predicted from source by hand"
        )),
        "README.md should say {n} Metal divergences predicted from source by hand"
    );
}

/// Metal-only predictions come from the dispatch tables: every hand prediction of an id no
/// run has shown is derived mechanically too, except those the dispatch cannot show (wrong
/// values, backward passes); and the derivation, run over the CPU's and CUDA's own cells, lands
/// on ids those runs observed (its naming follows the sweep's).
#[test]
fn the_dispatch_derives_the_metal_only_predictions() {
    let d = repro::metal::ids::derived().unwrap();
    let known =
        repro::sweep::known::KnownSet::load(&root().join(repro::sweep::known::DEFAULT_PATH))
            .unwrap();
    let mut hand_only = Vec::new();
    for (id, k) in &known.entries {
        if !k.observed && k.predicted.contains_key("metal") && !d.contains_key(id) {
            let p: repro::sweep::id::DivergenceId = id.parse().unwrap();
            let dispatch_cannot_show = p.category != repro::sweep::exec::Category::Unimplemented
                || p.pass != repro::sweep::id::Pass::Forward;
            if !dispatch_cannot_show {
                hand_only.push(id.clone());
            }
        }
    }
    assert!(
        hand_only.is_empty(),
        "hand predictions the dispatch does not derive: {hand_only:?}"
    );
    let on_observed = d
        .keys()
        .filter(|id| known.entries.get(*id).is_some_and(|k| k.observed))
        .count();
    assert!(
        on_observed >= 30,
        "only {on_observed} derived ids match observed ones"
    );
    assert!(
        d.contains_key("exp-fwd-unimplemented"),
        "f64 exp is refused on Metal"
    );
}
