//! The expected-status manifest (`repro/expected.toml`): for each case and backend, the verdict
//! last observed by a run, with the candle version and upstream link. A suite run whose verdict
//! differs fails and says what changed — the expected-failure / unexpected-pass discipline of
//! PyTorch's MPS tests and rust's `tests/crashes`.
//!
//! Apart from them, under `[predicted.<case>.<backend>]`, a verdict read from candle's source for
//! a backend no run has covered (Metal): its reason and the source lines it rests on (checked
//! verbatim against the pinned candle, `repro/tests/bugs.rs`). A prediction is never an observed
//! verdict; the first run on that backend confirms or refutes it and says what to record.

use crate::error::Error;
use harness::Verdict;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const DEFAULT_PATH: &str = "repro/expected.toml";
pub const BACKENDS: [&str; 3] = ["cpu", "cuda", "metal"];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub verdict: String,
    /// The candle version the verdict was observed with.
    pub candle: String,
    /// Upstream issue or pull request, where one exists.
    pub link: Option<String>,
    pub note: Option<String>,
    /// Whether the CPU agrees with the oracle on every step of every variant (`agrees`) or
    /// not (`disagrees`: a bug in candle's backend-independent code). Checked on every run,
    /// the CPU-only one included, so a CPU run can fail too.
    pub cpu_vs_oracle: Option<String>,
}

/// A case's verdict on a backend read from candle's source, before any run there.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    pub verdict: String,
    /// Why, in a sentence or two, naming the mechanism.
    pub why: String,
    /// The candle 0.11.1 lines it rests on.
    pub quote: Vec<crate::bugs::Quote>,
}

/// case → backend → expectation.
#[derive(Debug, Default)]
pub struct Manifest {
    pub entries: BTreeMap<String, BTreeMap<String, Expectation>>,
    /// case → backend → the verdict predicted from source, where no run has observed one.
    pub predicted: BTreeMap<String, BTreeMap<String, Prediction>>,
}

impl Manifest {
    /// Reads and validates the manifest: known cases, known backends, valid verdicts.
    pub fn load(path: &Path, known_cases: &[&str]) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadInput(format!("cannot read manifest {}: {e}", path.display()))
        })?;
        Self::parse(&text, known_cases)
            .map_err(|e| Error::BadInput(format!("manifest {}: {e}", path.display())))
    }

    pub fn parse(text: &str, known_cases: &[&str]) -> Result<Self, Error> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| Error::input(e.message()))?;
        let predicted: BTreeMap<String, BTreeMap<String, Prediction>> =
            match table.remove("predicted") {
                Some(p) => p.try_into().map_err(|e: toml::de::Error| {
                    Error::input(format!("predicted: {}", e.message()))
                })?,
                None => BTreeMap::new(),
            };
        let entries: BTreeMap<String, BTreeMap<String, Expectation>> = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::input(e.message()))?;
        for (case, backends) in &predicted {
            for (backend, p) in backends {
                if !known_cases.contains(&case.as_str()) || !BACKENDS.contains(&backend.as_str()) {
                    return Err(Error::BadInput(format!(
                        "predicted.{case}.{backend}: unknown case or backend"
                    )));
                }
                if entries.get(case).is_some_and(|b| b.contains_key(backend)) {
                    return Err(Error::BadInput(format!(
                        "predicted.{case}.{backend}: a run observed {case} on {backend}: drop the prediction"
                    )));
                }
                p.verdict
                    .parse::<Verdict>()
                    .map_err(|err| Error::BadInput(format!("predicted.{case}.{backend}: {err}")))?;
                if p.quote.is_empty() {
                    return Err(Error::BadInput(format!(
                        "predicted.{case}.{backend}: a prediction quotes the source it rests on"
                    )));
                }
            }
        }
        for (case, backends) in &entries {
            if !known_cases.contains(&case.as_str()) {
                return Err(Error::BadInput(format!("unknown case `{case}`")));
            }
            for (backend, e) in backends {
                if !BACKENDS.contains(&backend.as_str()) {
                    return Err(Error::BadInput(format!(
                        "{case}: unknown backend `{backend}` (cpu, cuda, metal)"
                    )));
                }
                e.verdict
                    .parse::<Verdict>()
                    .map_err(|err| Error::BadInput(format!("{case}.{backend}: {err}")))?;
                if let Some(c) = &e.cpu_vs_oracle {
                    if c != "agrees" && c != "disagrees" {
                        return Err(Error::BadInput(format!(
                            "{case}.{backend}: cpu_vs_oracle is `{c}` (agrees or disagrees)"
                        )));
                    }
                }
            }
        }
        Ok(Self { entries, predicted })
    }

    pub fn prediction(&self, case: &str, backend: &str) -> Option<&Prediction> {
        self.predicted.get(case)?.get(backend)
    }

    pub fn get(&self, case: &str, backend: &str) -> Option<&Expectation> {
        self.entries.get(case)?.get(backend)
    }
}

