//! What one run of the suite and the sweep on one device says about the root causes in
//! `repro/bugs/`: which it showed here, which only another backend shows, which were expected
//! here and did not show, and what to do next. The last thing `repro run` prints: per root
//! cause seen, its severity, what to do upstream (`new-issue`, `comment` on an open issue,
//! `pr-exists`, `question`) and its name, whose text is `reports/upstream/<name>.md`.

use crate::runner::SuiteReport;
use crate::sweep::known::RootCause;
use crate::sweep::report::SweepReport;
use harness::Verdict;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Where one root cause stands after a run on `backend`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// This run showed at least one of its ids (or reproduced one of its cases).
    Seen,
    /// Runs observed it only on other backends: this device cannot show it.
    OtherBackends(Vec<String>),
    /// Runs observed it on this backend before, and this run did not show it.
    NotSeenHere,
    /// A question read from source about a backend no run has covered.
    ReadFromSource(String),
}

/// Each root cause that is a bug (not a refuted claim), with where it stands.
pub fn standings(
    backend: &str,
    sweep: Option<&SweepReport>,
    suite: &SuiteReport,
    causes: &BTreeMap<String, RootCause>,
) -> BTreeMap<String, Standing> {
    let shown: BTreeSet<&str> = sweep
        .into_iter()
        .flat_map(|r| &r.divergences)
        .filter(|d| d.backends.iter().any(|b| b == backend))
        .map(|d| d.id.as_str())
        .collect();
    let reproduced: BTreeSet<String> = suite
        .cases
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Reproduced | Verdict::Crashed))
        .map(|c| format!("case:{}", c.case))
        .collect();
    causes
        .iter()
        .filter(|(k, _)| RootCause::is_bug(k))
        .map(|(k, r)| {
            let seen = r
                .ids
                .iter()
                .any(|id| shown.contains(id.as_str()) || reproduced.contains(id));
            let standing = if let Some(b) = &r.bug.front.from_source {
                Standing::ReadFromSource(b.clone())
            } else if seen {
                Standing::Seen
            } else if r.backends.iter().any(|b| b == backend) {
                Standing::NotSeenHere
            } else {
                Standing::OtherBackends(r.backends.clone())
            };
            (k.clone(), standing)
        })
        .collect()
}

/// The summary: counts, one line per root cause seen here (worst first), the others grouped by
/// the backend that shows them, and the next step.
pub fn summary(
    backend: &str,
    sweep: Option<&SweepReport>,
    suite: &SuiteReport,
    causes: &BTreeMap<String, RootCause>,
) -> String {
    let st = standings(backend, sweep, suite, causes);
    let mut out = String::new();
    let seen: Vec<(&String, &RootCause)> = {
        let mut v: Vec<_> = causes
            .iter()
            .filter(|(k, _)| st.get(*k) == Some(&Standing::Seen))
            .collect();
        v.sort_by_key(|(k, r)| (r.bug.front.severity, r.bug.front.rank, k.to_string()));
        v
    };
    let read: Vec<&String> = st
        .values()
        .filter_map(|s| match s {
            Standing::ReadFromSource(b) => Some(b),
            _ => None,
        })
        .collect();
    let _ = writeln!(
        out,
        "\nRoot causes (repro/bugs/): {} in candle {}; this run on {backend} showed {}.",
        st.len() - read.len(),
        harness::device::CANDLE_VERSION,
        seen.len()
    );
    for (k, r) in &seen {
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {k}",
            r.bug.front.severity.as_str(),
            r.bug.front.action.as_str()
        );
    }
    let mut elsewhere: BTreeMap<String, usize> = BTreeMap::new();
    for s in st.values() {
        if let Standing::OtherBackends(bs) = s {
            *elsewhere.entry(bs.join("+")).or_default() += 1;
        }
    }
    for (bs, n) in &elsewhere {
        let _ = writeln!(
            out,
            "{n} more need{} {bs}: observed there, not on {backend}.",
            if *n == 1 { "s" } else { "" }
        );
    }
    if !read.is_empty() {
        let _ = writeln!(
            out,
            "{} more {} read from source about a backend no run has covered ({}).",
            read.len(),
            if read.len() == 1 {
                "question is"
            } else {
                "questions are"
            },
            read.iter()
                .map(|b| b.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let gone: Vec<&String> = st
        .iter()
        .filter(|(_, s)| **s == Standing::NotSeenHere)
        .map(|(k, _)| k)
        .collect();
    if !gone.is_empty() {
        let _ =
            writeln!(
            out,
            "{} observed on {backend} before did not show in this run (fixed? a partial run?): {}",
            gone.len(),
            gone.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(
        out,
        "Next: each root cause's upstream text is reports/upstream/<name>.md (the filing order is reports/upstream/README.md)."
    );
    if elsewhere.keys().any(|b| b.contains("cuda")) && backend != "cuda" {
        let _ = writeln!(
            out,
            "On an NVIDIA GPU, `cargo run -p repro --release --features cuda -- run` shows the CUDA ones."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::report::Divergence;

    fn cause(ids: &[&str], backends: &[&str]) -> RootCause {
        let bug = crate::bugs::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/bugs"
        )))
        .unwrap()
        .into_values()
        .next()
        .unwrap();
        RootCause {
            title: String::new(),
            backends: backends.iter().map(|s| s.to_string()).collect(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            bug,
        }
    }

    #[test]
    fn a_cause_is_seen_elsewhere_or_missing_by_what_this_run_showed() {
        let divergence = |id: &str, backends: &[&str]| Divergence {
            backends: backends.iter().map(|s| s.to_string()).collect(),
            cells: 1,
            ..Divergence::new(id, "", "forward", crate::sweep::exec::Category::WrongResult)
        };
        let shown = divergence("a", &["cpu", "cuda"]);
        let only_cuda = divergence("b", &["cuda"]);
        let sweep = SweepReport {
            divergences: vec![shown, only_cuda],
            ..Default::default()
        };
        let suite = SuiteReport::default();
        let mut question = cause(&[], &[]);
        question.bug.front.from_source = Some("metal".into());
        let causes: BTreeMap<String, RootCause> = [
            ("question".to_string(), question),
            ("seen".to_string(), cause(&["a"], &["cpu", "cuda"])),
            ("elsewhere".to_string(), cause(&["b"], &["cuda"])),
            ("gone".to_string(), cause(&["c"], &["cpu"])),
            ("not-a-bug-x".to_string(), cause(&["d"], &["cpu"])),
        ]
        .into();
        let st = standings("cpu", Some(&sweep), &suite, &causes);
        assert_eq!(st["seen"], Standing::Seen);
        assert_eq!(
            st["elsewhere"],
            Standing::OtherBackends(vec!["cuda".into()])
        );
        assert_eq!(st["gone"], Standing::NotSeenHere);
        assert!(!st.contains_key("not-a-bug-x"));
        assert_eq!(st["question"], Standing::ReadFromSource("metal".into()));
        // On the GPU the only-CUDA divergence is seen.
        let st = standings("cuda", Some(&sweep), &suite, &causes);
        assert_eq!(st["elsewhere"], Standing::Seen);
    }
}
