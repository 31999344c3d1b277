//! Comparing an outcome with the oracle's expectation (or with another backend's outcome):
//! per-dtype tolerances and mismatch statistics in the style of PyTorch's MPS consistency tests.

use crate::observe::{Expected, Observed, Outcome};
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// `|got - want| <= atol + rtol * |want|`; integers compare exactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

/// PyTorch's MPS-vs-CPU tolerances per float dtype; exact for integers.
pub fn tolerance(dtype: DType) -> Tolerance {
    let (rtol, atol) = match dtype {
        DType::F16 => (1e-3, 1e-5),
        DType::BF16 => (1.6e-2, 1e-5),
        DType::F32 => (1.3e-6, 1e-5),
        DType::F64 => (1e-7, 1e-7),
        _ => (0.0, 0.0),
    };
    Tolerance { rtol, atol }
}

/// How many values differ, by how much, and where first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub mismatched: usize,
    pub total: usize,
    pub max_abs: f64,
    pub max_abs_at: usize,
    pub max_rel: f64,
    pub max_rel_at: usize,
    /// Up to five `(position, want, got)` in row-major order.
    pub first: Vec<(usize, f64, f64)>,
    pub tolerance: Tolerance,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mismatched elements {} / {} ({:.1}%), greatest abs diff {} at {}, greatest rel diff {:.3e} at {} (rtol {}, atol {}); first: ",
            self.mismatched,
            self.total,
            100.0 * self.mismatched as f64 / self.total.max(1) as f64,
            self.max_abs,
            self.max_abs_at,
            self.max_rel,
            self.max_rel_at,
            self.tolerance.rtol,
            self.tolerance.atol
        )?;
        let first: Vec<String> = self
            .first
            .iter()
            .map(|(i, w, g)| format!("[{i}] want {w} got {g}"))
            .collect();
        f.write_str(&first.join(", "))
    }
}

/// Compares values; `None` when every element is within tolerance.
pub fn compare_values(dtype: DType, want: &[f64], got: &[f64]) -> Option<Mismatch> {
    compare_within(tolerance(dtype), want, got)
}

/// Unit roundoff of a float dtype (half a unit in the last place at 1.0); 0 for integers.
pub fn unit_roundoff(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-11),
        DType::BF16 => 2f64.powi(-8),
        DType::F32 => 2f64.powi(-24),
        DType::F64 => 2f64.powi(-53),
        _ => 0.0,
    }
}

/// Compares values against an explicit tolerance.
pub fn compare_within(tol: Tolerance, want: &[f64], got: &[f64]) -> Option<Mismatch> {
    let bounds: Vec<f64> = want.iter().map(|w| tol.atol + tol.rtol * w.abs()).collect();
    compare_bounded(tol, want, got, &bounds)
}

/// Compares values, element `i` allowed `bounds[i]`; `tol` is what the report quotes (the
/// bound's relative part and its largest absolute part). An infinity matches only the same
/// infinity and a NaN only a NaN, whatever the bound.
pub fn compare_bounded(
    tol: Tolerance,
    want: &[f64],
    got: &[f64],
    bounds: &[f64],
) -> Option<Mismatch> {
    let mut m = Mismatch {
        mismatched: 0,
        total: want.len(),
        max_abs: 0.0,
        max_abs_at: 0,
        max_rel: 0.0,
        max_rel_at: 0,
        first: Vec::new(),
        tolerance: tol,
    };
    for (i, ((&w, &g), &b)) in want.iter().zip(got).zip(bounds).enumerate() {
        let same_nan = w.is_nan() && g.is_nan();
        let same_inf = w.is_infinite() && g == w;
        let abs = if same_nan || same_inf {
            0.0
        } else {
            (g - w).abs()
        };
        let rel = if w == 0.0 { abs } else { abs / w.abs() };
        let bad = abs.is_nan() || (w.is_infinite() && g != w) || abs > b;
        if abs > m.max_abs || abs.is_nan() {
            m.max_abs = abs;
            m.max_abs_at = i;
        }
        if rel > m.max_rel || rel.is_nan() {
            m.max_rel = rel;
            m.max_rel_at = i;
        }
        if bad {
            m.mismatched += 1;
            if m.first.len() < 5 {
                m.first.push((i, w, g));
            }
        }
    }
    (m.mismatched > 0).then_some(m)
}

/// The result of checking one outcome against what it should be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Check {
    /// Same dtype, shape and values (within tolerance).
    Agrees,
    /// The call is invalid and the backend refused it, as it should.
    RejectedAsExpected,
    WrongDtype {
        want: String,
        got: String,
    },
    WrongShape {
        want: Vec<usize>,
        got: Vec<usize>,
    },
    WrongValues(Mismatch),
    /// A valid call returned an error.
    UnexpectedError {
        message: String,
    },
    /// The backend panicked (on a valid or invalid call).
    Panicked {
        message: String,
    },
    /// An invalid call returned a tensor instead of an error.
    AcceptedInvalid {
        argument: String,
    },
    /// Both sides errored, with different messages (error parity between backends).
    DifferentError {
        reference: String,
        target: String,
    },
}

