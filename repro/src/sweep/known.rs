//! The manifest of known sweep divergences (`repro/sweep-known.toml`), with expected-failure
//! semantics: a divergence the manifest expects on a backend that ran and that no longer shows
//! fails the run ("fixed? update the manifest"); one the manifest lacks fails it too ("new").

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const DEFAULT_PATH: &str = "repro/sweep-known.toml";
/// The folder of bug files, one per root cause (`repro/bugs/<key>.md`).
pub const ROOT_CAUSES_PATH: &str = crate::bugs::DIR;

/// One root cause behind one or more divergence ids and suite cases: its bug file, and the
/// backends runs observed its claims on (from `sweep-known.toml` and `expected.toml` beside the
/// bug folder).
#[derive(Clone, Debug, PartialEq)]
pub struct RootCause {
    pub title: String,
    /// The backends runs observed any of its ids on.
    pub backends: Vec<String>,
    /// Sweep ids, and suite cases as `case:<name>`.
    pub ids: Vec<String>,
    pub bug: crate::bugs::Bug,
}

impl RootCause {
    /// Keys under `not-a-bug-` group suite cases that turned out not to be candle bugs.
    pub fn is_bug(key: &str) -> bool {
        !key.starts_with("not-a-bug-")
    }

    pub fn of(bug: crate::bugs::Bug, known: &KnownSet, suite: &crate::manifest::Manifest) -> Self {
        let mut backends = BTreeSet::new();
        for id in &bug.front.claims {
            match id.strip_prefix("case:") {
                Some(case) => {
                    for (b, e) in suite.entries.get(case).into_iter().flatten() {
                        if e.verdict == "reproduced" {
                            backends.insert(b.clone());
                        }
                        if e.cpu_vs_oracle.as_deref() == Some("disagrees") {
                            backends.insert("cpu".to_string());
                        }
                    }
                }
                None => {
                    if let Some(k) = known.entries.get(id) {
                        backends.extend(k.backends.iter().cloned());
                    }
                }
            }
        }
        RootCause {
            title: bug.front.title.clone(),
            backends: backends.into_iter().collect(),
            ids: bug.front.claims.clone(),
            bug,
        }
    }
}

/// The bug files in `dir` (`repro/bugs`), with the backends the manifests beside it
/// (`repro/sweep-known.toml`, `repro/expected.toml`) observed their claims on.
pub fn load_root_causes(dir: &Path) -> Result<BTreeMap<String, RootCause>, Error> {
    let bugs = crate::bugs::load(dir)?;
    let repro = dir.parent().unwrap_or(Path::new("."));
    let known = KnownSet::load(&repro.join("sweep-known.toml"))?;
    let case_names: Vec<&str> = crate::cases::all().iter().map(|c| c.name).collect();
    let suite = crate::manifest::Manifest::load(&repro.join("expected.toml"), &case_names)?;
    Ok(bugs
        .into_iter()
        .map(|(k, b)| (k, RootCause::of(b, &known, &suite)))
        .collect())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Known {
    /// wrong-result | unimplemented | error-mismatch | crash
    pub category: String,
    /// The backends a run observed it on.
    pub backends: Vec<String>,
    /// The earliest candle version a run observed it with.
    pub first_seen: String,
    /// The candle version of the last run that observed it.
    pub candle: String,
    /// The device each backend's observation came from.
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// `false` for an entry known only from reading source: it is never reported as observed.
    pub observed: bool,
    /// Why a backend is predicted to show it: only on an entry no run has observed (an
    /// observed one's prose is its bug file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Backends where reading candle's source predicts this divergence but no run has shown
    /// it yet (backend → evidence). The first run on that backend confirms or refutes each one
    /// (`--bless` records which); a prediction never counts as an observation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub predicted: BTreeMap<String, Prediction>,
}

impl Known {
    /// An entry first observed by a run with candle `candle`, on no backend yet.
    pub fn first_observed(category: &str, candle: &str) -> Self {
        Known {
            category: category.into(),
            backends: vec![],
            first_seen: candle.into(),
            candle: candle.into(),
            devices: BTreeMap::new(),
            observed: true,
            note: None,
            predicted: BTreeMap::new(),
        }
    }
}

/// A divergence expected from reading source, with the evidence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// The sweep cell that would show it.
    pub cell: String,
    /// `crate-version/path.rs:function`.
    pub source: String,
    /// A short verbatim quote of that source.
    pub quote: String,
    /// high | medium | low
    pub confidence: String,
    /// Set by `--bless` from the first run on the backend: `confirmed …` or `refuted …`, with
    /// the candle version and device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Prediction {
    pub fn open(&self) -> bool {
        self.outcome.is_none()
    }
}

