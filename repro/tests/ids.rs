//! The divergence id's text form is written and read in one place (`sweep::id`): every id the
//! manifest records and every id a bug file claims reads back into its parts and writes out as
//! the same text.

use repro::sweep::id::{Claim, DivergenceId};
use repro::sweep::known::KnownSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_recorded_and_claimed_id_round_trips() {
    let known = KnownSet::load(&root().join(repro::sweep::known::DEFAULT_PATH)).unwrap();
    let bugs = repro::bugs::load(&root().join(repro::bugs::DIR)).unwrap();
    let claimed = bugs
        .values()
        .flat_map(|b| b.front.claims.iter())
        .filter_map(|c| match Claim::parse(c) {
            Claim::Sweep(id) => Some(id),
            Claim::Case(_) => None,
        });
    let mut n = 0;
    let mut bad = Vec::new();
    for id in known.entries.keys().cloned().chain(claimed) {
        n += 1;
        match id.parse::<DivergenceId>() {
            Ok(p) if p.to_string() == id => {}
            Ok(p) => bad.push(format!("{id} reads back as {p}")),
            Err(e) => bad.push(e),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(n > 300, "only {n} ids checked");
}