/// How an observed verdict compares with the manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    AsExpected,
    /// Differs from the manifest; the message says what changed and what to do.
    Changed,
    /// No entry for this case and backend.
    NoExpectation,
}

impl Status {
    /// The name `suite.json` writes.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::AsExpected => "as-expected",
            Status::Changed => "changed",
            Status::NoExpectation => "no-expectation",
        }
    }
}

fn is_failure(v: Verdict) -> bool {
    matches!(v, Verdict::Reproduced | Verdict::Crashed | Verdict::Hung)
}

/// Compares an observation with its expectation; the message is empty when as expected.
/// `report` is the path of the case's text report, named in the message.
pub fn compare(
    case: &str,
    backend: &str,
    observed: Verdict,
    expected: Option<&Expectation>,
    candle: &str,
    report: &str,
) -> (Status, String) {
    let Some(e) = expected else {
        let msg = match observed {
            Verdict::Crashed | Verdict::Hung => format!(
                "{case} {observed} on {backend} with candle {candle} and the manifest has no entry: read {report}"
            ),
            _ => format!(
                "{case} on {backend}: {observed} with candle {candle}; no expectation recorded — add it to {}",
                DEFAULT_PATH
            ),
        };
        return (Status::NoExpectation, msg);
    };
    let want: Verdict = e.verdict.parse().expect("validated on load");
    if want == observed {
        return (Status::AsExpected, String::new());
    }
    let todo = format!("update {} and ISSUES.md", DEFAULT_PATH);
    let msg = if is_failure(want) && !is_failure(observed) {
        format!(
            "{case} now gives {observed} on {backend} with candle {candle} (expected {want}, seen with candle {}): fixed upstream? read {report}, then {todo}",
            e.candle
        )
    } else if !is_failure(want) && is_failure(observed) {
        format!(
            "{case} now gives {observed} on {backend} with candle {candle} (expected {want}, seen with candle {}): a regression? read {report}; if it is real, {todo}",
            e.candle
        )
    } else {
        format!(
            "{case} changed from {want} (candle {}) to {observed} on {backend} with candle {candle}: read {report}, then {todo}",
            e.candle
        )
    };
    (Status::Changed, msg)
}

/// The first run on a backend that only has a prediction: a verdict that matches confirms it
/// (nothing fails; record the verdict as observed), one that differs refutes it (the run fails
/// and says what to correct).
pub fn compare_prediction(
    case: &str,
    backend: &str,
    observed: Verdict,
    p: &Prediction,
    candle: &str,
    report: &str,
) -> (Status, String) {
    let want: Verdict = p.verdict.parse().expect("validated on load");
    if want == observed {
        (
            Status::NoExpectation,
            format!(
                "{case} on {backend}: {observed} with candle {candle}, as predicted from source: record it as observed in {DEFAULT_PATH} ([{case}.{backend}]) and drop [predicted.{case}.{backend}]"
            ),
        )
    } else {
        (
            Status::Changed,
            format!(
                "{case} on {backend}: {observed} with candle {candle}, but the source predicted {want}: the reading was wrong; read {report}, record the observed verdict in {DEFAULT_PATH}, drop [predicted.{case}.{backend}] and correct ISSUES.md"
            ),
        )
    }
}