#[derive(Debug, Default, Clone)]
pub struct KnownSet {
    pub entries: BTreeMap<String, Known>,
}

impl KnownSet {
    pub fn load(path: &Path) -> Result<Self, Error> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
        let entries: BTreeMap<String, Known> = toml::from_str(&text)
            .map_err(|e| Error::BadInput(format!("{}: {}", path.display(), e.message())))?;
        for (id, k) in &entries {
            if k.observed && k.note.is_some() {
                return Err(Error::BadInput(format!(
                    "{}: `{id}` is observed and has a note: its prose belongs in the bug file that claims it (repro/bugs/)",
                    path.display()
                )));
            }
            for b in k.backends.iter().chain(k.predicted.keys()) {
                if !crate::manifest::BACKENDS.contains(&b.as_str()) {
                    return Err(Error::BadInput(format!(
                        "{}: `{id}` names unknown backend `{b}`",
                        path.display()
                    )));
                }
            }
        }
        Ok(Self { entries })
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::from(
            "# Known divergences found by `repro sweep`, written by `repro sweep --bless` from a run\n\
             # and reviewed like code. Each names the backends a run observed it on and the candle\n\
             # versions; its root cause, prose and upstream thread are the bug file's in repro/bugs/\n\
             # that claims it. A sweep fails when a divergence here no longer shows on a backend\n\
             # that ran (fixed? update this file) or when one shows that is not here.\n\
             # `[<id>.predicted.<backend>]` is a divergence read from candle's source on a backend no\n\
             # run has shown it on (the cell that would show it, the source and a quote); it is never\n\
             # reported as observed, and the first run on that backend confirms or refutes it\n\
             # (`--bless` records the outcome). `observed = false`: predictions only.\n\n",
        );
        s.push_str(&toml::to_string(&self.entries).expect("serialisable"));
        s
    }
}

/// How one divergence compares with the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Seen, and expected on exactly these backends: an expected failure.
    Expected,
    /// Seen, not in the manifest (or on a backend it does not list).
    New,
    /// Expected on a backend that ran, but not seen: fixed? update the manifest.
    Fixed,
    /// In the manifest, but its op was not swept in this run (filtered or out of budget).
    NotRun,
    /// Predicted from source on this backend and now observed: `--bless` records it.
    Confirmed,
    /// Predicted from source on a backend that ran the op, and not observed: `--bless`
    /// records the refutation.
    Refuted,
}

