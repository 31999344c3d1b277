//! Classifying observations into a verdict. The rules live here and nowhere else: binaries,
//! tests and reports only read the verdict this module computed from a run.

use crate::compare::Check;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The target device agrees with the oracle (and the CPU) on every step of a valid call.
    NotReproduced,
    /// No accelerator was used, so the claim about one was not tested.
    Inconclusive,
    /// The call breaks the op's contract and every backend run rejected it.
    CallerError,
    /// The target device disagrees with the oracle: wrong dtype, shape or values, an error on a
    /// valid call, a tensor for an invalid call, or a panic.
    Reproduced,
    /// The case's process died (panic outside a step, abort, signal); set by the suite runner.
    Crashed,
    /// The case's process did not finish within its time limit; set by the suite runner.
    Hung,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NotReproduced => "not-reproduced",
            Verdict::Inconclusive => "inconclusive",
            Verdict::CallerError => "caller-error",
            Verdict::Reproduced => "reproduced",
            Verdict::Crashed => "crashed",
            Verdict::Hung => "hung",
        }
    }

    /// The process exit code a binary ends with (documented in the README).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::NotReproduced => 0,
            Verdict::Reproduced => 10,
            Verdict::CallerError => 11,
            Verdict::Inconclusive => 12,
            Verdict::Crashed => 13,
            Verdict::Hung => 14,
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Verdict::NotReproduced,
            Verdict::Inconclusive,
            Verdict::CallerError,
            Verdict::Reproduced,
            Verdict::Crashed,
            Verdict::Hung,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown verdict `{s}`: expected not-reproduced, inconclusive, caller-error, reproduced, crashed or hung"))
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One variant's verdict from its step checks against the oracle.
///
/// `target` is `None` when the target is the CPU itself (no accelerator). A variant whose last
/// step is an invalid call is a caller error when every backend run rejected it, whatever the
/// device: the call is wrong before any backend is involved.
pub fn classify_variant(reference: &[Check], target: Option<&[Check]>) -> Verdict {
    let rejected_everywhere = |checks: &[Check]| checks.last() == Some(&Check::RejectedAsExpected);
    let all_agree = |checks: &[Check]| checks.iter().all(Check::agrees);
    match target {
        Some(t) if !all_agree(t) => Verdict::Reproduced,
        Some(t) if rejected_everywhere(t) && rejected_everywhere(reference) => Verdict::CallerError,
        Some(_) => Verdict::NotReproduced,
        None if all_agree(reference) && rejected_everywhere(reference) => Verdict::CallerError,
        None => Verdict::Inconclusive,
    }
}

/// A case's verdict from its variants' verdicts: the most severe wins, except that without an
/// accelerator the claim about one stays inconclusive whatever the CPU showed.
pub fn classify_case(variants: &[Verdict], accelerator_used: bool) -> Verdict {
    if !accelerator_used {
        return Verdict::Inconclusive;
    }
    variants
        .iter()
        .copied()
        .max()
        .unwrap_or(Verdict::Inconclusive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> Check {
        Check::UnexpectedError {
            message: "x".into(),
        }
    }

    #[test]
    fn variant_rules() {
        use Check::*;
        assert_eq!(
            classify_variant(&[Agrees], Some(&[Agrees])),
            Verdict::NotReproduced
        );
        assert_eq!(
            classify_variant(&[Agrees], Some(&[err()])),
            Verdict::Reproduced
        );
        let rej = [Agrees, RejectedAsExpected];
        assert_eq!(classify_variant(&rej, Some(&rej)), Verdict::CallerError);
        assert_eq!(classify_variant(&rej, None), Verdict::CallerError);
        assert_eq!(classify_variant(&[Agrees], None), Verdict::Inconclusive);
        // The CPU accepted an invalid call the target rejected: not a caller error.
        let accepted = [
            Agrees,
            AcceptedInvalid {
                argument: "indexes".into(),
            },
        ];
        assert_eq!(
            classify_variant(&accepted, Some(&rej)),
            Verdict::NotReproduced
        );
        assert_eq!(classify_variant(&accepted, None), Verdict::Inconclusive);
    }

    #[test]
    fn case_rules() {
        use Verdict::*;
        assert_eq!(
            classify_case(&[NotReproduced, CallerError], true),
            CallerError
        );
        assert_eq!(
            classify_case(&[NotReproduced, CallerError, Reproduced], true),
            Reproduced
        );
        assert_eq!(classify_case(&[NotReproduced], true), NotReproduced);
        assert_eq!(
            classify_case(&[CallerError, Reproduced], false),
            Inconclusive
        );
    }
}