impl Check {
    /// True when the outcome is what it should be.
    pub fn agrees(&self) -> bool {
        matches!(self, Check::Agrees | Check::RejectedAsExpected)
    }

    pub fn describe(&self) -> String {
        match self {
            Check::Agrees => "agrees".into(),
            Check::RejectedAsExpected => "rejected, as it should be".into(),
            Check::WrongDtype { want, got } => format!("dtype {got}, expected {want}"),
            Check::WrongShape { want, got } => format!("shape {got:?}, expected {want:?}"),
            Check::WrongValues(m) => format!("wrong values: {m}"),
            Check::UnexpectedError { message } => format!("error on a valid call: {message}"),
            Check::Panicked { message } => format!("panicked: {message}"),
            Check::AcceptedInvalid { argument } => {
                format!("returned a tensor although `{argument}` is invalid")
            }
            Check::DifferentError { reference, target } => {
                format!("different error: reference says `{reference}`, target says `{target}`")
            }
        }
    }
}

fn check_tensor(want_dtype: DType, want_shape: &[usize], want: &[f64], got: &Observed) -> Check {
    if got.meta.dtype != want_dtype {
        return Check::WrongDtype {
            want: want_dtype.as_str().into(),
            got: got.meta.dtype.as_str().into(),
        };
    }
    if got.meta.shape != want_shape {
        return Check::WrongShape {
            want: want_shape.to_vec(),
            got: got.meta.shape.clone(),
        };
    }
    match compare_values(want_dtype, want, &got.values) {
        None => Check::Agrees,
        Some(m) => Check::WrongValues(m),
    }
}

/// Checks a backend's outcome against the oracle.
pub fn against_oracle(expected: &Expected, outcome: &Outcome) -> Check {
    match (expected, outcome) {
        (_, Outcome::Panic { message }) => Check::Panicked {
            message: message.clone(),
        },
        (Expected::Tensor(want), Outcome::Tensor(got)) => {
            check_tensor(want.dtype, &want.shape, &want.values, got)
        }
        (Expected::Tensor(_), Outcome::Error { message }) => Check::UnexpectedError {
            message: message.clone(),
        },
        (Expected::Rejected(_), Outcome::Error { .. }) => Check::RejectedAsExpected,
        (Expected::Rejected(r), Outcome::Tensor(_)) => Check::AcceptedInvalid {
            argument: r.argument.clone(),
        },
    }
}

/// Checks the target's outcome against the reference backend's (CPU) outcome.
pub fn against_reference(reference: &Outcome, target: &Outcome) -> Check {
    match (reference, target) {
        (_, Outcome::Panic { message }) => Check::Panicked {
            message: message.clone(),
        },
        (Outcome::Tensor(want), Outcome::Tensor(got)) => {
            check_tensor(want.meta.dtype, &want.meta.shape, &want.values, got)
        }
        (Outcome::Error { message } | Outcome::Panic { message }, Outcome::Tensor(_)) => {
            Check::DifferentError {
                reference: message.clone(),
                target: "(returned a tensor)".into(),
            }
        }
        (Outcome::Tensor(_), Outcome::Error { message }) => Check::UnexpectedError {
            message: message.clone(),
        },
        (
            Outcome::Error { message: a } | Outcome::Panic { message: a },
            Outcome::Error { message: b },
        ) => {
            if a == b {
                Check::RejectedAsExpected
            } else {
                Check::DifferentError {
                    reference: a.clone(),
                    target: b.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinities_compare_exactly() {
        let inf = f64::INFINITY;
        // A finite value never matches an infinity, however loose the tolerance.
        let loose = Tolerance {
            rtol: 1.0,
            atol: 1e300,
        };
        assert!(compare_within(loose, &[inf], &[1e308]).is_some());
        assert!(compare_within(loose, &[-inf], &[inf]).is_some());
        assert!(compare_within(loose, &[1.0], &[inf]).is_some());
        assert!(compare_within(loose, &[inf, -inf], &[inf, -inf]).is_none());
        assert!(compare_within(loose, &[f64::NAN], &[f64::NAN]).is_none());
        assert!(compare_within(loose, &[f64::NAN], &[0.0]).is_some());
    }

    #[test]
    fn tolerances_follow_the_dtype() {
        assert!(compare_values(DType::F16, &[1000.0], &[1000.5]).is_none());
        assert!(compare_values(DType::F32, &[1000.0], &[1000.5]).is_some());
        assert!(compare_values(DType::U32, &[3.0], &[3.0]).is_none());
        let m = compare_values(DType::U32, &[3.0, 4.0, 5.0], &[3.0, 0.0, 5.0]).unwrap();
        assert_eq!(
            (m.mismatched, m.total, m.max_abs, m.max_abs_at),
            (1, 3, 4.0, 1)
        );
        assert_eq!(m.first, vec![(1, 4.0, 0.0)]);
    }

    #[test]
    fn nan_is_a_mismatch_unless_both_are_nan() {
        assert!(compare_values(DType::F32, &[f64::NAN], &[f64::NAN]).is_none());
        assert!(compare_values(DType::F32, &[1.0], &[f64::NAN]).is_some());
    }
}