/// Compares what a run saw (`id → backends`) with the manifest, for the backends that ran.
pub fn check(
    known: &KnownSet,
    seen: &BTreeMap<String, BTreeSet<String>>,
    ran_backends: &[String],
    ops_completed: &BTreeSet<String>,
    op_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, (Status, String)> {
    let mut out = BTreeMap::new();
    for (id, backends) in seen {
        let status = match known.entries.get(id) {
            Some(k) => {
                let missing: Vec<&String> = backends
                    .iter()
                    .filter(|b| !k.backends.contains(b))
                    .collect();
                let gone: Vec<&String> = k
                    .backends
                    .iter()
                    .filter(|b| ran_backends.contains(b) && !backends.contains(*b))
                    .collect();
                let confirmed: Vec<&String> = missing
                    .iter()
                    .copied()
                    .filter(|b| k.predicted.get(*b).is_some_and(Prediction::open))
                    .collect();
                if missing.is_empty() && gone.is_empty() {
                    (Status::Expected, "expected failure".to_string())
                } else if !confirmed.is_empty()
                    && confirmed.len() == missing.len()
                    && gone.is_empty()
                {
                    (
                        Status::Confirmed,
                        format!("predicted from source on {confirmed:?} and now observed: record it with --bless"),
                    )
                } else if missing.is_empty() {
                    (
                        Status::Fixed,
                        format!("no longer diverges on {gone:?}: fixed? update the manifest"),
                    )
                } else {
                    (
                        Status::New,
                        format!("now also on {missing:?}: update the manifest"),
                    )
                }
            }
            None => (
                Status::New,
                "new divergence: add it with `repro sweep --bless` after reviewing its report"
                    .into(),
            ),
        };
        out.insert(id.clone(), status);
    }
    // Open predictions on a backend that swept the op and did not see them: refuted.
    for (id, k) in &known.entries {
        if out.contains_key(id) {
            continue;
        }
        let refuted: Vec<&String> = k
            .predicted
            .iter()
            .filter(|(b, p)| p.open() && ran_backends.contains(b))
            .map(|(b, _)| b)
            .collect();
        if refuted.is_empty() {
            continue;
        }
        if op_of(id).is_some_and(|op| ops_completed.contains(&op)) {
            out.insert(
                id.clone(),
                (
                    Status::Refuted,
                    format!("predicted from source on {refuted:?}, not observed: record it with --bless"),
                ),
            );
        }
    }
    for (id, k) in &known.entries {
        if out.contains_key(id) || !k.observed {
            continue;
        }
        let expected_here: Vec<&String> = k
            .backends
            .iter()
            .filter(|b| ran_backends.contains(b))
            .collect();
        if expected_here.is_empty() {
            continue;
        }
        let op_ran = op_of(id).is_some_and(|op| ops_completed.contains(&op));
        let status = if op_ran {
            (
                Status::Fixed,
                format!("no longer diverges on {expected_here:?}: fixed? update the manifest"),
            )
        } else {
            (Status::NotRun, "its op was not swept in this run".into())
        };
        out.insert(id.clone(), status);
    }
    out
}

/// What one run saw of one divergence, for `apply_run`.
pub struct Seen {
    pub id: String,
    pub category: String,
    pub backends: BTreeSet<String>,
}

/// Rewrites the manifest from a run that finished every op it was asked for (`--bless`): the
/// backends that ran are replaced by what they showed, open predictions on them become
/// `confirmed` or `refuted`, and entries no run shows any more are dropped (predictions stay).
/// `devices` names the device behind each backend that ran.
pub fn apply_run(
    known: &mut KnownSet,
    seen: &[Seen],
    ran: &[String],
    ops_completed: &BTreeSet<String>,
    op_of: impl Fn(&str) -> Option<String>,
    devices: &BTreeMap<String, String>,
    candle: &str,
) {
    // The descriptions before this run, for a backend it sees but does not name (below).
    let before: BTreeMap<String, BTreeMap<String, String>> = known
        .entries
        .iter()
        .map(|(id, k)| (id.clone(), k.devices.clone()))
        .collect();
    for k in known.entries.values_mut() {
        k.backends.retain(|b| !ran.contains(b));
        k.devices.retain(|b, _| !ran.contains(b));
    }
    for d in seen {
        let k = known
            .entries
            .entry(d.id.clone())
            .or_insert_with(|| Known::first_observed(&d.category, candle));
        k.candle = candle.into();
        k.observed = true;
        // Observed now: its prose is the bug file's that claims it.
        k.note = None;
        for b in &d.backends {
            if !k.backends.contains(b) {
                k.backends.push(b.clone());
            }
            // A bare "cpu" is the host of a GPU run, which does not name its CPU: it fills a
            // missing description but does not replace the CPU run's own ("cpu (AMD EPYC)").
            let named_before = before.get(&d.id).and_then(|m| m.get(b));
            match (devices.get(b), named_before) {
                (Some(dev), Some(old)) if dev == b => {
                    k.devices.insert(b.clone(), old.clone());
                }
                (Some(dev), _) => {
                    k.devices.insert(b.clone(), dev.clone());
                }
                (None, _) => {}
            }
            if let Some(p) = k.predicted.get_mut(b).filter(|p| p.open()) {
                p.outcome = Some(format!(
                    "confirmed with candle {candle} on {}",
                    devices.get(b).map_or(b.as_str(), String::as_str)
                ));
            }
        }
        k.backends.sort();
    }
    let seen_ids: BTreeSet<&str> = seen.iter().map(|d| d.id.as_str()).collect();
    for (id, k) in known.entries.iter_mut() {
        let swept = op_of(id).is_some_and(|op| ops_completed.contains(&op));
        for (b, p) in k.predicted.iter_mut() {
            if p.open() && swept && ran.contains(b) && !seen_ids.contains(id.as_str()) {
                p.outcome = Some(format!(
                    "refuted with candle {candle} on {}",
                    devices.get(b).map_or(b.as_str(), String::as_str)
                ));
            }
        }
        if k.backends.is_empty() && !k.predicted.is_empty() {
            // Only predictions left: nothing observed any more.
            k.observed = false;
        }
    }
    known
        .entries
        .retain(|_, k| !k.backends.is_empty() || !k.predicted.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An observed entry's prose is its bug file's: a note on one is refused; a prediction
    /// (never observed) keeps its note.
    #[test]
    fn an_observed_entry_with_a_note_is_refused() {
        let dir = std::env::temp_dir().join(format!("known-note-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known.toml");
        let entry = "[x]\ncategory = \"wrong-result\"\nbackends = [\"cpu\"]\nfirst_seen = \"0.11.1\"\ncandle = \"0.11.1\"\n";
        std::fs::write(&path, format!("{entry}observed = true\nnote = \"why\"\n")).unwrap();
        let e = KnownSet::load(&path).unwrap_err().to_string();
        assert!(e.contains("belongs in the bug file"), "{e}");
        std::fs::write(&path, format!("{entry}observed = false\nnote = \"why\"\n")).unwrap();
        assert!(KnownSet::load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn prediction() -> Prediction {
        Prediction {
            cell: "f32, src transposed".into(),
            source: "candle-core-0.11.1/src/metal_backend/mod.rs:gather".into(),
            quote: "let src = buffer_o(...)".into(),
            confidence: "high".into(),
            outcome: None,
        }
    }

    fn set() -> KnownSet {
        let predicted_only = Known {
            observed: false,
            predicted: BTreeMap::from([("metal".to_string(), prediction())]),
            ..Known::first_observed("wrong-result", "0.11.1")
        };
        let also_on_cpu = Known {
            backends: vec!["cpu".into()],
            observed: true,
            ..predicted_only.clone()
        };
        KnownSet {
            entries: BTreeMap::from([
                ("gather-fwd-wrong-result".to_string(), predicted_only),
                (
                    "gather-fwd-unimplemented-src-transposed".to_string(),
                    also_on_cpu,
                ),
            ]),
        }
    }

    fn op_of(_: &str) -> Option<String> {
        Some("gather".into())
    }

    /// The first Mac run turns every prediction into confirmed or refuted, with no hand edit:
    /// the run itself fails until blessed, and the blessed manifest then checks clean.
    #[test]
    fn a_first_run_confirms_or_refutes_each_prediction() {
        let mut known = set();
        let ran = vec!["cpu".to_string(), "metal".to_string()];
        let done = BTreeSet::from(["gather".to_string()]);
        // The Mac run shows the transposed-src divergence on both backends, not the other.
        let seen_map = BTreeMap::from([(
            "gather-fwd-unimplemented-src-transposed".to_string(),
            BTreeSet::from(["cpu".to_string(), "metal".to_string()]),
        )]);
        let st = check(&known, &seen_map, &ran, &done, op_of);
        assert_eq!(
            st["gather-fwd-unimplemented-src-transposed"].0,
            Status::Confirmed
        );
        assert_eq!(st["gather-fwd-wrong-result"].0, Status::Refuted);
        // A CPU-only run says nothing about Metal predictions.
        let cpu_only = check(
            &known,
            &BTreeMap::from([(
                "gather-fwd-unimplemented-src-transposed".to_string(),
                BTreeSet::from(["cpu".to_string()]),
            )]),
            &["cpu".to_string()],
            &done,
            op_of,
        );
        assert_eq!(
            cpu_only["gather-fwd-unimplemented-src-transposed"].0,
            Status::Expected
        );
        assert!(!cpu_only.contains_key("gather-fwd-wrong-result"));

        let seen = vec![Seen {
            id: "gather-fwd-unimplemented-src-transposed".into(),
            category: "unimplemented".into(),
            backends: BTreeSet::from(["cpu".to_string(), "metal".to_string()]),
        }];
        let devices = BTreeMap::from([
            ("cpu".to_string(), "cpu (Apple M2)".to_string()),
            ("metal".to_string(), "metal:0 (Apple M2)".to_string()),
        ]);
        apply_run(&mut known, &seen, &ran, &done, op_of, &devices, "0.11.1");
        let t = &known.entries["gather-fwd-unimplemented-src-transposed"];
        assert_eq!(t.backends, ["cpu", "metal"]);
        assert!(t.predicted["metal"]
            .outcome
            .as_deref()
            .unwrap()
            .starts_with("confirmed"));
        let w = &known.entries["gather-fwd-wrong-result"];
        assert!(!w.observed);
        assert!(w.predicted["metal"]
            .outcome
            .as_deref()
            .unwrap()
            .starts_with("refuted"));
        // After the bless the same run checks clean.
        let st = check(&known, &seen_map, &ran, &done, op_of);
        assert!(st.values().all(|(s, _)| *s == Status::Expected), "{st:?}");

        // A GPU run's host CPU ("cpu", unnamed) does not replace the CPU run's description.
        let gpu_run = BTreeMap::from([
            ("cpu".to_string(), "cpu".to_string()),
            ("metal".to_string(), "metal:0 (Apple M3)".to_string()),
        ]);
        apply_run(&mut known, &seen, &ran, &done, op_of, &gpu_run, "0.11.1");
        let t = &known.entries["gather-fwd-unimplemented-src-transposed"];
        assert_eq!(t.devices["cpu"], "cpu (Apple M2)");
        assert_eq!(t.devices["metal"], "metal:0 (Apple M3)");
    }
}
