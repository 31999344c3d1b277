//! The bug files (`repro/bugs/*.md`): each parses, and every line they quote from candle is a
//! line of the pinned release's published sources, at the line numbers they give.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails with every quote that is not candle's source, not only the first. Needs the pinned
/// candle crates in cargo's registry (`cargo fetch` brings candle-kernels, which a CPU build
/// does not download): without them this fails, it does not skip.
#[test]
fn every_quote_is_a_line_of_the_pinned_candle_sources() {
    let bugs = repro::bugs::load(&root().join(repro::bugs::DIR)).expect("bug files load");
    let sources = repro::bugs::Sources::pinned().expect("cargo's registry is readable");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (key, b) in &bugs {
        for q in b.front.quote.iter().chain(&b.front.contract) {
            checked += 1;
            if let Err(e) = sources.check(q) {
                wrong.push(format!("repro/bugs/{key}.md: {e}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "quotes that are not candle's source:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked > bugs.len(),
        "only {checked} quotes in {} bug files",
        bugs.len()
    );
}

/// A quote one character off, or cited at the wrong lines, fails the check (the check can fail).
#[test]
fn a_changed_or_misplaced_quote_fails() {
    let bugs = repro::bugs::load(&root().join(repro::bugs::DIR)).expect("bug files load");
    let sources = repro::bugs::Sources::pinned().expect("cargo's registry is readable");
    let q = bugs
        .values()
        .flat_map(|b| b.front.quote.iter())
        .find(|q| q.code_lines().len() >= 2)
        .expect("a quote of two lines or more")
        .clone();
    assert!(sources.check(&q).is_ok());
    let mut changed = q.clone();
    changed.code = changed.code.replacen(';', ",", 1).replacen('(', "[", 1);
    assert!(
        sources.check(&changed).is_err(),
        "changed: {}",
        changed.code
    );
    let (a, b) = q.range().unwrap();
    let mut moved = q.clone();
    moved.lines = format!("{}-{}", b + 1, b + 1 + (b - a));
    assert!(sources.check(&moved).is_err(), "moved to {}", moved.lines);
}

/// The suite's verdicts predicted from source (`[predicted.…]` in repro/expected.toml) rest on
/// lines that are candle's source, checked the same way.
#[test]
fn every_prediction_quote_is_a_line_of_the_pinned_candle_sources() {
    let cases: Vec<&str> = repro::cases::all().iter().map(|c| c.name).collect();
    let m = repro::manifest::Manifest::load(&root().join(repro::manifest::DEFAULT_PATH), &cases)
        .expect("the manifest loads");
    let sources = repro::bugs::Sources::pinned().expect("cargo's registry is readable");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (case, backends) in &m.predicted {
        for (backend, p) in backends {
            for q in &p.quote {
                checked += 1;
                if let Err(e) = sources.check(q) {
                    wrong.push(format!("predicted.{case}.{backend}: {e}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 2, "only {checked} prediction quotes");
}

/// The prose's count of root causes is the bug files': README and ISSUES.md said 29 after
/// merges had left 25.
#[test]
fn the_prose_counts_the_root_causes() {
    let bugs = repro::bugs::load(&root().join(repro::bugs::DIR)).expect("bug files load");
    let n = bugs
        .values()
        .filter(|b| b.is_bug() && b.front.from_source.is_none())
        .count();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let issues = std::fs::read_to_string(root().join("ISSUES.md")).unwrap();
    assert!(
        readme.contains(&format!("**{n} root causes** in candle")),
        "README.md should count {n} root causes"
    );
    assert!(
        issues.contains(&format!("{n} root causes, on candle")),
        "ISSUES.md should count {n} root causes"
    );
}