/// Compares whether the CPU agreed with the oracle with the manifest's `cpu_vs_oracle`; a
/// message when they differ.
pub fn compare_cpu_vs_oracle(
    case: &str,
    cpu_disagrees: Option<bool>,
    expected: Option<&Expectation>,
    candle: &str,
    report: &str,
) -> Option<String> {
    let want = expected?.cpu_vs_oracle.as_deref()?;
    let seen = if cpu_disagrees? {
        "disagrees"
    } else {
        "agrees"
    };
    (want != seen).then(|| {
        let what = if seen == "agrees" {
            "fixed upstream?"
        } else {
            "a regression in candle's CPU backend (or in the oracle)?"
        };
        format!(
            "{case}: the cpu now {seen} with the oracle with candle {candle} (expected: {want}): {what} read {report}, then update cpu_vs_oracle in {DEFAULT_PATH} and ISSUES.md"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: [&str; 1] = ["scatter_add_u32"];

    #[test]
    fn rejects_bad_entries() {
        assert!(Manifest::parse(
            "[nope.cpu]\nverdict = \"caller-error\"\ncandle = \"0.11.1\"",
            &CASES
        )
        .is_err());
        assert!(Manifest::parse(
            "[scatter_add_u32.tpu]\nverdict = \"caller-error\"\ncandle = \"0.11.1\"",
            &CASES
        )
        .is_err());
        assert!(Manifest::parse(
            "[scatter_add_u32.cpu]\nverdict = \"fine\"\ncandle = \"0.11.1\"",
            &CASES
        )
        .is_err());
        assert!(Manifest::parse(
            "[scatter_add_u32.cpu]\nverdict = \"caller-error\"\ncandle = \"0.11.1\"\ntypo = 1",
            &CASES
        )
        .is_err());
        let m = Manifest::parse(
            "[scatter_add_u32.cuda]\nverdict = \"caller-error\"\ncandle = \"0.11.1\"",
            &CASES,
        )
        .unwrap();
        assert_eq!(
            m.get("scatter_add_u32", "cuda").unwrap().verdict,
            "caller-error"
        );
    }

    #[test]
    fn a_first_run_confirms_or_refutes_a_prediction() {
        let text = "[predicted.scatter_add_u32.metal]\nverdict = \"caller-error\"\nwhy = \"w\"\n[[predicted.scatter_add_u32.metal.quote]]\nfile = \"f\"\nlines = \"1\"\ncode = \"c\"\n";
        let m = Manifest::parse(text, &CASES).unwrap();
        assert!(
            m.get("scatter_add_u32", "metal").is_none(),
            "a prediction is not observed"
        );
        let p = m.prediction("scatter_add_u32", "metal").unwrap();
        let (s, msg) = compare_prediction(
            "scatter_add_u32",
            "metal",
            Verdict::CallerError,
            p,
            "0.11.1",
            "r",
        );
        assert_eq!(s, Status::NoExpectation);
        assert!(msg.contains("as predicted from source"), "{msg}");
        let (s, msg) = compare_prediction(
            "scatter_add_u32",
            "metal",
            Verdict::Reproduced,
            p,
            "0.11.1",
            "r",
        );
        assert_eq!(s, Status::Changed);
        assert!(msg.contains("the source predicted caller-error"), "{msg}");
        // A prediction beside an observed verdict, or without a quote, is refused.
        let both = format!(
            "{text}[scatter_add_u32.metal]\nverdict = \"caller-error\"\ncandle = \"0.11.1\"\n"
        );
        assert!(Manifest::parse(&both, &CASES).is_err());
        let bare = "[predicted.scatter_add_u32.metal]\nverdict = \"caller-error\"\nwhy = \"w\"\nquote = []\n";
        assert!(Manifest::parse(bare, &CASES).is_err());
    }

    #[test]
    fn unexpected_pass_says_fixed() {
        let e = Expectation {
            verdict: "reproduced".into(),
            candle: "0.9.2".into(),
            link: None,
            note: None,
            cpu_vs_oracle: Some("disagrees".into()),
        };
        assert!(compare_cpu_vs_oracle("x", Some(true), Some(&e), "0.11.1", "r").is_none());
        let msg = compare_cpu_vs_oracle("x", Some(false), Some(&e), "0.11.1", "r").unwrap();
        assert!(
            msg.contains("now agrees") && msg.contains("fixed upstream?"),
            "{msg}"
        );
        let (s, msg) = compare(
            "x",
            "cuda",
            Verdict::NotReproduced,
            Some(&e),
            "0.11.1",
            "r.txt",
        );
        assert_eq!(s, Status::Changed);
        assert!(
            msg.contains("fixed upstream?") && msg.contains("0.11.1"),
            "{msg}"
        );
        let (s, msg) = compare(
            "x",
            "cuda",
            Verdict::Reproduced,
            Some(&e),
            "0.11.1",
            "r.txt",
        );
        assert_eq!((s, msg.as_str()), (Status::AsExpected, ""));
        let ok = Expectation {
            verdict: "not-reproduced".into(),
            ..e
        };
        let (_, msg) = compare("x", "cuda", Verdict::Crashed, Some(&ok), "0.11.1", "r.txt");
        assert!(msg.contains("regression?"), "{msg}");
    }
}
