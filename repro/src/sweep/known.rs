//! The manifest of known sweep divergences (`repro/sweep-known.toml`), with expected-failure
//! semantics: a divergence the manifest expects on a backend that ran and that no longer shows
//! fails the run ("fixed? update the manifest"); one the manifest lacks fails it too ("new").

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const DEFAULT_PATH: &str = "repro/sweep-known.toml";

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
    /// The upstream issue, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct KnownSet {
    pub entries: BTreeMap<String, Known>,
}

impl KnownSet {
    pub fn load(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let entries: BTreeMap<String, Known> =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        for (id, k) in &entries {
            for b in &k.backends {
                if !crate::manifest::BACKENDS.contains(&b.as_str()) {
                    return Err(format!(
                        "{}: `{id}` names unknown backend `{b}`",
                        path.display()
                    ));
                }
            }
        }
        Ok(Self { entries })
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::from(
            "# Known divergences found by `repro sweep`, written by `repro sweep --bless` from a run\n\
             # and reviewed like code. Each names the backends a run observed it on, the candle\n\
             # versions, and the upstream issue where one exists. `observed = false` marks an entry\n\
             # known only from reading source (never reported as observed). A sweep fails when a\n\
             # divergence here no longer shows on a backend that ran (fixed? update this file) or\n\
             # when one shows that is not here.\n\n",
        );
        s.push_str(&toml::to_string(&self.entries).expect("serialisable"));
        s
    }
}

/// How one divergence compares with the manifest.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
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
                if missing.is_empty() && gone.is_empty() {
                    (Status::Expected, "expected failure".to_string())
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
